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
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from ..explain import explain
from ..models.analysis import analyze, is_graph_model
from ._model import check_model, check_path, count_params, format_shape
from .filters import (channels_last, conv_kernel, data_formats, draw_feature_maps, pick_layers, plot_filters,
                      row_layers, run_layers)
from .history import plot_history
from .model_plot import build_graph, draw_graph
from .svg import atomic_write

ASSETS = Path(__file__).resolve().parent / "assets"
LANGS = ("en", "ko")
WINDOW_KINDS = ("conv", "max_pool", "avg_pool")
MAX_MAP_VALUES = 200_000      # floats embedded per feature map (channels beyond are left out)
MAX_INPUT_VALUES = 1_000_000  # floats embedded for the sample itself (a 300x300 RGB image fits)
MAX_KERNEL_VALUES = 200_000   # floats embedded per conv kernel (larger: no z = b + Σ x·w view)


def report(model, sample=None, history=None, to_file="report.html", lang="en") -> Path:
    """Write the interactive HTML report of `model` to `to_file` and return its path.

    `sample`: one input (shape of the model input, batch axis optional) for the
    feature maps and the explorer; `history`: what `fit` returned, for the
    training curves; `lang`: the language shown first ("en" or "ko"; both are
    embedded and the page switches between them).
    """
    where = "report"
    if lang not in LANGS:
        raise ValueError(f"{where}: argument `lang` must be one of {LANGS}, got {lang!r}")
    path = check_path(to_file, where, suffixes=(".html", ".htm"), allow_none=False)
    layers = check_model(model, where)
    numbers = analyze(model)
    explanations = {code: explain(model, lang=code).to_dict() for code in LANGS}
    data: Dict[str, Any] = {
        "lang": lang,
        "model": {"name": getattr(model, "name", "model"), "input_shape": list(numbers.input_shape),
                  "output_shape": list(numbers.output_shape)},
        "layers": [_layer_entry(layer, row) for layer, row in zip(row_layers(model), numbers.layers)],
        "explain": explanations,
        "keras_summary": _keras_summary(model),
        "sample": None,
    }
    if is_graph_model(model):
        data["graph"] = True
    sections = {
        "diagram": draw_graph(build_graph(model, show_shapes=True, show_layer_activations=True,
                                          where=where)).to_svg(),
        "filters": "\n".join(_filter_figure(layer) for layer in layers if _has_conv_kernel(layer)),
        "feature_maps": "",
        "history": "",
    }
    if sample is not None:
        x, outputs = run_layers(model, sample, where, arg="sample")
        data["sample"] = _sample_entry(data_formats(model), x, outputs)
        picked = pick_layers(row_layers(model), None, outputs, where)
        sections["feature_maps"] = draw_feature_maps(model, x, outputs, picked, max_channels=16)[0].to_svg()
    if history is not None:
        sections["history"] = plot_history(history).to_svg()
    return atomic_write(path, render_html(data, sections).encode("utf-8"))


def render_html(data: Dict[str, Any], sections: Dict[str, str]) -> str:
    """Fill the page template with the inline CSS, JS, data and pictures."""
    template = (ASSETS / "report.html").read_text(encoding="utf-8")
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    replacements = {
        "{{TITLE}}": escape(f"convscope report: {data['model']['name']}"),
        "{{LANG}}": data["lang"],
        "{{CSS}}": (ASSETS / "report.css").read_text(encoding="utf-8"),
        "{{JS}}": (ASSETS / "report.js").read_text(encoding="utf-8"),
        "{{DATA}}": blob,
        "{{DIAGRAM}}": sections["diagram"],
        "{{FILTERS}}": sections["filters"],
        "{{FEATURE_MAPS}}": sections["feature_maps"],
        "{{HISTORY}}": sections["history"],
    }
    for key, value in replacements.items():
        template = template.replace(key, value)
    return template


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


def _filter_figure(layer) -> str:
    return (f'<figure class="filters" data-layer="{escape(layer.name)}">'
            f"{plot_filters(layer, max_inputs=8, max_filters=32).to_svg()}</figure>")


def _layer_entry(layer, row) -> Dict[str, Any]:
    """What the page needs about one layer: shapes, window numbers, receptive field, weights."""
    entry: Dict[str, Any] = {
        "index": row.index, "name": row.name, "class_name": row.class_name, "kind": row.kind,
        "input_shape": list(row.input_shape), "output_shape": list(row.output_shape),
        "output_text": format_shape(row.output_shape), "params": count_params(layer),
        "kernels": row.kernels, "macs": row.macs, "activation": row.activation,
        "axes": [{"input": a.input, "kernel": a.kernel, "stride": a.stride, "dilation": a.dilation,
                  "pad_before": a.pad_before, "pad_after": a.pad_after} for a in row.axes],
        "field": None if row.receptive_field is None else
        [{"size": f.size, "jump": f.jump, "start": f.start} for f in row.receptive_field],
        "filters": row.filters, "groups": row.groups, "weights": None,
    }
    if row.inbound is not None:           # a functional model's call
        entry.update(call=row.call, calls=row.calls, inbound=list(row.inbound), parents=list(row.parents))
    if row.kind == "conv" and _has_conv_kernel(layer):
        kernel = conv_kernel(layer, "report")
        if kernel.size <= MAX_KERNEL_VALUES:
            bias = getattr(layer, "bias", None)
            entry["weights"] = {"kernel": _array(kernel),
                                "bias": None if bias is None else _array(np.asarray(bias.value))}
    return entry


def _sample_entry(formats: List[str], x: np.ndarray, outputs: List[np.ndarray]) -> Dict[str, Any]:
    """The sample and every 4-D layer output (channels last), capped in size (see `_map`)."""
    maps = [_map(channels_last(out, fmt)[0]) if out.ndim == 4 else None for fmt, out in zip(formats, outputs)]
    image = _map(channels_last(x, formats[0])[0], MAX_INPUT_VALUES) if x.ndim == 4 else None
    return {"input": image, "outputs": maps}


def _map(array: np.ndarray, cap: int = MAX_MAP_VALUES) -> Dict[str, Any]:
    """A (H, W, C) map with as many leading channels as fit in `cap` floats."""
    h, w, c = array.shape
    shown = max(1, min(c, cap // max(h * w, 1)))
    entry = _array(array[:, :, :shown])
    entry["channels"] = int(c)
    entry["vmax"] = float(np.max(np.abs(array))) or 1.0
    return entry


def _array(array: np.ndarray) -> Dict[str, Any]:
    """An array as its shape and base64 little-endian float32 bytes (decoded by Float32Array)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode("ascii")}
