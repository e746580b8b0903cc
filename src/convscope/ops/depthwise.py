"""Depthwise and depthwise-separable 2-D convolutions (`tf.nn.depthwise_conv2d`, `tf.nn.separable_conv2d`).

A depthwise convolution is a grouped convolution with one group per input channel:
the filter [kh, kw, in, multiplier] read as [kh, kw, 1, in * multiplier] (output
channel c * multiplier + m comes from input channel c, as TensorFlow and Keras
order them) runs through `conv.conv2d` with groups = in.  A separable convolution
is that, then a 1x1 convolution mixing the channels.

That grouped convolution is the reference and the fallback; `_PATHS` lists the paths in
order, the first that applies runs forward and the context names it for the backward pass:
NHWC, multiplier 1, float32/float64 on the compiled path run `depthwise_train`'s kernels
(no columns; the context keeps the input and the taps).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import depthwise_train
from .conv import _check_conv_args, conv2d_backward, conv2d_forward
from .epilogue import check_epilogue, epilogue_on_tape
from .padding import check_data_format, check_numeric_array, float_dtype, to_nhwc, window_geometry
from .tape import record_forward, sees

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


def _grouped_forward(input, filter, strides, padding, data_format, dilations, bias, activation):
    """The reference: `conv2d_forward` with one group per input channel."""
    grouped, channels = _grouped_filter(input, filter, data_format, "depthwise_conv2d")
    y, conv_ctx = conv2d_forward(input, grouped, strides, padding, data_format, dilations, channels, bias,
                                 activation)
    return y, {"conv": conv_ctx}


def _grouped_backward(grad_output, ctx, need_input_grad):
    grad_input, grad_grouped = conv2d_backward(grad_output, ctx["conv"], need_input_grad)
    return grad_input, grad_grouped.reshape(ctx["filter_shape"])


def _compiled_applies(input, filter, data_format) -> bool:
    x, w = np.asarray(input), np.asarray(filter)
    return x.ndim == 4 and w.ndim == 4 and depthwise_train.applies(x, w, data_format)


def _compiled_forward(input, filter, strides, padding, data_format, dilations, bias, activation):
    """`depthwise_train.forward` after the grouped convolution's checks (the same errors)."""
    grouped, channels = _grouped_filter(input, filter, data_format, "depthwise_conv2d")
    x, _, strides, dilations, padding, _, _ = _check_conv_args(input, grouped, strides, padding, data_format,
                                                               dilations, channels)
    bias = check_epilogue(bias, activation, channels, "conv2d", "one per filter")
    out_hw, pads = window_geometry(x.shape[1:3], grouped.shape[:2], strides, dilations, padding, "conv2d",
                                   "filters")
    w = np.asarray(filter)
    return depthwise_train.forward(x, w, strides, dilations, pads, out_hw, float_dtype(x, w), bias, activation)


# The paths of the depthwise convolution, in order: (name, applies(input, filter, data_format), forward,
# backward); the first that applies runs forward, and `ctx["path"]` names it for the backward pass.
_PATHS = (
    ("compiled_nhwc", _compiled_applies, _compiled_forward, depthwise_train.backward),
    ("grouped_conv", lambda input, filter, data_format: True, _grouped_forward, _grouped_backward),
)


def depthwise_conv2d_forward(input, filter, strides, padding, data_format: str = "NHWC", dilations=None,
                             bias=None, activation: str = "linear") -> Tuple[np.ndarray, Dict[str, Any]]:
    """`depthwise_conv2d` plus the context `depthwise_conv2d_backward` needs.  The context holds a reference
    to the input (not a copy): the caller must not change the input in place before the backward pass."""
    name, _, run, _ = next(path for path in _PATHS if path[1](input, filter, data_format))
    y, ctx = run(input, filter, strides, padding, data_format, dilations, bias, activation)
    ctx.update(path=name, filter_shape=np.shape(filter), data_format=data_format, out_shape=y.shape)
    return y, ctx


def depthwise_conv2d(input, filter, strides, padding, data_format: str = "NHWC", dilations=None,
                     bias=None, activation: str = "linear") -> np.ndarray:
    """`tf.nn.depthwise_conv2d`: each input channel c convolved with its own `filter[:, :, c, m]`, output
    channel c * multiplier + m; then, optionally, `activation(. + bias)` ("linear" or "relu").  On an active tape
    that sees the input or the filter it records its backward."""
    if sees(input, filter, bias):
        y = record_forward("depthwise_conv2d", [input, filter], lambda x, w: depthwise_conv2d_forward(
            x, w, strides, padding, data_format, dilations), lambda ctx, g, need: list(depthwise_conv2d_backward(
                g, ctx, need_input_grad=need[0])))
        return epilogue_on_tape(y, bias, activation, data_format, "depthwise_conv2d")
    return depthwise_conv2d_forward(input, filter, strides, padding, data_format, dilations, bias, activation)[0]


def depthwise_conv2d_backward(grad_output, ctx: Dict[str, Any],
                              need_input_grad: bool = True) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """(input gradient or None, filter gradient [kh, kw, in, multiplier]) of the call that made `ctx`;
    `grad_output` is w.r.t. the convolution's own output (before bias and activation)."""
    op = "depthwise_conv2d_backward"
    grad = check_numeric_array(grad_output, op, "grad_output", ndim=4)
    if grad.shape != ctx["out_shape"]:
        raise ValueError(f"{op}: argument `grad_output` must have the forward output's shape {ctx['out_shape']}, "
                         f"got {grad.shape}")
    backward = next(path[3] for path in _PATHS if path[0] == ctx["path"])
    return backward(grad, ctx, need_input_grad)


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
    `pointwise_filter` [1, 1, in * multiplier, out]; then, optionally, `activation(. + bias)`.  On an active tape
    that sees an input it records its backward."""
    if sees(input, depthwise_filter, pointwise_filter, bias):
        y = record_forward("separable_conv2d", [input, depthwise_filter, pointwise_filter], lambda x, d, p: (
            separable_conv2d_forward(x, d, p, strides, padding, data_format, dilations)), lambda ctx, g, need: list(
                separable_conv2d_backward(g, ctx, need_input_grad=need[0])))
        return epilogue_on_tape(y, bias, activation, data_format, "separable_conv2d")
    return separable_conv2d_forward(input, depthwise_filter, pointwise_filter, strides, padding, data_format,
                                    dilations, bias, activation)[0]


def separable_conv2d_backward(grad_output, ctx: Dict[str, Any], need_input_grad: bool = True
                              ) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """(input gradient or None, depthwise filter gradient, pointwise filter gradient) of the call that
    made `ctx`; `grad_output` is w.r.t. the pointwise convolution's own output."""
    grad_middle, grad_pointwise = conv2d_backward(grad_output, ctx["pointwise"])
    grad_input, grad_depthwise = depthwise_conv2d_backward(grad_middle, ctx["depthwise"], need_input_grad)
    return grad_input, grad_depthwise, grad_pointwise
