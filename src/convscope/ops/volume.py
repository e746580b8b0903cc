"""Convolution, transposed convolution and pooling on any number of spatial axes (Conv3D, Conv3DTranspose,
MaxPooling3D, AveragePooling3D), channels_last: x (N, *spatial, C).

The plain form: one product (or max, or sum) per kernel tap over strided views of the padded input, each a
BLAS product of (positions, C) by (C, F); the backward pass walks the same taps.  A 3-D convolution runs as 2-D
convolutions of depth slices (conv2d's fast paths) where it can (`_CONV_PATHS`), a pooling as 2-D poolings of the
slices (`_POOL_PATHS`), the taps as their reference.  Padding and output sizes come from `shapes` (TF's SAME split, Keras' transposed rule).  Average pooling divides by the real cells of
each window (TensorFlow's rule, as the 2-D op); max pooling's gradient goes to each window's first maximum in
row-major order.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from . import shapes
from .conv import conv2d, conv2d_backward, conv2d_forward
from .pooling import (avg_pool2d, avg_pool2d_backward, avg_pool2d_forward, max_pool2d, max_pool2d_backward,
                      max_pool2d_forward)

__all__ = ["conv_nd_forward", "conv_nd_backward", "conv_nd_transpose_forward", "conv_nd_transpose_backward",
           "pool_nd_forward", "pool_nd_backward"]


def _check(x, rank: int, op: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != rank + 2 or x.dtype.kind != "f":
        raise ValueError(f"{op}: argument `x` must be a float array (batch, {rank} spatial axes, channels), got "
                         f"{x.dtype} of shape {x.shape}")
    return x


def _taps(size: Sequence[int]):
    return itertools.product(*(range(k) for k in size))


def _views(tap, dilations, strides, counts) -> Tuple[slice, ...]:
    """The strided view of tap `tap` on every output position (the batch and channel axes whole)."""
    return ((slice(None),) + tuple(slice(t * d, t * d + s * (n - 1) + 1, s)
                                   for t, d, s, n in zip(tap, dilations, strides, counts)) + (slice(None),))


def _padded(x, pads, value=0.0):
    widths = [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)]
    return np.pad(x, widths, constant_values=value) if any(any(p) for p in pads) else x


def _crop(x, pads):
    return x[(slice(None),) + tuple(slice(b, x.shape[i + 1] - a) for i, (b, a) in enumerate(pads))]


# -- convolution ---------------------------------------------------------------------------------------------
def conv_nd_forward(x, kernel, strides, padding: str, dilations, groups: int = 1, keep: bool = True):
    """(y (N, *out, F), ctx or None) of the cross-correlation of x (N, *spatial, C) with kernel (*k, C / groups, F);
    the first path of `_CONV_PATHS` that applies computes it, and its backward pass with it (`conv_nd_backward`).
    `keep=False`: nothing kept for a backward pass."""
    op = "conv_nd_forward"
    kernel = np.asarray(kernel)
    rank = kernel.ndim - 2
    x = _check(x, rank, op)
    channels, filters = x.shape[-1], kernel.shape[-1]
    if channels != kernel.shape[-2] * groups or filters % groups:
        raise ValueError(f"{op}: {channels} input channels and a kernel of shape {kernel.shape} do not make "
                         f"{groups} group(s)")
    size = kernel.shape[:rank]
    geometry = {"pads": [shapes.pad_amounts(n, k, s, d, padding)
                         for n, k, s, d in zip(x.shape[1:-1], size, strides, dilations)],
                "counts": [shapes.conv_output_length(n, k, s, d, padding)
                           for n, k, s, d in zip(x.shape[1:-1], size, strides, dilations)],
                "strides": tuple(strides), "dilations": tuple(dilations), "groups": groups}
    if min(geometry["counts"]) <= 0:
        raise ValueError(f"{op}: a kernel of {tuple(size)} (dilations {tuple(dilations)}) does not fit the "
                         f"{padding!r}-padded input of spatial shape {x.shape[1:-1]}")
    kernel = kernel.astype(x.dtype, copy=False)
    run = next(run for _, applies, run in _CONV_PATHS if applies(x, kernel))
    y, ctx = run(x, kernel, geometry, keep)
    return y, ctx


def conv_nd_backward(grad, ctx: Dict[str, Any], need_input_grad: bool = True):
    """(input gradient or None, kernel gradient) of the `conv_nd_forward` call that made `ctx`."""
    return ctx["backward"](np.asarray(grad, dtype=ctx["dtype"]), ctx, need_input_grad)


def _conv_taps(x, kernel, g: Dict[str, Any], keep: bool):
    """The reference: for each tap, the strided view of the padded input times the tap's (C, F) matrix."""
    xp = _padded(x, g["pads"])
    channels, filters, groups = x.shape[-1], kernel.shape[-1], g["groups"]
    y = np.zeros((x.shape[0], *g["counts"], filters), dtype=x.dtype)
    flat_y = y.reshape(-1, filters)
    per, out_per = channels // groups, filters // groups
    for tap in _taps(kernel.shape[:-2]):
        window = np.ascontiguousarray(xp[_views(tap, g["dilations"], g["strides"], g["counts"])]).reshape(-1, channels)
        for k in range(groups):
            flat_y[:, k * out_per:(k + 1) * out_per] += \
                window[:, k * per:(k + 1) * per] @ kernel[tap][:, k * out_per:(k + 1) * out_per]
    return y, (dict(g, xp=xp, kernel=kernel, dtype=x.dtype, backward=_conv_taps_backward) if keep else None)


