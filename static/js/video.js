/* The frame viewer (cases/video_frame.html): the arrow keys step one frame and Page Up / Page Down one second,
   by following the page's own previous/next links, so the keyboard does what the links do (and without
   JavaScript the links still work). Keys typed into a form field are left alone. */
(function () {
  "use strict";
  var nav = document.querySelector("[data-video-frames]");
  if (!nav) { return; }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) { return; }
    var link = nav.querySelector('[data-key="' + event.key + '"]');
    if (link) {
      event.preventDefault();
      window.location.href = link.href;
    }
  });
})();
