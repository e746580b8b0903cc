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

When `compiled.active()`, both poolings run compiled kernels instead, one slice of
images per BLAS thread, in a single pass: the forward kernels read the unpadded
input with index bounds (no padded copy) and finish each output row while it is in
cache; the backward kernels gather, for each input cell, the gradients of the
windows that hold it, so each input cell is written once (0 where no window picks
it) and overlapping windows need no zero fill or scattered adds.  Both paths give
the same numbers: the kernels add in the NumPy path's order (a cell's windows last
one first), so even sums over overlapping windows agree to the bit.  For float32, max
pooling compares a SIMD vector of channels at a time (`ops/pooling_simd.py`; the same
maxima and offsets), and without a backward pass does not record the offsets.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from . import compiled, pooling_simd
from .conv import offset_slice, pad_spatial
from .parallel import on_slices, run_in_parallel
from .tape import record_forward, sees
from .padding import (_padding_pairs, check_data_format, check_numeric_array, check_image_batch, float_dtype, from_nhwc,
                      parse_padding, spatial_pair, to_nhwc, window_geometry)

BLOCK_BYTES = 2 ** 20  # images per unit of threaded work (cache-sized); the kernels leave smaller batches
                       # on the calling thread

__all__ = ["max_pool2d", "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_zero_padded",
           "avg_pool2d", "avg_pool2d_forward", "avg_pool2d_backward", "global_avg_pool2d"]


def _geometry_context(input_shape, ksize, strides, padding, data_format, op) -> Dict[str, Any]:
    """The validated window geometry of a pooling of an NHWC batch of `input_shape`."""
    ksize = spatial_pair(ksize, "ksize", op, data_format)
    strides = spatial_pair(strides, "strides", op, data_format)
    padding = parse_padding(padding, op, data_format)
    if not isinstance(padding, str):
        for (before, after), k in zip(padding, ksize):
            if before >= k or after >= k:
                raise ValueError(f"{op}: argument `padding` must be smaller than the window `ksize` "
                                 f"{ksize} on each side, got {padding!r}")
    out_hw, pads = window_geometry(input_shape[1:3], ksize, strides, (1, 1), padding, op, "ksize")
    tiled = strides == ksize and pads == ((0, 0), (0, 0))
    return {"input_shape": tuple(input_shape), "ksize": ksize, "strides": strides, "pads": pads,
            "out_hw": out_hw, "data_format": data_format, "tiled": tiled}


def _prepare(input, ksize, strides, padding, data_format, op):
    """Validated NHWC input, window geometry and the context shared by both poolings."""
    data_format = check_data_format(data_format, op)
    x = check_numeric_array(input, op, "input", ndim=4)
    x = check_image_batch(x, op, data_format)
    x = x.astype(float_dtype(x), copy=False)
    return x, _geometry_context(x.shape, ksize, strides, padding, data_format, op)


def pool_geometry(input_shape, ksize, strides, padding, op: str, counts: bool = False):
    """(out_hw, window, counts) of a pooling of NHWC batches shaped like `input_shape` (any batch size),
    validated; errors name `op`.  `window` is (kh, kw, stride_h, stride_w, top, left) as the compiled
    kernels take it; `counts`, if asked for (average pooling), is the number of real cells in each
    window, shape (out_h, out_w), else None."""
    ctx = _geometry_context(input_shape, ksize, strides, padding, "NHWC", op)
    return tuple(ctx["out_hw"]), _geometry(ctx), _real_cell_counts(ctx)[:, :, 0] if counts else None


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


def _geometry(ctx) -> tuple:
    """(kh, kw, stride_h, stride_w, top, left): the integer arguments of the compiled kernels."""
    (kh, kw), (sh, sw), ((top, _), (left, _)) = ctx["ksize"], ctx["strides"], ctx["pads"]
    return kh, kw, sh, sw, top, left