def _conv_taps_backward(grad, ctx: Dict[str, Any], need_input_grad: bool):
    xp, kernel, groups = ctx["xp"], ctx["kernel"], ctx["groups"]
    channels, filters = xp.shape[-1], kernel.shape[-1]
    per, out_per = channels // groups, filters // groups
    flat_grad = grad.reshape(-1, filters)
    grad_kernel = np.zeros_like(kernel)
    grad_xp = np.zeros_like(xp) if need_input_grad else None
    for tap in _taps(kernel.shape[:-2]):
        view = _views(tap, ctx["dilations"], ctx["strides"], ctx["counts"])
        window = np.ascontiguousarray(xp[view]).reshape(-1, channels)
        for k in range(groups):
            cin, cout = slice(k * per, (k + 1) * per), slice(k * out_per, (k + 1) * out_per)
            grad_kernel[tap][:, cout] = window[:, cin].T @ flat_grad[:, cout]
            if grad_xp is not None:
                part = flat_grad[:, cout] @ kernel[tap][:, cout].T
                grad_xp[view][..., cin] += part.reshape(grad_xp[view].shape[:-1] + (per,))
    return (None if grad_xp is None else _crop(grad_xp, ctx["pads"])), grad_kernel


def _depth_slices_applies(x, kernel) -> bool:
    return kernel.ndim == 5 and x.dtype in (np.float32, np.float64)


def _conv_depth_slices(x, kernel, g: Dict[str, Any], keep: bool):
    """A volume convolution as kd 2-D convolutions (conv2d's fast paths) of the input's depth slices that
    each depth tap reads, summed: slice t of output depth o is input depth o·s + t·d (padded)."""
    (front, back), rest = g["pads"][0], g["pads"][1:]
    xp = _padded(x, [(front, back), (0, 0), (0, 0)])
    n, depth, stride, dilation = x.shape[0], g["counts"][0], g["strides"][0], g["dilations"][0]
    y, tap_contexts = None, []
    for t in range(kernel.shape[0]):
        slab = np.ascontiguousarray(xp[:, t * dilation:t * dilation + stride * (depth - 1) + 1:stride])
        args = (slab.reshape((n * depth,) + x.shape[2:]), kernel[t], g["strides"][1:], rest, "NHWC",
                g["dilations"][1:], g["groups"])
        out, tap_ctx = conv2d_forward(*args) if keep else (conv2d(*args), None)
        tap_contexts.append(tap_ctx)
        y = out if y is None else np.add(y, out, out=y)
    y = y.reshape((n, depth) + y.shape[1:])
    ctx = dict(g, taps=tap_contexts, xp_shape=xp.shape, kernel_shape=kernel.shape, dtype=x.dtype,
               backward=_conv_depth_slices_backward)
    return y, (ctx if keep else None)


def _conv_depth_slices_backward(grad, ctx: Dict[str, Any], need_input_grad: bool):
    n, depth = grad.shape[:2]
    flat = np.ascontiguousarray(grad).reshape((n * depth,) + grad.shape[2:])
    stride, dilation = ctx["strides"][0], ctx["dilations"][0]
    grad_kernel = np.zeros(ctx["kernel_shape"], dtype=ctx["dtype"])
    grad_xp = np.zeros(ctx["xp_shape"], dtype=ctx["dtype"]) if need_input_grad else None
    for t, tap_ctx in enumerate(ctx["taps"]):
        grad_slab, grad_kernel[t] = conv2d_backward(flat, tap_ctx, need_input_grad)
        if grad_xp is not None:
            grad_xp[:, t * dilation:t * dilation + stride * (depth - 1) + 1:stride] += \
                grad_slab.reshape((n, depth) + grad_xp.shape[2:])
    if grad_xp is not None:
        front, back = ctx["pads"][0]
        grad_xp = grad_xp[:, front:grad_xp.shape[1] - back]
    return grad_xp, grad_kernel


