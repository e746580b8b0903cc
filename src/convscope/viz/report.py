"""`convscope.report`: one self-contained, interactive HTML page about a model.

The page holds the summary table, the explanations in English and Korean
(`convscope.explain(...).to_dict()`), the diagram, the filters, the feature
maps of a sample and the training curves — all inline (CSS, JS, SVG, PNG data
URIs), so it opens offline and requests nothing from the network.

The explorer (CNN Explainer's view, for any Sequential model) lets the reader
pick a layer and click an output unit: the page highlights the unit's window on
the previous feature maps and its receptive field on the input, and writes the
sum z = b + Σ x·w with the real numbers.  The window and field arithmetic in the
page uses per-layer (kernel, stride, dilation, pad_before, field size, jump,
start) taken from `convscope.models.analysis`, i.e. from `ops/shapes.py`, so
the page and the Python side agree.

A functional model's page has one row per call of a layer (`analyze`'s rows), a
"Connected to" column, and each row's `parents`: the explorer's "previous" maps
are the first parent's output, and a unit's reach on the input follows every
branch back (the union at a merge).

The sample is followed to the end: the model's output as class probabilities
(top-k, the true label when given), the last Dense layer's largest terms
x·w for the predicted class traced back through Flatten to (row, col, channel)
of the feature maps, and Grad-CAM (`viz.saliency.gradcam`, when installed)
over the input.  Several samples show side by side.  The embedded arrays share
byte budgets (`MAX_*` below), so a 177-layer model's page stays a few MB; what
is cut is said on the page ("n of m channels").  The pictures in the page are
drawn in both languages and swapped by the language switch.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..explain import explain
from ..models.analysis import analyze, is_graph_model
from ._model import check_model, check_path, count_params, format_shape
from .filters import channels_last, conv_kernel, data_formats, row_layers, run_layers
from .history import curve_panels, history_dict, plot_history
from .i18n import LANGS, check_lang, diagram_words
from .model_plot import build_graph, draw_graph, translate_graph
from .prediction import class_probabilities, final_activation
from .svg import atomic_write

ASSETS = Path(__file__).resolve().parent / "assets"
WINDOW_KINDS = ("conv", "max_pool", "avg_pool")
MAX_MAP_VALUES = 200_000      # floats embedded per feature map (channels beyond are left out)
MAX_INPUT_VALUES = 1_000_000  # floats embedded for the sample itself (a 300x300 RGB image fits)
MAX_KERNEL_VALUES = 200_000   # floats embedded per conv/dense kernel (larger: no z = b + Σ x·w view)
MAX_ALL_MAPS = 400_000        # floats for every feature map of every sample together
MAX_ALL_KERNELS = 300_000     # floats for every embedded kernel together
LARGE_MODEL = 40              # rows from which arrays are embedded as float16 (3 digits: colours, hover)
LARGE_KERNELS = 150_000       # ... and the kernels' budget is this
MAX_VECTOR = 4096             # a 1-D layer output (Flatten, Dense) embedded up to this many values
MAX_SAMPLES = 8
TOP_K = 5
TOP_TERMS = 12
PASS_THROUGH = ("flatten", "dropout", "identity", "reshape")   # kinds the Dense trace walks back through


def report(model, sample=None, history=None, to_file="report.html", lang="en", labels=None,
           class_names=None) -> Path:
    """Write the interactive HTML report of `model` to `to_file` and return its path.

    `sample`: one input (shape of the model input, batch axis optional), or up
    to 8 of them (a list, or a batch), for the feature maps, the explorer and the
    prediction; `labels`: the true class of each sample (an int, or a list);
    `class_names`: a name per class of the output; `history`: what `fit`
    returned, for the training curves; `lang`: the language shown first ("en" or
    "ko"; both are embedded and the page switches between them).
    """
    where = "report"
    check_lang(lang, where)
    path = check_path(to_file, where, suffixes=(".html", ".htm"), allow_none=False)
    layers = check_model(model, where)
    numbers = analyze(model)
    samples = _samples(model, sample, where)
    labels = _labels(labels, len(samples), where)
    class_names = _class_names(class_names, numbers.output_shape, where)
    if history is not None:
        history_dict(history, where)
    explanations = {code: explain(model, lang=code).to_dict() for code in LANGS}
    rows = row_layers(model)
    large = len(numbers.layers) > LARGE_MODEL
    budget = {"kernels": LARGE_KERNELS if large else MAX_ALL_KERNELS, "dtype": "<f2" if large else "<f4"}
    data: Dict[str, Any] = {
        "lang": lang,
        "model": {"name": getattr(model, "name", "model"), "input_shape": list(numbers.input_shape),
                  "output_shape": list(numbers.output_shape)},
        "layers": [_layer_entry(layer, row, budget) for layer, row in zip(rows, numbers.layers)],
        "explain": explanations,
        "keras_summary": _keras_summary(model),
        "sample": None,
        "class_names": class_names,
        "precision": "float16" if large else "float32",
    }
    if is_graph_model(model):
        data["graph"] = True
    graph = build_graph(model, show_shapes=True, show_layer_activations=True, where=where)
    data["diagram_words"] = diagram_words()
    sections = {"diagram": draw_graph(translate_graph(graph, lang)).to_svg(),
                "history": _both(lambda code: _history_panels(history, code)) if history is not None else {}}
    if samples:
        formats = data_formats(model)
        runs = [run_layers(model, s, where, arg="sample") for s in samples]
        per_map = _map_cap(runs)
        entries = []
        for number, (x, outputs) in enumerate(runs):
            entry = _sample_entry(formats, x, outputs, per_map, budget["dtype"],
                                  [row.kind == "input" for row in numbers.layers])
            entry["prediction"] = _prediction(numbers.layers, rows, x, outputs, labels[number], formats)
            entry["gradcam"] = _gradcam(model, x, entry["prediction"])
            entries.append(entry)
        data["sample"], data["more_samples"] = entries[0], entries[1:]
    return atomic_write(path, render_html(data, sections).encode("utf-8"))


def _both(draw) -> Dict[str, str]:
    return {code: draw(code) for code in LANGS}


def _history_panels(history, lang: str) -> str:
    """One SVG per metric (with its val_ curve), so the panels wrap side by side or stack on a phone."""
    values = history_dict(history, "report")
    return "".join(plot_history({k: v for k, v in values.items() if k in (name, f"val_{name}")}, lang=lang).to_svg()
                   for name in curve_panels(values))


def render_html(data: Dict[str, Any], sections: Dict[str, Any]) -> str:
    """Fill the page template with the inline CSS, JS, data and pictures: the diagram drawn in the page's
    first language (the page translates its few words), the curves as one <template> per language."""
    template = (ASSETS / "report.html").read_text(encoding="utf-8")
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    def templates(pictures: Dict[str, str]) -> str:
        return "".join(f'<template data-lang="{code}">{svg}</template>' for code, svg in pictures.items())
    replacements = {
        "{{TITLE}}": escape(f"convscope report: {data['model']['name']}"),
        "{{LANG}}": data["lang"],
        "{{CSS}}": (ASSETS / "report.css").read_text(encoding="utf-8"),
        "{{JS}}": (ASSETS / "report.js").read_text(encoding="utf-8"),
        "{{DATA}}": blob,
        "{{DIAGRAM}}": sections["diagram"],
        "{{HISTORY}}": templates(sections["history"]),
    }
    for key, value in replacements.items():
        template = template.replace(key, value)
    return template


def _samples(model, sample, where: str) -> List[Any]:
    """The samples to show: none, one, or each of a list / a batch of several (at most MAX_SAMPLES)."""
    if sample is None:
        return []
    inputs = getattr(model, "inputs", None) or []
    if isinstance(sample, (list, tuple)) and len(inputs) <= 1:
        many = list(sample)
    else:
        array = np.asarray(sample) if not isinstance(sample, (list, tuple)) else None
        shape = tuple(getattr(model, "input_shape", ()) or ())
        many = list(array) if (array is not None and len(shape) > 1 and array.ndim == len(shape)
                               and array.shape[0] > 1) else [sample]
    if not many:
        raise ValueError(f"{where}: argument `sample` is an empty list; give one sample or several")
    if len(many) > MAX_SAMPLES:
        raise ValueError(f"{where}: argument `sample` holds {len(many)} samples; at most {MAX_SAMPLES} are shown "
                         "side by side")
    return many


def _labels(labels, count: int, where: str) -> List[Optional[int]]:
    """One true class (or None) per sample."""
    if labels is None:
        return [None] * count
    given = list(np.ravel(labels)) if isinstance(labels, (list, tuple, np.ndarray)) else [labels]
    if count == 0:
        raise ValueError(f"{where}: argument `labels` needs `sample`; got labels but no sample")
    if len(given) != count:
        raise ValueError(f"{where}: argument `labels` must hold one class index per sample ({count}), "
                         f"got {len(given)}")
    for value in given:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{where}: argument `labels` must hold class indices (ints >= 0), got {value!r}")
    return [int(v) for v in given]


def _class_names(names, output_shape, where: str) -> Optional[List[str]]:
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or \
            not all(isinstance(n, str) for n in names):
        raise TypeError(f"{where}: argument `class_names` must be a list of str, got {names!r}")
    classes = output_shape[-1] if len(output_shape) == 2 else None
    if classes is not None and len(names) != max(classes, 2 if classes == 1 else classes):
        raise ValueError(f"{where}: argument `class_names` must name the {max(classes, 2)} classes of the output "
                         f"{format_shape(output_shape)}, got {len(names)} names")
    return list(names)


def _keras_summary(model) -> str:
    """The plain `model.summary()` table, as Keras prints it ("" for a model without `summary`)."""
    lines: List[str] = []
    summary = getattr(model, "summary", None)
    if callable(summary):
        summary(print_fn=lines.append)
    return "\n".join(lines)


def _has_conv_kernel(layer) -> bool:
    kernel = getattr(layer, "kernel", None)
    return kernel is not None and np.ndim(getattr(kernel, "value", kernel)) == 4


def _dense_kernel(layer) -> Optional[np.ndarray]:
    kernel = getattr(layer, "kernel", None)
    value = None if kernel is None else np.asarray(getattr(kernel, "value", kernel))
    return value if value is not None and value.ndim == 2 else None


def _layer_entry(layer, row, budget: Dict[str, int]) -> Dict[str, Any]:
    """What the page needs about one layer: shapes, window numbers, receptive field, weights."""
    entry: Dict[str, Any] = {
        "index": row.index, "name": row.name, "class_name": row.class_name, "kind": row.kind,
        "input_shape": list(row.input_shape), "output_shape": list(row.output_shape),
        "output_text": format_shape(row.output_shape), "params": count_params(layer),
        "kernels": row.kernels, "macs": row.macs, "activation": row.activation,
        "axes": [{"input": a.input, "kernel": a.kernel, "stride": a.stride, "dilation": a.dilation,
                  "pad_before": a.pad_before, "pad_after": a.pad_after, "mode": a.mode} for a in row.axes],
        "field": None if row.receptive_field is None else
        [{"size": f.size, "jump": f.jump, "start": f.start} for f in row.receptive_field],
        "filters": row.filters, "groups": row.groups, "weights": None,
    }
    if row.inbound is not None:           # a functional model's call
        entry.update(call=row.call, calls=row.calls, inbound=list(row.inbound), parents=list(row.parents))
    kernel = None
    if row.kind == "conv" and _has_conv_kernel(layer):
        kernel = conv_kernel(layer, "report")
        entry["kernel_shape"] = list(kernel.shape)
    elif row.kind == "dense":
        kernel = _dense_kernel(layer)
    if kernel is not None and row.call in (None, 1):
        if kernel.size <= min(MAX_KERNEL_VALUES, budget["kernels"]):
            budget["kernels"] -= kernel.size
            bias = getattr(layer, "bias", None)
            entry["weights"] = {"kernel": _array(kernel, budget["dtype"]),
                                "bias": None if bias is None else _array(np.asarray(bias.value), budget["dtype"])}
    return entry


def _map_cap(runs) -> int:
    """Floats per embedded map so that every map of every sample fits MAX_ALL_MAPS together."""
    maps = sum(1 for _, outputs in runs for out in outputs if out.ndim == 4)
    return int(min(MAX_MAP_VALUES, max(MAX_ALL_MAPS // max(maps, 1), 1)))


def _sample_entry(formats: List[str], x: np.ndarray, outputs: List[np.ndarray], cap: int,
                  dtype: str = "<f4", inputs: Optional[List[bool]] = None) -> Dict[str, Any]:
    """The sample and every 4-D layer output (channels last), capped in size (see `_map`); a graph model's
    input rows (`inputs`) get the sample's own budget, as the explorer draws fields on them."""
    inputs = inputs or [False] * len(outputs)
    maps = [_map(channels_last(out, fmt)[0], MAX_INPUT_VALUES if is_input else cap, dtype) if out.ndim == 4 else None
            for fmt, out, is_input in zip(formats, outputs, inputs)]
    image = _map(channels_last(x, formats[0])[0], MAX_INPUT_VALUES, dtype) if x.ndim == 4 else None
    vectors = [_array(out[0], dtype) if out.ndim == 2 and out.shape[1] <= MAX_VECTOR else None for out in outputs]
    return {"input": image, "outputs": maps, "vectors": vectors}


