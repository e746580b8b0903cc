"""Winograd F(2x2, 3x3): a 3x3 stride-1 convolution with 2.25x fewer multiplications than im2col.

Each 4x4 tile of the padded input (tiles overlap by 2) gives a 2x2 block of output:
Y = A^T [(G g G^T) * (B^T d B)] A, the product taken element-wise over the 16 cells.
Over channels that product is a matrix product per cell, so a block of images costs
16 GEMMs of (tiles x in) @ (in x out) instead of one of (pixels x 9*in) @ (9*in x out)
(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015).  The input
and output transforms are compiled kernels (compiled path only).  Rounding differs from im2col's by a few float32
ulps of the result (the transforms add and subtract neighbouring values).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import compiled, winograd_simd
from .epilogue import epilogue_value
from .parallel import on_slices

MIN_CHANNELS = 16   # below this the 16 products are too thin to beat one im2col product
MIN_IMAGES = 8      # below this the 16 products per block are too small (seed 001's 14x14x75: slower than
                    # im2col at 1 image, faster at 8; measurements: benchmarks/README.md, 'Measurements behind
                    # the code's choices')
WIDE_CHANNELS = 128  # from this many input channels partly covered tiles still run faster than im2col + GEMM

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def applies(kernel_hw, strides, dilations, groups: int, in_channels: int, out_hw, images: int,
            min_images: Optional[int] = None) -> bool:
    """True for the convolutions this module computes (3x3, stride 1, no dilation, one group) where it
    is faster: enough input channels and images (`min_images`, else `MIN_IMAGES`: inference's bands need
    fewer), and whole tiles covering at most 15% more than the output (a 7x7 output needs 4x4 tiles of 2x2:
    64 outputs computed for 49; measured slower than im2col with 50 channels), or `WIDE_CHANNELS` input
    channels or more (ResNet50's 7x7x512 layers: still 256 multiplications per image and channel pair for
    im2col's 441, and the transforms small beside the products)."""
    tiles = -(-out_hw[0] // 2) * -(-out_hw[1] // 2)
    return (compiled.active() and tuple(kernel_hw) == (3, 3) and tuple(strides) == (1, 1)
            and tuple(dilations) == (1, 1) and groups == 1 and in_channels >= MIN_CHANNELS
            and images >= (MIN_IMAGES if min_images is None else min_images)
            and (out_hw[0] * out_hw[1] >= 0.85 * 4 * tiles or in_channels >= WIDE_CHANNELS))


def transform_filters(w: np.ndarray) -> np.ndarray:
    """G g G^T for each (in, out) pair: (16, in, out), computed in float64 and cast to w's dtype: on the
    compiled path one pass per slice of input channels and thread (`_filter_tiles`, into planes that do not
    share cache sets; the NumPy products took longer than the convolution itself for 512 -> 512 filters
    at batch 8: benchmarks/README.md), else two products."""
    kh, kw, channels, out_channels = w.shape
    if compiled.active() and (kh, kw) == (3, 3):
        u = _cell_planes(channels, out_channels, w.dtype)
        on_slices(channels, u.nbytes, lambda part: _filter_tiles(w[:, :, part], u[:, part]))
        return u
    return transform_filters_reference(w)


def transform_filters_reference(w: np.ndarray) -> np.ndarray:
    """`transform_filters` as two NumPy products (G on the rows, then on the columns)."""
    kh, kw, channels, out_channels = w.shape
    rows = (_G @ w.astype(np.float64).reshape(kh, -1)).reshape(4, kw, channels, out_channels)
    u = rows.transpose(0, 2, 3, 1) @ _G.T                       # (4, in, out, 4)
    return np.ascontiguousarray(u.transpose(0, 3, 1, 2).reshape(16, channels, out_channels), dtype=w.dtype)


@compiled.kernel(inline=True)
def _store_row(u, a, c, o, r0, r1, r2):
    """Row `a` of (G g) G^T from row `a` of G g: r0, (r0 + r1 + r2) / 2, (r0 - r1 + r2) / 2, r2."""
    u[4 * a, c, o] = r0
    u[4 * a + 1, c, o] = 0.5 * (r0 + r1 + r2)
    u[4 * a + 2, c, o] = 0.5 * (r0 - r1 + r2)
    u[4 * a + 3, c, o] = r2


@compiled.kernel
def _filter_tiles(w, u):
    """u[4 a + b, c, o] = (G g G^T)[a, b] for each 3x3 filter g = w[:, :, c, o], summed in float64
    (G g's rows: g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2, then the same along each row)."""
    for c in range(w.shape[2]):
        for o in range(w.shape[3]):
            a0, a1, a2 = np.float64(w[0, 0, c, o]), np.float64(w[0, 1, c, o]), np.float64(w[0, 2, c, o])
            b0, b1, b2 = np.float64(w[1, 0, c, o]), np.float64(w[1, 1, c, o]), np.float64(w[1, 2, c, o])
            c0, c1, c2 = np.float64(w[2, 0, c, o]), np.float64(w[2, 1, c, o]), np.float64(w[2, 2, c, o])
            _store_row(u, 0, c, o, a0, a1, a2)
            _store_row(u, 1, c, o, 0.5 * (a0 + b0 + c0), 0.5 * (a1 + b1 + c1), 0.5 * (a2 + b2 + c2))
            _store_row(u, 2, c, o, 0.5 * (a0 - b0 + c0), 0.5 * (a1 - b1 + c1), 0.5 * (a2 - b2 + c2))
            _store_row(u, 3, c, o, c0, c1, c2)


@compiled.kernel
def _input_tiles(x_pad, first, images, tiles_h, tiles_w, v):
    """v[k, tile, c] = (B^T d B)[k] for each 4x4 tile d of images first..first+images (channels innermost)."""
    for n in range(images):
        b = first + n
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                tile = (n * tiles_h + ty) * tiles_w + tx
                y, x = 2 * ty, 2 * tx
                for c in range(x_pad.shape[3]):
                    # B^T d: rows 0..3 of the tile combined, for each of its 4 columns
                    a0 = x_pad[b, y, x, c] - x_pad[b, y + 2, x, c]
                    a1 = x_pad[b, y, x + 1, c] - x_pad[b, y + 2, x + 1, c]
                    a2 = x_pad[b, y, x + 2, c] - x_pad[b, y + 2, x + 2, c]
                    a3 = x_pad[b, y, x + 3, c] - x_pad[b, y + 2, x + 3, c]
                    e0 = x_pad[b, y + 1, x, c] + x_pad[b, y + 2, x, c]
                    e1 = x_pad[b, y + 1, x + 1, c] + x_pad[b, y + 2, x + 1, c]
                    e2 = x_pad[b, y + 1, x + 2, c] + x_pad[b, y + 2, x + 2, c]
                    e3 = x_pad[b, y + 1, x + 3, c] + x_pad[b, y + 2, x + 3, c]
                    f0 = x_pad[b, y + 2, x, c] - x_pad[b, y + 1, x, c]
                    f1 = x_pad[b, y + 2, x + 1, c] - x_pad[b, y + 1, x + 1, c]
                    f2 = x_pad[b, y + 2, x + 2, c] - x_pad[b, y + 1, x + 2, c]
                    f3 = x_pad[b, y + 2, x + 3, c] - x_pad[b, y + 1, x + 3, c]
                    g0 = x_pad[b, y + 1, x, c] - x_pad[b, y + 3, x, c]
                    g1 = x_pad[b, y + 1, x + 1, c] - x_pad[b, y + 3, x + 1, c]
                    g2 = x_pad[b, y + 1, x + 2, c] - x_pad[b, y + 3, x + 2, c]
                    g3 = x_pad[b, y + 1, x + 3, c] - x_pad[b, y + 3, x + 3, c]
                    # (B^T d) B: the same combination along each row
                    v[0, tile, c], v[1, tile, c], v[2, tile, c], v[3, tile, c] = a0 - a2, a1 + a2, a2 - a1, a1 - a3
                    v[4, tile, c], v[5, tile, c], v[6, tile, c], v[7, tile, c] = e0 - e2, e1 + e2, e2 - e1, e1 - e3
                    v[8, tile, c], v[9, tile, c], v[10, tile, c], v[11, tile, c] = f0 - f2, f1 + f2, f2 - f1, f1 - f3
                    v[12, tile, c], v[13, tile, c], v[14, tile, c], v[15, tile, c] = (g0 - g2, g1 + g2, g2 - g1,
                                                                                      g1 - g3)


@compiled.kernel
def _output_tiles(m, images, tiles_h, tiles_w, out, finish, bias, relu, scale, shift, affine, relu_after):
    """out's 2x2 block of each tile = A^T m A (blocks past the output's edge are dropped); with `finish`,
    each value then goes through `epilogue_value` (bias, ReLU, affine map, ReLU) as it is written."""
    out_h, out_w, channels = out.shape[1], out.shape[2], out.shape[3]
    zero = out.dtype.type(0)
    for n in range(images):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                tile = (n * tiles_h + ty) * tiles_w + tx
                y, x = 2 * ty, 2 * tx
                for o in range(channels):
                    s0 = m[0, tile, o] + m[4, tile, o] + m[8, tile, o]
                    s1 = m[1, tile, o] + m[5, tile, o] + m[9, tile, o]
                    s2 = m[2, tile, o] + m[6, tile, o] + m[10, tile, o]
                    s3 = m[3, tile, o] + m[7, tile, o] + m[11, tile, o]
                    t0 = m[4, tile, o] - m[8, tile, o] - m[12, tile, o]
                    t1 = m[5, tile, o] - m[9, tile, o] - m[13, tile, o]
                    t2 = m[6, tile, o] - m[10, tile, o] - m[14, tile, o]
                    t3 = m[7, tile, o] - m[11, tile, o] - m[15, tile, o]
                    a, b, c, d = s0 + s1 + s2, s1 - s2 - s3, t0 + t1 + t2, t1 - t2 - t3
                    if finish:
                        a = epilogue_value(a, bias[o], relu, scale[o], shift[o], affine, relu_after, zero)
                        b = epilogue_value(b, bias[o], relu, scale[o], shift[o], affine, relu_after, zero)
                        c = epilogue_value(c, bias[o], relu, scale[o], shift[o], affine, relu_after, zero)
                        d = epilogue_value(d, bias[o], relu, scale[o], shift[o], affine, relu_after, zero)
                    out[n, y, x, o] = a
                    if x + 1 < out_w:
                        out[n, y, x + 1, o] = b
                    if y + 1 < out_h:
                        out[n, y + 1, x, o] = c
                        if x + 1 < out_w:
                            out[n, y + 1, x + 1, o] = d


# The transforms' paths, the first that applies runs: a SIMD vector of channels per step (`winograd_simd`),
# else the kernels above, one channel at a time (the reference the vector kernels are tested against).
_INPUT_PATHS = (
    ("simd", lambda x, v: winograd_simd.applies(x, v),
     lambda *args: winograd_simd.input_tiles(*args, _input_tiles)),
    ("scalar", lambda x, v: True, _input_tiles),
)
_OUTPUT_PATHS = (
    ("simd", lambda m, out: winograd_simd.applies(m, out),
     lambda *args: winograd_simd.output_tiles(*args, _output_tiles)),
    ("scalar", lambda m, out: True, _output_tiles),
)


def _transform_input(x_pad, first: int, images: int, tiles_h: int, tiles_w: int, v: np.ndarray) -> None:
    """`_input_tiles`' planes, by the first of `_INPUT_PATHS` that applies."""
    run = next(run for _, applies, run in _INPUT_PATHS if applies(x_pad, v))
    run(x_pad, first, images, tiles_h, tiles_w, v)


def _transform_output(m: np.ndarray, images: int, tiles_h: int, tiles_w: int, out: np.ndarray, *epilogue) -> None:
    """`_output_tiles`' blocks, by the first of `_OUTPUT_PATHS` that applies."""
    run = next(run for _, applies, run in _OUTPUT_PATHS if applies(m, out))
    run(m, images, tiles_h, tiles_w, out, *epilogue)


def _cell_planes(tiles: int, channels: int, dtype) -> np.ndarray:
    """An empty (16, tiles, channels) array whose 16 planes start 64 bytes apart modulo 4 KiB: planes a
    multiple of 4 KiB apart share cache sets, and the kernels' 16 streams then evict each other
    (measured many times slower on 32 images of 7x7x50; measurements: benchmarks/README.md,
    'Measurements behind the code's choices')."""
    itemsize = np.dtype(dtype).itemsize
    plane = -(-tiles * channels * itemsize // 4096) * 4096 + 64 * (1 + (itemsize == 8))
    plane //= itemsize
    buffer = np.empty(16 * plane, dtype=dtype)
    return np.lib.stride_tricks.as_strided(buffer, (16, tiles, channels),
                                           (plane * itemsize, channels * itemsize, itemsize))


def tile_input(x_pad: np.ndarray, out_hw) -> np.ndarray:
    """`x_pad` with the zero row/column that odd output sizes need to make whole tiles."""
    rows, cols = 2 * -(-out_hw[0] // 2) + 2, 2 * -(-out_hw[1] // 2) + 2
    if x_pad.shape[1:3] == (rows, cols):
        return x_pad
    tiled = np.zeros((x_pad.shape[0], rows, cols, x_pad.shape[3]), dtype=x_pad.dtype)
    tiled[:, :min(rows, x_pad.shape[1]), :min(cols, x_pad.shape[2])] = x_pad[:, :rows, :cols]
    return tiled


def conv_block(x_pad: np.ndarray, u: np.ndarray, out_block: np.ndarray, first: int) -> None:
    """Images first..first+len(out_block) of a 3x3 stride-1 convolution of `x_pad` (from `tile_input`),
    written into `out_block`; `u` from `transform_filters`."""
    images, out_h, out_w = out_block.shape[:3]
    tiles_h, tiles_w = -(-out_h // 2), -(-out_w // 2)
    tiles = images * tiles_h * tiles_w
    channels, out_channels = u.shape[1], u.shape[2]
    v = _cell_planes(tiles, channels, x_pad.dtype)
    _transform_input(x_pad, first, images, tiles_h, tiles_w, v)
    m = np.matmul(v, u, out=_cell_planes(tiles, out_channels, x_pad.dtype))   # 16 (tiles, in) @ (in, out)
    unused = np.zeros(1, dtype=out_block.dtype)
    _transform_output(m, images, tiles_h, tiles_w, out_block, False, unused, False, unused, unused, False, False)


def conv_band(tiled: np.ndarray, images: slice, tile_rows: slice, u: np.ndarray, epilogue: tuple,
              out: np.ndarray) -> None:
    """The output rows 2 * tile_rows of images `images` of a 3x3 stride-1 convolution of `tiled` (from
    `tile_input`) written into `out` (those images and rows, possibly a slice of the channels: `u` then holds
    the same slice of `transform_filters`' columns), each value finished by `epilogue`: (finish, bias, relu,
    scale, shift, affine, relu_after) as `_output_tiles` takes them."""
    band = tiled[images, 2 * tile_rows.start:2 * tile_rows.stop + 2]
    images_count, tiles_h, tiles_w = band.shape[0], tile_rows.stop - tile_rows.start, (tiled.shape[2] - 2) // 2
    tiles = images_count * tiles_h * tiles_w
    v = _cell_planes(tiles, u.shape[1], tiled.dtype)
    _transform_input(band, 0, images_count, tiles_h, tiles_w, v)
    m = np.matmul(v, u, out=_cell_planes(tiles, u.shape[2], tiled.dtype))
    _transform_output(m, images_count, tiles_h, tiles_w, out, *epilogue)
