"""Where a conv model looks: saliency maps and Grad-CAM, as arrays and as pictures.

Both take any single-input conv model (Sequential or graph) and one image (H, W, C) or a
batch (N, H, W, C) (channels first when the model's layers are), and score a class —
`class_index`, default the predicted class of each image — on its logit: the last layer's
output before its activation, as keras.io's "Grad-CAM class activation visualization"
does (`model.layers[-1].activation = None`).  The gradients come from
`convscope.gradients` (the model's own backward pass).

* `saliency(model, image, class_index=None, smooth_samples=0)`: the vanilla gradient map,
  |d score / d pixel| maximised over the channels (Simonyan et al. 2014); with
  `smooth_samples` > 0, SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy
  copies of the image (noise of standard deviation `noise` × the image's value range)
  before the magnitude is taken.  Each map is divided by its maximum: values in [0, 1].
* `gradcam(model, image, layer=None, class_index=None)`: Grad-CAM (Selvaraju et al. 2017):
  the layer's channels weighted by the mean gradient of the score over each channel's
  positions, summed, ReLU'd, upsampled bilinearly to the input size (`ops.resize2d`,
  PyTorch's `interpolate(align_corners=False)`), divided by its maximum: values in [0, 1]
  (an all-zero map stays zero).  `layer` (name or layer object) defaults to the last conv
  layer (Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose) in execution order.
* `heatmap_rgb`, `overlay` (the jet colours over the image, as the keras.io example) and
  `plot_saliency` / `plot_gradcam`, which draw the image, the map and the overlay as a
  `Figure` (SVG, or PNG with Pillow).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .. import backend
from ..explain.gradients import gradient_trace, resolve_layer
from ..models.subclassed import is_subclassed
from ..ops.resize import resize2d
from ._model import check_dpi, check_path, shape_of
from .svg import Drawing, Figure, finish

__all__ = ["saliency", "gradcam", "last_conv_layer", "heatmap_rgb", "overlay", "plot_saliency", "plot_gradcam"]

CONV_KINDS = ("conv2d", "depthwise_conv2d", "separable_conv2d", "conv2d_transpose")
PANEL = 160.0
MARGIN = 16.0


# -- maps -----------------------------------------------------------------------------------------

def saliency(model, image, class_index=None, *, smooth_samples: int = 0, noise: float = 0.15,
             seed: Optional[int] = None) -> np.ndarray:
    """The saliency map(s) of `image` for `class_index`: (H, W) for one image, (N, H, W) for a batch;
    float32 in [0, 1].  `smooth_samples` > 0 averages that many noisy gradients (SmoothGrad),
    drawn from `np.random.default_rng(seed)`."""
    where = "saliency"
    smooth_samples = _check_int(smooth_samples, "smooth_samples", where, minimum=0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)) or not noise > 0:
        raise ValueError(f"{where}: argument `noise` must be a positive number (a fraction of the image's "
                         f"value range), got {noise!r}")
    x, single, channel_axis = _batch(model, image, where)
    classes = _classes(model, x, class_index, where)
    if smooth_samples == 0:
        grad = gradient_trace(model, x, classes, where=where).input_grads[0]
    else:
        rng = np.random.default_rng(seed)
        spread = float(noise) * (x.max(axis=tuple(range(1, x.ndim)), keepdims=True)
                                 - x.min(axis=tuple(range(1, x.ndim)), keepdims=True))
        grad = np.zeros_like(x)
        for _ in range(smooth_samples):
            noisy = (x + rng.standard_normal(x.shape) * spread).astype(x.dtype)
            grad += gradient_trace(model, noisy, classes, where=where).input_grads[0]
        grad /= smooth_samples
    maps = _normalize(np.abs(grad).max(axis=channel_axis))
    return maps[0] if single else maps


def gradcam(model, image, layer=None, class_index=None) -> np.ndarray:
    """The Grad-CAM heat map(s) of `image` for `class_index` at `layer`: (H, W) for one image,
    (N, H, W) for a batch, at the input's size; float32 in [0, 1].  See the module docstring."""
    where = "gradcam"
    x, single, _ = _batch(model, image, where)
    name = last_conv_layer(model).name if layer is None else _layer_name(model, layer, where)
    _check_feature_maps(name, shape_of(model.get_layer(name), "output_shape"), where)
    classes = _classes(model, x, class_index, where)
    trace = gradient_trace(model, x, classes, layers=[name], where=where)
    maps, grads = trace.values[name], trace.grads[name]
    _check_feature_maps(name, maps.shape, where)
    if _data_format(model.get_layer(name), model) == "channels_first":
        maps, grads = np.moveaxis(maps, 1, -1), np.moveaxis(grads, 1, -1)
    weights = grads.mean(axis=(1, 2), keepdims=True)                     # (N, 1, 1, C)
    cam = np.maximum((maps * weights).sum(axis=-1), 0).astype(np.float32)     # (N, h, w)
    height, width = _spatial(x, model)
    cam = resize2d(cam[..., None], (height, width), "bilinear", "NHWC")[..., 0]
    cam = _normalize(np.maximum(cam, 0))
    return cam[0] if single else cam


