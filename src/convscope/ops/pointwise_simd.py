"""A 1x1 product of few input channels with its epilogue, in SIMD registers: MobileNets' first expansions.

With 16-32 input channels (MobileNetV2's blocks 1-6 expand 16, 24 or 32 channels to 96-192), BLAS' product
is short in its inner dimension, and its output then goes through the cache once more for the epilogue.
Here a tile of `ROWS` rows x two vectors of output channels is summed in registers over the input
channels (two filter loads and `ROWS` broadcasts for 2 x `ROWS` multiply-adds), finished there

    then(act(z + bias) * scale + shift)          (act, then: linear, ReLU or ReLU6 as clips; no residual)

and stored once.  Each output is summed in the input channels' order, whichever tile computes it (the
last tile of a block overlaps the one before), so a row's bits do not depend on the rows beside it; they
may differ from BLAS' in the last bits.  The epilogue rounds as `epilogue.finish_channels` does.
With more input channels the same tiles are taken rows first (`deep_product_rows`): each tile's rows stay
in L1 while it runs through the channels, so the output and the residual (ResNet50's shortcut sums) stream
in order; where 512-bit units run whole, in tiles of `TALL_ROWS` (12) rows: 24 of the 32 registers, half the
filter loads per multiply-add (`tall_tiles`).  Its filters are read from the matrix as it is (33-64 input
channels), or, for a product of at least `PACK_ROWS` rows and more than 32 input channels (the tall tiles:
512 rows and a matrix of at most `TALL_PACK_BYTES`), from a copy packed once per op (`pack`: each pair of
vectors of channels a contiguous strip, read in order from L1 or L2; the copy costs about what 300 rows of
product save).  Packed or not, each output's sum is the same, in the same order.  A product rows first of few input
channels with a large output (`streams`) stores it non-temporally: it is written without being read first.
A whole product taken rows first can be shared among the threads (`deep_product_rows(..., shared=True)`): each
claims blocks of rows in compiled code (`parallel.run_claimed`), so a pool thread starts its part without waiting
for the GIL, as it does for a half handed out by `parallel.run_in_parallel` while the caller's Python reaches its
kernel (ResNet50's 1x1 convolutions at batch 1 ran slower so).
Compiled path, float32, AVX2 or wider.  The measurements behind the limits: benchmarks/README.md,
'Measurements behind the code's choices'.
"""

from __future__ import annotations

import functools
import sys
from typing import Optional

import numpy as np

from . import compiled
from .parallel import run_claimed, worker_count

if compiled.available():
    from . import simd
    from .claims import claim
    from .simd import (add, broadcast, clip, double_pumped, fma, full, load, multiply, prefetch, prefetch_l2,
                       store_first, store_stream, stream_fence, vector_bits, zeros)

__all__ = ["MAX_DEPTH", "DEEP_MAX_DEPTH", "PACK_ROWS", "ROWS", "TALL_ROWS", "TALL_PACK_ROWS", "TALL_PACK_BYTES",
           "SHARED_ROWS", "SHARED_BLOCKS",
           "applies", "product_rows", "deep_applies", "packs", "pack", "packed_applies", "streams", "tall_tiles",
           "deep_product_rows", "deep_kernel", "tiles_fit", "deep_fits"]

MAX_DEPTH = 32      # input channels up to which the tiles beat BLAS' product and the epilogue pass after it
DEEP_MAX_DEPTH = 64     # ... and up to which the tiles taken rows first (`deep_product_rows`) do, residual or not
VECTOR_BITS = vector_bits() if compiled.available() else 0
PACK_ROWS = (512 if VECTOR_BITS <= 256 or (compiled.available() and double_pumped())    # rows of a product from
             else sys.maxsize)  # which its matrix is packed (`packs`), whatever its depth; not so with 512-bit
                    # vectors on full-width units, where BLAS' own kernel ran faster than the tiles of `ROWS` (on
                    # Zen 4's halves slower): there the 1x1 convolutions' tall tiles pack small matrices (`packs`)