def _map(array: np.ndarray, cap: int = MAX_MAP_VALUES, dtype: str = "<f4") -> Dict[str, Any]:
    """A (H, W, C) map with as many leading channels as fit in `cap` floats (at least one)."""
    h, w, c = array.shape
    shown = max(1, min(c, cap // max(h * w, 1)))
    entry = _array(array[:, :, :shown], dtype)
    finite = array[np.isfinite(array)]
    entry["channels"] = int(c)
    entry["vmax"] = float(np.max(np.abs(finite))) if finite.size else 1.0
    entry["vmax"] = entry["vmax"] or 1.0
    entry["vmin"] = float(np.min(finite)) if finite.size else 0.0
    return entry


def _array(array: np.ndarray, dtype: str = "<f4") -> Dict[str, Any]:
    """An array as its shape and base64 little-endian bytes: float32 (decoded by Float32Array), float16
    ("dtype": "f2", a large model's page; values beyond float16's range are clipped) or uint8 ("u8": k/255)."""
    if dtype == "<f2":
        array = np.clip(np.nan_to_num(np.asarray(array, np.float32)), -65504, 65504)
    elif dtype == "u8":
        array = np.round(np.clip(np.asarray(array, np.float64), 0.0, 1.0) * 255)
        dtype = "u1"
    array = np.ascontiguousarray(array, dtype=dtype)
    entry = {"shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode("ascii")}
    if dtype != "<f4":
        entry["dtype"] = {"<f2": "f2", "u1": "u8"}[dtype]
    return entry


# -- the prediction -------------------------------------------------------------------------------

def _prediction(rows, layers, x, outputs, label, formats) -> Optional[Dict[str, Any]]:
    """Class probabilities of one sample (the model's last output, one vector), its top-k, the true
    label, and the last Dense layer's largest terms for the predicted class."""
    out = np.asarray(outputs[-1], np.float64)
    if out.ndim != 2 or not np.all(np.isfinite(out)):
        return None
    values = out[0]
    read = class_probabilities(values, final_activation(rows))
    if read is None:
        return None
    probs, source = read
    order = np.argsort(-probs, kind="stable")
    predicted = int(order[0])
    entry = {"probs": [float(p) for p in probs], "top": [int(i) for i in order[:TOP_K]],
             "predicted": predicted, "label": label, "source": source, "outputs": [float(v) for v in values]}
    entry["terms"] = _dense_terms(rows, layers, x, outputs, predicted if values.size > 1 else 0, formats)
    return entry


def _dense_terms(rows, layers, x, outputs, unit: int, formats) -> Optional[Dict[str, Any]]:
    """The last Dense layer's terms x_i·w_i,unit: the largest ones, each traced back through
    Flatten/Dropout/Reshape to (row, col, channel) of the feature maps it came from, and the sum per channel."""
    index = next((i for i in range(len(rows) - 1, -1, -1) if rows[i].kind == "dense"), None)
    if index is None or any(r.kind not in ("dropout", "activation") for r in rows[index + 1:]):
        return None
    kernel = _dense_kernel(layers[index])
    if kernel is None or unit >= kernel.shape[1]:
        return None
    first, weight = _chain_weights(rows, layers, outputs, index, np.asarray(kernel[:, unit], np.float64))
    source = _parent(rows, first)
    inputs = x if source is None else outputs[source]
    if np.ndim(inputs) != 2 or weight.shape[0] != np.shape(inputs)[1]:
        return None
    x_flat = np.asarray(inputs[0], np.float64)
    terms = x_flat * weight
    bias = getattr(layers[index], "bias", None)
    last_source = _parent(rows, index)
    last_inputs = np.asarray(x if last_source is None else outputs[last_source], np.float64)[0]
    z = float(last_inputs @ np.asarray(kernel[:, unit], np.float64) + (0.0 if bias is None else bias.value[unit]))
    entry: Dict[str, Any] = {"layer": index, "unit": unit, "bias": 0.0 if bias is None else float(bias.value[unit]),
                             "z": z, "count": int(terms.size), "sum": float(terms.sum())}
    if first != index:       # through hidden Dense layers: x_i · dz/dx_i at this sample (ReLU masks held)
        entry["through"] = [rows[i].name for i in _dense_chain(rows, first, index)]
        entry["first"] = first
    order = np.argsort(-terms, kind="stable")[:TOP_TERMS]
    maps = _traced_map(rows, source, outputs)
    entry["top"] = [{"i": int(i), "x": float(x_flat[i]), "w": float(weight[i]), "term": float(terms[i])}
                    for i in order]
    if maps is not None and maps[2]:            # through a global pooling: input i is channel i
        map_index, shape, _ = maps
        layout = formats[map_index]
        values = outputs[map_index][0] if layout != "channels_first" else np.moveaxis(outputs[map_index][0], 0, -1)
        entry["map_layer"], entry["pooled"] = map_index, rows[_pooled_row(rows, source)].kind
        for item in entry["top"]:       # the unit shown: where the channel fires most
            r, c = np.unravel_index(int(np.argmax(values[:, :, item["i"]])), values.shape[:2])
            item.update(row=int(r), col=int(c), channel=item["i"])
        best = np.argsort(-terms, kind="stable")[:TOP_TERMS]
        entry["channels"] = [{"channel": int(k), "sum": float(terms[k])} for k in best]
    elif maps is not None:
        map_index, shape, _ = maps
        layout = formats[map_index] if map_index is not None else formats[0]
        cells = np.arange(terms.size)
        if layout == "channels_first":
            ch, r, c = np.unravel_index(cells, shape[1:])
        else:
            r, c, ch = np.unravel_index(cells, shape[1:])
        entry["map_layer"] = map_index
        for item in entry["top"]:
            item.update(row=int(r[item["i"]]), col=int(c[item["i"]]), channel=int(ch[item["i"]]))
        channels = shape[1] if layout == "channels_first" else shape[3]
        per_channel = np.bincount(ch, weights=terms, minlength=channels)
        best = np.argsort(-per_channel, kind="stable")[:TOP_TERMS]
        entry["channels"] = [{"channel": int(k), "sum": float(per_channel[k])} for k in best]
    return entry


def _chain_weights(rows, layers, outputs, index: int, weight: np.ndarray):
    """Walk back from the last Dense through Dropout, ReLU and Dense(relu|linear) rows: (the first Dense
    of the chain, d z / d its input), each ReLU's mask taken from this sample's outputs (exact for the sample:
    z less the biases is Σ x_i · weight_i)."""
    first, source = index, _parent(rows, index)
    while source is not None and rows[source].kind in ("dense", "dropout", "activation"):
        row = rows[source]
        if row.kind != "dropout":
            if row.activation == "relu":
                weight = weight * (np.asarray(outputs[source][0]) > 0)
            elif row.activation not in (None, "linear"):
                break
        if row.kind == "dense":
            kernel = _dense_kernel(layers[source])
            if kernel is None or np.ndim(outputs[source]) != 2:
                break
            weight, first = np.asarray(kernel, np.float64) @ weight, source
        source = _parent(rows, source)
    return first, weight


def _dense_chain(rows, first: int, last: int) -> List[int]:
    """The Dense rows from `last` back to `first`, in model order."""
    chain, index = [], last
    while index is not None and index != first:
        if rows[index].kind == "dense":
            chain.append(index)
        index = _parent(rows, index)
    return [first] + chain[::-1]


def _parent(rows, index: int) -> Optional[int]:
    """The row a row reads (its first parent in a graph model), or None for the model input."""
    parents = getattr(rows[index], "parents", None)
    if parents is not None:
        parent = parents[0] if parents else None
        return None if parent is None or rows[parent].kind == "input" else parent
    return index - 1 if index > 0 else None


def _traced_map(rows, source: Optional[int], outputs):
    """(row index, 4-D shape, through a global pooling?) of the feature maps a Dense input came from
    through pass-through layers (Flatten, Dropout, ...) or one global pooling."""
    pooled = False
    while source is not None:
        if outputs[source].ndim == 4:
            return source, outputs[source].shape, pooled
        if rows[source].kind in ("global_avg_pool", "global_max_pool") and not pooled:
            pooled = True
        elif rows[source].kind not in PASS_THROUGH:
            return None
        source = _parent(rows, source)
    return None


def _pooled_row(rows, source: int) -> int:
    """The global pooling row on the way back from `source`."""
    while rows[source].kind not in ("global_avg_pool", "global_max_pool"):
        source = _parent(rows, source)
    return source


def _gradcam(model, x, prediction) -> Optional[Dict[str, Any]]:
    """Grad-CAM of the predicted class over the input (`viz.saliency.gradcam`, when it is installed)."""
    try:
        from .saliency import gradcam
    except ImportError:
        return None
    if prediction is None or x.ndim != 4:
        return None
    try:
        heat = np.asarray(gradcam(model, x, class_index=prediction["predicted"]), np.float64)
    except (ValueError, TypeError):    # no conv layer to look at, or a model gradcam cannot take
        return None
    if heat.ndim == 3 and heat.shape[0] == 1:
        heat = heat[0]
    if heat.ndim == 3:
        heat = heat[..., 0] if heat.shape[-1] == 1 else heat[0]
    if heat.ndim != 2 or not np.all(np.isfinite(heat)):
        return None
    return _array(heat, "u8")
