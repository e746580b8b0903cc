"""Keras' UpSampling3D, ZeroPadding3D and Cropping3D: volumes repeated, padded with zeros or cut, per axis."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..ops import shapes
from .base import Layer, Shape, normalize_data_format
from .conv3d import AXES, check_volume_rank, from_last, to_last, volume_channels, volume_dims, volume_shape
from .spec import LayerSpec


def _pairs(value, arg: str, where: str):
    """Keras' 3-D padding/cropping: an int, 3 ints, or 3 (before, after) pairs of non-negative ints."""
    expected = "an int, a tuple of 3 ints or a tuple of 3 (before, after) tuples of non-negative ints"
    try:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return (shapes.normalize_tuple(value, 2, arg, where, allow_zero=True),) * 3
        items = tuple(value)
        if len(items) != 3:
            raise ValueError("three entries needed")
        return tuple(shapes.normalize_tuple(v, 2, arg, where, allow_zero=True) for v in items)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: argument `{arg}` must be {expected}, got {value!r}") from None


def _inner(pairs, x_last) -> tuple:
    """The index of what is left of a channels_last volume once `pairs` (before, after) are cut off each axis."""
    return (slice(None),) + tuple(slice(b, n - a) for (b, a), n in zip(pairs, x_last.shape[1:4])) + (slice(None),)


class UpSampling3D(Layer):
    """Each cell repeated size[i] times along axis i (nearest neighbour); the gradient sums each block."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last", "size": (2, 2, 2)}
    interpolation = "nearest"             # the only one Keras' UpSampling3D has

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.size = shapes.normalize_tuple(size, 3, "size", where)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_volume_rank(self, input_shape, self.data_format)
        out = [None if n is None else n * f for n, f in zip(volume_dims(input_shape, self.data_format), self.size)]
        return volume_shape(input_shape[0], out, volume_channels(input_shape, self.data_format), self.data_format)

    def describe(self):
        return LayerSpec(kind="upsample3d", data_format=self.data_format, size=self.size, interpolation="nearest")

    def forward(self, inputs: np.ndarray, training: bool = False):
        y = to_last(inputs, self.data_format)
        for axis, factor in enumerate(self.size, start=1):
            y = np.repeat(y, factor, axis=axis)
        return from_last(y, self.data_format), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        g = to_last(grad_output, self.data_format)
        n, (d, h, w), c = g.shape[0], g.shape[1:4], g.shape[4]
        (fd, fh, fw) = self.size
        blocks = g.reshape(n, d // fd, fd, h // fh, fh, w // fw, fw, c)
        return from_last(blocks.sum(axis=(2, 4, 6)), self.data_format), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format})
        return config


class ZeroPadding3D(Layer):
    """Adds zeros: padding ((front, back), (top, bottom), (left, right))."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last", "padding": ((1, 1), (1, 1), (1, 1))}

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.padding = _pairs(padding, "padding", where)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_volume_rank(self, input_shape, self.data_format)
        out = [None if n is None else n + b + a for n, (b, a) in zip(volume_dims(input_shape, self.data_format),
                                                                      self.padding)]
        return volume_shape(input_shape[0], out, volume_channels(input_shape, self.data_format), self.data_format)

    def describe(self):
        return LayerSpec(kind="zero_pad3d", data_format=self.data_format, pads=self.padding)

    def forward(self, inputs: np.ndarray, training: bool = False):
        x = to_last(inputs, self.data_format)
        return from_last(np.pad(x, [(0, 0), *self.padding, (0, 0)]), self.data_format), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        g = to_last(grad_output, self.data_format)
        return from_last(np.ascontiguousarray(g[_inner(self.padding, g)]), self.data_format), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config


class Cropping3D(Layer):
    """Cuts cells off each volume: cropping ((front, back), (top, bottom), (left, right))."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last", "cropping": ((1, 1), (1, 1), (1, 1))}

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.cropping = _pairs(cropping, "cropping", where)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_volume_rank(self, input_shape, self.data_format)
        out = []
        for axis, n, (b, a) in zip(AXES, volume_dims(input_shape, self.data_format), self.cropping):
            if n is not None and b + a >= n:
                raise ValueError(f"{self._describe()}: argument `cropping` {self.cropping} must leave at least one "
                                 f"of the {n} {axis} of input shape {input_shape}; it cuts {b} + {a} = {b + a}")
            out.append(None if n is None else n - b - a)
        return volume_shape(input_shape[0], out, volume_channels(input_shape, self.data_format), self.data_format)

    def describe(self):
        return LayerSpec(kind="crop3d", data_format=self.data_format, pads=self.cropping)

    def forward(self, inputs: np.ndarray, training: bool = False):
        self.compute_output_shape(inputs.shape)
        x = to_last(inputs, self.data_format)
        return from_last(np.ascontiguousarray(x[_inner(self.cropping, x)]), self.data_format), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        g = to_last(grad_output, self.data_format)
        return from_last(np.pad(g, [(0, 0), *self.cropping, (0, 0)]), self.data_format), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"cropping": self.cropping, "data_format": self.data_format})
        return config
