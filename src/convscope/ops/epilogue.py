"""Bias plus ReLU (or no activation) in one pass: the epilogue of Conv2D and Dense, and its backward.

NumPy needs two passes over a layer's output for `z + bias` then `maximum(z, 0)`,
and three over the gradient for the ReLU mask and the bias gradient; the compiled
kernels make one each.  For inference the forward epilogue can go on with a
per-channel affine map and a second activation (`then`): an inference
BatchNormalization and a ReLU that follow the layer, applied in the same pass.  The channel axis is the last; rows (all other axes) are
split into one slice per thread (`parallel.on_slices`).  A NaN stays NaN through the ReLU and its
gradient is multiplied by the mask, as in NumPy (so NaN * 0 stays NaN).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import compiled, nn_api, numpy_api
from .padding import check_numeric_array
from .parallel import on_slices
from .scalar_epilogue import epilogue_value

__all__ = ["FUSED_ACTIVATIONS", "check_epilogue", "check_affine", "bias_activation_forward", "bias_activation_backward"]

FUSED_ACTIVATIONS = ("linear", "relu")


def _check_activation(activation: str, op: str, arg: str = "activation") -> None:
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"{op}: argument `{arg}` must be one of {FUSED_ACTIVATIONS}, got {activation!r}")


def check_epilogue(bias, activation: str, channels: int, op: str, channels_are: str) -> Optional[np.ndarray]:
    """The validated `bias` (None stays None) of `activation(z + bias)`; errors name `op`, and
    `channels_are` says where the expected length comes from."""
    _check_activation(activation, op)
    if bias is None:
        return None
    bias = check_numeric_array(bias, op, "bias", ndim=1)
    if bias.shape != (channels,):
        raise ValueError(f"{op}: argument `bias` must have shape ({channels},) ({channels_are}), got {bias.shape}")
    return bias


@compiled.kernel
def _epilogue_kernel(z, bias, relu, scale, shift, affine, relu_after):
    """z[r, c] = `epilogue_value` of z[r, c] with channel c's parameters; in place."""
    rows, channels = z.shape
    zero = z.dtype.type(0)
    for r in range(rows):
        for c in range(channels):
            z[r, c] = epilogue_value(z[r, c], bias[c], relu, scale[c], shift[c], affine, relu_after, zero)


@compiled.kernel
def _relu_bias_grad_kernel(grad_y, y, grad_z, bias_sum, relu):
    """grad_z = grad_y * (y > 0) if `relu` (else grad_z is grad_y, not written) and bias_sum += its
    column sums (float64)."""
    rows, channels = grad_y.shape
    for r in range(rows):
        for c in range(channels):
            value = grad_y[r, c]
            if relu:
                if not y[r, c] > 0:
                    value = value * 0.0
                grad_z[r, c] = value
            bias_sum[c] += value


def check_affine(scale, shift, then: str, channels: int, op: str):
    """The validated per-channel `scale` and `shift` (both or neither) of the inference epilogue,
    after checking its second activation `then`."""
    _check_activation(then, op, "then")
    if (scale is None) != (shift is None):
        raise ValueError(f"{op}: arguments `scale` and `shift` must be given together, got "
                         f"scale={'None' if scale is None else 'an array'} and "
                         f"shift={'None' if shift is None else 'an array'}")
    if scale is None:
        return None, None
    checked = []
    for name, value in (("scale", scale), ("shift", shift)):
        value = check_numeric_array(value, op, name, ndim=1)
        if value.shape != (channels,):
            raise ValueError(f"{op}: argument `{name}` must have shape ({channels},) (one per channel), "
                             f"got {value.shape}")
        checked.append(value)
    return checked[0], checked[1]


def bias_activation_forward(z: np.ndarray, bias: Optional[np.ndarray], activation: str,
                            scale: Optional[np.ndarray] = None, shift: Optional[np.ndarray] = None,
                            then: str = "linear") -> np.ndarray:
    """`then(activation(z + bias) * scale + shift)` written into `z` (C-contiguous, channels last) and
    returned; `scale` and `shift` (per channel, e.g. an inference BatchNormalization's) are optional."""
    channels = z.shape[-1]
    op = "bias_activation_forward"
    bias = check_epilogue(bias, activation, channels, op, f"the last axis of z, shape {z.shape}")
    scale, shift = check_affine(scale, shift, then, channels, op)
    relu, relu_after, affine = activation == "relu", then == "relu", scale is not None
    if bias is None and not (relu or relu_after or affine):
        return z
    bias, scale, shift = (None if value is None else value.astype(z.dtype, copy=False)
                          for value in (bias, scale, shift))
    rows = z.reshape(-1, channels)
    if compiled.active():
        zeros = np.zeros(channels, dtype=z.dtype)
        bias, scale, shift = (zeros if value is None else value for value in (bias, scale, shift))
        on_slices(len(rows), rows.nbytes, lambda part: _epilogue_kernel(rows[part], bias, relu, scale, shift,
                                                                         affine, relu_after))
        return z
    if bias is not None:
        rows += bias
    if relu:
        np.maximum(rows, 0, out=rows)
    if affine:
        rows *= scale
        rows += shift
    if relu_after:
        np.maximum(rows, 0, out=rows)
    return z


