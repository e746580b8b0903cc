"""Winograd F(2x2, 2x2): a 2x2 stride-1 convolution followed by a 2x2 stride-2 pooling, 9 multiplications per
pooled pixel, input channel and filter instead of the direct kernel's 16.

Each pooling window is one Winograd tile: the 3x3 input patch d under it gives the window's 2x2 outputs as
Y = A^T [(G g G^T) * (B^T d B)] A (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015), with

    B^T = [[1, -1, 0], [0, 1, 0], [0, -1, 1]],   G = [[1, 0], [1, 1], [0, 1]],   A^T = [[1, 1, 0], [0, 1, 1]]

(interpolation points 0, 1 and infinity: every coefficient is 0 or +-1, so the transforms only add and subtract
neighbouring values).  Over the input channels each of the 9 cells is a product (tiles x in) @ (in x out),
summed in the direct kernel's register tiles (`direct._tile_sums`: 8 tiles x `lanes` filters, the channels as its
taps) and stored to a small scratch block that stays in L1; each tile's 9 sums are then turned into its 4 outputs,
finished (bias, ReLU, an inference batch norm's map, ReLU) and pooled in registers as `direct.conv_pool_block`
does: the convolution's output is never written.
Seed 000's second layer (2x2, 32 -> 64, then a 2x2 max pooling) is this convolution.

Results differ from the direct kernel's by float32 rounding only (the transforms' sums; a NaN input reaches the
same outputs, but an infinite one makes NaN where two infinities meet in a transform).  Compiled path, float32,
AVX2 or wider, inference only (a training step's pooled forward keeps the direct kernel's numbers, those of the ops
one after another); `conv.convolve_pooled` takes it where `applies`.  The measurements behind `MIN_CHANNELS`:
benchmarks/README.md, 'Measurements behind the code's choices'.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from . import compiled, direct
from .kept_filters import KeptFilters, kept_or_made

if compiled.available():
    from .claims import claim_band
    from .direct import _half_tile_sums, _pool, _tile_sums
    from .simd import add, load, load_first, store_first, subtract, zeros

__all__ = ["MIN_CHANNELS", "applies", "transform_filters", "prepare", "tile_cells", "taps_and_lanes",
           "padded_filters", "conv_pool_block", "pooled_tiles"]

MIN_CHANNELS = 16        # fewer input channels: the input transform costs more beside the products than it saves
CELLS = 9                # cells of a tile: 3 x 3
CELLS_BYTES = 1 << 18    # transformed input per pass over the filters (2.25x the rows' input): in L2 beside them


def applies(kernel_hw, strides, dilations, groups: int, in_channels: int, out_channels: int, out_hw,
            window, pooled_hw, dtype) -> bool:
    """True for a float32 2x2 stride-1 convolution of one group and at least `MIN_CHANNELS` input channels whose
    pooling `window` is 2x2, stride 2, unpadded (`direct.pools_in_tiles`), where the direct kernel's tiles apply
    (compiled, AVX2 or wider, at most `direct.MAX_OUT_CHANNELS` filters)."""
    return (tuple(kernel_hw) == (2, 2) and tuple(strides) == (1, 1) and tuple(dilations) == (1, 1)
            and in_channels >= MIN_CHANNELS
            and direct.applies(dtype, kernel_hw, groups, in_channels, out_channels, out_hw, False)
            and direct.pools_in_tiles(out_hw, window, pooled_hw))


def transform_filters(w: np.ndarray, padded: int) -> np.ndarray:
    """G g G^T of each (in, out) pair of the 2x2 filters `w` (2, 2, in, out), computed in float64: float32
    (9, in, padded), the filters past `out` zero, in one compiled pass over the pairs."""
    cells = np.zeros((CELLS, w.shape[2], padded), dtype=np.float32)
    _transform(np.ascontiguousarray(w, dtype=np.float32), cells)
    return cells


def prepare(w: np.ndarray, kept: Optional[KeptFilters] = None):
    """(transformed filters flattened, channel taps 0..in-1, lanes) for `conv_pool_block` (`kept`: an inference
    op's copy, kept while the filters are the same)."""
    taps, lanes = taps_and_lanes(w.shape)
    return tile_cells(w, lanes, kept), taps, lanes


def tile_cells(w: np.ndarray, lanes: int, kept: Optional[KeptFilters] = None) -> np.ndarray:
    """`prepare`'s transformed filters, flattened, the filters padded to `direct.padded_channels`."""
    padded = direct.padded_channels(w.shape[3], lanes)
    return kept_or_made(kept, w, f"winograd_pool {padded}", functools.partial(_flat_cells, padded=padded))


def taps_and_lanes(filter_shape) -> tuple:
    """`prepare`'s channel taps and lanes for filters of `filter_shape`: what the shape alone decides."""
    return _channel_taps(filter_shape[2]), direct.lanes_for(filter_shape[3])


def _flat_cells(w: np.ndarray, padded: int) -> np.ndarray:
    return transform_filters(w, padded).reshape(-1)


@functools.lru_cache(maxsize=64)
def _channel_taps(channels: int) -> np.ndarray:
    """0..channels-1: the offsets of a tile's channels in the transformed input (shared, only read)."""
    return np.arange(channels, dtype=np.int64)


def padded_filters(prepared) -> int:
    """The filters of `prepare`'s tiles, padded to a whole number of tiles."""
    cells, taps, _ = prepared
    return cells.size // (CELLS * taps.size)


def conv_pool_block(x: np.ndarray, pads, prepared, epilogue: tuple, pooled: np.ndarray, counter: np.ndarray,
                    bands: int = 1) -> None:
    """`direct.conv_pool_block` for a 2x2 stride-1 convolution (`prepare`'s filters; `epilogue` from
    `direct.tile_epilogue`): pooled (images, out_h // 2, out_w // 2, out_channels) = the 2x2 stride-2 max (or
    average) pooling of the finished convolution of `x` (C-contiguous NHWC, padded by `pads` ((top, bottom),
    (left, right): read as zeros by the input transform, or None), for the items this call claims from
    `counter` (image i // `bands`, band i % `bands` of its pooled rows)."""
    cells, taps, lanes = prepared
    for name, array in (("x", x), ("pooled", pooled)):
        if not array.flags.c_contiguous:
            raise ValueError(f"winograd_pool: argument `{name}` must be C-contiguous")
    pooled_tiles(x.shape, pads, taps, lanes, pooled.shape, bands)(x, cells, epilogue, pooled, counter)


def pooled_tiles(x_shape, pads, taps, lanes: int, pooled_shape, bands: int):
    """`conv_pool_block`'s checks of the shapes and its kernel's constant arguments, made once (a prepared
    inference op makes them once per input shape): `call(x, cells, epilogue, pooled, counter)` for C-contiguous
    arrays of these shapes, `cells` and `taps` `prepare`'s."""
    images, pooled_h, pooled_w, out_channels = pooled_shape
    if x_shape[0] != images or x_shape[3] != taps.size:
        raise ValueError(f"winograd_pool: argument `x` must hold {images} images of {taps.size} channels, got "
                         f"shape {tuple(x_shape)}")
    if not 1 <= bands <= max(pooled_h, 1):
        raise ValueError(f"winograd_pool: argument `bands` must be 1 to the {pooled_h} pooled rows, got {bands}")
    (top, bottom), (left, right) = ((0, 0), (0, 0)) if pads is None else pads
    padded_hw = (x_shape[1] + top + bottom, x_shape[2] + left + right)
    if padded_hw[0] < 2 * pooled_h + 1 or padded_hw[1] < 2 * pooled_w + 1:
        raise ValueError(f"winograd_pool: the padded input {padded_hw} is too small for {pooled_h} x {pooled_w} "
                         f"pooled pixels")
    pixels = direct.tile_pixels(lanes)
    chunk = max(1, min(-(-pooled_h // bands), CELLS_BYTES // (CELLS * pooled_w * x_shape[3] * 4)))
    # a chunk's tiles, then a register tile's worth read past the last chunk's (zeros; what they give is not stored)
    cells_shape = (CELLS, chunk * pooled_w + pixels, x_shape[3])
    flat_shape = (images, pooled_h, pooled_w * out_channels)
    kernel = _kernel_for(lanes, pixels)

    def call(x, cells, epilogue, pooled, counter):
        kernel(x, counter, bands, chunk, top, left, np.zeros(cells_shape, np.float32),
               np.empty((CELLS, pixels, lanes), np.float32), taps, cells, pooled.reshape(flat_shape), out_channels,
               *epilogue)
    return call


@functools.lru_cache(maxsize=None)
def _kernel_for(lanes: int, pixels: int):
    """The compiled loop over the claimed items for `lanes` filters and `pixels` tiles per register tile (ints only
    as closure constants: numba's disk cache keys on them): for each `chunk` pooled rows of the item, the input
    transform of their tiles, then per `lanes` filters and `pixels` tiles the 9 cells' sums, the output transform,
    the epilogue and the pooling."""

    @compiled.kernel
    def winograd_pool_tiles(source, counter, bands, chunk, top, left, cells_in, sums, taps, cells, pooled,
                            out_channels, bias, scale, shift, relu_first, affine, relu_after, average):
        images, pooled_h = pooled.shape[0], pooled.shape[1]
        pooled_w = pooled.shape[2] // out_channels
        channels = taps.shape[0]
        padded = cells.shape[0] // (CELLS * channels)
        plane = cells_in.shape[1] * channels
        flags = (relu_first, affine, relu_after, average)
        flat_cells = cells_in.reshape(-1)
        zero = zeros(lanes)
        while True:
            n, band_first, band_end = claim_band(counter, images, bands, pooled_h)
            if n < 0:
                break
            for first in range(band_first, band_end, chunk):
                end = min(band_end, first + chunk)
                count = (end - first) * pooled_w
                _input_cells(source[n], top, left, first, end, pooled_w, cells_in, lanes)
                for column in range(0, padded, lanes):
                    filters = min(out_channels - column, lanes)
                    b, s, h = load(bias, column, zero), load(scale, column, zero), load(shift, column, zero)
                    for t0 in range(0, count, pixels):
                        for cell in range(CELLS):
                            base, weights = cell * plane + t0 * channels, cell * channels * padded + column
                            if pixels == direct.PIXELS and t0 + 4 < count:
                                _store_sums(sums, cell, _tile_sums(flat_cells, base, channels, 4 * channels, taps,
                                                                   cells, weights, padded, zero))
                            else:
                                _store_sums(sums, cell, _half_tile_sums(flat_cells, base, channels, 2 * channels,
                                                                        taps, cells, weights, padded, zero))
                        for i in range(min(pixels, count - t0)):
                            tile = t0 + i
                            r, q = first + tile // pooled_w, tile % pooled_w
                            best = _output_tile(sums, i, b, s, h, flags, zero)
                            store_first(pooled[n, r], q * out_channels + column, best, filters)

    return winograd_pool_tiles


if compiled.available():
    @compiled.kernel
    def _transform(w, cells):
        """cells[3 i + j, c, f] = (G g G^T)[i, j] of g = w[:, :, c, f], G's rows (1, 0), (1, 1), (0, 1)."""
        for c in range(w.shape[2]):
            for f in range(w.shape[3]):
                g00, g01 = np.float64(w[0, 0, c, f]), np.float64(w[0, 1, c, f])
                g10, g11 = np.float64(w[1, 0, c, f]), np.float64(w[1, 1, c, f])
                rows = ((g00, g01), (g00 + g10, g01 + g11), (g10, g11))
                for i in range(3):
                    cells[3 * i, c, f] = rows[i][0]
                    cells[3 * i + 1, c, f] = rows[i][0] + rows[i][1]
                    cells[3 * i + 2, c, f] = rows[i][1]

    @compiled.kernel
    def _input_cells(image, top, left, first, end, pooled_w, cells_in, lanes):
        """cells_in[k, tile, c] = (B^T d B)[k] of the 3x3 patch d under each pooled pixel of rows first..end-1
        (tile 0: first's pixel 0) of `image` (rows x columns x channels) padded by `top` rows above and `left`
        columns on the left, and by zeros below and right, a vector of channels at a time."""
        channels = image.shape[2]
        for r in range(first, end):
            for q in range(pooled_w):
                tile = (r - first) * pooled_w + q
                row, column = 2 * r - top, 2 * q - left
                for c in range(0, channels, lanes):
                    count = min(channels - c, lanes)
                    d0, d1, d2 = _patch_row(image, row, column, c, count, lanes)
                    d3, d4, d5 = _patch_row(image, row + 1, column, c, count, lanes)
                    d6, d7, d8 = _patch_row(image, row + 2, column, c, count, lanes)
                    _store_cells(cells_in, 0, tile, c, count, subtract(d0, d3), subtract(d1, d4), subtract(d2, d5))
                    _store_cells(cells_in, 3, tile, c, count, d3, d4, d5)
                    _store_cells(cells_in, 6, tile, c, count, subtract(d6, d3), subtract(d7, d4), subtract(d8, d5))

    @compiled.kernel(inline=True)
    def _patch_row(image, row, column, c, count, lanes):
        """The channels c..c+count-1 of pixels column..column+2 of an image row, zeros outside the image."""
        return (_pixel(image, row, column, c, count, lanes), _pixel(image, row, column + 1, c, count, lanes),
                _pixel(image, row, column + 2, c, count, lanes))

    @compiled.kernel(inline=True)
    def _pixel(image, row, column, c, count, lanes):
        """image[row, column, c:c + count] (the padding's zeros outside the image: a masked load of no lanes, at an
        address inside it)."""
        inside = 0 <= row < image.shape[0] and 0 <= column < image.shape[1]
        return load_first(image[row if inside else 0, column if inside else 0], c, count if inside else 0, lanes)

    @compiled.kernel(inline=True)
    def _store_cells(cells_in, first, tile, c, count, left, middle, right):
        """A row (left, middle, right) of B^T d, times B: cells first..first+2 of `tile`."""
        store_first(cells_in[first, tile], c, subtract(left, middle), count)
        store_first(cells_in[first + 1, tile], c, middle, count)
        store_first(cells_in[first + 2, tile], c, subtract(right, middle), count)

    @compiled.kernel(inline=True)
    def _store_sums(sums, cell, group):
        """A register tile's sums of one cell, tile by tile."""
        for i in range(len(group)):
            store_first(sums[cell, i], 0, group[i], sums.shape[2])

    @compiled.kernel(inline=True)
    def _output_tile(sums, i, b, s, h, flags, zero):
        """Tile i's 2x2 outputs A^T m A from its 9 cells' sums, finished and pooled (`direct._pool`'s maximum or
        mean)."""
        m0, m1, m2 = load(sums[0, i], 0, zero), load(sums[1, i], 0, zero), load(sums[2, i], 0, zero)
        m3, m4, m5 = load(sums[3, i], 0, zero), load(sums[4, i], 0, zero), load(sums[5, i], 0, zero)
        m6, m7, m8 = load(sums[6, i], 0, zero), load(sums[7, i], 0, zero), load(sums[8, i], 0, zero)
        top = (add(m0, m3), add(m1, m4), add(m2, m5))
        below = (add(m3, m6), add(m4, m7), add(m5, m8))
        return _pool(add(top[0], top[1]), add(top[1], top[2]), add(below[0], below[1]), add(below[1], below[2]),
                     b, s, h, *flags)[0]
