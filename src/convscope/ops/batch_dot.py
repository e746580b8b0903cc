"""Keras' `batch_dot`: per sample, the dot product of `x`'s axis a0 with `y`'s axis a1, forward and backward.

Shape: x (B, *x_rest) with x_rest[a0 - 1] = K, y (B, *y_rest) with y_rest[a1 - 1] = K ->
(B, *x_rest without a0, *y_rest without a1), or (B, 1) where that leaves only the batch axis (Keras' rule).
Computed as one batched product: x with a0 moved last, (B, M, K), times y with a1 moved first after the batch,
(B, K, N).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["batch_dot_axes", "batch_dot_shape", "batch_dot_forward", "batch_dot_backward", "NORMALIZE_EPSILON"]

NORMALIZE_EPSILON = 1e-7    # Keras' backend.epsilon(): the least norm of Dot(normalize=True)'s inputs


def batch_dot_axes(axes, ranks: Sequence[int], where: str = "batch_dot") -> Tuple[int, int]:
    """Keras' `Dot` axes as two non-negative axes: an int names the same axis of both inputs (a negative one
    counted from each input's end), a pair one axis of each; neither may be the batch axis 0."""
    pair = (axes, axes) if isinstance(axes, (int, np.integer)) else tuple(axes)
    resolved = tuple(int(a) % rank if -rank <= a < rank else None for a, rank in zip(pair, ranks))
    if None in resolved or 0 in resolved:
        raise ValueError(f"{where}: argument `axes`={axes!r} must name one axis of each input other than the batch "
                         f"axis 0, got inputs of ranks {tuple(ranks)}")
    return resolved


def batch_dot_shape(shapes, axes, where: str = "batch_dot") -> Tuple[Optional[int], ...]:
    """The output shape of `batch_dot` on inputs of `shapes` (None: unknown) along `axes` (as `batch_dot_axes`
    takes them), checked: rank 2 or more, the same batch size where both are known, and the same size on the two
    summed axes (an unknown size only against an unknown one, as Keras' Dot checks them)."""
    x, y = shapes
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"{where}: expected two inputs of rank 2 or more, got shapes {tuple(x)} and {tuple(y)}")
    a0, a1 = batch_dot_axes(axes, (len(x), len(y)), where)
    checks = (("batch sizes", x[0], y[0], True), (f"sizes on axes {a0} and {a1}", x[a0], y[a1], False))
    for what, d1, d2, unknown_passes in checks:
        if d1 != d2 and not (unknown_passes and None in (d1, d2)):
            raise ValueError(f"{where}: expected equal {what}, got shapes {tuple(x)} and {tuple(y)}: {d1} against "
                             f"{d2}")
    out = tuple(x[:a0]) + tuple(x[a0 + 1:]) + tuple(y[1:a1]) + tuple(y[a1 + 1:])
    return out + (1,) if len(out) == 1 else out


def _operands(x: np.ndarray, y: np.ndarray, axes: Tuple[int, int]):
    """x as (B, M, K) and y as (B, K, N), with the moved arrays' shapes."""
    xm, ym = np.moveaxis(x, axes[0], -1), np.moveaxis(y, axes[1], 1)
    x3 = xm.reshape(len(x), math.prod(xm.shape[1:-1]), xm.shape[-1])
    return x3, ym.reshape(len(y), ym.shape[1], math.prod(ym.shape[2:])), xm.shape, ym.shape


def batch_dot_forward(x: np.ndarray, y: np.ndarray, axes: Tuple[int, int]):
    """(output, ctx for `batch_dot_backward`); `axes` from `batch_dot_axes`, shapes checked by the caller."""
    x3, y3, _, _ = _operands(x, y, axes)
    out = np.matmul(x3, y3)
    shape = batch_dot_shape([x.shape, y.shape], axes)
    return out.reshape(shape), (x, y, axes)


def batch_dot_backward(grad: np.ndarray, ctx):
    """(grad_x, grad_y) of the call that returned `ctx`: g·yᵀ and xᵀ·g on the (B, M, N) product, moved back."""
    x, y, axes = ctx
    x3, y3, x_moved, y_moved = _operands(x, y, axes)
    g3 = np.asarray(grad, dtype=np.result_type(x, y)).reshape(len(x), x3.shape[1], y3.shape[2])
    grad_x = np.matmul(g3, y3.transpose(0, 2, 1)).reshape(x_moved)
    grad_y = np.matmul(x3.transpose(0, 2, 1), g3).reshape(y_moved)
    return np.moveaxis(grad_x, -1, axes[0]), np.moveaxis(grad_y, 1, axes[1])
