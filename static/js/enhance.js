/* Enhancement builder (cases/templates/cases/workbench/probe_enhance.html): add operations, set their
   parameters, move or remove them, and see a live preview. The chain lives in the form's JSON text field, which
   is what is posted; without JavaScript that field is edited by hand and "Preview" reloads the page. */
(function () {
  "use strict";
  var root = document.getElementById("enhance-builder");
  var catalogueEl = document.getElementById("enhance-catalogue");
  if (!root || !catalogueEl) { return; }
  var catalogue = JSON.parse(catalogueEl.textContent);
  var byName = {};
  catalogue.forEach(function (op) { byName[op.op] = op; });
  var form = document.getElementById(root.getAttribute("data-form"));
  var field = form.elements.operations;
  var list = document.getElementById("enhance-steps");
  var empty = document.getElementById("enhance-empty");
  var addSelect = document.getElementById("enhance-add-op");
  var previewImg = document.getElementById("enhance-preview-img");
  var statusEl = document.getElementById("enhance-preview-status");
  var errorEl = document.getElementById("enhance-preview-error");
  var previewUrl = root.getAttribute("data-preview-url");
  var naturalW = parseInt(root.getAttribute("data-natural-width"), 10);
  var naturalH = parseInt(root.getAttribute("data-natural-height"), 10);
  var steps = [];
  var timer = null;
  var serial = 0;
  var lastBlob = null;

  function defaults(op) {
    var params = {};
    byName[op].params.forEach(function (p) {
      var value = p.default;
      if (op === "crop" && p.name === "width") { value = naturalW; }
      if (op === "crop" && p.name === "height") { value = naturalH; }
      params[p.name] = value;
    });
    return params;
  }

  function sync() {
    field.value = JSON.stringify(steps.map(function (s) { return { op: s.op, params: s.params }; }));
    schedulePreview();
  }

  function button(text, label, onClick, disabled) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "wb-button wb-secondary wb-small";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.disabled = !!disabled;
    b.addEventListener("click", onClick);
    return b;
  }

  function render(focusIndex, focusWhat) {
    list.textContent = "";
    empty.hidden = steps.length > 0;
    steps.forEach(function (step, i) {
      var spec = byName[step.op];
      var li = document.createElement("li");
      var fs = document.createElement("fieldset");
      fs.className = "wb-step";
      var legend = document.createElement("legend");
      legend.textContent = "Step " + (i + 1) + ": " + spec.label;
      fs.appendChild(legend);
      var help = document.createElement("p");
      help.className = "wb-step-help";
      help.textContent = spec.description;
      fs.appendChild(help);
      var row = document.createElement("div");
      row.className = "wb-inline";
      spec.params.forEach(function (p) {
        var id = "step-" + i + "-" + p.name;
        var wrap = document.createElement("div");
        wrap.className = "wb-field";
        var label = document.createElement("label");
        label.setAttribute("for", id);
        label.textContent = p.label;
        var input;
        if (p.kind === "choice") {
          input = document.createElement("select");
          p.choices.forEach(function (c) {
            var o = document.createElement("option");
            o.value = c; o.textContent = c.replace(/_/g, " ");
            input.appendChild(o);
          });
        } else {
          input = document.createElement("input");
          input.type = "number";
          input.min = p.min; input.max = p.max;
          input.step = p.kind === "int" ? "1" : "any";
          input.required = true;
        }
        input.id = id;
        input.value = step.params[p.name] === null || step.params[p.name] === undefined ? "" : step.params[p.name];
        input.addEventListener("change", function () {
          var v = input.value;
          step.params[p.name] = p.kind === "choice" ? v : (v === "" ? null : Number(v));
          sync();
        });
        wrap.appendChild(label); wrap.appendChild(input);
        row.appendChild(wrap);
      });
      fs.appendChild(row);
      var tools = document.createElement("div");
      tools.className = "wb-step-tools";
      // Accessible names start with the visible words (WCAG 2.5.3), then say which step.
      var n = " step " + (i + 1) + ", " + spec.label;
      tools.appendChild(button("Move up", "Move up" + n, function () { move(i, -1); }, i === 0));
      tools.appendChild(button("Move down", "Move down" + n, function () { move(i, 1); }, i === steps.length - 1));
      tools.appendChild(button("Remove", "Remove" + n, function () { remove(i); }));
      fs.appendChild(tools);
      li.appendChild(fs);
      list.appendChild(li);
    });
    if (focusWhat === "add") {
      addSelect.focus();
    } else if (focusIndex !== undefined && focusIndex !== null && list.children[focusIndex]) {
      var item = list.children[focusIndex];
      var target = focusWhat === "tools" ? item.querySelector("button:not([disabled])") : item.querySelector("input, select");
      if (target) { target.focus(); }
    }
  }

  function move(i, by) {
    var j = i + by;
    var moved = steps.splice(i, 1)[0];
    steps.splice(j, 0, moved);
    render(j, "tools");
    sync();
  }

  function remove(i) {
    steps.splice(i, 1);
    render(steps.length ? Math.min(i, steps.length - 1) : null, steps.length ? "tools" : "add");
    sync();
  }

  document.getElementById("enhance-add").addEventListener("click", function () {
    var op = addSelect.value;
    steps.push({ op: op, params: defaults(op) });
    render(steps.length - 1, "input");
    sync();
  });

  // Typing in the JSON field rebuilds the list once it parses.
  field.addEventListener("change", function () {
    try {
      var parsed = JSON.parse(field.value || "[]");
      if (!Array.isArray(parsed)) { throw new Error("not a list"); }
      steps = parsed.filter(function (s) { return s && byName[s.op]; }).map(function (s) {
        var params = defaults(s.op);
        Object.keys(s.params || {}).forEach(function (k) { params[k] = s.params[k]; });
        return { op: s.op, params: params };
      });
      render();
      schedulePreview();
    } catch (e) {
      showError("The JSON field does not read as a list of operations.");
    }
  });

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = !message;
  }

  function schedulePreview() {
    window.clearTimeout(timer);
    timer = window.setTimeout(preview, 500);
  }

  function preview() {
    if (!steps.length) {
      statusEl.textContent = "Add operations to see a preview.";
      previewImg.classList.add("wb-hidden-img");
      previewImg.removeAttribute("src");
      showError("");
      return;
    }
    var mine = ++serial;
    statusEl.textContent = "Making the preview…";
    fetch(previewUrl + "?operations=" + encodeURIComponent(field.value), { credentials: "same-origin" })
      .then(function (r) {
        if (r.ok) { return r.blob(); }
        return r.json().then(function (body) { throw new Error(body.message || ("HTTP " + r.status)); },
          function () { throw new Error("The preview could not be made (HTTP " + r.status + ")."); });
      })
      .then(function (blob) {
        if (mine !== serial) { return; }
        if (lastBlob) { URL.revokeObjectURL(lastBlob); }
        lastBlob = URL.createObjectURL(blob);
        previewImg.onload = function () {
          statusEl.textContent = "Preview updated: " + previewImg.naturalWidth + " × " + previewImg.naturalHeight +
            " pixels, " + steps.length + (steps.length === 1 ? " operation." : " operations.");
        };
        previewImg.src = lastBlob;
        previewImg.classList.remove("wb-hidden-img");
        showError("");
      })
      .catch(function (err) {
        if (mine !== serial) { return; }
        // An earlier preview must not stand for a chain that was refused.
        statusEl.textContent = "No preview: the chain was refused.";
        previewImg.classList.add("wb-hidden-img");
        showError(err.message);
      });
  }

  // Drag on the unchanged probe to crop: the box becomes (or replaces) a crop as the chain's first step, in
  // the probe's own pixels. The typed fields of the Crop step are the keyboard way to the same thing.
  var stage = document.getElementById("enhance-crop-stage");
  if (stage) {
    var stageImg = stage.querySelector("img");
    var box = stage.querySelector(".wb-crop-box");
    var start = null;
    var toImage = function (evt) {
      var r = stageImg.getBoundingClientRect();
      return {
        x: Math.max(0, Math.min(r.width, evt.clientX - r.left)), y: Math.max(0, Math.min(r.height, evt.clientY - r.top)),
        sx: naturalW / r.width, sy: naturalH / r.height
      };
    };
    var current = function (evt) {
      var p = toImage(evt);
      return { x: Math.min(start.x, p.x), y: Math.min(start.y, p.y), w: Math.abs(p.x - start.x), h: Math.abs(p.y - start.y), sx: p.sx, sy: p.sy };
    };
    var show = function (b) {
      box.hidden = false;
      box.style.left = b.x + "px"; box.style.top = b.y + "px"; box.style.width = b.w + "px"; box.style.height = b.h + "px";
    };
    stage.addEventListener("pointerdown", function (evt) {
      evt.preventDefault(); start = toImage(evt); stage.setPointerCapture(evt.pointerId);
    });
    stage.addEventListener("pointermove", function (evt) { if (start) { show(current(evt)); } });
    stage.addEventListener("pointerup", function (evt) {
      if (!start) { return; }
      var b = current(evt); start = null;
      var params = {
        x: Math.round(b.x * b.sx), y: Math.round(b.y * b.sy),
        width: Math.round(b.w * b.sx), height: Math.round(b.h * b.sy)
      };
      params.width = Math.min(params.width, naturalW - params.x);
      params.height = Math.min(params.height, naturalH - params.y);
      if (params.width < 8 || params.height < 8) { box.hidden = true; return; }
      show(b);
      if (steps.length && steps[0].op === "crop") { steps[0].params = params; } else { steps.unshift({ op: "crop", params: params }); }
      render(0, "input");
      sync();
    });
  }

  // Start from what the field holds (a chain sent back after an error, or one given in the address).
  field.dispatchEvent(new Event("change"));
})();
