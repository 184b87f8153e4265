/* Gallery and model-pack runs (/manage/): refresh a run's progress from its status JSON until it ends, then
   reload the page to show the outcome and the per-file errors. Without JavaScript, "Check again" reloads. */
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-manage-poll");
    var bar = el.querySelector("progress");
    var text = el.querySelector(".manage-status-text");
    var delay = 500;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (data) {
          bar.value = data.progress;
          bar.textContent = data.progress + "%";
          text.textContent = data.status_text;
          if (data.status !== "processing") {
            window.location.reload();
            return;
          }
          delay = Math.min(delay * 1.5, 5000);
          window.setTimeout(tick, delay);
        })
        .catch(function () { text.textContent = "Lost contact with the server; retrying…"; window.setTimeout(tick, 5000); });
    }
    window.setTimeout(tick, delay);
  }
  document.querySelectorAll("[data-manage-poll]").forEach(poll);
})();
