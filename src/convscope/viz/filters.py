"""`plot_filters` and `plot_feature_maps`: look at kernels and activations with your own eyes.

A Conv2D layer with `filters` filters on `in` input channels holds
in/groups × filters two-dimensional kernels (seed 000's point: kernels are not
filters), so `plot_filters` draws exactly that grid: one row per input channel
of a group, one column per filter.  Both functions share one diverging colour
scale per figure (filters) or per layer (feature maps), shown as a colour bar.
"""

from __future__ import annotations

import math
from typing import List

import numpy as np

from ..models.analysis import analyze, is_graph_model
from ._model import check_dpi, check_model, check_path, shape_of
from .colors import diverging_rgb, draw_colorbar, symmetric_limit
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


def plot_filters(layer, to_file=None, max_inputs: int = 16, max_filters: int = 64, dpi=96, lang="en") -> Figure:
    """One tile per 2-D kernel of a conv layer: rows = input channels per group, columns = filters.

    All tiles share one blue-white-red scale (±largest |weight|) shown in the
    colour bar.  Large layers are cut to `max_inputs` rows and `max_filters`
    columns (the title says how many are shown).  Writes `to_file` (.svg/.png)
    when given; returns a `Figure` whose `info` has `rows`, `cols`, `kernels`.  `lang`: "en" or "ko",
    the language of every label.
    """
    where = "plot_filters"
    check_lang(lang, where)
    path = check_path(to_file, where)
    dpi = check_dpi(dpi, where)
    max_inputs = _check_count(max_inputs, "max_inputs", where)
    max_filters = _check_count(max_filters, "max_filters", where)
    kernel = conv_kernel(layer, where)
    kh, kw, per_group, filters = kernel.shape
    rows, cols = min(per_group, max_inputs), min(filters, max_filters)
    shown = kernel[:, :, :rows, :cols]
    vmax = symmetric_limit(kernel)
    cell = max(2.0, min(16.0, 48.0 / max(kh, kw)))
    tile_w, tile_h = kw * cell, kh * cell
    label_w = 46.0
    title = label(lang, "kernels_title", name=layer.name, cls=type(layer).__name__, per=per_group,
                  filters=filters, count=per_group * filters, kh=kh, kw=kw)
    subtitle = label(lang, "kernels_sub", rows=rows, per=per_group, cols=cols, filters=filters)
    grid_w = cols * (tile_w + TILE_GAP)
    width = max(MARGIN * 2 + label_w + grid_w, text_width(title, 13) + 2 * MARGIN,
                text_width(subtitle, 10) + 2 * MARGIN, 320)
    top = MARGIN + 40.0
    height = top + 14 + rows * (tile_h + TILE_GAP) + 50
    drawing = Drawing(width, height)
    drawing.text(MARGIN, MARGIN + 12, title, size=13, weight="bold")
    drawing.text(MARGIN, MARGIN + 28, subtitle, size=10, fill="#444444")
    x0, y0 = MARGIN + label_w, top + 14
    for col in range(cols):
        if cols <= 32 or col % 4 == 0:
            drawing.text(x0 + col * (tile_w + TILE_GAP) + tile_w / 2, y0 - 4, label(lang, "filter_col", col=col),
                         size=8,
                         anchor="middle", fill="#555555")
    for row in range(rows):
        drawing.text(x0 - 6, y0 + row * (tile_h + TILE_GAP) + tile_h / 2 + 3, label(lang, "input_row", row=row),
                     size=8,
                     anchor="end", fill="#555555")
        for col in range(cols):
            drawing.image(x0 + col * (tile_w + TILE_GAP), y0 + row * (tile_h + TILE_GAP), tile_w, tile_h,
                          diverging_rgb(shown[:, :, row, col], vmax), css_class="tile",
                          title=label(lang, "kernel_tile", row=row, col=col))
    draw_colorbar(drawing, MARGIN, height - 40, min(240.0, width - 2 * MARGIN - 60), vmax, label(lang, "weight"))
    return finish(drawing, path, dpi, where, rows=rows, cols=cols, kernels=per_group * filters, vmax=vmax)


def run_layers(model, image, where: str, arg: str = "image"):
    """Run one sample through `model.layers` one by one; returns (input batch, [outputs]).

    A functional model runs node by node (`run_nodes`): one output per row of
    `analyze(model)`, i.e. per call of a layer.  `arg` names the caller's argument in
    error messages.
    """
    layers = check_model(model, where)
    if is_graph_model(model):
        return run_nodes(model, image, where, arg)
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
        result = node.layer(args[0] if len(args) == 1 else args, training=False)
        results = result if isinstance(result, (list, tuple)) else [result]
        for tensor, out in zip(node.outputs, results):
            values[id(tensor)] = np.asarray(out)
    outputs = [values[id(node.outputs[0])] for node in model_nodes(model)]
    return values[id(inputs[0])], outputs


