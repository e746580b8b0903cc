"""1-D max and average pooling (windowed and global), on the 2-D pooling ops over one-row images."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, ops
from ..ops import shapes
from .base import Layer, Shape, check_kept_for_backward, normalize_data_format
from .conv1d import (as_image, check_sequence_rank, check_window_fits, from_image, normalize_padding_1d,
                     sequence_channels, sequence_shape, steps_dim)
from .conv2d import ops_format
from .pooling import GlobalPoolingArguments
from .spec import LayerSpec, Window

# The ops of each mode, looked up at call time: (forward, backward, inference).
_OPS = {
    "max": ("max_pool2d_forward", "max_pool2d_backward", "max_pool2d"),
    "avg": ("avg_pool2d_forward", "avg_pool2d_backward", "avg_pool2d"),
}


def _op(mode: str, which: int):
    return getattr(ops, _OPS[mode][which])


class _Pooling1D(Layer):
    """Shared body of MaxPooling1D and AveragePooling1D: `strides=None` means `pool_size`."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last", "pool_size": (2,)}
    _mode = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.pool_size = shapes.normalize_tuple(pool_size, 1, "pool_size", where)
        self.strides = self.pool_size if strides is None else shapes.normalize_tuple(strides, 1, "strides", where)
        self.padding = normalize_padding_1d(padding, where)
        self.data_format = normalize_data_format(data_format, where)

    def _non_default_args(self) -> Dict[str, Any]:
        shown = super()._non_default_args()
        if tuple(shown.get("strides", self.pool_size)) == self.pool_size:
            shown.pop("strides", None)
        return shown

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_sequence_rank(self, input_shape, self.data_format)
        steps = check_window_fits(self, input_shape, steps_dim(input_shape, self.data_format), self.pool_size[0],
                                  self.strides[0], 1, self.padding, "pooling window")
        return sequence_shape(input_shape[0], steps, sequence_channels(input_shape, self.data_format),
                              self.data_format)

    def describe(self):
        window = Window(self.pool_size, self.strides, self.padding, (1,))
        return LayerSpec(kind="pool1d", pool=self._mode, data_format=self.data_format, window=window)

    def forward(self, inputs: np.ndarray, training: bool = False):
        args = (as_image(inputs, self.data_format), (1, self.pool_size[0]), (1, self.strides[0]),
                self.padding.upper(), ops_format(self.data_format))
        if not backend.keeps_for_backward():
            return from_image(_op(self._mode, 2)(*args), self.data_format), None
        pooled, op_ctx = _op(self._mode, 0)(*args)
        return from_image(pooled, self.data_format), op_ctx

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        check_kept_for_backward(self, ctx)
        grad = _op(self._mode, 1)(as_image(grad_output, self.data_format), ctx)
        return from_image(grad, self.data_format), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding,
                       "strides": self.strides, "data_format": self.data_format})
        return config


class MaxPooling1D(_Pooling1D):
    """The maximum of each window of `pool_size` steps (padding counts as -inf, never 0)."""

    _mode = "max"


class AveragePooling1D(_Pooling1D):
    """The mean of each window of `pool_size` steps (with "same", over the real, unpadded steps only).

    `pool_size` has no default, as in Keras 3.
    """

    _mode = "avg"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling1D(GlobalPoolingArguments):
    """Pool over all steps: a window as long as the sequence, through the pooling op."""

    _mode = "max"

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_sequence_rank(self, input_shape, self.data_format)
        channels = sequence_channels(input_shape, self.data_format)
        if self.keepdims:
            return sequence_shape(input_shape[0], 1, channels, self.data_format)
        return (input_shape[0], channels)

    def describe(self):
        return LayerSpec(kind="global_pool1d", pool=self._mode, data_format=self.data_format, keepdims=self.keepdims)

    def forward(self, inputs: np.ndarray, training: bool = False):
        window = (1, steps_dim(inputs.shape, self.data_format))
        pooled, op_ctx = _op(self._mode, 0)(as_image(inputs, self.data_format), window, 1, "VALID",
                                            ops_format(self.data_format))
        pooled = from_image(pooled, self.data_format)
        output = pooled if self.keepdims else pooled.reshape(pooled.shape[0], -1)
        return output, ((op_ctx, pooled.shape) if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        check_kept_for_backward(self, ctx)
        op_ctx, pooled_shape = ctx
        grad = _op(self._mode, 1)(as_image(grad_output.reshape(pooled_shape), self.data_format), op_ctx)
        return from_image(grad, self.data_format), []



class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over the steps of each channel."""

    _mode = "max"


class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over the steps of each channel."""

    _mode = "avg"


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
