"""`DepthwiseConv2D`: Keras' depthwise 2-D convolution (each input channel convolved on its own) on
`ops.depthwise_conv2d`."""

from __future__ import annotations

from typing import Any, Dict

from .. import initializers, ops
from .base import Shape, check_positive_int
from .conv2d import ops_format
from .conv_family import ConvFamilyLayer, weight_config, weight_options


class DepthwiseConv2D(ConvFamilyLayer):
    """`depth_multiplier` kernels of `kernel_size` per input channel, with Keras' arguments and layout.

    Weights: kernel (kh, kw, in_channels, depth_multiplier), then bias (in_channels * depth_multiplier,);
    output channel c * depth_multiplier + m comes from input channel c alone.
    """

    _KIND = "depthwise_conv2d"
    _CONFIG_DEFAULTS = dict(ConvFamilyLayer._CONFIG_DEFAULTS,
                            depthwise_initializer=initializers.serialize(initializers.GlorotUniform()))

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self._init_window(where, kernel_size, strides, padding, data_format, dilation_rate)
        self.depth_multiplier = check_positive_int(depth_multiplier, "depth_multiplier", where)
        self.depthwise_initializer, self.depthwise_regularizer, self.depthwise_constraint = weight_options(
            where, "depthwise", depthwise_initializer, depthwise_regularizer, depthwise_constraint)
        self._init_activation_bias(where, activation, use_bias, bias_initializer, bias_regularizer,
                                   activity_regularizer, bias_constraint)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        channels = self._input_channels(input_shape, None if self.kernel is None else self.kernel.shape[-2])
        return self._conv_output_shape(input_shape, channels * self.depth_multiplier)

    def build(self, input_shape: Shape) -> None:
        channels = self._input_channels(input_shape, None)
        self.kernel = self.add_weight(self.kernel_size + (channels, self.depth_multiplier),
                                      self.depthwise_initializer, regularizer=self.depthwise_regularizer,
                                      constraint=self.depthwise_constraint, name="kernel")
        if self.use_bias:
            self.bias = self.add_weight((channels * self.depth_multiplier,), self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.built = True

    def describe(self):
        return self._spec(self._KIND, data_format=self.data_format, window=self._window(),
                          groups=self.kernel.shape[-2] if self.kernel is not None else 1,
                          depth_multiplier=self.depth_multiplier)

    def _run(self, inputs, bias, activation, keep):
        args = (inputs, self.kernel.value, self.strides, self.padding.upper(), ops_format(self.data_format),
                self.dilation_rate, bias, activation)
        return ops.depthwise_conv2d_forward(*args) if keep else (ops.depthwise_conv2d(*args), None)

    def _run_backward(self, grad_z, op_ctx, need_input_grad):
        grad_input, grad_kernel = ops.depthwise_conv2d_backward(grad_z, op_ctx, need_input_grad)
        return grad_input, [grad_kernel]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"depth_multiplier": self.depth_multiplier, **self._window_config(),
                       **self._activation_bias_config(),
                       **weight_config("depthwise", self.depthwise_initializer, self.depthwise_regularizer,
                                       self.depthwise_constraint)})
        return config
