"""A 1x1 product of few input channels with its epilogue, in SIMD registers: MobileNets' first expansions.

With 16-32 input channels (MobileNetV2's blocks 1-6 expand 16, 24 or 32 channels to 96-192), BLAS' product
is short in its inner dimension, and its output then goes through the cache once more for the epilogue.
Here a tile of `ROWS` rows x two vectors of output channels is summed in registers over the input
channels (two filter loads and `ROWS` broadcasts for 2 x `ROWS` multiply-adds), finished there

    then(act(z + bias) * scale + shift)          (act, then: linear, ReLU or ReLU6 as clips; no residual)

and stored once.  Each output is summed in the input channels' order, whichever tile computes it (the
last tile of a block overlaps the one before), so a row's bits do not depend on the rows beside it; they
may differ from BLAS' in the last bits.  The epilogue rounds as `epilogue.finish_channels` does.
With 33-64 input channels (ResNet50's first stage: 64 -> 256, the shortcut's sum in the epilogue;
MobileNetV2's 64 -> 384) the same tiles are taken rows first (`deep_product_rows`): each tile's rows stay
in L1 while it runs through the channels, so the output and the residual stream in order.
Compiled path, float32, AVX2 or wider.  The measurements behind the limits: benchmarks/README.md,
'Measurements behind the code's choices'.
"""

from __future__ import annotations

import functools

import numpy as np

from . import compiled

if compiled.available():
    from .simd import add, broadcast, clip, fma, full, load, multiply, store_first, vector_bits, zeros

__all__ = ["MAX_DEPTH", "DEEP_MAX_DEPTH", "ROWS", "applies", "product_rows", "deep_applies", "deep_product_rows"]

MAX_DEPTH = 32      # input channels up to which the tiles beat BLAS' product and the epilogue pass after it
DEEP_MAX_DEPTH = 64     # ... and up to which the tiles taken rows first (`deep_product_rows`) do, residual or not
ROWS = 6            # rows per tile: 12 vectors of accumulators, two of filters, one broadcast (AVX2's 16)
VECTOR_BITS = vector_bits() if compiled.available() else 0


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


def _tiles_fit(rows: np.ndarray, matrix: np.ndarray, swish: bool) -> bool:
    """The tiles' conditions but the depth's and the residual's."""
    return (compiled.active() and VECTOR_BITS >= 256 and rows.dtype == np.float32 and matrix.dtype == np.float32
            and rows.ndim == 2 and matrix.ndim == 2 and rows.shape[1] == matrix.shape[0]
            and rows.shape[0] >= ROWS and matrix.shape[1] % (2 * lanes()) == 0
            and rows.flags.c_contiguous and matrix.flags.c_contiguous and not swish)


def product_rows(rows: np.ndarray, matrix: np.ndarray, out: np.ndarray, bias, scale, shift, limits,
                 affine: bool) -> None:
    """out (C-contiguous, rows x channels) = then(act(rows @ matrix + bias) * scale + shift), where
    `applies`; `limits` as `fused_inference._limits` (low, high, swish of act, then of `then`)."""
    if not out.flags.c_contiguous or out.shape != (rows.shape[0], matrix.shape[1]):
        raise ValueError(f"pointwise_simd: argument `out` must be C-contiguous of shape "
                         f"{(rows.shape[0], matrix.shape[1])}, got {out.shape}")
    _kernel_for(lanes())(rows, matrix, out, bias, scale, shift, limits, affine)


def deep_product_rows(rows: np.ndarray, matrix: np.ndarray, out: np.ndarray, bias, scale, shift, residual,
                      limits, affine: bool, has_residual: bool) -> None:
    """`product_rows` where `deep_applies`, plus `residual` (rows x channels, C-contiguous, read where
    `has_residual`) added after the batch norm's map: then(act(z + bias) * scale + shift + residual).
    Each tile of rows takes every vector pair of channels in turn while its rows stay in L1 (the
    output and the residual then stream in order: the channels-first order of `product_rows` read them a
    strip at a time, slower from this depth on; measurements: benchmarks/README.md, 'Measurements behind
    the code's choices')."""
    if not out.flags.c_contiguous or out.shape != (rows.shape[0], matrix.shape[1]):
        raise ValueError(f"pointwise_simd: argument `out` must be C-contiguous of shape "
                         f"{(rows.shape[0], matrix.shape[1])}, got {out.shape}")
    if has_residual and (not residual.flags.c_contiguous or residual.shape != out.shape):
        raise ValueError(f"pointwise_simd: argument `residual` must be C-contiguous of shape {out.shape}, got "
                         f"{residual.shape}")
    _deep_kernel_for(lanes())(rows, matrix, out, bias, scale, shift, residual, limits, affine, has_residual)


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
    def _tile_sums(xf, wf, base, depth, channels, c, width, zero):
        """The sums of `ROWS` rows from xf[base] on (rows `depth` apart) x two vectors of channels from `c`
        on, in input-channel order: (row 0's two vectors, row 1's, ...)."""
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = zero
        for k in range(depth):
            w0, w1 = load(wf, k * channels + c, zero), load(wf, k * channels + c + width, zero)
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
    _tile_sums = _finish_pair = None

@functools.lru_cache(maxsize=None)
def _kernel_for(width: int):
    """The kernel for vectors of `width` lanes, compiled on first use (kept per width, as pooling_simd's)."""
    return _make_kernel(width)


def _make_deep_kernel(width: int):
    """`deep_product_rows`' loop for vectors of `width` lanes: tiles of rows outer, pairs of vectors inner.
    Its epilogue is written out, not `_finish_pair` with a residual: called so, this loop and `product_rows`'
    both ran 1.4-2.2x as long (measurements: benchmarks/README.md, 'Measurements behind the code's choices')."""

    @compiled.kernel
    def deep_tiles(x, w, out, bias, scale, shift, residual, limits, affine, has_residual):
        count, depth = x.shape
        channels = w.shape[1]
        xf, wf, of, rf = x.reshape(-1), w.reshape(-1), out.reshape(-1), residual.reshape(-1)
        zero = zeros(width)
        low, high = full(limits[0], zero), full(limits[1], zero)
        low_after, high_after = full(limits[3], zero), full(limits[4], zero)
        start = 0
        while start < count:
            r = min(start, count - ROWS)
            for c in range(0, channels, 2 * width):
                b0, b1 = load(bias, c, zero), load(bias, c + width, zero)
                s0, s1 = load(scale, c, zero), load(scale, c + width, zero)
                h0, h1 = load(shift, c, zero), load(shift, c + width, zero)
                sums = _tile_sums(xf, wf, r * depth, depth, channels, c, width, zero)
                for i in range(ROWS):       # `finish_channels`' operations, the residual after the map
                    at = (r + i) * channels + c
                    v0, v1 = clip(add(sums[2 * i], b0), low, high), clip(add(sums[2 * i + 1], b1), low, high)
                    if affine:
                        v0, v1 = add(multiply(v0, s0), h0), add(multiply(v1, s1), h1)
                    if has_residual:
                        v0, v1 = add(v0, load(rf, at, zero)), add(v1, load(rf, at + width, zero))
                    store_first(of, at, clip(v0, low_after, high_after), width)
                    store_first(of, at + width, clip(v1, low_after, high_after), width)
            start += ROWS
    return deep_tiles


@functools.lru_cache(maxsize=None)
def _deep_kernel_for(width: int):
    """`_make_deep_kernel(width)`, compiled on first use."""
    return _make_deep_kernel(width)
