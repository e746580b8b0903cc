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

`geometry` (int64): h, w, mid, stride, top, left, out_h, out_w, rows per band, bands per image, then flags:
the expansion present, each step's epilogue affine (expand, depthwise, project), the residual present, each
matrix packed (expand, project).  Each `*_ends` is (bias, scale, shift, limits) as `fused_inference`'s
kernels take them.

The kernels for 8 and 16 lanes (AVX2, AVX-512) are module-level functions calling the width's tile kernels
through module globals: a kernel closing over another kernel never loads from numba's disk cache
(`tests/test_compiled_cache.py`).
"""

from __future__ import annotations

import numpy as np

from . import compiled, depthwise_fast, pointwise_simd

if compiled.available():
    from .claims import claim

__all__ = ["band_kernel"]


def band_kernel(lanes: int):
    """The kernel for `lanes` float32s per vector (8 or 16; both tile kernels of that width), None for other
    widths: `kernel(counter, x, widen, expand_ends, taps, depthwise_ends, narrow, project_ends, residual,
    geometry, out)` with x (n, h * w, channels), the matrices flat (packed or not), residual (n, out_h * out_w,
    out channels) or (1, 1, out channels) unread, out (n, out_h * out_w, out channels); items n * bands per
    image."""
    return {8: _bands_8, 16: _bands_16}.get(lanes)


@compiled.kernel(inline=True)
def _claim_bands(tiles, depthwise, step, counter, x, widen, expand_ends, taps, depthwise_ends, narrow, project_ends,
                 residual, geometry, out):
    """The loop of every width's kernel: `tiles`, `depthwise` that width's kernels, `step` two vectors."""
    h, w, mid, stride, top, left, out_h, out_w, rows, per_image = geometry[:10]
    has_expand, expand_affine, depthwise_affine = geometry[10] != 0, geometry[11] != 0, geometry[12] != 0
    project_affine, has_residual = geometry[13] != 0, geometry[14] != 0
    channels = x.shape[2]
    expand_step, expand_scale = (step, channels) if geometry[15] != 0 else (mid, 1)
    project_step, project_scale = (step, mid) if geometry[16] != 0 else (out.shape[2], 1)
    most = min((rows - 1) * stride + 3, h)                   # input rows a band reads, at most
    expanded = np.empty((most * w if has_expand else 1) * mid, np.float32)
    middle = np.empty(rows * out_w * mid, np.float32)
    unread = np.zeros((1, mid), np.float32)
    eb, es, eh, el = expand_ends
    db, ds, dh, dl = depthwise_ends
    pb, ps, ph, pl = project_ends
    while True:
        item = claim(counter)
        if item >= per_image * x.shape[0]:
            break
        image, start = item // per_image, item % per_image * rows
        stop = min(out_h, start + rows)
        first, last = max(start * stride - top, 0), min((stop - 1) * stride - top + 3, h)
        source = x[image][first * w:last * w]
        if has_expand:
            source = expanded[:(last - first) * w * mid].reshape((last - first) * w, mid)
            tiles(x[image][first * w:last * w], widen, expand_step, expand_scale, source, eb, es, eh, unread, el,
                  expand_affine, False, False)
        band = middle[:(stop - start) * out_w * mid].reshape(stop - start, out_w * mid)
        depthwise(source.reshape(last - first, w * mid), taps, db, ds, dh, unread, dl, depthwise_affine, False,
                  last - first, w, mid, stride, top + first - start * stride, left, 0, stop - start, band)
        target = out[image][start * out_w:stop * out_w]
        shortcut = residual[image][start * out_w:stop * out_w] if has_residual else residual[0]
        tiles(band.reshape((stop - start) * out_w, mid), narrow, project_step, project_scale, target, pb, ps, ph,
              shortcut, pl, project_affine, has_residual, False)


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