def _depth_stacked_applies(x, kernel) -> bool:
    return _depth_slices_applies(x, kernel) and kernel.shape[-2] == x.shape[-1]          # one group


def _conv_depth_stacked(x, kernel, g: Dict[str, Any], keep: bool):
    """One 2-D convolution whose channels are the kd depth slices each output depth reads, side by side
    (kernel (kd, kh, kw, C, F) as (kh, kw, kd·C, F)): fewer, deeper products than `_conv_depth_slices`
    (a first layer of 1 to 3 channels most of all).  Kept for a backward pass: the stacked input, kd times
    the input (the taps keep the input once), the price of conv2d's paths."""
    (front, back), rest = g["pads"][0], g["pads"][1:]
    xp = _padded(x, [(front, back), (0, 0), (0, 0)])
    n, depth, stride, dilation = x.shape[0], g["counts"][0], g["strides"][0], g["dilations"][0]
    taps, channels, filters = kernel.shape[0], x.shape[-1], kernel.shape[-1]
    views = [slice(t * dilation, t * dilation + stride * (depth - 1) + 1, stride) for t in range(taps)]
    stacked = np.concatenate([xp[:, view] for view in views], axis=-1)
    stacked = stacked.reshape((n * depth,) + x.shape[2:4] + (taps * channels,))
    kernel2d = np.ascontiguousarray(np.moveaxis(kernel, 0, 2)).reshape(kernel.shape[1:3] + (taps * channels, filters))
    args = (stacked, kernel2d, g["strides"][1:], rest, "NHWC", g["dilations"][1:], 1)
    y, ctx2d = conv2d_forward(*args) if keep else (conv2d(*args), None)
    ctx = dict(g, ctx2d=ctx2d, views=views, xp_shape=xp.shape, kernel_shape=kernel.shape, dtype=x.dtype,
               backward=_conv_depth_stacked_backward)
    return y.reshape((n, depth) + y.shape[1:]), (ctx if keep else None)


def _conv_depth_stacked_backward(grad, ctx: Dict[str, Any], need_input_grad: bool):
    n, depth = grad.shape[:2]
    flat = np.ascontiguousarray(grad).reshape((n * depth,) + grad.shape[2:])
    grad_stacked, grad_kernel2d = conv2d_backward(flat, ctx["ctx2d"], need_input_grad)
    taps, kh, kw, channels, filters = ctx["kernel_shape"]
    grad_kernel = np.moveaxis(grad_kernel2d.reshape(kh, kw, taps, channels, filters), 2, 0)
    if not need_input_grad:
        return None, np.ascontiguousarray(grad_kernel)
    grad_xp = np.zeros(ctx["xp_shape"], dtype=ctx["dtype"])
    parts = grad_stacked.reshape((n, depth) + grad_stacked.shape[1:3] + (taps, channels))
    for t, view in enumerate(ctx["views"]):
        grad_xp[:, view] += parts[..., t, :]
    front, back = ctx["pads"][0]
    return grad_xp[:, front:grad_xp.shape[1] - back], np.ascontiguousarray(grad_kernel)


# The paths of a volume convolution, in order: the first that applies runs (and its backward pass).
_CONV_PATHS = (
    ("depth_stacked", _depth_stacked_applies, _conv_depth_stacked),
    ("depth_slices", _depth_slices_applies, _conv_depth_slices),
    ("taps", lambda x, kernel: True, _conv_taps),
)


