"""Max and average pooling (`tf.nn.max_pool2d`, `tf.nn.avg_pool2d`) forward and backward.

Max pooling pads with -inf, so a padded cell never wins, and sends each output
gradient to the first maximum of its window (as TensorFlow and PyTorch do).
Average pooling divides each window by the number of real, unpadded cells it
covers.  Both loop over the kh*kw window offsets, one strided slice each (faster
than a reduction over a reshaped copy).  The forward max pass records the offset
of each window's first maximum (one byte per output), so the backward pass only
routes gradients.  When the windows tile the padded input (stride == pool size)
the backward pass writes each offset's gradient straight into its slice, with no
accumulation and no zero fill where the windows cover every cell.  Max pooling
runs on blocks of images shared among the BLAS threads (`parallel.run_in_parallel`).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from .conv import offset_slice, pad_spatial
from .parallel import run_in_parallel
from .padding import (check_data_format, check_numeric_array, check_image_batch, float_dtype, from_nhwc,
                      parse_padding, spatial_pair, to_nhwc, window_geometry)

BLOCK_BYTES = 2 ** 20  # images per unit of threaded work (cache-sized)

__all__ = ["max_pool2d", "max_pool2d_forward", "max_pool2d_backward",
           "avg_pool2d", "avg_pool2d_forward", "avg_pool2d_backward"]


def _prepare(input, ksize, strides, padding, data_format, op):
    """Validated NHWC input, window geometry and the context shared by both poolings."""
    data_format = check_data_format(data_format, op)
    x = check_numeric_array(input, op, "input", ndim=4)
    ksize = spatial_pair(ksize, "ksize", op, data_format)
    strides = spatial_pair(strides, "strides", op, data_format)
    padding = parse_padding(padding, op, data_format)
    if not isinstance(padding, str):
        for (before, after), k in zip(padding, ksize):
            if before >= k or after >= k:
                raise ValueError(f"{op}: argument `padding` must be smaller than the window `ksize` "
                                 f"{ksize} on each side, got {padding!r}")
    x = check_image_batch(x, op, data_format)
    x = x.astype(float_dtype(x), copy=False)
    out_hw, pads = window_geometry(x.shape[1:3], ksize, strides, (1, 1), padding, op, "ksize")
    tiled = strides == ksize and pads == ((0, 0), (0, 0))
    ctx = {"input_shape": x.shape, "ksize": ksize, "strides": strides, "pads": pads, "out_hw": out_hw,
           "data_format": data_format, "tiled": tiled}
    return x, ctx


def _untile(pieces: np.ndarray, ctx, dtype) -> np.ndarray:
    """Gradient (N, H, W, C) from per-cell pieces (N, out_h, kh, out_w, kw, C); cut-off cells get 0."""
    n, h, w, c = ctx["input_shape"]
    (oh, ow), (kh, kw) = ctx["out_hw"], ctx["ksize"]
    if (oh * kh, ow * kw) == (h, w):
        return pieces.reshape(n, h, w, c)
    grad = np.zeros((n, h, w, c), dtype=dtype)
    grad[:, :oh * kh, :ow * kw, :] = pieces.reshape(n, oh * kh, ow * kw, c)
    return grad


def _check_grad(grad_output, ctx, op) -> np.ndarray:
    grad = to_nhwc(check_numeric_array(grad_output, op, "grad_output", ndim=4), ctx["data_format"])
    n, _, _, c = ctx["input_shape"]
    expected = (n,) + tuple(ctx["out_hw"]) + (c,)
    if grad.shape != expected:
        raise ValueError(f"{op}: argument `grad_output` must have the forward output's shape "
                         f"{from_nhwc(np.empty(expected, dtype=bool), ctx['data_format']).shape}, "
                         f"got {np.shape(grad_output)}")
    return grad.astype(ctx["dtype"], copy=False)


def _scatter_offsets(per_offset, ctx, dtype) -> np.ndarray:
    """Sum, over window offsets, of `per_offset(k)` (N, out_h, out_w, C) placed at its input cells."""
    n, h, w, c = ctx["input_shape"]
    (top, bottom), (left, right) = ctx["pads"]
    (kh, kw), strides, out_hw = ctx["ksize"], ctx["strides"], ctx["out_hw"]
    grad_pad = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            grad_pad[offset_slice(i, j, strides, (1, 1), out_hw)] += per_offset(i * kw + j)
    return grad_pad[:, top:top + h, left:left + w, :]


# -- max pooling --------------------------------------------------------------------------
def _window_cells(x_pad: np.ndarray, ctx) -> list:
    """The kh*kw strided views (N, out_h, out_w, C) of the padded input, one per window offset, in order."""
    (kh, kw), strides, out_hw = ctx["ksize"], ctx["strides"], ctx["out_hw"]
    return [x_pad[offset_slice(i, j, strides, (1, 1), out_hw)] for i in range(kh) for j in range(kw)]


def _image_chunks(x: np.ndarray) -> list:
    """Slices of about `BLOCK_BYTES` of images: units of work for `run_in_parallel`."""
    step = max(1, BLOCK_BYTES // max(x[:1].nbytes, 1))
    return [slice(start, start + step) for start in range(0, x.shape[0], step)]


def _nan_argmax(cells: list, argmax: np.ndarray) -> None:
    """First-maximum offsets with PyTorch's NaN rule: a NaN wins, and a later NaN over an earlier one."""
    argmax[...] = 0
    running = cells[0].copy()
    for k, window_cells in enumerate(cells[1:], start=1):
        better = (window_cells > running) | np.isnan(window_cells)
        argmax[better] = k
        np.maximum(running, window_cells, out=running)


