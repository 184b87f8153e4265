/* Probe upload with a progress bar: the form is sent with XMLHttpRequest (fetch cannot report bytes sent), the
   bar shows bytes sent of the total, then the page moves to where the server sends it (the new probe's page,
   whose own bar polls the processing). Without JavaScript the form posts as a plain form. If the server answers
   with anything but the JSON it gives this script, the form is posted again as a plain form, so the person
   sees exactly what the plain form shows (nothing was stored by a refused request). */
(function () {
  "use strict";

  function megabytes(n) { return (n / (1024 * 1024)).toFixed(1) + " MB"; }

  document.querySelectorAll("form[data-upload-progress]").forEach(function (form) {
    var box = document.getElementById(form.getAttribute("data-upload-progress"));
    if (!box || !window.XMLHttpRequest || !window.FormData) { return; }
    var bar = box.querySelector("progress");
    var text = box.querySelector("[role=status]");
    var button = form.querySelector("button[type=submit]");
    var plain = false;

    function show(value, words) {
      bar.value = value;
      bar.textContent = value + "%";
      text.textContent = words;
    }

    form.addEventListener("submit", function (evt) {
      if (plain) { return; }  // the fallback: let the browser post it
      evt.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) { show(0, "Uploading…"); return; }
        var pct = Math.floor(100 * e.loaded / e.total);
        show(pct, "Uploading: " + megabytes(e.loaded) + " of " + megabytes(e.total) + " (" + pct + "%)");
      });
      xhr.upload.addEventListener("load", function () {
        show(100, "Uploaded. Checking the file…");
      });
      xhr.addEventListener("load", function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (ignore) { data = null; }
        if (xhr.status === 200 && data && data.location) {
          text.textContent = "Stored. Opening the image…";
          window.location.assign(data.location);
          return;
        }
        plain = true;
        form.submit();
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        text.textContent = "The upload failed: the server could not be reached. Try again.";
      });
      button.disabled = true;
      box.hidden = false;
      show(0, "Uploading…");
      xhr.send(new FormData(form));
    });
  });
})();