# -- transposed convolution ------------------------------------------------------------------------------
def conv_nd_transpose_forward(x, kernel, strides, padding: str, dilations, output_padding=None):
    """(y, ctx): each input cell scatters kernel (*k, F, C) over the output (Keras' Conv3DTranspose layout);
    the output sizes and the cells cut from the full scatter are `shapes.deconv_output_length` and
    `shapes.deconv_padding`'s (a negative cut appends zeros)."""
    kernel = np.asarray(kernel)
    rank = kernel.ndim - 2
    x = _check(x, rank, "conv_nd_transpose_forward")
    size = kernel.shape[:rank]
    extra = output_padding or (None,) * rank
    cuts = [shapes.deconv_padding(n, k, s, d, padding, e)
            for n, k, s, d, e in zip(x.shape[1:-1], size, strides, dilations, extra)]
    full = [(n - 1) * s + d * (k - 1) + 1 for n, k, s, d in zip(x.shape[1:-1], size, strides, dilations)]
    kernel = kernel.astype(x.dtype, copy=False)
    filters = kernel.shape[-2]
    y_full = np.zeros((x.shape[0], *[f + max(-a, 0) for f, (_, a) in zip(full, cuts)], filters), dtype=x.dtype)
    flat_x = x.reshape(-1, x.shape[-1])
    for tap in _taps(size):
        view = _views(tap, dilations, strides, x.shape[1:-1])
        y_full[view] += (flat_x @ kernel[tap].T).reshape(x.shape[:-1] + (filters,))
    y = y_full[(slice(None),) + tuple(slice(b, f - max(a, 0)) for f, (b, a) in zip(y_full.shape[1:-1], cuts))]
    ctx = {"x": x, "kernel": kernel, "cuts": cuts, "full_shape": y_full.shape, "strides": tuple(strides),
           "dilations": tuple(dilations)}
    return np.ascontiguousarray(y), ctx


def conv_nd_transpose_backward(grad, ctx: Dict[str, Any], need_input_grad: bool = True):
    """(input gradient or None, kernel gradient) of `conv_nd_transpose_forward`'s call."""
    x, kernel, cuts = ctx["x"], ctx["kernel"], ctx["cuts"]
    grad_full = np.zeros(ctx["full_shape"], dtype=x.dtype)
    inner = (slice(None),) + tuple(slice(b, f - max(a, 0)) for f, (b, a) in zip(grad_full.shape[1:-1], cuts))
    grad_full[inner] = grad
    filters, channels = kernel.shape[-2], kernel.shape[-1]
    flat_x = x.reshape(-1, channels)
    grad_x = np.zeros_like(flat_x) if need_input_grad else None
    grad_kernel = np.zeros_like(kernel)
    for tap in _taps(kernel.shape[:-2]):
        window = np.ascontiguousarray(grad_full[_views(tap, ctx["dilations"], ctx["strides"], x.shape[1:-1])])
        window = window.reshape(-1, filters)
        grad_kernel[tap] = window.T @ flat_x
        if grad_x is not None:
            grad_x += window @ kernel[tap]
    return (None if grad_x is None else grad_x.reshape(x.shape)), grad_kernel


# -- pooling ------------------------------------------------------------------------------------------------
def pool_nd_forward(x, pool_size, strides, padding: str, mode: str = "max", keep: bool = True):
    """(y, ctx or None): the max or average over each window (`mode`); "same" windows count only their real cells.
    The first path of `_POOL_PATHS` that applies computes it (and its backward pass, `pool_nd_backward`)."""
    op = "pool_nd_forward"
    rank = len(pool_size)
    x = _check(x, rank, op)
    if mode not in ("max", "avg"):
        raise ValueError(f"{op}: argument `mode` must be 'max' or 'avg', got {mode!r}")
    geometry = {"pads": [shapes.pad_amounts(n, k, s, 1, padding) for n, k, s in zip(x.shape[1:-1], pool_size, strides)],
                "counts": [shapes.conv_output_length(n, k, s, 1, padding)
                           for n, k, s in zip(x.shape[1:-1], pool_size, strides)],
                "strides": tuple(strides), "size": tuple(pool_size), "padding": padding, "mode": mode,
                "dtype": x.dtype}
    if min(geometry["counts"]) <= 0:
        raise ValueError(f"{op}: a pooling window of {tuple(pool_size)} does not fit the {padding!r}-padded input "
                         f"of spatial shape {x.shape[1:-1]}")
    run = next(run for _, applies, run in _POOL_PATHS if applies(x))
    return run(x, geometry, keep)


def pool_nd_backward(grad, ctx: Dict[str, Any]) -> np.ndarray:
    """The input gradient of `pool_nd_forward`'s call."""
    return ctx["backward"](np.asarray(grad, dtype=ctx["dtype"]), ctx)


def _pool_taps(x, g: Dict[str, Any], keep: bool):
    """The reference: each tap's strided view maxed or summed in; max keeps the index of the first maximum."""
    mode, counts, rank = g["mode"], g["counts"], len(g["size"])
    xp = _padded(x, g["pads"], -np.inf if mode == "max" else 0.0)
    y = np.full((x.shape[0], *counts, x.shape[-1]), -np.inf if mode == "max" else 0.0, dtype=x.dtype)
    first = np.zeros(y.shape, dtype=np.int32) if mode == "max" else None
    real = _padded(np.ones((1, *x.shape[1:-1], 1), dtype=x.dtype), g["pads"]) if mode == "avg" else None
    cells = np.zeros((1, *counts, 1), dtype=x.dtype) if mode == "avg" else None
    for index, tap in enumerate(_taps(g["size"])):
        view = _views(tap, [1] * rank, g["strides"], counts)
        if mode == "max":
            window = xp[view]
            first[(window > y) | np.isnan(window)] = index     # a NaN wins, a later one over an earlier (2-D op)
            np.maximum(y, window, out=y)
        else:
            y += xp[view]
            cells += real[view]
    if mode == "avg":
        y /= cells
    return y, (dict(g, shape=xp.shape, first=first, cells=cells, backward=_pool_taps_backward) if keep else None)


