/* Case workbench: progress polling, drawing a box on a probe (the comparison view is static/js/compare.js).
   Progressive enhancement: every feature has a plain HTML fallback (a "Check again" link, number inputs). */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Progress (static/js/progress.js). Early polls close together: most probes and searches finish within a
  // second, and a person should see the result as soon as it is there (bench/workbench.py); later ones back
  // off to one every 3 s.
  document.querySelectorAll("[data-poll-url]").forEach(function (el) {
    window.rfrPollProgress(el, el.getAttribute("data-poll-url"), {
      firstDelay: 150,
      delay: 250,
      maxDelay: 3000,
      describe: function (data) {
        return data.status_text + (data.status === "processing" ? " (" + data.progress + "%)" : "");
      }
    });
  });

  // Drawing a box: drag on the probe image; the form's number inputs receive image-pixel coordinates.
  document.querySelectorAll("[data-draw-target]").forEach(function (stage) {
    var form = document.getElementById(stage.getAttribute("data-draw-target"));
    if (!form) { return; }
    var img = stage.querySelector("img");
    var rect = stage.querySelector(".wb-drawn");
    var naturalW = parseFloat(stage.getAttribute("data-natural-width"));
    var naturalH = parseFloat(stage.getAttribute("data-natural-height"));
    var start = null;
    function toImage(evt) {
      var r = img.getBoundingClientRect();
      var x = Math.max(0, Math.min(r.width, evt.clientX - r.left)) * naturalW / r.width;
      var y = Math.max(0, Math.min(r.height, evt.clientY - r.top)) * naturalH / r.height;
      return { x: x, y: y };
    }
    function show(box) {
      rect.setAttribute("x", box.x); rect.setAttribute("y", box.y);
      rect.setAttribute("width", box.w); rect.setAttribute("height", box.h);
    }
    function current(evt) {
      var p = toImage(evt);
      return { x: Math.min(start.x, p.x), y: Math.min(start.y, p.y), w: Math.abs(p.x - start.x), h: Math.abs(p.y - start.y) };
    }
    stage.addEventListener("pointerdown", function (evt) {
      evt.preventDefault(); start = toImage(evt); stage.setPointerCapture(evt.pointerId);
    });
    stage.addEventListener("pointermove", function (evt) { if (start) { show(current(evt)); } });
    stage.addEventListener("pointerup", function (evt) {
      if (!start) { return; }
      var box = current(evt); start = null; show(box);
      ["x", "y", "w", "h"].forEach(function (k) { form.elements[k].value = Math.round(box[k]); });
      form.elements.x.focus();
    });
    form.addEventListener("input", function () {
      var box = {};
      ["x", "y", "w", "h"].forEach(function (k) { box[k] = parseFloat(form.elements[k].value) || 0; });
      show(box);
    });
  });
})();
