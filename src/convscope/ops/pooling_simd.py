"""Max pooling of float32 NHWC blocks with a SIMD vector of channels per step.

`pooling._max_pool_kernel` compares one channel at a time, with a branch per cell that keeps
the compiler from vectorizing it.  Here each window's running maximum (and, where tracked, the
offset of its first maximum) is held in a vector of `lanes` channels (`ops/simd.py`'s
`max_or_nan` and `index_of_max`, the scalar kernel's rule: greater, or NaN, wins), and the
channels left over after whole vectors run one at a time by the same rule.  Cells are read in
the same order and compared the same way, so the maxima and offsets are the scalar kernel's,
bit for bit.  Without `track` (inference) the offsets are neither computed nor stored.  With
`zero_pads` the padded cells are zeros taking part in the maxima (a ZeroPadding2D before a 'valid'
pooling, as `pooling.max_pool2d_zero_padded` runs it), visited in window order as on the padded copy.

`max_pool_2x2` is the inference kernel of the commonest window, 2x2 at stride 2 with every window inside
the image: four loads and three `max_or_nan` per vector, in the same order, with none of the general
loop's bounds, padding and offset branches (a U-Net's 128x128x32 block about 4x faster).
"""

from __future__ import annotations

import functools

import numpy as np

from . import compiled

if compiled.available():
    from .simd import full, index_of_max, load, max_or_nan, store_first, zeros

__all__ = ["lanes", "applies", "max_pool", "applies_2x2", "max_pool_2x2"]


lanes = compiled.float32_lanes      # channels per vector (0: no SIMD path)


def applies(x: np.ndarray, argmax_dtype) -> bool:
    """True for float32 input, compiled ops on with SIMD, and offsets that fit one byte."""
    return (x.dtype == np.float32 and compiled.active() and lanes() > 0
            and np.dtype(argmax_dtype) == np.uint8)


def max_pool(x: np.ndarray, geometry: tuple, out: np.ndarray, argmax: np.ndarray, track: bool,
             zero_pads: bool = False) -> None:
    """`out` = the maximum of each window of the C-contiguous NHWC block `x`, and if `track`
    `argmax` = the offset i * kw + j of its first maximum; geometry: (kh, kw, sh, sw, top, left).
    Padding never wins, or with `zero_pads` (not tracked) its cells are zeros that take part in
    the maximum in window order: a ZeroPadding2D then a 'valid' pooling, without the padded copy."""
    _kernel(lanes())(x, *geometry, out, argmax, track, zero_pads)


def applies_2x2(x: np.ndarray, argmax_dtype, geometry: tuple, out_hw, track: bool) -> bool:
    """`applies`, untracked, a 2x2 window at stride 2 with no padding before and every window inside `x`."""
    return (not track and applies(x, argmax_dtype) and tuple(geometry) == (2, 2, 2, 2, 0, 0)
            and 2 * out_hw[0] <= x.shape[1] and 2 * out_hw[1] <= x.shape[2])


def max_pool_2x2(x: np.ndarray, geometry: tuple, out: np.ndarray, argmax: np.ndarray, track: bool) -> None:
    """`max_pool` where `applies_2x2` (`geometry`, `argmax` and `track` as `max_pool` takes them, unused)."""
    _kernel_2x2(lanes())(x, out)


@functools.lru_cache(maxsize=None)
def _kernel_2x2(lanes: int):
    """The compiled 2x2 stride-2 kernel for `lanes` channels per vector."""

    @compiled.kernel
    def max_pool_2x2_block(x, out):
        """out[b, p, q] = the maximum of x[b, 2p:2p+2, 2q:2q+2] (cells in window order, NaN wins)."""
        n, h, w, c = x.shape
        oh, ow = out.shape[1], out.shape[2]
        x_flat, out_flat = x.reshape(-1), out.reshape(-1)
        vectors = c - c % lanes
        zero = zeros(lanes)
        row = w * c
        for b in range(n):
            for p in range(oh):
                top, at = (b * h + 2 * p) * row, (b * oh + p) * ow * c
                for q in range(ow):
                    cell = top + 2 * q * c
                    for c0 in range(0, vectors, lanes):
                        a = cell + c0
                        best = max_or_nan(load(x_flat, a, zero), load(x_flat, a + c, zero))
                        best = max_or_nan(max_or_nan(best, load(x_flat, a + row, zero)),
                                          load(x_flat, a + row + c, zero))
                        store_first(out_flat, at + q * c + c0, best, lanes)
                    for ch in range(vectors, c):
                        best_one = x_flat[cell + ch]
                        for value in (x_flat[cell + c + ch], x_flat[cell + row + ch], x_flat[cell + row + c + ch]):
                            if value > best_one or value != value:
                                best_one = value
                        out_flat[at + q * c + ch] = best_one

    return max_pool_2x2_block


@functools.lru_cache(maxsize=None)
def _kernel(lanes: int):
    """The compiled kernel for `lanes` channels per vector (the only closure constant: numba's disk
    cache keys on it)."""

    @compiled.kernel
    def max_pool_block(x, kh, kw, sh, sw, top, left, out, argmax, track, zero_pads):
        """Each window's maximum over its real cells (and with `zero_pads` its padded ones, as zeros),
        channels `lanes` at a time."""
        n, h, w, c = x.shape
        oh, ow = out.shape[1], out.shape[2]
        x_flat, out_flat, argmax_flat = x.reshape(-1), out.reshape(-1), argmax.reshape(-1)
        vectors = c - c % lanes
        zero = zeros(lanes)
        lowest = full(-np.float32(np.inf), zero)
        for b in range(n):
            for p in range(oh):
                row = p * sh - top
                i0, i1 = max(0, -row), min(kh, h - row)
                for q in range(ow):
                    col = q * sw - left
                    j0, j1 = max(0, -col), min(kw, w - col)
                    at = ((b * oh + p) * ow + q) * c
                    padded = zero_pads and (i1 - i0 < kh or j1 - j0 < kw)
                    for c0 in range(0, vectors, lanes):
                        best, first = lowest, zero
                        if padded:
                            for i in range(kh):
                                for j in range(kw):
                                    inside = i0 <= i < i1 and j0 <= j < j1
                                    cell = (load(x_flat, ((b * h + row + i) * w + col + j) * c + c0, lanes)
                                            if inside else zero)
                                    best = max_or_nan(best, cell)
                        else:
                            for i in range(i0, i1):
                                start = ((b * h + row + i) * w + col) * c + c0
                                for j in range(j0, j1):
                                    cell = load(x_flat, start + j * c, lanes)
                                    if track:
                                        first = index_of_max(best, cell, first,
                                                             full(np.float32(i * kw + j), zero))
                                    best = max_or_nan(best, cell)
                        store_first(out_flat, at + c0, best, lanes)
                        if track:
                            store_first(argmax_flat, at + c0, first, lanes)
                    for ch in range(vectors, c):
                        best_one, first_one = -np.float32(np.inf), 0
                        for i in range(0 if padded else i0, kh if padded else i1):
                            for j in range(0 if padded else j0, kw if padded else j1):
                                inside = i0 <= i < i1 and j0 <= j < j1
                                value = x_flat[((b * h + row + i) * w + col + j) * c + ch] if inside else np.float32(0)
                                if value > best_one or value != value:
                                    best_one, first_one = value, i * kw + j
                        out_flat[at + ch] = best_one
                        if track:
                            argmax_flat[at + ch] = first_one

    return max_pool_block
