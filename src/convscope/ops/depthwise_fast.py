"""The depthwise convolution's SIMD kernel (float32, NHWC, channel multiplier 1) with the inference
epilogue: a path of `fused_inference.depthwise_inference`.

Channels are innermost, so one vector holds `lanes` channels of one pixel (8 with AVX2, 16 with
AVX-512: numba's target decides, `simd.vector_bits`, never a CPU model).  Where the whole window
of 4 neighbouring output pixels lies inside the row, 4 vectors of accumulators stay in
registers over every tap and each tap's weights are loaded once for the 4 (the plain compiled
kernel adds into the output row in memory: a load and a store per tap); at the borders one
pixel at a time, its window clipped.  Channels past the last full vector are summed one by one.
Each output row is then finished by the epilogue while in cache, a vector of channels at a time (the
operations of `epilogue.finish_channels`, in its order: the same numbers).  The 3x3 kernel finishes a
tile's vectors in registers before storing them instead, where the activations are clips (none, ReLU,
ReLU6) and the channels whole vectors: the row pass took a large share of its time.  That epilogue is
written out in the kernel's body: numba helpers taking and returning the vectors made it much slower.
Interior tiles (all three window rows inside the image) run a loop of their own for each stride, three
rows as a constant trip count and no branch inside it (the same sums, in the same order): with the border
cases' branches and a row range known only at run time in the same loop the kernel ran ~1.4x as long,
and one interior loop for both strides (the stride's branch inside it) ~1.15x: the two loops repeat the
epilogue on purpose (measurements: benchmarks/README.md, 'Measurements behind the code's choices').
"""

from __future__ import annotations

import numpy as np

from . import compiled
from .epilogue import finish_channels

if compiled.available():
    from .simd import add, clip, divide, fma, full, load, multiply, store_first, zeros

PIXELS = 4      # output pixels per tile in the interior


lanes = compiled.float32_lanes      # channels per vector (0: no SIMD path)


@compiled.kernel(inline=True)
def _activate(v, low, high, swish, zero, three, six):
    """`epilogue.activate_one` on a vector: the same operations in the same order."""
    v = clip(v, low, high)
    if swish:
        v = multiply(v, divide(clip(add(v, three), zero, six), six))
    return v


@compiled.kernel
def _finish_row(orow, res, bias, scale, shift, limits, affine, has_residual, channels, first_channel, stop_channel,
                zero, lanes):
    """`epilogue.finish_channels` on channels first..stop (`first` a whole vector's) of each pixel of one output
    row (`res`: its residual row), a vector of channels at a time (`zero`: a vector of `lanes` zeros), the
    channels past the last full vector one by one."""
    vectors = channels - channels % lanes
    three, six = full(np.float32(3), zero), full(np.float32(6), zero)
    low, high, low_after, high_after = (full(limits[0], zero), full(limits[1], zero),
                                        full(limits[3], zero), full(limits[4], zero))
    swish, swish_after = limits[2] != 0, limits[5] != 0
    for start in range(0, len(orow), channels):
        for c0 in range(first_channel, min(stop_channel, vectors), lanes):
            v = _activate(add(load(orow, start + c0, zero), load(bias, c0, zero)), low, high, swish, zero,
                          three, six)
            if affine:
                v = add(multiply(v, load(scale, c0, zero)), load(shift, c0, zero))
            if has_residual:
                v = add(v, load(res, start + c0, zero))
            store_first(orow, start + c0, _activate(v, low_after, high_after, swish_after, zero, three, six),
                        lanes)
        if vectors < stop_channel:
            tail = res[start + vectors:start + channels] if has_residual else res[vectors:channels]
            finish_channels(orow[start + vectors:start + channels], bias[vectors:], scale[vectors:],
                            shift[vectors:], tail, limits, affine, has_residual)


@compiled.kernel
def _tail_channels(x, w, orow, b, h, row, i0, i1, pixel, start, vectors, channels, kw, dh, dw, j0, j1):
    """The channels past the last full vector of one output pixel, summed one by one."""
    for ch in range(vectors, channels):
        total = orow.dtype.type(0)
        for i in range(i0, i1):
            xr = x[b * h + row + i * dh]
            for j in range(j0, j1):
                total += xr[(pixel + j * dw) * channels + ch] * w[(i * kw + j) * channels + ch]
        orow[start + ch] = total


