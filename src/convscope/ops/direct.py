"""Direct convolution: each output pixel's filters summed straight from the padded input, no im2col.

For the thin products of early layers (a few input channels, tens of filters) BLAS runs
far below its peak, and im2col costs a copy as large as the product.  Here a tile of
`PIXELS` neighbouring output pixels x `lanes` filters (16 or 32) is held in SIMD
registers (`ops/simd.py`) while every tap (i, j, c) of the kernel adds
x[tap] * w[tap, filters] to it: one filter-vector load and `PIXELS` broadcasts for
`PIXELS` vector multiply-adds.  Measured on seed 000's first layer (5x5, 1 -> 32,
128 images, one thread): 1.3 ms against im2col + GEMM's 3.5 ms.

Compiled path and float32 only; the taps are summed in order (i, j, c), so results
differ from the GEMM's by float32 rounding only.
"""

from __future__ import annotations

import numpy as np

from . import compiled

if compiled.available():
    from .simd import broadcast, fma, load, store_first, zeros

PIXELS = 8               # output pixels per tile: PIXELS vectors of accumulators, plus one of filters
MAX_TAPS = 1024          # kh * kw * in_channels; longer sums are BLAS' strength
MAX_OUT_CHANNELS = 128   # more filters make a wide product that BLAS runs near its peak
OUTPUT_BUDGET_BYTES = 2 ** 20  # output of one block of images, in cache for the epilogue after it


def applies(dtype, kernel_hw, groups: int, in_channels: int, out_channels: int, out_width: int,
            pointwise: bool) -> bool:
    """True for the convolutions computed here: compiled path, float32, one group, outputs at least a
    tile wide, not 1x1 unpadded stride 1 (its columns are the input itself), and a thin product."""
    return (compiled.active() and dtype == np.float32 and groups == 1 and not pointwise
            and out_width >= PIXELS and kernel_hw[0] * kernel_hw[1] * in_channels <= MAX_TAPS
            and out_channels <= MAX_OUT_CHANNELS)


def lanes_for(out_channels: int) -> int:
    """Filters per tile: 32, unless 16 leaves fewer padded filters (16 lanes: 16 -> 16, 75 -> 80;
    32 lanes: 50 -> 64 in two tiles instead of four)."""
    return 32 if -(-out_channels // 32) * 32 == -(-out_channels // 16) * 16 else 16


def prepare(w: np.ndarray, x_pad_shape, dilations):
    """(filters, taps, lanes) for `conv_block`: filters (kh*kw*in, out) zero-padded to a multiple of
    `lanes` columns and flattened; taps: each (i, j, c)'s offset in a flattened padded image."""
    kh, kw, channels, out_channels = w.shape
    lanes = lanes_for(out_channels)
    padded = -(-out_channels // lanes) * lanes
    filters = np.zeros((kh * kw * channels, padded), dtype=np.float32)
    filters[:, :out_channels] = w.reshape(-1, out_channels)
    row_length = x_pad_shape[2] * channels
    i, j, c = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(channels), indexing="ij")
    taps = (i * dilations[0] * row_length + j * dilations[1] * channels + c).ravel().astype(np.int64)
    return filters.ravel(), taps, lanes


def conv_block(x_pad: np.ndarray, first: int, top: int, prepared, strides, out: np.ndarray) -> None:
    """out (images, rows, out_w, out_channels) = the convolution of images first.. of the padded input
    `x_pad` (C-contiguous NHWC) for the output rows whose windows start at padded row `top`."""
    filters, taps, lanes = prepared
    images, rows, out_w, out_channels = out.shape
    row_length = x_pad.shape[2] * x_pad.shape[3]
    _KERNELS[lanes](x_pad.reshape(x_pad.shape[0], -1), first, top * row_length, taps, filters,
                    out.reshape(images, rows, out_w * out_channels), strides[0] * row_length,
                    strides[1] * x_pad.shape[3], out_channels)


def _tile_kernel(lanes: int):
    """The compiled tile loop for `lanes` filters per tile."""

    @compiled.kernel
    def conv_tiles(x_flat, first, start, taps, filters, out, row_step, step, out_channels):
        """out[n, r, ox * out_channels + f] = sum over taps t of
        x_flat[first + n, start + r * row_step + ox * step + taps[t]] * filters[t * padded + f]."""
        images, rows = out.shape[0], out.shape[1]
        out_w = out.shape[2] // out_channels
        padded = filters.shape[0] // taps.shape[0]
        tiles = -(-out_w // PIXELS)   # the last tile overlaps the one before when PIXELS does not divide out_w
        for n in range(images):
            image = x_flat[first + n]
            for r in range(rows):
                row = out[n, r]
                row_start = start + r * row_step
                for g in range(0, padded, lanes):
                    count = min(out_channels - g, lanes)
                    for tile in range(tiles):
                        ox = min(tile * PIXELS, out_w - PIXELS)
                        a0 = zeros(lanes)
                        a1 = zeros(lanes)
                        a2 = zeros(lanes)
                        a3 = zeros(lanes)
                        a4 = zeros(lanes)
                        a5 = zeros(lanes)
                        a6 = zeros(lanes)
                        a7 = zeros(lanes)
                        base = row_start + ox * step
                        for t in range(taps.shape[0]):
                            wv = load(filters, t * padded + g, lanes)
                            at = base + taps[t]
                            a0 = fma(broadcast(image, at, lanes), wv, a0)
                            a1 = fma(broadcast(image, at + step, lanes), wv, a1)
                            a2 = fma(broadcast(image, at + 2 * step, lanes), wv, a2)
                            a3 = fma(broadcast(image, at + 3 * step, lanes), wv, a3)
                            a4 = fma(broadcast(image, at + 4 * step, lanes), wv, a4)
                            a5 = fma(broadcast(image, at + 5 * step, lanes), wv, a5)
                            a6 = fma(broadcast(image, at + 6 * step, lanes), wv, a6)
                            a7 = fma(broadcast(image, at + 7 * step, lanes), wv, a7)
                        at = ox * out_channels + g
                        store_first(row, at, a0, count)
                        store_first(row, at + out_channels, a1, count)
                        store_first(row, at + 2 * out_channels, a2, count)
                        store_first(row, at + 3 * out_channels, a3, count)
                        store_first(row, at + 4 * out_channels, a4, count)
                        store_first(row, at + 5 * out_channels, a5, count)
                        store_first(row, at + 6 * out_channels, a6, count)
                        store_first(row, at + 7 * out_channels, a7, count)
    return conv_tiles


_KERNELS = {lanes: _tile_kernel(lanes) for lanes in (16, 32)} if compiled.available() else {}
