/* convscope report: summary, explanations (en/ko) and the receptive-field explorer.
 * Everything it shows comes from the JSON in #report-data, written by convscope.viz.report;
 * the window and field arithmetic uses the per-layer numbers computed in Python
 * (convscope.models.analysis, i.e. ops/shapes.py), never its own padding rules. */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var WINDOW_KINDS = ["conv", "max_pool", "avg_pool"];
  var MAX_SHOWN = 16;
  var PIXEL_BUDGET = 450000;
  var MAX_TERMS = 120;

  var I18N = {
    en: {
      title: "convscope report", summary: "Summary", explorer: "Explorer: receptive fields and sums",
      explorer_hint: "Pick a layer, then hover over or click an output unit of a conv or pooling layer: its window on the previous feature maps and its receptive field on the input light up, with the sum z = b + \u03a3 x\u00b7w in real numbers.",
      explanations: "Explanations", diagram: "Diagram", filters: "Filters (one tile per 2-D kernel)",
      filters_hint: "Rows: input channels per group; columns: filters. Blue is negative, white zero, red positive; one scale per layer.",
      feature_maps: "Feature maps of the sample", history: "Training curves",
      col_layer: "Layer (type)", col_output: "Output Shape", col_params: "Param #", col_kernels: "2-D kernels",
      col_macs: "MACs", col_field: "Receptive field", total: "Total params",
      input_image: "Model input (the sample)", previous: "Input of this layer (previous feature maps)",
      output: "Output of", channel: "ch", no_sample: "Pass sample= to report() to see the feature maps here.",
      no_spatial: "This layer has no spatial output: every unit sees the whole input.",
      pick_unit: "Click or hover over an output unit.", unit: "Unit", field_on_input: "Receptive field on the input",
      rows: "rows", cols: "cols", window_on_prev: "Window on the previous maps", channels: "channels",
      in_padding: "window cells in padding (zeros)", sum_title: "The sum for this unit", stored: "stored output",
      terms_more: "more terms", max_of: "max of the real cells of the window",
      mean_of: "mean of the real cells of the window",
      no_weights: "The kernel is too large to embed, so the sum is not shown.",
      channels_cut: "Some input channels were not embedded (size cap), so the sum is not shown.",
      size: "size", jump: "jump", start: "start", none: "\u2014",
      reached: "Input cells it really reads (highlighted; padding excluded)",
      keras_summary: "model.summary(), as Keras prints it", col_connected: "Connected to", call: "call"
    },
    ko: {
      title: "convscope \ubcf4\uace0\uc11c", summary: "\ubaa8\ub378 \uc694\uc57d", explorer: "\ud0d0\uc0c9\uae30: \uc218\uc6a9 \uc601\uc5ed\uacfc \ud569",
      explorer_hint: "\ub808\uc774\uc5b4\ub97c \uace0\ub978 \ub4a4 \ud569\uc131\uacf1\uc774\ub098 \ud480\ub9c1 \ub808\uc774\uc5b4\uc758 \ucd9c\ub825 \uc720\ub2db\uc5d0 \ub9c8\uc6b0\uc2a4\ub97c \uc62c\ub9ac\uac70\ub098 \ud074\ub9ad\ud574 \ubcf4\uc138\uc694. \uc774\uc804 \ud2b9\uc131 \ub9f5 \uc704\uc758 \ucc3d\uacfc \uc785\ub825 \uc704\uc758 \uc218\uc6a9 \uc601\uc5ed\uc774 \uac15\uc870\ub418\uace0, \uc2e4\uc81c \uc22b\uc790\ub85c z = b + \u03a3 x\u00b7w \ub97c \uacc4\uc0b0\ud574 \ubcf4\uc5ec \uc90d\ub2c8\ub2e4.",
      explanations: "\ub808\uc774\uc5b4\ubcc4 \uc124\uba85", diagram: "\ubaa8\ub378 \uad6c\uc870\ub3c4", filters: "\ud544\ud130 (2\ucc28\uc6d0 \ucee4\ub110\ub9c8\ub2e4 \ud55c \uce78)",
      filters_hint: "\ud589\uc740 \uadf8\ub8f9\ub2f9 \uc785\ub825 \ucc44\ub110, \uc5f4\uc740 \ud544\ud130\uc785\ub2c8\ub2e4. \ud30c\ub780\uc0c9\uc740 \uc74c\uc218, \ud770\uc0c9\uc740 0, \ube68\uac04\uc0c9\uc740 \uc591\uc218\uc774\uba70 \ub808\uc774\uc5b4\ub9c8\ub2e4 \ud558\ub098\uc758 \uc0c9 \ucc99\ub3c4\ub97c \uc501\ub2c8\ub2e4.",
      feature_maps: "\uc0d8\ud50c\uc758 \ud2b9\uc131 \ub9f5", history: "\ud559\uc2b5 \uace1\uc120",
      col_layer: "\ub808\uc774\uc5b4 (\uc885\ub958)", col_output: "\ucd9c\ub825 \ud615\ud0dc", col_params: "\ud30c\ub77c\ubbf8\ud130 \uc218",
      col_kernels: "2\ucc28\uc6d0 \ucee4\ub110 \uc218", col_macs: "\uacf1\uc148-\ub204\uc0b0(MAC)", col_field: "\uc218\uc6a9 \uc601\uc5ed",
      total: "\uc804\uccb4 \ud30c\ub77c\ubbf8\ud130", input_image: "\ubaa8\ub378 \uc785\ub825 (\uc0d8\ud50c)",
      previous: "\uc774 \ub808\uc774\uc5b4\uc758 \uc785\ub825 (\uc774\uc804 \ud2b9\uc131 \ub9f5)", output: "\ucd9c\ub825:", channel: "\ucc44\ub110",
      no_sample: "report()\uc5d0 sample=\uc744 \ub118\uae30\uba74 \uc5ec\uae30\uc5d0\uc11c \ud2b9\uc131 \ub9f5\uc744 \ubcfc \uc218 \uc788\uc2b5\ub2c8\ub2e4.",
      no_spatial: "\uc774 \ub808\uc774\uc5b4\uc758 \ucd9c\ub825\uc5d0\ub294 \uacf5\uac04 \ucd95\uc774 \uc5c6\uc5b4\uc11c, \ubaa8\ub4e0 \uc720\ub2db\uc774 \uc785\ub825 \uc804\uccb4\ub97c \ubd05\ub2c8\ub2e4.",
      pick_unit: "\ucd9c\ub825 \uc720\ub2db\uc744 \ud074\ub9ad\ud558\uac70\ub098 \ub9c8\uc6b0\uc2a4\ub97c \uc62c\ub824 \ubcf4\uc138\uc694.", unit: "\uc720\ub2db",
      field_on_input: "\uc785\ub825\uc5d0\uc11c\uc758 \uc218\uc6a9 \uc601\uc5ed", rows: "\ud589", cols: "\uc5f4",
      window_on_prev: "\uc774\uc804 \ud2b9\uc131 \ub9f5 \uc704\uc758 \ucc3d", channels: "\ucc44\ub110",
      in_padding: "\ud328\ub529(0) \uc704\uc5d0 \ub193\uc778 \ucc3d\uc758 \uce78", sum_title: "\uc774 \uc720\ub2db\uc758 \ud569",
      stored: "\uc800\uc7a5\ub41c \ucd9c\ub825", terms_more: "\uac1c \ud56d \ub354", max_of: "\ucc3d \uc548 \uc2e4\uc81c \uce78\ub4e4\uc758 \ucd5c\ub313\uac12",
      mean_of: "\ucc3d \uc548 \uc2e4\uc81c \uce78\ub4e4\uc758 \ud3c9\uade0",
      no_weights: "\ucee4\ub110\uc774 \ub108\ubb34 \ucee4\uc11c \ubcf4\uace0\uc11c\uc5d0 \ub123\uc9c0 \uc54a\uc558\uace0, \uadf8\ub798\uc11c \ud569\uc740 \ubcf4\uc5ec \uc8fc\uc9c0 \uc54a\uc2b5\ub2c8\ub2e4.",
      channels_cut: "\ud06c\uae30 \uc81c\ud55c\uc73c\ub85c \uc77c\ubd80 \uc785\ub825 \ucc44\ub110\uc744 \ub123\uc9c0 \uc54a\uc544 \ud569\uc740 \ubcf4\uc5ec \uc8fc\uc9c0 \uc54a\uc2b5\ub2c8\ub2e4.",
      size: "\ud06c\uae30", jump: "\uac04\uaca9", start: "\uc2dc\uc791", none: "\u2014",
      keras_summary: "Keras\uc640 \uac19\uc740 model.summary() \ucd9c\ub825",
      col_connected: "\uc5f0\uacb0\ub41c \uc785\ub825", call: "\ud638\ucd9c",
      reached: "\uc2e4\uc81c\ub85c \uc77d\ub294 \uc785\ub825 \uce78 (\uac15\uc870 \ud45c\uc2dc, \ud328\ub529 \uc81c\uc678)"
    }
  };

  var state = { lang: DATA.lang, layer: null, unit: null, pinned: false, highlight: null };

  // -- small helpers ---------------------------------------------------------------------------
  function t(key) { return I18N[state.lang][key]; }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") { node.className = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } return node; }
  function fmt(value) {
    if (!isFinite(value)) { return String(value); }
    var a = Math.abs(value);
    return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? value.toExponential(3) : String(+value.toFixed(4));
  }
  function grouped(n) { return Number(n).toLocaleString("en-US"); }
  function decode(entry) {
    if (!entry) { return null; }
    var bin = atob(entry.data), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    return { shape: entry.shape, values: new Float32Array(bytes.buffer), channels: entry.channels, vmax: entry.vmax };
  }
  function at(map, r, c, ch) { return map.values[(r * map.shape[1] + c) * map.shape[2] + ch]; }
  function rgb(value, vmax) {
    var x = Math.max(-1, Math.min(1, value / vmax)), zero = [247, 247, 247];
    var end = x >= 0 ? [178, 24, 43] : [33, 102, 172], f = Math.abs(x);
    return zero.map(function (z, i) { return Math.round(z + (end[i] - z) * f); });
  }
  function spanText(list) { return list.length ? list[0] + "\u2013" + list[list.length - 1] : t("none"); }
  function range(lo, hi) { var out = []; for (var i = lo; i <= hi; i++) { out.push(i); } return out; }

  var sample = DATA.sample ? {
    input: decode(DATA.sample.input),
    outputs: DATA.sample.outputs.map(decode)
  } : null;
  var weights = DATA.layers.map(function (layer) {
    return layer.weights ? { kernel: decode(layer.weights.kernel), bias: decode(layer.weights.bias) } : null;
  });

  // -- static parts: labels, summary, explanations ------------------------------------------------
  function renderLabels() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach(function (node) { node.textContent = t(node.dataset.i18n); });
    document.getElementById("model-name").textContent = DATA.model.name;
    document.querySelector("#keras-summary pre").textContent = DATA.keras_summary;
    document.getElementById("keras-summary").hidden = !DATA.keras_summary;
    document.querySelectorAll(".lang-switch button").forEach(function (b) {
      b.classList.toggle("active", b.dataset.lang === state.lang);
    });
    ["feature-maps", "history"].forEach(function (id) {
      var section = document.getElementById(id);
      section.classList.toggle("empty", !section.querySelector("svg"));
    });
  }

  function fieldText(layer) {
    if (!layer.field) { return t("none"); }
    return layer.field[0].size + "\u00d7" + layer.field[1].size + " (" + t("jump") + " " + layer.field[0].jump +
      "\u00d7" + layer.field[1].jump + ")";
  }

  function renderSummary() {
    var table = document.getElementById("summary-table");
    var head = clear(table.tHead), body = clear(table.tBodies[0]), foot = clear(table.tFoot);
    var row = head.insertRow();
    [["col_layer", ""], ["col_output", ""], ["col_params", "num"], ["col_kernels", "num"], ["col_macs", "num"],
     ["col_field", ""]].concat(DATA.graph ? [["col_connected", ""]] : [])
      .forEach(function (c) { row.appendChild(el("th", { "class": c[1] }, t(c[0]))); });
    var total = 0;
    DATA.layers.forEach(function (layer) {
      var tr = el("tr", { "data-layer": layer.name });
      if (DATA.graph) { tr.dataset.call = layer.call; }
      tr.appendChild(el("td", {}, layerLabel(layer)));
      tr.appendChild(el("td", {}, layer.output_text));
      tr.appendChild(el("td", { "class": "num" }, grouped(layer.params)));
      tr.appendChild(el("td", { "class": "num" }, layer.kernels === null ? t("none") : grouped(layer.kernels)));
      tr.appendChild(el("td", { "class": "num" }, grouped(layer.macs)));
      tr.appendChild(el("td", {}, fieldText(layer)));
      if (DATA.graph) { tr.appendChild(el("td", { "class": "connected" }, layer.inbound.join(", "))); }
      tr.classList.toggle("selected", state.layer === layer.index);
      tr.addEventListener("click", function () { selectLayer(layer.index); });
      body.appendChild(tr);
      if (!layer.call || layer.call === 1) { total += layer.params; }  // a shared layer's weights count once
    });
    var f = foot.insertRow();
    f.appendChild(el("td", {}, t("total")));
    f.appendChild(el("td", {}, ""));
    f.appendChild(el("td", { "class": "num" }, grouped(total)));
    var lines = clear(document.getElementById("model-lines"));
    var info = DATA.explain[state.lang].model;
    info.lines.concat(info.notes).forEach(function (line) { lines.appendChild(el("li", {}, line)); });
  }

  /* "name (Class)", and for a shared layer of a graph model which call it is. */
  function layerLabel(layer) {
    var label = layer.name + " (" + layer.class_name + ")";
    return layer.calls > 1 ? label + ", " + t("call") + " " + layer.call + "/" + layer.calls : label;
  }

  function explanationCard(entry) {
    var card = el("article", { "class": "card", id: "explain-" + entry.index, "data-layer": entry.name });
    card.appendChild(el("h3", {}, entry.title));
    entry.sections.forEach(function (section) {
      card.appendChild(el("h4", {}, section.title));
      var list = el("ul");
      section.lines.forEach(function (line) { list.appendChild(el("li", {}, line)); });
      card.appendChild(list);
    });
    card.classList.toggle("selected", state.layer === entry.index);
    return card;
  }

  function renderExplanations() {
    var doc = DATA.explain[state.lang];
    var conventions = clear(document.getElementById("conventions"));
    doc.conventions.forEach(function (line) { conventions.appendChild(el("li", {}, line)); });
    var cards = clear(document.getElementById("explain-cards"));
    doc.layers.forEach(function (entry) { cards.appendChild(explanationCard(entry)); });
  }

  function renderPicker() {
    var picker = clear(document.getElementById("layer-picker"));
    DATA.layers.forEach(function (layer) {
      var button = el("button", { type: "button", role: "tab", "data-layer": layer.name, "data-index": layer.index },
        layerLabel(layer));
      if (DATA.graph) { button.dataset.call = layer.call; }
      if (!explorable(layer)) { button.classList.add("flat"); }
      button.classList.toggle("active", state.layer === layer.index);
      button.addEventListener("click", function () { selectLayer(layer.index); });
      picker.appendChild(button);
    });
  }

  // -- the explorer ---------------------------------------------------------------------------------
  function explorable(layer) {
    return !!(sample && layer.field && sample.outputs[layer.index] && previousMap(layer.index));
  }
  /* The map a layer reads: the previous layer's output, or in a graph model its first parent's. */
  function previousMap(index) {
    if (DATA.graph) { var parents = DATA.layers[index].parents; return parents.length ? sample.outputs[parents[0]] : null; }
    return index === 0 ? sample.input : sample.outputs[index - 1];
  }
  /* The model input a layer's field lies on: the sample, or in a graph model the input its first parents lead to. */
  function inputMap(index) {
    if (!DATA.graph) { return sample.input; }
    while (DATA.layers[index].parents.length) { index = DATA.layers[index].parents[0]; }
    return sample.outputs[index];
  }

  /* Screen pixels per map cell: about 170 px per map, but never under one pixel per unit. */
  function cellSize(map) { return Math.max(1, Math.min(16, Math.floor(170 / Math.max(map.shape[0], map.shape[1])))); }

  function mapCanvas(map, channel, role) {
    var h = map.shape[0], w = map.shape[1], cell = cellSize(map);
    var base = document.createElement("canvas");
    base.width = w; base.height = h;
    var ctx = base.getContext("2d"), image = ctx.createImageData(w, h);
    for (var r = 0; r < h; r++) {
      for (var c = 0; c < w; c++) {
        var color = rgb(at(map, r, c, channel), map.vmax), k = 4 * (r * w + c);
        image.data[k] = color[0]; image.data[k + 1] = color[1]; image.data[k + 2] = color[2]; image.data[k + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
    var canvas = el("canvas", { width: w * cell, height: h * cell, "data-role": role, "data-channel": channel,
                                "data-cell": cell, "data-rows": h, "data-cols": w });
    canvas._base = base;
    paint(canvas, null);
    return canvas;
  }

  function paint(canvas, cells) {
    var ctx = canvas.getContext("2d"), cell = +canvas.dataset.cell;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(canvas._base, 0, 0, canvas.width, canvas.height);
    if (!cells) { return; }
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#111";
    ctx.fillStyle = "rgba(255, 176, 0, 0.35)";
    var outlineEach = cells.length <= 400 && cell >= 4;  // big fields: one outline around them all
    var bounds = [Infinity, Infinity, -Infinity, -Infinity];
    cells.forEach(function (box) {
      var x = box[1] * cell, y = box[0] * cell, bw = (box[3] - box[1] + 1) * cell, bh = (box[2] - box[0] + 1) * cell;
      ctx.fillRect(x, y, bw, bh);
      if (outlineEach) { ctx.strokeRect(x + 1, y + 1, bw - 2, bh - 2); }
      bounds = [Math.min(bounds[0], x), Math.min(bounds[1], y), Math.max(bounds[2], x + bw), Math.max(bounds[3], y + bh)];
    });
    if (!outlineEach && cells.length) { ctx.strokeRect(bounds[0], bounds[1], bounds[2] - bounds[0], bounds[3] - bounds[1]); }
  }

  function mapGroup(title, map, channels, role) {
    var group = el("div", { "class": "map-group", "data-role": role });
    group.appendChild(el("h3", {}, title + " \u2014 " + map.shape[0] + "\u00d7" + map.shape[1] + "\u00d7" + map.channels));
    var row = el("div", { "class": "map-row" });
    channels.forEach(function (ch) {
      var box = el("div", { "class": "map", "data-channel": ch });
      box.appendChild(mapCanvas(map, ch, role));
      box.appendChild(el("span", {}, t("channel") + " " + ch));
      row.appendChild(box);
    });
    group.appendChild(row);
    return group;
  }

  /* The leading channels drawn: at most MAX_SHOWN, fewer for big maps so a group stays about PIXEL_BUDGET px. */
  function shownChannels(map) {
    var area = map.shape[0] * map.shape[1] * Math.pow(cellSize(map), 2);
    return range(0, Math.max(1, Math.min(map.shape[2], MAX_SHOWN, Math.floor(PIXEL_BUDGET / area))) - 1);
  }

  function selectLayer(index) {
    state.layer = index; state.unit = null; state.pinned = false; state.highlight = null;
    renderPicker(); renderSummary(); renderExplanations(); renderExplorer();
  }

  function renderExplorer() {
    var maps = clear(document.getElementById("explorer-maps"));
    clear(document.getElementById("rf-readout")); clear(document.getElementById("sum-readout"));
    var side = clear(document.getElementById("layer-explanation"));
    if (state.layer === null) { return; }
    var layer = DATA.layers[state.layer];
    side.appendChild(explanationCard(DATA.explain[state.lang].layers[state.layer]));
    if (!sample) { maps.appendChild(el("p", { "class": "hint" }, t("no_sample"))); return; }
    if (!explorable(layer)) { maps.appendChild(el("p", { "class": "hint" }, t("no_spatial"))); return; }
    var out = sample.outputs[layer.index];
    var input = inputMap(layer.index), previous = previousMap(layer.index);
    maps.appendChild(mapGroup(t("input_image"), input, shownChannels(input), "input"));
    if (previous !== input) { maps.appendChild(mapGroup(t("previous"), previous, shownChannels(previous), "previous")); }
    var outputs = mapGroup(t("output") + " " + layer.name, out, shownChannels(out), "output");
    outputs.querySelectorAll(".map").forEach(function (m) { m.classList.add("output"); });
    maps.appendChild(outputs);
    outputs.querySelectorAll("canvas").forEach(function (canvas) {
      function unitAt(event) {
        var cell = +canvas.dataset.cell;
        return [+canvas.dataset.channel, Math.min(+canvas.dataset.rows - 1, Math.floor(event.offsetY / cell)),
                Math.min(+canvas.dataset.cols - 1, Math.floor(event.offsetX / cell))];
      }
      canvas.addEventListener("mousemove", function (event) { if (!state.pinned) { pickUnit.apply(null, unitAt(event)); } });
      canvas.addEventListener("click", function (event) { state.pinned = false; pickUnit.apply(null, unitAt(event)); state.pinned = true; });
    });
    document.getElementById("rf-readout").appendChild(el("p", { "class": "hint" }, t("pick_unit")));
  }

  /* Cells of layer `index`'s input read by the given output positions on one axis:
   * position*stride - pad_before + k*dilation for each kernel tap k, real (unpadded) cells only. */
  function windowAxis(index, positions, axis) {
    var a = DATA.layers[index].axes[axis], inside = {}, padded = 0;
    if (!a) { return { inside: positions.slice(), padded: 0 }; }
    positions.forEach(function (position) {
      for (var k = 0; k < a.kernel; k++) {
        var p = position * a.stride - a.pad_before + k * a.dilation;
        if (p >= 0 && p < a.input) { inside[p] = true; } else { padded++; }
      }
    });
    return { inside: Object.keys(inside).map(Number).sort(function (x, y) { return x - y; }), padded: padded };
  }

  /* The model-input cells one unit really reaches on one axis: its window, then each earlier layer's window
   * (in a graph model through every parent: a merge reaches the union of its branches). */
  function reachedAxis(index, unit, axis) {
    if (DATA.graph) { return reachedThrough(index, [unit], axis); }
    var positions = [unit];
    for (var k = index; k >= 0; k--) { positions = windowAxis(k, positions, axis).inside; }
    return positions;
  }
  function reachedThrough(index, positions, axis, memo) {
    memo = memo || {};
    var key = index + "|" + positions.join(",");   // residual blocks meet again: walk each branch once
    if (memo[key]) { return memo[key]; }
    var parents = DATA.layers[index].parents, union = {};
    positions = windowAxis(index, positions, axis).inside;
    if (!parents.length) { memo[key] = positions; return positions; }
    parents.forEach(function (p) { reachedThrough(p, positions, axis, memo).forEach(function (q) { union[q] = true; }); });
    memo[key] = Object.keys(union).map(Number).sort(function (x, y) { return x - y; });
    return memo[key];
  }

  function windowChannels(layer, channel, prev) {
    if (layer.kind !== "conv") { return [channel]; }
    var perGroup = prev.channels / layer.groups, group = Math.floor(channel / (layer.filters / layer.groups));
    return range(group * perGroup, (group + 1) * perGroup - 1);
  }

  function pickUnit(channel, row, col) {
    var layer = DATA.layers[state.layer], out = sample.outputs[layer.index], prev = previousMap(layer.index);
    var field = layer.field.map(function (f, axis) {
      var first = f.start + (axis === 0 ? row : col) * f.jump;
      return { first: first, last: first + f.size - 1 };
    });
    var wr = windowAxis(layer.index, [row], 0), wc = windowAxis(layer.index, [col], 1);
    var reached = [reachedAxis(layer.index, row, 0), reachedAxis(layer.index, col, 1)];
    var channels = windowChannels(layer, channel, prev);
    state.unit = [channel, row, col];
    state.highlight = {
      layer: layer.name, unit: [channel, row, col],
      input: { rows: reached[0], cols: reached[1], field_rows: [field[0].first, field[0].last],
               field_cols: [field[1].first, field[1].last] },
      previous: { rows: wr.inside, cols: wc.inside, channels: channels }
    };
    function cells(rows, cols) {
      var out = [];
      rows.forEach(function (r) { cols.forEach(function (c) { out.push([r, c, r, c]); }); });
      return out;
    }
    var windowCells = cells(wr.inside, wc.inside), fieldCells = cells(reached[0], reached[1]);
    document.querySelectorAll('canvas[data-role="input"]').forEach(function (canvas) { paint(canvas, fieldCells); });
    document.querySelectorAll('canvas[data-role="previous"]').forEach(function (canvas) {
      var used = channels.indexOf(+canvas.dataset.channel) >= 0;
      canvas.parentNode.classList.toggle("dim", !used);
      paint(canvas, used ? windowCells : null);
    });
    document.querySelectorAll('canvas[data-role="output"]').forEach(function (canvas) {
      paint(canvas, +canvas.dataset.channel === channel ? [[row, col, row, col]] : null);
    });
    renderReadout(layer, out, prev, wr, wc, channels, field);
  }

  function renderReadout(layer, out, prev, wr, wc, channels, field) {
    var unit = state.unit, box = clear(document.getElementById("rf-readout"));
    box.dataset.unit = unit.join(",");
    box.dataset.inputRows = state.highlight.input.rows.join(",");
    box.dataset.inputCols = state.highlight.input.cols.join(",");
    box.dataset.fieldRows = state.highlight.input.field_rows.join(",");
    box.dataset.fieldCols = state.highlight.input.field_cols.join(",");
    box.dataset.prevRows = wr.inside.join(",");
    box.dataset.prevCols = wc.inside.join(",");
    box.dataset.prevChannels = channels.join(",");
    box.appendChild(el("p", {}, t("unit") + " (" + t("channel") + " " + unit[0] + ", " + t("rows") + " " + unit[1] +
      ", " + t("cols") + " " + unit[2] + ")"));
    box.appendChild(el("p", { "class": "field" }, t("field_on_input") + ": " + t("rows") + " " + field[0].first + "\u2013" +
      field[0].last + ", " + t("cols") + " " + field[1].first + "\u2013" + field[1].last + " (" + t("size") + " " +
      layer.field[0].size + "\u00d7" + layer.field[1].size + ", " + t("jump") + " " + layer.field[0].jump + "\u00d7" +
      layer.field[1].jump + ", " + t("start") + " " + layer.field[0].start + "," + layer.field[1].start + ")"));
    var reachedRows = state.highlight.input.rows, reachedCols = state.highlight.input.cols;
    box.appendChild(el("p", {}, t("reached") + ": " + t("rows") + " " + spanText(reachedRows) + ", " + t("cols") +
      " " + spanText(reachedCols) + " (" + reachedRows.length * reachedCols.length + ")"));
    var padded = wr.padded * (wc.inside.length + wc.padded) + wc.padded * wr.inside.length;
    box.appendChild(el("p", {}, t("window_on_prev") + ": " + t("rows") + " [" + wr.inside.join(", ") + "], " +
      t("cols") + " [" + wc.inside.join(", ") + "], " + t("channels") + " " + channels[0] + "\u2013" +
      channels[channels.length - 1] + (padded ? "; " + padded + " " + t("in_padding") : "")));
    renderSum(layer, out, prev, wr, wc, channels);
  }

  function activate(name, z) {
    switch (name) {
      case "relu": return Math.max(0, z);
      case "linear": case null: case undefined: return z;
      case "sigmoid": return 1 / (1 + Math.exp(-z));
      case "tanh": return Math.tanh(z);
      default: return null;
    }
  }

  function renderSum(layer, out, prev, wr, wc, channels) {
    var box = clear(document.getElementById("sum-readout")), unit = state.unit;
    if (WINDOW_KINDS.indexOf(layer.kind) < 0) { return; }
    box.appendChild(el("h4", {}, t("sum_title")));
    var stored = unit[0] < out.shape[2] ? at(out, unit[1], unit[2], unit[0]) : null;
    var lines = [], result;
    if (channels[channels.length - 1] >= prev.shape[2]) { box.appendChild(el("p", {}, t("channels_cut"))); return; }
    if (layer.kind === "conv") {
      var w = weights[layer.index];
      if (!w) { box.appendChild(el("p", {}, t("no_weights"))); return; }
      var k = w.kernel, f = unit[0], perGroup = k.shape[2], filters = k.shape[3];
      var bias = w.bias ? w.bias.values[f] : 0, z = bias, terms = 0, a0 = layer.axes[0], a1 = layer.axes[1];
      lines.push("z = b + \u03a3 x\u00b7w");
      lines.push("b = " + fmt(bias));
      for (var ki = 0; ki < a0.kernel; ki++) {
        var r = unit[1] * a0.stride - a0.pad_before + ki * a0.dilation;
        for (var kj = 0; kj < a1.kernel; kj++) {
          var c = unit[2] * a1.stride - a1.pad_before + kj * a1.dilation;
          if (r < 0 || r >= prev.shape[0] || c < 0 || c >= prev.shape[1]) { continue; }
          for (var ci = 0; ci < perGroup; ci++) {
            var x = at(prev, r, c, channels[ci]), wv = k.values[((ki * a1.kernel + kj) * perGroup + ci) * filters + f];
            z += x * wv; terms++;
            if (terms <= MAX_TERMS) {
              lines.push("+ x[" + r + "," + c + "," + channels[ci] + "]\u00b7w[" + ki + "," + kj + "," + ci + "," + f + "] = " +
                fmt(x) + " \u00d7 " + fmt(wv));
            }
          }
        }
      }
      if (terms > MAX_TERMS) { lines.push("\u2026 " + (terms - MAX_TERMS) + " " + t("terms_more")); }
      lines.push("z = " + fmt(z));
      var y = activate(layer.activation, z);
      if (y !== null && layer.activation && layer.activation !== "linear") { lines.push(layer.activation + "(z) = " + fmt(y)); }
      result = z;
    } else {
      var values = [];
      wr.inside.forEach(function (r) { wc.inside.forEach(function (c) { values.push(at(prev, r, c, unit[0])); }); });
      var total = values.reduce(function (s, v) { return s + v; }, 0);
      result = layer.kind === "max_pool" ? Math.max.apply(null, values) : total / values.length;
      lines.push((layer.kind === "max_pool" ? "max" : "mean") + "(" + values.map(fmt).join(", ") + ") = " + fmt(result));
      lines.push(t(layer.kind === "max_pool" ? "max_of" : "mean_of"));
    }
    if (stored !== null) { lines.push(t("stored") + " y = " + fmt(stored)); }
    state.highlight.sum = result; state.highlight.stored = stored;
    box.dataset.sum = String(result);
    box.appendChild(el("div", { "class": "terms" }, lines.join("\n")));
  }

  function setLang(lang) {
    if (!I18N[lang]) { throw new Error("convscope report: unknown language " + lang); }
    state.lang = lang;
    var unit = state.unit, pinned = state.pinned;
    renderLabels(); renderSummary(); renderExplanations(); renderPicker(); renderExplorer();
    if (unit) { pickUnit(unit[0], unit[1], unit[2]); state.pinned = pinned; }
  }

  document.querySelectorAll(".lang-switch button").forEach(function (button) {
    button.addEventListener("click", function () { setLang(button.dataset.lang); });
  });
  window.convscopeReport = { state: state, data: DATA, selectLayer: selectLayer, pickUnit: pickUnit, setLang: setLang };

  renderLabels(); renderSummary(); renderExplanations(); renderPicker();
  var first = DATA.layers.filter(function (layer) { return WINDOW_KINDS.indexOf(layer.kind) >= 0 && explorable(layer); })[0]
    || DATA.layers[0];
  selectLayer(first.index);
})();
