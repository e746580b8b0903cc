"""`Conv1D` (alias `Convolution1D`): Keras' 1-D convolution, run by `ops.conv2d` on one-row images.

A sequence batch (batch, steps, channels) is the image batch (batch, 1, steps, channels) and
a kernel (k, in / groups, filters) the kernel (1, k, in / groups, filters), so the 1-D layers
share the 2-D ops (and their fast paths) instead of a second copy of them.  The helpers here
give the other 1-D layers the same views.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers, ops
from ..ops import shapes
from .base import Layer, Shape, check_kept_for_backward, check_positive_int, normalize_data_format
from .conv2d import ops_format
from .kernel_bias import KernelBiasLayer, Preactivation, check_conv_channels, check_grouped_conv
from .spec import Window


# -- the 1-D layout ---------------------------------------------------------------------
def describe_sequence_layout(data_format: str) -> str:
    return "(batch, channels, steps)" if data_format == "channels_first" else "(batch, steps, channels)"


def check_sequence_rank(layer: Layer, input_shape: Shape, data_format: str = "channels_last") -> None:
    """Raise unless `input_shape` is a 3-D sequence batch in `data_format`'s layout."""
    if len(input_shape) != 3:
        raise ValueError(f"{layer._describe()}: expected a 3-D input {describe_sequence_layout(data_format)}, "
                         f"got shape {tuple(input_shape)} of rank {len(input_shape)}")


def steps_dim(input_shape: Shape, data_format: str):
    return input_shape[2] if data_format == "channels_first" else input_shape[1]


def sequence_channels(input_shape: Shape, data_format: str):
    return input_shape[1] if data_format == "channels_first" else input_shape[2]


def sequence_shape(batch, steps, channels, data_format: str) -> Shape:
    return (batch, channels, steps) if data_format == "channels_first" else (batch, steps, channels)


def as_image(x: np.ndarray, data_format: str) -> np.ndarray:
    """A view of a sequence batch as one-row images: (N, L, C) -> (N, 1, L, C), (N, C, L) -> (N, C, 1, L)."""
    axis = 2 if data_format == "channels_first" else 1
    return np.expand_dims(x, axis)


def from_image(y: np.ndarray, data_format: str) -> np.ndarray:
    """The sequence batch of a one-row image batch (the inverse of `as_image`)."""
    return y.squeeze(2 if data_format == "channels_first" else 1)


def normalize_padding_1d(value, where: str, causal: bool = False) -> str:
    """"valid" or "same" (and "causal" where allowed), case-insensitive."""
    allowed = ("valid", "same", "causal") if causal else ("valid", "same")
    if not isinstance(value, str) or value.lower() not in allowed:
        names = ", ".join(repr(a) for a in allowed[:-1]) + " or " + repr(allowed[-1])
        raise ValueError(f"{where}: argument `padding` must be {names}, got {value!r}")
    return value.lower()


def ops_padding(padding: str, kernel_size: int, dilation: int):
    """The 2-D ops' padding of a one-row image: the mode, or explicit pairs for "causal"."""
    if padding == "causal":
        return ((0, 0), shapes.causal_padding(kernel_size, dilation))
    return padding.upper()


def check_window_fits(layer: Layer, input_shape: Shape, steps, kernel: int, stride: int, dilation: int,
                      padding: str, what: str):
    """The output length along the steps, or a ValueError naming the layer when the window does not fit."""
    if steps is None:
        return None
    size = shapes.conv_output_length(steps, kernel, stride, dilation, padding)
    if size <= 0:
        span = shapes.effective_kernel_size(kernel, dilation)
        raise ValueError(f"{layer._describe()}: input shape {tuple(input_shape)} is too small: the {what} spans "
                         f"{span} steps but the '{padding}'-padded input has {steps} steps, so the output "
                         f"would have {size}")
    return size


