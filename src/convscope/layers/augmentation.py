"""Keras 3's augmentation layers: `RandomFlip`, `RandomCrop`, `RandomBrightness`, `RandomContrast`
(and their base; the affine ones — rotation, zoom, translation — are in `augmentation_affine.py`).

They change images in training only (`forward(x, training=True)`, which `fit` passes) and are the
identity at inference, except `RandomCrop`, which then takes the centred window so that the output
keeps its declared shape (Keras 3.15.1 returns the uncropped input there, which breaks any layer
after it; convscope follows the centred path Keras' own code computes for it).  As in Keras, a
layer called on its own (`layer(images)`) augments: its `__call__` defaults to `training=True`.

Random draws come from the layer's own generator when `seed` is given, else from convscope's
(`utils.set_random_seed`); one draw per image (RandomCrop: one window per batch, as Keras).  The
parameters of a call travel in its ctx, never on the layer.  Keras' generator (torch's) is not
reproduced: the same seed gives other numbers than Keras, with the same distributions.

Backward: every map here is linear in the images (flip, crop, shift, contrast about the mean),
then clipped to `value_range` by the colour layers; the gradient is exact (the clip's as torch's
clamp: passed where the value lies in [low, high]).
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, Optional

import numpy as np

from .. import _rng, backend
from ..ops import augment
from . import graph
from .autodiff import NOT_GIVEN, resolve_training
from .base import Layer, Shape, check_kept_for_backward, check_positive_int, normalize_data_format
from .conv2d import call_on_images, check_image_rank, ops_format, sized_image_shape, spatial_dims
from .spec import LayerSpec

_IDENTITY = "identity"      # the ctx of a call that changed nothing: the gradient passes unchanged


# -- argument checks shared by the augmentation layers -----------------------------------------
def check_seed(seed, where: str) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{where}: argument `seed` must be None or a non-negative int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"{where}: argument `seed` must be None or a non-negative int, got {seed!r}")
    return int(seed)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _plain(value):
    """A Python int/float (NumPy scalars too), so configs stay JSON."""
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _numbers(factor, arg: str, where: str, expected: str):
    """`factor` as a number or a pair of finite numbers (Python types), else TypeError/ValueError."""
    pair = isinstance(factor, (tuple, list))
    items = list(factor) if pair else [factor]
    if pair and len(items) != 2 or not all(_is_number(v) for v in items):
        kind = ValueError if pair and all(_is_number(v) for v in items) else TypeError
        raise kind(f"{where}: argument `{arg}` must be {expected}, got {factor!r}")
    if not all(np.isfinite(float(v)) for v in items):
        raise ValueError(f"{where}: argument `{arg}` must be {expected} (finite), got {factor!r}")
    return pair, [_plain(v) for v in items]


def keras_factor(factor, bounds, where: str, arg: str = "factor"):
    """(lower, upper) as Keras' BaseImagePreprocessingLayer._set_factor: a number f in bounds gives
    (max(-|f|, low), |f|); a pair is sorted (refused only when its first is above the high bound or
    its second below the low one, as Keras)."""
    low, high = bounds
    expected = f"a number or a list of two numbers in [{low}, {high}]"
    pair, values = _numbers(factor, arg, where, expected)
    if pair:
        if values[0] > high or values[1] < low:
            raise ValueError(f"{where}: argument `{arg}` must be {expected}, got {factor!r}")
        return tuple(sorted(values))
    if not low <= values[0] <= high:
        raise ValueError(f"{where}: argument `{arg}` must be {expected}, got {factor!r}")
    value = abs(values[0])
    return max(-value, low), value


def axis_factor(factor, where: str, arg: str, low_open: bool = False):
    """(lower, upper) of RandomZoom's and RandomTranslation's per-axis factors: each number in
    [-1, 1] ((-1, 1] for zoom); a number f gives (-|f|, |f|), a pair is sorted."""
    expected = f"a number or a list of two numbers in {'(' if low_open else '['}-1.0, 1.0]"
    pair, values = _numbers(factor, arg, where, expected)
    if any(v > 1.0 or v < -1.0 or (low_open and v == -1.0) for v in values):
        raise ValueError(f"{where}: argument `{arg}` must be {expected}, got {factor!r}")
    if pair:
        return tuple(sorted(values))
    return -abs(values[0]), abs(values[0])


def check_value_range(value_range, where: str):
    """A list [low, high] of two finite numbers (as given; RandomBrightness sorts it)."""
    pair, values = _numbers(value_range, "value_range", where, "a list of two numbers [low, high]")
    if not pair:
        raise TypeError(f"{where}: argument `value_range` must be a list of two numbers [low, high], "
                        f"got {value_range!r}")
    return values


def augmenting(training) -> bool:
    """An augmentation layer's `training` (`autodiff.resolve_training`, its default True): as passed (None:
    False, as Keras' `if training:`), else the enclosing call's, else True."""
    return bool(resolve_training(training, True))


def check_data_dict(layer, data: dict) -> None:
    """Keras' dict input: 'images', and 'labels' at most (convscope transforms no bounding boxes or masks)."""
    if "images" not in data or set(data) - {"images", "labels"}:
        raise ValueError(f"{layer._describe()}: a dict input must hold 'images' and may hold 'labels' (convscope "
                         f"transforms no bounding boxes or masks), got keys {sorted(data)}")
    if "labels" in data and np.ndim(data["images"]) == 4 and np.ndim(data["labels"]) >= 1 and \
            len(np.asarray(data["labels"])) != len(np.asarray(data["images"])):
        raise ValueError(f"{layer._describe()}: the dict's 'labels' must hold one label per image "
                         f"({len(np.asarray(data['images']))}), got {len(np.asarray(data['labels']))}")