def _window_maximum(x: np.ndarray, ctx, track: bool):
    """Maximum of each window and, if `track`, the offset (i * kw + j) of its first maximum.

    A NaN wins over numbers (and a later NaN over an earlier one), as in PyTorch.
    The offset is the largest k whose cell beat the running maximum strictly: offsets
    only grow, so a running `maximum` of k * better needs no select.  Windows holding a
    NaN, if any, are redone with the NaN rule.  Blocks of images run on the BLAS threads.
    """
    x_pad = pad_spatial(x, ctx["pads"], value=-np.inf)
    out = np.empty((x.shape[0],) + tuple(ctx["out_hw"]) + (x.shape[3],), dtype=x.dtype)
    kernel_cells = ctx["ksize"][0] * ctx["ksize"][1]
    argmax = np.zeros(out.shape, dtype=np.uint8 if kernel_cells <= 255 else np.int32) if track else None

    def compute(chunk):
        for images in chunk:
            cells, block = _window_cells(x_pad[images], ctx), out[images]
            np.copyto(block, cells[0])
            for k, window_cells in enumerate(cells[1:], start=1):
                if track:
                    better = np.greater(window_cells, block)
                    np.maximum(argmax[images], better.view(np.uint8) * argmax.dtype.type(k), out=argmax[images])
                np.maximum(block, window_cells, out=block)
            if track and np.isnan(block).any():
                _nan_argmax(cells, argmax[images])

    run_in_parallel(_image_chunks(x_pad), compute)
    return out, argmax


def max_pool2d_forward(input, ksize, strides, padding,
                       data_format: str = "NHWC") -> Tuple[np.ndarray, Dict[str, Any]]:
    """`max_pool2d` plus the position of each window's first maximum, for the backward pass."""
    x, ctx = _prepare(input, ksize, strides, padding, data_format, "max_pool2d")
    ctx["dtype"] = x.dtype
    out, ctx["argmax"] = _window_maximum(x, ctx, track=True)
    return from_nhwc(out, ctx["data_format"]), ctx


def max_pool2d(input, ksize, strides, padding, data_format: str = "NHWC") -> np.ndarray:
    """`tf.nn.max_pool2d`: the maximum of each window; padded cells count as -inf."""
    x, ctx = _prepare(input, ksize, strides, padding, data_format, "max_pool2d")
    return from_nhwc(_window_maximum(x, ctx, track=False)[0], ctx["data_format"])


