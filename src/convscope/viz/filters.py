"""`plot_filters` and `plot_feature_maps`: look at kernels and activations with your own eyes.

A Conv2D layer with `filters` filters on `in` input channels holds
in/groups × filters two-dimensional kernels (seed 000's point: kernels are not
filters), so `plot_filters` draws exactly that grid: one row per input channel
of a group, one column per filter, wrapping into bands of filters.  Both use one
colour scale per figure (filters) or per layer (feature maps), chosen by the data
as the report does (`viz/colors.py`: sequential for ≥ 0, diverging around 0), shown
as a colour bar with its values.
"""

from __future__ import annotations

import math
from typing import List

import numpy as np

from ..models.analysis import analyze, is_graph_model
from ..models.subclassed import is_subclassed, layer_calls
from ._model import check_dpi, check_model, check_path, shape_of
from .colors import draw_colorbar, scale_of, scale_rgb, tick
from .i18n import check_lang, label
from .prediction import class_probabilities, final_activation
from .svg import Drawing, Figure, finish, text_width

TILE_GAP = 4.0
MARGIN = 16.0


def _check_count(value, arg: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: argument `{arg}` must be a positive int, got {value!r}")
    return int(value)


def conv_kernel(layer, where: str) -> np.ndarray:
    """The layer's kernel as (kh, kw, in/groups, filters), or an error naming the layer."""
    kernel = getattr(layer, "kernel", None)
    label = f"{type(layer).__name__} '{getattr(layer, 'name', '?')}'"
    if not hasattr(layer, "get_config"):
        raise TypeError(f"{where}: argument `layer` must be a convscope layer, got {type(layer).__name__}")
    if kernel is None and getattr(layer, "built", True) is False:
        raise ValueError(f"{where}: {label} is not built yet; build the model (give an input_shape) first")
    value = np.asarray(getattr(kernel, "value", kernel)) if kernel is not None else None
    if value is None or value.ndim != 4:
        raise ValueError(f"{where}: {label} has no 4-D convolution kernel (kh, kw, in/groups, filters); "
                         "pass a Conv2D layer")
    return value


def _check_indices(value, count: int, cap: int, arg: str, where: str, what: str, context: str = "") -> List[int]:
    """The indices to draw: the first `cap` of `count` when `value` is None, else `value` checked (ints in
    range, no repeats, at least one)."""
    if value is None:
        return list(range(min(count, cap)))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    items = list(value) if isinstance(value, (list, tuple, range, np.ndarray)) else None
    if (not items or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in items)
            or any(not 0 <= i < count for i in items) or len(set(items)) != len(items)):
        raise ValueError(f"{where}: argument `{arg}` must be distinct {what} indices in 0..{count - 1} "
                         f"(a list or range){context}, got {value!r}")
    return [int(i) for i in items]


