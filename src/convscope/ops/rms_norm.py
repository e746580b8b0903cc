"""Root-mean-square normalization over `axes` of each sample, forward and backward (Keras' RMSNormalization).

y = x / sqrt(mean(x²) + epsilon) * scale, the mean over `axes` (per sample; no centring, no shift); `scale` has
the shape of the normalized axes (sorted) and may be None.  The mean of squares is accumulated in float64, the
output is in x's float type.

Backward, with n = x / rms, ĝ = grad_y * scale and the mean over `axes`:
grad_x = (ĝ − n · mean(ĝ · n)) / rms;  grad_scale = the sum of grad_y · n over the other axes.
"""

from __future__ import annotations

import numpy as np

from .layer_norm import _broadcast, layer_norm_axes
from .padding import check_numeric_array

__all__ = ["rms_norm_forward", "rms_norm_backward"]


def rms_norm_forward(x, scale, axis=-1, epsilon=1e-6):
    """(y, ctx) for `rms_norm_backward`."""
    op = "rms_norm_forward"
    x = check_numeric_array(x, op, "x")
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    axes = layer_norm_axes(axis, x.ndim, op)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not epsilon >= 0:
        raise ValueError(f"{op}: argument `epsilon` must be a float >= 0, got {epsilon!r}")
    scale_b = _broadcast(scale, "scale", x, axes, op)
    mean_square = np.mean(np.square(x, dtype=np.float64), axis=axes, keepdims=True)
    inv = (1.0 / np.sqrt(mean_square + float(epsilon))).astype(x.dtype)
    normalized = x * inv
    y = normalized if scale_b is None else normalized * scale_b
    return y, (normalized, inv, scale_b, axes)


def rms_norm_backward(grad_y, ctx, need_input_grad: bool = True):
    """(grad_x | None, grad_scale | None) of the call that returned `ctx`."""
    normalized, inv, scale_b, axes = ctx
    grad_y = np.asarray(grad_y, dtype=normalized.dtype)
    others = tuple(a for a in range(normalized.ndim) if a not in axes)
    grad_scale = None if scale_b is None else np.sum(grad_y * normalized, axis=others)
    grad_x = None
    if need_input_grad:
        g = grad_y if scale_b is None else grad_y * scale_b
        grad_x = (g - normalized * np.mean(g * normalized, axis=axes, keepdims=True)) * inv
    return grad_x, grad_scale