STREAM_BYTES = 32 << 20     # output from which a rows-first product of at most `DEEP_MAX_DEPTH` streams it (`streams`)
ROWS = 6            # rows per tile: 12 vectors of accumulators, two of filters, one broadcast (AVX2's 16)
TALL_ROWS = 12      # ... of `deep_product_rows`' tiles where 512-bit units run whole (`tall_tiles`; 24 of 32)
TALL_PACK_ROWS = 512            # rows from which those tiles read a packed copy (`packs`) ...
TALL_PACK_BYTES = 512 << 10     # ... of a matrix of at most this size
SHARED_ROWS = 192   # rows of a block the threads claim in a shared product, about (`_shared_blocks`) ...
SHARED_BLOCKS = 4   # ... and blocks per thread at most (more ran slower at batch 32; measurements: benchmarks/README.md)


def lanes() -> int:
    """float32 lanes of one vector register."""
    return VECTOR_BITS // 32


def applies(rows: np.ndarray, matrix: np.ndarray, swish: bool, has_residual: bool) -> bool:
    """True for float32 C-contiguous `rows` (at least `ROWS`) times a C-contiguous (depth, channels) `matrix`
    of at most `MAX_DEPTH` rows and whole tiles of channels (two vectors), an epilogue without hard-swish
    or residual, compiled ops on and AVX2 or wider."""
    return _tiles_fit(rows, matrix, swish) and matrix.shape[0] <= MAX_DEPTH and not has_residual


def deep_applies(rows: np.ndarray, matrix: np.ndarray, swish: bool) -> bool:
    """True where `applies` would be but for the depth, over `MAX_DEPTH` and at most `DEEP_MAX_DEPTH`, and
    the residual, which may be there (ResNet50's first stage: 64 -> 256 with the shortcut's sum)."""
    return _tiles_fit(rows, matrix, swish) and MAX_DEPTH < matrix.shape[0] <= DEEP_MAX_DEPTH


def packs(count: int, matrix: np.ndarray, swish: bool, width: Optional[int] = None, tall: bool = False) -> bool:
    """True where a product of `count` rows by `matrix` takes the tiles (of `width` lanes, the machine's by
    default) rows first from a packed copy of the matrix (`pack`): at least `PACK_ROWS` rows, more than
    `MAX_DEPTH` input channels (fewer: `applies`' tiles, or BLAS with a residual), the tiles' other conditions.
    `tall`: for `deep_product_rows`' tiles of `TALL_ROWS` (`tall_tiles()`), from `TALL_PACK_ROWS` rows and for a
    matrix of at most `TALL_PACK_BYTES` (a larger one comes from L3 for every tile: 512 -> 2048 ran 1.45x BLAS'
    time)."""
    if tall:
        return count >= TALL_PACK_ROWS and matrix.nbytes <= TALL_PACK_BYTES and _packable(matrix, swish, width)
    return count >= PACK_ROWS and _packable(matrix, swish, width)


def _packable(matrix: np.ndarray, swish: bool, width: Optional[int]) -> bool:
    return matrix.ndim == 2 and matrix.shape[0] > MAX_DEPTH and _matrix_fits(matrix, swish, width)


def tall_tiles() -> bool:
    """True where `deep_product_rows` takes tiles of `TALL_ROWS` rows: 512-bit vectors (32 registers) on a CPU
    that runs them whole (`simd.FULL_WIDTH_CPU`, read at call time).  Half the filter loads per multiply-add of
    the tiles of `ROWS`: from L2, they had bound those (ResNet50's 128 -> 512 at 12544 rows, one thread: 147
    against 100 GFLOP/s).  Unmeasured on double-pumped CPUs (Zen 4), which keep `ROWS`."""
    return VECTOR_BITS >= 512 and simd.FULL_WIDTH_CPU


def packed_applies(rows: np.ndarray, packed: np.ndarray) -> bool:
    """True where `deep_product_rows` takes `rows` by the matrix `pack` made: float32 C-contiguous rows, at
    least `ROWS`, one per input channel of `packed`."""
    return (rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[0] >= ROWS and rows.flags.c_contiguous
            and rows.shape[1] == packed.shape[1])


