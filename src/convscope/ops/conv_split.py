"""Inference convolutions with the work split so that every thread has its share, at any batch size.

`conv.convolve` gives each thread whole blocks of images sized for the im2col budget.  At small
batches that leaves threads idle (ResNet50 at batch 1: one image, one block, one thread) and makes
Winograd's 16 products per block too short for BLAS (2 images of 8x8x512 per block: 32 rows per
product, each repacking a 1 MB matrix).  Here the work is a list of tasks, as many per thread:

* blocks of whole images, or bands of output rows (Winograd: rows of 2x2 tiles) of one image, each
  under a cache budget but long enough for BLAS (`plan`);
* where the rows are too few for one band per thread, the output channels split among the threads
  (each thread builds the band's columns or input tiles itself: a copy made in parallel costs no time).

Two computations take these tasks: Winograd F(2x2, 3x3) with the epilogue applied as its output
transform writes (`winograd.conv_band`) and im2col + GEMM.  The direct kernel's threads claim their images, or
bands of output rows, in compiled code instead (`direct.conv_claimed_block`).  Each writes the whole output,
finished by the epilogue (bias, ReLU, an inference batch norm's map, ReLU).
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from . import compiled, conv, dense_tiles, direct, direct_wide, winograd
from .conv import COLUMN_BUDGET_BYTES, _columns, padded_input
from .epilogue import _epilogue_kernel
from .parallel import balanced_ranges, run_in_parallel, worker_count

MIN_ROWS = 128          # product rows (pixels or tiles) per task below which a product runs far under BLAS' peak
CHANNEL_STEP = 32       # output channels per thread in a channel split: a multiple of the SIMD widths
WINOGRAD_BUDGET_BYTES = 4 * 2 ** 20   # a band's transformed input and products (16 planes each)
WINOGRAD_MIN_TILES = 128             # tiles per band (each of its 16 products has this many rows), and in all
WINOGRAD_MIN_IMAGES = 1               # bands of tiles need no batch (`winograd.MIN_IMAGES` is for image blocks)


Task = Tuple[slice, slice, slice]       # (images, rows or tile rows, output channels)


def plan(images: int, units: int, unit_rows: int, unit_bytes: int, budget: int, channels: int,
         min_units: int = 1, split_channels: bool = True, min_rows: int = MIN_ROWS, workers: int = 0) -> List[Task]:
    """The tasks of a convolution of `images` images of `units` rows (or tile rows) each, a row being
    `unit_rows` product rows and `unit_bytes` of working memory: blocks of whole images while they fit
    `budget` (or `min_rows` product rows) and share evenly among the threads; else bands of at least
    `min_units` rows of one image, as many per thread, if they keep `min_rows` / 2 product rows; else
    (`split_channels`) each band or block once per thread, with its slice of the channels.  `workers`: the
    threads to plan for (0: `worker_count()`; 1 for work that runs on the calling thread alone)."""
    workers, everything = workers or worker_count(), slice(0, channels)
    per_band = max(min_units, budget // max(unit_bytes, 1), -(-min_rows // unit_rows))
    if units <= per_band and (images % workers == 0 or images >= 4 * workers or workers == 1):
        return [(slice(start, stop), slice(0, units), everything)
                for start, stop in balanced_ranges(images, per_band // units)]
    pieces = max(-(-units // per_band), 1)
    while (images * pieces) % workers and pieces < units // min_units:
        pieces += 1
    pieces = max(1, min(pieces, units // min_units))
    if (images * pieces) % workers == 0 and units // pieces * unit_rows >= min_rows // 2:
        return [(slice(image, image + 1), slice(units * k // pieces, units * (k + 1) // pieces), everything)
                for image in range(images) for k in range(pieces)]
    bands = [(slice(image, image + 1), slice(units * k // pieces, units * (k + 1) // pieces))
             for image in range(images) for k in range(pieces)]
    if units <= per_band:
        bands = [(slice(start, stop), slice(0, units)) for start, stop in _ranges(images, per_band // units)]
    steps = channels // CHANNEL_STEP
    parts = min(workers, steps) if split_channels else 1
    if parts < 2 and units <= per_band:          # uneven blocks of whole images rather than one thread
        return [(slice(start, stop), slice(0, units), everything)
                for start, stop in balanced_ranges(images, per_band // units)]
    if parts < 2:
        return [band + (everything,) for band in bands]
    edges = [channels if k == parts else CHANNEL_STEP * (steps * k // parts) for k in range(parts + 1)]
    return [band + (slice(edges[k], edges[k + 1]),) for k in range(parts) for band in bands]


def _ranges(count: int, size: int) -> List[Tuple[int, int]]:
    """(start, stop) ranges of at most `size` (at least 1) covering 0..count, in order."""
    size = max(1, size)
    return [(start, min(count, start + size)) for start in range(0, count, size)]


def epilogue_tuple(bias, activation: str, scale, shift, then: str, channels: int, dtype, cap=None) -> tuple:
    """(finish, bias, relu, scale, shift, affine, relu_after) as the compiled kernels take the epilogue, then
    the cap each finished block takes last (`fused.CAPS`; inf: none)."""
    zeros = np.zeros(channels, dtype=dtype)
    finish = bias is not None or activation == "relu" or scale is not None or then == "relu"
    return (finish, zeros if bias is None else bias, activation == "relu", zeros if scale is None else scale,
            zeros if shift is None else shift, scale is not None, then == "relu", np.inf if cap is None else cap)


def _finish_rows(rows: np.ndarray, epilogue: tuple, channels: slice) -> None:
    """The epilogue on a (rows, channels) view of the output (strided where the channels are split)."""
    finish, bias, relu, scale, shift, affine, relu_after, cap = epilogue
    if finish:
        _epilogue_kernel(rows, bias[channels], relu, scale[channels], shift[channels], affine, relu_after)
    cap_block(rows, cap)


def cap_block(block: np.ndarray, cap: float) -> None:
    """The cap of a capped ReLU on a finished block (2-D rows or 4-D NHWC, a view), in place; NaN stays NaN
    (compiled: NumPy's `minimum` took longer than the block's whole epilogue)."""
    if cap == np.inf:
        return
    if compiled.active():
        _cap_kernel(block.reshape((1,) * (4 - block.ndim) + block.shape), block.dtype.type(cap))
    else:
        np.minimum(block, block.dtype.type(cap), out=block)


@compiled.kernel
def _cap_kernel(z, cap):
    """z = min(z, cap) in place, NaN kept (`np.minimum` of two scalars: the loop vectorizes; a conditional
    expression or `min` did not)."""
    for a in range(z.shape[0]):
        for b in range(z.shape[1]):
            for c in range(z.shape[2]):
                for d in range(z.shape[3]):
                    z[a, b, c, d] = np.minimum(z[a, b, c, d], cap)


def _channel_part(u: np.ndarray, epilogue: tuple, part: slice) -> Tuple[np.ndarray, tuple]:
    """(u's columns `part`, contiguous, and the epilogue's per-channel values of `part`) for `conv_band`."""
    if part.stop - part.start == u.shape[2]:
        return u, epilogue
    return (np.ascontiguousarray(u[:, :, part]),
            tuple(value[part] if isinstance(value, np.ndarray) else value for value in epilogue))


def winograd_applies(ctx) -> bool:
    """Winograd F(2x2, 3x3) in bands: `winograd.applies` at any batch size, for at least
    `WINOGRAD_MIN_TILES` tiles in all (fewer do not repay the filters' transform, made per call: one image
    of 14x14x256 -> 256, 49 tiles, ran no faster than im2col + GEMM split among the threads)."""
    kh, kw, channels, _ = ctx["filters"].shape
    (oh, ow), images = ctx["out_hw"], ctx["input_shape"][0]
    return (images * -(-oh // 2) * -(-ow // 2) >= WINOGRAD_MIN_TILES
            and winograd.applies((kh, kw), ctx["strides"], ctx["dilations"], ctx["groups"], channels, (oh, ow),
                                 images, WINOGRAD_MIN_IMAGES))


def winograd_forward(ctx, epilogue: tuple, out: np.ndarray) -> None:
    """`out` = the finished convolution, Winograd's tiles in bands of tile rows or whole images."""
    w, (oh, ow) = ctx["filters"], ctx["out_hw"]
    channels, out_channels = w.shape[2:]
    tiles_h, tiles_w = -(-oh // 2), -(-ow // 2)
    tiled = winograd.tile_input(padded_input(ctx), ctx["out_hw"])
    u = winograd.transform_filters(w)
    tasks = plan(len(out), tiles_h, tiles_w, tiles_w * 16 * (channels + out_channels) * w.itemsize,
                 WINOGRAD_BUDGET_BYTES, out_channels, min_rows=WINOGRAD_MIN_TILES, workers=_alone(ctx))
    parts = {(part.start, part.stop): _channel_part(u, epilogue[:7], part) for _, _, part in tasks}

    def work(chunk):
        for images, tile_rows, part in chunk:
            rows = slice(2 * tile_rows.start, min(oh, 2 * tile_rows.stop))
            winograd.conv_band(tiled, images, tile_rows, *parts[part.start, part.stop],
                               out=out[images, rows, :, part])
            cap_block(out[images, rows, :, part], epilogue[7])

    _run(tasks, work, out, ctx)


def direct_forward(ctx, epilogue: tuple, out: np.ndarray) -> None:
    """`out` = the finished convolution, the direct kernel on items claimed in compiled code (`claims.py`): whole
    images, or, where the images are fewer than `conv.DIRECT_ITEMS_PER_THREAD` per thread, bands of output rows; where
    the context pads in blocks, the rows an item's windows read padded into a scratch block; each band of rows
    finished in L1."""
    prepared = direct.prepare(ctx["filters"], ctx["padded_shape"], ctx["dilations"], ctx.get("kept_filters"))
    finish, cap = epilogue[0], epilogue[7]
    vectors = direct.finish_vectors(prepared, *epilogue[1:]) if finish or cap != np.inf else None
    conv.run_direct_claimed(ctx, out, prepared, conv.direct_bands(ctx), vectors)


def _alone(ctx) -> int:
    """1 where the convolution is under `direct.SMALL_WORK` multiply-adds (`conv._direct_alone`): it runs on the
    calling thread (a hand-over to a pool thread costs more than it saves) in tasks planned for one thread (one long
    band, not one per idle thread: BLAS runs a product of few rows far under its peak); else 0."""
    return int(conv._direct_alone(ctx))


def _run(tasks: List[Task], work, out: np.ndarray, ctx, calls_blas: bool = True) -> None:
    """`work` on the tasks shared among the threads, or all on the calling thread (`_alone`)."""
    run_in_parallel(tasks, work, calls_blas=calls_blas, alone=bool(_alone(ctx)), claimed=True)


def gemm_forward(ctx, epilogue: tuple, out: np.ndarray) -> None:
    """`out` = the finished convolution, im2col + GEMM on bands of output rows, or on each thread's
    slice of the filters where the rows are few."""
    w, (oh, ow), strides, dilations = ctx["filters"], ctx["out_hw"], ctx["strides"], ctx["dilations"]
    kh, kw, channels, out_channels = w.shape
    x_pad, matrix = padded_input(ctx), w.reshape(-1, out_channels)
    row_bytes = ow * kh * kw * channels * w.itemsize
    tasks = plan(len(out), oh, ow, row_bytes, COLUMN_BUDGET_BYTES, out_channels, workers=_alone(ctx))

    def work(chunk):
        buffer = np.empty(max((t[0].stop - t[0].start) * (t[1].stop - t[1].start) for t in chunk) * row_bytes
                          // w.itemsize, dtype=w.dtype)
        for images, rows, part in chunk:
            top, bottom = rows.start * strides[0], (rows.stop - 1) * strides[0] + dilations[0] * (kh - 1) + 1
            band = dict(ctx, out_hw=(rows.stop - rows.start, ow))
            target = out[images, rows].reshape(-1, out_channels)
            _band_product(_columns(x_pad[images, top:bottom], band, buffer), matrix, target, part)
            _finish_rows(target[:, part], epilogue, part)

    _run(tasks, work, out, ctx)


def _band_product(columns: np.ndarray, matrix: np.ndarray, out: np.ndarray, part: slice) -> None:
    """out[:, part] = columns @ matrix[:, part] on this thread: `dense_tiles`' products where they take it (a
    few rows by a large matrix, ResNet50's 3x3 layers on a 7x7 image: BLAS packs the thread's columns of the
    matrix for 49 rows), else BLAS'.  `out`: the band's rows of all channels (a C-contiguous view)."""
    if dense_tiles.applies(columns, matrix) and part.start % dense_tiles.lanes() == 0:
        dense_tiles.product(columns, matrix, out, part.start, part.stop)
    else:
        np.matmul(columns, matrix[:, part], out=out[:, part])


def gemm_applies(ctx) -> bool:
    """im2col + GEMM in split tasks: one group and the compiled epilogue; a 1x1 unpadded stride-1 kernel
    (whose columns are the input itself) only for fewer images than threads: `conv.convolve` would give
    each image to one thread (ResNet50's 1x1 convolutions at batch 1 ran slower than split; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices')."""
    return (compiled.active() and ctx["groups"] == 1
            and (not ctx["pointwise"] or ctx["input_shape"][0] < worker_count()))


def direct_applies(ctx) -> bool:
    """The direct kernel in split tasks: where `direct.applies` (the context's "direct")."""
    return ctx["direct"]


def thin_direct_applies(ctx) -> bool:
    """The direct kernel before Winograd: where it applies and in x out channels are at most
    `conv.direct_before_winograd`, as training's `conv._CONV_PATHS` choose (Winograd's 16 products are too thin
    for BLAS there)."""
    filters = ctx["filters"].shape
    return ctx["direct"] and filters[2] * filters[3] <= conv.direct_before_winograd(filters[3])


def wide_direct_applies(ctx) -> bool:
    """`direct_wide`'s kernel on one image of 128-512 channels (`direct_wide.applies`), which also asks whether
    Winograd's bands would take it."""
    return direct_wide.applies(ctx, winograd_applies(ctx))


FORWARD = {"winograd": winograd_forward, "direct": direct_forward, "gemm": gemm_forward, "wide": direct_wide.forward}
