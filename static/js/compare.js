/* The comparison view of the candidate page (cases/templates/cases/workbench/candidate_detail.html).

   Each side shows its image in a fixed viewport; the script places it with one CSS transform per side:
   the image point (cx, cy) sits at the viewport's centre, scaled by `scale` screen pixels per image pixel and
   rotated by `rot` degrees. The view opens centred on each face, both faces at the same size on screen, so
   zooming and panning the same amount in screen pixels on both sides keeps them in step ("linked"); unlinked,
   the controls act on the side last used. Geometry (face boxes, landmarks) comes from cases/comparison.py.
   Progressive: without JavaScript the images show side by side with the searched face outlined. */
(function () {
  "use strict";
  var root = document.querySelector("[data-compare]");
  var data = document.getElementById("cmp-geometry");
  if (!root || !data) { return; }
  var geometry = JSON.parse(data.textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var FACE_SHARE = 0.55;  // the face box's longer side, as a share of the viewport, in the face view
  var STEP = 1.5;
  var MODES = ["side", "overlay", "flicker"];
  var state = { linked: true, crops: false, mode: "side", active: null, flicker: null };
  var level = root.querySelector(".cmp-level");
  var opacityLabel = root.querySelector(".cmp-opacity");
  var opacity = root.querySelector("[data-cmp-opacity]");

  function svgEl(name, attrs) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    return el;
  }

  function overlay(stage, width, height, box, points, radius) {
    var svg = stage.querySelector("svg.cmp-overlay");
    if (!svg) {
      svg = svgEl("svg", { "class": "cmp-overlay", "aria-hidden": "true", focusable: "false", preserveAspectRatio: "none" });
      stage.appendChild(svg);
    }
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    if (!svg.querySelector(".cmp-facebox")) {
      svg.appendChild(svgEl("rect", { "class": "cmp-facebox", x: box[0], y: box[1], width: box[2], height: box[3] }));
    }
    var g = svgEl("g", { "class": "cmp-landmarks" });
    points.forEach(function (p) { g.appendChild(svgEl("circle", { cx: p[0], cy: p[1], r: radius })); });
    svg.appendChild(g);
  }

  function makeView(stage, width, height, box, points) {
    var view = { stage: stage, img: stage.querySelector("img"), w: width, h: height, box: box, points: points };
    if (width && height) {
      overlay(stage, width, height, box, points, Math.max(1.5, Math.max(box[2], box[3]) * 0.03));
    }
    return view;
  }

  var sides = [];
  root.querySelectorAll(".cmp-side").forEach(function (figure) {
    var viewport = figure.querySelector(".cmp-viewport");
    if (!viewport) { return; }  // the gallery image is no longer held
    var name = figure.getAttribute("data-side");
    var own = name === "probe" ? geometry.probe : geometry.candidate;
    var imageStage = figure.querySelector('.cmp-stage[data-view="image"]');
    var cropStage = figure.querySelector('.cmp-stage[data-view="crop"]');
    var crop = geometry.crop;
    var side = {
      name: name, figure: figure, viewport: viewport, scale: 1, cx: 0, cy: 0, rot: 0, ready: false,
      image: makeView(imageStage, own.width || 0, own.height || 0, own.box, own.landmarks),
      crop: makeView(cropStage, crop.size, crop.size, crop.box, crop.landmarks)
    };
    sides.push(side);
    if (!side.image.w) {
      // The gallery image's size is not stored: read it once the image has loaded.
      var img = side.image.img;
      var loaded = function () {
        side.image.w = img.naturalWidth; side.image.h = img.naturalHeight;
        overlay(imageStage, side.image.w, side.image.h, own.box, own.landmarks,
          Math.max(1.5, Math.max(own.box[2], own.box[3]) * 0.03));
        faceView(side); render();
      };
      if (img.complete && img.naturalWidth) { loaded(); } else { img.addEventListener("load", loaded); }
    }
  });
  if (!sides.length) { return; }
  root.classList.add("cmp-js");

  function current(side) { return state.crops ? side.crop : side.image; }
  function size(side) { return { w: side.viewport.clientWidth, h: side.viewport.clientHeight }; }

  function faceScale(side) {
    var v = current(side), s = size(side);
    return Math.min(s.w, s.h) * FACE_SHARE / Math.max(v.box[2], v.box[3], 1);
  }
  function faceView(side) {
    var v = current(side);
    if (!v.w) { return; }
    side.cx = v.box[0] + v.box[2] / 2; side.cy = v.box[1] + v.box[3] / 2;
    side.scale = faceScale(side); side.rot = 0; side.ready = true;
  }
  function wholeView(side) {
    var v = current(side), s = size(side);
    if (!v.w) { return; }
    side.cx = v.w / 2; side.cy = v.h / 2; side.scale = Math.min(s.w / v.w, s.h / v.h); side.rot = 0;
  }
  // A screen offset (dx, dy) as image pixels, undoing the side's rotation and scale.
  function toImage(side, dx, dy) {
    var a = -side.rot * Math.PI / 180;
    return { x: (dx * Math.cos(a) - dy * Math.sin(a)) / side.scale, y: (dx * Math.sin(a) + dy * Math.cos(a)) / side.scale };
  }
  function zoomAt(side, factor, ox, oy) {
    var before = toImage(side, ox, oy);
    side.scale = Math.max(0.01, Math.min(side.scale * factor, faceScale(side) * 40));
    var after = toImage(side, ox, oy);
    side.cx += before.x - after.x; side.cy += before.y - after.y;
  }
  function pan(side, dx, dy) {
    var d = toImage(side, dx, dy);
    side.cx -= d.x; side.cy -= d.y;
  }
  function targets(side) {
    if (state.linked || state.mode !== "side") { return sides; }
    return [side || state.active || sides[0]];
  }

  function render() {
    sides.forEach(function (side) {
      var v = current(side), s = size(side);
      side.image.stage.hidden = state.crops; side.crop.stage.hidden = !state.crops;
      if (state.crops && !side.crop.img.getAttribute("src")) {
        side.crop.img.setAttribute("src", side.crop.img.getAttribute("data-src"));
      }
      if (!v.w) { return; }
      v.stage.style.width = v.w + "px"; v.stage.style.height = v.h + "px";
      // Marks keep a constant size on screen (vector-effect does not see the CSS transform of the stage).
      v.stage.querySelectorAll(".cmp-overlay rect").forEach(function (rect) {
        rect.style.strokeWidth = String((rect.classList.contains("cmp-searched") ? 3 : 2) / side.scale);
      });
      v.stage.querySelectorAll(".cmp-landmarks circle").forEach(function (circle) {
        circle.setAttribute("r", String(5 / side.scale));
        circle.style.strokeWidth = String(2 / side.scale);
      });
      v.stage.style.transform = "translate(" + (s.w / 2) + "px," + (s.h / 2) + "px) rotate(" + side.rot + "deg) scale(" +
        side.scale + ") translate(" + (-side.cx) + "px," + (-side.cy) + "px)";
    });
    var shown = state.active && !state.linked ? state.active : sides[0];
    var percent = Math.round(shown.scale / faceScale(shown) * 100);
    level.textContent = percent + "%" + (state.linked ? "" : " (" + shown.name + ")");
  }

  function act(fn, side) { targets(side).forEach(fn); render(); }

  var actions = {
    "in": function (side) { act(function (s) { zoomAt(s, STEP, 0, 0); }, side); },
    "out": function (side) { act(function (s) { zoomAt(s, 1 / STEP, 0, 0); }, side); },
    face: function (side) { act(faceView, side); },
    whole: function (side) { act(wholeView, side); }
  };

  function setMode(mode) {
    state.mode = mode;
    MODES.forEach(function (m) { root.classList.toggle("cmp-mode-" + m, m === mode && m !== "side"); });
    root.querySelectorAll("[data-cmp-mode]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-cmp-mode") === mode));
    });
    opacityLabel.hidden = mode !== "overlay";
    var candidate = sides.filter(function (s) { return s.name === "candidate"; })[0];
    if (state.flicker) { clearInterval(state.flicker); state.flicker = null; }
    if (candidate) {
      candidate.figure.classList.remove("cmp-flicker-off");
      candidate.viewport.style.opacity = mode === "overlay" ? String(opacity.value / 100) : "";
      // Under 2 changes a second: well below the three flashes a second WCAG 2.3.1 warns of.
      if (mode === "flicker") {
        state.flicker = setInterval(function () { candidate.figure.classList.toggle("cmp-flicker-off"); }, 700);
      }
    }
    if (mode !== "side") { sides.forEach(faceView); }  // stacked, the two faces must sit on one another
    render();
  }

  function setToggle(name, on) {
    var box = root.querySelector('[data-cmp-toggle="' + name + '"]');
    if (box) { box.checked = on; }
    if (name === "link") { state.linked = on; }
    if (name === "crops") { state.crops = on; sides.forEach(faceView); }
    if (name === "landmarks") { root.classList.toggle("cmp-show-landmarks", on); }
    render();
  }

  root.querySelectorAll("[data-cmp]").forEach(function (button) {
    button.addEventListener("click", function () { actions[button.getAttribute("data-cmp")](); });
  });
  root.querySelectorAll("[data-cmp-mode]").forEach(function (button) {
    button.addEventListener("click", function () { setMode(button.getAttribute("data-cmp-mode")); });
  });
  root.querySelectorAll("[data-cmp-toggle]").forEach(function (box) {
    box.addEventListener("change", function () { setToggle(box.getAttribute("data-cmp-toggle"), box.checked); });
  });
  opacity.addEventListener("input", function () {
    var candidate = sides.filter(function (s) { return s.name === "candidate"; })[0];
    if (candidate && state.mode === "overlay") { candidate.viewport.style.opacity = String(opacity.value / 100); }
  });

  sides.forEach(function (side) {
    var drag = null;
    side.figure.querySelectorAll("[data-cmp-rotate]").forEach(function (button) {
      button.addEventListener("click", function () {
        state.active = side; side.rot += parseFloat(button.getAttribute("data-cmp-rotate")); render();
      });
    });
    side.viewport.addEventListener("focus", function () { state.active = side; });
    side.viewport.addEventListener("pointerdown", function (evt) {
      state.active = side; drag = { x: evt.clientX, y: evt.clientY };
      side.viewport.setPointerCapture(evt.pointerId); side.viewport.classList.add("cmp-dragging");
    });
    side.viewport.addEventListener("pointermove", function (evt) {
      if (!drag) { return; }
      var dx = evt.clientX - drag.x, dy = evt.clientY - drag.y;
      drag = { x: evt.clientX, y: evt.clientY };
      act(function (s) { pan(s, dx, dy); }, side);
    });
    ["pointerup", "pointercancel"].forEach(function (name) {
      side.viewport.addEventListener(name, function () { drag = null; side.viewport.classList.remove("cmp-dragging"); });
    });
    side.viewport.addEventListener("wheel", function (evt) {
      evt.preventDefault();
      state.active = side;
      var r = side.viewport.getBoundingClientRect();
      var ox = evt.clientX - r.left - r.width / 2, oy = evt.clientY - r.top - r.height / 2;
      act(function (s) { zoomAt(s, evt.deltaY < 0 ? 1.2 : 1 / 1.2, ox, oy); }, side);
    }, { passive: false });
    side.viewport.addEventListener("keydown", function (evt) {
      if (evt.ctrlKey || evt.metaKey || evt.altKey) { return; }
      var far = evt.shiftKey ? 160 : 40;
      var key = evt.key;
      var handled = true;
      state.active = side;
      if (key === "+" || key === "=") { actions["in"](side); }
      else if (key === "-" || key === "_") { actions.out(side); }
      else if (key === "ArrowLeft") { act(function (s) { pan(s, far, 0); }, side); }
      else if (key === "ArrowRight") { act(function (s) { pan(s, -far, 0); }, side); }
      else if (key === "ArrowUp") { act(function (s) { pan(s, 0, far); }, side); }
      else if (key === "ArrowDown") { act(function (s) { pan(s, 0, -far); }, side); }
      else if (key === "0") { actions.face(side); }
      else if (key === "w" || key === "W") { actions.whole(side); }
      else if (key === "r" || key === "R") { side.rot += evt.shiftKey ? -5 : 5; render(); }
      else if (key === "l" || key === "L") { setToggle("link", !state.linked); }
      else if (key === "m" || key === "M") { setMode(MODES[(MODES.indexOf(state.mode) + 1) % MODES.length]); }
      else if (key === "c" || key === "C") { setToggle("crops", !state.crops); }
      else if (key === "k" || key === "K") { setToggle("landmarks", !root.classList.contains("cmp-show-landmarks")); }
      else { handled = false; }
      if (handled) { evt.preventDefault(); }
    });
  });

  window.addEventListener("resize", function () { render(); });
  sides.forEach(faceView);
  render();
})();