@compiled.kernel(inline=True)
def _store_tile(orow, at, step, a0, a1, a2, a3, inside, lanes):
    """The tile's first pixel's vector at `at`; with `inside`, the next three `step` apart."""
    store_first(orow, at, a0, lanes)
    if inside:
        store_first(orow, at + step, a1, lanes)
        store_first(orow, at + 2 * step, a2, lanes)
        store_first(orow, at + 3 * step, a3, lanes)


def _kernels(lanes: int):
    """The compiled kernels for `lanes` channels per vector.  Only `lanes` (an int) is a closure constant:
    numba keys its disk cache on the pickled closure, and a kernel there pickles differently in every
    process (each process compiled them anew, costing time and ~20 MB, and added an entry to the cache;
    measurements: benchmarks/README.md, 'Measurements behind the code's choices')."""

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
                    _store_tile(orow, q * cstep + c0, cstep, a0, a1, a2, a3, inside, lanes)
                if vectors < channels:
                    for k in range(count):
                        _tail_channels(x, w, orow, b, h, row, i0, i1, col + k * sw, (q + k) * cstep, vectors, channels,
                                      kw, dh, dw, j0, j1)
                q += count
            _finish_row(orow, residual[flat] if has_residual else residual[0], bias, scale, shift, limits, affine,
                        has_residual, channels, 0, channels, zero, lanes)

    @compiled.kernel
    def depthwise3x3_tiles(x, w, bias, scale, shift, residual, limits, affine, has_residual, h, width, channels,
                           stride, top, left, first, last, out, first_channel, stop_channel):
        """`depthwise_tiles` for a 3x3 window, dilation 1 and the same stride 1 or 2 both ways (MobileNets'):
        in the interior each input vector of a window row is loaded once for the 4 output pixels that
        read it (6 loads for 12 products at stride 1, not 12); the sums in the same order.  With `fuse`
        the tile is finished before its store (the operations of `finish_channels`, in its order).  Only
        channels first..stop of each pixel (`first` a whole vector's; all: 0, channels), so that threads can
        share an image by channels."""
        oh, ow = out.shape[0] // (x.shape[0] // h), out.shape[1] // channels
        vectors = channels - channels % lanes
        zero = zeros(lanes)
        c, s = channels, stride
        fuse = limits[2] == 0 and limits[5] == 0 and vectors == channels
        low, high, low_after, high_after = (full(limits[0], zero), full(limits[1], zero),
                                            full(limits[3], zero), full(limits[4], zero))
        for flat in range(first, last):
            rrow = residual[flat] if has_residual else residual[0]
            b, p = flat // oh, flat % oh
            row = p * s - top
            i0, i1 = max(0, -row), min(3, h - row)
            orow = out[flat]
            q = 0
            while q < ow:
                col = q * s - left
                inside = q + PIXELS <= ow and col >= 0 and (q + PIXELS - 1) * s + 2 - left < width
                count = PIXELS if inside else 1
                j0, j1 = (0, 3) if inside else (max(0, -col), min(3, width - col))
                if fuse and inside and i0 == 0 and i1 == 3:     # the interior: three rows, no branch in the loop
                    if s == 1:
                        for c0 in range(first_channel, min(stop_channel, vectors), lanes):
                            a0, a1, a2, a3 = zero, zero, zero, zero
                            for i in range(3):
                                xr, wb, base = x[b * h + row + i], i * 3 * c + c0, col * c + c0
                                w0, w1, w2 = load(w, wb, lanes), load(w, wb + c, lanes), load(w, wb + 2 * c, lanes)
                                x0, x1 = load(xr, base, lanes), load(xr, base + c, lanes)
                                x2, x3 = load(xr, base + 2 * c, lanes), load(xr, base + 3 * c, lanes)
                                x4, x5 = load(xr, base + 4 * c, lanes), load(xr, base + 5 * c, lanes)
                                a0 = fma(x2, w2, fma(x1, w1, fma(x0, w0, a0)))
                                a1 = fma(x3, w2, fma(x2, w1, fma(x1, w0, a1)))
                                a2 = fma(x4, w2, fma(x3, w1, fma(x2, w0, a2)))
                                a3 = fma(x5, w2, fma(x4, w1, fma(x3, w0, a3)))
                            bv, at = load(bias, c0, lanes), q * c + c0
                            a0, a1 = clip(add(a0, bv), low, high), clip(add(a1, bv), low, high)
                            a2, a3 = clip(add(a2, bv), low, high), clip(add(a3, bv), low, high)
                            if affine:
                                sv, tv = load(scale, c0, lanes), load(shift, c0, lanes)
                                a0, a1 = add(multiply(a0, sv), tv), add(multiply(a1, sv), tv)
                                a2, a3 = add(multiply(a2, sv), tv), add(multiply(a3, sv), tv)
                            if has_residual:
                                a0, a1 = add(a0, load(rrow, at, lanes)), add(a1, load(rrow, at + c, lanes))
                                a2, a3 = add(a2, load(rrow, at + 2 * c, lanes)), add(a3, load(rrow, at + 3 * c, lanes))
                            store_first(orow, at, clip(a0, low_after, high_after), lanes)
                            store_first(orow, at + c, clip(a1, low_after, high_after), lanes)
                            store_first(orow, at + 2 * c, clip(a2, low_after, high_after), lanes)
                            store_first(orow, at + 3 * c, clip(a3, low_after, high_after), lanes)
                    else:
                        for c0 in range(first_channel, min(stop_channel, vectors), lanes):
                            a0, a1, a2, a3 = zero, zero, zero, zero
                            for i in range(3):
                                xr, wb, base = x[b * h + row + i], i * 3 * c + c0, col * c + c0
                                w0, w1, w2 = load(w, wb, lanes), load(w, wb + c, lanes), load(w, wb + 2 * c, lanes)
                                x0, x1 = load(xr, base, lanes), load(xr, base + c, lanes)
                                x2, x3 = load(xr, base + 2 * c, lanes), load(xr, base + 3 * c, lanes)
                                x4, x5 = load(xr, base + 4 * c, lanes), load(xr, base + 5 * c, lanes)
                                x6, x7 = load(xr, base + 6 * c, lanes), load(xr, base + 7 * c, lanes)
                                x8 = load(xr, base + 8 * c, lanes)
                                a0 = fma(x2, w2, fma(x1, w1, fma(x0, w0, a0)))
                                a1 = fma(x4, w2, fma(x3, w1, fma(x2, w0, a1)))
                                a2 = fma(x6, w2, fma(x5, w1, fma(x4, w0, a2)))
                                a3 = fma(x8, w2, fma(x7, w1, fma(x6, w0, a3)))
                            bv, at = load(bias, c0, lanes), q * c + c0
                            a0, a1 = clip(add(a0, bv), low, high), clip(add(a1, bv), low, high)
                            a2, a3 = clip(add(a2, bv), low, high), clip(add(a3, bv), low, high)
                            if affine:
                                sv, tv = load(scale, c0, lanes), load(shift, c0, lanes)
                                a0, a1 = add(multiply(a0, sv), tv), add(multiply(a1, sv), tv)
                                a2, a3 = add(multiply(a2, sv), tv), add(multiply(a3, sv), tv)
                            if has_residual:
                                a0, a1 = add(a0, load(rrow, at, lanes)), add(a1, load(rrow, at + c, lanes))
                                a2, a3 = add(a2, load(rrow, at + 2 * c, lanes)), add(a3, load(rrow, at + 3 * c, lanes))
                            store_first(orow, at, clip(a0, low_after, high_after), lanes)
                            store_first(orow, at + c, clip(a1, low_after, high_after), lanes)
                            store_first(orow, at + 2 * c, clip(a2, low_after, high_after), lanes)
                            store_first(orow, at + 3 * c, clip(a3, low_after, high_after), lanes)
                    q += count
                    continue
                for c0 in range(first_channel, min(stop_channel, vectors), lanes):
                    a0, a1, a2, a3 = zero, zero, zero, zero
                    for i in range(i0, i1):
                        xr = x[b * h + row + i]
                        wb, base = i * 3 * c + c0, col * c + c0
                        if inside:
                            w0, w1, w2 = load(w, wb, lanes), load(w, wb + c, lanes), load(w, wb + 2 * c, lanes)
                            x0, x1, x2 = load(xr, base, lanes), load(xr, base + c, lanes), load(xr, base + 2 * c, lanes)
                            a0 = fma(x2, w2, fma(x1, w1, fma(x0, w0, a0)))
                            if s == 1:
                                x3 = load(xr, base + 3 * c, lanes)
                                a1 = fma(x3, w2, fma(x2, w1, fma(x1, w0, a1)))
                                x4 = load(xr, base + 4 * c, lanes)
                                a2 = fma(x4, w2, fma(x3, w1, fma(x2, w0, a2)))
                                x5 = load(xr, base + 5 * c, lanes)
                                a3 = fma(x5, w2, fma(x4, w1, fma(x3, w0, a3)))
                            else:
                                x3, x4 = load(xr, base + 3 * c, lanes), load(xr, base + 4 * c, lanes)
                                a1 = fma(x4, w2, fma(x3, w1, fma(x2, w0, a1)))
                                x5, x6 = load(xr, base + 5 * c, lanes), load(xr, base + 6 * c, lanes)
                                a2 = fma(x6, w2, fma(x5, w1, fma(x4, w0, a2)))
                                x7, x8 = load(xr, base + 7 * c, lanes), load(xr, base + 8 * c, lanes)
                                a3 = fma(x8, w2, fma(x7, w1, fma(x6, w0, a3)))
                        else:
                            for j in range(j0, j1):
                                a0 = fma(load(xr, base + j * c, lanes), load(w, wb + j * c, lanes), a0)
                    if fuse:
                        bv = load(bias, c0, lanes)
                        a0, a1 = clip(add(a0, bv), low, high), clip(add(a1, bv), low, high)
                        a2, a3 = clip(add(a2, bv), low, high), clip(add(a3, bv), low, high)
                        if affine:
                            sv, tv = load(scale, c0, lanes), load(shift, c0, lanes)
                            a0, a1 = add(multiply(a0, sv), tv), add(multiply(a1, sv), tv)
                            a2, a3 = add(multiply(a2, sv), tv), add(multiply(a3, sv), tv)
                        if has_residual:
                            at = q * c + c0
                            a0 = add(a0, load(rrow, at, lanes))
                            if inside:
                                a1 = add(a1, load(rrow, at + c, lanes))
                                a2 = add(a2, load(rrow, at + 2 * c, lanes))
                                a3 = add(a3, load(rrow, at + 3 * c, lanes))
                        a0, a1 = clip(a0, low_after, high_after), clip(a1, low_after, high_after)
                        a2, a3 = clip(a2, low_after, high_after), clip(a3, low_after, high_after)
                    _store_tile(orow, q * c + c0, c, a0, a1, a2, a3, inside, lanes)
                if vectors < stop_channel:
                    for k in range(count):
                        _tail_channels(x, w, orow, b, h, row, i0, i1, col + k * s, (q + k) * c, vectors, channels, 3,
                                      1, 1, j0, j1)
                q += count
            if not fuse:
                _finish_row(orow, rrow, bias, scale, shift, limits, affine, has_residual, channels, first_channel,
                            stop_channel, zero, lanes)

    return depthwise_tiles, depthwise3x3_tiles


_KERNELS = {}


def _compiled(width: int):
    if width not in _KERNELS:
        _KERNELS[width] = _kernels(width)
    return _KERNELS[width]


def depthwise_tiles(width: int):
    """The kernel for `width` channels per vector, compiled on first use."""
    return _compiled(width)[0]


def depthwise3x3_tiles(width: int):
    """The 3x3 kernel (dilation 1, stride 1 or 2 both ways) for `width` channels per vector."""
    return _compiled(width)[1]


def applies_3x3(x, w, dtype, strides, dilations) -> bool:
    """`applies`, for a 3x3 window with dilation 1 and the same stride, 1 or 2, both ways."""
    return (applies(x, w, dtype) and w.shape[:2] == (3, 3) and tuple(dilations) == (1, 1)
            and strides[0] == strides[1] and strides[0] in (1, 2))


def applies(x, w, dtype) -> bool:
    """float32, multiplier 1, at least one full vector of channels, on the compiled path with SIMD."""
    width = lanes()
    return (compiled.active() and width > 0 and dtype == np.float32 and w.shape[3] == 1
            and x.shape[3] >= width)
