"""Keras' preprocessing layers that sit inside CNNs: `Rescaling`, `Normalization`, `Resizing`, `CenterCrop`.

All four are differentiable, as in Keras (the gradient flows back to the images); none has a
trainable weight.  `Normalization` keeps Keras 3's non-trainable weights [mean, variance, count]
(count an int32 scalar Keras never updates), so Keras' `get_weights()` and files carry over.
"""

from __future__ import annotations

import itertools
import numbers
from typing import Any, Dict

import numpy as np

from .. import ops
from ..variables import Variable
from . import graph
from .autodiff import NOT_GIVEN
from .base import Layer, Shape, check_bool, check_float, check_positive_int, normalize_data_format
from .conv2d import call_on_images, ops_format, sized_image_shape
from .spec import LayerSpec


def _factor(value, arg: str, where: str):
    """A number, or an array-like of finite numbers (a per-channel factor), as Keras takes them."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":   # Keras' config of an array
        config = value.get("config") or {}
        value = np.asarray(config.get("value"), dtype=config.get("dtype", "float64"))
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise TypeError(f"{where}: argument `{arg}` must be a number or an array of numbers, got {value!r}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: argument `{arg}` must be a number or an array of numbers, "
                        f"got {value!r}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: argument `{arg}` must be finite, got {value!r}")
    if isinstance(value, numbers.Number):
        return value if isinstance(value, (int, float)) else float(value)
    return value


def _serialize_factor(value):
    """As Keras' serialize_keras_object: numbers and lists as they are, NumPy arrays as "__numpy__"."""
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    if isinstance(value, tuple):
        return list(value)
    return value


def _check_broadcasts(layer: Layer, input_shape: Shape, factors) -> None:
    """A per-channel factor must broadcast against the input without changing its shape."""
    for name, value in factors:
        shape = np.shape(value)
        trailing = tuple(input_shape[len(input_shape) - len(shape):]) if shape else ()
        if len(shape) > len(input_shape) or any(s != 1 and d is not None and s != d
                                                for s, d in zip(shape, trailing)):
            raise ValueError(f"{layer._describe()}: argument `{name}` of shape {shape} does not broadcast "
                             f"against an input of shape {tuple(input_shape)}")


class Rescaling(Layer):
    """y = x * scale + offset (e.g. scale=1/255 maps [0, 255] to [0, 1]); scale and offset may be
    per-channel arrays broadcast on the last axes."""

    casts_integer_inputs = True           # uint8 pixels, as Keras casts them (plan.layer_input)

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.scale = _factor(scale, "scale", where)
        self.offset = _factor(offset, "offset", where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        _check_broadcasts(self, input_shape[1:], [("scale", self.scale), ("offset", self.offset)])
        return input_shape

    def describe(self):
        return LayerSpec(kind="rescaling")

    def forward(self, inputs: np.ndarray, training: bool = False):
        return ops.rescale(inputs, self.scale, self.offset), inputs.shape     # ctx: the input's shape

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return ops.rescale_backward(grad_output, self.scale, ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"scale": _serialize_factor(self.scale), "offset": _serialize_factor(self.offset)})
        return config


def _normalization_axis(axis, where: str):
    """Keras' Normalization axis: None -> (), an int -> (int,), a list or tuple of ints -> tuple."""
    if axis is None:
        return ()
    items = (axis,) if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else axis
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{where}: argument `axis` must be an int, a tuple of ints or None, got {axis!r}") from None
    if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in items):
        raise TypeError(f"{where}: argument `axis` must be an int, a tuple of ints or None, got {axis!r}")
    return tuple(int(a) for a in items)


def _moments_argument(value, arg: str, where: str):
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: argument `{arg}` must be a number or an array of numbers, got {value!r}") \
            from None
    if not np.all(np.isfinite(array)) or (arg == "variance" and np.any(array < 0)):
        raise ValueError(f"{where}: argument `{arg}` must hold finite numbers{' >= 0' if arg == 'variance' else ''},"
                         f" got {value!r}")
    return value


