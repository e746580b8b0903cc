"""`Conv3D` and `Conv3DTranspose`: Keras' volume convolutions (video, medical scans) on `ops/volume.py`.

A batch is (N, D, H, W, C) (channels_first: (N, C, D, H, W)).  The bias and activation are applied after the
op (no fused path).  The helpers here give the other 3-D layers their layout checks.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers, ops
from ..ops import shapes
from .base import Layer, Shape, check_kept_for_backward, check_positive_int
from .conv2d import init_window, window_output_sizes
from .conv_family import check_transpose_arguments
from .kernel_bias import KernelBiasLayer, Preactivation, check_conv_channels, check_grouped_conv
from .spec import Window

AXES = ("depth", "rows", "cols")


# -- the 3-D layout ------------------------------------------------------------------------------------------
def check_volume_rank(layer: Layer, input_shape: Shape, data_format: str) -> None:
    """Raise unless `input_shape` is a 5-D volume batch in `data_format`'s layout."""
    if len(input_shape) != 5:
        layout = "(batch, channels, depth, rows, cols)" if data_format == "channels_first" else \
            "(batch, depth, rows, cols, channels)"
        raise ValueError(f"{layer._describe()}: expected a 5-D input {layout}, got shape {tuple(input_shape)} "
                         f"of rank {len(input_shape)}")


def volume_dims(input_shape: Shape, data_format: str) -> tuple:
    return tuple(input_shape[2:5]) if data_format == "channels_first" else tuple(input_shape[1:4])


def volume_channels(input_shape: Shape, data_format: str):
    return input_shape[1] if data_format == "channels_first" else input_shape[4]


def volume_shape(batch, sizes, channels, data_format: str) -> Shape:
    return (batch, channels, *sizes) if data_format == "channels_first" else (batch, *sizes, channels)


def to_last(x: np.ndarray, data_format: str) -> np.ndarray:
    """A channels_first batch as channels_last (a view); channels_last as it is."""
    return np.moveaxis(x, 1, -1) if data_format == "channels_first" else x


def from_last(y: np.ndarray, data_format: str) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if data_format == "channels_first" else y


class _VolumeConv(KernelBiasLayer):
    """Conv3D and Conv3DTranspose: the window arguments, the layout and activation(op(x) + bias)."""

    _CONFIG_DEFAULTS = {
        "data_format": "channels_last",
        "activation": "linear",
        "kernel_initializer": initializers.serialize(initializers.GlorotUniform()),
        "bias_initializer": initializers.serialize(initializers.Zeros()),
    }

    def _init_window(self, where, filters, kernel_size, strides, padding, data_format, dilation_rate):
        self.filters = check_positive_int(filters, "filters", where)
        init_window(self, where, 3, kernel_size, strides, padding, data_format, dilation_rate)

    def _channels(self, input_shape: Shape, built) -> int:
        input_shape = tuple(input_shape)
        check_volume_rank(self, input_shape, self.data_format)
        channels = volume_channels(input_shape, self.data_format)
        check_conv_channels(self, channels, built, input_shape)
        return channels

    def _fused_activation(self, channels_last: bool = True):
        return None                   # the bias and activation run after the op

    def forward(self, inputs: np.ndarray, training: bool = False):
        z, op_ctx = self._run(to_last(inputs, self.data_format))
        if self.bias is not None:
            z += self.bias.value.astype(z.dtype, copy=False)        # z is fresh: in place
        z = from_last(z, self.data_format)
        y = self.activation.forward(z)
        return y, (Preactivation(op_ctx, z, y) if backend.keeps_for_backward() else None)

    def backward(self, ctx: Preactivation, grad_output: np.ndarray, need_input_grad: bool = True,
                 from_preactivation: bool = False):
        """(input gradient or None when not `need_input_grad`, [(kernel, grad), (bias, grad)])."""
        check_kept_for_backward(self, ctx)
        grad_z, _ = self._activation_backward(ctx, grad_output, from_preactivation, False)
        grad_z = to_last(grad_z, self.data_format)
        grad_input, grad_kernel = self._run_backward(grad_z, ctx.inputs, need_input_grad)
        grad_bias = grad_z.sum(axis=(0, 1, 2, 3)) if self.bias is not None else None
        return (None if grad_input is None else from_last(grad_input, self.data_format),
                self._weight_grads(grad_kernel, grad_bias))

    def _window(self) -> Window:
        return Window(self.kernel_size, self.strides, self.padding, self.dilation_rate)


