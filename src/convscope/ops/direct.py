"""Direct convolution: each output pixel's filters summed straight from the padded input, no im2col.

For the thin products of early layers (a few input channels, tens of filters) BLAS runs
far below its peak, and im2col costs a copy as large as the product.  Here a tile of
`PIXELS` neighbouring output pixels x `lanes` filters (16 or 32; 8 or 16 on AVX2) is held in SIMD
registers (`ops/simd.py`) while every tap (i, j, c) of the kernel adds
x[tap] * w[tap, filters] to it: one filter-vector load and `PIXELS` broadcasts for
`PIXELS` vector multiply-adds (on AVX2, 16 filters take two of its 16 registers: tiles of 4 pixels,
`tile_pixels`).  Measured on one thread, seed 000's first layer (5x5, 1 -> 32) and second (2x2,
32 -> 64, near a core's peak) and seed 004's layer (5x5, 3 -> 16, 300x300) ran faster than im2col + GEMM.

`conv_pool_block` computes tiles of 2 rows x 4 pixels instead (2 x 2 for the last window
of an odd row: an overlapping tile cost more on seed 000's 14-wide second layer; 2 x 2 for every window
with AVX2's 16-filter tiles: faster than 2 x 4 x 8 filters there; a window the output's edge cuts to one row
or column, as a "same" pooling of an odd size has, reads that row or column twice) and finishes each in
registers (bias, ReLU, an inference batch norm's affine map, ReLU, then the 2x2 stride-2
max or average): the convolution's output never reaches memory.  Without a pooling, `conv_block`
finishes its output too (`finish_vectors`, with a ReLU6's cap): a band of rows (`FINISH_BAND_BYTES`) is
summed, then finished while it is in L1, so the output is written to memory once, finished, not stored
and then read twice more by the epilogue's passes.  (Finishing each tile in registers took the registers
the tile loop's addresses need: it ran slower.)
The threads of a pooled convolution claim its images (of fewer images, bands of their pooled rows) one at a time
inside one compiled call each (`claims.py`), each image padded into the call's scratch image there: a faster core
takes more of them, and no thread waits for the GIL between them.  An inference convolution without a pooling
claims its images, or bands of output rows, the same way (`conv_claimed_block`: each band padding only the rows
its windows read): blocks called from Python, each taking the GIL, scaled worse to two threads (seed 004's
layer; measurements: benchmarks/README.md, 'Measurements behind the code's choices').

`filter_grad_block` turns the tile around for the filter gradient: 8 taps x `lanes`
filters are summed over an image's output pixels, grad[p, filters] times x[p's tap] (6 taps
with AVX2's 16-filter tiles: 12 accumulators; faster than 8 taps x 8 filters there).

Compiled path and float32 only; the taps are summed in order (i, j, c), so results
differ from the GEMM's by float32 rounding only.  The measurements behind these choices:
benchmarks/README.md, 'Measurements behind the code's choices'.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from . import compiled
from .kept_filters import KeptFilters, kept_or_made
from .pad_fill import FLAT_FILL_MAX_CHANNELS, fill_pixels, fill_rows

if compiled.available():
    from . import simd
    from .claims import claim_band
    from .simd import (add, broadcast, clip, epilogue, fma, full, index_of_max, load, max_or_nan, multiply,
                       store_first, vector_bits, zeros)

PIXELS = 8               # output pixels per tile: PIXELS vectors of accumulators, plus one of filters
TAPS_PER_TILE = 8        # taps per tile of the filter gradient: as many vectors of accumulators
WIDE_TAPS_MIN_PIXELS = 1024  # from this many output pixels per image, tiles of one 512-bit vector of filters take
                             # 16 taps at a time in the filter gradient (twice the accumulators, half the passes
                             # over the image; on 16x16 images slower: measurements, benchmarks/README.md,
                             # 'Measurements behind the code's choices')
MAX_TAPS = 1024          # kh * kw * in_channels; longer sums are BLAS' strength
AVX2_MAX_TAPS = 512      # at 8 lanes (AVX2) already: measured with AVX2 code, seed 001's 675-tap layer ran slower
                         # than Winograd/GEMM, and so did ResNet-20's 576-tap training step (measurements:
                         # benchmarks/README.md, 'Measurements behind the code's choices')
AVX2_FEW_ROWS = 512      # ... but up to MAX_TAPS where the product has at most this many rows (images x output
                         # pixels: one or two small images), which BLAS runs far under its peak on one thread
MAX_OUT_CHANNELS = 128   # more filters make a wide product that BLAS runs near its peak
NARROW_MAX_OUT_CHANNELS = 64   # outputs 4-7 wide (tiles of 2 rows x 4, some overlapping): measured on 7x7
                               # outputs, faster than the GEMM at 50 -> 25 filters, slower at 64 -> 128
                               # (measurements: benchmarks/README.md, 'Measurements behind the code's choices')
OUTPUT_BUDGET_BYTES = 2 ** 20  # output of one block of images, in cache for the epilogue after it
FINISH_BAND_BYTES = 16 << 10   # output rows computed, then finished while in L1 (`_conv_rows`)
SMALL_WORK = 1 << 22     # multiply-adds under which a direct convolution (and `conv_split`'s Winograd and im2col
                         # tasks) stays on the calling thread (a hand-over costs more than the second core saves):
                         # two threads won from ~4M on a Zen 4 VM (seed 001's second layer at batch 1, 6.6M; the
                         # seeds' layers at 8 images), and were level on an Intel one; measurements:
                         # benchmarks/README.md, 'Measurements behind the code's choices')
# The registers the tiles are sized for: 8 accumulators of `lanes` floats fit 32 AVX-512 registers at 16 or
# 32 lanes, 16 AVX2 registers at 8; narrower SIMD keeps im2col + GEMM.  Measured with AVX2-only code
# (NUMBA_CPU_FEATURES, OPENBLAS_CORETYPE=Haswell): 16 or 32 lanes spill registers and ran slower than the
# GEMM; 8 lanes mostly faster (measurements: benchmarks/README.md, 'Measurements behind the code's choices').
VECTOR_BITS = vector_bits() if compiled.available() else 0
# `conv_block`'s `finish` when the tiles are stored as summed (the vectors are not read then)
_NO_FINISH = (np.zeros(1, np.float32),) * 3 + (False, False, False, np.float32(np.inf), False)


def _thin(dtype, groups: int, taps: int, out_channels: int, pointwise: bool, rows: int = 0) -> bool:
    """Compiled path, float32, one group, not 1x1 unpadded stride 1 (its columns are the input
    itself), and a thin product: few taps (kh * kw * in) and filters.  `rows`: the product's rows (images
    x output pixels; 0: not known), which with AVX2 decide how many taps are few (`AVX2_FEW_ROWS`)."""
    few_taps = MAX_TAPS if VECTOR_BITS >= 512 or 0 < rows <= AVX2_FEW_ROWS else AVX2_MAX_TAPS
    return (compiled.active() and VECTOR_BITS >= 256 and dtype == np.float32 and groups == 1 and not pointwise
            and taps <= few_taps and out_channels <= MAX_OUT_CHANNELS)


def applies(dtype, kernel_hw, groups: int, in_channels: int, out_channels: int, out_hw,
            pointwise: bool, images: int = 0) -> bool:
    """True for the convolutions computed here: thin ones (`_thin`, of `images` images; 0: any number)
    with outputs at least a tile wide: 8 pixels of a row, or, up to `NARROW_MAX_OUT_CHANNELS` filters,
    4 pixels of 2 rows."""
    wide = out_hw[1] >= PIXELS or (out_hw[1] >= PIXELS // 2 and out_hw[0] >= 2
                                   and out_channels <= NARROW_MAX_OUT_CHANNELS)
    return _thin(dtype, groups, kernel_hw[0] * kernel_hw[1] * in_channels, out_channels, pointwise,
                 images * out_hw[0] * out_hw[1]) and wide


def computes_filter_grad(dtype, kernel_hw, groups: int, in_channels: int, out_channels: int,
                         pointwise: bool) -> bool:
    """True where `filter_grad_block` computes the filter gradient: thin convolutions with groups of
    `TAPS_PER_TILE` taps at least 3/4 full (9 taps take two groups: slower than the GEMM)."""
    taps = kernel_hw[0] * kernel_hw[1] * in_channels
    groups_of_taps = -(-taps // TAPS_PER_TILE)
    return (_thin(dtype, groups, taps, out_channels, pointwise) and taps >= TAPS_PER_TILE
            and 4 * taps >= 3 * TAPS_PER_TILE * groups_of_taps)


def lanes_for(out_channels: int) -> int:
    """Filters per tile: two registers' worth unless one leaves fewer padded filters.  AVX-512: 32 or 16
    (16 lanes: 16 -> 16, 75 -> 80; 32 lanes: 50 -> 64 in two tiles instead of four).  AVX2: 16 or 8 (24 -> 24
    in three tiles of 8, not 32)."""
    one = 16 if VECTOR_BITS >= 512 else 8
    return 2 * one if -(-out_channels // (2 * one)) * 2 * one == -(-out_channels // one) * one else one


def tile_pixels(lanes: int) -> int:
    """Output pixels per tile of `lanes` filters: `PIXELS`, or half as many where `PIXELS` vectors of
    accumulators would take more than half the registers (AVX2's 16 registers at 16 lanes: two each).
    Measured with AVX2 code, ResNet-20's 3x3 layers ran faster in tiles of 4 pixels x 16 filters
    than of 8 x 8 (one filter load for 8 products, not 8; the same sums, bitwise; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices')."""
    registers = 32 if VECTOR_BITS >= 512 else 16
    per_vector = max(1, lanes * 32 // VECTOR_BITS)
    return PIXELS if PIXELS * per_vector <= registers // 2 else PIXELS // 2


def tile(out_channels: int) -> tuple:
    """(filters, pixels) of the convolution tiles for `out_channels` filters."""
    lanes = lanes_for(out_channels)
    return lanes, tile_pixels(lanes)


def prepare(w: np.ndarray, x_pad_shape, dilations, kept: Optional[KeptFilters] = None):
    """(filters, taps, lanes) for `conv_block`: filters (kh*kw*in, out) zero-padded to a multiple of
    `lanes` columns and flattened (`kept`: an inference op's copy, kept while the filters are the same); taps:
    each (i, j, c)'s offset in a flattened padded image."""
    taps, lanes = taps_and_lanes(w.shape, x_pad_shape, dilations)
    return tile_filters(w, lanes, kept), taps, lanes


def tile_filters(w: np.ndarray, lanes: int, kept: Optional[KeptFilters] = None) -> np.ndarray:
    """`prepare`'s filters: (kh*kw*in, out) zero-padded to `padded_channels(out, lanes)` columns, flattened."""
    padded = padded_channels(w.shape[3], lanes)
    if padded == w.shape[3]:                  # whole vectors of filters: no copy
        return np.ascontiguousarray(w, dtype=np.float32).reshape(-1)
    return kept_or_made(kept, w, "direct", functools.partial(_pad_filters, padded=padded))


def full_width_units() -> bool:
    """True where the tiles are 512-bit (`VECTOR_BITS`) on a CPU that runs them whole (`simd.FULL_WIDTH_CPU`):
    their multiply-adds twice as fast as a double-pumped CPU's, some paths choose this kernel longer (`conv`'s)."""
    return VECTOR_BITS >= 512 and simd.FULL_WIDTH_CPU


def padded_channels(out_channels: int, lanes: int) -> int:
    """`out_channels` rounded up to whole tiles of `lanes` filters."""
    return -(-out_channels // lanes) * lanes


def taps_and_lanes(filter_shape, x_pad_shape, dilations) -> tuple:
    """`prepare`'s taps and lanes for filters of `filter_shape`: what the shapes alone decide."""
    kh, kw, channels, out_channels = filter_shape
    return _taps(kh, kw, channels, x_pad_shape[2] * channels, tuple(dilations)), lanes_for(out_channels)


def _pad_filters(w: np.ndarray, padded: int) -> np.ndarray:
    """The filters (kh, kw, in, out) as rows of taps with zero filters up to `padded`, flattened."""
    filters = np.zeros((w.shape[0] * w.shape[1] * w.shape[2], padded), dtype=np.float32)
    filters[:, :w.shape[3]] = w.reshape(-1, w.shape[3])
    return filters.reshape(-1)


@functools.lru_cache(maxsize=256)
def _taps(kh: int, kw: int, channels: int, row_length: int, dilations) -> np.ndarray:
    """Each tap (i, j, c)'s offset in a flattened padded image (kept per geometry: the kernels only read
    it, and computing it took a large share of `prepare`'s time at batch 1; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices')."""
    return (np.arange(kh, dtype=np.int64)[:, None, None] * (dilations[0] * row_length)
            + np.arange(kw, dtype=np.int64)[None, :, None] * (dilations[1] * channels)
            + np.arange(channels, dtype=np.int64)).ravel()


def _check_contiguous(array: np.ndarray, name: str) -> None:
    """The kernels write through a flat view: a strided target would be a copy, the result lost."""
    if not array.flags.c_contiguous:
        raise ValueError(f"direct: argument `{name}` must be C-contiguous, got strides {array.strides}")


def conv_block(x_pad: np.ndarray, first: int, top: int, prepared, strides, out: np.ndarray,
               finish: Optional[tuple] = None) -> None:
    """out (images, rows, out_w, out_channels) = the convolution of images first.. of the padded input
    `x_pad` (C-contiguous NHWC) for the output rows whose windows start at padded row `top`; with `finish`
    (`finish_vectors`'), each band of rows finished while in L1 (`_conv_rows`)."""
    filters, taps, lanes = prepared
    finish = _NO_FINISH if finish is None else finish
    _check_contiguous(out, "out")
    images, rows, out_w, out_channels = out.shape
    two_rows = _two_rows(out)
    row_length = x_pad.shape[2] * x_pad.shape[3]
    kernel = _kernels_for(lanes, tile_pixels(lanes))[0]
    kernel(x_pad.reshape(x_pad.shape[0], -1), first, top * row_length, taps, filters,
           out.reshape(images, rows, out_w * out_channels), strides[0] * row_length, strides[1] * x_pad.shape[3],
           out_channels, two_rows, *finish)


def conv_claimed_block(x: np.ndarray, pads, prepared, strides, reach: int, out: np.ndarray, counter: np.ndarray,
                       bands: int = 1, finish: Optional[tuple] = None) -> None:
    """`conv_block`'s out (images, out_h, out_w, out_channels) for the items this call claims from `counter` (one
    int64, shared by the threads making the same call: `parallel.run_claimed`) until none is left: item i is band
    i % `bands` of image i // `bands`'s output rows.  Where `pads` ((top, bottom), (left, right)) is not None, the
    padded rows a band's windows read (`reach` rows for one output row) are filled into a scratch block of this
    call's first (it stays in cache); else `x` is read as it is (padded already)."""
    filters, taps, lanes = prepared
    finish = _NO_FINISH if finish is None else finish
    _check_contiguous(out, "out")
    _check_contiguous(x, "x")
    images, rows, out_w, out_channels = out.shape
    two_rows = _two_rows(out)
    height = 2 if two_rows else 1
    if len(x) != images:
        raise ValueError(f"direct: argument `x` must hold the {images} images of `out`, got {len(x)}")
    if not 1 <= bands <= max(rows // height, 1):
        raise ValueError(f"direct: argument `bands` must be 1 to {max(rows // height, 1)} (the {rows} output rows "
                         f"in tiles {height} high), got {bands}")
    (top, bottom), (left, right) = ((0, 0), (0, 0)) if pads is None else pads
    padded = (1, x.shape[1] + top + bottom, x.shape[2] + left + right, x.shape[3])
    band_rows = min((-(-rows // bands) - 1) * strides[0] + reach, padded[1])
    scratch = _scratch((1, band_rows) + padded[2:] if pads is not None else (1, 1, 1, 1))
    row_length = padded[2] * padded[3]
    kernel = _kernels_for(lanes, tile_pixels(lanes))[3]
    kernel(x, counter, bands, pads is not None, x.shape[3] <= FLAT_FILL_MAX_CHANNELS, top, left, scratch, strides[0],
           taps, filters, out.reshape(images, rows, out_w * out_channels), strides[0] * row_length,
           strides[1] * padded[3], out_channels, two_rows, *finish)


def _two_rows(out: np.ndarray) -> bool:
    """True where `out` (images, rows, out_w, filters) is tiled 2 rows high (narrower than a tile of `PIXELS`);
    checks it is as wide as a tile, or half as wide and 2 high."""
    rows, out_w = out.shape[1:3]
    if out_w < PIXELS and (rows < 2 or out_w < PIXELS // 2):
        raise ValueError(f"direct: argument `out` must be at least {PIXELS} wide, or {PIXELS // 2} wide and "
                         f"2 high, got {out.shape}")
    return out_w < PIXELS


def _scratch(shape) -> np.ndarray:
    """A call's scratch block for padded rows (one function: the tests record the blocks' sizes)."""
    return np.empty(shape, np.float32)


def finish_vectors(prepared, bias, relu: bool, scale, shift, affine: bool, relu_after: bool,
                   cap: float = np.inf) -> tuple:
    """`conv_block`'s `finish`: min(relu_after(relu(conv + bias) * scale + shift), cap), each output as
    `epilogue._epilogue_kernel` then `conv_split.cap_block` give it (scale and shift only if `affine`)."""
    vectors = tile_epilogue(padded_filters(prepared), bias, "relu" if relu else "linear", scale if affine else None,
                            shift if affine else None, "relu" if relu_after else "linear", False)
    return vectors[:6] + (np.float32(cap), True)


def pools_in_tiles(out_hw, window, pooled_hw, clip: bool = False) -> bool:
    """True when a pooling `window` (kh, kw, sh, sw, top, left) of the convolution's output can be
    done inside the tiles: 2x2 windows, stride 2, no padding before, at least two of them per row; with
    `clip` (for a max pooling), also a last row or column of windows that the output's edge cuts to one (a
    "same" pooling of an odd size: `pooled_clips`)."""
    cut = pooled_clips(out_hw, pooled_hw)
    return (tuple(window) == (2, 2, 2, 2, 0, 0) and pooled_hw[1] >= 2 and (clip or not any(cut))
            and all(2 * pooled <= out + edge for out, pooled, edge in zip(out_hw, pooled_hw, cut)))


def pooled_clips(out_hw, pooled_hw) -> tuple:
    """(rows, columns): True where the last pooled row (column) of windows covers only the output's last row
    (column), the edge cutting off the rest: the tiles then read that row (column) twice, which leaves a window's
    maximum that of its cells inside the output, as a "same" max pooling takes it (not its mean's rounding: an
    average pooling keeps the ops one after the other there)."""
    return tuple(bool(2 * pooled > out) for out, pooled in zip(out_hw, pooled_hw))


def padded_filters(prepared) -> int:
    """The filters of `prepare`'s tiles, padded to a whole number of tiles."""
    filters, taps, _ = prepared
    return filters.size // taps.size


def tile_epilogue(padded: int, bias, activation: str, scale, shift, then: str, average: bool) -> tuple:
    """The arguments of `conv_pool_block`'s epilogue for `padded` filters (`padded_filters`): bias, scale and
    shift padded as the filters (in one compiled call, `_padded_vectors`, where any needs it: the NumPy calls it
    replaced were a share of a batch-1 convolution's time; measurements: benchmarks/README.md, 'Measurements
    behind the code's choices'); without a scale, the bias in all three (the kernels read scale and shift only
    with the affine flag); and the flags (relu, affine, relu after, average)."""
    relu_first, relu_after = activation == "relu", then == "relu"
    if scale is None:
        if bias is not None and len(bias) == padded:            # nothing to pad
            vector = np.ascontiguousarray(bias, dtype=np.float32)
        else:
            vector = _padded_vectors(_NO_VALUES if bias is None else bias, _NO_VALUES, _NO_VALUES, padded)[0]
        return vector, vector, vector, relu_first, False, relu_after, average
    vectors = _padded_vectors(*(_NO_VALUES if values is None else values for values in (bias, scale, shift)), padded)
    return vectors[0], vectors[1], vectors[2], relu_first, True, relu_after, average


_NO_VALUES = np.zeros(0, np.float32)     # a vector not given to `tile_epilogue` (only read)


@compiled.kernel
def _padded_vectors(bias, scale, shift, padded):
    """float32 (3, padded): `bias`, `scale` and `shift`, each past its values padded with 0, 1 and 0."""
    out = np.empty((3, padded), np.float32)
    for c in range(padded):
        out[0, c] = bias[c] if c < bias.shape[0] else 0.0
        out[1, c] = scale[c] if c < scale.shape[0] else 1.0
        out[2, c] = shift[c] if c < shift.shape[0] else 0.0
    return out


def conv_pool_block(x: np.ndarray, pads, prepared, strides, epilogue: tuple, pooled: np.ndarray, counter: np.ndarray,
                    bands: int = 1, argmax: Optional[np.ndarray] = None, clip=(False, False)) -> None:
    """pooled (images, pooled_h, pooled_w, out_channels) = the 2x2 stride-2 max (or average) pooling of the
    output's whole windows (out_h // 2 x out_w // 2 of them, or fewer), with `clip` also of those its edge cuts
    (`pooled_clips`: a max pooling's), of `then(activation(conv + bias) * scale + shift)` of `x` (C-contiguous
    NHWC), as `fused._epilogue_pool_kernel` computes it (`epilogue` from `tile_epilogue`), for the items this call
    claims from `counter` (one int64, shared by the threads making the same call: `parallel.run_claimed`)
    until none is left: item i is band i % `bands` of image i // `bands`'s pooled rows (`bands` <= pooled
    rows).  An image is padded by `pads` ((top, bottom), (left, right)) into a scratch image of this call's
    first, or read as it is where `pads` is None (`x` padded already).  With `argmax` (uint8, pooled's shape)
    also the offset of each window's first maximum, as `max_pool2d_forward` keeps it (then no `clip`)."""
    filters, taps, lanes = prepared
    _check_contiguous(pooled, "pooled")
    _check_contiguous(x, "x")
    if argmax is not None:
        _check_contiguous(argmax, "argmax")
    pooled_tiles(x.shape, pads, taps, lanes, strides, pooled.shape, bands, argmax is not None, clip)(
        x, filters, epilogue, pooled, counter, argmax)


def pooled_tiles(x_shape, pads, taps, lanes: int, strides, pooled_shape, bands: int, tracked: bool,
                 clip=(False, False)):
    """`conv_pool_block`'s checks of the shapes and its kernel's constant arguments, made once (a prepared
    inference op makes them once per input shape): `call(x, filters, epilogue, pooled, counter, argmax)` for
    C-contiguous arrays of these shapes (`argmax` given if `tracked`), `filters` and `taps` `prepare`'s;
    `clip`: `pooled_clips`' (an untracked pooling's only: the offsets of the maxima assume whole windows)."""
    images, pooled_h, pooled_w, out_channels = pooled_shape
    clip = (bool(clip[0]), bool(clip[1]))
    if tracked and any(clip):
        raise ValueError(f"direct: argument `clip` must be (False, False) where the maxima are tracked, got {clip}")
    if x_shape[0] != images:
        raise ValueError(f"direct: argument `x` must hold the {images} images of `pooled`, got {x_shape[0]}")
    if not 1 <= bands <= max(pooled_h, 1):
        raise ValueError(f"direct: argument `bands` must be 1 to the {pooled_h} pooled rows, got {bands}")
    (top, bottom), (left, right) = ((0, 0), (0, 0)) if pads is None else pads
    padded = (1, x_shape[1] + top + bottom, x_shape[2] + left + right, x_shape[3])
    scratch_shape = padded if pads is not None else (1, 1, 1, 1)
    flat_shape = (images, pooled_h, pooled_w * out_channels)
    kernel = _kernels_for(lanes, tile_pixels(lanes))[1][tracked]
    head = (bands, pads is not None, x_shape[3] <= FLAT_FILL_MAX_CHANNELS, top, left) + clip
    steps = (strides[0] * padded[2] * padded[3], strides[1] * padded[3], out_channels)
    last = (2 * pooled_h - 1 - clip[0]) * steps[0] + (2 * pooled_w - 1 - clip[1]) * steps[1] + int(taps.max())
    if pooled_h and pooled_w and last >= padded[1] * padded[2] * padded[3]:     # the kernel reads unchecked
        raise ValueError(f"direct: arguments `pooled` and `clip` must keep the tiles inside the padded input "
                         f"{padded[1:3]}: pooled {(pooled_h, pooled_w)} with clip {clip} reads past it")

    def call(x, filters, epilogue, pooled, counter, argmax=None):
        offsets = np.empty((1, 1, 1), np.uint8) if argmax is None else argmax.reshape(flat_shape)
        kernel(x, counter, *head, np.empty(scratch_shape, np.float32), taps, filters, pooled.reshape(flat_shape),
               offsets, *steps, *epilogue)
    return call


def filter_grad_block(x_pad: np.ndarray, first: int, prepared, strides, grad: np.ndarray,
                      grad_filters: np.ndarray) -> None:
    """grad_filters (taps, padded filters) += the filter gradient of images first.. of `x_pad` for the
    output gradient `grad` (images, out_h, out_w, out_channels); needs at least 8 taps."""
    filters, taps, lanes = prepared
    images, out_h, out_w, out_channels = grad.shape
    padded = grad_filters.shape[1]
    if out_channels != padded:             # full vectors of filters: the padding filters' gradient is 0
        padded_grad = np.zeros(grad.shape[:3] + (padded,), dtype=np.float32)
        padded_grad[..., :out_channels] = grad
        grad = padded_grad
    _check_contiguous(grad_filters, "grad_filters")
    row_length = x_pad.shape[2] * x_pad.shape[3]
    kernel = _kernels_for(lanes, tile_pixels(lanes))[2]
    kernel(x_pad.reshape(x_pad.shape[0], -1), first, taps, np.ascontiguousarray(grad).reshape(-1), images, out_h,
           out_w, strides[0] * row_length, strides[1] * x_pad.shape[3], grad_filters.reshape(-1),
           _sixteen_taps(lanes, len(taps), out_h * out_w))


def _sixteen_taps(lanes: int, taps: int, pixels: int) -> bool:
    """Whether the filter gradient sums 16 taps at a time: a vector of `lanes` filters in one of 32 registers
    (512-bit), at least 16 taps, images of `WIDE_TAPS_MIN_PIXELS` output pixels or more."""
    return VECTOR_BITS >= 512 and lanes * 32 == VECTOR_BITS and taps >= 16 and pixels >= WIDE_TAPS_MIN_PIXELS


@compiled.kernel
def _tile_sums(image, base, step, second_half, taps, filters, column, padded, zero):
    """The sums of 8 output pixels x (zero's width) filters from `column` on: pixels 0-3 start at
    image[base + p * step], pixels 4-7 `second_half` further on (the next 4 pixels of the row, or the
    4 below them)."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
    for t in range(taps.shape[0]):
        wv = load(filters, t * padded + column, zero)
        at = base + taps[t]
        a0 = fma(broadcast(image, at, zero), wv, a0)
        a1 = fma(broadcast(image, at + step, zero), wv, a1)
        a2 = fma(broadcast(image, at + 2 * step, zero), wv, a2)
        a3 = fma(broadcast(image, at + 3 * step, zero), wv, a3)
        at += second_half
        a4 = fma(broadcast(image, at, zero), wv, a4)
        a5 = fma(broadcast(image, at + step, zero), wv, a5)
        a6 = fma(broadcast(image, at + 2 * step, zero), wv, a6)
        a7 = fma(broadcast(image, at + 3 * step, zero), wv, a7)
    return a0, a1, a2, a3, a4, a5, a6, a7


@compiled.kernel
def _half_tile_sums(image, base, step, second_half, taps, filters, column, padded, zero):
    """`_tile_sums` of 4 output pixels: 2 from image[base], 2 `second_half` further on."""
    a0 = a1 = a2 = a3 = zero
    for t in range(taps.shape[0]):
        wv = load(filters, t * padded + column, zero)
        at = base + taps[t]
        a0 = fma(broadcast(image, at, zero), wv, a0)
        a1 = fma(broadcast(image, at + step, zero), wv, a1)
        at += second_half
        a2 = fma(broadcast(image, at, zero), wv, a2)
        a3 = fma(broadcast(image, at + step, zero), wv, a3)
    return a0, a1, a2, a3


@compiled.kernel
def _pool(a, b, c, d, bias, scale, shift, relu_first, affine, relu_after, average):
    """The window (a b / c d) of sums finished and pooled, its cells in `_epilogue_pool_kernel`'s order,
    with (max pooling) the offset of its first maximum, as `pooling._max_pool_kernel` records it."""
    a = epilogue(a, bias, relu_first, scale, shift, affine, relu_after)
    b = epilogue(b, bias, relu_first, scale, shift, affine, relu_after)
    c = epilogue(c, bias, relu_first, scale, shift, affine, relu_after)
    d = epilogue(d, bias, relu_first, scale, shift, affine, relu_after)
    if average:
        return multiply(add(add(add(add(zeros(a), a), b), c), d), full(np.float32(0.25), a)), zeros(a)
    best, first = full(-np.float32(np.inf), a), zeros(a)
    for offset, cell in enumerate((a, b, c, d)):
        first = index_of_max(best, cell, first, full(np.float32(offset), a))
        best = max_or_nan(best, cell)
    return best, first


@compiled.kernel(inline=True)
def _tap_sums(image, grad, taps, t, p, out_h, out_w, row_step, step, column, padded, zero):
    """The filter-gradient sums of taps t..t+7 over the out_h x out_w output pixels from pixel p on, for
    (zero's width) filters from `column`: x[pixel's window start + tap] * grad[pixel, filters]."""
    o0, o1, o2, o3, o4, o5, o6, o7 = (taps[t], taps[t + 1], taps[t + 2], taps[t + 3], taps[t + 4], taps[t + 5],
                                      taps[t + 6], taps[t + 7])
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
    for oy in range(out_h):
        base = oy * row_step
        for _ in range(out_w):
            g = load(grad, p * padded + column, zero)
            a0 = fma(broadcast(image, base + o0, zero), g, a0)
            a1 = fma(broadcast(image, base + o1, zero), g, a1)
            a2 = fma(broadcast(image, base + o2, zero), g, a2)
            a3 = fma(broadcast(image, base + o3, zero), g, a3)
            a4 = fma(broadcast(image, base + o4, zero), g, a4)
            a5 = fma(broadcast(image, base + o5, zero), g, a5)
            a6 = fma(broadcast(image, base + o6, zero), g, a6)
            a7 = fma(broadcast(image, base + o7, zero), g, a7)
            base += step
            p += 1
    return a0, a1, a2, a3, a4, a5, a6, a7


@compiled.kernel(inline=True)
def _sixteen_tap_sums(image, grad, taps, t, p, out_h, out_w, row_step, step, column, padded, zero):
    """`_tap_sums` of taps t..t+15 (where a vector of filters takes one of 32 registers)."""
    o0, o1, o2, o3, o4, o5, o6, o7 = (taps[t], taps[t + 1], taps[t + 2], taps[t + 3], taps[t + 4], taps[t + 5],
                                      taps[t + 6], taps[t + 7])
    o8, o9, o10, o11, o12, o13, o14, o15 = (taps[t + 8], taps[t + 9], taps[t + 10], taps[t + 11], taps[t + 12],
                                            taps[t + 13], taps[t + 14], taps[t + 15])
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = zero
    for oy in range(out_h):
        base = oy * row_step
        for _ in range(out_w):
            g = load(grad, p * padded + column, zero)
            a0 = fma(broadcast(image, base + o0, zero), g, a0)
            a1 = fma(broadcast(image, base + o1, zero), g, a1)
            a2 = fma(broadcast(image, base + o2, zero), g, a2)
            a3 = fma(broadcast(image, base + o3, zero), g, a3)
            a4 = fma(broadcast(image, base + o4, zero), g, a4)
            a5 = fma(broadcast(image, base + o5, zero), g, a5)
            a6 = fma(broadcast(image, base + o6, zero), g, a6)
            a7 = fma(broadcast(image, base + o7, zero), g, a7)
            b0 = fma(broadcast(image, base + o8, zero), g, b0)
            b1 = fma(broadcast(image, base + o9, zero), g, b1)
            b2 = fma(broadcast(image, base + o10, zero), g, b2)
            b3 = fma(broadcast(image, base + o11, zero), g, b3)
            b4 = fma(broadcast(image, base + o12, zero), g, b4)
            b5 = fma(broadcast(image, base + o13, zero), g, b5)
            b6 = fma(broadcast(image, base + o14, zero), g, b6)
            b7 = fma(broadcast(image, base + o15, zero), g, b7)
            base += step
            p += 1
    return a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7


@compiled.kernel(inline=True)
def _six_tap_sums(image, grad, taps, t, p, out_h, out_w, row_step, step, column, padded, zero):
    """`_tap_sums` of taps t..t+5 (12 registers of accumulators where a vector takes two)."""
    o0, o1, o2, o3, o4, o5 = taps[t], taps[t + 1], taps[t + 2], taps[t + 3], taps[t + 4], taps[t + 5]
    a0 = a1 = a2 = a3 = a4 = a5 = zero
    for oy in range(out_h):
        base = oy * row_step
        for _ in range(out_w):
            g = load(grad, p * padded + column, zero)
            a0, a1 = fma(broadcast(image, base + o0, zero), g, a0), fma(broadcast(image, base + o1, zero), g, a1)
            a2, a3 = fma(broadcast(image, base + o2, zero), g, a2), fma(broadcast(image, base + o3, zero), g, a3)
            a4, a5 = fma(broadcast(image, base + o4, zero), g, a4), fma(broadcast(image, base + o5, zero), g, a5)
            base += step
            p += 1
    return a0, a1, a2, a3, a4, a5


@compiled.kernel(inline=True)
def _add_tap_sums(grad_filters, sums, t, done, padded, column, count):
    """Each of `sums` (taps t, t + 1, ...) added to its tap's filters from `column` on, but the taps before
    `done` (the group before added them)."""
    for i, acc in enumerate(sums):
        if t + i >= done:
            at = (t + i) * padded + column
            store_first(grad_filters, at, add(load(grad_filters, at, acc), acc), count)


@compiled.kernel(inline=True)
def _pad_into(scratch, image, top, left, flat):
    """`scratch` = rows of `image` (one image) padded with zeros (`top`: its rows above the image's first),
    a flat run per row where `flat` (`pad_fill.fill_rows`), else pixel by pixel."""
    if flat:
        fill_rows(scratch, image, top, left, np.float32(0.0))
    else:
        fill_pixels(scratch, image, top, left, np.float32(0.0))


@compiled.kernel(inline=True)
def _store_sums(out, r, at, sums, width, out_channels, count):
    """A tile's sums (pixels in rows of `width`) stored from out[r][at] on, `count` filters each."""
    for i, p in enumerate(sums):
        below = i >= width                  # the second row of a two-row tile (no division by a runtime width)
        store_first(out[r + 1 if below else r], at + (i - width if below else i) * out_channels, p, count)


@compiled.kernel
def _conv_rows(image, start, out, first_row, end_row, taps, filters, row_step, step, out_channels, two_rows, pixels,
               lanes, zero, finish, bias, scale, shift, relu_first, affine, relu_after, low, high):
    """`_tile_rows` of rows first_row..end_row - 1; with `finish`, in bands of rows (`FINISH_BAND_BYTES`, whole
    tiles high), each finished while in L1 (`_finish_rows`) once summed.  The tile loop holds no epilogue:
    finishing each tile in registers took the registers the taps' offsets need (measurements:
    benchmarks/README.md, 'Measurements behind the code's choices')."""
    if not finish:
        _tile_rows(image, start, out, first_row, end_row, taps, filters, row_step, step, out_channels, two_rows,
                   pixels, lanes, zero)
        return
    height = 2 if two_rows else 1
    rows = max(FINISH_BAND_BYTES // (4 * out.shape[1]) // height, 1) * height      # a band's rows, in L1
    for band in range(-(-(end_row - first_row) // rows)):
        r = min(first_row + band * rows, end_row - min(rows, end_row - first_row))     # the last may overlap
        end = min(r + rows, end_row)
        _tile_rows(image, start, out, r, end, taps, filters, row_step, step, out_channels, two_rows, pixels, lanes,
                   zero)
        _finish_rows(out, r, end, out_channels, lanes, zero, bias, scale, shift, relu_first, affine, relu_after,
                     low, high)


@compiled.kernel
def _finish_rows(out, first_row, end_row, out_channels, lanes, zero, bias, scale, shift, relu_first, affine,
                 relu_after, low, high):
    """out[first_row:end_row] (rows of out_w * out_channels) finished in place, each vector of `lanes` filters as
    min(relu_after(relu(v + bias) * scale + shift), high) (`simd.epilogue`, then `clip`): the numbers
    `epilogue._epilogue_kernel` and `conv_split.cap_block` give."""
    width = out.shape[1]
    tail = np.zeros(lanes, np.float32)           # the row's last vector where it is not whole
    for r in range(first_row, end_row):
        row = out[r]
        for column in range(0, out_channels, lanes):
            count = min(out_channels - column, lanes)
            b, s, h = load(bias, column, zero), load(scale, column, zero), load(shift, column, zero)
            for at in range(column, width, out_channels):
                if at + lanes <= width:
                    v = load(row, at, zero)
                else:
                    for k in range(count):
                        tail[k] = row[at + k]
                    v = load(tail, 0, zero)
                store_first(row, at, clip(epilogue(v, b, relu_first, s, h, affine, relu_after), low, high), count)


@compiled.kernel
def _tile_rows(image, start, out, first_row, end_row, taps, filters, row_step, step, out_channels, two_rows, pixels,
               lanes, zero):
    """Rows first_row..end_row - 1 (at least a tile high) of one image's output `out` (rows, out_w *
    out_channels): out[r, ox * out_channels + f] = sum over taps t of image[start + r * row_step + ox * step +
    taps[t]] * filters[t * padded + f], in tiles of `pixels` (8 or 4) pixels of a row, or (`two_rows`, outputs
    narrower than 8) of half as many pixels of 2 rows; the last tile of a row (and pair of rows) overlaps the
    one before where they do not divide."""
    out_w = out.shape[1] // out_channels
    padded = filters.shape[0] // taps.shape[0]
    width, height = (pixels // 2, 2) if two_rows else (pixels, 1)
    tiles, bands = -(-out_w // width), -(-(end_row - first_row) // height)
    second_half = row_step if two_rows else (pixels // 2) * step
    for band in range(bands):
        r = min(first_row + band * height, end_row - height)
        for column in range(0, padded, lanes):
            count = min(out_channels - column, lanes)
            for tile in range(tiles):
                ox = min(tile * width, out_w - width)
                base, at = start + r * row_step + ox * step, ox * out_channels + column
                if pixels == PIXELS:
                    sums = _tile_sums(image, base, step, second_half, taps, filters, column, padded, zero)
                    _store_sums(out, r, at, sums, width, out_channels, count)
                else:
                    sums4 = _half_tile_sums(image, base, step, second_half, taps, filters, column, padded, zero)
                    _store_sums(out, r, at, sums4, width, out_channels, count)


def _kernels(lanes: int, pixels: int):
    """The compiled tile loops for `lanes` filters per tile: (convolution in tiles of `pixels`, convolution +
    epilogue + 2x2 pooling without and with the maxima's offsets, filter gradient, convolution of claimed bands).
    Only ints and bools are closure constants (closures over kernels would defeat the disk cache)."""

    @compiled.kernel
    def conv_tiles(x_flat, first, start, taps, filters, out, row_step, step, out_channels, two_rows,
                   bias, scale, shift, relu_first, affine, relu_after, cap, finish):
        """`_conv_rows` of every row of images first.. of `x_flat` (from `start` on) into `out` (images, rows,
        out_w * out_channels)."""
        zero = zeros(lanes)
        low, high = full(-np.float32(np.inf), zero), full(cap, zero)     # no floor; the cap
        for n in range(out.shape[0]):
            _conv_rows(x_flat[first + n], start, out[n], 0, out.shape[1], taps, filters, row_step, step, out_channels,
                       two_rows, pixels, lanes, zero, finish, bias, scale, shift, relu_first, affine, relu_after, low,
                       high)

    @compiled.kernel
    def conv_claimed_tiles(source, counter, bands, padding, flat, top, left, scratch, stride, taps, filters,
                           out, row_step, step, out_channels, two_rows, bias, scale, shift, relu_first, affine,
                           relu_after, cap, finish):
        """`_conv_rows` of the items claimed from `counter`, `bands` bands of output rows per image: each read
        from `source`, or (`padding`) its padded rows (`stride` per output row) filled into `scratch` first
        (`flat`: by rows)."""
        images, rows = out.shape[0], out.shape[1]
        zero = zeros(lanes)
        low, high = full(-np.float32(np.inf), zero), full(cap, zero)
        while True:
            n, first, end = claim_band(counter, images, bands, rows)
            if n < 0:
                break
            start = 0
            image = source[n].reshape(source[n].size)
            if padding:             # the rows of the longest band (the shorter's last rows are not read)
                _pad_into(scratch, source[n:n + 1], top - first * stride, left, flat)
                image, start = scratch.reshape(scratch.size), -first * row_step
            _conv_rows(image, start, out[n], first, end, taps, filters, row_step, step, out_channels, two_rows,
                       pixels, lanes, zero, finish, bias, scale, shift, relu_first, affine, relu_after, low, high)

    def pooled_tiles(track: bool):
        """`conv_pool_tiles`, recording the maxima's offsets if `track` (a closure constant: tested on each
        tile, the flag cost a sizeable share of seed 000's first layer; measurements: benchmarks/README.md,
        'Measurements behind the code's choices')."""

        @compiled.kernel
        def conv_pool_tiles(source, counter, bands, padding, flat, top, left, clip_h, clip_w, scratch, taps, filters,
                            pooled, argmax, row_step, step, out_channels, bias, scale, shift, relu_first, affine,
                            relu_after, average):
            """`conv_tiles` in tiles of 2 rows x 4 pixels (2 x 2 for an odd row's last window, and for every
            window with tiles of 4 `pixels`), each finished and pooled 2x2 into 2 pixels (1) of `pooled`, and,
            if `track`, the offsets of the maxima into `argmax` (laid out as `pooled`), for the items claimed
            from `counter`, `bands` bands of pooled rows per image: each image read from `source`, or (`padding`)
            padded into `scratch` first (`flat`: by rows), once for the claimed bands of one image in a row.
            `clip_h` (`clip_w`): the last row (column) of windows, which the output's edge cuts, reads its one row
            (column) twice."""
            images, pooled_h = pooled.shape[0], pooled.shape[1]
            pooled_w = pooled.shape[2] // out_channels
            padded = filters.shape[0] // taps.shape[0]
            zero = zeros(lanes)
            flags = (relu_first, affine, relu_after, average)
            filled = -1
            while True:
                n, first, end = claim_band(counter, images, bands, pooled_h)
                if n < 0:
                    break
                if padding and n != filled:
                    _pad_into(scratch, source[n:n + 1], top, left, flat)
                    filled = n
                image = scratch.reshape(scratch.size) if padding else source[n].reshape(source[n].size)
                for r in range(first, end):
                    row = pooled[n, r]
                    below = 0 if clip_h and r == pooled_h - 1 else row_step
                    for column in range(0, padded, lanes):
                        count = min(out_channels - column, lanes)
                        b, s, h = load(bias, column, lanes), load(scale, column, lanes), load(shift, column, lanes)
                        pairs = (pooled_w - clip_w) // 2 if pixels == PIXELS else 0
                        for q in range(0, 2 * pairs, 2):
                            a0, a1, a2, a3, a4, a5, a6, a7 = _tile_sums(
                                image, 2 * r * row_step + 2 * q * step, step, below, taps, filters, column, padded,
                                zero)
                            at = q * out_channels + column
                            left_max, left_offsets = _pool(a0, a1, a4, a5, b, s, h, *flags)
                            right_max, right_offsets = _pool(a2, a3, a6, a7, b, s, h, *flags)
                            store_first(row, at, left_max, count)
                            store_first(row, at + out_channels, right_max, count)
                            if track:
                                store_first(argmax[n, r], at, left_offsets, count)
                                store_first(argmax[n, r], at + out_channels, right_offsets, count)
                        for q in range(2 * pairs, pooled_w):      # one window, a tile of 2 x 2 pixels
                            across = 0 if clip_w and q == pooled_w - 1 else step
                            a0, a1, a2, a3 = _half_tile_sums(image, 2 * r * row_step + 2 * q * step, across, below,
                                                             taps, filters, column, padded, zero)
                            at = q * out_channels + column
                            last, last_offsets = _pool(a0, a1, a2, a3, b, s, h, *flags)
                            store_first(row, at, last, count)
                            if track:
                                store_first(argmax[n, r], at, last_offsets, count)
        return conv_pool_tiles

    @compiled.kernel
    def filter_grad_tiles(x_flat, first, taps, grad, images, out_h, out_w, row_step, step, grad_filters, sixteen):
        """grad_filters[t * padded + f] += sum over the output pixels p of images first.. of
        x_flat[image, p's window start + taps[t]] * grad[p * padded + f], for 8 taps x `lanes` filters
        at a time (16 with `sixteen`), or 6 with tiles of 4 `pixels` (12 accumulators where a vector takes two
        registers: AVX2 at 16 lanes); the last group overlaps the one before, each tap is added once."""
        count = taps.shape[0]
        padded = grad_filters.shape[0] // count
        per = (16 if sixteen else TAPS_PER_TILE) if pixels == PIXELS else 6
        zero = zeros(lanes)
        for n in range(images):
            image = x_flat[first + n]
            p = n * out_h * out_w
            for group in range(-(-count // per)):
                t = min(group * per, count - per)
                for column in range(0, padded, lanes):
                    if pixels == PIXELS and sixteen:
                        wide = _sixteen_tap_sums(image, grad, taps, t, p, out_h, out_w, row_step, step, column,
                                                 padded, zero)
                        _add_tap_sums(grad_filters, wide, t, group * per, padded, column, lanes)
                    elif pixels == PIXELS:
                        sums = _tap_sums(image, grad, taps, t, p, out_h, out_w, row_step, step, column, padded, zero)
                        _add_tap_sums(grad_filters, sums, t, group * per, padded, column, lanes)
                    else:
                        six = _six_tap_sums(image, grad, taps, t, p, out_h, out_w, row_step, step, column, padded,
                                            zero)
                        _add_tap_sums(grad_filters, six, t, group * per, padded, column, lanes)
    return conv_tiles, (pooled_tiles(False), pooled_tiles(True)), filter_grad_tiles, conv_claimed_tiles


_KERNELS = {}


def _kernels_for(lanes: int, pixels: int):
    """The kernels for `lanes` filters and tiles of `pixels`, compiled on first use."""
    if (lanes, pixels) not in _KERNELS:
        _KERNELS[lanes, pixels] = _kernels(lanes, pixels)
    return _KERNELS[lanes, pixels]