def filter_columns(count: int, tile_w: float, label_w: float, columns) -> int:
    """Filters per band: `columns` when given, else as many as fit 960 px (a multiple of 8 from 8 on)."""
    if columns is not None:
        return min(count, columns)
    fit = int((960 - 2 * MARGIN - label_w) // (tile_w + TILE_GAP))
    fit = fit - fit % 8 if fit >= 8 else max(1, fit)
    return max(1, min(count, fit))


def plot_filters(layer, to_file=None, max_inputs: int = 16, max_filters: int = 64, dpi=96, lang="en",
                 inputs=None, filters=None, columns=None) -> Figure:
    """One tile per 2-D kernel of a conv layer: rows = input channels per group, columns = filters.

    The columns wrap into bands of `columns` filters (default: as many as fit ~960 px), each band
    with every shown input channel as a row.  All tiles share one colour scale chosen by the
    weights (sequential from 0 when all are ≥ 0, else diverging around 0) shown in a colour bar;
    kernels of up to 3×3 get gridlines between their cells.  `inputs`/`filters` choose which
    input channels/filters to draw (index lists or ranges); otherwise the first `max_inputs` and
    `max_filters` are drawn and the subtitle says how many of how many are shown.  Writes `to_file`
    (.svg/.png) when given; returns a `Figure` whose `info` has `rows`, `cols`, `kernels`, `inputs`,
    `filters`, `bands`, `scale`.  `lang`: "en" or "ko", the language of every label.
    """
    where = "plot_filters"
    check_lang(lang, where)
    path = check_path(to_file, where)
    dpi = check_dpi(dpi, where)
    max_inputs = _check_count(max_inputs, "max_inputs", where)
    max_filters = _check_count(max_filters, "max_filters", where)
    if columns is not None:
        columns = _check_count(columns, "columns", where)
    kernel = conv_kernel(layer, where)
    kh, kw, per_group, count = kernel.shape
    in_idx = _check_indices(inputs, per_group, max_inputs, "inputs", where, "input channel")
    f_idx = _check_indices(filters, count, max_filters, "filters", where, "filter")
    rows, cols = len(in_idx), len(f_idx)
    scale = scale_of(kernel)
    cell = float(max(3, min(12, 36 // max(kh, kw))))
    tile_w, tile_h = kw * cell, kh * cell
    label_w = 46.0
    per_band = filter_columns(cols, tile_w, label_w, columns)
    bands = math.ceil(cols / per_band)
    title = label(lang, "kernels_title", name=layer.name, cls=type(layer).__name__, per=per_group,
                  filters=count, count=per_group * count, kh=kh, kw=kw)
    subtitle = label(lang, "kernels_sub", rows=rows, per=per_group, cols=cols, filters=count)
    band_h = 14 + rows * (tile_h + TILE_GAP) + 10
    width = max(MARGIN * 2 + label_w + per_band * (tile_w + TILE_GAP), text_width(title, 13) + 2 * MARGIN,
                text_width(subtitle, 10) + 2 * MARGIN, 420)
    top = MARGIN + 40.0
    height = top + bands * band_h + 46
    drawing = Drawing(width, height)
    drawing.text(MARGIN, MARGIN + 12, title, size=13, weight="bold")
    drawing.text(MARGIN, MARGIN + 28, subtitle, size=10, fill="#444444", css_class="shown")
    step = max(1, math.ceil(18 / (tile_w + TILE_GAP)))   # column numbers that do not overlap
    for band in range(bands):
        x0, y0 = MARGIN + label_w, top + band * band_h + 14
        band_filters = f_idx[band * per_band:(band + 1) * per_band]
        for col, f in enumerate(band_filters):
            if col % step == 0:
                drawing.text(x0 + col * (tile_w + TILE_GAP) + tile_w / 2, y0 - 4, label(lang, "filter_col", col=f),
                             size=8, anchor="middle", fill="#555555", css_class="filter-label")
        for row, i in enumerate(in_idx):
            y = y0 + row * (tile_h + TILE_GAP)
            drawing.text(x0 - 6, y + tile_h / 2 + 3, label(lang, "input_row", row=i), size=8, anchor="end",
                         fill="#555555", css_class="input-label")
            for col, f in enumerate(band_filters):
                _kernel_tile(drawing, x0 + col * (tile_w + TILE_GAP), y, cell, kernel[:, :, i, f], scale,
                             label(lang, "kernel_tile", row=i, col=f))
    draw_colorbar(drawing, MARGIN, height - 40, min(200.0, width - 2 * MARGIN - 60), scale, label(lang, "weight"),
                  label(lang, "scale_" + scale.kind))
    return finish(drawing, path, dpi, where, rows=rows, cols=cols, kernels=per_group * count, inputs=in_idx,
                  filters=f_idx, bands=bands, scale=scale)


def _kernel_tile(drawing, x: float, y: float, cell: float, weights: np.ndarray, scale, title: str) -> None:
    """One kernel: its cells coloured on `scale`, framed; up to 3×3 with gridlines between the cells and its
    weights in the hover title."""
    kh, kw = weights.shape
    if kh * kw <= 9:                  # the weights themselves on hover, row by row
        title += ": [" + "; ".join(", ".join(tick(float(v)) for v in row) for row in weights) + "]"
    drawing.image(x, y, kw * cell, kh * cell, scale_rgb(weights, scale), css_class="tile", title=title)
    if kh * kw <= 9:
        for c in range(1, kw):
            drawing.line(x + c * cell, y, x + c * cell, y + kh * cell, stroke="#bbbbbb", stroke_width=1,
                         css_class="gridline")
        for r in range(1, kh):
            drawing.line(x, y + r * cell, x + kw * cell, y + r * cell, stroke="#bbbbbb", stroke_width=1,
                         css_class="gridline")
    drawing.rect(x, y, kw * cell, kh * cell, stroke="#bbbbbb", stroke_width=0.5, css_class="tile-frame")


def run_layers(model, image, where: str, arg: str = "image"):
    """Run one sample through `model.layers` one by one; returns (input batch, [outputs]).

    A functional model runs node by node (`run_nodes`): one output per row of
    `analyze(model)`, i.e. per call of a layer.  `arg` names the caller's argument in
    error messages.
    """
    layers = check_model(model, where)
    if is_graph_model(model):
        return run_nodes(model, image, where, arg)
    if is_subclassed(model):           # its layers' outputs as its call computes them, not chained
        x = _one_sample(image, model.input_shape, model.dtype, where, arg)
        return x, [np.asarray(outputs) for _, _, outputs in layer_calls(model, x, where)]
    x = _one_sample(image, shape_of(layers[0], "input_shape"), getattr(layers[0], "dtype", None), where, arg)
    outputs = []
    current = x
    for layer in layers:
        current = np.asarray(layer(current, training=False))
        outputs.append(current)
    return x, outputs


def run_nodes(model, sample, where: str, arg: str = "image"):
    """Run one sample (a list of them, one per input, for several inputs) through a functional model's
    nodes in execution order; returns (the first input's batch, [each row's first output])."""
    from ..layers.autodiff import call_layer
    from ..layers.graph import KerasTensor
    from ..models.analysis_graph import model_nodes
    inputs = model.inputs
    given = list(sample) if len(inputs) > 1 and isinstance(sample, (list, tuple)) else [sample]
    if len(given) != len(inputs):
        raise ValueError(f"{where}: argument `{arg}` must hold {len(inputs)} samples, one per input "
                         f"{[t.keras_history[0].name for t in inputs]}, got {len(given)}")
    values = {id(t): _one_sample(s, t.shape, t.dtype, where, arg) for t, s in zip(inputs, given)}

    def value(item):
        if isinstance(item, KerasTensor):
            return values[id(item)]
        if isinstance(item, (list, tuple)):
            return type(item)(value(v) for v in item)
        return item
    for node in model._nodes:
        if node.is_input:
            continue
        args = [value(a) for a in node.args]
        # as the model's own executor calls a node (`x * 0.5`'s operation reads [x, 0.5] as its arguments)
        result = call_layer(node.layer, args[0] if len(args) == 1 else args, False)
        results = result if isinstance(result, (list, tuple)) else [result]
        for tensor, out in zip(node.outputs, results):
            values[id(tensor)] = np.asarray(out)
    outputs = [values[id(node.outputs[0])] for node in model_nodes(model)]
    return values[id(inputs[0])], outputs


def row_labels(model, lang: str = "en") -> List[tuple]:
    """(name, type) of each row of `analyze(model)`: the layers, or a functional model's calls
    ("Conv2D, call 2 of 2" for a shared layer, in `lang`)."""
    if not is_graph_model(model):
        return [(layer.name, type(layer).__name__) for layer in model.layers]
    return [(r.name, r.class_name if r.calls == 1 else label(lang, "call", cls=r.class_name, call=r.call,
                                                              calls=r.calls))
            for r in analyze(model).layers]


def row_layers(model) -> List:
    """The layer of each row of `analyze(model)` (a shared layer once per call)."""
    if not is_graph_model(model):
        return list(model.layers)
    from ..models.analysis_graph import model_nodes
    return [node.layer for node in model_nodes(model)]


def _one_sample(image, input_shape, dtype, where: str, arg: str) -> np.ndarray:
    """One sample as a batch of one, checked against the model input's shape."""
    x = np.asarray(image)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: argument `{arg}` must be a numeric array, got dtype {x.dtype}")
    sample_shape = tuple(input_shape[1:])
    if x.shape == sample_shape:
        x = x[None]
    elif x.shape == sample_shape[:-1] and sample_shape[-1] == 1:
        x = x[None, ..., None]
    elif not (x.ndim == len(input_shape) and x.shape[0] == 1 and
              all(d is None or d == s for d, s in zip(sample_shape, x.shape[1:]))):
        raise ValueError(f"{where}: argument `{arg}` must be one sample of shape {sample_shape} "
                         f"(or {(1,) + sample_shape}), got {x.shape}")
    return x.astype(dtype or "float32")


def data_formats(model) -> List[str]:
    """Each layer's output layout: its own data_format, else the nearest one before it (else after it)."""
    formats = [row.data_format for row in analyze(model).layers]
    fallback = next((f for f in formats if f), "channels_last")
    return [f or fallback for f in formats]


def channels_last(array: np.ndarray, data_format: str) -> np.ndarray:
    """A (1, H, W, C) view of a 4-D output in `data_format`'s layout."""
    return np.moveaxis(array, 1, -1) if data_format == "channels_first" else array


def pick_layers(layers: List, chosen, outputs, where: str) -> List[int]:
    """Indices of the layers to show: the given names/indices/layers, or every conv and pooling layer."""
    if chosen is None:
        return [i for i, (layer, out) in enumerate(zip(layers, outputs))
                if out.ndim == 4 and ("Conv" in type(layer).__name__ or "Pool" in type(layer).__name__)]
    if isinstance(chosen, (str, int)) or hasattr(chosen, "get_config"):
        chosen = [chosen]
    names = [layer.name for layer in layers]
    picked = []
    for item in chosen:
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"{where}: argument `layers`: no layer named {item!r}; the model has "
                                 f"{list(dict.fromkeys(names))}")
            index = names.index(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -len(layers) <= item < len(layers):
                raise ValueError(f"{where}: argument `layers`: index {item} is out of range for "
                                 f"{len(layers)} layers")
            index = int(item) % len(layers)
        elif any(item is layer for layer in layers):
            index = next(i for i, layer in enumerate(layers) if item is layer)
        else:
            raise TypeError(f"{where}: argument `layers` must hold layer names, indices or layers of "
                            f"the model, got {item!r}")
        if outputs[index].ndim != 4:
            raise ValueError(f"{where}: layer {names[index]!r} outputs shape {outputs[index].shape[1:]}, "
                             "not feature maps (H, W, C)")
        if isinstance(item, str) or hasattr(item, "get_config"):   # a shared layer: every call of it
            picked.extend(i for i, layer in enumerate(layers) if layer is layers[index])
        else:
            picked.append(index)
    return picked


def plot_feature_maps(model, image, layers=None, to_file=None, max_channels: int = 32, dpi=96, lang="en",
                      channels=None) -> Figure:
    """Run `image` through the model layer by layer and tile each chosen layer's channels.

    `layers`: names, indices or layer objects (default: every conv and pooling
    layer).  Each layer (and the input image, drawn first) gets its own colour scale
    chosen by its values — sequential from 0 when all are ≥ 0 (an image, ReLU maps),
    else diverging around 0 — shown in a colour bar with its values.  `channels`: the
    channel indices to draw in every chosen layer (a list or range); otherwise the first
    `max_channels`, and a title says "n of m channels shown" when channels are left out.
    Each tile is numbered with its channel.  Returns a `Figure` whose `info["tiles"]`
    lists the channel count drawn per layer and `info["scales"]` each section's scale.
    In a functional model a shared layer's name (or the layer) shows every call,
    an index counts the rows of `analyze(model)` (one per call), and `image` is a
    list of samples when the model has several inputs.  `lang` ("en"/"ko"): the labels' language.
    """
    where = "plot_feature_maps"
    check_lang(lang, where)
    path = check_path(to_file, where)
    dpi = check_dpi(dpi, where)
    max_channels = _check_count(max_channels, "max_channels", where)
    if channels is not None and not isinstance(channels, (int, np.integer, list, tuple, range, np.ndarray)):
        raise TypeError(f"{where}: argument `channels` must be a list or range of channel indices, "
                        f"got {type(channels).__name__}")
    check_model(model, where)
    x, outputs = run_layers(model, image, where)
    picked = pick_layers(row_layers(model), layers, outputs, where)
    drawing, tiles, scales = draw_feature_maps(model, x, outputs, picked, max_channels, lang, channels, where)
    return finish(drawing, path, dpi, where, tiles=tiles, scales=scales)


def draw_feature_maps(model, x: np.ndarray, outputs: List[np.ndarray], picked: List[int], max_channels: int,
                      lang: str = "en", channels=None, where: str = "plot_feature_maps"):
    """The feature-map figure of a forward pass already run: (drawing, [(layer name, tiles drawn)],
    [(section title, Scale)])."""
    labels = row_labels(model, lang)
    formats = data_formats(model)
    sections = [("input", "input", channels_last(x, formats[0]) if x.ndim == 4 else None)]
    sections += [(labels[i][0], labels[i][1], channels_last(outputs[i], formats[i])) for i in picked]
    sections = [s for s in sections if s[2] is not None]

    columns = 8
    blocks = []
    width = 360.0
    for name, kind, maps in sections:
        _, h, w, count = maps.shape
        if kind == "input" or channels is None:
            shown = list(range(min(count, max_channels)))
        else:
            shown = _check_indices(channels, count, max_channels, "channels", where, "channel",
                                       f"; {name!r} has {count} channels")
        cell = max(1.0, math.floor(64.0 / max(h, w))) if max(h, w) <= 64 else 64.0 / max(h, w)
        tile_w, tile_h = w * cell, h * cell
        cols = min(len(shown), columns)
        rows = math.ceil(len(shown) / cols)
        blocks.append((name, kind, maps, shown, tile_w, tile_h, cols, rows))
        width = max(width, 2 * MARGIN + cols * (max(tile_w, 14.0) + TILE_GAP))
    drawing = Drawing(width, 0.0)
    y = MARGIN
    tiles, scales = [], []
    for name, kind, maps, shown, tile_w, tile_h, cols, rows in blocks:
        _, h, w, count = maps.shape
        scale = scale_of(maps[0])
        title = label(lang, "input_image") if kind == "input" else f"{name} ({kind})"
        cut = len(shown) < count
        drawing.text(MARGIN, y + 14, label(lang, "maps_title", label=title, h=h, w=w, channels=count)
                     + (label(lang, "maps_shown", shown=len(shown), channels=count) if cut else ""),
                     size=12, weight="bold", css_class="maps-title")
        y += 24
        step_w, step_h = max(tile_w, 14.0) + TILE_GAP, tile_h + TILE_GAP + 11
        for k, channel in enumerate(shown):
            r, c = divmod(k, cols)
            tx, ty = MARGIN + c * step_w, y + r * step_h
            drawing.image(tx, ty, tile_w, tile_h, scale_rgb(maps[0, :, :, channel], scale),
                          css_class="input-tile" if kind == "input" else "tile",
                          title=label(lang, "map_tile", label=title, channel=channel))
            drawing.rect(tx, ty, tile_w, tile_h, stroke="#bbbbbb", stroke_width=0.5, css_class="tile-frame")
            drawing.text(tx + tile_w / 2, ty + tile_h + 9, str(channel), size=8, anchor="middle", fill="#555555",
                         css_class="channel-label")
        y += rows * step_h + 4
        y += draw_colorbar(drawing, MARGIN, y, 200.0, scale,
                           label(lang, "activation_value" if kind != "input" else "pixel"),
                           label(lang, "scale_" + scale.kind)) + 18
        scales.append((name, scale))
        if kind != "input":
            tiles.append((name, len(shown)))
    y = _draw_prediction(drawing, model, outputs[-1], y, lang)
    drawing.height = y + MARGIN - 18
    return drawing, tiles, scales


def _draw_prediction(drawing, model, output: np.ndarray, y: float, lang: str) -> float:
    """The sample followed to the end: the predicted class and the top-5 probabilities as bars (a classifier)."""
    read = class_probabilities(output, final_activation(analyze(model).layers)) if np.ndim(output) == 2 else None
    if read is None:
        return y
    probs, source = read
    order = np.argsort(-probs, kind="stable")[:5]
    drawing.text(MARGIN, y + 14, label(lang, "predicted", cls=int(order[0]), p=100 * probs[order[0]])
                 + ("" if source != "softmax of logits" else label(lang, "from_logits")), size=12, weight="bold")
    y += 24
    for k in order:
        drawing.text(MARGIN + 24, y + 10, str(int(k)), size=10, anchor="end", fill="#333333")
        drawing.rect(MARGIN + 30, y + 1, 200, 10, fill="#e8edf2")
        drawing.rect(MARGIN + 30, y + 1, max(200 * probs[k], 0.5), 10, fill="#1f4e79" if k == order[0] else "#6b8fb5",
                     css_class="probability")
        drawing.text(MARGIN + 236, y + 10, f"{100 * probs[k]:.1f}%", size=10, fill="#333333")
        y += 15
    return y + 22