class Conv3D(_VolumeConv):
    """3-D convolution: `filters` kernels of `kernel_size` (depth, rows, cols), Keras' arguments and layout.

    Weights: kernel (kd, kh, kw, in_channels / groups, filters), then bias (filters,).  Shape: each spatial axis
    n → ⌊(n + pads − d·(k − 1) − 1) / s⌋ + 1, as Conv2D's.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self._init_window(where, filters, kernel_size, strides, padding, data_format, dilation_rate)
        self.groups = check_positive_int(groups, "groups", where)
        check_grouped_conv(where, self.filters, self.groups, self.strides, self.dilation_rate)
        self._init_kernel_bias(where, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                               bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._channels(input_shape, None if self.kernel is None else self.kernel.shape[3] * self.groups)
        out = window_output_sizes(self, input_shape, AXES, volume_dims(input_shape, self.data_format))
        return volume_shape(input_shape[0], out, self.filters, self.data_format)

    def build(self, input_shape: Shape) -> None:
        channels = volume_channels(input_shape, self.data_format)
        self._build_kernel_bias(self.kernel_size + (channels // self.groups, self.filters), self.filters)

    def describe(self):
        return self._spec("conv3d", data_format=self.data_format, window=self._window(), groups=self.groups,
                          filters=self.filters)

    def _run(self, x):
        return ops.conv_nd_forward(x, self.kernel.value, self.strides, self.padding, self.dilation_rate, self.groups,
                                   keep=backend.keeps_for_backward())

    def _run_backward(self, grad_z, op_ctx, need_input_grad):
        return ops.conv_nd_backward(grad_z, op_ctx, need_input_grad)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                       "padding": self.padding, "data_format": self.data_format,
                       "dilation_rate": self.dilation_rate, "groups": self.groups, **self._kernel_bias_config()})
        return config


class Conv3DTranspose(_VolumeConv):
    """`filters` kernels scattered from each input cell (Keras' Conv3DTranspose).

    Weights: kernel (kd, kh, kw, filters, in_channels), then bias (filters,).  Shape: each axis by Keras'
    transposed rule, (n − 1)·s + d·(k − 1) + 1 ("valid") or n·s ("same"), with `output_padding`.
    """

    groups = 1

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 output_padding=None, dilation_rate=(1, 1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self._init_window(where, filters, kernel_size, strides, padding, data_format, dilation_rate)
        self.output_padding = check_transpose_arguments(where, output_padding, self.strides, self.dilation_rate)
        self._init_kernel_bias(where, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                               bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._channels(input_shape, None if self.kernel is None else self.kernel.shape[4])
        extra = self.output_padding or (None,) * 3
        out = [None if n is None else shapes.deconv_output_length(n, k, s, d, self.padding, e)
               for n, k, s, d, e in zip(volume_dims(input_shape, self.data_format), self.kernel_size, self.strides,
                                        self.dilation_rate, extra)]
        return volume_shape(input_shape[0], out, self.filters, self.data_format)

    def build(self, input_shape: Shape) -> None:
        channels = volume_channels(input_shape, self.data_format)
        self._build_kernel_bias(self.kernel_size + (self.filters, channels), self.filters)

    def describe(self):
        return self._spec("conv3d_transpose", data_format=self.data_format, window=self._window(),
                          filters=self.filters, output_padding=self.output_padding)

    def _run(self, x):
        return ops.conv_nd_transpose_forward(x, self.kernel.value, self.strides, self.padding, self.dilation_rate,
                                             self.output_padding)

    def _run_backward(self, grad_z, op_ctx, need_input_grad):
        return ops.conv_nd_transpose_backward(grad_z, op_ctx, need_input_grad)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                       "padding": self.padding, "output_padding": self.output_padding,
                       "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                       **self._kernel_bias_config()})
        return config


Convolution3D = Conv3D
Convolution3DTranspose = Conv3DTranspose