def _check_feature_maps(name: str, shape, where: str) -> None:
    if shape is not None and len(shape) != 4:
        raise ValueError(f"{where}: argument `layer`: layer {name!r} outputs shape {tuple(shape[1:])}, not feature "
                         "maps (H, W, C); pick a conv layer or one after it that keeps the spatial axes")


def last_conv_layer(model):
    """The last convolution layer of `model` in execution order (for `gradcam`'s default), or the last
    nested model that outputs feature maps (a transfer-learning base such as MobileNetV2)."""
    from ..models.training import Model
    layers = _check_model(model, "gradcam")
    for layer in reversed(layers):
        if layer.describe().kind in CONV_KINDS or (isinstance(layer, Model) and _maps_out(layer)):
            return layer
    raise ValueError(f"gradcam: argument `layer`: {model._describe()} has no conv layer "
                     f"({', '.join(CONV_KINDS)}) to default to; name one of its layers "
                     f"{[layer.name for layer in layers]}")


def _maps_out(model) -> bool:
    """Whether a nested model's (single) output is 4-D feature maps."""
    try:
        return len(tuple(model.output_shape)) == 4
    except (AttributeError, TypeError, ValueError):
        return False


# -- pictures -------------------------------------------------------------------------------------

def heatmap_rgb(heatmap) -> np.ndarray:
    """uint8 RGB of a map with values in [0, 1] on the jet colour scale (blue 0, red 1)."""
    t = np.clip(np.nan_to_num(np.asarray(heatmap, np.float64)), 0.0, 1.0)[..., None]
    rgb = np.clip(1.5 - np.abs(4.0 * t - np.array([3.0, 2.0, 1.0])), 0.0, 1.0)
    return np.round(rgb * 255).astype(np.uint8)


def overlay(image, heatmap, alpha: float = 0.4) -> np.ndarray:
    """uint8 RGB: the image (its values stretched to 0..255, grey for one channel) with the heat
    map's jet colours over it at opacity `alpha`; `image` (H, W[, C]) channels last."""
    where = "overlay"
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) or not 0 <= alpha <= 1:
        raise ValueError(f"{where}: argument `alpha` must be a number in [0, 1], got {alpha!r}")
    heat = np.asarray(heatmap)
    base = _image_rgb(image, where)
    if heat.shape != base.shape[:2]:
        raise ValueError(f"{where}: argument `heatmap` must have the image's size {base.shape[:2]}, got "
                         f"shape {heat.shape}")
    mixed = (1.0 - alpha) * base.astype(np.float64) + alpha * heatmap_rgb(heat).astype(np.float64)
    return np.round(mixed).astype(np.uint8)


