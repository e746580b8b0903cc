"""`Conv2D` (alias `Convolution2D`): Keras' 2-D convolution layer on `ops.conv2d`."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers, ops
from ..ops import shapes
from .base import (Layer, Shape, check_kept_for_backward, check_positive_int, normalize_data_format,
                   normalize_padding)
from .kernel_bias import KernelBiasLayer, Preactivation, check_conv_channels, check_grouped_conv
from .spec import Window


def describe_input_layout(data_format: str) -> str:
    return "(batch, channels, rows, cols)" if data_format == "channels_first" else "(batch, rows, cols, channels)"


def call_on_images(call, inputs, training):
    """`call(batch, training)` of an image layer, one image (rank 3) taken as a batch of one (on a tape too), as
    Keras' image preprocessing and augmentation layers take it."""
    from ..ops import numpy_api
    from ..ops.tape import is_traced
    from .autodiff import recording
    traced = is_traced(inputs) or recording()
    if np.ndim(inputs.value if is_traced(inputs) else inputs) == 3:
        batch = numpy_api.expand_dims(inputs, 0) if traced else np.asarray(inputs)[None]
        return call(batch, training)[0]
    return call(inputs if traced else np.asarray(inputs), training)


def check_image_rank(layer: Layer, input_shape: Shape, data_format: str) -> None:
    """Raise unless `input_shape` is a 4-D image batch in `data_format`'s layout."""
    if len(input_shape) != 4:
        raise ValueError(f"{layer._describe()}: expected a 4-D input {describe_input_layout(data_format)}, "
                         f"got shape {tuple(input_shape)} of rank {len(input_shape)}")


def spatial_dims(input_shape: Shape, data_format: str):
    return tuple(input_shape[2:4]) if data_format == "channels_first" else tuple(input_shape[1:3])


def channel_dim(input_shape: Shape, data_format: str):
    return input_shape[1] if data_format == "channels_first" else input_shape[-1]


def image_shape(batch, rows, cols, channels, data_format: str) -> Shape:
    if data_format == "channels_first":
        return (batch, channels, rows, cols)
    return (batch, rows, cols, channels)


def sized_image_shape(layer: Layer, input_shape: Shape) -> Shape:
    """The shape of `input_shape`'s images brought to the layer's (height, width): Resizing, CenterCrop,
    RandomCrop."""
    input_shape = tuple(input_shape)
    check_image_rank(layer, input_shape, layer.data_format)
    return image_shape(input_shape[0], layer.height, layer.width, channel_dim(input_shape, layer.data_format),
                       layer.data_format)


def ops_format(data_format: str) -> str:
    return "NCHW" if data_format == "channels_first" else "NHWC"


def init_window(layer, where: str, rank: int, kernel_size, strides, padding, data_format, dilation_rate) -> None:
    """A convolution's window arguments on `rank` axes, checked as Keras checks them ("valid"/"same")."""
    layer.kernel_size = shapes.normalize_tuple(kernel_size, rank, "kernel_size", where)
    layer.strides = shapes.normalize_tuple(strides, rank, "strides", where)
    layer.padding = normalize_padding(padding, where)
    layer.data_format = normalize_data_format(data_format, where)
    layer.dilation_rate = shapes.normalize_tuple(dilation_rate, rank, "dilation_rate", where)


def window_output_sizes(layer, input_shape: Shape, axes, lengths) -> list:
    """The output length along each of `axes` (None where the input's is unknown) of the layer's kernel window
    (`kernel_size`, `strides`, `dilation_rate`, `padding`); a window larger than the padded input is refused,
    naming the layer."""
    out = []
    for axis, length, k, s, d in zip(axes, lengths, layer.kernel_size, layer.strides, layer.dilation_rate):
        size = None if length is None else shapes.conv_output_length(length, k, s, d, layer.padding)
        if size is not None and size <= 0:
            raise ValueError(
                f"{layer._describe()}: input shape {tuple(input_shape)} is too small: the kernel spans "
                f"{shapes.effective_kernel_size(k, d)} {axis} (kernel_size={layer.kernel_size}, dilation_rate="
                f"{layer.dilation_rate}) but the '{layer.padding}'-padded input has {length} {axis}, so the output "
                f"would have {size}")
        out.append(size)
    return out


