/* convscope report: prediction, explorer, summary, explanations (en/ko), filters, feature maps, curves.
 * Everything it shows comes from the JSON in #report-data, written by convscope.viz.report;
 * the window and field arithmetic uses the per-layer numbers computed in Python
 * (convscope.models.analysis, i.e. ops/shapes.py), never its own padding rules. */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var WINDOW_KINDS = ["conv", "max_pool", "avg_pool"];
  var PER_PAGE = 16;          // channels per page of a map group
  var MAX_TERMS = 120;
  var MAX_PADDING = 12;       // padding cells drawn around the input at most
  var FILTER_ROWS = 8, FILTER_COLS = 32;   // kernels per page of a filter figure
  var MANY_LAYERS = 40;       // from here on: collapsible blocks, a scrolling picker, lazy feature maps
  var NARROW = "(max-width: 899px)";

  var I18N = {
    en: {
      title: "convscope report", summary: "Summary", explorer: "Explorer: receptive fields and sums",
      explorer_hint: "Pick a layer, then tap, click or hover over an output unit (or focus a map and use the arrow keys): its window on the previous feature maps and its receptive field on the input light up, with the sum z = b + \u03a3 x\u00b7w in real numbers.",
      explanations: "Explanations", diagram: "Diagram", diagram_hint: "Click a box (or focus it and press Enter) to open that layer in the explorer.",
      filters: "Filters (one tile per 2-D kernel)",
      filters_hint: "Rows: input channels per group; columns: filters. Blue is negative, white zero, red positive; one scale per layer. Hover over a tile for its weights.",
      feature_maps: "Feature maps of the sample", history: "Training curves", prediction: "Prediction",
      col_layer: "Layer (type)", col_output: "Output shape", col_params: "Param #", col_kernels: "2-D kernels",
      col_macs: "MACs", col_field: "Receptive field", total: "Total params",
      input_image: "Model input (the sample)", previous: "Input of this layer (previous feature maps)",
      output: "Output of", channel: "ch", no_sample: "Pass sample= to report() to see the feature maps here.",
      no_spatial: "This layer has no spatial output: every unit sees the whole input.",
      one_axis: "This layer's output runs along one axis (a sequence); the explorer draws 2-D feature maps, so see its receptive field in the table and the explanation.",
      pick_unit: "Click or hover over an output unit.", unit: "Unit", field_on_input: "Receptive field on the input",
      rows: "rows", cols: "cols", window_on_prev: "Window on the previous maps", channels: "channels",
      in_padding: "window cells in padding (zeros)", sum_title: "The sum for this unit", stored: "stored output",
      terms_more: "more terms", max_of: "max of the real cells of the window",
      mean_of: "mean of the real cells of the window",
      no_weights: "The kernel is too large to embed, so the sum is not shown.",
      channels_cut: "Some input channels were not embedded (size cap), so the sum is not shown.",
      size: "size", jump: "step", start: "start", none: "\u2014",
      reached: "Input cells it really reads (highlighted; padding excluded)",
      field_padding: "of the field lie in the padding (hatched)",
      keras_summary: "model.summary(), as Keras prints it", col_connected: "Connected to", call: "call",
      shown_of: "channels {a}\u2013{b} of {m} shown", embedded_of: "{n} of {m} channels embedded in this page",
      prev: "previous", next: "next", search_layer: "Search layers by name",
      predicted: "Predicted", probability: "probability", true_label: "True label", correct: "correct",
      wrong: "wrong", top_k: "Top {k}", class_word: "class", from_logits: "softmax of the logits (the model outputs logits)",
      sample_word: "Sample", gradcam: "Grad-CAM for the predicted class over the input",
      terms_title: "Largest terms x\u00b7w of {layer} for class {cls} (z = {z}, {n} terms)",
      channel_sums: "Sum of the terms per channel of {layer}",
      cells_of: "x[row, col, channel]: a cell of {layer}'s feature maps, through Flatten",
      chain_title: "Largest contributions x\u00b7\u2202z/\u2202x of the inputs of {first} to z of class {cls} in {layer} (through {through}, ReLUs as at this sample; z = {z}, terms sum to {sum} without the hidden biases; {n} terms)", show_in_explorer: "show in explorer",
      vector_title: "Output values of this layer", vector_pick: "Click a bar for its sum.",
      values: "values", largest: "largest", largest_of: "the {k} largest of {n}", kernels_of: "{i} \u00d7 {f} = {n} kernels of {kh}\u00d7{kw}",
      filter_page: "inputs {a}\u2013{b} of {n}, filters {c}\u2013{d} of {m}", weight: "weight",
      value: "value", scale_seq: "scale from 0 (data \u2265 0)", scale_div: "scale around 0",
      filter_word: "filter", input_word: "in", block_of: "{n} layers", no_filters: "No convolution kernel is small enough to embed.",
      open_maps: "show", float16: "(this large model's page stores values as float16: about 3 significant digits)"
    },
    ko: {
      title: "convscope 보고서", summary: "모델 요약", explorer: "탐색기: 수용 영역과 합",
      explorer_hint: "층을 고른 뒤 출력 유닛을 탭하거나 클릭하거나 마우스를 올려 보세요(맵에 초점을 두고 화살표 키를 써도 됩니다). 이전 특성 맵 위의 창과 입력 위의 수용 영역이 강조되고, 실제 숫자로 z = b + \u03a3 x\u00b7w 를 계산해 보여 줍니다.",
      explanations: "층별 설명", diagram: "모델 구조도", diagram_hint: "상자를 클릭하면(또는 초점을 두고 Enter) 그 층이 탐색기에 열립니다.",
      filters: "필터 (2차원 커널마다 한 칸)",
      filters_hint: "행은 그룹당 입력 채널, 열은 필터입니다. 파란색은 음수, 흰색은 0, 빨간색은 양수이며 층마다 하나의 색 척도를 씁니다. 칸에 마우스를 올리면 가중치가 보입니다.",
      feature_maps: "샘플의 특성 맵", history: "학습 곡선", prediction: "예측",
      col_layer: "층 (종류)", col_output: "출력 형태", col_params: "파라미터 수",
      col_kernels: "2차원 커널 수", col_macs: "곱셈-누산(MAC)", col_field: "수용 영역",
      total: "전체 파라미터", input_image: "모델 입력 (샘플)",
      previous: "이 층의 입력 (이전 특성 맵)", output: "출력:", channel: "채널",
      no_sample: "report()에 sample=을 넘기면 여기에서 특성 맵을 볼 수 있습니다.",
      no_spatial: "이 층의 출력에는 공간 축이 없어서, 모든 유닛이 입력 전체를 봅니다.",
      one_axis: "이 층의 출력은 한 축(시퀀스)을 따라 나옵니다. 탐색기는 2차원 특성 맵을 그리므로, 수용 영역은 표와 설명에서 보세요.",
      pick_unit: "출력 유닛을 클릭하거나 마우스를 올려 보세요.", unit: "유닛",
      field_on_input: "입력에서의 수용 영역", rows: "행", cols: "열",
      window_on_prev: "이전 특성 맵 위의 창", channels: "채널",
      in_padding: "패딩(0) 위에 놓인 창의 칸", sum_title: "이 유닛의 합",
      stored: "저장된 출력", terms_more: "개 항 더", max_of: "창 안 실제 칸들의 최댓값",
      mean_of: "창 안 실제 칸들의 평균",
      no_weights: "커널이 너무 커서 보고서에 넣지 않았고, 그래서 합은 보여 주지 않습니다.",
      channels_cut: "크기 제한으로 일부 입력 채널을 넣지 않아 합은 보여 주지 않습니다.",
      size: "크기", jump: "간격", start: "시작", none: "\u2014",
      reached: "실제로 읽는 입력 칸 (강조 표시, 패딩 제외)",
      field_padding: "칸이 패딩 위에 있습니다 (빗금)",
      keras_summary: "Keras와 같은 model.summary() 출력",
      col_connected: "연결된 입력", call: "호출",
      shown_of: "채널 {a}\u2013{b} 표시 (전체 {m}개)", embedded_of: "채널 {m}개 중 {n}개만 이 페이지에 담았습니다",
      prev: "이전", next: "다음", search_layer: "층 이름으로 찾기",
      predicted: "예측", probability: "확률", true_label: "정답", correct: "맞음", wrong: "틀림",
      top_k: "상위 {k}개", class_word: "클래스", from_logits: "로짓의 소프트맥스 (모델이 로짓을 출력함)",
      sample_word: "샘플", gradcam: "예측한 클래스의 Grad-CAM (입력 위)",
      terms_title: "{layer}에서 클래스 {cls}에 대한 가장 큰 항 x\u00b7w (z = {z}, 항 {n}개)",
      channel_sums: "{layer}의 채널별 항의 합",
      cells_of: "x[행, 열, 채널]: Flatten을 거치기 전 {layer} 특성 맵의 한 칸",
      chain_title: "{first}의 입력이 {layer}의 클래스 {cls} z에 주는 가장 큰 기여 x\u00b7\u2202z/\u2202x ({through}를 거침, ReLU는 이 샘플 그대로; z = {z}, 숨은 층 편향을 뺀 항의 합 {sum}; 항 {n}개)", show_in_explorer: "탐색기에서 보기",
      vector_title: "이 층의 출력 값", vector_pick: "막대를 클릭하면 그 합이 보입니다.",
      values: "값", largest: "가장 큰 값", largest_of: "{n}개 중 가장 큰 {k}개", kernels_of: "{i} \u00d7 {f} = 커널 {n}개 ({kh}\u00d7{kw})",
      filter_page: "입력 {a}\u2013{b} / {n}, 필터 {c}\u2013{d} / {m}", weight: "가중치",
      value: "값", scale_seq: "0부터의 척도 (값 \u2265 0)", scale_div: "0 중심 척도",
      filter_word: "필터", input_word: "입력", block_of: "층 {n}개", no_filters: "보고서에 넣을 만큼 작은 합성곱 커널이 없습니다.",
      open_maps: "보기", float16: "(큰 모델이라 이 페이지는 값을 float16으로 담았습니다: 유효 숫자 약 3자리)"
    }
  };

  var state = { lang: DATA.lang, layer: null, unit: null, pinned: false, highlight: null, sample: 0,
                pages: {}, openBlocks: {}, search: "" };

  // -- small helpers ---------------------------------------------------------------------------
  function t(key, values) {
    var text = I18N[state.lang][key];
    Object.keys(values || {}).forEach(function (k) { text = text.split("{" + k + "}").join(String(values[k])); });
    return text;
  }
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
  function pct(p) { return (100 * p).toFixed(p >= 0.999995 || p < 0.00001 ? 0 : (p >= 0.1 ? 1 : 2)) + "%"; }
  function grouped(n) { return Number(n).toLocaleString("en-US"); }
  /* An embedded array: float32, float16 ("f2", large models) or uint8 k/255 ("u8"), decoded on first use. */
  function decode(entry) {
    if (!entry) { return null; }
    var out = { shape: entry.shape, channels: entry.channels, vmax: entry.vmax,
                vmin: entry.vmin === undefined ? -entry.vmax : entry.vmin };
    var cached = null;
    Object.defineProperty(out, "values", { get: function () {
      if (!cached) { cached = bytesToValues(entry); }
      return cached;
    } });
    return out;
  }
  function bytesToValues(entry) {
    var bin = atob(entry.data), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    if (entry.dtype === "u8") { return Float32Array.from(bytes, function (b) { return b / 255; }); }
    if (entry.dtype !== "f2") { return new Float32Array(bytes.buffer); }
    var half = new Uint16Array(bytes.buffer), values = new Float32Array(half.length);
    for (var k = 0; k < half.length; k++) {
      var h = half[k], sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
      values[k] = sign * (e === 0 ? f * Math.pow(2, -24) : e === 31 ? (f ? NaN : Infinity) : (1 + f / 1024) * Math.pow(2, e - 15));
    }
    return values;
  }
  function at(map, r, c, ch) { return map.values[(r * map.shape[1] + c) * map.shape[2] + ch]; }
  function spanText(list) { return list.length ? list[0] + "\u2013" + list[list.length - 1] : t("none"); }
  function range(lo, hi) { var out = []; for (var i = lo; i <= hi; i++) { out.push(i); } return out; }
  function className(k) { return DATA.class_names ? DATA.class_names[k] : String(k); }
  function narrow() { return window.matchMedia(NARROW).matches; }

  // -- colour scales: sequential for data >= 0, diverging around 0 ----------------------------------
  var SEQ = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
  var DIV_NEG = [33, 102, 172], DIV_ZERO = [247, 247, 247], DIV_POS = [178, 24, 43];
  function scaleOf(lo, hi) {
    if (lo >= 0) { return { kind: "seq", lo: 0, hi: hi > 0 ? hi : 1 }; }
    var m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    return { kind: "div", lo: -m, hi: m };
  }
  function colour(value, scale) {
    if (!isFinite(value)) { return [255, 0, 255]; }
    if (scale.kind === "seq") {
      var f = Math.max(0, Math.min(1, value / scale.hi)) * (SEQ.length - 1), i = Math.min(SEQ.length - 2, Math.floor(f)), g = f - i;
      return SEQ[i].map(function (v, k) { return Math.round(v + (SEQ[i + 1][k] - v) * g); });
    }
    var x = Math.max(-1, Math.min(1, value / scale.hi)), end = x >= 0 ? DIV_POS : DIV_NEG, a = Math.abs(x);
    return DIV_ZERO.map(function (z, k) { return Math.round(z + (end[k] - z) * a); });
  }
  function colourBar(scale, what) {
    var box = el("div", { "class": "colorbar", "data-scale": scale.kind });
    var canvas = el("canvas", { width: 140, height: 10 }), ctx = canvas.getContext("2d");
    for (var i = 0; i < 140; i++) {
      var c = colour(scale.lo + (scale.hi - scale.lo) * i / 139, scale);
      ctx.fillStyle = "rgb(" + c.join(",") + ")"; ctx.fillRect(i, 0, 1, 10);
    }
    box.appendChild(el("span", {}, fmt(scale.lo)));
    box.appendChild(canvas);
    box.appendChild(el("span", {}, fmt(scale.hi)));
    box.appendChild(el("span", {}, "(" + what + "; " + t(scale.kind === "seq" ? "scale_seq" : "scale_div") + ")"));
    return box;
  }

  // -- the tooltip: a value on hover -----------------------------------------------------------------
  var tooltip = document.getElementById("tooltip");
  function showTip(event, text) {
    tooltip.textContent = text; tooltip.hidden = false;
    tooltip.style.left = Math.min(event.clientX + 12, window.innerWidth - tooltip.offsetWidth - 4) + "px";
    tooltip.style.top = (event.clientY + 14) + "px";
  }
  function hideTip() { tooltip.hidden = true; }

  var samples = [DATA.sample].concat(DATA.more_samples || []).filter(Boolean).map(function (s) {
    return { input: decode(s.input), outputs: s.outputs.map(decode), prediction: s.prediction || null,
             vectors: (s.vectors || []).map(decode),
             gradcam: decode(s.gradcam) };
  });
  var sample = samples.length ? samples[0] : null;
  var weights = DATA.layers.map(function (layer) {
    return layer.weights ? { kernel: decode(layer.weights.kernel), bias: decode(layer.weights.bias) } : null;
  });
  var many = DATA.layers.length > MANY_LAYERS;

  // -- static parts: labels, summary, explanations ------------------------------------------------
  function renderLabels() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach(function (node) { node.textContent = t(node.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (node) {
      node.placeholder = t(node.dataset.i18nPlaceholder); node.setAttribute("aria-label", node.placeholder);
    });
    document.getElementById("model-name").textContent = DATA.model.name;
    document.querySelector("#keras-summary pre").textContent = DATA.keras_summary;
    document.getElementById("keras-summary").hidden = !DATA.keras_summary;
    document.querySelectorAll(".lang-switch button").forEach(function (b) {
      b.classList.toggle("active", b.dataset.lang === state.lang);
      b.setAttribute("aria-pressed", b.dataset.lang === state.lang ? "true" : "false");
    });
    renderPictures();
  }

  /* The diagram and the curves: the SVG of the chosen language, from its <template>. */
  function renderPictures() {
    translateDiagram();
    ["history"].forEach(function (id) {
      var section = document.getElementById(id), holder = section.querySelector(".picture");
      var template = section.querySelector('template[data-lang="' + state.lang + '"]');
      clear(holder);
      if (template) { holder.appendChild(document.importNode(template.content, true)); }
      section.classList.toggle("empty", !holder.querySelector("svg"));
    });
    wireDiagram();
  }

  /* The diagram's detail lines ("Input shape: ...") in the chosen language; names and shapes stay. */
  function translateDiagram() {
    var words = DATA.diagram_words, to = words[state.lang];
    document.getElementById("diagram").classList.toggle("empty", !document.querySelector("#diagram svg"));
    document.querySelectorAll("#diagram svg text:not(.layer-title)").forEach(function (text) {
      var line = text.textContent;
      Object.keys(words).forEach(function (lang) {
        var from = words[lang];
        ["input_shape", "output_shape", "activation", "trainable", "dtype"].forEach(function (key) {
          if (line.indexOf(from[key]) !== 0) { return; }
          var rest = line.slice(from[key].length);
          if (key === "trainable") { rest = rest === from.yes ? to.yes : rest === from.no ? to.no : rest; }
          if (rest === from.multiple) { rest = to.multiple; }
          line = to[key] + rest;
        });
      });
      text.textContent = line;
    });
  }

  function wireDiagram() {
    var byName = {};
    DATA.layers.forEach(function (layer) { if (!(layer.name in byName)) { byName[layer.name] = layer.index; } });
    document.querySelectorAll("#diagram svg text.layer-title").forEach(function (text) {
      var title = text.textContent, name = title.slice(0, title.lastIndexOf(" ("));
      var rect = text.previousElementSibling;
      if (!(name in byName) || !rect || !rect.classList.contains("layer")) { return; }
      var index = byName[name];
      rect.dataset.layer = name;
      rect.setAttribute("tabindex", "0"); rect.setAttribute("role", "button");
      rect.setAttribute("aria-label", title);
      rect.classList.toggle("selected", state.layer !== null && DATA.layers[state.layer].name === name);
      if (rect.dataset.wired) { return; }
      rect.dataset.wired = "1";
      function go() { selectLayer(index); document.getElementById("explorer").scrollIntoView({ block: "start" }); }
      rect.addEventListener("click", go);
      rect.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
    });
  }

  function fieldText(layer) {
    if (!layer.field || !layer.field.length) { return t("none"); }   // one axis (Conv1D) or two
    return layer.field.map(function (f) { return f.size; }).join("\u00d7") + " (" + t("jump") + " " +
      layer.field.map(function (f) { return f.jump; }).join("\u00d7") + ")";
  }

  /* Large models: consecutive layers sharing a name prefix ("conv2_block1") form a collapsible block. */
  function blockKey(name) {
    var parts = name.split("_");
    return parts.length >= 3 ? parts[0] + "_" + parts[1] : parts[0];
  }
  function blocks() {
    var out = [];
    DATA.layers.forEach(function (layer) {
      var key = blockKey(layer.name), last = out[out.length - 1];
      if (last && last.key === key) { last.layers.push(layer); } else { out.push({ key: key, layers: [layer] }); }
    });
    return out;
  }
  function matches(layer) { return !state.search || layer.name.toLowerCase().indexOf(state.search) >= 0; }

  function renderSummary() {
    var table = document.getElementById("summary-table");
    var head = clear(table.tHead), body = clear(table.tBodies[0]), foot = clear(table.tFoot);
    var row = head.insertRow(), columns = DATA.graph ? 7 : 6;
    [["col_layer", ""], ["col_output", ""], ["col_params", "num"], ["col_kernels", "num"], ["col_macs", "num"],
     ["col_field", ""]].concat(DATA.graph ? [["col_connected", ""]] : [])
      .forEach(function (c) { row.appendChild(el("th", { "class": c[1] }, t(c[0]))); });
    var total = 0;
    DATA.layers.forEach(function (layer) { if (!layer.call || layer.call === 1) { total += layer.params; } });
    blocks().forEach(function (block) {
      var collapsible = many && block.layers.length >= 3;
      var open = !collapsible || state.openBlocks[block.key] || !!state.search ||
        block.layers.some(function (l) { return l.index === state.layer; });
      if (collapsible) {
        var tr = el("tr", { "class": "block", "data-block": block.key }), td = el("td", { colspan: columns });
        var button = el("button", { type: "button", "aria-expanded": open ? "true" : "false" },
          (open ? "\u25be " : "\u25b8 ") + block.key + " \u2014 " + t("block_of", { n: block.layers.length }));
        button.addEventListener("click", function () { state.openBlocks[block.key] = !open; renderSummary(); });
        td.appendChild(button); tr.appendChild(td); body.appendChild(tr);
      }
      if (!open) { return; }
      block.layers.forEach(function (layer) {
        if (!matches(layer)) { return; }
        var tr = el("tr", { "data-layer": layer.name, tabindex: "0" });
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
        tr.addEventListener("keydown", function (e) { if (e.key === "Enter") { selectLayer(layer.index); } });
        body.appendChild(tr);
      });
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
    picker.classList.toggle("many", many);
    DATA.layers.forEach(function (layer) {
      var button = el("button", { type: "button", role: "tab", "data-layer": layer.name, "data-index": layer.index,
        "aria-selected": state.layer === layer.index ? "true" : "false" }, layerLabel(layer));
      if (DATA.graph) { button.dataset.call = layer.call; }
      if (!explorable(layer) && !vectorOf(layer) && !valuesOf(layer)) { button.classList.add("flat"); }
      button.classList.toggle("active", state.layer === layer.index);
      button.hidden = !matches(layer);
      button.addEventListener("click", function () { selectLayer(layer.index); });
      picker.appendChild(button);
    });
    var sp = clear(document.getElementById("sample-picker"));
    if (samples.length > 1) {
      samples.forEach(function (s, k) {
        var b = el("button", { type: "button", "data-sample": k }, t("sample_word") + " " + (k + 1));
        b.classList.toggle("active", k === state.sample);
        b.addEventListener("click", function () { pickSample(k); });
        sp.appendChild(b);
      });
    }
  }

  function pickSample(k) {
    state.sample = k; sample = samples[k];
    var unit = state.unit, pinned = state.pinned;
    renderPicker(); renderExplorer(); renderFeatureMaps();
    if (unit && explorable(DATA.layers[state.layer])) { pickUnit(unit[0], unit[1], unit[2], pinned, true); state.pinned = pinned; }
  }

  // -- the prediction -----------------------------------------------------------------------------
  function renderPrediction() {
    var section = document.getElementById("prediction"), cards = clear(document.getElementById("prediction-cards"));
    var any = false;
    samples.forEach(function (s, k) {
      var p = s.prediction;
      if (!p) { return; }
      any = true;
      var card = el("article", { "class": "prediction", "data-sample": k, "data-predicted": p.predicted,
                                 "data-probability": p.probs[p.predicted] });
      if (samples.length > 1) { card.appendChild(el("h3", {}, t("sample_word") + " " + (k + 1))); }
      var thumb = el("div", { "class": "thumb" });
      if (s.input) {
        var scale = scaleOf(s.input.vmin, s.input.vmax);
        thumb.appendChild(imageCanvas(s.input, 0, scale, 96, null));
        if (s.gradcam) {
          var fig = el("figure", { "class": "gradcam" });
          fig.appendChild(imageCanvas(s.input, 0, scale, 96, s.gradcam));
          fig.appendChild(el("figcaption", { "class": "legend" }, t("gradcam")));
          thumb.appendChild(fig);
        }
      }
      card.appendChild(thumb);
      var verdict = el("p", { "class": "verdict" }, t("predicted") + ": " + className(p.predicted) + " (" +
        t("probability") + " " + pct(p.probs[p.predicted]) + ")");
      if (p.label !== null && p.label !== undefined) {
        verdict.appendChild(document.createTextNode(" \u2014 " + t("true_label") + ": " + className(p.label) + " (" +
          t(p.label === p.predicted ? "correct" : "wrong") + ")"));
        verdict.classList.toggle("wrong", p.label !== p.predicted);
      }
      card.appendChild(verdict);
      var shown = p.top.slice();
      if (p.label !== null && p.label !== undefined && shown.indexOf(p.label) < 0 && p.label < p.probs.length) { shown.push(p.label); }
      card.appendChild(el("div", { "class": "legend" }, t("top_k", { k: p.top.length }) +
        (p.source.indexOf("logit") >= 0 ? " \u2014 " + t("from_logits") : "")));
      var bars = el("ul", { "class": "bars" });
      shown.forEach(function (c) {
        var li = el("li", { "data-class": c }), bar = el("span", { "class": "bar" }), fill = el("span");
        fill.style.width = (100 * p.probs[c]).toFixed(2) + "%";
        bar.appendChild(fill);
        li.appendChild(el("span", {}, className(c))); li.appendChild(bar); li.appendChild(el("span", { "class": "pct" }, pct(p.probs[c])));
        li.classList.toggle("top", c === p.predicted); li.classList.toggle("truth", c === p.label);
        bars.appendChild(li);
      });
      card.appendChild(bars);
      if (p.terms) { card.appendChild(termsBlock(p.terms, k)); }
      cards.appendChild(card);
    });
    section.classList.toggle("empty", !any);
  }

  function termsBlock(terms, k) {
    var layer = DATA.layers[terms.layer];
    var box = el("details", { "class": "dense-terms" });
    box.open = !narrow();
    box.appendChild(el("summary", {}, terms.through ?
      t("chain_title", { first: DATA.layers[terms.first].name, layer: layer.name, cls: className(terms.unit), z: fmt(terms.z),
                         sum: fmt(terms.sum), n: grouped(terms.count), through: terms.through.join(" \u2192 ") }) :
      t("terms_title", { layer: layer.name, cls: className(terms.unit), z: fmt(terms.z), n: grouped(terms.count) })));
    var list = el("ol", { "class": "terms-list" });
    var source = terms.map_layer !== undefined ? DATA.layers[terms.map_layer] : null;
    if (source && !terms.pooled) { box.appendChild(el("p", { "class": "legend" }, t("cells_of", { layer: source.name }))); }
    terms.top.forEach(function (item) {
      var li = el("li", {}), where = item.row === undefined ? "x[" + item.i + "]" : terms.pooled ?
        "x[" + item.i + "] = " + (terms.pooled === "global_max_pool" ? "max" : "mean") + "(" + source.name + " " +
          t("channel") + " " + item.channel + ")" :
        "x[" + item.row + "," + item.col + "," + item.channel + "]";
      li.appendChild(document.createTextNode(where + (terms.through ? " \u00b7 \u2202z/\u2202x = " : " \u00b7 w = ") + fmt(item.x) +
        " \u00d7 " + fmt(item.w) + " = " + fmt(item.term) + " "));
      if (source && explorable(source)) {
        var b = el("button", { type: "button", "data-layer": source.name }, t("show_in_explorer"));
        b.addEventListener("click", function () {
          if (k !== state.sample) { pickSample(k); }
          state.pages["out" + source.index] = Math.floor(item.channel / PER_PAGE);   // the page showing it
          selectLayer(source.index);
          var canvas = document.querySelector('#explorer-maps canvas[data-role="output"][data-channel="' + item.channel + '"]');
          if (canvas) { canvas.scrollIntoView({ block: "center" }); }
          pickUnit(item.channel, item.row, item.col, true);
          state.pinned = true;
        });
        li.appendChild(b);
      }
      list.appendChild(li);
    });
    box.appendChild(list);
    if (terms.channels && source) {
      box.appendChild(el("h4", {}, t("channel_sums", { layer: source.name })));
      box.appendChild(el("p", { "class": "legend" }, terms.channels.map(function (c) {
        return t("channel") + " " + c.channel + ": " + fmt(c.sum);
      }).join(", ")));
    }
    return box;
  }

  /* A small picture of channel `ch` of a map (the sample), optionally with a heat map laid over it. */
  function imageCanvas(map, ch, scale, size, heat) {
    var h = map.shape[0], w = map.shape[1], cell = Math.max(1, Math.floor(size / Math.max(h, w)));
    var canvas = el("canvas", { width: w * cell, height: h * cell }), ctx = canvas.getContext("2d");
    var rgbImage = map.shape[2] === 3 && map.vmin >= 0;
    for (var r = 0; r < h; r++) {
      for (var c = 0; c < w; c++) {
        var col;
        if (rgbImage) {
          col = [0, 1, 2].map(function (k) { return Math.round(255 * Math.max(0, at(map, r, c, k)) / (map.vmax > 1 ? 255 : 1)); });
        } else { col = colour(at(map, r, c, ch), scale); }
        if (heat) {
          var hr = Math.min(heat.shape[0] - 1, Math.floor(r * heat.shape[0] / h)), hc = Math.min(heat.shape[1] - 1, Math.floor(c * heat.shape[1] / w));
          var v = Math.max(0, Math.min(1, heat.values[hr * heat.shape[1] + hc] / (heat.vmax || 1)));
          col = col.map(function (x, k) { return Math.round(x * (1 - 0.55 * v) + [255, 80, 0][k] * 0.55 * v); });
        }
        ctx.fillStyle = "rgb(" + col.join(",") + ")"; ctx.fillRect(c * cell, r * cell, cell, cell);
      }
    }
    canvas.addEventListener("mousemove", function (e) {
      var r = Math.min(h - 1, Math.floor(e.offsetY / cell)), c = Math.min(w - 1, Math.floor(e.offsetX / cell));
      showTip(e, "[" + r + "," + c + "] = " + fmt(at(map, r, c, ch)));
    });
    canvas.addEventListener("mouseleave", hideTip);
    return canvas;
  }

  // -- the explorer ---------------------------------------------------------------------------------
  function explorable(layer) {
    return !!(sample && layer.field && layer.field.length === 2 && sample.outputs[layer.index] && previousMap(layer.index));
  }
  function vectorOf(layer) { return sample && sample.prediction && layer.index === DATA.layers.length - 1 ? sample.prediction : null; }
  function valuesOf(layer) { return sample && sample.vectors[layer.index] ? sample.vectors[layer.index] : null; }
  /* The vector a layer reads (the previous row's 1-D output), or null. */
  function inputVector(index) {
    var prev = DATA.graph ? (DATA.layers[index].parents.length ? DATA.layers[index].parents[0] : null) : index - 1;
    return prev === null || prev < 0 ? null : sample.vectors[prev] || null;
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

  /* Screen pixels per map cell: about 170 px per map (less on a phone), never under one pixel per unit. */
  function cellSize(map) {
    var room = narrow() ? 150 : 170;
    return Math.max(1, Math.min(16, Math.floor(room / Math.max(map.shape[0], map.shape[1]))));
  }

  /* Padding cells drawn around the model input for the selected layer: how far its fields reach past the edges. */
  function paddingCells(layer) {
    if (!layer || !layer.field) { return 0; }
    var most = 0;
    layer.field.forEach(function (f, axis) {
      var outLen = layer.output_shape[1 + axis], inLen = DATA.model.input_shape[1 + axis];
      if (typeof outLen !== "number" || typeof inLen !== "number") { return; }
      most = Math.max(most, -f.start, f.start + (outLen - 1) * f.jump + f.size - inLen);
    });
    return Math.max(0, Math.min(MAX_PADDING, most));
  }

  function mapCanvas(map, channel, role, scale, margin) {
    var h = map.shape[0], w = map.shape[1], cell = cellSize(map), m = margin || 0;
    var base = document.createElement("canvas");
    base.width = w + 2 * m; base.height = h + 2 * m;
    var ctx = base.getContext("2d"), image = ctx.createImageData(w + 2 * m, h + 2 * m);
    for (var r = -m; r < h + m; r++) {
      for (var c = -m; c < w + m; c++) {
        var inside = r >= 0 && r < h && c >= 0 && c < w, k = 4 * ((r + m) * (w + 2 * m) + c + m);
        var color = inside ? colour(at(map, r, c, channel), scale) : ((r + c) % 2 ? [226, 226, 226] : [240, 240, 240]);
        image.data[k] = color[0]; image.data[k + 1] = color[1]; image.data[k + 2] = color[2]; image.data[k + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
    var canvas = el("canvas", { width: (w + 2 * m) * cell, height: (h + 2 * m) * cell, "data-role": role,
      "data-channel": channel, "data-cell": cell, "data-rows": h, "data-cols": w, "data-margin": m });
    canvas._base = base;
    canvas.addEventListener("mousemove", function (event) {
      var r = Math.floor(event.offsetY / cell) - m, c = Math.floor(event.offsetX / cell) - m;
      if (r >= 0 && r < h && c >= 0 && c < w) {
        showTip(event, t("channel") + " " + channel + " [" + r + "," + c + "] = " + fmt(at(map, r, c, channel)));
      } else { showTip(event, "0 (padding)"); }
    });
    canvas.addEventListener("mouseleave", hideTip);
    paint(canvas, null);
    return canvas;
  }

  /* The highlight: a translucent fill on the cells read (their pixels stay visible), one thin outline around
   * them, and the part of the field that lies in the padding hatched. */
  function paint(canvas, cells, field) {
    var ctx = canvas.getContext("2d"), cell = +canvas.dataset.cell, m = +canvas.dataset.margin || 0;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(canvas._base, 0, 0, canvas.width, canvas.height);
    if (!cells) { return; }
    var bounds = [Infinity, Infinity, -Infinity, -Infinity];
    ctx.fillStyle = "rgba(255, 176, 0, 0.28)";
    cells.forEach(function (box) {
      var x = (box[1] + m) * cell, y = (box[0] + m) * cell, bw = (box[3] - box[1] + 1) * cell, bh = (box[2] - box[0] + 1) * cell;
      ctx.fillRect(x, y, bw, bh);
      bounds = [Math.min(bounds[0], x), Math.min(bounds[1], y), Math.max(bounds[2], x + bw), Math.max(bounds[3], y + bh)];
    });
    if (field) {   // [first row, last row, first col, last col], padding included
      var h = +canvas.dataset.rows, w = +canvas.dataset.cols;
      var fr0 = Math.max(-m, field[0]), fr1 = Math.min(h - 1 + m, field[1]), fc0 = Math.max(-m, field[2]), fc1 = Math.min(w - 1 + m, field[3]);
      ctx.save();
      ctx.beginPath(); ctx.rect((fc0 + m) * cell, (fr0 + m) * cell, (fc1 - fc0 + 1) * cell, (fr1 - fr0 + 1) * cell);
      ctx.clip();
      ctx.beginPath(); ctx.rect(0, 0, canvas.width, canvas.height); ctx.rect(m * cell, m * cell, w * cell, h * cell);
      ctx.clip("evenodd");   // the field less the image: its padding part
      ctx.strokeStyle = "rgba(200, 120, 0, 0.8)"; ctx.lineWidth = 1;
      for (var d = -canvas.height; d < canvas.width; d += 4) { ctx.beginPath(); ctx.moveTo(d, 0); ctx.lineTo(d + canvas.height, canvas.height); ctx.stroke(); }
      ctx.restore();
      ctx.setLineDash([3, 2]); ctx.strokeStyle = "#b35900"; ctx.lineWidth = 1;
      ctx.strokeRect((fc0 + m) * cell + 0.5, (fr0 + m) * cell + 0.5, (fc1 - fc0 + 1) * cell - 1, (fr1 - fr0 + 1) * cell - 1);
      ctx.setLineDash([]);
    }
    if (cells.length) {
      ctx.lineWidth = 1; ctx.strokeStyle = "#111";
      ctx.strokeRect(bounds[0] + 0.5, bounds[1] + 0.5, bounds[2] - bounds[0] - 1, bounds[3] - bounds[1] - 1);
    }
  }

  /* Channels of a map group, one page at a time: "channels a–b of m shown" and previous/next. */
  function mapGroup(title, map, role, key, options) {
    options = options || {};
    var group = el("div", { "class": "map-group", "data-role": role });
    group.appendChild(el("h3", {}, title + " \u2014 " + map.shape[0] + "\u00d7" + map.shape[1] + "\u00d7" + map.channels));
    var embedded = map.shape[2], pages = Math.ceil(embedded / PER_PAGE);
    var page = Math.min(state.pages[key] || 0, pages - 1);
    var first = page * PER_PAGE, last = Math.min(embedded, first + PER_PAGE) - 1;
    var scale = scaleOf(map.vmin, map.vmax);
    var pager = el("div", { "class": "pager", "data-shown": (last - first + 1), "data-total": map.channels });
    pager.appendChild(el("span", { "class": "shown" }, t("shown_of", { a: first, b: last, m: map.channels })));
    if (pages > 1) {
      [["prev", -1], ["next", 1]].forEach(function (p) {
        var b = el("button", { type: "button", "data-page": p[0] }, t(p[0]));
        b.disabled = page + p[1] < 0 || page + p[1] >= pages;
        b.addEventListener("click", function () {
          state.pages[key] = page + p[1];
          var fresh = mapGroup(title, map, role, key, options);
          group.parentNode.replaceChild(fresh, group);
          if (options.after) { options.after(fresh); }
          var focus = fresh.querySelector('.pager button[data-page="' + p[0] + '"]');
          if (focus && !focus.disabled) { focus.focus(); }
        });
        pager.appendChild(b);
      });
    }
    if (embedded < map.channels) { pager.appendChild(el("span", {}, "(" + t("embedded_of", { n: embedded, m: map.channels }) + ")")); }
    group.appendChild(pager);
    var row = el("div", { "class": "map-row" });
    range(first, last).forEach(function (ch) {
      var box = el("div", { "class": "map", "data-channel": ch });
      box.appendChild(mapCanvas(map, ch, role, scale, options.margin));
      box.appendChild(el("span", {}, t("channel") + " " + ch));
      row.appendChild(box);
    });
    group.appendChild(row);
    group.appendChild(colourBar(scale, t("value")));
    return group;
  }

  function selectLayer(index) {
    state.layer = index; state.unit = null; state.pinned = false; state.highlight = null;
    markSelection();
    renderExplorer();
  }

  /* The chosen layer marked in the picker, the table (its block opened), the cards and the diagram. */
  function markSelection() {
    var name = DATA.layers[state.layer].name;
    document.querySelectorAll("#layer-picker button").forEach(function (b) {
      var on = +b.dataset.index === state.layer;
      b.classList.toggle("active", on); b.setAttribute("aria-selected", on ? "true" : "false");
    });
    if (!document.querySelector('#summary-table tr[data-layer="' + cssName(name) + '"]')) { renderSummary(); }
    document.querySelectorAll("#summary-table tbody tr[data-layer]").forEach(function (tr) {
      tr.classList.toggle("selected", tr.dataset.layer === name &&
        (!DATA.graph || +tr.dataset.call === (DATA.layers[state.layer].call || 1)));
    });
    document.querySelectorAll("#explain-cards article").forEach(function (card) {
      card.classList.toggle("selected", card.id === "explain-" + state.layer);
    });
    document.querySelectorAll("#diagram svg rect.layer[data-layer]").forEach(function (rect) {
      rect.classList.toggle("selected", rect.dataset.layer === name);
    });
  }
  function cssName(name) { return name.replace(/["\\]/g, "\\$&"); }

  function resetResult() {
    var result = document.getElementById("unit-result"), side = document.getElementById("explorer-side");
    if (result.parentNode !== side) { side.insertBefore(result, side.firstChild); }
    clear(document.getElementById("rf-readout")); clear(document.getElementById("sum-readout"));
  }

  function renderExplorer() {
    resetResult();
    var maps = clear(document.getElementById("explorer-maps"));
    var side = clear(document.getElementById("layer-explanation"));
    if (state.layer === null) { return; }
    var layer = DATA.layers[state.layer];
    side.appendChild(explanationCard(DATA.explain[state.lang].layers[state.layer]));
    if (!sample) { maps.appendChild(el("p", { "class": "hint" }, t("no_sample"))); return; }
    if (!explorable(layer)) {
      if (vectorOf(layer)) { maps.appendChild(vectorPanel(layer, vectorOf(layer))); return; }
      if (valuesOf(layer)) { maps.appendChild(valuesPanel(layer, valuesOf(layer))); return; }
      maps.appendChild(el("p", { "class": "hint" }, t(layer.field && layer.field.length === 1 ? "one_axis" : "no_spatial")));
      return;
    }
    var out = sample.outputs[layer.index];
    var input = inputMap(layer.index), previous = previousMap(layer.index);
    maps.appendChild(mapGroup(t("input_image"), input, "input", "input", { margin: paddingCells(layer), after: repaint }));
    if (previous !== input) { maps.appendChild(mapGroup(t("previous"), previous, "previous", "prev" + layer.index, { after: repaint })); }
    maps.appendChild(mapGroup(t("output") + " " + layer.name, out, "output", "out" + layer.index, { after: wireOutputs }));
    wireOutputs(maps.querySelector('.map-group[data-role="output"]'));
    document.getElementById("rf-readout").appendChild(el("p", { "class": "hint" }, t("pick_unit")));
  }

  function repaint() { if (state.unit) { var u = state.unit, p = state.pinned; pickUnit(u[0], u[1], u[2], p, true); state.pinned = p; } }

  function wireOutputs(group) {
    group.querySelectorAll(".map").forEach(function (m) { m.classList.add("output"); });
    group.querySelectorAll("canvas").forEach(function (canvas) {
      canvas.setAttribute("tabindex", "0");
      canvas.setAttribute("aria-label", t("output") + " " + t("channel") + " " + canvas.dataset.channel);
      function unitAt(event) {
        var cell = +canvas.dataset.cell;
        return [+canvas.dataset.channel, Math.max(0, Math.min(+canvas.dataset.rows - 1, Math.floor(event.offsetY / cell))),
                Math.max(0, Math.min(+canvas.dataset.cols - 1, Math.floor(event.offsetX / cell)))];
      }
      canvas.addEventListener("mousemove", function (event) { if (!state.pinned) { pickUnit.apply(null, unitAt(event)); } });
      canvas.addEventListener("click", function (event) {
        state.pinned = false; var u = unitAt(event); pickUnit(u[0], u[1], u[2], true); state.pinned = true;
      });
      canvas.addEventListener("keydown", function (event) {
        var ch = +canvas.dataset.channel, u = state.unit && state.unit[0] === ch ? state.unit.slice() : [ch, 0, 0];
        var moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
        if (moves[event.key]) {
          u[1] = Math.max(0, Math.min(+canvas.dataset.rows - 1, u[1] + moves[event.key][0]));
          u[2] = Math.max(0, Math.min(+canvas.dataset.cols - 1, u[2] + moves[event.key][1]));
        } else if (event.key !== "Enter" && event.key !== " ") { return; }
        event.preventDefault();
        pickUnit(u[0], u[1], u[2], true); state.pinned = true; canvas.focus();
      });
    });
  }

  /* Dense/softmax output: the values as bars; a bar's sum z = b + Σ x·w (largest terms) when its kernel is embedded. */
  function vectorPanel(layer, prediction) {
    var box = el("div", { "class": "vector" });
    box.appendChild(el("h3", {}, t("vector_title") + " \u2014 " + layer.name));
    var bars = el("ul", { "class": "bars" }), values = prediction.probs, softmax = prediction.source.indexOf("softmax") === 0;
    values.forEach(function (p, c) {
      var li = el("li", { "data-class": c, tabindex: "0", role: "button" }), bar = el("span", { "class": "bar" }), fill = el("span");
      fill.style.width = (100 * p).toFixed(2) + "%"; bar.appendChild(fill);
      li.appendChild(el("span", {}, className(c))); li.appendChild(bar);
      li.appendChild(el("span", { "class": "pct" }, softmax ? pct(p) : fmt(prediction.outputs[c] === undefined ? p : prediction.outputs[c])));
      li.classList.toggle("top", c === prediction.predicted);
      function show() { pickVector(layer, c, li); }
      li.addEventListener("click", show);
      li.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); show(); } });
      bars.appendChild(li);
    });
    box.appendChild(bars);
    box.appendChild(el("p", { "class": "hint" }, t("vector_pick")));
    return box;
  }

  /* A 1-D output (Flatten, a hidden Dense): its values as bars (the largest when there are many); a Dense unit's
   * bar gives z = b + Σ x·w with its largest terms. */
  function valuesPanel(layer, vector) {
    var box = el("div", { "class": "vector values" }), n = vector.shape[0], values = vector.values;
    var units = range(0, n - 1), top = n > 64;
    if (top) { units.sort(function (a, b) { return values[b] - values[a]; }); units = units.slice(0, 24); }
    var peak = units.reduce(function (m, i) { return Math.max(m, Math.abs(values[i])); }, 0) || 1;
    box.appendChild(el("h3", {}, t("vector_title") + " \u2014 " + layer.name + " (" + (top ?
      t("largest_of", { k: units.length, n: n }) : n + " " + t("values")) + ")"));
    var bars = el("ul", { "class": "bars" });
    units.forEach(function (i) {
      var li = el("li", { "data-unit": i, tabindex: "0", role: "button" }), bar = el("span", { "class": "bar" }), fill = el("span");
      fill.style.width = (100 * Math.abs(values[i]) / peak).toFixed(2) + "%";
      if (values[i] < 0) { fill.style.background = "#b2182b"; }
      bar.appendChild(fill);
      li.appendChild(el("span", {}, String(i))); li.appendChild(bar); li.appendChild(el("span", { "class": "pct" }, fmt(values[i])));
      function show() { pickDenseUnit(layer, i, li); }
      li.addEventListener("click", show);
      li.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); show(); } });
      bars.appendChild(li);
    });
    box.appendChild(bars);
    if (layer.kind === "dense") { box.appendChild(el("p", { "class": "hint" }, t("vector_pick"))); }
    return box;
  }

  function pickDenseUnit(layer, unit, anchor) {
    var rf = clear(document.getElementById("rf-readout")), box = clear(document.getElementById("sum-readout"));
    var stored = valuesOf(layer).values[unit];
    rf.dataset.unit = String(unit);
    rf.appendChild(el("p", {}, t("unit") + " " + unit + " = " + fmt(stored)));
    var w = weights[layer.index], x = inputVector(layer.index);
    if (layer.kind === "dense" && w && x && x.shape[0] === w.kernel.shape[0]) {
      var outs = w.kernel.shape[1], z = w.bias ? w.bias.values[unit] : 0, terms = [];
      for (var j = 0; j < x.shape[0]; j++) {
        var term = x.values[j] * w.kernel.values[j * outs + unit];
        z += term; terms.push([j, x.values[j], w.kernel.values[j * outs + unit], term]);
      }
      terms.sort(function (a, b) { return Math.abs(b[3]) - Math.abs(a[3]); });
      var lines = ["z = b + \u03a3 x\u00b7w", "b = " + fmt(w.bias ? w.bias.values[unit] : 0)];
      terms.slice(0, 12).forEach(function (tm) {
        lines.push("+ x[" + tm[0] + "]\u00b7w[" + tm[0] + "," + unit + "] = " + fmt(tm[1]) + " \u00d7 " + fmt(tm[2]) + " = " + fmt(tm[3]));
      });
      if (terms.length > 12) { lines.push("\u2026 " + (terms.length - 12) + " " + t("terms_more")); }
      lines.push("z = " + fmt(z));
      var y = activate(layer.activation, z);
      if (y !== null && layer.activation && layer.activation !== "linear") { lines.push(layer.activation + "(z) = " + fmt(y)); }
      lines.push(t("stored") + " y = " + fmt(stored));
      box.appendChild(el("h4", {}, t("sum_title")));
      box.dataset.sum = String(z);
      box.appendChild(el("div", { "class": "terms" }, lines.join("\n")));
    } else if (layer.kind === "dense") {
      box.appendChild(el("p", {}, t("no_weights")));
    }
    placeResult(anchor);
  }

  function pickVector(layer, c, anchor) {
    var box = clear(document.getElementById("sum-readout")), rf = clear(document.getElementById("rf-readout"));
    var p = sample.prediction;
    rf.dataset.unit = String(c);
    rf.appendChild(el("p", {}, t("unit") + " " + className(c) + ": " + fmt(p.outputs[c]) + (p.source.indexOf("softmax") === 0 ? " (" + t("probability") + " " + pct(p.probs[c]) + ")" : "")));
    var dense = DATA.layers.filter(function (l) { return l.kind === "dense"; }).pop();
    var w = dense ? weights[dense.index] : null;
    if (dense && w && p.terms && p.terms.layer === dense.index && p.terms.unit === c) {
      box.appendChild(termsBlock(p.terms, state.sample));
    } else if (dense) {
      box.appendChild(el("p", {}, "z = b + \u03a3 x\u00b7w (" + dense.name + ")"));
    }
    placeResult(anchor);
  }

  /* The result sits next to what was tapped: under the tapped map on a narrow screen, beside the maps otherwise. */
  function placeResult(anchor, quiet) {
    var result = document.getElementById("unit-result");
    if (anchor && narrow()) {
      var box = anchor.closest(".map") || anchor;
      if (box.nextSibling !== result) { box.parentNode.insertBefore(result, box.nextSibling); }
    } else {
      var side = document.getElementById("explorer-side");
      if (result.parentNode !== side) { side.insertBefore(result, side.firstChild); }
    }
    var rect = result.getBoundingClientRect();
    if (quiet) { return; }
    if (rect.top < 0 || rect.top > window.innerHeight - 40) { result.scrollIntoView({ block: "nearest" }); }
  }

  /* Cells of layer `index`'s input read by the given output positions on one axis:
   * position*stride - pad_before + k*dilation for each kernel tap k, real (unpadded) cells only. */
  function windowAxis(index, positions, axis) {
    var a = DATA.layers[index].axes[axis], inside = {}, padded = 0;
    if (!a) { return { inside: positions.slice(), padded: 0 }; }
    positions.forEach(function (position) {
      for (var k = 0; k < a.kernel; k++) {   // a crop's pad_before is the cells cut: output o reads o + cut
        var p = a.mode === "crop" ? position + a.pad_before : position * a.stride - a.pad_before + k * a.dilation;
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
    if (layer.kind === "separable_conv") { return range(0, prev.channels - 1); }   // depthwise, then every channel
    if (layer.kind !== "conv" && layer.kind !== "depthwise_conv") { return [channel]; }
    var perGroup = prev.channels / layer.groups, group = Math.floor(channel / (layer.filters / layer.groups));
    return range(group * perGroup, (group + 1) * perGroup - 1);
  }

  function pickUnit(channel, row, col, tapped, quiet) {
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
    var fieldBox = [field[0].first, field[0].last, field[1].first, field[1].last];
    document.querySelectorAll('#explorer-maps canvas[data-role="input"]').forEach(function (canvas) { paint(canvas, fieldCells, fieldBox); });
    document.querySelectorAll('#explorer-maps canvas[data-role="previous"]').forEach(function (canvas) {
      var used = channels.indexOf(+canvas.dataset.channel) >= 0;
      canvas.parentNode.classList.toggle("dim", !used);
      paint(canvas, used ? windowCells : null);
    });
    var tappedCanvas = null;
    document.querySelectorAll('#explorer-maps canvas[data-role="output"]').forEach(function (canvas) {
      var mine = +canvas.dataset.channel === channel;
      if (mine) { tappedCanvas = canvas; }
      paint(canvas, mine ? [[row, col, row, col]] : null);
    });
    renderReadout(layer, out, prev, wr, wc, channels, field);
    if (tapped) { placeResult(tappedCanvas, quiet); }
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
    var value = unit[0] < out.shape[2] ? at(out, unit[1], unit[2], unit[0]) : null;
    box.appendChild(el("p", { "class": "unit" }, t("unit") + " (" + t("channel") + " " + unit[0] + ", " + t("rows") + " " + unit[1] +
      ", " + t("cols") + " " + unit[2] + ")" + (value === null ? "" : " = " + fmt(value))));
    box.appendChild(el("p", { "class": "field" }, t("field_on_input") + ": " + t("rows") + " " + field[0].first + "\u2013" +
      field[0].last + ", " + t("cols") + " " + field[1].first + "\u2013" + field[1].last + " (" + t("size") + " " +
      layer.field[0].size + "\u00d7" + layer.field[1].size + ", " + t("jump") + " " + layer.field[0].jump + "\u00d7" +
      layer.field[1].jump + ", " + t("start") + " " + layer.field[0].start + "," + layer.field[1].start + ")"));
    var input = inputMap(layer.index), h = input.shape[0], w = input.shape[1];
    var realRows = Math.max(0, Math.min(h - 1, field[0].last) - Math.max(0, field[0].first) + 1);
    var realCols = Math.max(0, Math.min(w - 1, field[1].last) - Math.max(0, field[1].first) + 1);
    var inPad = layer.field[0].size * layer.field[1].size - realRows * realCols;
    if (inPad > 0) { box.appendChild(el("p", { "class": "padding" }, inPad + " " + t("field_padding"))); }
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
    if (DATA.precision === "float16") { lines.push(t("float16")); }
    state.highlight.sum = result; state.highlight.stored = stored;
    box.dataset.sum = String(result);
    box.appendChild(el("div", { "class": "terms" }, lines.join("\n")));
  }

  // -- filters: a wrapping grid of blocks, rows = input channels, columns = filters -----------------
  function renderFilters() {
    var holder = clear(document.getElementById("filter-figures")), any = false;
    DATA.layers.forEach(function (layer) {
      var w = weights[layer.index];
      if (!w || !layer.kernel_shape || (layer.call && layer.call > 1)) { return; }
      any = true;
      if (!many) { holder.appendChild(filterFigure(layer, w.kernel)); return; }
      var details = el("details", { "class": "filter-figure", "data-layer": layer.name });
      details.appendChild(el("summary", {}, layerLabel(layer) + " \u2014 " + layer.kernel_shape.join("\u00d7")));
      details.addEventListener("toggle", function () {
        if (details.open && !details.querySelector("figure")) { details.appendChild(filterFigure(layer, w.kernel)); }
      });
      holder.appendChild(details);
    });
    if (!any && DATA.layers.some(function (l) { return l.kind === "conv"; })) { holder.appendChild(el("p", { "class": "hint" }, t("no_filters"))); }
    document.getElementById("filters").classList.toggle("empty", !DATA.layers.some(function (l) { return l.kind === "conv"; }));
  }

  function filterFigure(layer, kernel) {
    var kh = kernel.shape[0], kw = kernel.shape[1], inputs = kernel.shape[2], filters = kernel.shape[3];
    var fig = el("figure", { "class": "filter-figure filters", "data-layer": layer.name });
    var key = "filters" + layer.index, page = state.pages[key] || [0, 0];
    var r0 = page[0] * FILTER_ROWS, r1 = Math.min(inputs, r0 + FILTER_ROWS) - 1;
    var c0 = page[1] * FILTER_COLS, c1 = Math.min(filters, c0 + FILTER_COLS) - 1;
    var vmax = 0;
    for (var i = 0; i < kernel.values.length; i++) { vmax = Math.max(vmax, Math.abs(kernel.values[i])); }
    var scale = { kind: "div", lo: -(vmax || 1), hi: vmax || 1 };
    fig.appendChild(el("h3", {}, layer.name + " (" + layer.class_name + "): " +
      t("kernels_of", { i: inputs, f: filters, n: grouped(inputs * filters), kh: kh, kw: kw })));
    var pager = el("div", { "class": "pager", "data-rows": (r1 - r0 + 1), "data-cols": (c1 - c0 + 1) });
    pager.appendChild(el("span", { "class": "shown" }, t("filter_page", { a: r0, b: r1, n: inputs, c: c0, d: c1, m: filters })));
    [["rows", 0, Math.ceil(inputs / FILTER_ROWS)], ["cols", 1, Math.ceil(filters / FILTER_COLS)]].forEach(function (axis) {
      if (axis[2] <= 1) { return; }
      [["prev", -1], ["next", 1]].forEach(function (p) {
        var b = el("button", { type: "button", "data-page": axis[0] + "-" + p[0] }, t(axis[0]) + " " + t(p[0]));
        var next = page.slice(); next[axis[1]] += p[1];
        b.disabled = next[axis[1]] < 0 || next[axis[1]] >= axis[2];
        b.addEventListener("click", function () {
          state.pages[key] = next;
          var fresh = filterFigure(layer, kernel);
          fig.parentNode.replaceChild(fresh, fig);
          var again = fresh.querySelector('button[data-page="' + axis[0] + "-" + p[0] + '"]');
          if (again && !again.disabled) { again.focus(); }
        });
        pager.appendChild(b);
      });
    });
    fig.appendChild(pager);
    var cell = Math.max(3, Math.min(12, Math.floor(36 / Math.max(kh, kw)))), gap = kh * kw <= 9 ? 1 : 0;
    var tile = Math.max(kh, kw) * (cell + gap);
    var room = Math.max(120, (document.getElementById("filter-figures").clientWidth || 600) - 40);
    var perBlock = Math.max(1, Math.min(c1 - c0 + 1, Math.floor((room - 40) / (tile + 4))));
    var blocksBox = el("div", { "class": "filter-blocks" });
    for (var start = c0; start <= c1; start += perBlock) {
      var end = Math.min(c1, start + perBlock - 1);
      var block = el("div", { "class": "filter-block" });
      block.style.gridTemplateColumns = "auto repeat(" + (end - start + 1) + ", " + (kw * (cell + gap) + 2) + "px)";
      block.appendChild(el("span", {}, ""));
      for (var f = start; f <= end; f++) { block.appendChild(el("span", { title: t("filter_word") + " " + f }, String(f))); }
      for (var r = r0; r <= r1; r++) {
        block.appendChild(el("span", {}, t("input_word") + " " + r));
        for (var g = start; g <= end; g++) { block.appendChild(kernelTile(kernel, r, g, cell, gap, scale)); }
      }
      blocksBox.appendChild(block);
    }
    fig.appendChild(blocksBox);
    fig.appendChild(colourBar(scale, t("weight")));
    return fig;
  }

  function kernelTile(kernel, input, filter, cell, gap, scale) {
    var kh = kernel.shape[0], kw = kernel.shape[1], inputs = kernel.shape[2], filters = kernel.shape[3];
    var canvas = el("canvas", { width: kw * (cell + gap) + gap, height: kh * (cell + gap) + gap, "class": "tile",
      "data-input": input, "data-filter": filter });
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "#bbb"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    function w(r, c) { return kernel.values[((r * kw + c) * inputs + input) * filters + filter]; }
    for (var r = 0; r < kh; r++) {
      for (var c = 0; c < kw; c++) {
        ctx.fillStyle = "rgb(" + colour(w(r, c), scale).join(",") + ")";
        ctx.fillRect(gap + c * (cell + gap), gap + r * (cell + gap), cell, cell);
      }
    }
    canvas.addEventListener("mousemove", function (e) {
      var r = Math.min(kh - 1, Math.floor(e.offsetY / (cell + gap))), c = Math.min(kw - 1, Math.floor(e.offsetX / (cell + gap)));
      showTip(e, t("input_word") + " " + input + ", " + t("filter_word") + " " + filter + " [" + r + "," + c + "] = " + fmt(w(r, c)));
    });
    canvas.addEventListener("mouseleave", hideTip);
    return canvas;
  }

  // -- feature maps of the sample: each conv/pooling output, paged, lazily drawn when there are many ---
  function renderFeatureMaps() {
    var holder = clear(document.getElementById("feature-figures"));
    var section = document.getElementById("feature-maps");
    if (!sample) { section.classList.add("empty"); return; }
    section.classList.remove("empty");
    var picked = DATA.layers.filter(function (layer) {
      return sample.outputs[layer.index] && (WINDOW_KINDS.indexOf(layer.kind) >= 0);
    });
    if (sample.input) { holder.appendChild(featureFigure(null, sample.input, false)); }
    picked.forEach(function (layer) { holder.appendChild(featureFigure(layer, sample.outputs[layer.index], picked.length > 12)); });
  }

  function featureFigure(layer, map, lazy) {
    var title = layer ? layerLabel(layer) : t("input_image"), key = "fm" + (layer ? layer.index : "in");
    var fig = el(lazy ? "details" : "div", { "class": "feature-figure", "data-layer": layer ? layer.name : "" });
    if (lazy) {
      fig.appendChild(el("summary", {}, title + " \u2014 " + map.shape[0] + "\u00d7" + map.shape[1] + "\u00d7" + map.channels));
      fig.addEventListener("toggle", function () {
        if (fig.open && !fig.querySelector(".map-group")) { fig.appendChild(mapGroup(title, map, "feature", key)); }
      });
    } else { fig.appendChild(mapGroup(title, map, "feature", key)); }
    return fig;
  }

  // -- language and search ----------------------------------------------------------------------------
  function setLang(lang) {
    if (!I18N[lang]) { throw new Error("convscope report: unknown language " + lang); }
    state.lang = lang;
    var unit = state.unit, pinned = state.pinned;
    renderLabels(); renderSummary(); renderExplanations(); renderPicker(); renderPrediction(); renderExplorer();
    renderFilters(); renderFeatureMaps();
    if (unit && explorable(DATA.layers[state.layer])) { pickUnit(unit[0], unit[1], unit[2], pinned, true); state.pinned = pinned; }
  }

  function search(value) {
    state.search = value.trim().toLowerCase();
    ["layer-search", "summary-search"].forEach(function (id) {
      var box = document.getElementById(id); if (box.value !== value) { box.value = value; }
    });
    renderPicker(); renderSummary();
  }

  document.querySelectorAll(".lang-switch button").forEach(function (button) {
    button.addEventListener("click", function () { setLang(button.dataset.lang); });
  });
  ["layer-search", "summary-search"].forEach(function (id) {
    document.getElementById(id).addEventListener("input", function (e) { search(e.target.value); });
  });
  window.convscopeReport = { state: state, data: DATA, selectLayer: selectLayer, pickUnit: pickUnit, setLang: setLang,
                             pickSample: pickSample };

  renderLabels(); renderSummary(); renderExplanations(); renderPicker(); renderPrediction();
  renderFilters(); renderFeatureMaps();
  var first = DATA.layers.filter(function (layer) { return WINDOW_KINDS.indexOf(layer.kind) >= 0 && explorable(layer); })[0]
    || DATA.layers[0];
  selectLayer(first.index);
})();
