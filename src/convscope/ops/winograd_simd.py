"""Winograd F(2x2, 3x3)'s input and output transforms on a SIMD vector of channels per step.

`winograd._input_tiles` and `_output_tiles` run one channel at a time: their sixteen input or
output planes are sixteen store streams the compiler does not vectorize (it cannot rule out that
they overlap the input), and on a U-Net's 128x128x64 band the input transform took as long as the
sixteen products.  Here each tile's sixteen loads and stores move `lanes` channels at a time
(`ops/simd.py`), with the same additions in the same order, so the transforms, and the epilogue
(bias, ReLU, an inference batch norm's map, ReLU) the output transform applies, are the scalar
kernels' bit for bit.  Channels left over after whole vectors run through the scalar kernels, on
a slice of the channels.  Float32 only; the kernels walk bands of rows and slices of channels through
their strides, with no copy.
"""

from __future__ import annotations

import functools

import numpy as np

from . import compiled

if compiled.available():
    from .simd import add, epilogue, load, store_first, subtract, zeros

__all__ = ["lanes", "applies", "input_tiles", "output_tiles"]


lanes = compiled.float32_lanes      # channels per vector (0: no SIMD path)


def applies(*arrays: np.ndarray) -> bool:
    """True for float32 arrays whose last axis is contiguous and holds at least one vector (their other
    strides positive), compiled ops on with SIMD."""
    return (compiled.active() and lanes() > 0
            and all(a.dtype == np.float32 and a.shape[-1] >= lanes() and a.strides[-1] == 4 and min(a.strides) > 0
                    for a in arrays))


def input_tiles(x_pad: np.ndarray, first: int, images: int, tiles_h: int, tiles_w: int, v: np.ndarray,
                scalar) -> None:
    """`winograd._input_tiles`' v[k, tile, c] (B^T d B) for the whole vectors of channels, `scalar` (that
    kernel) for the channels after them."""
    x = x_pad[first:first + images]
    count = x.shape[3] - x.shape[3] % lanes()
    _kernels(lanes())[0](x, tiles_h, tiles_w, count, v)
    if count < x.shape[3]:
        scalar(x[..., count:], 0, images, tiles_h, tiles_w, v[:, :, count:])


def output_tiles(m: np.ndarray, images: int, tiles_h: int, tiles_w: int, out: np.ndarray, finish, bias, relu_first,
                 scale, shift, affine, relu_after, scalar) -> None:
    """`winograd._output_tiles` (A^T m A, then with `finish` the epilogue) for the whole vectors of channels,
    `scalar` (that kernel) for the channels after them."""
    count = out.shape[3] - out.shape[3] % lanes()
    if finish:                             # the kernel reads whole vectors of them: contiguous
        bias, scale, shift = (np.ascontiguousarray(value) for value in (bias, scale, shift))
    _kernels(lanes())[1](m, tiles_h, tiles_w, count, out, finish, bias, relu_first, scale, shift, affine, relu_after)
    if count < out.shape[3]:
        tail = slice(count, None)
        bias, scale, shift = (value[tail] for value in (bias, scale, shift)) if finish else (bias, scale, shift)
        scalar(m[:, :, tail], images, tiles_h, tiles_w, out[..., tail], finish, bias, relu_first, scale, shift,
               affine, relu_after)