def _pool_taps_backward(grad, ctx: Dict[str, Any]) -> np.ndarray:
    grad_xp = np.zeros(ctx["shape"], dtype=ctx["dtype"])
    share = grad / ctx["cells"] if ctx["mode"] == "avg" else None
    for index, tap in enumerate(_taps(ctx["size"])):
        view = _views(tap, [1] * len(ctx["size"]), ctx["strides"], ctx["counts"])
        grad_xp[view] += share if share is not None else np.where(ctx["first"] == index, grad, 0)
    return _crop(grad_xp, ctx["pads"])


def _pool_depth_slices_applies(x) -> bool:
    return x.ndim == 5 and x.dtype in (np.float32, np.float64)


def _pool_depth_slices(x, g: Dict[str, Any], keep: bool):
    """A volume pooling as the 2-D pooling of every (depth-padded) slice (the 2-D ops' fast paths), then the
    depth windows: max keeps the first depth tap holding the maximum, average divides by its real slices."""
    mode, (front, back) = g["mode"], g["pads"][0]
    xp = _padded(x, [(front, back), (0, 0), (0, 0)], -np.inf if mode == "max" else 0.0)
    n, slices = x.shape[0], xp.shape[1]
    flat = xp.reshape((n * slices,) + x.shape[2:])
    args = (flat, g["size"][1:], g["strides"][1:], g["padding"].upper())
    if mode == "max":
        pooled, ctx2d = max_pool2d_forward(*args) if keep else (max_pool2d(*args), None)
    else:
        pooled, ctx2d = avg_pool2d_forward(*args) if keep else (avg_pool2d(*args), None)
    pooled = pooled.reshape((n, slices) + pooled.shape[1:])
    depth, stride = g["counts"][0], g["strides"][0]
    views = [slice(t, t + stride * (depth - 1) + 1, stride) for t in range(g["size"][0])]
    real = np.ones(slices, dtype=x.dtype)
    real[:front], real[slices - back:] = 0, 0
    cells = sum(real[view] for view in views).reshape(1, depth, 1, 1, 1)       # real slices in each depth window
    if mode == "max":
        y = pooled[:, views[0]].copy()
        first = np.zeros(y.shape, dtype=np.int32) if keep else None
        for t, view in enumerate(views[1:], start=1):
            if keep:                                  # a NaN wins, a later one over an earlier (2-D op)
                first[(pooled[:, view] > y) | np.isnan(pooled[:, view])] = t
            np.maximum(y, pooled[:, view], out=y)
    else:
        y = sum(pooled[:, view] for view in views) / cells
        first = None
    ctx = dict(g, views=views, first=first, cells=cells, ctx2d=ctx2d, pooled_shape=pooled.shape,
               xp_shape=xp.shape, backward=_pool_depth_slices_backward)
    return y, (ctx if keep else None)


def _pool_depth_slices_backward(grad, ctx: Dict[str, Any]) -> np.ndarray:
    grad_pooled = np.zeros(ctx["pooled_shape"], dtype=ctx["dtype"])
    share = grad / ctx["cells"] if ctx["mode"] == "avg" else None
    for t, view in enumerate(ctx["views"]):
        grad_pooled[:, view] += share if share is not None else np.where(ctx["first"] == t, grad, 0)
    n, slices = ctx["xp_shape"][:2]
    flat = grad_pooled.reshape((n * slices,) + grad_pooled.shape[2:])
    backward = max_pool2d_backward if ctx["mode"] == "max" else avg_pool2d_backward
    grad_xp = backward(flat, ctx["ctx2d"]).reshape(ctx["xp_shape"])
    front, back = ctx["pads"][0]
    return np.ascontiguousarray(grad_xp[:, front:slices - back])


# The paths of a volume pooling, in order: the first that applies runs (and its backward pass).
_POOL_PATHS = (
    ("depth_slices", _pool_depth_slices_applies, _pool_depth_slices),
    ("taps", lambda x: True, _pool_taps),
)