# -- the base ---------------------------------------------------------------------------------
class BaseAugmentation(Layer):
    """What every augmentation layer shares: seed, data_format, the training-only switch, Keras'
    standalone default (training=True), unbatched (rank-3) images on a standalone call, and the
    per-call ctx.  Subclasses write `_draw(x, rng) -> params` (this call's random parameters for images
    shaped as x), `_apply(x, params) -> (y, ctx)` (the map; RandAugment draws first and applies later),
    `_backward(ctx, grad)` and,
    where inference is not the identity, `_infer(x)`."""

    casts_integer_inputs = True           # uint8 pixels, as Keras casts them (plan.layer_input)

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, seed=None, data_format=None, bounding_box_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.seed = check_seed(seed, where)
        self._generator = None if self.seed is None else np.random.default_rng(self.seed)
        self.data_format = normalize_data_format(data_format, where)
        if bounding_box_format is not None:
            raise ValueError(f"{where}: argument `bounding_box_format` must be None (convscope transforms "
                             f"images only, not bounding boxes), got {bounding_box_format!r}")

    TRAINING_DEFAULT = True         # Keras' `call(data, training=True)`

    def __call__(self, inputs, training=NOT_GIVEN):
        """Keras' call: augments where `training` is True — as passed (None: not), else the enclosing call's,
        else True (Keras' default); takes one image (rank 3) or a batch, or Keras' dict `{"images": ...,
        "labels": ...}` (the labels as they are; MixUp and CutMix mix them)."""
        if graph.is_symbolic(inputs):
            return super().__call__(inputs)
        training = augmenting(training)
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        return call_on_images(lambda x, t: super(BaseAugmentation, self).__call__(x, training=t), inputs, training)

    def _call_dict(self, data: dict, training) -> dict:
        """Keras' dict form: the images through the layer, the labels as they are (other keys refused)."""
        check_data_dict(self, data)
        out = dict(data)
        out["images"] = self(np.asarray(data["images"]), training=training)
        return out

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        return input_shape

    def describe(self):
        """"augment": random in training, the identity at inference (what analysis and explain follow)."""
        return LayerSpec(kind="augment", data_format=self.data_format)

    def _random(self) -> np.random.Generator:
        return self._generator if self._generator is not None else _rng.generator()

    def _format(self) -> str:
        return ops_format(self.data_format)

    def _size(self, x: np.ndarray):
        """(height, width) of the images of `x`."""
        return spatial_dims(x.shape, self.data_format)

    def forward(self, inputs: np.ndarray, training: bool = False):
        if not training:
            return self._infer(inputs)
        outputs, ctx = self._augment(inputs, self._random())
        return outputs, (ctx if backend.keeps_for_backward() else None)

    def _augment(self, x, rng):
        """(the images of one training call, its ctx): this call's draw, applied."""
        return self._apply(x, self._draw(x, rng))

    def _infer(self, inputs: np.ndarray):
        return inputs, _IDENTITY

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        if not need_input_grad:
            return None, []
        if isinstance(ctx, str) and ctx == _IDENTITY:
            return grad_output, []
        check_kept_for_backward(self, ctx)
        return self._backward(ctx, grad_output), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


# -- the layers -------------------------------------------------------------------------------
_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