class Normalization(Layer):
    """y = (x - mean) / max(sqrt(variance), 1e-7) with one mean and variance per index of `axis`
    (from the constructor, or learned by `adapt(data)`); `invert=True` undoes it.

    Without given mean/variance the layer holds Keras 3's non-trainable weights
    [mean, variance, count] (2·∏(kept dims) + 1 parameters)."""

    casts_integer_inputs = True           # uint8 pixels, as Keras casts them (plan.layer_input)

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.axis = _normalization_axis(axis, where)
        self.input_mean = _moments_argument(mean, "mean", where)
        self.input_variance = _moments_argument(variance, "variance", where)
        self.invert = check_bool(invert, "invert", where)
        if (mean is None) != (variance is None):
            raise ValueError(f"{where}: arguments `mean` and `variance` must be given together, got "
                             f"mean={mean!r} and variance={variance!r}")
        if mean is not None and np.shape(mean) != np.shape(variance):
            raise ValueError(f"{where}: arguments `mean` and `variance` must have the same shape, got "
                             f"{np.shape(mean)} and {np.shape(variance)}")
        if mean is not None and np.ndim(mean) > len(self.axis):
            raise ValueError(f"{where}: argument `mean` must have rank <= the number of axes ({len(self.axis)}), "
                             f"got shape {np.shape(mean)} for axis {self.axis}")
        self.mean = self.variance = self.count = None
        self._constants = None      # (mean, variance) broadcast to the input when given to the constructor
        self._stats_shape = None    # the input's shape with 1 on the reduced axes

    def _kept_axes(self, input_shape: Shape):
        ndim = len(input_shape)
        if any(not -ndim <= a < ndim for a in self.axis):
            raise ValueError(f"{self._describe()}: argument `axis`={self.axis} must hold axes in [-{ndim}, {ndim}) "
                             f"of an input of shape {tuple(input_shape)}")
        kept = tuple(sorted(a % ndim for a in self.axis))
        unknown = [a for a in kept if input_shape[a] is None]
        if unknown:
            raise ValueError(f"{self._describe()}: the axes kept by `axis`={self.axis} must have known sizes; "
                             f"axis {unknown[0]} of the input shape {tuple(input_shape)} is unknown")
        return kept

    def _broadcast_shape(self, input_shape: Shape):
        kept = self._kept_axes(input_shape)
        return [input_shape[a] if a in kept else 1 for a in range(len(input_shape))]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        kept = self._kept_axes(input_shape)
        if self.mean is not None and self.mean.shape != tuple(input_shape[a] for a in kept):
            raise ValueError(f"{self._describe()}: expected sizes {self.mean.shape} on axes {kept} (the layer is "
                             f"built for them), got an input of shape {input_shape}")
        given = self._constants[0].shape if self._constants is not None else None
        if given is not None and (len(given) != len(input_shape)
                                  or any(g not in (1, d) for g, d in zip(given[1:], input_shape[1:]))):
            raise ValueError(f"{self._describe()}: the given mean/variance are built for inputs of shape "
                             f"{(None,) + tuple(given[1:])} (1: any size), got an input of shape {input_shape}")
        return input_shape

    def build(self, input_shape: Shape) -> None:
        kept = self._kept_axes(input_shape)
        shape = tuple(input_shape[a] for a in kept)
        self._stats_shape = self._broadcast_shape(input_shape)
        if self.input_mean is None:
            self.mean = self.add_weight(shape, "zeros", trainable=False, name="mean")
            self.variance = self.add_weight(shape, "ones", trainable=False, name="variance")
            for variable in (self.mean, self.variance):     # np.ascontiguousarray in add_weight makes () (1,)
                variable.value = variable.value.reshape(shape)
            self.count = Variable(np.zeros((), np.int32), f"{self.name}/count", trainable=False)
            self._variables.append(self.count)      # Keras 3 keeps it "for backwards compatibility"
        else:
            self._constants = tuple(self._broadcast_given(value, input_shape, kept)
                                    for value in (self.input_mean, self.input_variance))
        self.built = True

    def _broadcast_given(self, value, input_shape: Shape, kept) -> np.ndarray:
        """Keras' rule: a given mean/variance aligns its axes with the kept axes from the right."""
        array = np.asarray(value, dtype=self.dtype)
        target = self._broadcast_shape(input_shape)
        expanded = [1] * len(input_shape)
        for i in range(1, array.ndim + 1):
            expanded[kept[-i]] = array.shape[-i]
        try:
            return np.broadcast_to(array.reshape(expanded), target)
        except ValueError:
            raise ValueError(f"{self._describe()}: the given mean/variance of shape {array.shape} does not "
                             f"broadcast to the kept axes {kept} of an input of shape {tuple(input_shape)}") from None

    def _statistics(self):
        if self._constants is not None:
            return self._constants
        return self.mean.value.reshape(self._stats_shape), self.variance.value.reshape(self._stats_shape)

    def describe(self):
        return LayerSpec(kind="normalization", axis=self.axis, adapted=self.input_mean is None,
                         weights={"mean": self.mean, "variance": self.variance, "count": self.count})

    def forward(self, inputs: np.ndarray, training: bool = False):
        mean, variance = self._statistics()
        return ops.standardize(inputs, mean, variance, self.invert), inputs.shape

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        variance = self._statistics()[1]
        return ops.standardize_backward(grad_output, variance, self.invert, ctx), []

    def adapt(self, data) -> None:
        """Learn the mean and variance of `data`: an array, or an iterable of batches (arrays or
        (x, y[, sample_weight]) tuples), combined batch by batch as Keras does."""
        where = f"{self._describe()}.adapt"
        if self.input_mean is not None:
            raise ValueError(f"{where}: the layer was given `mean` and `variance`; it has nothing to adapt")
        single = isinstance(data, np.ndarray) or not hasattr(data, "__iter__")
        batches = iter([data] if single else data)
        first = next(batches, None)
        if first is None:
            raise ValueError(f"{where}: argument `data` is an empty iterable; expected at least one batch")
        first = self._adapt_array(first, where)
        if not self.built:
            batch_kept = 0 in {a % first.ndim for a in self.axis if -first.ndim <= a < first.ndim}
            self.build_from_shape(first.shape if batch_kept else (None,) + first.shape[1:])
        kept = self._kept_axes(self._build_input_shape)
        reduce_axes = tuple(a for a in range(first.ndim) if a not in kept)

        def checked():
            for array in itertools.chain([first], (self._adapt_array(b, where) for b in batches)):
                self._check_adapt_shape(array, kept, where)
                yield array if single else array.astype(self.dtype, copy=False)
        if single:
            mean, variance = ops.preprocessing.moments(next(checked()), reduce_axes)
        else:
            mean, variance, _ = ops.preprocessing.combine_moments(checked(), reduce_axes)
        self.mean.assign(mean)
        self.variance.assign(variance)

    @staticmethod
    def _adapt_array(data, where: str) -> np.ndarray:
        array = np.asarray(data[0] if isinstance(data, tuple) else data)
        if array.dtype.kind not in "biuf" or array.ndim == 0:
            raise TypeError(f"{where}: argument `data` must hold numeric arrays with a batch axis, got {data!r}"[:300])
        return array

    def _check_adapt_shape(self, array: np.ndarray, kept, where: str) -> None:
        built = self._build_input_shape
        if array.ndim != len(built) or any(array.shape[a] != built[a] for a in kept):
            raise ValueError(f"{where}: the layer was built for inputs of shape {tuple(built)}, but `data` holds "
                             f"an array of shape {array.shape}")

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"axis": self.axis, "invert": self.invert,
                       "mean": np.array(self.input_mean).tolist(), "variance": np.array(self.input_variance).tolist()})
        return config


