/* Landmarks placed by hand (probe_mark.html): click on the enlarged region to place the five points in order,
   with numbered markers, undo and clear; typed coordinates move the markers too; Preview fetches the aligned
   crop without leaving the page. Without JavaScript the number inputs and a Preview that reloads the page
   do the same. */
(function () {
  "use strict";
  document.querySelectorAll("[data-mark-form]").forEach(function (stage) {
    var form = document.getElementById(stage.getAttribute("data-mark-form"));
    if (!form) { return; }
    var img = stage.querySelector("img");
    var region = {
      x: parseFloat(stage.getAttribute("data-region-x")), y: parseFloat(stage.getAttribute("data-region-y")),
      w: parseFloat(stage.getAttribute("data-region-w")), h: parseFloat(stage.getAttribute("data-region-h"))
    };
    var names = ["the eye on the image's left", "the eye on the image's right", "the nose tip",
      "the mouth corner on the image's left", "the mouth corner on the image's right"];
    var next = stage.parentNode.querySelector(".wb-mark-next");
    var undo = form.querySelector("[data-mark-undo]");
    var clear = form.querySelector("[data-mark-clear]");
    var previewButton = form.querySelector("[data-mark-preview]");
    var previewFigure = form.querySelector(".wb-mark-preview-figure");
    var previewImg = previewFigure.querySelector("img");
    var previewError = form.querySelector(".wb-mark-preview-error");
    undo.hidden = false; clear.hidden = false;

    function input(n, axis) { return form.elements["p" + n + axis]; }
    function filled(n) { return input(n, "x").value !== "" && input(n, "y").value !== ""; }
    function count() { var n = 0; while (n < 5 && filled(n + 1)) { n += 1; } return n; }
    function draw() {
      for (var n = 1; n <= 5; n += 1) {
        var marker = stage.querySelector('[data-marker="' + n + '"]');
        var x = parseFloat(input(n, "x").value), y = parseFloat(input(n, "y").value);
        var on = !isNaN(x) && !isNaN(y);
        marker.classList.toggle("wb-marker-off", !on);
        if (on) {
          marker.querySelector("circle").setAttribute("cx", x); marker.querySelector("circle").setAttribute("cy", y);
          marker.querySelector("text").setAttribute("x", x); marker.querySelector("text").setAttribute("y", y);
        }
      }
      var placed = count();
      next.textContent = placed < 5 ? "Next: point " + (placed + 1) + ", " + names[placed] + "." : "All five points placed.";
      undo.disabled = placed === 0;
      clear.disabled = placed === 0;
    }
    function toImage(evt) {
      var r = img.getBoundingClientRect();
      var x = region.x + Math.max(0, Math.min(r.width, evt.clientX - r.left)) * region.w / r.width;
      var y = region.y + Math.max(0, Math.min(r.height, evt.clientY - r.top)) * region.h / r.height;
      return { x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10 };
    }
    stage.addEventListener("click", function (evt) {
      var placed = count();
      if (placed >= 5) { next.textContent = "All five points placed: undo one to move it, or type its coordinates."; return; }
      var p = toImage(evt);
      input(placed + 1, "x").value = p.x; input(placed + 1, "y").value = p.y;
      draw();
    });
    undo.addEventListener("click", function () {
      var placed = count();
      if (placed > 0) { input(placed, "x").value = ""; input(placed, "y").value = ""; }
      draw();
    });
    clear.addEventListener("click", function () {
      for (var n = 1; n <= 5; n += 1) { input(n, "x").value = ""; input(n, "y").value = ""; }
      previewFigure.hidden = true; previewError.textContent = "";
      draw();
    });
    form.addEventListener("input", draw);

    // Preview in place: fetch the aligned crop; a refusal comes back as a 400 with the reason as text.
    var objectUrl = null;
    previewButton.addEventListener("click", function (evt) {
      evt.preventDefault();
      var query = new URLSearchParams();
      for (var n = 1; n <= 5; n += 1) { query.set("p" + n + "x", input(n, "x").value); query.set("p" + n + "y", input(n, "y").value); }
      previewError.textContent = "";
      fetch(previewImg.getAttribute("data-preview-url") + "?" + query.toString(), { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            return response.text().then(function (text) { throw new Error(text || "The preview could not be made."); });
          }
          return response.blob();
        })
        .then(function (blob) {
          if (objectUrl) { URL.revokeObjectURL(objectUrl); }
          objectUrl = URL.createObjectURL(blob);
          previewImg.src = objectUrl;
          previewFigure.hidden = false;
        })
        .catch(function (error) { previewFigure.hidden = true; previewError.textContent = error.message; });
    });
    draw();
  });
})();
