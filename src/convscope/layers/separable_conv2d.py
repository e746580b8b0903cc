"""`SeparableConv2D` (alias `SeparableConvolution2D`): Keras' depthwise-separable 2-D convolution on
`ops.separable_conv2d` (a depthwise convolution, then a 1x1 one mixing the channels)."""

from __future__ import annotations

from typing import Any, Dict

from .. import initializers, ops
from .base import Shape, check_positive_int
from .conv2d import ops_format
from .conv_family import ConvFamilyLayer, weight_config, weight_options


class SeparableConv2D(ConvFamilyLayer):
    """A depthwise convolution (`depth_multiplier` kernels per input channel), then `filters` 1x1 kernels.

    Weights, in Keras' order: depthwise_kernel (kh, kw, in_channels, depth_multiplier), pointwise_kernel
    (1, 1, in_channels * depth_multiplier, filters), then bias (filters,).
    """

    _KIND = "separable_conv2d"
    _CONFIG_DEFAULTS = dict(ConvFamilyLayer._CONFIG_DEFAULTS,
                            depthwise_initializer=initializers.serialize(initializers.GlorotUniform()),
                            pointwise_initializer=initializers.serialize(initializers.GlorotUniform()))

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.filters = check_positive_int(filters, "filters", where)
        self._init_window(where, kernel_size, strides, padding, data_format, dilation_rate)
        self.depth_multiplier = check_positive_int(depth_multiplier, "depth_multiplier", where)
        self.depthwise_initializer, self.depthwise_regularizer, self.depthwise_constraint = weight_options(
            where, "depthwise", depthwise_initializer, depthwise_regularizer, depthwise_constraint)
        self.pointwise_initializer, self.pointwise_regularizer, self.pointwise_constraint = weight_options(
            where, "pointwise", pointwise_initializer, pointwise_regularizer, pointwise_constraint)
        self._init_activation_bias(where, activation, use_bias, bias_initializer, bias_regularizer,
                                   activity_regularizer, bias_constraint)
        self.depthwise_kernel = None
        self.pointwise_kernel = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        built = None if self.depthwise_kernel is None else self.depthwise_kernel.shape[-2]
        self._input_channels(input_shape, built)
        return self._conv_output_shape(input_shape, self.filters)

    def build(self, input_shape: Shape) -> None:
        channels = self._input_channels(input_shape, None)
        self.depthwise_kernel = self.add_weight(
            self.kernel_size + (channels, self.depth_multiplier), self.depthwise_initializer,
            regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint, name="depthwise_kernel")
        self.pointwise_kernel = self.add_weight(
            (1,) * len(self.kernel_size) + (channels * self.depth_multiplier, self.filters), self.pointwise_initializer,
            regularizer=self.pointwise_regularizer, constraint=self.pointwise_constraint, name="pointwise_kernel")
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint, name="bias")
        self.built = True

    def _kernels(self) -> list:
        return [self.depthwise_kernel, self.pointwise_kernel]

    def describe(self):
        spec = self._spec(self._KIND, data_format=self.data_format, window=self._window(),
                          groups=self.depthwise_kernel.shape[-2] if self.depthwise_kernel is not None else 1,
                          depth_multiplier=self.depth_multiplier, filters=self.filters)
        spec.weights.pop("kernel")
        spec.weights.update(depthwise_kernel=self.depthwise_kernel, pointwise_kernel=self.pointwise_kernel)
        return spec

    def _run(self, inputs, bias, activation, keep):
        args = (inputs, self.depthwise_kernel.value, self.pointwise_kernel.value, self.strides,
                self.padding.upper(), ops_format(self.data_format), self.dilation_rate, bias, activation)
        return ops.separable_conv2d_forward(*args) if keep else (ops.separable_conv2d(*args), None)

    def _run_backward(self, grad_z, op_ctx, need_input_grad):
        grad_input, grad_depthwise, grad_pointwise = ops.separable_conv2d_backward(grad_z, op_ctx, need_input_grad)
        return grad_input, [grad_depthwise, grad_pointwise]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"depth_multiplier": self.depth_multiplier, "filters": self.filters, **self._window_config(),
                       **self._activation_bias_config(),
                       **weight_config("depthwise", self.depthwise_initializer, self.depthwise_regularizer,
                                       self.depthwise_constraint),
                       **weight_config("pointwise", self.pointwise_initializer, self.pointwise_regularizer,
                                       self.pointwise_constraint)})
        return config


SeparableConvolution2D = SeparableConv2D
