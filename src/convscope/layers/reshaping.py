"""Layers that move values without computing: `Flatten`, `Reshape`, `ZeroPadding2D`."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import ops
from ..ops import shapes
from .base import Layer, Shape, normalize_data_format
from .conv2d import channel_dim, check_image_rank, image_shape, ops_format, spatial_dims
from .spec import LayerSpec


def _product(dims) -> Any:
    """The product of `dims`, or None when any is unknown."""
    if any(d is None for d in dims):
        return None
    return int(np.prod(dims, dtype=np.int64))


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1*d2*...); channels_first input is flattened channels-last, as Keras."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, self._describe())

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"{self._describe()}: expected an input with a batch axis, got shape {input_shape}")
        return (input_shape[0], _product(input_shape[1:]) if len(input_shape) > 1 else 1)

    def describe(self):
        return LayerSpec(kind="flatten", data_format=self.data_format)

    def _channels_to_last(self, ndim: int):
        return (0,) + tuple(range(2, ndim)) + (1,)

    def forward(self, inputs: np.ndarray, training: bool = False):
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = inputs.transpose(self._channels_to_last(inputs.ndim))
        return inputs.reshape(inputs.shape[0], -1), inputs.shape      # ctx: the shape to restore

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        grad = grad_output.reshape(ctx)
        if self.data_format == "channels_first" and grad.ndim > 2:
            grad = grad.transpose(np.argsort(self._channels_to_last(grad.ndim)))
        return np.ascontiguousarray(grad), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    """Reshape every sample to `target_shape` (batch axis excluded; one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        try:
            target = tuple(target_shape)
        except TypeError:
            raise TypeError(f"{where}: argument `target_shape` must be a tuple of ints, got {target_shape!r}") \
                from None
        for d in target:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
                raise TypeError(f"{where}: argument `target_shape` must be a tuple of ints, got {target_shape!r}")
            if d <= 0 and d != -1:
                raise ValueError(f"{where}: argument `target_shape` must hold positive ints and at most one -1, "
                                 f"got {target_shape!r}")
        if list(target).count(-1) > 1:
            raise ValueError(f"{where}: argument `target_shape` may hold at most one -1, got {target_shape!r}")
        self.target_shape = tuple(int(d) for d in target)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        size = _product(input_shape[1:])
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        if size is None:
            return (input_shape[0],) + tuple(None if d == -1 else d for d in self.target_shape)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"{self._describe()}: cannot reshape an input of shape {input_shape} "
                                 f"({size} values per sample) to target_shape {self.target_shape}")
            return (input_shape[0],) + tuple(size // known if d == -1 else d for d in self.target_shape)
        if size != known:
            raise ValueError(f"{self._describe()}: cannot reshape an input of shape {input_shape} "
                             f"({size} values per sample) to target_shape {self.target_shape} ({known} values)")
        return (input_shape[0],) + self.target_shape

    def describe(self):
        return LayerSpec(kind="reshape")

    def forward(self, inputs: np.ndarray, training: bool = False):
        return inputs.reshape((inputs.shape[0],) + self.target_shape), inputs.shape

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return grad_output.reshape(ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


def _padding_pairs(padding, where: str):
    """Keras' ZeroPadding2D padding: int, (rows, cols) or ((top, bottom), (left, right))."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        pair = shapes.normalize_tuple(padding, 2, "padding", where, allow_zero=True)
        return ((pair[0], pair[0]), (pair[1], pair[1]))
    try:
        items = tuple(padding)
    except TypeError:
        raise TypeError(f"{where}: argument `padding` must be an int, a tuple of 2 ints or a tuple of 2 "
                        f"(before, after) tuples, got {padding!r}") from None
    if len(items) != 2:
        raise ValueError(f"{where}: argument `padding` must be an int, a tuple of 2 ints or a tuple of 2 "
                         f"(before, after) tuples, got {padding!r}")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        pair = shapes.normalize_tuple(items, 2, "padding", where, allow_zero=True)
        return ((pair[0], pair[0]), (pair[1], pair[1]))
    return tuple(shapes.normalize_tuple(v, 2, "padding", where, allow_zero=True) for v in items)


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros: padding ((top, bottom), (left, right))."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last", "padding": ((1, 1), (1, 1))}

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.padding = _padding_pairs(padding, where)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        rows, cols = spatial_dims(input_shape, self.data_format)
        (top, bottom), (left, right) = self.padding
        return image_shape(input_shape[0], None if rows is None else rows + top + bottom,
                           None if cols is None else cols + left + right,
                           channel_dim(input_shape, self.data_format), self.data_format)

    def describe(self):
        return LayerSpec(kind="zero_pad2d", data_format=self.data_format, pads=self.padding)

    def forward(self, inputs: np.ndarray, training: bool = False):
        return ops.zero_pad2d(inputs, self.padding, ops_format(self.data_format)), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return ops.zero_pad2d_backward(grad_output, self.padding, ops_format(self.data_format)), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config
