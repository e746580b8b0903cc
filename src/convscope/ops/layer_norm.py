"""Layer normalization over `axes` of each sample, forward and backward (Keras' LayerNormalization).

y = (x - mean) / sqrt(var + epsilon) * gamma + beta, the mean and biased variance taken over
`axes` (per sample, never over the batch).  gamma and beta have the shape of the normalized
axes (in sorted order) and may be None (Keras' scale=False / center=False).  The statistics are
accumulated in float64, the output is in x's float type.

Backward, with x̂ the normalized input, ĝ = grad_y * gamma and means over `axes`:
grad_x = (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂)) / sqrt(var + epsilon);
grad_gamma = sum of grad_y * x̂ and grad_beta = sum of grad_y over the other axes.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .padding import check_numeric_array

__all__ = ["layer_norm_forward", "layer_norm_backward", "layer_norm_axes"]


def layer_norm_axes(axis, ndim: int, op: str = "layer_norm") -> Tuple[int, ...]:
    """`axis` (an int or a list of ints) as sorted non-negative axes of a rank-`ndim` input."""
    items = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not items or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in items):
        raise TypeError(f"{op}: argument `axis` must be an int or a non-empty list of ints, got {axis!r}")
    if any(not -ndim <= a < ndim for a in items):
        raise ValueError(f"{op}: argument `axis`={axis!r} is out of range for an input of rank {ndim}")
    axes = sorted({int(a) % ndim for a in items})
    if len(axes) != len(items):
        raise ValueError(f"{op}: argument `axis`={axis!r} names an axis twice")
    return tuple(axes)


def _broadcast(value, name: str, x: np.ndarray, axes, op: str) -> Optional[np.ndarray]:
    if value is None:
        return None
    value = check_numeric_array(value, op, name)
    expected = tuple(x.shape[a] for a in axes)
    if value.shape != expected:
        raise ValueError(f"{op}: argument `{name}` must have shape {expected} (axes {axes} of x, shape "
                         f"{x.shape}), got {value.shape}")
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    return value.astype(x.dtype, copy=False).reshape(shape)


def layer_norm_forward(x, gamma, beta, axis=-1, epsilon=1e-3):
    """(y, ctx) for `layer_norm_backward`."""
    op = "layer_norm_forward"
    x = check_numeric_array(x, op, "x")
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    axes = layer_norm_axes(axis, x.ndim, op)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not epsilon > 0:
        raise ValueError(f"{op}: argument `epsilon` must be a positive float, got {epsilon!r}")
    gamma_b, beta_b = _broadcast(gamma, "gamma", x, axes, op), _broadcast(beta, "beta", x, axes, op)
    mean = np.mean(x, axis=axes, keepdims=True, dtype=np.float64)
    var = np.mean(np.square(x - mean.astype(x.dtype), dtype=np.float64), axis=axes, keepdims=True)
    inv = (1.0 / np.sqrt(var + float(epsilon))).astype(x.dtype)
    normalized = (x - mean.astype(x.dtype)) * inv
    y = normalized if gamma_b is None else normalized * gamma_b
    if beta_b is not None:
        y = y + beta_b
    return y, (normalized, inv, gamma_b, axes, beta is not None)


def layer_norm_backward(grad_y, ctx, need_input_grad: bool = True):
    """(grad_x | None, grad_gamma | None, grad_beta | None) of the call that returned `ctx`."""
    normalized, inv, gamma_b, axes, has_beta = ctx
    grad_y = np.asarray(grad_y, dtype=normalized.dtype)
    others = tuple(a for a in range(normalized.ndim) if a not in axes)
    grad_gamma = None if gamma_b is None else np.sum(grad_y * normalized, axis=others)
    grad_beta = np.sum(grad_y, axis=others) if has_beta else None
    grad_x = None
    if need_input_grad:
        g = grad_y if gamma_b is None else grad_y * gamma_b
        mean_g = np.mean(g, axis=axes, keepdims=True)
        mean_gx = np.mean(g * normalized, axis=axes, keepdims=True)
        grad_x = (g - mean_g - normalized * mean_gx) * inv
    return grad_x, grad_gamma, grad_beta
