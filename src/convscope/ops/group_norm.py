"""Group normalization, forward and backward (Keras' GroupNormalization; Wu & He, 2018).

The C channels on `axis` are cut into `groups` groups of C / groups consecutive channels; each sample's
group is normalized with the mean and biased variance of all its values (every position, every channel
of the group), then each channel is scaled by gamma and shifted by beta:

    y = (x - mean_group) / sqrt(var_group + epsilon) * gamma[c] + beta[c]

groups=1 normalizes a sample over everything (LayerNormalization over all axes, but with per-channel
gamma and beta); groups=C is instance normalization.  The statistics are `layer_norm`'s over the grouped
view (the channel axis split into (groups, C / groups)), so its backward is layer_norm's too, with
grad_y * gamma in place of grad_y.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .layer_norm import layer_norm_backward, layer_norm_forward
from .padding import check_numeric_array

__all__ = ["group_norm_forward", "group_norm_backward", "group_norm_axis"]


def group_norm_axis(axis, groups, shape: Tuple[int, ...], op: str = "group_norm") -> int:
    """The non-negative channel axis of an input of `shape`, checked: not the batch axis, its size a
    multiple of `groups` (a positive int)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: argument `axis` must be an int, got {axis!r}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: argument `groups` must be a positive int, got {groups!r}")
    ndim = len(shape)
    if not -ndim <= axis < ndim or int(axis) % ndim == 0:
        raise ValueError(f"{op}: argument `axis`={axis} must name a feature axis of an input of rank {ndim} "
                         f"(not the batch axis 0), got an input of shape {tuple(shape)}")
    axis = int(axis) % ndim
    channels = shape[axis]
    if channels is not None and (channels < groups or channels % groups):
        raise ValueError(f"{op}: argument `groups`={groups} must divide the {channels} channels on axis {axis} "
                         f"(input shape {tuple(shape)})")
    return axis


def _grouped(x: np.ndarray, axis: int, groups: int):
    """x viewed with its channel axis split into (groups, channels / groups), and the axes to average."""
    shape = x.shape[:axis] + (groups, x.shape[axis] // groups) + x.shape[axis + 1:]
    return x.reshape(shape), tuple(a for a in range(1, x.ndim + 1) if a != axis)


def _per_channel(value, name: str, x: np.ndarray, axis: int, op: str):
    if value is None:
        return None
    value = check_numeric_array(value, op, name)
    if value.shape != (x.shape[axis],):
        raise ValueError(f"{op}: argument `{name}` must have shape ({x.shape[axis]},) (the channels on axis "
                         f"{axis} of x, shape {x.shape}), got {value.shape}")
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return value.astype(x.dtype, copy=False).reshape(shape)


def group_norm_forward(x, gamma, beta, groups: int, axis: int = -1, epsilon: float = 1e-3):
    """(y, ctx) for `group_norm_backward`; gamma and beta of shape (C,) or None (scale/center off)."""
    op = "group_norm_forward"
    x = check_numeric_array(x, op, "x")
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    axis = group_norm_axis(axis, groups, x.shape, op)
    gamma_b, beta_b = _per_channel(gamma, "gamma", x, axis, op), _per_channel(beta, "beta", x, axis, op)
    view, axes = _grouped(x, axis, int(groups))
    normalized, norm_ctx = layer_norm_forward(view, None, None, list(axes), epsilon)
    normalized = normalized.reshape(x.shape)
    y = normalized if gamma_b is None else normalized * gamma_b
    if beta_b is not None:
        y = y + beta_b
    return y, (norm_ctx, normalized, gamma_b, axis, int(groups), beta is not None)


def group_norm_backward(grad_y, ctx, need_input_grad: bool = True):
    """(grad_x | None, grad_gamma | None, grad_beta | None) of the call that returned `ctx`."""
    norm_ctx, normalized, gamma_b, axis, groups, has_beta = ctx
    grad_y = np.asarray(grad_y, dtype=normalized.dtype)
    others = tuple(a for a in range(normalized.ndim) if a != axis)
    grad_gamma = None if gamma_b is None else np.sum(grad_y * normalized, axis=others)
    grad_beta = np.sum(grad_y, axis=others) if has_beta else None
    grad_x = None
    if need_input_grad:
        g = grad_y if gamma_b is None else grad_y * gamma_b
        grad_view = layer_norm_backward(_grouped(g, axis, groups)[0], norm_ctx)[0]
        grad_x = grad_view.reshape(normalized.shape)
    return grad_x, grad_gamma, grad_beta
