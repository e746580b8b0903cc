"""Max and average pooling layers (windowed and global) on `ops.max_pool2d`/`ops.avg_pool2d`."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, ops
from ..ops import shapes
from .spec import LayerSpec, Window
from .base import (Layer, Shape, check_bool, check_kept_for_backward, normalize_data_format,
                   normalize_padding)
from .conv2d import channel_dim, check_image_rank, image_shape, ops_format, spatial_dims


# Looked up at call time: the pooling ops, (input, ksize, strides, padding, data_format).
def _max_forward(*args):
    return ops.max_pool2d_forward(*args)


def _max_backward(grad, ctx):
    return ops.max_pool2d_backward(grad, ctx)


def _avg_forward(*args):
    return ops.avg_pool2d_forward(*args)


def _avg_backward(grad, ctx):
    return ops.avg_pool2d_backward(grad, ctx)


def _max_infer(*args):
    return ops.max_pool2d(*args)


def _avg_infer(*args):
    return ops.avg_pool2d(*args)


def _global_avg(*args):
    return ops.global_avg_pool2d(*args)


class _Pooling2D(Layer):
    """Shared body of MaxPooling2D and AveragePooling2D: `strides=None` means `pool_size`."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.pool_size = shapes.normalize_tuple(pool_size, 2, "pool_size", where)
        self.strides = self.pool_size if strides is None else shapes.normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        self.data_format = normalize_data_format(data_format, where)

    def _non_default_args(self) -> Dict[str, Any]:
        shown = super()._non_default_args()
        if tuple(shown.get("strides", self.pool_size)) == self.pool_size:
            shown.pop("strides", None)
        return shown

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        out = []
        for i, (axis, length) in enumerate(zip(("rows", "cols"), spatial_dims(input_shape, self.data_format))):
            if length is None:
                out.append(None)
                continue
            size = shapes.conv_output_length(length, self.pool_size[i], self.strides[i], 1, self.padding)
            if size <= 0:
                raise ValueError(f"{self._describe()}: input shape {input_shape} is too small: the pooling "
                                 f"window has {self.pool_size[i]} {axis} but the '{self.padding}'-padded input "
                                 f"has {length} {axis}, so the output would have {size}")
            out.append(size)
        return image_shape(input_shape[0], out[0], out[1], channel_dim(input_shape, self.data_format),
                           self.data_format)

    def describe(self):
        window = Window(self.pool_size, self.strides, self.padding)
        return LayerSpec(kind="pool", pool=self._mode, data_format=self.data_format, window=window)

    def forward(self, inputs: np.ndarray, training: bool = False):
        args = (inputs, self.pool_size, self.strides, self.padding.upper(), ops_format(self.data_format))
        if not backend.keeps_for_backward():
            return self._inference_op(*args), None
        return self._forward_op(*args)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        check_kept_for_backward(self, ctx)
        return self._backward_op(grad_output, ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding,
                       "strides": self.strides, "data_format": self.data_format})
        return config


class MaxPooling2D(_Pooling2D):
    """The maximum of each window (padding counts as -inf, never 0)."""

    _mode = "max"
    _forward_op = staticmethod(_max_forward)
    _backward_op = staticmethod(_max_backward)
    _inference_op = staticmethod(_max_infer)


class AveragePooling2D(_Pooling2D):
    """The mean of each window (with "same", over the real, unpadded cells only)."""

    _mode = "avg"
    _forward_op = staticmethod(_avg_forward)
    _backward_op = staticmethod(_avg_backward)
    _inference_op = staticmethod(_avg_infer)


class GlobalPoolingArguments(Layer):
    """What the global poolings of sequences, images and volumes share: `data_format`, `keepdims`, their config."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.data_format = normalize_data_format(data_format, where)
        self.keepdims = check_bool(keepdims, "keepdims", where)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class _GlobalPooling2D(GlobalPoolingArguments):
    """Pool over all rows and cols: a window as large as the image, through the pooling op (at inference
    through `_global_op` where the subclass has one)."""

    _global_op = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        channels = channel_dim(input_shape, self.data_format)
        if self.keepdims:
            return image_shape(input_shape[0], 1, 1, channels, self.data_format)
        return (input_shape[0], channels)

    def describe(self):
        return LayerSpec(kind="global_pool", pool=self._mode, data_format=self.data_format, keepdims=self.keepdims)

    def forward(self, inputs: np.ndarray, training: bool = False):
        if self._global_op is not None and not backend.keeps_for_backward():     # inference: no window geometry
            pooled = self._global_op(inputs, ops_format(self.data_format))
            keep_shape = image_shape(len(pooled), 1, 1, pooled.shape[1], self.data_format)
            return (pooled.reshape(keep_shape) if self.keepdims else pooled), None
        window = spatial_dims(inputs.shape, self.data_format)
        pooled, op_ctx = self._forward_op(inputs, window, 1, "VALID", ops_format(self.data_format))
        output = pooled if self.keepdims else pooled.reshape(pooled.shape[0], -1)
        return output, ((op_ctx, pooled.shape) if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        check_kept_for_backward(self, ctx)
        op_ctx, pooled_shape = ctx
        return self._backward_op(grad_output.reshape(pooled_shape), op_ctx), []


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over rows and cols of each channel."""
    _mode = "max"
    _forward_op = staticmethod(_max_forward)
    _backward_op = staticmethod(_max_backward)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over rows and cols of each channel."""
    _mode = "avg"
    _forward_op = staticmethod(_avg_forward)
    _backward_op = staticmethod(_avg_backward)
    _global_op = staticmethod(_global_avg)       # inference: `ops.global_avg_pool2d`, the same numbers


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
