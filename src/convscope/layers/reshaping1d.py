"""1-D layers that move values without computing: `UpSampling1D`, `ZeroPadding1D` and `RepeatVector`."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import ops
from ..ops import shapes
from .base import Layer, Shape, check_positive_int, normalize_data_format
from .conv1d import as_image, check_sequence_rank, from_image, sequence_channels, sequence_shape, steps_dim
from .conv2d import ops_format
from .spec import LayerSpec


class UpSampling1D(Layer):
    """(batch, steps, channels) -> (batch, steps·size, channels): each step repeated `size` times."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = check_positive_int(size, "size", self._describe())

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_sequence_rank(self, input_shape)
        steps = input_shape[1]
        return (input_shape[0], None if steps is None else steps * self.size, input_shape[2])

    def describe(self):
        return LayerSpec(kind="upsample1d", size=(self.size,))

    def forward(self, inputs: np.ndarray, training: bool = False):
        return np.repeat(inputs, self.size, axis=1), inputs.shape

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """Each input step's gradient is the sum over the `size` steps it was copied to."""
        batch, steps, channels = ctx
        return grad_output.reshape(batch, steps, self.size, channels).sum(axis=2), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["size"] = self.size
        return config


class ZeroPadding1D(Layer):
    """Adds `padding` = (before, after) steps of zeros to each sequence."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last", "padding": (1, 1)}

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.padding = shapes.normalize_tuple(padding, 2, "padding", where, allow_zero=True)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_sequence_rank(self, input_shape, self.data_format)
        steps = steps_dim(input_shape, self.data_format)
        return sequence_shape(input_shape[0], None if steps is None else steps + sum(self.padding),
                              sequence_channels(input_shape, self.data_format), self.data_format)

    def describe(self):
        return LayerSpec(kind="pad1d", data_format=self.data_format, pads=(self.padding,))

    def forward(self, inputs: np.ndarray, training: bool = False):
        padded = ops.zero_pad2d(as_image(inputs, self.data_format), ((0, 0), self.padding),
                                ops_format(self.data_format))
        return from_image(padded, self.data_format), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        grad = ops.zero_pad2d_backward(as_image(grad_output, self.data_format), ((0, 0), self.padding),
                                       ops_format(self.data_format))
        return from_image(grad, self.data_format), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): each sample's vector repeated `n` times (Keras' layer)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = check_positive_int(n, "n", self._describe())

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"{self._describe()}: expected an input of rank 2 (batch, features), got shape "
                             f"{input_shape}")
        return (input_shape[0], self.n, input_shape[1])

    def describe(self):
        return LayerSpec(kind="repeat", size=(self.n,))

    def forward(self, inputs: np.ndarray, training: bool = False):
        self.compute_output_shape(np.shape(inputs))
        return np.repeat(np.asarray(inputs)[:, None, :], self.n, axis=1), None

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """Each value's gradient is the sum over its `n` copies."""
        return np.asarray(grad_output).sum(axis=1), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["n"] = self.n
        return config