def streams(depth: int, out_bytes: int) -> bool:
    """True where the tiles rows first, packed or not, write their output with non-temporal stores
    (`deep_product_rows`' `stream`):
    at most `DEEP_MAX_DEPTH` input channels (few multiply-adds per output: the writes bound it) and an output
    of `STREAM_BYTES` or more, too large for the next op to find in the caches anyway (ResNet50's 56 x 56 x
    256 at batch 32)."""
    return depth <= DEEP_MAX_DEPTH and out_bytes >= STREAM_BYTES


def pack(matrix: np.ndarray, width: Optional[int] = None) -> np.ndarray:
    """The (depth, channels) matrix as `deep_product_rows` reads it fastest: (channels // (2 * width), depth,
    2 * width), each pair of vectors of channels one contiguous strip (a new array; `width` the tiles' lanes,
    the machine's by default).  Compiled, a loop over the strips (NumPy's copy of the transposed view took
    2-2.6x as long; measurements: benchmarks/README.md, 'Measurements behind the code's choices')."""
    depth, channels = matrix.shape
    strip = 2 * (width or lanes())
    if not compiled.active():
        return np.ascontiguousarray(matrix.reshape(depth, channels // strip, strip).transpose(1, 0, 2))
    packed = np.empty((channels // strip, depth, strip), dtype=matrix.dtype)
    _pack_strips(np.ascontiguousarray(matrix), packed)
    return packed


@compiled.kernel
def _pack_strips(matrix, packed):
    strips, depth, strip = packed.shape
    for s in range(strips):
        for k in range(depth):
            row, target = matrix[k], packed[s, k]
            for j in range(strip):
                target[j] = row[s * strip + j]


def _tiles_fit(rows: np.ndarray, matrix: np.ndarray, swish: bool) -> bool:
    """The tiles' conditions but the depth's and the residual's."""
    return (rows.dtype == np.float32 and rows.ndim == 2 and matrix.ndim == 2 and rows.shape[1] == matrix.shape[0]
            and rows.shape[0] >= ROWS and rows.flags.c_contiguous and _matrix_fits(matrix, swish))


def tiles_fit(channels: int, width: Optional[int] = None) -> bool:
    """True where the tiles of `width` lanes (the machine's by default; 8 on any machine with AVX2 or wider)
    can write `channels` output channels (whole pairs of vectors; compiled ops on, AVX2 or wider)."""
    return compiled.active() and VECTOR_BITS >= 256 and channels % (2 * (width or lanes())) == 0


def deep_fits(channels: int, width: Optional[int] = None) -> bool:
    """True where `deep_kernel(width)` can write `channels` output channels of a matrix as it lies (whole
    vectors: the last one alone where their number is odd; compiled ops on, AVX2 or wider)."""
    return compiled.active() and VECTOR_BITS >= 256 and channels > 0 and channels % (width or lanes()) == 0


def _matrix_fits(matrix: np.ndarray, swish: bool, width: Optional[int] = None) -> bool:
    return (tiles_fit(matrix.shape[1], width) and matrix.dtype == np.float32 and matrix.flags.c_contiguous
            and not swish)


def product_rows(rows: np.ndarray, matrix: np.ndarray, out: np.ndarray, bias, scale, shift, limits,
                 affine: bool) -> None:
    """out (C-contiguous, rows x channels) = then(act(rows @ matrix + bias) * scale + shift), where
    `applies`; `limits` as `fused_inference._limits` (low, high, swish of act, then of `then`)."""
    if not out.flags.c_contiguous or out.shape != (rows.shape[0], matrix.shape[1]):
        raise ValueError(f"pointwise_simd: argument `out` must be C-contiguous of shape "
                         f"{(rows.shape[0], matrix.shape[1])}, got {out.shape}")
    _kernel_for(lanes())(rows, matrix, out, bias, scale, shift, limits, affine)


def deep_product_rows(rows: np.ndarray, matrix: np.ndarray, out: np.ndarray, bias, scale, shift, residual,
                      limits, affine: bool, has_residual: bool, stream: bool = False, shared: bool = False) -> None:
    """`product_rows` where `deep_applies`, or by a matrix that `pack` made (any depth), plus `residual`
    (rows x channels, C-contiguous, read where `has_residual`) added after the batch norm's map:
    then(act(z + bias) * scale + shift + residual).  Each tile of rows takes every vector pair of channels
    in turn while its rows stay in L1 (the output and the residual then stream in order: the channels-first
    order of `product_rows` read them a strip at a time, slower from this depth on; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices').  `stream`: each output vector stored
    non-temporally (`simd.store_stream`) where `out` is aligned to a vector (else stored as usual).  With a
    residual, each tile asks for the next tile's residual rows while it sums (`simd.prefetch`): rows a
    strip at a time are a pattern the hardware's prefetchers follow late.  So is a tile's input, read a column
    of its rows at a time: in the tall tiles each strip asks for its share of the next tile's rows into L2
    (`simd.prefetch_l2`; ResNet50's 1x1s at batch 32, their input from memory, 0.88-0.97x the time; unmeasured
    with the tiles of `ROWS`).  `shared`: the threads claim blocks of rows (`_shared_blocks`; the same bits: a row's
    sums do not depend on its block)."""
    step, scale_c, stream, tall = _deep_arguments(rows, matrix, out, residual, has_residual, stream)
    arguments = (rows, matrix.reshape(-1), step, scale_c, out, bias, scale, shift, residual, limits, affine,
                 has_residual, stream)
    tile = TALL_ROWS if tall else ROWS
    blocks = _shared_blocks(rows.shape[0], tile) if shared else 1
    if blocks == 1:
        deep_kernel(lanes(), tile)(*arguments, 0, out.shape[1])
        return
    kernel = _shared_kernel(lanes(), tile)
    run_claimed(blocks, lambda counter: kernel(*arguments, counter, blocks))


def _shared_blocks(count: int, tile: int) -> int:
    """The blocks a shared product of `count` rows is cut into: about `SHARED_ROWS` rows each, one per thread at
    least and `SHARED_BLOCKS` per thread at most, never fewer rows than a `tile` (the tiles' loop needs them)."""
    workers = worker_count()
    return max(1, min(count // tile, max(workers, count // SHARED_ROWS), SHARED_BLOCKS * workers))


def _deep_arguments(rows: np.ndarray, matrix: np.ndarray, out: np.ndarray, residual, has_residual: bool,
                    stream: bool) -> tuple:
    """`deep_product_rows`' arguments checked: (step, scale_c: filters k, c at k * step + c * scale_c, whether it
    streams, whether in tall tiles)."""
    packed = matrix.ndim == 3
    depth = matrix.shape[1] if packed else matrix.shape[0]
    channels = matrix.shape[0] * matrix.shape[2] if packed else matrix.shape[1]
    if packed and (matrix.shape[2] != 2 * lanes() or not matrix.flags.c_contiguous):
        raise ValueError(f"pointwise_simd: argument `matrix` must be 2-D or as `pack` makes it, got shape "
                         f"{matrix.shape}")
    if rows.shape[1] != depth:
        raise ValueError(f"pointwise_simd: argument `rows` must have {depth} columns, got {rows.shape}")
    if not out.flags.c_contiguous or out.shape != (rows.shape[0], channels):
        raise ValueError(f"pointwise_simd: argument `out` must be C-contiguous of shape "
                         f"{(rows.shape[0], channels)}, got {out.shape}")
    if has_residual and (not residual.flags.c_contiguous or residual.shape != out.shape):
        raise ValueError(f"pointwise_simd: argument `residual` must be C-contiguous of shape {out.shape}, got "
                         f"{residual.shape}")
    step, scale_c = (2 * lanes(), depth) if packed else (channels, 1)
    stream = bool(stream) and compiled.address(out) % (4 * lanes()) == 0
    tall = (tall_tiles() and rows.shape[0] >= TALL_ROWS
            and not (stream and has_residual))      # 24 rows streamed in and out: 1.06-1.13x the time
    return step, scale_c, stream, tall


def _make_kernel(width: int):
    """The tile loop for vectors of `width` lanes (a closure constant: numba's vector type needs a literal)."""

    @compiled.kernel
    def tiles(x, w, out, bias, scale, shift, limits, affine):
        count, depth = x.shape
        channels = w.shape[1]
        xf, wf, of = x.reshape(-1), w.reshape(-1), out.reshape(-1)
        zero = zeros(width)
        low, high = full(limits[0], zero), full(limits[1], zero)
        low_after, high_after = full(limits[3], zero), full(limits[4], zero)
        for c in range(0, channels, 2 * width):
            b0, b1 = load(bias, c, zero), load(bias, c + width, zero)
            s0, s1 = load(scale, c, zero), load(scale, c + width, zero)
            h0, h1 = load(shift, c, zero), load(shift, c + width, zero)
            ends = (b0, b1, s0, s1, h0, h1, low, high, low_after, high_after)
            r = 0
            while r < count:
                r = min(r, count - ROWS)
                a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11 = _tile_sums(xf, wf, r * depth, depth, channels,
                                                                              c, width, zero)
                at = r * channels + c
                _finish_pair(of, at, width, a0, a1, ends, affine)
                _finish_pair(of, at + channels, width, a2, a3, ends, affine)
                _finish_pair(of, at + 2 * channels, width, a4, a5, ends, affine)
                _finish_pair(of, at + 3 * channels, width, a6, a7, ends, affine)
                _finish_pair(of, at + 4 * channels, width, a8, a9, ends, affine)
                _finish_pair(of, at + 5 * channels, width, a10, a11, ends, affine)
                r += ROWS
    return tiles


if compiled.available():
    @compiled.kernel(inline=True)
    def _tile_sums(xf, wf, base, depth, step, at, width, zero):
        """The sums of `ROWS` rows from xf[base] on (rows `depth` apart) x two vectors of filters, input
        channel k's from wf[k * step + at] on, in input-channel order: (row 0's two vectors, row 1's, ...)."""
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = zero
        for k in range(depth):
            w0, w1 = load(wf, k * step + at, zero), load(wf, k * step + at + width, zero)
            x0 = broadcast(xf, base + k, zero)
            a0, a1 = fma(x0, w0, a0), fma(x0, w1, a1)
            x1 = broadcast(xf, base + depth + k, zero)
            a2, a3 = fma(x1, w0, a2), fma(x1, w1, a3)
            x2 = broadcast(xf, base + 2 * depth + k, zero)
            a4, a5 = fma(x2, w0, a4), fma(x2, w1, a5)
            x3 = broadcast(xf, base + 3 * depth + k, zero)
            a6, a7 = fma(x3, w0, a6), fma(x3, w1, a7)
            x4 = broadcast(xf, base + 4 * depth + k, zero)
            a8, a9 = fma(x4, w0, a8), fma(x4, w1, a9)
            x5 = broadcast(xf, base + 5 * depth + k, zero)
            a10, a11 = fma(x5, w0, a10), fma(x5, w1, a11)
        return a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11

    @compiled.kernel(inline=True)
    def _tall_tile_sums(xf, wf, base, depth, step, at, width, zero):
        """`_tile_sums` of `TALL_ROWS` (12) rows: 24 vectors of sums, for 32 registers."""
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = zero
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = zero
        for k in range(depth):
            w0, w1 = load(wf, k * step + at, zero), load(wf, k * step + at + width, zero)
            x0 = broadcast(xf, base + k, zero)
            a0, a1 = fma(x0, w0, a0), fma(x0, w1, a1)
            x1 = broadcast(xf, base + depth + k, zero)
            a2, a3 = fma(x1, w0, a2), fma(x1, w1, a3)
            x2 = broadcast(xf, base + 2 * depth + k, zero)
            a4, a5 = fma(x2, w0, a4), fma(x2, w1, a5)
            x3 = broadcast(xf, base + 3 * depth + k, zero)
            a6, a7 = fma(x3, w0, a6), fma(x3, w1, a7)
            x4 = broadcast(xf, base + 4 * depth + k, zero)
            a8, a9 = fma(x4, w0, a8), fma(x4, w1, a9)
            x5 = broadcast(xf, base + 5 * depth + k, zero)
            a10, a11 = fma(x5, w0, a10), fma(x5, w1, a11)
            y0 = broadcast(xf, base + 6 * depth + k, zero)
            c0, c1 = fma(y0, w0, c0), fma(y0, w1, c1)
            y1 = broadcast(xf, base + 7 * depth + k, zero)
            c2, c3 = fma(y1, w0, c2), fma(y1, w1, c3)
            y2 = broadcast(xf, base + 8 * depth + k, zero)
            c4, c5 = fma(y2, w0, c4), fma(y2, w1, c5)
            y3 = broadcast(xf, base + 9 * depth + k, zero)
            c6, c7 = fma(y3, w0, c6), fma(y3, w1, c7)
            y4 = broadcast(xf, base + 10 * depth + k, zero)
            c8, c9 = fma(y4, w0, c8), fma(y4, w1, c9)
            y5 = broadcast(xf, base + 11 * depth + k, zero)
            c10, c11 = fma(y5, w0, c10), fma(y5, w1, c11)
        return (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)

    @compiled.kernel(inline=True)
    def _tile_sums_one(xf, wf, base, depth, step, at, zero):
        """`_tile_sums` for one vector of filters (wf[k * step + at] on): the `ROWS` rows' vectors."""
        a0 = a1 = a2 = a3 = a4 = a5 = zero
        for k in range(depth):
            w0 = load(wf, k * step + at, zero)
            a0 = fma(broadcast(xf, base + k, zero), w0, a0)
            a1 = fma(broadcast(xf, base + depth + k, zero), w0, a1)
            a2 = fma(broadcast(xf, base + 2 * depth + k, zero), w0, a2)
            a3 = fma(broadcast(xf, base + 3 * depth + k, zero), w0, a3)
            a4 = fma(broadcast(xf, base + 4 * depth + k, zero), w0, a4)
            a5 = fma(broadcast(xf, base + 5 * depth + k, zero), w0, a5)
        return a0, a1, a2, a3, a4, a5

    @compiled.kernel(inline=True)
    def _finish_pair(of, at, width, v0, v1, ends, affine):
        """One row's two vectors of sums finished (`finish_channels`' operations) and stored from of[at] on;
        `ends`: the two vectors of bias, of scale, of shift, then the limits (low, high, low and high after)."""
        b0, b1, s0, s1, h0, h1, low, high, low_after, high_after = ends
        v0, v1 = clip(add(v0, b0), low, high), clip(add(v1, b1), low, high)
        if affine:
            v0, v1 = add(multiply(v0, s0), h0), add(multiply(v1, s1), h1)
        store_first(of, at, clip(v0, low_after, high_after), width)
        store_first(of, at + width, clip(v1, low_after, high_after), width)
else:  # pragma: no cover - exercised where numba is not installed
    _tile_sums = _tall_tile_sums = _tile_sums_one = _finish_pair = None

@functools.lru_cache(maxsize=None)
def _kernel_for(width: int):
    """The kernel for vectors of `width` lanes, compiled on first use (kept per width, as pooling_simd's)."""
    return _make_kernel(width)


def _make_deep_kernel(width: int, rows: int):
    """`deep_product_rows`' loop for vectors of `width` lanes: tiles of `rows` rows (`ROWS` or `TALL_ROWS`; at
    least as many rows given) outer, pairs of vectors inner.
    Its epilogue is written out, not `_finish_pair` with a residual: called so, this loop and `product_rows`'
    both ran 1.4-2.2x as long (measurements: benchmarks/README.md, 'Measurements behind the code's choices')."""

    @compiled.kernel
    def deep_tiles(x, wf, step, scale_c, out, bias, scale, shift, residual, limits, affine, has_residual, stream,
                   first_channel, stop_channel):
        count, depth = x.shape
        channels = out.shape[1]
        xf, of, rf = x.reshape(-1), out.reshape(-1), residual.reshape(-1)
        zero = zeros(width)
        low, high = full(limits[0], zero), full(limits[1], zero)
        low_after, high_after = full(limits[3], zero), full(limits[4], zero)
        pairs_stop = first_channel + (stop_channel - first_channel) // (2 * width) * (2 * width)
        strips = max((pairs_stop - first_channel) // (2 * width), 1)
        lines = rows * depth // 16 + 1      # cache lines of a tile's rows (16 floats each), asked for a tile ahead
        start = 0
        while start < count:
            r = min(start, count - rows)
            for c in range(first_channel, pairs_stop, 2 * width):
                if rows == TALL_ROWS:       # each strip asks for its share of the lines (measured with these tiles)
                    strip = (c - first_channel) // (2 * width)
                    for line in range(strip * lines // strips, (strip + 1) * lines // strips):
                        prefetch_l2(xf, (r + rows) * depth + line * 16)
                b0, b1 = load(bias, c, zero), load(bias, c + width, zero)
                s0, s1 = load(scale, c, zero), load(scale, c + width, zero)
                h0, h1 = load(shift, c, zero), load(shift, c + width, zero)
                if has_residual:            # the next tile's residual for these channels, asked for ahead
                    for i in range(rows):
                        ahead = (r + rows + i) * channels + c
                        prefetch(rf, ahead)
                        prefetch(rf, ahead + 2 * width - 1)
                if rows == TALL_ROWS:
                    sums = _tall_tile_sums(xf, wf, r * depth, depth, step, c * scale_c, width, zero)
                else:           # (doubled: one tuple type for both branches; this kernel reads its first half)
                    half = _tile_sums(xf, wf, r * depth, depth, step, c * scale_c, width, zero)
                    sums = half + half
                for i in range(rows):       # `finish_channels`' operations, the residual after the map
                    at = (r + i) * channels + c
                    v0, v1 = clip(add(sums[2 * i], b0), low, high), clip(add(sums[2 * i + 1], b1), low, high)
                    if affine:
                        v0, v1 = add(multiply(v0, s0), h0), add(multiply(v1, s1), h1)
                    if has_residual:
                        v0, v1 = add(v0, load(rf, at, zero)), add(v1, load(rf, at + width, zero))
                    if stream:
                        store_stream(of, at, clip(v0, low_after, high_after))
                        store_stream(of, at + width, clip(v1, low_after, high_after))
                    else:
                        store_first(of, at, clip(v0, low_after, high_after), width)
                        store_first(of, at + width, clip(v1, low_after, high_after), width)
            if pairs_stop < stop_channel:        # one vector left: an odd number of vectors (unpacked matrix)
                c = pairs_stop
                b0, s0, h0 = load(bias, c, zero), load(scale, c, zero), load(shift, c, zero)
                for sub in range(0, rows, ROWS):
                    one = _tile_sums_one(xf, wf, (r + sub) * depth, depth, step, c, zero)
                    for i in range(ROWS):
                        at = (r + sub + i) * channels + c
                        v0 = clip(add(one[i], b0), low, high)
                        if affine:
                            v0 = add(multiply(v0, s0), h0)
                        if has_residual:
                            v0 = add(v0, load(rf, at, zero))
                        if stream:
                            store_stream(of, at, clip(v0, low_after, high_after))
                        else:
                            store_first(of, at, clip(v0, low_after, high_after), width)
            start += rows
        if stream:
            stream_fence()          # the streamed output visible to the thread that reads it next
    return deep_tiles


def _make_shared_kernel(width: int, rows: int):
    """`deep_kernel(width, rows)` on the blocks claimed from `counter`: block k of `blocks` is rows
    count * k // blocks to count * (k + 1) // blocks (each at least `rows` long: `_shared_blocks`)."""
    deep = deep_kernel(width, rows)

    @compiled.kernel
    def shared_tiles(x, wf, step, scale_c, out, bias, scale, shift, residual, limits, affine, has_residual, stream,
                     counter, blocks):
        count = x.shape[0]
        while True:
            k = claim(counter, blocks)
            if k >= blocks:
                break
            a, b = count * k // blocks, count * (k + 1) // blocks
            deep(x[a:b], wf, step, scale_c, out[a:b], bias, scale, shift, residual[a:b] if has_residual else residual,
                 limits, affine, has_residual, stream, 0, out.shape[1])
    return shared_tiles


@functools.lru_cache(maxsize=None)
def _shared_kernel(width: int, rows: int):
    """`_make_shared_kernel(width, rows)`, compiled on first use."""
    return _make_shared_kernel(width, rows)


@functools.lru_cache(maxsize=None)
def deep_kernel(width: int, rows: int = ROWS):
    """`_make_deep_kernel(width, rows)`, compiled on first use: `deep_product_rows`' loop, which other compiled
    kernels call (`inverted_residual_simd`) with the arguments it passes, then the output channels
    first..stop to compute (whole pairs of vectors, the last vector alone where `stop` ends an odd number of
    them in a matrix as it lies; `deep_product_rows`: all of them)."""
    return _make_deep_kernel(width, rows)
