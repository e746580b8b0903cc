"""The depthwise convolution's SIMD kernel (float32, NHWC, channel multiplier 1) with the inference
epilogue: a path of `fused_inference.depthwise_inference`.

Channels are innermost, so one vector holds `lanes` channels of one pixel (8 with AVX2, 16 with
AVX-512: numba's target decides, `simd.vector_bits`, never a CPU model).  Where the whole window
of 4 neighbouring output pixels lies inside the row, 4 vectors of accumulators stay in
registers over every tap and each tap's weights are loaded once for the 4 (the plain compiled
kernel adds into the output row in memory: a load and a store per tap); at the borders one
pixel at a time, its window clipped.  Channels past the last full vector are summed one by one.
Each pixel is then finished by the epilogue (`fused_inference._finish_row`) while in cache.
"""

from __future__ import annotations

import functools

import numpy as np

from . import compiled

if compiled.available():
    from .simd import fma, load, store_first, vector_bits, zeros

PIXELS = 4      # output pixels per tile in the interior


@functools.lru_cache(maxsize=None)
def lanes() -> int:
    """Channels per vector: the SIMD width numba compiles for, in float32s (0: no SIMD path); asked
    once (numba's target features take milliseconds to read)."""
    if not compiled.available():
        return 0
    bits = vector_bits()
    return bits // 32 if bits >= 256 else 0


def _kernels(lanes: int):
    """The compiled kernel for `lanes` channels per vector; only `lanes` is a closure constant (a closure
    over other values would defeat numba's disk cache)."""
    from .fused_inference import _finish_row

    @compiled.kernel
    def depthwise_tiles(x, w, bias, scale, shift, residual, limits, affine, has_residual, h, width, channels,
                        kh, kw, sh, sw, dh, dw, top, left, first, last, out):
        """Output rows first..last (flat over images and rows; `out` is (n * out_h, out_w * C)) of `x`
        (n * h, width * C) by `w` (kh * kw * C,); `residual` laid out as `out` (or one dummy row)."""
        oh, ow = out.shape[0] // (x.shape[0] // h), out.shape[1] // channels
        vectors = channels - channels % lanes
        zero = zeros(lanes)
        cstep, step = channels, sw * channels
        for flat in range(first, last):
            b, p = flat // oh, flat % oh
            row = p * sh - top
            i0, i1 = max(0, (-row + dh - 1) // dh), min(kh, (h - row + dh - 1) // dh)
            orow = out[flat]
            q = 0
            while q < ow:
                col = q * sw - left
                inside = (q + PIXELS <= ow and col >= 0
                          and (q + PIXELS - 1) * sw - left + (kw - 1) * dw < width)
                count = PIXELS if inside else 1
                j0 = 0 if inside else max(0, (-col + dw - 1) // dw)
                j1 = kw if inside else min(kw, (width - col + dw - 1) // dw)
                for c0 in range(0, vectors, lanes):
                    a0, a1, a2, a3 = zero, zero, zero, zero
                    for i in range(i0, i1):
                        xr = x[b * h + row + i * dh]
                        for j in range(j0, j1):
                            wv = load(w, (i * kw + j) * cstep + c0, lanes)
                            base = (col + j * dw) * cstep + c0
                            a0 = fma(load(xr, base, lanes), wv, a0)
                            if inside:
                                a1 = fma(load(xr, base + step, lanes), wv, a1)
                                a2 = fma(load(xr, base + 2 * step, lanes), wv, a2)
                                a3 = fma(load(xr, base + 3 * step, lanes), wv, a3)
                    at = q * cstep + c0
                    store_first(orow, at, a0, lanes)
                    if inside:
                        store_first(orow, at + cstep, a1, lanes)
                        store_first(orow, at + 2 * cstep, a2, lanes)
                        store_first(orow, at + 3 * cstep, a3, lanes)
                for k in range(count):          # the channels past the last full vector, one by one
                    pixel = col + k * sw
                    for ch in range(vectors, channels):
                        total = orow.dtype.type(0)
                        for i in range(i0, i1):
                            xr = x[b * h + row + i * dh]
                            for j in range(j0, j1):
                                total += xr[(pixel + j * dw) * cstep + ch] * w[(i * kw + j) * cstep + ch]
                        orow[(q + k) * cstep + ch] = total
                for k in range(count):
                    start = (q + k) * cstep
                    res = residual[flat][start:start + cstep] if has_residual else residual[0][0:cstep]
                    _finish_row(orow[start:start + cstep], bias, scale, shift, res, limits, affine, has_residual)
                q += count

    return depthwise_tiles


_KERNELS = {}


def depthwise_tiles(width: int):
    """The kernel for `width` channels per vector, compiled on first use."""
    if width not in _KERNELS:
        _KERNELS[width] = _kernels(width)
    return _KERNELS[width]


def applies(x, w, dtype) -> bool:
    """float32, multiplier 1, at least one full vector of channels, on the compiled path with SIMD."""
    width = lanes()
    return (compiled.active() and width > 0 and dtype == np.float32 and w.shape[3] == 1
            and x.shape[3] >= width)
