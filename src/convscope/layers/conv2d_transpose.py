"""`Conv2DTranspose` (alias `Convolution2DTranspose`): Keras' transposed 2-D convolution on
`ops.conv2d_transpose` (the output size by Keras' rule, `ops.shapes.deconv_output_length`)."""

from __future__ import annotations

from typing import Any, Dict

from .. import initializers, ops
from ..ops import shapes
from .base import Shape, check_positive_int
from .conv2d import ops_format
from .conv_family import ConvFamilyLayer, check_transpose_arguments


class Conv2DTranspose(ConvFamilyLayer):
    """`filters` kernels of `kernel_size` scattered from each input pixel (the input gradient of a Conv2D).

    Weights, in Keras' layout: kernel (kh, kw, filters, in_channels), then bias (filters,).
    """

    _KIND = "conv2d_transpose"
    _CONFIG_DEFAULTS = dict(ConvFamilyLayer._CONFIG_DEFAULTS,
                            kernel_initializer=initializers.serialize(initializers.GlorotUniform()))

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.filters = check_positive_int(filters, "filters", where)
        self._init_window(where, kernel_size, strides, padding, data_format, dilation_rate)
        self.output_padding = check_transpose_arguments(where, output_padding, self.strides, self.dilation_rate)
        self._init_kernel_bias(where, activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
                               bias_constraint)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._input_channels(input_shape, None if self.kernel is None else self.kernel.shape[-1])
        out = []
        for i, (axis, length) in enumerate(zip(self._AXES, self._lengths(input_shape))):
            extra = None if self.output_padding is None else self.output_padding[i]
            size = None if length is None else shapes.deconv_output_length(
                length, self.kernel_size[i], self.strides[i], self.dilation_rate[i], self.padding, extra)
            if size is not None and size <= 0:
                raise ValueError(f"{self._describe()}: input shape {tuple(input_shape)} would give an output with "
                                 f"{size} {axis} (kernel_size={self.kernel_size}, strides={self.strides}, "
                                 f"padding='{self.padding}', output_padding={self.output_padding}); expected "
                                 f"at least 1")
            out.append(size)
        return self._shaped(input_shape[0], out, self.filters)

    def build(self, input_shape: Shape) -> None:
        channels = self._input_channels(input_shape, None)
        self._build_kernel_bias(self.kernel_size + (self.filters, channels), self.filters)

    def describe(self):
        return self._spec(self._KIND, data_format=self.data_format, window=self._window(),
                          filters=self.filters, output_padding=self.output_padding)

    def _run(self, inputs, bias, activation, keep):
        args = (inputs, self.kernel.value, None, self.strides, self.padding.upper(), ops_format(self.data_format),
                self.dilation_rate, self.output_padding, bias, activation)
        return ops.conv2d_transpose_forward(*args) if keep else (ops.conv2d_transpose(*args), None)

    def _run_backward(self, grad_z, op_ctx, need_input_grad):
        grad_input, grad_kernel = ops.conv2d_transpose_backward(grad_z, op_ctx, need_input_grad)
        return grad_input, [grad_kernel]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"filters": self.filters, **self._window_config(), "output_padding": self.output_padding,
                       **self._kernel_bias_config()})
        return config


Convolution2DTranspose = Conv2DTranspose
