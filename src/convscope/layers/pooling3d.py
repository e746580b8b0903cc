"""3-D max and average pooling (windowed and global) on `ops/volume.py`: Keras' MaxPooling3D, AveragePooling3D,
GlobalMaxPooling3D, GlobalAveragePooling3D (and their aliases)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, ops
from ..ops import shapes
from .base import Layer, Shape, check_kept_for_backward, normalize_data_format, normalize_padding
from .conv3d import AXES, check_volume_rank, from_last, to_last, volume_channels, volume_dims, volume_shape
from .pooling import GlobalPoolingArguments
from .spec import LayerSpec, Window


class _Pooling3D(Layer):
    """Shared body of MaxPooling3D and AveragePooling3D: `strides=None` means `pool_size`."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last", "pool_size": (2, 2, 2)}
    _mode = "max"

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.pool_size = shapes.normalize_tuple(pool_size, 3, "pool_size", where)
        self.strides = self.pool_size if strides is None else shapes.normalize_tuple(strides, 3, "strides", where)
        self.padding = normalize_padding(padding, where)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_volume_rank(self, input_shape, self.data_format)
        out = []
        for axis, n, k, s in zip(AXES, volume_dims(input_shape, self.data_format), self.pool_size, self.strides):
            size = None if n is None else shapes.conv_output_length(n, k, s, 1, self.padding)
            if size is not None and size <= 0:
                raise ValueError(f"{self._describe()}: input shape {input_shape} is too small: the pooling window "
                                 f"spans {k} {axis} but the '{self.padding}'-padded input has {n} {axis}")
            out.append(size)
        return volume_shape(input_shape[0], out, volume_channels(input_shape, self.data_format), self.data_format)

    def describe(self):
        return LayerSpec(kind="pool3d", pool=self._mode, data_format=self.data_format,
                         window=Window(self.pool_size, self.strides, self.padding, (1, 1, 1)))

    def forward(self, inputs: np.ndarray, training: bool = False):
        self.compute_output_shape(inputs.shape)
        y, ctx = ops.pool_nd_forward(to_last(inputs, self.data_format), self.pool_size, self.strides, self.padding,
                                     self._mode, keep=backend.keeps_for_backward())
        return from_last(y, self.data_format), ctx

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        check_kept_for_backward(self, ctx)
        return from_last(ops.pool_nd_backward(to_last(grad_output, self.data_format), ctx), self.data_format), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding, "strides": self.strides,
                       "data_format": self.data_format})
        return config


class MaxPooling3D(_Pooling3D):
    """The maximum of each pool_size window of a volume (first maximum takes the gradient)."""

    _mode = "max"


class AveragePooling3D(_Pooling3D):
    """The mean of each window's real cells ("same" padding adds none to the count, as TensorFlow)."""

    _mode = "avg"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):   # no default: Keras'
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling3D(GlobalPoolingArguments):
    """Pool over the whole volume: one value per channel (keepdims: (N, 1, 1, 1, C))."""

    _mode = "max"

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_volume_rank(self, input_shape, self.data_format)
        channels = volume_channels(input_shape, self.data_format)
        return volume_shape(input_shape[0], (1, 1, 1), channels, self.data_format) if self.keepdims \
            else (input_shape[0], channels)

    def describe(self):
        return LayerSpec(kind="global_pool3d", pool=self._mode, data_format=self.data_format, keepdims=self.keepdims)

    def _axes(self):
        return (2, 3, 4) if self.data_format == "channels_first" else (1, 2, 3)

    def forward(self, inputs: np.ndarray, training: bool = False):
        axes = self._axes()
        pooled = inputs.max(axis=axes, keepdims=True) if self._mode == "max" else \
            inputs.mean(axis=axes, keepdims=True, dtype=inputs.dtype)
        channels = inputs.shape[1 if self.data_format == "channels_first" else 4]
        output = pooled if self.keepdims else pooled.reshape(pooled.shape[0], channels)
        keep = backend.keeps_for_backward()
        return output, ((inputs, pooled) if keep else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """Average: each cell gets 1/cells of its channel's gradient; max: the first maximum takes it."""
        check_kept_for_backward(self, ctx)
        inputs, pooled = ctx
        grad = grad_output.reshape(pooled.shape)
        if self._mode == "avg":
            cells = int(np.prod([inputs.shape[a] for a in self._axes()]))
            return np.broadcast_to(grad / cells, inputs.shape).astype(inputs.dtype), []
        last = to_last(inputs, self.data_format)
        flat = last.reshape(last.shape[0], -1, last.shape[-1])
        first = flat.argmax(axis=1)                               # the first maximum of each (sample, channel)
        out = np.zeros_like(flat)
        np.put_along_axis(out, first[:, None, :], to_last(grad, self.data_format).reshape(first.shape)[:, None, :], 1)
        return from_last(out.reshape(last.shape), self.data_format), []



class GlobalMaxPooling3D(_GlobalPooling3D):
    """The maximum over the whole volume of each channel."""

    _mode = "max"


class GlobalAveragePooling3D(_GlobalPooling3D):
    """The mean over the whole volume of each channel."""

    _mode = "avg"


MaxPool3D, AvgPool3D = MaxPooling3D, AveragePooling3D
GlobalMaxPool3D, GlobalAvgPool3D = GlobalMaxPooling3D, GlobalAveragePooling3D
