"""Scaling each vector along `axes` to unit L2 norm, forward and backward (Keras' UnitNormalization).

y = x · min(1 / √Σx², 1 / epsilon), the sum over `axes` per sample (Keras' `ops.normalize` with order 2 and
epsilon 1e-12: an all-zero vector stays zero).  With n = √Σx² and inv = 1 / n, unclipped,
grad_x = inv · (g − y · Σ(g · y)); where the bound 1 / epsilon applies, grad_x = g / epsilon.
"""

from __future__ import annotations

import numpy as np

from .layer_norm import layer_norm_axes
from .padding import check_numeric_array

__all__ = ["unit_norm_forward", "unit_norm_backward", "EPSILON"]

EPSILON = 1e-12


def unit_norm_forward(x, axis=-1, epsilon: float = EPSILON):
    """(y, ctx) for `unit_norm_backward`; `epsilon` the norm's lower bound (Keras' `Dot(normalize=True)`: 1e-7)."""
    x = check_numeric_array(x, "unit_norm_forward", "x")
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    axes = layer_norm_axes(axis, x.ndim, "unit_norm_forward")
    square_sum = np.sum(np.square(x, dtype=np.float64), axis=axes, keepdims=True)
    clipped = square_sum < epsilon ** 2
    inv = np.where(clipped, 1.0 / epsilon, 1.0 / np.sqrt(np.maximum(square_sum, epsilon ** 2))).astype(x.dtype)
    y = x * inv
    return y, (y, inv, clipped, axes)


def unit_norm_backward(grad_y, ctx) -> np.ndarray:
    """The gradient w.r.t. x of the call that returned `ctx`."""
    y, inv, clipped, axes = ctx
    grad_y = np.asarray(grad_y, dtype=y.dtype)
    projected = np.sum(grad_y * y, axis=axes, keepdims=True)
    return inv * (grad_y - np.where(clipped, 0.0, y * projected).astype(y.dtype))