@compiled.kernel
def _windows_holding(length, padding_before, ksize, stride, out_length):
    """(first, last) index of the windows that hold each input position along an axis (first > last: none)."""
    ranges = np.empty((length, 2), dtype=np.int64)
    for position in range(length):
        padded = position + padding_before
        ranges[position, 0] = max(0, (padded - ksize + stride) // stride)
        ranges[position, 1] = min(out_length - 1, padded // stride)
    return ranges


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


@compiled.kernel
def _max_pool_kernel(x, kh, kw, sh, sw, top, left, out, argmax):
    """Each window's maximum into `out` and the offset i * kw + j of its first maximum into `argmax`.

    Only the real cells are read: padding is -inf and never wins.  A NaN wins over numbers and
    a later NaN over an earlier one (PyTorch's rule).  As on the NumPy path the offset starts at
    0, so a window whose real cells are all -inf keeps offset 0 (padding there: no gradient).
    The output row holds the running maximum: it stays in cache while its window is read.
    """
    n, h, w, c = x.shape
    for b in range(n):
        for p in range(out.shape[1]):
            row = p * sh - top
            for q in range(out.shape[2]):
                col = q * sw - left
                best, first = out[b, p, q], argmax[b, p, q]
                best[:] = -np.inf
                first[:] = 0
                for i in range(max(0, -row), min(kh, h - row)):
                    for j in range(max(0, -col), min(kw, w - col)):
                        cell, k = x[b, row + i, col + j], i * kw + j
                        for ch in range(c):
                            if cell[ch] > best[ch] or cell[ch] != cell[ch]:
                                best[ch] = cell[ch]
                                first[ch] = k


@compiled.kernel
def _max_pool_grad_kernel(grad, argmax, kh, kw, sh, sw, top, left, gate, gated, grad_input):
    """Each input cell's gradient: the sum of `grad` over the windows whose first maximum it is.

    Disjoint windows (stride >= pool size) give a cell one window at most: its gradient is
    written once, 0 where no window holds it.  Overlapping windows add up, last window first
    (the NumPy path's order).  If `gated`, a window's gradient is multiplied by 0 where its
    `gate` value (the pooled output) is not > 0: the backward pass of a ReLU before the pooling.
    """
    n, h, w, c = grad_input.shape
    zero, overlapping = grad.dtype.type(0), kh > sh or kw > sw
    rows = _windows_holding(h, top, kh, sh, grad.shape[1])
    cols = _windows_holding(w, left, kw, sw, grad.shape[2])
    for b in range(n):
        for row in range(h):
            for col in range(w):
                (p_first, p_last), (q_first, q_last), total = rows[row], cols[col], grad_input[b, row, col]
                if overlapping:
                    total[:] = 0
                    for p in range(p_last, p_first - 1, -1):
                        for q in range(q_last, q_first - 1, -1):
                            k = argmax.dtype.type((row + top - p * sh) * kw + col + left - q * sw)
                            window_grad, window_argmax, window_gate = grad[b, p, q], argmax[b, p, q], gate[b, p, q]
                            for ch in range(c):
                                value = window_grad[ch] if window_argmax[ch] == k else zero
                                if gated and not window_gate[ch] > 0:
                                    value = value * zero
                                total[ch] += value
                elif p_first > p_last or q_first > q_last:
                    total[:] = 0
                else:
                    k = argmax.dtype.type((row + top - p_last * sh) * kw + col + left - q_last * sw)
                    window_grad, window_argmax = grad[b, p_last, q_last], argmax[b, p_last, q_last]
                    window_gate = gate[b, p_last, q_last]
                    for ch in range(c):
                        value = window_grad[ch] if window_argmax[ch] == k else zero
                        if gated and not window_gate[ch] > 0:
                            value = value * zero
                        total[ch] = value


def _argmax_dtype(ctx) -> type:
    """One byte per window offset while the window has at most 255 cells."""
    return np.uint8 if ctx["ksize"][0] * ctx["ksize"][1] <= 255 else np.int32


def _max_pool_block(x: np.ndarray, geometry: tuple, out: np.ndarray, argmax: np.ndarray, track: bool) -> None:
    """The scalar compiled kernel on a block.  It always records the offsets (one byte each): untracked,
    into a scratch array of its own (`argmax` is then a placeholder)."""
    _max_pool_kernel(x, *geometry, out, argmax if track else np.empty(out.shape, dtype=argmax.dtype))


# Max pooling's compiled block kernels, first that applies (to the input, the geometry and whether the
# offsets are tracked) wins;
# the NumPy code in `_window_maximum` is the reference and the fallback.
_MAX_POOL_PATHS = (
    ("simd_2x2", lambda x, ctx, track: pooling_simd.applies_2x2(x, _argmax_dtype(ctx), _geometry(ctx),
                                                                 ctx["out_hw"], track),
     pooling_simd.max_pool_2x2),                                  # inference, 2x2 stride 2, windows inside
    ("simd", lambda x, ctx, track: pooling_simd.applies(x, _argmax_dtype(ctx)),
     pooling_simd.max_pool),                                      # float32: a vector of channels per step
    ("compiled", lambda x, ctx, track: compiled.active(), _max_pool_block),          # a channel at a time,
)


def _max_pool_path(x: np.ndarray, ctx, track: bool):
    """The block kernel of the first of `_MAX_POOL_PATHS` that applies, or None (NumPy)."""
    return next((run for _, applies, run in _MAX_POOL_PATHS if applies(x, ctx, track)), None)


def _window_maximum(x: np.ndarray, ctx, track: bool):
    """Maximum of each window and, if `track`, the offset (i * kw + j) of its first maximum.

    A NaN wins over numbers (and a later NaN over an earlier one), as in PyTorch.
    The offset is the largest k whose cell beat the running maximum strictly: offsets
    only grow, so a running `maximum` of k * better needs no select.  Windows holding a
    NaN, if any, are redone with the NaN rule.  Blocks of images run on the BLAS threads.
    The compiled kernels (`_MAX_POOL_PATHS`) find both in one pass, on slices of images.
    """
    out = np.empty((x.shape[0],) + tuple(ctx["out_hw"]) + (x.shape[3],), dtype=x.dtype)
    argmax_dtype = _argmax_dtype(ctx)
    x = np.ascontiguousarray(x)
    run = _max_pool_path(x, ctx, track)
    if run is not None:
        geometry, argmax = _geometry(ctx), np.empty(out.shape if track else (1, 1, 1, 1), dtype=argmax_dtype)
        on_slices(len(x), x.nbytes, lambda images: run(
            x[images], geometry, out[images], argmax[images] if track else argmax, track), BLOCK_BYTES)
        return out, argmax if track else None
    x_pad = pad_spatial(x, ctx["pads"], value=-np.inf)
    argmax = np.zeros(out.shape, dtype=argmax_dtype) if track else None

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


def max_pool2d_context(input_shape, ksize, strides, padding, dtype, op: str) -> Dict[str, Any]:
    """The backward context of a max pooling of NHWC batches of `input_shape` computed block by block
    (a fused op): its "argmax" array is allocated, for `max_pool2d_into` to fill; errors name `op`."""
    ctx = _geometry_context(input_shape, ksize, strides, padding, "NHWC", op)
    ctx["dtype"] = np.dtype(dtype)
    ctx["argmax"] = np.empty((input_shape[0],) + tuple(ctx["out_hw"]) + (input_shape[3],), dtype=_argmax_dtype(ctx))
    return ctx


def max_pool2d_into(x: np.ndarray, out: np.ndarray, argmax: np.ndarray, ctx) -> None:
    """Max pooling of the NHWC block `x` (C-contiguous) into `out`, and the offsets of its first maxima
    into `argmax` (slices of `ctx`'s), on the calling thread: a block step of a fused op."""
    run = _max_pool_path(x, ctx, True)
    if run is not None:
        run(x, _geometry(ctx), out, argmax, True)
        return
    out[...], argmax[...] = _window_maximum(x, ctx, track=True)


def max_pool2d_forward(input, ksize, strides, padding,
                       data_format: str = "NHWC") -> Tuple[np.ndarray, Dict[str, Any]]:
    """`max_pool2d` plus the position of each window's first maximum, for the backward pass."""
    x, ctx = _prepare(input, ksize, strides, padding, data_format, "max_pool2d")
    ctx["dtype"] = x.dtype
    out, ctx["argmax"] = _window_maximum(x, ctx, track=True)
    return from_nhwc(out, ctx["data_format"]), ctx


def max_pool2d(input, ksize, strides, padding, data_format: str = "NHWC") -> np.ndarray:
    """`tf.nn.max_pool2d`: the maximum of each window; padded cells count as -inf.  On an active tape that sees the
    input it records its backward (each window's gradient to its first maximum)."""
    if sees(input):
        return record_forward("max_pool2d", [input], lambda x: max_pool2d_forward(x, ksize, strides, padding,
                                                                                 data_format),
                              lambda ctx, g, need: [max_pool2d_backward(g, ctx)])
    x, ctx = _prepare(input, ksize, strides, padding, data_format, "max_pool2d")
    return from_nhwc(_window_maximum(x, ctx, track=False)[0], ctx["data_format"])


def max_pool2d_zero_padded(input, padding, ksize, strides) -> np.ndarray:
    """A ZeroPadding2D by `padding` ((top, bottom), (left, right)) then a 'VALID' max pooling, of an NHWC
    batch, as one op (inference: no offsets).  For float32 the SIMD kernel reads the unpadded input, the
    padded cells zeros that take part in the maxima in window order: the bits of the two ops one after
    the other (`pad_spatial`, then `max_pool2d`: the reference and the other dtypes' path)."""
    op = "max_pool2d_zero_padded"
    x = check_numeric_array(input, op, "input", ndim=4)
    x = x.astype(float_dtype(x), copy=False)
    pads = _padding_pairs(padding, op)
    (top, bottom), (left, right) = pads
    padded_shape = (x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right, x.shape[3])
    ctx = _geometry_context(padded_shape, ksize, strides, "VALID", "NHWC", op)
    if not pooling_simd.applies(x, _argmax_dtype(ctx)):
        return max_pool2d(pad_spatial(x, pads), ctx["ksize"], ctx["strides"], "VALID")
    x = np.ascontiguousarray(x)
    out = np.empty((x.shape[0],) + tuple(ctx["out_hw"]) + (x.shape[3],), dtype=x.dtype)
    geometry, unused = ctx["ksize"] + ctx["strides"] + (top, left), np.empty((1, 1, 1, 1), dtype=np.uint8)
    on_slices(len(x), x.nbytes, lambda images: pooling_simd.max_pool(
        x[images], geometry, out[images], unused, False, zero_pads=True), BLOCK_BYTES)
    return out


def max_pool2d_backward(grad_output, ctx: Dict[str, Any], relu_output=None) -> np.ndarray:
    """Gradient of max pooling: each output gradient goes to its window's first maximum.

    With `relu_output` (this pooling's forward output, when its input came out of a ReLU) the
    gradient also goes back through that ReLU: it is w.r.t. the ReLU's input.  A window's maximum
    is its ReLU output, so the ReLU's mask is known from the pooled values: a window's gradient
    counts only where its maximum is > 0 (multiplied by 0 otherwise, as the ReLU's backward
    does), with no pass over the full-size ReLU output.
    """
    op = "max_pool2d_backward"
    grad = _check_grad(grad_output, ctx, op)
    argmax, dtype = ctx["argmax"], ctx["dtype"]
    if relu_output is not None:
        relu_output = check_numeric_array(relu_output, op, "relu_output", ndim=4)
        if relu_output.shape != np.shape(grad_output):
            raise ValueError(f"{op}: argument `relu_output` must have the forward output's shape "
                             f"{np.shape(grad_output)}, got {relu_output.shape}")
        relu_output = to_nhwc(relu_output, ctx["data_format"])
    if compiled.active():
        grad, geometry = np.ascontiguousarray(grad), _geometry(ctx)
        gate = grad if relu_output is None else np.ascontiguousarray(relu_output)
        grad_input = np.empty(ctx["input_shape"], dtype=dtype)
        on_slices(len(grad_input), grad_input.nbytes, lambda images: _max_pool_grad_kernel(
            grad[images], argmax[images], *geometry, gate[images], relu_output is not None, grad_input[images]),
            BLOCK_BYTES)
        return from_nhwc(grad_input, ctx["data_format"])
    if relu_output is not None:
        grad = grad * (relu_output > 0)
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


@compiled.kernel
def _avg_pool_kernel(x, counts, kh, kw, sh, sw, top, left, out):
    """Each window's sum over its real cells (in the NumPy path's order) divided by `counts` (out_h, out_w)."""
    n, h, w, c = x.shape
    for b in range(n):
        for p in range(out.shape[1]):
            row = p * sh - top
            for q in range(out.shape[2]):
                col = q * sw - left
                total = out[b, p, q]
                total[:] = 0
                for i in range(max(0, -row), min(kh, h - row)):
                    for j in range(max(0, -col), min(kw, w - col)):
                        cell = x[b, row + i, col + j]
                        for ch in range(c):
                            total[ch] += cell[ch]
                total /= counts[p, q]


@compiled.kernel
def _avg_pool_grad_kernel(grad, counts, kh, kw, sh, sw, top, left, grad_input):
    """Each input cell's gradient: the sum of grad / counts over the windows that hold it.

    Each image's shares grad / counts are divided once, into a buffer that stays in cache.
    Written once per cell when the windows are disjoint (0 where none holds it); overlapping
    windows add up, last window first (the NumPy path's order).
    """
    n, h, w, c = grad_input.shape
    overlapping = kh > sh or kw > sw
    rows = _windows_holding(h, top, kh, sh, grad.shape[1])
    cols = _windows_holding(w, left, kw, sw, grad.shape[2])
    share = np.empty(grad.shape[1:], dtype=grad.dtype)
    for b in range(n):
        for p in range(share.shape[0]):
            for q in range(share.shape[1]):
                for ch in range(c):
                    share[p, q, ch] = grad[b, p, q, ch] / counts[p, q]
        for row in range(h):
            for col in range(w):
                (p_first, p_last), (q_first, q_last), total = rows[row], cols[col], grad_input[b, row, col]
                if overlapping:
                    total[:] = 0
                    for p in range(p_last, p_first - 1, -1):
                        for q in range(q_last, q_first - 1, -1):
                            for ch in range(c):
                                total[ch] += share[p, q, ch]
                elif p_first > p_last or q_first > q_last:
                    total[:] = 0
                else:
                    for ch in range(c):
                        total[ch] = share[p_last, q_last, ch]


def _window_mean(x: np.ndarray, ctx) -> np.ndarray:
    """Mean of the real cells of each window (`ctx["counts"]` of them)."""
    counts = ctx["counts"]
    if compiled.active():
        x, geometry = np.ascontiguousarray(x), _geometry(ctx)
        out = np.empty((x.shape[0],) + tuple(ctx["out_hw"]) + (x.shape[3],), dtype=x.dtype)
        on_slices(len(x), x.nbytes, lambda images: _avg_pool_kernel(
            x[images], counts[:, :, 0], *geometry, out[images]), BLOCK_BYTES)
        return out
    out = None
    for window_cells in _window_cells(pad_spatial(x, ctx["pads"]), ctx):
        out = window_cells.copy() if out is None else np.add(out, window_cells, out=out)
    out /= counts
    return out


def avg_pool2d_forward(input, ksize, strides, padding,
                       data_format: str = "NHWC") -> Tuple[np.ndarray, Dict[str, Any]]:
    """`avg_pool2d` plus the geometry its backward pass needs."""
    x, ctx = _prepare(input, ksize, strides, padding, data_format, "avg_pool2d")
    ctx["dtype"] = x.dtype
    ctx["counts"] = _real_cell_counts(ctx).astype(x.dtype)
    return from_nhwc(_window_mean(x, ctx), ctx["data_format"]), ctx


def avg_pool2d(input, ksize, strides, padding, data_format: str = "NHWC") -> np.ndarray:
    """`tf.nn.avg_pool2d`: the mean of the real (unpadded) cells of each window.  On an active tape that sees the
    input it records its backward."""
    if sees(input):
        return record_forward("avg_pool2d", [input], lambda x: avg_pool2d_forward(x, ksize, strides, padding,
                                                                                 data_format),
                              lambda ctx, g, need: [avg_pool2d_backward(g, ctx)])
    return avg_pool2d_forward(input, ksize, strides, padding, data_format)[0]


def avg_pool2d_backward(grad_output, ctx: Dict[str, Any]) -> np.ndarray:
    """Gradient of average pooling: each output gradient is shared equally by its real cells."""
    grad = _check_grad(grad_output, ctx, "avg_pool2d_backward")
    dtype = ctx["dtype"]
    if compiled.active():
        grad, geometry = np.ascontiguousarray(grad), _geometry(ctx)
        grad_input = np.empty(ctx["input_shape"], dtype=dtype)
        on_slices(len(grad_input), grad_input.nbytes, lambda images: _avg_pool_grad_kernel(
            grad[images], ctx["counts"][:, :, 0], *geometry, grad_input[images]), BLOCK_BYTES)
        return from_nhwc(grad_input, ctx["data_format"])
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


def global_avg_pool2d(input, data_format: str = "NHWC") -> np.ndarray:
    """The mean of each channel over an image's rows and cols, shape (N, C): `avg_pool2d` with a window of the
    image's size and its numbers (the cells summed in the same order, then divided by their count), without
    the window geometry or a context for a backward pass (at batch 1 those took several times the sums).

        Shape: (N, H, W, C) -> (N, C)     ((N, C, H, W) with data_format "NCHW")

    On an active tape that sees the input it records its gradient, each cell's share g / (H·W)."""
    if sees(input):
        def backward(ctx, g, need):
            shape, axes = ctx
            return [np.array(np.broadcast_to(np.expand_dims(g, axes) / (shape[axes[0]] * shape[axes[1]]), shape))]
        return record_forward("global_avg_pool2d", [input], lambda x: (global_avg_pool2d(x, data_format), (
            np.shape(x), (1, 2) if check_data_format(data_format, "global_avg_pool2d") == "NHWC" else (2, 3))),
            backward)
    op = "global_avg_pool2d"
    data_format = check_data_format(data_format, op)
    x = check_image_batch(check_numeric_array(input, op, "input", ndim=4), op, data_format)
    x = x.astype(float_dtype(x), copy=False)
    if not compiled.active():
        return avg_pool2d(x, x.shape[1:3], 1, "VALID", "NHWC").reshape(len(x), -1)
    x = np.ascontiguousarray(x)
    out = np.empty((x.shape[0], x.shape[3]), dtype=x.dtype)
    count = x.dtype.type(x.shape[1] * x.shape[2])
    on_slices(len(x), x.nbytes, lambda images: _global_mean_kernel(x[images], count, out[images]), BLOCK_BYTES)
    return out


@compiled.kernel
def _global_mean_kernel(x, count, out):
    """`_avg_pool_kernel` for one window of the whole image: the cells added in order, row by row, into
    a running sum per channel (vectorized across the channels), then divided by `count`."""
    n, h, w, c = x.shape
    total = np.empty(c, dtype=out.dtype)
    for b in range(n):
        total[:] = 0
        for i in range(h):
            for j in range(w):
                cell = x[b, i, j]
                for ch in range(c):
                    total[ch] += cell[ch]
        for ch in range(c):
            out[b, ch] = total[ch] / count