def plot_gradcam(model, image, layer=None, class_index=None, to_file=None, alpha: float = 0.4,
                 dpi=96) -> Figure:
    """Draw one image, its Grad-CAM map and the overlay side by side; written to `to_file` (.svg or
    .png) when given.  `info`: "class_index", "layer" and "heatmap"."""
    where = "plot_gradcam"
    path, dpi = check_path(to_file, where), check_dpi(dpi, where)
    x, _, _ = _batch(model, image, where, one=True)
    name = last_conv_layer(model).name if layer is None else _layer_name(model, layer, where)
    klass = _classes(model, x, class_index, where)
    heat = gradcam(model, x, name, klass)[0]
    title = f"Grad-CAM of class {int(klass[0])} at layer '{name}'"
    drawing = _panels(_image_rgb(_channels_last(x, model)[0], where), heat, alpha, title, where)
    return finish(drawing, path, dpi, where, class_index=int(klass[0]), layer=name, heatmap=heat)


def plot_saliency(model, image, class_index=None, to_file=None, smooth_samples: int = 0, alpha: float = 0.4,
                  dpi=96, seed: Optional[int] = None) -> Figure:
    """Draw one image, its saliency map and the overlay side by side (see `plot_gradcam`)."""
    where = "plot_saliency"
    path, dpi = check_path(to_file, where), check_dpi(dpi, where)
    x, _, _ = _batch(model, image, where, one=True)
    klass = _classes(model, x, class_index, where)
    heat = saliency(model, x, klass, smooth_samples=smooth_samples, seed=seed)[0]
    title = f"{'SmoothGrad' if smooth_samples else 'Saliency'} of class {int(klass[0])}"
    drawing = _panels(_image_rgb(_channels_last(x, model)[0], where), heat, alpha, title, where)
    return finish(drawing, path, dpi, where, class_index=int(klass[0]), heatmap=heat)


def _panels(image_rgb: np.ndarray, heat: np.ndarray, alpha: float, title: str, where: str) -> Drawing:
    height, width = heat.shape
    scale = PANEL / max(height, width)
    w, h = width * scale, height * scale
    drawing = Drawing(2 * MARGIN + 3 * w + 2 * MARGIN, 2 * MARGIN + 24 + h + 20)
    drawing.text(MARGIN, MARGIN + 12, title, size=13, weight="bold")
    top = MARGIN + 24
    pictures = (("image", image_rgb), ("heat map", heatmap_rgb(heat)), ("overlay", overlay(image_rgb, heat, alpha)))
    for column, (label, rgb) in enumerate(pictures):
        left = MARGIN + column * (w + MARGIN)
        drawing.image(left, top, w, h, rgb, css_class="heatmap", title=label)
        drawing.text(left + w / 2, top + h + 14, label, size=11, anchor="middle", fill="#444444")
    return drawing


# -- arguments ------------------------------------------------------------------------------------

