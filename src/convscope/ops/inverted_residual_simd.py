"""A MobileNetV2 block's bands of output rows in one compiled call per thread: expand, depthwise 3x3, project.

`inverted_residual`'s "banded" path runs each band from Python: a product (BLAS), its epilogue, the
depthwise kernel, another product and epilogue, with Python between the calls, which the threads take in
turns (the GIL: on a 2-core VM a block at batch 1 ran little faster on two threads than on one; measurements:
benchmarks/README.md, 'Measurements behind the code's choices').
Here each thread makes one call that claims bands (`claims.claim`) until none is left, and runs each band
through compiled kernels only: the rows-first 1x1 tiles of `pointwise_simd` (`deep_product_rows`' loop, each
matrix as it lies or, for a product of `pointwise_simd.PACK_ROWS` rows, packed once per call before the
threads start: the same sums either way) and the 3x3 tiles of `depthwise_fast`.  A band's expanded rows and
its depthwise output stay in the thread's scratch.  Each output row is summed in the input channels' order
whichever band or thread computes it, so the bits do not depend on the bands, the threads or the batch.
Compiled path only (numba, 256-bit SIMD or wider).

Fewer images than threads (batch 1) of a small image (MobileNetV2's 7x7 blocks) share each image by channels
instead (`group_kernel`): bands of a 7x7 image expand the rows around each band's border twice and give one
thread 4 rows of 7.  An image's first items each expand one group of middle channels over the whole image and
run the depthwise step on it (the channels independent: no rows computed twice), its next items each project
one group of output channels once all the first are done (`claims.wait_for`); the image's expanded tensor and
depthwise output lie in scratch shared by the threads, rows aligned to cache lines.  The same sums in the
same order: the bands' bits.

`geometry` (int64): h, w, mid, stride, top, left, out_h, out_w, rows per band (at most: an image's bands split
its rows as evenly as they go, so that a thread's last band is not the long one) and bands per image (groups of
middle and of output channels for `group_kernel`), then flags:
the expansion present, each step's epilogue affine (expand, depthwise, project), the residual present, each
matrix packed (expand, project).  Each `*_ends` is (bias, scale, shift, limits) as `fused_inference`'s
kernels take them.

The kernels for 8 and 16 lanes (AVX2's; AVX-512's, whose machines also run the 8-lane ones for channels that
only fit those: `inverted_residual._width`) are module-level functions calling the width's tile kernels
through module globals: a kernel closing over another kernel never loads from numba's disk cache
(`tests/test_compiled_cache.py`).
"""

from __future__ import annotations

import numpy as np

from . import compiled, depthwise_fast, pointwise_simd

if compiled.available():
    from .claims import claim, mark_done, wait_for

__all__ = ["band_kernel", "group_kernel"]


def band_kernel(lanes: int):
    """The kernel for `lanes` float32s per vector (8 or 16; both tile kernels of that width), None for other
    widths: `kernel(counter, x, widen, expand_ends, taps, depthwise_ends, narrow, project_ends, residual,
    geometry, out)` with x (n, h * w, channels), the matrices flat (packed or not), residual (n, out_h * out_w,
    out channels) or (1, 1, out channels) unread, out (n, out_h * out_w, out channels); items n * bands per
    image."""
    return {8: _bands_8, 16: _bands_16}.get(lanes)


def group_kernel(lanes: int):
    """As `band_kernel`, the kernel sharing each image by channels: `kernel(counter, done, x, widen, expand_ends,
    taps, depthwise_ends, narrow, project_ends, residual, geometry, expanded, middle, out)` with `done` (n,)
    int64 zeros, `expanded` (n, h * w, mid) ((1, 1, mid) unread without an expansion) and `middle` (n, out_h *
    out_w, mid) scratch shared by the threads; items n * (geometry[8] + geometry[9])."""
    return {8: _groups_8, 16: _groups_16}.get(lanes)


@compiled.kernel(inline=True)
def _claim_bands(tiles, depthwise, step, counter, x, widen, expand_ends, taps, depthwise_ends, narrow, project_ends,
                 residual, geometry, out):
    """The loop of every width's kernel: `tiles`, `depthwise` that width's kernels, `step` two vectors."""
    h, w, mid, stride, top, left, out_h, out_w, rows, per_image = geometry[:10]
    (has_expand, expand_affine, depthwise_affine, project_affine, has_residual, expand_step, expand_scale,
     project_step, project_scale) = _flags(geometry, step, x.shape[2], out.shape[2])
    most = min((rows - 1) * stride + 3, h)                   # input rows a band reads, at most
    expanded = np.empty((most * w if has_expand else 1) * mid, np.float32)
    middle = np.empty(rows * out_w * mid, np.float32)
    unread = np.zeros((1, mid), np.float32)
    eb, es, eh, el = expand_ends
    db, ds, dh, dl = depthwise_ends
    pb, ps, ph, pl = project_ends
    while True:
        item = claim(counter, per_image * x.shape[0])
        if item >= per_image * x.shape[0]:
            break
        image, index = item // per_image, item % per_image
        start, stop = index * out_h // per_image, (index + 1) * out_h // per_image    # at most `rows` rows
        first, last = max(start * stride - top, 0), min((stop - 1) * stride - top + 3, h)
        source = x[image][first * w:last * w]
        if has_expand:
            source = expanded[:(last - first) * w * mid].reshape((last - first) * w, mid)
            tiles(x[image][first * w:last * w], widen, expand_step, expand_scale, source, eb, es, eh, unread, el,
                  expand_affine, False, False, 0, mid)
        band = middle[:(stop - start) * out_w * mid].reshape(stop - start, out_w * mid)
        depthwise(source.reshape(last - first, w * mid), taps, db, ds, dh, unread, dl, depthwise_affine, False,
                  last - first, w, mid, stride, top + first - start * stride, left, 0, stop - start, band, 0, mid)
        target = out[image][start * out_w:stop * out_w]
        shortcut = residual[image][start * out_w:stop * out_w] if has_residual else residual[0]
        tiles(band.reshape((stop - start) * out_w, mid), narrow, project_step, project_scale, target, pb, ps, ph,
              shortcut, pl, project_affine, has_residual, False, 0, out.shape[2])


