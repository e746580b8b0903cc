"""Adaptive pooling (PyTorch's AdaptiveAvgPool/AdaptiveMaxPool, Keras 3's Adaptive*Pooling): the input's
spatial axes pooled to a given size, windows from `shapes.adaptive_windows`.

NHWC arrays (a sequence as a one-row image).  The plain form: one reduction per output cell (outputs are
small: 1x1 to 7x7 in the CNNs that use it).  Max pooling keeps, per output cell, the offset of the window's
first maximum in row-major order (PyTorch's and Keras' tie rule), so its gradient goes to that cell alone.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .shapes import adaptive_windows

__all__ = ["adaptive_pool2d_forward", "adaptive_pool2d_backward"]


class AdaptivePoolCtx(NamedTuple):
    input_shape: Tuple[int, ...]
    dtype: np.dtype
    mode: str
    rows: tuple               # (start, stop) per output row
    cols: tuple
    argmax: object            # max: (N, out_h, out_w, C) offsets in each window; avg: None


def _check(x, output_size, mode: str, op: str):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: argument `x` must be a 4-D NHWC batch, got shape {x.shape}")
    if mode not in ("max", "avg"):
        raise ValueError(f"{op}: argument `mode` must be 'max' or 'avg', got {mode!r}")
    size = tuple(int(v) for v in output_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{op}: argument `output_size` must be two positive ints, got {output_size!r}")
    return x, size


def adaptive_pool2d_forward(x: np.ndarray, output_size, mode: str = "avg"):
    """(y (N, out_h, out_w, C), ctx) of the mean or max over each adaptive window of the NHWC `x`."""
    x, (out_h, out_w) = _check(x, output_size, mode, "adaptive_pool2d_forward")
    n, h, w, c = x.shape
    rows, cols = adaptive_windows(h, out_h), adaptive_windows(w, out_w)
    y = np.empty((n, out_h, out_w, c), dtype=x.dtype)
    argmax = np.empty((n, out_h, out_w, c), dtype=np.int64) if mode == "max" else None
    for i, (top, bottom) in enumerate(rows):
        for j, (left, right) in enumerate(cols):
            window = x[:, top:bottom, left:right, :]
            if mode == "avg":
                y[:, i, j, :] = window.mean(axis=(1, 2), dtype=x.dtype)
            else:
                flat = window.reshape(n, (bottom - top) * (right - left), c)       # (an empty batch too)
                argmax[:, i, j, :] = flat.argmax(axis=1)
                y[:, i, j, :] = flat.max(axis=1)
    return y, AdaptivePoolCtx(x.shape, x.dtype, mode, rows, cols, argmax)


def adaptive_pool2d_backward(grad_y: np.ndarray, ctx: AdaptivePoolCtx) -> np.ndarray:
    """The input gradient: each output cell's gradient spread evenly over its window (avg) or to the
    window's first maximum (max); overlapping windows add."""
    grad_y = np.asarray(grad_y)
    expected = (ctx.input_shape[0], len(ctx.rows), len(ctx.cols), ctx.input_shape[3])
    if grad_y.shape != expected:
        raise ValueError(f"adaptive_pool2d_backward: argument `grad_y` must have shape {expected}, got "
                         f"{grad_y.shape}")
    n, _, _, c = ctx.input_shape
    grad_x = np.zeros(ctx.input_shape, dtype=np.result_type(grad_y.dtype, ctx.dtype))
    images, channels = np.arange(n)[:, None], np.arange(c)[None, :]
    for i, (top, bottom) in enumerate(ctx.rows):
        for j, (left, right) in enumerate(ctx.cols):
            g = grad_y[:, i, j, :]
            if ctx.mode == "avg":
                grad_x[:, top:bottom, left:right, :] += (g / ((bottom - top) * (right - left)))[:, None, None, :]
            else:
                offset = ctx.argmax[:, i, j, :]           # one cell per (image, channel): no repeats here
                width = right - left
                grad_x[images, top + offset // width, left + offset % width, channels] += g
    return grad_x