def _check_model(model, where: str) -> List:
    from ..models.functional import Functional
    from ..models.sequential import Sequential
    if not isinstance(model, (Sequential, Functional)):
        subclassed = ", a subclassed model (its own `call`), not read yet" if is_subclassed(model) else ""
        raise TypeError(f"{where}: argument `model` must be a convscope model (Sequential or "
                        f"keras.Model(inputs, outputs)), got {type(model).__name__}{subclassed}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:
        raise ValueError(f"{where}: argument `model` {model._describe()} is not built (its input shape is "
                         "unknown); build it, or give its first layer an Input, first") from None
    if len(inputs) != 1:
        raise ValueError(f"{where}: argument `model` must have one input (an image), it has {len(inputs)}")
    if len(outputs) != 1:
        raise ValueError(f"{where}: argument `model` must have one output (the class scores), it has "
                         f"{len(outputs)}; for one of them use convscope.gradients with a callable target")
    return model.layers


def _check_int(value, arg: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: argument `{arg}` must be an int >= {minimum}, got {value!r}")
    return int(value)


def _layer_name(model, layer, where: str) -> str:
    return resolve_layer(model, layer, f"{where}: argument `layer`")


def _batch(model, image, where: str, one: bool = False) -> Tuple[np.ndarray, bool, int]:
    """(the image(s) as a float batch, whether one image was given, the channel axis)."""
    _check_model(model, where)
    shape = getattr(model, "input_shape", None)
    if shape is None or len(shape) != 4:
        raise ValueError(f"{where}: argument `model` must take images (N, H, W, C), its input is {shape}")
    x = np.asarray(image)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: argument `image` must be a numeric array, got dtype {x.dtype}")
    sample = tuple(shape[1:])
    single = x.ndim == 3 or (x.ndim == 2 and sample[-1] == 1)
    if single:
        x = x[None] if x.ndim == 3 else x[None, ..., None]
    if x.ndim != 4 or any(d is not None and d != s for d, s in zip(sample, x.shape[1:])) or not len(x):
        raise ValueError(f"{where}: argument `image` must be one image of shape {sample} or a batch "
                         f"(N,) + {sample}, got shape {np.asarray(image).shape}")
    if one and len(x) != 1:
        raise ValueError(f"{where}: argument `image` must be one image of shape {sample}, got a batch of {len(x)}")
    dtype = np.dtype(model.dtype if isinstance(getattr(model, "dtype", None), str) else "float32")
    x = x.astype(dtype if dtype.kind == "f" else np.float32, copy=False)
    return x, single, (1 if _input_format(model) == "channels_first" else 3)


def _classes(model, x: np.ndarray, class_index, where: str) -> np.ndarray:
    """One class per image: `class_index` (an int or one per image) or the predicted class."""
    if class_index is None:
        outputs = np.asarray(model.predict(x, verbose=0))
        if outputs.ndim != 2:
            raise ValueError(f"{where}: the model's outputs have shape {outputs.shape[1:]}, not class scores; "
                             "pass `class_index` (or use convscope.gradients with an output unit)")
        return outputs.argmax(axis=1)
    given = np.asarray(class_index)
    if (isinstance(class_index, bool) or given.dtype.kind not in "iu" or given.ndim > 1
            or (given.ndim == 1 and len(given) != len(x))):
        raise ValueError(f"{where}: argument `class_index` must be None (the predicted class), an int or one "
                         f"int per image ({len(x)}), got {class_index!r}")
    classes = np.broadcast_to(given, (len(x),)).astype(np.int64)
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int):
        bad = classes[(classes < 0) | (classes >= shape[1])]
        if bad.size:
            raise ValueError(f"{where}: argument `class_index`: class {int(bad[0])} is out of range for "
                             f"{shape[1]} classes (0 to {shape[1] - 1})")
    return classes


def _input_format(model) -> str:
    for layer in model.layers:
        fmt = getattr(layer, "data_format", None)
        if fmt in ("channels_first", "channels_last"):
            return fmt
    return backend.image_data_format()


def _data_format(layer, model) -> str:
    fmt = getattr(layer, "data_format", None)
    return fmt if fmt in ("channels_first", "channels_last") else _input_format(model)


def _spatial(x: np.ndarray, model) -> Tuple[int, int]:
    return x.shape[2:4] if _input_format(model) == "channels_first" else x.shape[1:3]


def _channels_last(x: np.ndarray, model) -> np.ndarray:
    return np.moveaxis(x, 1, -1) if _input_format(model) == "channels_first" else x


def _image_rgb(image, where: str) -> np.ndarray:
    """uint8 RGB of an (H, W) or (H, W, C) image, its values stretched to 0..255."""
    array = np.asarray(image, np.float64)
    if array.ndim == 3 and array.shape[-1] != 3:
        array = array.mean(axis=-1)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3:
        raise ValueError(f"{where}: argument `image` must have shape (H, W) or (H, W, C), got {array.shape}")
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return np.round(np.nan_to_num(scaled) * 255).astype(np.uint8)


def _normalize(maps: np.ndarray) -> np.ndarray:
    """Each map (axis 0) divided by its maximum; an all-zero map stays zero.  float32."""
    peak = maps.reshape(len(maps), -1).max(axis=1)
    peak = np.where(peak > 0, peak, 1.0).reshape((-1,) + (1,) * (maps.ndim - 1))
    return (maps / peak).astype(np.float32)
