"""Direct convolution of wide layers on one image: tiles of 6 output pixels x 64 filters, a tap's filters in L1.

At batch 1, a 3x3 convolution of 128-512 channels on a small image (ResNet50's 28x28, 14x14 and 7x7 stages, a
U-Net's 8x8 to 32x32 ones) is a product of a few hundred rows, which im2col + GEMM and Winograd split among the
threads far under the machine's peak.  Here each thread claims blocks of 64 filters (four 512-bit vectors) and,
for each tap and chunk of input channels in turn (`panel_channels`: 128, or 64 where L1 holds less than 48 KB), copies
that slice of the filters into a contiguous panel of its own (32 or 16 KB; read from the filters as they lie, a row
every 1-2 KB, the lines fall into a few of L1's sets and leave it: with the copy it ran 0.79-1.02x the time) and sums
it over every output pixel of the image, in tiles of `PIXELS` (6) pixels: 24 of the 32 registers, 4 filter loads and
6 broadcasts per 24 multiply-adds (as ONNX Runtime's NCHWc kernels; tiles of 12 pixels x 32 filters, 2 loads and 12
broadcasts, ran 1.04-1.14x the time).  The sums wait in a scratch block of the thread's between chunks, then are
finished (bias, ReLU, an inference batch norm's map, a residual, ReLU, a cap) and stored.

Output pixels are numbered along the output's rows (q = oy * out_w + ox), so a tile may end one row and start the
next: each of its 6 pixels' inputs is found apart (`_base`), once per tile, tap and chunk.  (Numbered along the
padded image's rows instead, tap (i, j)'s input for pixel q is padded pixel q + i * dh * padded width + j * dw for
every q, but the columns past the output's width are summed and dropped: 2 of 9 on a 7-wide image; that ran
1.05-1.14x the time.)  A block of filters is split in ranges of pixels too where the blocks do not share evenly
among the threads.

Stride 1, one group, float32, output channels in whole blocks of 64, compiled code on a CPU that runs 512-bit
units whole (`direct.full_width_units`); each output's sum is taken in the order (tap, chunk of channels,
channel), so it differs from the GEMM's by float32 rounding only.  The kernel takes any kernel size and a batch
(each image's blocks are items), but runs on 3x3 convolutions of one image only (`applies`): at 4-32 images
Winograd's bands ran faster (it took 1.24-2.23x their time; at 2 images 0.87-0.96x, unused).  It also runs the 1x1
convolutions of one image of a few hundred pixels (`pointwise_applies`: `fused_inference`'s "wide_1x1", ResNet50's
14x14 stage at batch 1), whose matrix rows lie 1-8 KB apart as the 3x3 filters' do, with a residual added before
the last ReLU (a block's end).  Where it runs was measured against the paths it replaces: benchmarks/README.md,
'Measurements behind the code's choices'.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import numpy as np

from . import compiled, direct
from .conv import padded_input
from .parallel import run_claimed, worker_count

if compiled.available():
    from .claims import claim
    from .simd import add, broadcast, clip, epilogue, fma, full, load, store_first, zeros

__all__ = ["BLOCK", "CHUNK", "SMALL_L1_CHUNK", "MIN_CHANNELS", "MAX_CHANNELS", "MAX_OUT_CHANNELS", "MAX_PIXELS",
           "MAX_PIXELS_ONE_BLOCK", "MAX_POINTWISE_PIXELS", "MAX_POINTWISE_CHANNELS", "applies", "pointwise_applies",
           "panel_channels", "l1_data_bytes", "forward", "conv_images"]

LANES = 16              # float32 lanes of a 512-bit vector
BLOCK = 4 * LANES       # filters per tile (four vectors)
PIXELS = 6              # output pixels per tile: 24 vectors of sums, 4 of filters, of the 32 registers
MIN_PIXELS_PER_THREAD = 24      # output pixels per thread at least (measured from two tiles of 12 per thread)
CHUNK = 128             # input channels per slice of a tap's filters (a 32 KB panel, in L1 while summed) where
SMALL_L1_CHUNK = 64     # the L1 data cache holds `CHUNK_L1_BYTES`, else this many (16 KB): 64 ran 1.01-1.03x the
CHUNK_L1_BYTES = 48 << 10   # time of 128 with 48 KB (a 32 KB panel would fill a 32 KB L1: Skylake-SP's)
MIN_CHANNELS = 128      # fewer input channels: the direct kernel, Winograd or im2col run as fast or faster
MAX_CHANNELS = 512      # input and output channels measured (ResNet50's 7x7 512 -> 512: 0.89x im2col + GEMM's time)
MAX_OUT_CHANNELS = 512
MAX_PIXELS = 1024       # output pixels (one image) up to which it ran faster than Winograd at 128 channels; from
                        # 256 Winograd's tiles, where they apply, ran as fast or faster (32x32 256 -> 128 level,
                        # 28x28 256 -> 256 in 0.89-0.93x the kernel's time)
MAX_PIXELS_ONE_BLOCK = 4096     # ... and up to this many for one block of filters (the threads share its pixels):
                                # 128 -> 64 at 40x40 to 64x64 (a U-Net's) 0.73-0.89x Winograd's time (56x56 128 ->
                                # 128, two blocks, each thread reading the whole image: 1.17x)
MAX_POINTWISE_PIXELS = 256      # 1x1 convolutions (`pointwise_applies`) up to this many output pixels: ResNet50's 14x14
                                # ones ran in 0.78-0.95x the time of the threads' columns by BLAS in the model, 7x7
                                # ones of a matrix under 1 MB 0.67-0.94x (those of 1 MB or more stay `dense_tiles`'
                                # columns: in the model, from memory, level or slower here); 784 pixels level, 3136
                                # slower
MAX_POINTWISE_CHANNELS = 2048   # input and output channels of the 1x1 convolutions measured (ResNet50's 512 -> 2048)


def applies(ctx, winograd: bool) -> bool:
    """True for an inference convolution of one image taken here (the module's conditions: a 3x3 kernel, the one
    measured; `MIN_PIXELS_PER_THREAD` output pixels per thread); `winograd`: whether Winograd's bands would take it,
    which keep the convolutions over `MIN_CHANNELS` input channels."""
    kh, kw, channels, out_channels = ctx["filters"].shape
    images, (oh, ow) = ctx["input_shape"][0], ctx["out_hw"]
    return (ctx["dtype"] == np.float32 and ctx["groups"] == 1 and tuple(ctx["strides"]) == (1, 1)
            and (kh, kw) == (3, 3) and channels <= MAX_CHANNELS and out_channels <= MAX_OUT_CHANNELS
            and _fits(images, oh * ow, channels, out_channels,
                      MAX_PIXELS_ONE_BLOCK if out_channels == BLOCK else MAX_PIXELS)
            and not (winograd and channels > MIN_CHANNELS))


def pointwise_applies(images: int, pixels: int, channels: int, out_channels: int) -> bool:
    """True for a 1x1 convolution's product (of `pixels` output pixels: every s-th input pixel with strides s) taken
    here as a convolution of one image (`conv_images` on its pixels, a 1x1 kernel): one image of at most
    `MAX_POINTWISE_PIXELS` pixels (a product of a few hundred rows, which the threads' columns ran far under the
    peak), `MIN_CHANNELS` to `MAX_POINTWISE_CHANNELS` channels, the compiled tiles' other conditions."""
    return (channels <= MAX_POINTWISE_CHANNELS and out_channels <= MAX_POINTWISE_CHANNELS
            and _fits(images, pixels, channels, out_channels, MAX_POINTWISE_PIXELS))


