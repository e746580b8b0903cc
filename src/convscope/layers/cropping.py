"""`Cropping1D` and `Cropping2D`: cut steps, rows and columns off the borders.

Cropping is zero padding's adjoint: the forward pass is `ops.zero_pad2d_backward` (the
border cut away) and the backward pass `ops.zero_pad2d` (zeros where the cut cells were).
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import ops
from ..ops import shapes
from .base import Layer, Shape, normalize_data_format
from .conv1d import as_image, check_sequence_rank, from_image
from .conv2d import channel_dim, check_image_rank, image_shape, ops_format, spatial_dims
from .spec import LayerSpec


def _cropped_length(layer: Layer, input_shape: Shape, length, pair, axis: str):
    """`length` less both crops, or a ValueError naming the layer when nothing would be left."""
    if length is None:
        return None
    if sum(pair) >= length:
        raise ValueError(f"{layer._describe()}: argument `cropping` {layer.cropping} must leave at least one "
                         f"of the {length} {axis} of input shape {tuple(input_shape)}; it cuts {pair[0]} + "
                         f"{pair[1]} = {sum(pair)}")
    return length - sum(pair)


def _cropping_pairs(cropping, where: str):
    """Keras' Cropping2D cropping: int, (rows, cols) or ((top, bottom), (left, right)), non-negative."""
    expected = "an int, a tuple (rows, cols) or a tuple ((top, bottom), (left, right)) of non-negative ints"
    try:
        if isinstance(cropping, (int, np.integer)) and not isinstance(cropping, bool):
            pair = shapes.normalize_tuple(cropping, 2, "cropping", where, allow_zero=True)
            return (pair, pair)
        items = tuple(cropping)
        if len(items) != 2:
            raise ValueError("two entries needed")
        return tuple(shapes.normalize_tuple(v, 2, "cropping", where, allow_zero=True) for v in items)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: argument `cropping` must be {expected}, got {cropping!r}") from None


class Cropping1D(Layer):
    """(batch, steps, channels) -> (batch, steps - before - after, channels); cropping = (before, after)."""

    _CONFIG_DEFAULTS = {"cropping": (1, 1)}

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = shapes.normalize_tuple(cropping, 2, "cropping", self._describe(), allow_zero=True)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_sequence_rank(self, input_shape)
        return (input_shape[0], _cropped_length(self, input_shape, input_shape[1], self.cropping, "steps"),
                input_shape[2])

    def describe(self):
        return LayerSpec(kind="crop1d", pads=(self.cropping,))

    def forward(self, inputs: np.ndarray, training: bool = False):
        self.compute_output_shape(inputs.shape)
        cut = ops.zero_pad2d_backward(as_image(inputs, "channels_last"), ((0, 0), self.cropping), "NHWC")
        return from_image(cut, "channels_last"), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        grad = ops.zero_pad2d(as_image(grad_output, "channels_last"), ((0, 0), self.cropping), "NHWC")
        return from_image(grad, "channels_last"), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["cropping"] = self.cropping
        return config


class Cropping2D(Layer):
    """Cuts rows and columns off each image: cropping ((top, bottom), (left, right))."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last", "cropping": ((0, 0), (0, 0))}

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.cropping = _cropping_pairs(cropping, where)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        rows, cols = spatial_dims(input_shape, self.data_format)
        rows = _cropped_length(self, input_shape, rows, self.cropping[0], "rows")
        cols = _cropped_length(self, input_shape, cols, self.cropping[1], "cols")
        return image_shape(input_shape[0], rows, cols, channel_dim(input_shape, self.data_format), self.data_format)

    def describe(self):
        return LayerSpec(kind="crop2d", data_format=self.data_format, pads=self.cropping)

    def forward(self, inputs: np.ndarray, training: bool = False):
        self.compute_output_shape(inputs.shape)
        return ops.zero_pad2d_backward(inputs, self.cropping, ops_format(self.data_format)), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return ops.zero_pad2d(grad_output, self.cropping, ops_format(self.data_format)), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"cropping": self.cropping, "data_format": self.data_format})
        return config