class Conv2D(KernelBiasLayer):
    """2-D convolution: `filters` kernels of `kernel_size`, with Keras' arguments and weight layout.

    Weights: kernel (kh, kw, in_channels / groups, filters), then bias (filters,).
    """

    _CONFIG_DEFAULTS = {
        "data_format": "channels_last",
        "activation": "linear",
        "kernel_initializer": initializers.serialize(initializers.GlorotUniform()),
        "bias_initializer": initializers.serialize(initializers.Zeros()),
    }

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.filters = check_positive_int(filters, "filters", where)
        init_window(self, where, 2, kernel_size, strides, padding, data_format, dilation_rate)
        self.groups = check_positive_int(groups, "groups", where)
        check_grouped_conv(where, self.filters, self.groups, self.strides, self.dilation_rate)
        self._init_kernel_bias(where, activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, activity_regularizer,
                               kernel_constraint, bias_constraint)

    # -- shapes -----------------------------------------------------------------------
    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        channels = channel_dim(input_shape, self.data_format)
        check_conv_channels(self, channels, None if self.kernel is None else self.kernel.shape[2] * self.groups,
                            input_shape)
        out = window_output_sizes(self, input_shape, ("rows", "cols"), spatial_dims(input_shape, self.data_format))
        return image_shape(input_shape[0], out[0], out[1], self.filters, self.data_format)

    def build(self, input_shape: Shape) -> None:
        channels = channel_dim(input_shape, self.data_format)
        kernel_shape = self.kernel_size + (channels // self.groups, self.filters)
        self._build_kernel_bias(kernel_shape, self.filters)

    # -- numerics ---------------------------------------------------------------------
    def describe(self):
        window = Window(self.kernel_size, self.strides, self.padding, self.dilation_rate)
        return self._spec("conv2d", data_format=self.data_format, window=window, groups=self.groups,
                          filters=self.filters)

    def forward(self, inputs: np.ndarray, training: bool = False):
        args = (inputs, self.kernel.value, self.strides, self.padding.upper(), ops_format(self.data_format),
                self.dilation_rate, self.groups)
        keep = backend.keeps_for_backward()
        fused = self._fused_activation(self.data_format == "channels_last")
        if fused is not None:     # bias and ReLU applied inside the convolution, block by block
            if not keep:
                return ops.conv2d(*args, bias=self._bias_value(), activation=fused), None
            y, op_ctx = ops.conv2d_forward(*args, bias=self._bias_value(), activation=fused)
            return y, Preactivation(op_ctx, None if fused == "relu" else y, y)
        z, op_ctx = ops.conv2d_forward(*args) if keep else (ops.conv2d(*args), None)
        if self.bias is not None:
            ops.bias_add(z, self.bias.value, ops_format(self.data_format))     # z is fresh: in place
        y = self.activation.forward(z)
        return y, (Preactivation(op_ctx, z, y) if keep else None)

    def backward(self, ctx: Preactivation, grad_output: np.ndarray, need_input_grad: bool = True,
                 from_preactivation: bool = False):
        """(input gradient or None when not `need_input_grad` — which spares a first layer most of its
        backward cost —, [(kernel, grad), (bias, grad)])."""
        check_kept_for_backward(self, ctx)
        grad_z, grad_bias = self._activation_backward(ctx, grad_output, from_preactivation,
                                                      self.data_format == "channels_last")
        grad_input, grad_kernel = ops.conv2d_backward(grad_z, ctx.inputs, need_input_grad=need_input_grad)
        if self.bias is not None and grad_bias is None:
            grad_bias = grad_z.sum(axis=(0, 2, 3) if self.data_format == "channels_first" else (0, 1, 2))
        return grad_input, self._weight_grads(grad_kernel, grad_bias)

    # -- config -----------------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            **self._kernel_bias_config(),
        })
        return config


Convolution2D = Conv2D