@functools.lru_cache(maxsize=None)
def _kernels(lanes: int):
    """The compiled (input, output) transforms for `lanes` channels per vector (the only closure constant:
    numba's disk cache keys on it)."""

    @compiled.kernel(inline=True)
    def store_row(v, at, plane, h0, h1, h2, h3):
        """One row of (B^T d) B, cells at + k * plane (k = 0..3)."""
        store_first(v, at, subtract(h0, h2), lanes)
        store_first(v, at + plane, add(h1, h2), lanes)
        store_first(v, at + 2 * plane, subtract(h2, h1), lanes)
        store_first(v, at + 3 * plane, subtract(h1, h3), lanes)

    @compiled.kernel
    def input_kernel(x, tiles_h, tiles_w, count, v):
        """v[k, tile, c] = (B^T d B)[k] of each 4x4 tile d of the images x, channels c < count."""
        image_step, row_step, pixel_step = x.strides[0] // 4, x.strides[1] // 4, x.strides[2] // 4
        plane, tile_step = v.strides[0] // 4, v.strides[1] // 4
        zero = zeros(lanes)
        for n in range(x.shape[0]):
            for ty in range(tiles_h):
                for tx in range(tiles_w):
                    tile = (n * tiles_h + ty) * tiles_w + tx
                    start = n * image_step + 2 * ty * row_step + 2 * tx * pixel_step
                    for c in range(0, count, lanes):
                        r0 = start + c
                        r1, r2, r3 = r0 + row_step, r0 + 2 * row_step, r0 + 3 * row_step
                        p1, p2, p3 = pixel_step, 2 * pixel_step, 3 * pixel_step
                        # B^T d: rows 0..3 of the tile combined, for each of its 4 columns
                        d20, d21 = load(x, r2, zero), load(x, r2 + p1, zero)
                        d22, d23 = load(x, r2 + p2, zero), load(x, r2 + p3, zero)
                        d10, d11 = load(x, r1, zero), load(x, r1 + p1, zero)
                        d12, d13 = load(x, r1 + p2, zero), load(x, r1 + p3, zero)
                        a0, a1 = subtract(load(x, r0, zero), d20), subtract(load(x, r0 + p1, zero), d21)
                        a2, a3 = subtract(load(x, r0 + p2, zero), d22), subtract(load(x, r0 + p3, zero), d23)
                        e0, e1, e2, e3 = add(d10, d20), add(d11, d21), add(d12, d22), add(d13, d23)
                        f0, f1, f2, f3 = subtract(d20, d10), subtract(d21, d11), subtract(d22, d12), subtract(d23, d13)
                        g0, g1 = subtract(d10, load(x, r3, zero)), subtract(d11, load(x, r3 + p1, zero))
                        g2, g3 = subtract(d12, load(x, r3 + p2, zero)), subtract(d13, load(x, r3 + p3, zero))
                        # (B^T d) B: the same combination along each row
                        at = tile * tile_step + c
                        store_row(v, at, plane, a0, a1, a2, a3)
                        store_row(v, at + 4 * plane, plane, e0, e1, e2, e3)
                        store_row(v, at + 8 * plane, plane, f0, f1, f2, f3)
                        store_row(v, at + 12 * plane, plane, g0, g1, g2, g3)

    @compiled.kernel
    def output_kernel(m, tiles_h, tiles_w, count, out, finish, bias, relu_first, scale, shift, affine, relu_after):
        """Each tile's 2x2 block of out (channels o < count) = A^T m A, finished as `_output_tiles` does."""
        plane, tile_step = m.strides[0] // 4, m.strides[1] // 4
        image_step, row_step, pixel_step = out.strides[0] // 4, out.strides[1] // 4, out.strides[2] // 4
        out_h, out_w = out.shape[1], out.shape[2]
        zero = zeros(lanes)
        for n in range(out.shape[0]):
            for ty in range(tiles_h):
                for tx in range(tiles_w):
                    tile = (n * tiles_h + ty) * tiles_w + tx
                    y, x = 2 * ty, 2 * tx
                    right, below = x + 1 < out_w, y + 1 < out_h
                    target = n * image_step + y * row_step + x * pixel_step
                    for o in range(0, count, lanes):
                        at = tile * tile_step + o
                        m4, m5 = load(m, at + 4 * plane, zero), load(m, at + 5 * plane, zero)
                        m6, m7 = load(m, at + 6 * plane, zero), load(m, at + 7 * plane, zero)
                        m8, m9 = load(m, at + 8 * plane, zero), load(m, at + 9 * plane, zero)
                        m10, m11 = load(m, at + 10 * plane, zero), load(m, at + 11 * plane, zero)
                        s0 = add(add(load(m, at, zero), m4), m8)
                        s1 = add(add(load(m, at + plane, zero), m5), m9)
                        s2 = add(add(load(m, at + 2 * plane, zero), m6), m10)
                        s3 = add(add(load(m, at + 3 * plane, zero), m7), m11)
                        t0 = subtract(subtract(m4, m8), load(m, at + 12 * plane, zero))
                        t1 = subtract(subtract(m5, m9), load(m, at + 13 * plane, zero))
                        t2 = subtract(subtract(m6, m10), load(m, at + 14 * plane, zero))
                        t3 = subtract(subtract(m7, m11), load(m, at + 15 * plane, zero))
                        a, b = add(add(s0, s1), s2), subtract(subtract(s1, s2), s3)
                        c, d = add(add(t0, t1), t2), subtract(subtract(t1, t2), t3)
                        if finish:
                            bv, sv, hv = load(bias, o, zero), load(scale, o, zero), load(shift, o, zero)
                            a = epilogue(a, bv, relu_first, sv, hv, affine, relu_after)
                            b = epilogue(b, bv, relu_first, sv, hv, affine, relu_after)
                            c = epilogue(c, bv, relu_first, sv, hv, affine, relu_after)
                            d = epilogue(d, bv, relu_first, sv, hv, affine, relu_after)
                        here = target + o
                        store_first(out, here, a, lanes)
                        if right:
                            store_first(out, here + pixel_step, b, lanes)
                        if below:
                            store_first(out, here + row_step, c, lanes)
                            if right:
                                store_first(out, here + row_step + pixel_step, d, lanes)

    return input_kernel, output_kernel