def _fits(images: int, pixels: int, channels: int, out_channels: int, max_pixels: int) -> bool:
    """Both rules' common conditions: compiled code on a CPU whose 512-bit units run whole (the tiles' width,
    `direct.full_width_units`), one image of `MIN_PIXELS_PER_THREAD` output pixels per thread to `max_pixels`,
    `MIN_CHANNELS` input channels at least, output channels in whole blocks."""
    return (compiled.active() and direct.full_width_units() and images == 1 and channels >= MIN_CHANNELS
            and out_channels % BLOCK == 0 and MIN_PIXELS_PER_THREAD * worker_count() <= pixels <= max_pixels)


@functools.lru_cache(maxsize=1)
def panel_channels() -> int:
    """Input channels per panel: `CHUNK` where the L1 data cache holds `CHUNK_L1_BYTES` or more (Linux reports it in
    /sys), else `SMALL_L1_CHUNK`."""
    return CHUNK if l1_data_bytes() >= CHUNK_L1_BYTES else SMALL_L1_CHUNK


def l1_data_bytes(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """The first CPU's level-1 data cache in bytes, as Linux's sysfs (`root`) reports it (0 where it does not; the
    first CPU's stands for all: the CPUs whose 512-bit units run whole have cores of one kind)."""
    try:
        for index in sorted(root.glob("index*")):
            if (index / "level").read_text().strip() == "1" and (index / "type").read_text().strip() in ("Data",
                                                                                                        "Unified"):
                size = (index / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return 0


def forward(ctx, epilogue: tuple, out: np.ndarray) -> None:
    """`out` (1, oh, ow, filters) = the convolution of the context's image, finished by `epilogue` (as
    `conv_split.epilogue_tuple` gives it)."""
    x_pad = np.ascontiguousarray(padded_input(ctx), dtype=np.float32)
    conv_images(x_pad, ctx["filters"], ctx["dilations"], out, epilogue)


def conv_images(x_pad: np.ndarray, filters: np.ndarray, dilations, out: np.ndarray, epilogue: tuple,
                residual: Optional[np.ndarray] = None) -> None:
    """out (images, oh, ow, filters) = the epilogue of the stride-1 convolution of the padded images `x_pad`
    (images, hp, wp, c), its work claimed by the threads: each image's blocks of `BLOCK` filters, each in as many
    ranges of pixels (of a tile at least) as make the items share evenly; under `direct.SMALL_WORK` multiply-adds,
    all on the calling thread.  `epilogue` as `conv_split.epilogue_tuple` gives it; `residual` (out's shape), if
    given, is added after its batch norm's map, before its last ReLU and its cap (a ResNet block's end; the cap is
    always last)."""
    _check(x_pad, filters, dilations, out, epilogue, residual)
    kh, kw, channels, out_channels = filters.shape
    images, oh, ow = out.shape[:3]
    row = x_pad.shape[2]
    offsets = (np.arange(kh, dtype=np.int64)[:, None] * (dilations[0] * row)
               + np.arange(kw, dtype=np.int64)[None, :] * dilations[1]).ravel()
    pixels = oh * ow
    alone = images * oh * ow * filters.size < direct.SMALL_WORK   # too little to hand out: all the calling thread's
    blocks, workers = out_channels // BLOCK, 1 if alone else worker_count()
    parts = 1 if images * blocks % workers == 0 else max(1, min(workers, pixels // PIXELS))
    _, bias, relu, scale, shift, affine, relu_after, cap = epilogue
    values = tuple(np.ascontiguousarray(v, dtype=np.float32) for v in (bias, scale, shift))
    xf, wf = x_pad.reshape(images, -1), np.ascontiguousarray(filters, dtype=np.float32).reshape(-1)
    of = out.reshape(images, -1)
    rf = of if residual is None else residual.reshape(images, -1)       # (`of` a placeholder, never read)
    low = np.float32(0 if relu_after else -np.inf)          # the last ReLU as a clip from below (the same bits)
    chunk = panel_channels()
    run_claimed(images * blocks * parts, lambda counter: _claimed_blocks(       # each thread its sums and panel
        xf, wf, np.empty(-(-pixels // parts) * BLOCK, np.float32), np.empty(chunk * BLOCK, np.float32), offsets,
        channels, out_channels, chunk, pixels, parts, row, ow, of, rf, residual is not None, counter, *values, relu,
        affine, low, np.float32(cap)), alone=alone)


def _check(x_pad: np.ndarray, filters: np.ndarray, dilations, out: np.ndarray, epilogue: tuple,
           residual: Optional[np.ndarray] = None) -> None:
    """`conv_images`' arguments: one stride-1 convolution's arrays, C-contiguous float32, whole blocks of filters,
    a tile of output pixels at least, the epilogue's vectors one value per filter, the
    residual (if any) of the output's shape."""
    shapes = f"`x_pad` {np.shape(x_pad)}, `filters` {np.shape(filters)} and `out` {np.shape(out)}"
    if (not all(isinstance(a, np.ndarray) and a.ndim == 4 and a.size for a in (x_pad, filters, out))
            or len(dilations) != 2 or not all(int(d) == d >= 1 for d in dilations)):
        raise ValueError(f"direct_wide: arguments {shapes} must be non-empty 4-D arrays and `dilations` a pair of "
                         f"positive ints, got dilations {dilations!r}")
    kh, kw, channels, out_channels = filters.shape
    (oh, ow), (hp, wp) = out.shape[1:3], x_pad.shape[1:3]
    fits = (x_pad.shape[::3] == (len(out), channels) and out.shape[3] == out_channels
            and hp == oh + (kh - 1) * dilations[0] and wp >= ow + (kw - 1) * dilations[1])
    if not fits or out_channels % BLOCK or oh * ow < PIXELS:
        raise ValueError(f"direct_wide: arguments {shapes} must be one stride-1 convolution's (dilations "
                         f"{tuple(dilations)}), with filters in blocks of {BLOCK} and at least {PIXELS} output pixels")
    if residual is not None and (not isinstance(residual, np.ndarray) or residual.shape != out.shape):
        raise ValueError(f"direct_wide: argument `residual` must have the output's shape {out.shape}, got "
                         f"{np.shape(residual)}")
    for name, array in (("x_pad", x_pad), ("out", out), ("residual", out if residual is None else residual)):
        if array.dtype != np.float32 or not array.flags.c_contiguous:
            raise ValueError(f"direct_wide: argument `{name}` must be C-contiguous float32, got {array.dtype} "
                             f"with strides {array.strides}")
    if len(epilogue) != 8 or any(np.shape(v) != (out_channels,) for v in (epilogue[1], epilogue[3], epilogue[4])):
        raise ValueError(f"direct_wide: argument `epilogue` must be conv_split.epilogue_tuple's, its bias, scale "
                         f"and shift {out_channels} values each, got {len(epilogue)} items")


if compiled.available():
    @compiled.kernel
    def _claimed_blocks(xf, wf, sums, panel, offsets, channels, out_channels, chunk, pixels, parts, row, out_w, of,
                        rf, has_residual, counter, bias, scale, shift, relu, affine, low, cap):
        """The items claimed from `counter`: item k is image k // (blocks * parts)'s block of filters k // parts %
        blocks over pixel range k % parts, summed into `sums`, then finished into its image of `of` (with its
        image of the residual `rf` where `has_residual`)."""
        per_image = out_channels // BLOCK * parts
        while True:
            item = claim(counter, len(xf) * per_image)
            if item >= len(xf) * per_image:
                break
            n, column, part = item // per_image, item % per_image // parts * BLOCK, item % parts
            first, stop = pixels * part // parts, pixels * (part + 1) // parts
            _block_sums(xf[n], wf, sums, panel, offsets, channels, out_channels, chunk, column, first, stop, row,
                        out_w)
            _finish_block(sums, of[n], rf[n], has_residual, first, stop, out_channels, column, bias, scale, shift,
                          relu, affine, low, cap)

    @compiled.kernel
    def _block_sums(xf, wf, sums, panel, offsets, channels, out_channels, chunk, column, first, stop, row, out_w):
        """sums[(q - first) * BLOCK + f] = sum over taps t and channels c of xf[_base(q, ...) + c] * wf[(t * channels
        + c) * out_channels + column + f], for output pixels q in first..stop - 1 (at least `PIXELS`; `row`: the padded
        image's width, `out_w` the output's; `offsets[t]`: tap t's shift in padded pixels): each tap's `chunk` of
        channels copied into `panel`, then summed over every tile of pixels, the last tile
        overlapping the one before it (its overlapping pixels' sums not added twice)."""
        zero = zeros(LANES)
        count = stop - first
        for t in range(offsets.shape[0]):
            for start in range(0, channels, chunk):
                depth = min(chunk, channels - start)
                at = (t * channels + start) * out_channels + column
                for k in range(depth):
                    for v in range(0, BLOCK, LANES):
                        store_first(panel, k * BLOCK + v, load(wf, at + k * out_channels + v, zero), LANES)
                q = 0
                while q < count:
                    tile = min(q, count - PIXELS)
                    p = first + tile
                    s = _tile_sums(xf, panel, _base(p, row, out_w, offsets[t], channels, start),
                                   _base(p + 1, row, out_w, offsets[t], channels, start),
                                   _base(p + 2, row, out_w, offsets[t], channels, start),
                                   _base(p + 3, row, out_w, offsets[t], channels, start),
                                   _base(p + 4, row, out_w, offsets[t], channels, start),
                                   _base(p + 5, row, out_w, offsets[t], channels, start), depth, zero)
                    for i in range(q - tile, PIXELS):
                        for v in range(4):
                            a = (tile + i) * BLOCK + v * LANES
                            if t == 0 and start == 0:
                                store_first(sums, a, s[4 * i + v], LANES)
                            else:
                                store_first(sums, a, add(load(sums, a, zero), s[4 * i + v]), LANES)
                    q += PIXELS

    @compiled.kernel(inline=True)
    def _base(q, row, out_w, offset, channels, start):
        """Where, in the padded image (rows of `row` pixels), the input of output pixel q (numbered along the output's
        rows, `out_w` wide) for the tap `offset` padded pixels on starts, at channel `start`."""
        oy = q // out_w
        return ((oy * row + q - oy * out_w) + offset) * channels + start

    @compiled.kernel(inline=True)
    def _tile_sums(xf, panel, p0, p1, p2, p3, p4, p5, depth, zero):
        """The sums of a tile: `PIXELS` (6) pixels, whose channels start at xf[p0], ..., xf[p5] (`_base`), times the
        panel's `BLOCK` (64) filters, over `depth` channels: 24 vectors, pixel by pixel (written out: the 24
        accumulators and 4 filter vectors stay in registers)."""
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = zero
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = zero
        for k in range(depth):
            w0, w1 = load(panel, k * BLOCK, zero), load(panel, k * BLOCK + LANES, zero)
            w2, w3 = load(panel, k * BLOCK + 2 * LANES, zero), load(panel, k * BLOCK + 3 * LANES, zero)
            x = broadcast(xf, p0 + k, zero)
            a0, a1, a2, a3 = fma(x, w0, a0), fma(x, w1, a1), fma(x, w2, a2), fma(x, w3, a3)
            x = broadcast(xf, p1 + k, zero)
            a4, a5, a6, a7 = fma(x, w0, a4), fma(x, w1, a5), fma(x, w2, a6), fma(x, w3, a7)
            x = broadcast(xf, p2 + k, zero)
            a8, a9, a10, a11 = fma(x, w0, a8), fma(x, w1, a9), fma(x, w2, a10), fma(x, w3, a11)
            x = broadcast(xf, p3 + k, zero)
            c0, c1, c2, c3 = fma(x, w0, c0), fma(x, w1, c1), fma(x, w2, c2), fma(x, w3, c3)
            x = broadcast(xf, p4 + k, zero)
            c4, c5, c6, c7 = fma(x, w0, c4), fma(x, w1, c5), fma(x, w2, c6), fma(x, w3, c7)
            x = broadcast(xf, p5 + k, zero)
            c8, c9, c10, c11 = fma(x, w0, c8), fma(x, w1, c9), fma(x, w2, c10), fma(x, w3, c11)
        return (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)

    @compiled.kernel
    def _finish_block(sums, of, rf, has_residual, first, stop, out_channels, column, bias, scale, shift, relu, affine,
                      low, cap):
        """Output pixels first..stop - 1's sums of one block of filters finished as `direct._finish_rows` finishes
        them (`simd.epilogue` but its last ReLU, the residual `rf` added where `has_residual`, then that ReLU and the
        cap as a clip to [`low`, `cap`]: the bits of the ReLU, then the cap) and stored, a vector of filters at a
        time (its bias, scale and shift loaded once)."""
        zero = zeros(LANES)
        low, high = full(low, zero), full(cap, zero)
        for v in range(0, BLOCK, LANES):
            f = column + v
            b, s, h = load(bias, f, zero), load(scale, f, zero), load(shift, f, zero)
            for q in range(first, stop):
                a, o = (q - first) * BLOCK + v, q * out_channels + f
                value = epilogue(load(sums, a, zero), b, relu, s, h, affine, False)
                if has_residual:
                    value = add(value, load(rf, o, zero))
                store_first(of, o, clip(value, low, high), LANES)