@compiled.kernel(inline=True)
def _claim_groups(tiles, depthwise, step, counter, done, x, widen, expand_ends, taps, depthwise_ends, narrow,
                  project_ends, residual, geometry, expanded, middle, out):
    """`_claim_bands`' work shared by channels: an image's first `geometry[8]` items each expand and filter
    (depthwise) one group of its middle channels over the whole image into `expanded` and `middle`; its
    next `geometry[9]` items each project one group of output channels once all of the first are done."""
    h, w, mid, stride, top, left, out_h, out_w, mid_groups, out_groups = geometry[:10]
    out_channels = out.shape[2]
    (has_expand, expand_affine, depthwise_affine, project_affine, has_residual, expand_step, expand_scale,
     project_step, project_scale) = _flags(geometry, step, x.shape[2], out_channels)
    unread = np.zeros((1, mid), np.float32)
    eb, es, eh, el = expand_ends
    db, ds, dh, dl = depthwise_ends
    pb, ps, ph, pl = project_ends
    per_image = mid_groups + out_groups
    while True:
        item = claim(counter, per_image * x.shape[0])
        if item >= per_image * x.shape[0]:
            break
        image, group = item // per_image, item % per_image
        if group < mid_groups:
            first, stop = _group(mid, step, group, mid_groups)
            source = x[image]
            if has_expand:
                source = expanded[image]
                tiles(x[image], widen, expand_step, expand_scale, source, eb, es, eh, unread, el, expand_affine,
                      False, False, first, stop)
            depthwise(source.reshape(h, w * mid), taps, db, ds, dh, unread, dl, depthwise_affine, False, h, w, mid,
                      stride, top, left, 0, out_h, middle[image].reshape(out_h, out_w * mid), first, stop)
            mark_done(done[image:image + 1])
        else:
            wait_for(done[image:image + 1], mid_groups)
            first, stop = _group(out_channels, step, group - mid_groups, out_groups)
            tiles(middle[image], narrow, project_step, project_scale, out[image], pb, ps, ph,
                  residual[image] if has_residual else residual[0], pl, project_affine, has_residual, False, first,
                  stop)


@compiled.kernel(inline=True)
def _flags(geometry, step, channels, out_channels):
    """`geometry`'s flags (the expansion, each step's affine map, the residual), then each matrix's step and
    scale as the tiles read it: packed (strips of `step`) or as it lies."""
    mid = geometry[2]
    expand_step, expand_scale = (step, channels) if geometry[15] != 0 else (mid, 1)
    project_step, project_scale = (step, mid) if geometry[16] != 0 else (out_channels, 1)
    return (geometry[10] != 0, geometry[11] != 0, geometry[12] != 0, geometry[13] != 0, geometry[14] != 0,
            expand_step, expand_scale, project_step, project_scale)


@compiled.kernel(inline=True)
def _group(channels, step, group, groups):
    """Channels first..stop of group `group` of `groups`: as many pairs of vectors (`step`) each, within one,
    the last group also a vector past the last pair (an odd number of vectors)."""
    pairs = channels // step
    return pairs * group // groups * step, channels if group == groups - 1 else pairs * (group + 1) // groups * step


if compiled.available():
    _tiles_8, _tiles_16 = pointwise_simd.deep_kernel(8), pointwise_simd.deep_kernel(16)
    _depthwise_8, _depthwise_16 = depthwise_fast.depthwise3x3_tiles(8), depthwise_fast.depthwise3x3_tiles(16)


@compiled.kernel
def _bands_8(counter, x, widen, expand_ends, taps, depthwise_ends, narrow, project_ends, residual, geometry, out):
    _claim_bands(_tiles_8, _depthwise_8, 16, counter, x, widen, expand_ends, taps, depthwise_ends, narrow,
                 project_ends, residual, geometry, out)


@compiled.kernel
def _bands_16(counter, x, widen, expand_ends, taps, depthwise_ends, narrow, project_ends, residual, geometry, out):
    _claim_bands(_tiles_16, _depthwise_16, 32, counter, x, widen, expand_ends, taps, depthwise_ends, narrow,
                 project_ends, residual, geometry, out)


@compiled.kernel
def _groups_8(counter, done, x, widen, expand_ends, taps, depthwise_ends, narrow, project_ends, residual, geometry,
              expanded, middle, out):
    _claim_groups(_tiles_8, _depthwise_8, 16, counter, done, x, widen, expand_ends, taps, depthwise_ends, narrow,
                  project_ends, residual, geometry, expanded, middle, out)


@compiled.kernel
def _groups_16(counter, done, x, widen, expand_ends, taps, depthwise_ends, narrow, project_ends, residual, geometry,
               expanded, middle, out):
    _claim_groups(_tiles_16, _depthwise_16, 32, counter, done, x, widen, expand_ends, taps, depthwise_ends, narrow,
                  project_ends, residual, geometry, expanded, middle, out)