def bias_activation_backward(grad_y: np.ndarray, y: np.ndarray, activation: str,
                             with_bias: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(gradient w.r.t. the pre-activation, bias gradient or None) from the output `y` of the forward pass."""
    _check_activation(activation, "bias_activation_backward")
    relu = activation == "relu"
    if relu and np.shape(y) != np.shape(grad_y):
        raise ValueError(f"bias_activation_backward: arguments `grad_y` and `y` must have the same shape, "
                         f"got {np.shape(grad_y)} and {np.shape(y)}")
    channels = grad_y.shape[-1]
    if compiled.active() and (relu or with_bias):
        grad_y = np.ascontiguousarray(grad_y)
        grad_rows = grad_y.reshape(-1, channels)
        y_rows = np.ascontiguousarray(y).reshape(-1, channels) if relu else grad_rows
        grad_z = np.empty_like(grad_y) if relu else grad_y
        grad_z_rows = grad_z.reshape(-1, channels)

        def work(part):
            bias_sum = np.zeros(channels)
            _relu_bias_grad_kernel(grad_rows[part], y_rows[part], grad_z_rows[part], bias_sum, relu)
            return bias_sum

        sums = on_slices(len(grad_rows), grad_rows.nbytes, work)
        grad_bias = sum(sums).astype(grad_y.dtype) if with_bias else None
        return grad_z, grad_bias
    grad_z = grad_y * (y > 0) if relu else grad_y
    grad_bias = grad_z.reshape(-1, channels).sum(axis=0) if with_bias else None
    return grad_z, grad_bias


def bias_add(z: np.ndarray, bias: np.ndarray, data_format: str = "NHWC") -> np.ndarray:
    """z + bias over the channel axis (last for NHWC, 1 for NCHW), in place on `z` (a fresh array of
    the caller's), as `tf.nn.bias_add`; returns `z`."""
    if data_format not in ("NHWC", "NCHW"):
        raise ValueError(f"bias_add: argument `data_format` must be 'NHWC' or 'NCHW', got {data_format!r}")
    channels = z.shape[1] if data_format == "NCHW" else z.shape[-1]
    if bias.shape != (channels,):
        raise ValueError(f"bias_add: argument `bias` must have shape ({channels},) for z of shape {z.shape} "
                         f"({data_format}), got {bias.shape}")
    z += bias.reshape((1, channels) + (1,) * (z.ndim - 2)) if data_format == "NCHW" else bias
    return z


# -- the inference epilogue of one row of channels (fused_inference, depthwise_fast) ----------------
@compiled.kernel(inline=True)
def activate_one(value, low, high, swish, zero, three, six):
    """One value: `value` clipped to [low, high], times relu6(value + 3) / 6 if `swish` (NaN stays NaN):
    every activation of `fused_inference.INFERENCE_ACTIVATIONS` by its `_limits`, as selects the compiler
    vectorizes (a choice among four branches inside the loop kept it scalar, and many times slower;
    measurements: benchmarks/README.md, 'Measurements behind the code's choices')."""
    value = low if value < low else value
    value = high if value > high else value
    if swish:
        gate = value + three
        gate = zero if gate < zero else gate
        gate = six if gate > six else gate
        value = value * (gate / six)
    return value


@compiled.kernel(inline=True)
def finish_channels(o, bias, scale, shift, residual, limits, affine, has_residual):
    """then(act(o + bias) * scale + shift + residual) on one row of channels, in place; `limits` holds
    (low, high, swish) of act then of `then` (`fused_inference._limits`)."""
    zero = o.dtype.type(0)
    finish_channels_as(o, bias, scale, shift, residual, limits, affine, has_residual, limits[2] != zero,
                       limits[5] != zero)


@compiled.kernel(inline=True)
def finish_channels_as(o, bias, scale, shift, residual, limits, affine, has_residual, swish, swish_after):
    """`finish_channels` with the two hard-swish flags given: a caller that passes False for both (a literal)
    gets the loop without the swish branches, which the compiler vectorizes whole (faster on MobileNetV2's
    and ResNet50's rows; measurements: benchmarks/README.md, 'Measurements behind the code's choices')."""
    zero = o.dtype.type(0)
    three, six = o.dtype.type(3), o.dtype.type(6)
    low, high, low_after, high_after = limits[0], limits[1], limits[3], limits[4]
    for c in range(len(o)):
        value = activate_one(o[c] + bias[c], low, high, swish, zero, three, six)
        if affine:
            value = value * scale[c] + shift[c]
        if has_residual:
            value = value + residual[c]
        o[c] = activate_one(value, low_after, high_after, swish_after, zero, three, six)


def epilogue_on_tape(y, bias, activation: str, data_format: str, op: str):
    """`activation(y + bias)` of a traced convolution output (`tf.nn`-style ops on a tape), with the ops that
    record their gradients; the bias along the channels of `data_format` ("NHWC"/"NCHW" or Keras' names)."""
    _check_activation(activation, op)
    if bias is not None:
        channels_first = data_format in ("NCHW", "NCW", "NCDHW", "channels_first")
        shape = (1, -1) + (1,) * (np.ndim(getattr(y, "value", y)) - 2) if channels_first else (-1,)
        y = numpy_api.add(y, numpy_api.reshape(bias, shape))
    return nn_api.relu(y) if activation == "relu" else y
