/* The one progress poller for long work (a probe, a search, a bulk enrolment, a re-embedding): fetch the job's
   status JSON, move the bar, say what is happening, and reload the page once the job is done or failed so the
   server renders the outcome. Loaded before the page's own script (workbench.js, manage.js), which calls it. */
(function () {
  "use strict";
  var WAITING = "Waiting for a worker… The work is kept and will start as soon as one is free.";

  /* el: holds a <progress> and an element with role="status". options: firstDelay and delay (ms) of the first
     polls, each later one 1.5x the last up to maxDelay; describe(data) words a running job's status. */
  window.rfrPollProgress = function (el, url, options) {
    var bar = el.querySelector("progress");
    var text = el.querySelector("[role=status]");
    var delay = options.delay;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (data) {
          bar.value = data.progress;
          bar.textContent = data.progress + "%";
          // No sign of a worker: say so (the server re-queues the work) rather than show a frozen percentage.
          text.textContent = data.waiting_for_worker ? WAITING : options.describe(data);
          if (data.status === "done" || data.status === "failed") {
            text.textContent = data.status === "done" ? "Finished. Loading the results…" : "Failed. Loading the details…";
            window.location.reload();
            return;
          }
          delay = Math.min(delay * 1.5, options.maxDelay);
          window.setTimeout(tick, delay);
        })
        .catch(function () {
          text.textContent = "Lost contact with the server; retrying…";
          window.setTimeout(tick, options.maxDelay);
        });
    }
    window.setTimeout(tick, options.firstDelay);
  };
})();