class RandomFlip(BaseAugmentation):
    """Mirrors each image with probability 1/2: left-right ("horizontal"), top-bottom ("vertical") or
    both at once ("horizontal_and_vertical": one draw per image flips both axes, as Keras)."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in _FLIP_MODES:
            raise ValueError(f"{self._describe()}: argument `mode` must be one of {_FLIP_MODES}, got {mode!r}")
        self.mode = mode

    def _draw(self, x, rng):
        return rng.uniform(size=x.shape[0]) <= 0.5

    def _apply(self, x, flips):
        return self._flip(x, flips), flips

    def _flip(self, x, flips):
        return augment.flip(x, flips, self.mode != "vertical", self.mode != "horizontal", self._format())

    def _backward(self, flips, grad_output):
        return self._flip(grad_output, flips)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"seed": self.seed, "mode": self.mode})
        return config


class RandomCrop(BaseAugmentation):
    """Crops a random (height, width) window, one per batch (Keras); an input not larger than the
    target on both axes takes Keras' centred window, resized bilinearly when it is smaller.
    At inference: the centred window, so the output has the declared shape."""

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.height = check_positive_int(height, "height", where)
        self.width = check_positive_int(width, "width", where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return sized_image_shape(self, input_shape)

    def describe(self):
        """At inference the layer cuts a fixed window: for an input at least the target's size it reads
        as a Cropping2D (kind "crop2d" with its pads); otherwise (a resize) as "other"."""
        shape = self._build_input_shape
        if shape is not None and len(shape) == 4:
            height, width = spatial_dims(shape, self.data_format)
            if height is not None and width is not None and height >= self.height and width >= self.width:
                top, left = augment.center_crop_window(height, width, self.height, self.width)
                pads = ((top, height - top - self.height), (left, width - left - self.width))
                return LayerSpec(kind="crop2d", data_format=self.data_format, pads=pads)
        return LayerSpec(kind="other", data_format=self.data_format)

    def _window(self, x, rng):
        height, width = self._size(x)
        if rng is not None and height > self.height and width > self.width:
            top = min(int(rng.uniform(0, height - self.height + 1)), height - self.height)
            left = min(int(rng.uniform(0, width - self.width + 1)), width - self.width)
            return top, left
        return augment.center_crop_window(height, width, self.height, self.width)

    def _draw(self, x, rng):
        return self._window(x, rng)

    def _apply(self, x, window):
        return augment.crop_resize_forward(x, window[0], window[1], (self.height, self.width), self._format())

    def _infer(self, inputs):
        outputs, ctx = self._augment(inputs, None)
        return outputs, (ctx if backend.keeps_for_backward() else None)

    def _backward(self, ctx, grad_output):
        return augment.crop_resize_backward(grad_output, ctx)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height": self.height, "width": self.width, "seed": self.seed})
        return config


class RandomBrightness(BaseAugmentation):
    """Adds one random delta per image, factor · (high - low) with factor drawn in Keras' (lower,
    upper) (a number f: [-f, f]), then clips to `value_range`."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        where = self._describe()
        self.factor = keras_factor(0.0 if factor is None else factor, (-1, 1), where)
        self.value_range = sorted(check_value_range(value_range, where))

    def _draw(self, x, rng):
        low, high = self.value_range
        return rng.uniform(self.factor[0], self.factor[1], size=x.shape[0]) * (high - low)

    def _apply(self, x, delta):
        return augment.brightness_forward(x, delta, self.value_range)

    def _backward(self, mask, grad_output):
        return augment.brightness_backward(grad_output, mask)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"factor": list(self.factor), "value_range": list(self.value_range), "seed": self.seed})
        return config


class RandomContrast(BaseAugmentation):
    """(x - mean) · c + mean per image and channel (mean over the image), c drawn in
    [1 - lower, 1 + upper] from Keras' factor bounds [0, 1] (a number f gives lower 0 in Keras
    3.15.1: c in [1, 1 + f]), then clipped to `value_range`."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        where = self._describe()
        self.factor = keras_factor(factor, (0, 1), where)
        self.value_range = check_value_range(value_range, where)

    def _draw(self, x, rng):
        return rng.uniform(1.0 - self.factor[0], 1.0 + self.factor[1], size=x.shape[0])

    def _apply(self, x, factor):
        return augment.contrast_forward(x, factor, self.value_range, self._format())

    def _backward(self, ctx, grad_output):
        return augment.contrast_backward(grad_output, ctx)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"factor": list(self.factor), "value_range": list(self.value_range), "seed": self.seed})
        return config