_KERAS_ONLY_INTERPOLATIONS = ("bicubic", "lanczos3", "lanczos5", "area")


def check_interpolation(value, where: str, allowed=ops.resize.INTERPOLATIONS) -> str:
    """'bilinear' or 'nearest' (lower-cased, as Keras stores it); Keras' other methods are named as missing."""
    name = value.lower() if isinstance(value, str) else value
    if name not in allowed:
        missing = " (convscope does not have it yet)" if name in _KERAS_ONLY_INTERPOLATIONS else ""
        raise ValueError(f"{where}: argument `interpolation` must be one of {allowed}, got {value!r}{missing}")
    return name


class _ImagesOrOneImage(Layer):
    """A layer of images that takes one image (rank 3) as a batch of one (`conv2d.call_on_images`), as Keras'
    image preprocessing layers do."""

    def __call__(self, inputs, training=NOT_GIVEN):
        if graph.is_symbolic(inputs):
            return super().__call__(inputs)
        return call_on_images(lambda x, t: super(_ImagesOrOneImage, self).__call__(x, training=t), inputs, training)


class Resizing(_ImagesOrOneImage):
    """Resizes images to (height, width) with Keras' pixel-centre convention (torch's
    `F.interpolate(align_corners=False, antialias=False)`); optionally first crops or pads to
    the target's aspect ratio."""

    casts_integer_inputs = True           # uint8 pixels, as Keras casts them (plan.layer_input)

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, antialias=False,
                 data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.height = check_positive_int(height, "height", where)
        self.width = check_positive_int(width, "width", where)
        self.interpolation = check_interpolation(interpolation, where)
        self.crop_to_aspect_ratio = check_bool(crop_to_aspect_ratio, "crop_to_aspect_ratio", where)
        self.pad_to_aspect_ratio = check_bool(pad_to_aspect_ratio, "pad_to_aspect_ratio", where)
        if self.crop_to_aspect_ratio and self.pad_to_aspect_ratio:
            raise ValueError(f"{where}: only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True")
        if fill_mode != "constant":
            raise ValueError(f"{where}: argument `fill_mode` must be 'constant' (the only one Keras supports), "
                             f"got {fill_mode!r}")
        self.fill_mode = fill_mode
        self.fill_value = check_float(fill_value, "fill_value", where)
        if check_bool(antialias, "antialias", where):
            raise ValueError(f"{where}: argument `antialias` must be False (convscope does not have "
                             f"antialiased resizing yet), got {antialias!r}")
        self.antialias = False
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return sized_image_shape(self, input_shape)

    def describe(self):
        aspect = "crop" if self.crop_to_aspect_ratio else "pad" if self.pad_to_aspect_ratio else None
        return LayerSpec(kind="resizing", data_format=self.data_format, size=(self.height, self.width),
                         interpolation=self.interpolation, aspect=aspect)

    def forward(self, inputs: np.ndarray, training: bool = False):
        return ops.resize2d_forward(inputs, (self.height, self.width), self.interpolation,
                                    ops_format(self.data_format), self.crop_to_aspect_ratio,
                                    self.pad_to_aspect_ratio, self.fill_value)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return ops.resize2d_backward(grad_output, ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height": self.height, "width": self.width, "interpolation": self.interpolation,
                       "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                       "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                       "fill_value": self.fill_value, "antialias": self.antialias, "data_format": self.data_format})
        return config


class CenterCrop(_ImagesOrOneImage):
    """The centred (height, width) window of each image; an image smaller than that on an axis is first cut
    to the target's aspect ratio, then resized bilinearly (Keras' `smart_resize`).  The same in training and
    inference.

    Shape: (N, H, W, C) -> (N, height, width, C) (channels_first: (N, C, H, W) -> (N, C, height, width)).
    """

    casts_integer_inputs = True           # uint8 pixels, as Keras casts them (plan.layer_input)

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.height = check_positive_int(height, "height", where)
        self.width = check_positive_int(width, "width", where)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return sized_image_shape(self, input_shape)

    def describe(self):
        return LayerSpec(kind="center_crop", data_format=self.data_format, size=(self.height, self.width),
                         interpolation="bilinear", aspect="crop")

    def forward(self, inputs: np.ndarray, training: bool = False):
        return ops.center_crop_forward(inputs, (self.height, self.width), ops_format(self.data_format))

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return ops.center_crop_backward(grad_output, ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height": self.height, "width": self.width, "data_format": self.data_format})
        return config
