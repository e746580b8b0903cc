"""Batch normalization forward and backward over every axis except `axis`.

Training normalizes with the batch's mean and biased variance (as Keras);
inference uses the given moving statistics.  `gamma` or `beta` may be None
(Keras' scale=False / center=False); their gradients are then None.

For speed, the per-channel sums are `einsum` reductions (no temporary product
array), and each chain of element-wise steps runs over blocks of the leading
axis of about `BLOCK_BYTES`, so a block's intermediate values stay in the CPU
cache between steps instead of travelling through memory once per step.  The
blocks are shared among as many threads as BLAS has (NumPy releases the GIL in
element-wise loops).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from .parallel import run_in_parallel
from .padding import check_numeric_array

BLOCK_BYTES = 2 ** 20  # element-wise chains run over blocks of the leading axis of about this size

__all__ = ["batch_norm_train", "batch_norm_infer", "batch_norm_backward", "batch_norm_infer_backward"]


def _channel_axis(x: np.ndarray, axis, op: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: argument `axis` must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: argument `axis` must be in [{-x.ndim}, {x.ndim - 1}] for x of shape "
                         f"{x.shape}, got {axis}")
    return int(axis) % x.ndim


def _check_epsilon(epsilon, op: str) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not epsilon > 0:
        raise ValueError(f"{op}: argument `epsilon` must be a positive float, got {epsilon!r}")
    return float(epsilon)


def _per_channel(value, name: str, x: np.ndarray, axis: int, op: str) -> Optional[np.ndarray]:
    """A (C,) parameter reshaped to broadcast against x (None stays None)."""
    if value is None:
        return None
    value = check_numeric_array(value, op, name, ndim=1)
    if value.shape[0] != x.shape[axis]:
        raise ValueError(f"{op}: argument `{name}` must have shape ({x.shape[axis]},) (the size of axis "
                         f"{axis} of x, shape {x.shape}), got {value.shape}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return value.astype(x.dtype, copy=False).reshape(shape)


def _prepare(x, axis, epsilon, op):
    x = check_numeric_array(x, op, "x")
    if x.ndim < 1:
        raise ValueError(f"{op}: argument `x` must have at least one axis, got a scalar")
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    axis = _channel_axis(x, axis, op)
    return x, axis, _check_epsilon(epsilon, op)


def _einsum_subscripts(ndim: int, axis: int) -> Tuple[str, str]:
    """einsum subscripts reducing every axis but `axis`: ("abcd->d", "abcd,abcd->d") for ndim 4, axis 3."""
    letters = "abcdefghijklmnopqrstuvwxyz"[:ndim]
    return f"{letters}->{letters[axis]}", f"{letters},{letters}->{letters[axis]}"


def _blocks(x: np.ndarray, axis: int) -> list:
    """Index tuples splitting axis 0 into blocks of about `BLOCK_BYTES` (one block if axis 0 is the channel axis)."""
    if axis == 0 or x.ndim == 0 or x.shape[0] == 0:
        return [(slice(None),)]
    row_bytes = max(x.nbytes // x.shape[0], 1)
    step = max(1, BLOCK_BYTES // row_bytes)
    return [(slice(start, start + step),) for start in range(0, x.shape[0], step)]


def batch_norm_train(x, gamma, beta, axis, epsilon) -> Tuple[np.ndarray, Dict[str, Any], np.ndarray, np.ndarray]:
    """(y, ctx, batch_mean, batch_var): normalize with the batch statistics (biased variance)."""
    op = "batch_norm_train"
    x, axis, epsilon = _prepare(x, axis, epsilon, op)
    gamma_b = _per_channel(gamma, "gamma", x, axis, op)
    beta_b = _per_channel(beta, "beta", x, axis, op)
    count = max(x.size // max(x.shape[axis], 1), 1)
    total, dot = _einsum_subscripts(x.ndim, axis)
    broadcast = [1] * x.ndim
    broadcast[axis] = -1
    mean = (np.einsum(total, x) / x.dtype.type(count)).reshape(broadcast)
    centered = np.empty_like(x)
    blocks = _blocks(x, axis)

    def center(chunk):
        squares = np.zeros(x.shape[axis], dtype=x.dtype)
        for index in chunk:
            block = np.subtract(x[index], mean, out=centered[index])
            squares += np.einsum(dot, block, block)
        return squares

    var = (sum(run_in_parallel(blocks, center)) / x.dtype.type(count)).reshape(broadcast)
    inv_std = 1.0 / np.sqrt(var + x.dtype.type(epsilon))
    scale = inv_std if gamma_b is None else inv_std * gamma_b
    y = np.empty_like(x)

    def normalize(chunk):
        for index in chunk:
            block = np.multiply(centered[index], scale, out=y[index])
            if beta_b is not None:
                block += beta_b

    run_in_parallel(blocks, normalize)
    ctx = {"centered": centered, "inv_std": inv_std, "gamma": gamma_b, "axis": axis,
           "has_beta": beta_b is not None}
    return y, ctx, mean.reshape(-1), var.reshape(-1)


def batch_norm_infer(x, gamma, beta, mean, var, axis, epsilon) -> np.ndarray:
    """Normalize with given (moving) statistics: gamma * (x - mean) / sqrt(var + epsilon) + beta.

    Computed as x * scale + shift with per-channel scale and shift: two passes over x.
    """
    op = "batch_norm_infer"
    x, axis, epsilon = _prepare(x, axis, epsilon, op)
    gamma_b = _per_channel(gamma, "gamma", x, axis, op)
    beta_b = _per_channel(beta, "beta", x, axis, op)
    mean_b = _per_channel(mean, "mean", x, axis, op)
    var_b = _per_channel(var, "var", x, axis, op)
    scale = 1.0 / np.sqrt(var_b + x.dtype.type(epsilon))
    if gamma_b is not None:
        scale = scale * gamma_b
    shift = -mean_b * scale
    if beta_b is not None:
        shift = shift + beta_b
    y = np.empty_like(x)
    for index in _blocks(x, axis):
        block = np.multiply(x[index], scale, out=y[index])
        block += shift
    return y


def batch_norm_backward(grad_y, ctx: Dict[str, Any]) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of `batch_norm_train` w.r.t. x, gamma and beta (through the batch statistics).

    grad_x = a * grad_y - b * centered - c per channel, with x_hat = centered * inv_std,
    a = gamma * inv_std, b = a * inv_std * mean(grad_y * x_hat) and c = a * mean(grad_y).
    """
    op = "batch_norm_backward"
    centered, inv_std, gamma = ctx["centered"], ctx["inv_std"], ctx["gamma"]
    grad_y = check_numeric_array(grad_y, op, "grad_y")
    if grad_y.shape != centered.shape:
        raise ValueError(f"{op}: argument `grad_y` must have the input's shape {centered.shape}, "
                         f"got {grad_y.shape}")
    grad_y = grad_y.astype(centered.dtype, copy=False)
    axis = ctx["axis"]
    total, dot = _einsum_subscripts(centered.ndim, axis)
    count = centered.dtype.type(max(centered.size // max(centered.shape[axis], 1), 1))
    grad_beta = np.einsum(total, grad_y)
    grad_gamma = np.einsum(dot, grad_y, centered) * inv_std.reshape(-1)
    scale = inv_std if gamma is None else inv_std * gamma
    slope = scale * inv_std * (grad_gamma.reshape(inv_std.shape) / count)
    offset = scale * (grad_beta.reshape(inv_std.shape) / count)
    grad_x = np.empty_like(centered)

    def combine(chunk):
        for index in chunk:
            block = np.multiply(grad_y[index], scale, out=grad_x[index])
            block -= centered[index] * slope
            block -= offset

    run_in_parallel(_blocks(centered, axis), combine)
    return (grad_x, None if gamma is None else grad_gamma, grad_beta if ctx["has_beta"] else None)


def batch_norm_infer_backward(grad_y, gamma, var, axis, epsilon) -> np.ndarray:
    """Gradient of `batch_norm_infer` w.r.t. x: grad_y * gamma / sqrt(var + epsilon)."""
    op = "batch_norm_infer_backward"
    grad_y, axis, epsilon = _prepare(grad_y, axis, epsilon, op)
    var_b = _per_channel(var, "var", grad_y, axis, op)
    gamma_b = _per_channel(gamma, "gamma", grad_y, axis, op)
    scale = 1.0 / np.sqrt(var_b + grad_y.dtype.type(epsilon))
    if gamma_b is not None:
        scale = scale * gamma_b
    return grad_y * scale