class Conv1D(KernelBiasLayer):
    """1-D convolution: `filters` kernels of `kernel_size` steps, with Keras' arguments and weight layout.

    Weights: kernel (k, in_channels / groups, filters), then bias (filters,).  padding="causal"
    pads dilation·(k − 1) steps before the sequence only, so output t sees inputs up to t·strides
    and none after (with strides 1: never the future).
    """

    _CONFIG_DEFAULTS = {
        "strides": (1,),
        "dilation_rate": (1,),
        "data_format": "channels_last",
        "activation": "linear",
        "kernel_initializer": initializers.serialize(initializers.GlorotUniform()),
        "bias_initializer": initializers.serialize(initializers.Zeros()),
    }

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.filters = check_positive_int(filters, "filters", where)
        self.kernel_size = shapes.normalize_tuple(kernel_size, 1, "kernel_size", where)
        self.strides = shapes.normalize_tuple(strides, 1, "strides", where)
        self.padding = normalize_padding_1d(padding, where, causal=True)
        self.data_format = normalize_data_format(data_format, where)
        self.dilation_rate = shapes.normalize_tuple(dilation_rate, 1, "dilation_rate", where)
        self.groups = check_positive_int(groups, "groups", where)
        check_grouped_conv(where, self.filters, self.groups, self.strides, self.dilation_rate)
        self._init_kernel_bias(where, activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, activity_regularizer,
                               kernel_constraint, bias_constraint)

    # -- shapes -----------------------------------------------------------------------
    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_sequence_rank(self, input_shape, self.data_format)
        channels = sequence_channels(input_shape, self.data_format)
        check_conv_channels(self, channels, None if self.kernel is None else self.kernel.shape[1] * self.groups,
                            input_shape)
        steps = check_window_fits(self, input_shape, steps_dim(input_shape, self.data_format), self.kernel_size[0],
                                  self.strides[0], self.dilation_rate[0], self.padding, "kernel")
        return sequence_shape(input_shape[0], steps, self.filters, self.data_format)

    def build(self, input_shape: Shape) -> None:
        channels = sequence_channels(input_shape, self.data_format)
        self._build_kernel_bias(self.kernel_size + (channels // self.groups, self.filters), self.filters)

    def describe(self):
        window = Window(self.kernel_size, self.strides, self.padding, self.dilation_rate)
        return self._spec("conv1d", data_format=self.data_format, window=window, groups=self.groups,
                          filters=self.filters)

    # -- numerics ---------------------------------------------------------------------
    def _op_args(self, inputs: np.ndarray):
        """`ops.conv2d`'s arguments for the one-row image of `inputs`."""
        padding = ops_padding(self.padding, self.kernel_size[0], self.dilation_rate[0])
        kernel = self.kernel.value.reshape((1,) + self.kernel.shape)
        return (as_image(inputs, self.data_format), kernel, (1, self.strides[0]), padding,
                ops_format(self.data_format), (1, self.dilation_rate[0]), self.groups)

    def forward(self, inputs: np.ndarray, training: bool = False):
        args = self._op_args(inputs)
        keep = backend.keeps_for_backward()
        fused = self._fused_activation(self.data_format == "channels_last")
        if fused is not None:     # bias and ReLU applied inside the convolution, block by block
            if not keep:
                y = ops.conv2d(*args, bias=self._bias_value(), activation=fused)
                return from_image(y, self.data_format), None
            y, op_ctx = ops.conv2d_forward(*args, bias=self._bias_value(), activation=fused)
            y = from_image(y, self.data_format)
            return y, Preactivation(op_ctx, None if fused == "relu" else y, y)
        z, op_ctx = ops.conv2d_forward(*args) if keep else (ops.conv2d(*args), None)
        if self.bias is not None:
            ops.bias_add(z, self.bias.value, ops_format(self.data_format))     # z is fresh: in place
        z = from_image(z, self.data_format)
        y = self.activation.forward(z)
        return y, (Preactivation(op_ctx, z, y) if keep else None)

    def backward(self, ctx: Preactivation, grad_output: np.ndarray, need_input_grad: bool = True,
                 from_preactivation: bool = False):
        """(input gradient or None when not `need_input_grad`, [(kernel, grad), (bias, grad)])."""
        check_kept_for_backward(self, ctx)
        grad_z, grad_bias = self._activation_backward(ctx, grad_output, from_preactivation,
                                                      self.data_format == "channels_last")
        grad_input, grad_kernel = ops.conv2d_backward(as_image(grad_z, self.data_format), ctx.inputs,
                                                      need_input_grad=need_input_grad)
        if grad_input is not None:
            grad_input = from_image(grad_input, self.data_format)
        if self.bias is not None and grad_bias is None:
            grad_bias = grad_z.sum(axis=(0, 2) if self.data_format == "channels_first" else (0, 1))
        return grad_input, self._weight_grads(grad_kernel.reshape(self.kernel.shape), grad_bias)

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


Convolution1D = Conv1D