def row_labels(model) -> List[tuple]:
    """(name, type) of each row of `analyze(model)`: the layers, or a functional model's calls
    ("Conv2D, call 2 of 2" for a shared layer)."""
    if not is_graph_model(model):
        return [(layer.name, type(layer).__name__) for layer in model.layers]
    return [(r.name, r.class_name if r.calls == 1 else f"{r.class_name}, call {r.call} of {r.calls}")
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


def plot_feature_maps(model, image, layers=None, to_file=None, max_channels: int = 32, dpi=96, lang="en") -> Figure:
    """Run `image` through the model layer by layer and tile each chosen layer's channels.

    `layers`: names, indices or layer objects (default: every conv and pooling
    layer).  Each layer gets its own blue-white-red scale (±largest |value| of
    that layer) with a colour bar; the input image is drawn first.  Returns a
    `Figure` whose `info["tiles"]` lists the channel count drawn per layer.
    In a functional model a shared layer's name (or the layer) shows every call,
    an index counts the rows of `analyze(model)` (one per call), and `image` is a
    list of samples when the model has several inputs.  `lang` ("en"/"ko"): the labels' language.
    """
    where = "plot_feature_maps"
    check_lang(lang, where)
    path = check_path(to_file, where)
    dpi = check_dpi(dpi, where)
    max_channels = _check_count(max_channels, "max_channels", where)
    check_model(model, where)
    x, outputs = run_layers(model, image, where)
    picked = pick_layers(row_layers(model), layers, outputs, where)
    drawing, tiles = draw_feature_maps(model, x, outputs, picked, max_channels, lang)
    return finish(drawing, path, dpi, where, tiles=tiles)


def draw_feature_maps(model, x: np.ndarray, outputs: List[np.ndarray], picked: List[int], max_channels: int,
                      lang: str = "en"):
    """The feature-map figure of a forward pass already run: (drawing, [(layer name, tiles drawn)])."""
    labels = row_labels(model)
    formats = data_formats(model)
    sections = [("input", "input", channels_last(x, formats[0]) if x.ndim == 4 else None)]
    sections += [(labels[i][0], labels[i][1], channels_last(outputs[i], formats[i])) for i in picked]
    sections = [s for s in sections if s[2] is not None]

    columns = 8
    blocks = []
    width = 360.0
    for name, kind, maps in sections:
        _, h, w, channels = maps.shape
        shown = min(channels, max_channels)
        cell = max(1.0, math.floor(64.0 / max(h, w))) if max(h, w) <= 64 else 64.0 / max(h, w)
        tile_w, tile_h = w * cell, h * cell
        cols = min(shown, columns)
        rows = math.ceil(shown / cols)
        blocks.append((name, kind, maps, shown, tile_w, tile_h, cols, rows))
        width = max(width, 2 * MARGIN + cols * (tile_w + TILE_GAP))
    drawing = Drawing(width, 0.0)
    y = MARGIN
    tiles = []
    for name, kind, maps, shown, tile_w, tile_h, cols, rows in blocks:
        _, h, w, channels = maps.shape
        vmax = symmetric_limit(maps[0, :, :, :shown])
        title = label(lang, "input_image") if kind == "input" else f"{name} ({kind})"
        drawing.text(MARGIN, y + 14, label(lang, "maps_title", label=title, h=h, w=w, channels=channels)
                     + (label(lang, "maps_shown", shown=shown, channels=channels) if shown < channels else ""),
                     size=12, weight="bold")
        y += 24
        for channel in range(shown):
            r, c = divmod(channel, cols)
            drawing.image(MARGIN + c * (tile_w + TILE_GAP), y + r * (tile_h + TILE_GAP), tile_w, tile_h,
                          diverging_rgb(maps[0, :, :, channel], vmax),
                          css_class="input-tile" if kind == "input" else "tile",
                          title=label(lang, "map_tile", label=title, channel=channel))
        y += rows * (tile_h + TILE_GAP) + 4
        y += draw_colorbar(drawing, MARGIN, y, 200.0, vmax,
                           label(lang, "activation_value" if kind != "input" else "pixel")) + 18
        if kind != "input":
            tiles.append((name, shown))
    y = _draw_prediction(drawing, model, outputs[-1], y, lang)
    drawing.height = y + MARGIN - 18
    return drawing, tiles


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
