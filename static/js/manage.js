/* Gallery and model-pack runs (/manage/): refresh a run's progress from its status JSON until it ends, then
   reload the page to show the outcome and the per-file errors (static/js/progress.js). Without JavaScript,
   "Check again" reloads. Runs take minutes, so polls back off to one every 5 s. */
(function () {
  "use strict";
  document.querySelectorAll("[data-manage-poll]").forEach(function (el) {
    window.rfrPollProgress(el, el.getAttribute("data-manage-poll"), {
      firstDelay: 500,
      delay: 500,
      maxDelay: 5000,
      describe: function (data) { return data.status_text; }
    });
  });
})();