def max_pool2d_backward(grad_output, ctx: Dict[str, Any]) -> np.ndarray:
    """Gradient of max pooling: each output gradient goes to its window's first maximum."""
    grad = _check_grad(grad_output, ctx, "max_pool2d_backward")
    argmax, dtype = ctx["argmax"], ctx["dtype"]
    if ctx["strides"] != ctx["ksize"]:  # overlapping or gapped windows: accumulate per offset
        grad_input = _scatter_offsets(lambda k: grad * (argmax == k), ctx, dtype)
        return from_nhwc(grad_input, ctx["data_format"])
    n, h, w, c = ctx["input_shape"]
    (top, bottom), (left, right) = ctx["pads"]
    (oh, ow), (kh, kw) = ctx["out_hw"], ctx["ksize"]
    padded_hw = (h + top + bottom, w + left + right)
    covered = padded_hw == (oh * kh, ow * kw)
    grad_pad = (np.empty if covered else np.zeros)((n,) + padded_hw + (c,), dtype=dtype)
    tiles = grad_pad[:, :oh * kh, :ow * kw, :].reshape(n, oh, kh, ow, kw, c)

    def compute(chunk):
        for images in chunk:
            for i in range(kh):
                for j in range(kw):
                    np.multiply(grad[images], argmax[images] == i * kw + j, out=tiles[images, :, i, :, j, :])

    run_in_parallel(_image_chunks(grad_pad), compute)
    return from_nhwc(grad_pad[:, top:top + h, left:left + w, :], ctx["data_format"])


# -- average pooling ----------------------------------------------------------------------
def _real_cell_counts(ctx) -> np.ndarray:
    """Number of real (unpadded) input cells in each window, shape (out_h, out_w, 1)."""
    counts = []
    for axis in range(2):
        length = ctx["input_shape"][1 + axis]
        start = np.arange(ctx["out_hw"][axis]) * ctx["strides"][axis] - ctx["pads"][axis][0]
        stop = start + ctx["ksize"][axis]
        counts.append(np.minimum(stop, length) - np.maximum(start, 0))
    return (counts[0][:, None] * counts[1][None, :])[:, :, None]


def avg_pool2d_forward(input, ksize, strides, padding,
                       data_format: str = "NHWC") -> Tuple[np.ndarray, Dict[str, Any]]:
    """`avg_pool2d` plus the geometry its backward pass needs."""
    x, ctx = _prepare(input, ksize, strides, padding, data_format, "avg_pool2d")
    ctx["dtype"] = x.dtype
    out = None
    for window_cells in _window_cells(pad_spatial(x, ctx["pads"]), ctx):
        out = window_cells.copy() if out is None else np.add(out, window_cells, out=out)
    counts = _real_cell_counts(ctx).astype(x.dtype)
    ctx["counts"] = counts
    out /= counts
    return from_nhwc(out, ctx["data_format"]), ctx


def avg_pool2d(input, ksize, strides, padding, data_format: str = "NHWC") -> np.ndarray:
    """`tf.nn.avg_pool2d`: the mean of the real (unpadded) cells of each window."""
    return avg_pool2d_forward(input, ksize, strides, padding, data_format)[0]


def avg_pool2d_backward(grad_output, ctx: Dict[str, Any]) -> np.ndarray:
    """Gradient of average pooling: each output gradient is shared equally by its real cells."""
    grad = _check_grad(grad_output, ctx, "avg_pool2d_backward")
    dtype = ctx["dtype"]
    (kh, kw) = ctx["ksize"]
    if ctx["tiled"]:
        share = grad / dtype.type(kh * kw)
        n, oh, ow, c = share.shape
        pieces = np.broadcast_to(share[:, :, None, :, None, :], (n, oh, kh, ow, kw, c))
        grad_input = _untile(np.ascontiguousarray(pieces), ctx, dtype)
    else:
        share = grad / ctx["counts"]
        grad_input = _scatter_offsets(lambda k: share, ctx, dtype)
    return from_nhwc(grad_input, ctx["data_format"])
