"""Adaptive pooling (PyTorch's AdaptiveAvgPool/AdaptiveMaxPool, Keras 3's Adaptive*Pooling): the input's
spatial axes pooled to a given size, windows from `shapes.adaptive_windows`.

Channels-last arrays: NHWC (a sequence as a one-row image) or NDHWC.  The plain form: one reduction per
output cell (outputs are small: 1x1 to 7x7 in the CNNs that use it).  Max pooling keeps, per output cell, the
offset of the window's first maximum in row-major order (PyTorch's and Keras' tie rule), so its gradient goes
to that cell alone.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple, Tuple

import numpy as np

from .shapes import adaptive_windows

__all__ = ["adaptive_pool2d_forward", "adaptive_pool2d_backward", "adaptive_pool3d_forward",
           "adaptive_pool3d_backward"]


class AdaptivePoolCtx(NamedTuple):
    input_shape: Tuple[int, ...]
    dtype: np.dtype
    mode: str
    windows: tuple            # per spatial axis: (start, stop) per output cell
    argmax: object            # max: (N, *out, C) offsets in each window (row-major); avg: None


def _check(x, output_size, mode: str, op: str, rank: int):
    x = np.asarray(x)
    if x.ndim != rank + 2:
        raise ValueError(f"{op}: argument `x` must be a {rank + 2}-D channels-last batch, got shape {x.shape}")
    if mode not in ("max", "avg"):
        raise ValueError(f"{op}: argument `mode` must be 'max' or 'avg', got {mode!r}")
    size = tuple(int(v) for v in output_size)
    if len(size) != rank or min(size) < 1:
        raise ValueError(f"{op}: argument `output_size` must be {rank} positive ints, got {output_size!r}")
    return x, size


def _cells(windows):
    """(output cell index, the input slices of its window) for every output cell, row-major."""
    for cell in itertools.product(*(range(len(w)) for w in windows)):
        yield cell, tuple(slice(*windows[axis][i]) for axis, i in enumerate(cell))


def _forward(x, size, mode):
    n, c = x.shape[0], x.shape[-1]
    windows = tuple(adaptive_windows(length, m) for length, m in zip(x.shape[1:-1], size))
    y = np.empty((n,) + size + (c,), dtype=x.dtype)
    argmax = np.empty((n,) + size + (c,), dtype=np.int64) if mode == "max" else None
    spatial = tuple(range(1, x.ndim - 1))
    for cell, window in _cells(windows):
        part, at = x[(slice(None),) + window], (slice(None),) + cell
        if mode == "avg":
            y[at] = part.mean(axis=spatial, dtype=x.dtype)
        else:
            flat = part.reshape(n, int(np.prod(part.shape[1:-1])), c)       # (an empty batch too)
            argmax[at] = flat.argmax(axis=1)
            y[at] = flat.max(axis=1)
    return y, AdaptivePoolCtx(x.shape, x.dtype, mode, windows, argmax)


def _backward(grad_y, ctx: AdaptivePoolCtx, op: str):
    grad_y = np.asarray(grad_y)
    expected = (ctx.input_shape[0],) + tuple(len(w) for w in ctx.windows) + (ctx.input_shape[-1],)
    if grad_y.shape != expected:
        raise ValueError(f"{op}: argument `grad_y` must have shape {expected}, got {grad_y.shape}")
    n, c = ctx.input_shape[0], ctx.input_shape[-1]
    grad_x = np.zeros(ctx.input_shape, dtype=np.result_type(grad_y.dtype, ctx.dtype))
    samples, channels = np.arange(n)[:, None], np.arange(c)[None, :]
    for cell, window in _cells(ctx.windows):
        g = grad_y[(slice(None),) + cell]
        lengths = [w.stop - w.start for w in window]
        if ctx.mode == "avg":
            grad_x[(slice(None),) + window] += (g / int(np.prod(lengths)))[(slice(None),) + (None,) * len(window)]
        else:                   # one cell per (sample, channel): no repeats here
            offsets = np.unravel_index(ctx.argmax[(slice(None),) + cell], lengths)
            at = tuple(w.start + o for w, o in zip(window, offsets))
            grad_x[(samples,) + at + (channels,)] += g
    return grad_x


def adaptive_pool2d_forward(x: np.ndarray, output_size, mode: str = "avg"):
    """(y (N, out_h, out_w, C), ctx) of the mean or max over each adaptive window of the NHWC `x`."""
    x, size = _check(x, output_size, mode, "adaptive_pool2d_forward", 2)
    return _forward(x, size, mode)


def adaptive_pool2d_backward(grad_y: np.ndarray, ctx: AdaptivePoolCtx) -> np.ndarray:
    """The input gradient: each output cell's gradient spread evenly over its window (avg) or to the
    window's first maximum (max); overlapping windows add."""
    return _backward(grad_y, ctx, "adaptive_pool2d_backward")


def adaptive_pool3d_forward(x: np.ndarray, output_size, mode: str = "avg"):
    """(y (N, out_d, out_h, out_w, C), ctx) of the mean or max over each adaptive window of the NDHWC `x`."""
    x, size = _check(x, output_size, mode, "adaptive_pool3d_forward", 3)
    return _forward(x, size, mode)


def adaptive_pool3d_backward(grad_y: np.ndarray, ctx: AdaptivePoolCtx) -> np.ndarray:
    """`adaptive_pool2d_backward` for volumes."""
    return _backward(grad_y, ctx, "adaptive_pool3d_backward")
