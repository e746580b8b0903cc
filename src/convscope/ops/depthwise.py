"""Depthwise and depthwise-separable 2-D convolutions (`tf.nn.depthwise_conv2d`, `tf.nn.separable_conv2d`).

A depthwise convolution is a grouped convolution with one group per input channel:
the filter [kh, kw, in, multiplier] read as [kh, kw, 1, in * multiplier] (output
channel c * multiplier + m comes from input channel c, as TensorFlow and Keras
order them) runs through `conv.conv2d` with groups = in.  A separable convolution
is that, then a 1x1 convolution mixing the channels.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from .conv import conv2d_backward, conv2d_forward
from .padding import check_data_format, check_numeric_array, to_nhwc

__all__ = ["depthwise_conv2d", "depthwise_conv2d_forward", "depthwise_conv2d_backward",
           "separable_conv2d", "separable_conv2d_forward", "separable_conv2d_backward"]


def _grouped_filter(input, filter, data_format, op: str) -> Tuple[np.ndarray, int]:
    """The depthwise `filter` [kh, kw, in, multiplier] as grouped-conv filters [kh, kw, 1, in * multiplier]."""
    data_format = check_data_format(data_format, op)
    x = check_numeric_array(input, op, "input", ndim=4)
    w = check_numeric_array(filter, op, "filter", ndim=4)
    channels = to_nhwc(x, data_format).shape[3]
    if w.shape[2] != channels or min(w.shape) < 1:
        raise ValueError(f"{op}: argument `filter` must have shape [kh, kw, in_channels, channel_multiplier] with "
                         f"the input's {channels} channels on axis 2, got {w.shape} (input {x.shape}, {data_format})")
    return np.ascontiguousarray(w).reshape(w.shape[0], w.shape[1], 1, -1), channels


def depthwise_conv2d_forward(input, filter, strides, padding, data_format: str = "NHWC", dilations=None,
                             bias=None, activation: str = "linear") -> Tuple[np.ndarray, Dict[str, Any]]:
    """`depthwise_conv2d` plus the context `depthwise_conv2d_backward` needs."""
    grouped, channels = _grouped_filter(input, filter, data_format, "depthwise_conv2d")
    y, conv_ctx = conv2d_forward(input, grouped, strides, padding, data_format, dilations, channels, bias,
                                 activation)
    return y, {"conv": conv_ctx, "filter_shape": np.shape(filter)}


def depthwise_conv2d(input, filter, strides, padding, data_format: str = "NHWC", dilations=None,
                     bias=None, activation: str = "linear") -> np.ndarray:
    """`tf.nn.depthwise_conv2d`: each input channel c convolved with its own `filter[:, :, c, m]`, output
    channel c * multiplier + m; then, optionally, `activation(. + bias)` ("linear" or "relu")."""
    return depthwise_conv2d_forward(input, filter, strides, padding, data_format, dilations, bias, activation)[0]


def depthwise_conv2d_backward(grad_output, ctx: Dict[str, Any],
                              need_input_grad: bool = True) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """(input gradient or None, filter gradient [kh, kw, in, multiplier]) of the call that made `ctx`;
    `grad_output` is w.r.t. the convolution's own output (before bias and activation)."""
    grad_input, grad_grouped = conv2d_backward(grad_output, ctx["conv"], need_input_grad)
    return grad_input, grad_grouped.reshape(ctx["filter_shape"])


def separable_conv2d_forward(input, depthwise_filter, pointwise_filter, strides, padding, data_format: str = "NHWC",
                             dilations=None, bias=None, activation: str = "linear"
                             ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """`separable_conv2d` plus the context `separable_conv2d_backward` needs (both convolutions')."""
    op = "separable_conv2d"
    pointwise = check_numeric_array(pointwise_filter, op, "pointwise_filter", ndim=4)
    channels = np.shape(depthwise_filter)[2] * np.shape(depthwise_filter)[3] if np.ndim(depthwise_filter) == 4 else -1
    if pointwise.shape[:3] != (1, 1, channels):
        raise ValueError(f"{op}: argument `pointwise_filter` must have shape [1, 1, in_channels * "
                         f"channel_multiplier ({channels}), out_channels], got {pointwise.shape}")
    middle, depthwise_ctx = depthwise_conv2d_forward(input, depthwise_filter, strides, padding, data_format,
                                                     dilations)
    y, pointwise_ctx = conv2d_forward(middle, pointwise, 1, "VALID", data_format, None, 1, bias, activation)
    return y, {"depthwise": depthwise_ctx, "pointwise": pointwise_ctx}


def separable_conv2d(input, depthwise_filter, pointwise_filter, strides, padding, data_format: str = "NHWC",
                     dilations=None, bias=None, activation: str = "linear") -> np.ndarray:
    """`tf.nn.separable_conv2d`: `depthwise_conv2d` by [kh, kw, in, multiplier], then a 1x1 convolution by
    `pointwise_filter` [1, 1, in * multiplier, out]; then, optionally, `activation(. + bias)`."""
    return separable_conv2d_forward(input, depthwise_filter, pointwise_filter, strides, padding, data_format,
                                    dilations, bias, activation)[0]


def separable_conv2d_backward(grad_output, ctx: Dict[str, Any], need_input_grad: bool = True
                              ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """(input gradient or None, depthwise filter gradient, pointwise filter gradient) of the call that
    made `ctx`; `grad_output` is w.r.t. the pointwise convolution's own output."""
    grad_middle, grad_pointwise = conv2d_backward(grad_output, ctx["pointwise"])
    grad_input, grad_depthwise = depthwise_conv2d_backward(grad_middle, ctx["depthwise"], need_input_grad)
    return grad_input, grad_depthwise, grad_pointwise
