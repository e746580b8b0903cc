"""A MobileNetV2 inverted-residual block at inference as one op: expand (1x1) -> depthwise 3x3 -> project
(1x1), each with its whole epilogue (`fused_inference`), computed band by band of output rows.

The expanded tensor is several times the block's input and output (6x in MobileNetV2); run one op after
another it goes to memory and back twice.  Here each band of output rows is computed from the input rows
its depthwise window reads: their expansion (one product, then the epilogue), the depthwise kernel on
them, the projection (one product, then the epilogue with the residual) written into the output — the
band's expanded rows stay in cache.  Where a whole image's expanded rows fit, a unit is a few whole
images instead (larger products; the kernels run over several images' rows in one call), the units cut so
that each thread has as many images (32 images in units of at most 3 on 2 threads: 16 each, not 15 and 17).
The numbers are those of the three ops one after another (the same operations in the same order).  A
block without expansion (`expand` None: MobileNetV2's first, a MobileNet v1 pair) runs depthwise -> project
the same way on the input's own rows: the depthwise output of a band stays in cache instead of going to
memory and back (at batch 32, 51 MB each way in MobileNetV2's first).

    then(act(x @ W + b) * scale + shift [+ residual])      for each of the three, as in `fused_inference`

Paths (the first that applies runs): "compiled_bands" (the banded path's conditions, the middle channels in
whole pairs of vectors, the output's in whole vectors (the machine's, else 8-lane ones: `_width`), image rows
of a tile of pixels: one compiled call per thread claiming bands, `inverted_residual_simd`, or groups of
channels of a small image where there are fewer images than threads; the same numbers to rounding, none of
the GIL between a band's steps),
"banded" (float32, the compiled 3x3 SIMD depthwise kernel with stride 1 or 2, `depthwise_fast.applies_3x3`;
each band's steps called from Python), else "one_by_one" (the three `fused_inference` ops).
"""

from __future__ import annotations

import numpy as np

from . import compiled, depthwise_fast, fused_inference as fi, inverted_residual_simd, pointwise_simd
from .parallel import balanced_ranges, run_claimed, run_in_parallel, worker_count

__all__ = ["prepare_inverted_residual_inference", "inverted_residual_inference", "inverted_residual_reference"]

BAND_BYTES = 1 << 20        # expanded input rows of one band (they stay in cache between the three steps)
GROUP_BYTES = 1 << 18       # fewer images than threads share each image by channels where its expanded tensor is at
                            # most this (7x7 blocks; larger ones, 14x14, ran faster in bands: measurements:
                            # benchmarks/README.md, 'Measurements behind the code's choices')
GROUPS_PER_THREAD = 4       # ... in this many channel groups per thread
_EPILOGUE = ("bias", "activation", "scale", "shift", "then")


def _parts(epilogue, op: str, arg: str) -> dict:
    """An epilogue dict (keys among `_EPILOGUE`), checked for unknown keys."""
    if not isinstance(epilogue, dict) or set(epilogue) - set(_EPILOGUE):
        raise TypeError(f"{op}: argument `{arg}` must be a dict with keys among {_EPILOGUE}, got {epilogue!r}")
    return dict(epilogue)


def inverted_residual_reference(input, expand, depthwise, project, strides, padding, expand_epilogue,
                                depthwise_epilogue, project_epilogue, residual=None):
    """The three `fused_inference` references one after another."""
    op = "inverted_residual_reference"
    mid = input if expand is None else fi.conv2d_epilogue_reference(input, expand, 1, "VALID",
                                                                    **_parts(expand_epilogue, op, "expand_epilogue"))
    mid = fi.depthwise_inference_reference(mid, depthwise, strides, padding,
                                           **_parts(depthwise_epilogue, op, "depthwise_epilogue"))
    return fi.conv2d_epilogue_reference(mid, project, 1, "VALID", residual=residual,
                                        **_parts(project_epilogue, op, "project_epilogue"))


def inverted_residual_inference(input, expand, depthwise, project, strides, padding, expand_epilogue,
                                depthwise_epilogue, project_epilogue, residual=None) -> np.ndarray:
    """expand (filters [1, 1, in, mid], or None: no expansion, mid = in) -> depthwise ([3, 3, mid, 1] or any
    `depthwise_inference` takes, with `strides` and `padding`) -> project ([1, 1, mid, out]) on an NHWC batch,
    each followed by its epilogue (dicts of `bias`, `activation`, `scale`, `shift`, `then`; the expand's
    ignored without it), the project's with `residual` (the output's shape) added.  Keeps nothing for a
    backward pass."""
    run = prepare_inverted_residual_inference(input, expand, depthwise, project, strides, padding, expand_epilogue,
                                              depthwise_epilogue, project_epilogue, residual)
    return run(np.asarray(input), expand, depthwise, project, expand_epilogue, depthwise_epilogue,
               project_epilogue, residual)


def prepare_inverted_residual_inference(input, expand, depthwise, project, strides, padding, expand_epilogue,
                                        depthwise_epilogue, project_epilogue, residual=None):
    """Check the arguments (each step's by its `fused_inference` op, on its input's shape) and choose the
    path once: `run(input, expand, depthwise, project, expand_epilogue, depthwise_epilogue, project_epilogue,
    residual)` for arrays of the same shapes and dtypes (the same epilogue parts present)."""
    op = "inverted_residual_inference"
    parts = [_parts(e, op, a) for e, a in ((expand_epilogue, "expand_epilogue"),
                                          (depthwise_epilogue, "depthwise_epilogue"),
                                          (project_epilogue, "project_epilogue"))]
    x = fi.check_numeric_array(input, op, "input", ndim=4)
    for arg, value in (("expand", expand), ("project", project)):
        if (value is not None or arg == "project") and (np.ndim(value) != 4 or np.shape(value)[:2] != (1, 1)):
            raise ValueError(f"{op}: argument `{arg}` must be 1x1 filters [1, 1, in, out], got shape {np.shape(value)}")
    if expand is None:
        first, mid = None, x
    else:
        first = fi.prepare_conv2d_epilogue_inference(x, expand, 1, "VALID", **parts[0])
        mid_shape = x.shape[:3] + (np.shape(expand)[3],)
        mid = np.empty(mid_shape, dtype=fi.float_dtype(x, np.asarray(expand)))   # pages never touched: shape only
    second = fi.prepare_depthwise_inference(mid, depthwise, strides, padding, **parts[1])
    geometry = _geometry(mid, depthwise, strides, padding)
    out_shape = (x.shape[0],) + geometry[0] + (np.shape(depthwise)[2] * np.shape(depthwise)[3],)
    third = fi.prepare_conv2d_epilogue_inference(np.empty(out_shape, dtype=mid.dtype), project, 1, "VALID",
                                                 residual=residual, **parts[2])
    steps = (first, second, third)
    channels = (np.shape(depthwise)[2], np.shape(project)[3])
    return next(run for _, applies, run in _PATHS if applies(x, expand, depthwise, project, geometry))(steps, geometry,
                                                                                                     channels)


def _geometry(mid, depthwise, strides, padding):
    """((out_h, out_w), (top, left) padding, strides) of the depthwise step (arguments checked already)."""
    w = np.asarray(depthwise)
    grouped = w.reshape(w.shape[0], w.shape[1], 1, -1)
    _, _, strides, dilations, parsed, _, _ = fi._conv_args("inverted_residual_inference", mid, grouped, strides,
                                                           padding, None, mid.shape[3])
    out_hw, pads = fi.window_geometry(mid.shape[1:3], w.shape[:2], strides, dilations, parsed,
                                      "inverted_residual_inference", "depthwise")
    return tuple(out_hw), (pads[0][0], pads[1][0]), tuple(strides)


def _banded_applies(x, expand, depthwise, project, geometry) -> bool:
    strides = geometry[2]
    arrays = (x, x if expand is None else np.asarray(expand), np.asarray(depthwise), np.asarray(project))
    return (compiled.active() and all(a.dtype == np.float32 for a in arrays)
            and depthwise_fast.applies_3x3(np.empty((1, 1, 1, arrays[2].shape[2]), np.float32), arrays[2],
                                           np.float32, strides, (1, 1)))


def _compiled_bands_applies(x, expand, depthwise, project, geometry) -> bool:
    """The banded path's conditions, and the tiles' for both products at one width (`_width`) with at least a
    tile of rows in every product (image rows of `ROWS` pixels)."""
    (_, out_w), w = geometry[0], x.shape[2]
    return (_banded_applies(x, expand, depthwise, project, geometry) and min(w, out_w) >= pointwise_simd.ROWS
            and _width(np.shape(depthwise)[2], np.shape(project)[3]) is not None)


def _width(mid: int, out_channels: int):
    """The lanes of the compiled kernels for a block of `mid` middle and `out_channels` output channels: the
    machine's vectors where the middle channels are whole pairs of them and the output's whole vectors, else
    8 lanes (AVX2's, which AVX-512 machines run too) where they fit those (MobileNetV2's 144 -> 24 with
    16-lane vectors), else None (or with the compiled ops off).  Both the 1x1 tiles and the depthwise tiles
    have kernels of 8 and 16 lanes."""
    widest = pointwise_simd.lanes()
    if widest != depthwise_fast.lanes():
        return None
    for width in dict.fromkeys((widest, 8)):
        if (width <= widest and inverted_residual_simd.band_kernel(width) is not None
                and pointwise_simd.tiles_fit(mid, width) and pointwise_simd.deep_fits(out_channels, width)):
            return width
    return None


def _compiled_bands(steps, geometry, channels):
    """Every thread one `inverted_residual_simd` call claiming bands (of whole images where one image's
    expanded rows fit `BAND_BYTES` and there are images for every thread), or, for fewer images than threads
    whose expanded tensor fits `GROUP_BYTES`, groups of each image's channels (a 7x7 image cut in two bands
    of 4 and 3 rows expands 9 rows, and one thread does 4/7 of the work); the banded path where an
    epilogue of a product has hard-swish (not in the tiles).  What does not depend on the arrays' values is
    decided at the first call with the epilogues' kinds and the thread count, and kept for the next calls; the
    kernels' lanes (`_width` of the middle and output `channels`) when prepared."""
    (out_h, out_w), (top, left), strides = geometry
    fallback = _banded(steps, geometry, channels)
    width = _width(*channels)
    layouts = {}        # this prepared run's (entries added whole; threads may race to add the same one)

    def run(x, expand, depthwise, project, expand_epilogue, depthwise_epilogue, project_epilogue, residual):
        epilogues = (expand_epilogue, depthwise_epilogue, project_epilogue)
        key = (worker_count(), residual is None, _key(expand_epilogue), _key(depthwise_epilogue),
               _key(project_epilogue))
        x = np.ascontiguousarray(x)
        n, h, w, c = x.shape
        mid = c if expand is None else np.shape(expand)[3]
        widen = np.zeros((1, mid), np.float32) if expand is None else _matrix(expand, c)
        narrow = _matrix(project, mid)
        layout = layouts.get(key)
        if layout is None:
            layout = layouts[key] = _Layout(x.shape, widen, narrow, expand is not None, geometry, epilogues, width,
                                            residual is not None, key[0])
        if layout.swish:
            return fallback(x, expand, depthwise, project, *epilogues, residual)
        out_channels = narrow.shape[1]
        widen, narrow = (pointwise_simd.pack(m, layout.width) if packed else m
                         for m, packed in zip((widen, narrow), layout.packed))
        out = (fi._aligned_empty if layout.by_channels else np.empty)((n, out_h * out_w, out_channels), np.float32)
        shortcut = (layout.unread if residual is None
                    else np.ascontiguousarray(residual, dtype=np.float32).reshape(out.shape))
        ends = (layout.ends(0, expand_epilogue), layout.ends(1, depthwise_epilogue), layout.ends(2, project_epilogue))
        arguments = (x.reshape(n, h * w, c), widen.reshape(-1), ends[0],
                     np.ascontiguousarray(np.asarray(depthwise)[..., 0], dtype=np.float32).reshape(-1), ends[1],
                     narrow.reshape(-1), ends[2], shortcut, layout.geometry)
        kernel, counts = layout.kernel, layout.counts
        if layout.by_channels:      # the expanded tensor and the depthwise output in one scratch, each on a line
            expanded = n * h * w * mid if expand is not None else 0
            scratch = fi._aligned_empty((expanded + n * out_h * out_w * mid,), np.float32)
            scratch = (scratch[:expanded].reshape(n, h * w, mid) if expand is not None else layout.unread_mid,
                       scratch[expanded:].reshape(n, out_h * out_w, mid), out)
            done = np.zeros(n, np.int64)
            run_claimed(n * sum(counts), lambda counter: kernel(counter, done, *arguments, *scratch))
        else:
            run_claimed(n * counts[1], lambda counter: kernel(counter, *arguments, out), alone=layout.alone)
        return out.reshape(n, out_h, out_w, out_channels)
    return run


class _Layout:
    """What a compiled call depends on besides the arrays' values: the kernel (bands or channel groups), its
    item counts and `geometry`, which matrices are packed, the epilogues' limits, and the zeros that stand for
    an absent bias, scale or shift (never written: the kernels only read them)."""

    def __init__(self, x_shape, widen, narrow, has_expand: bool, geometry, epilogues, width: int,
                 has_residual: bool, workers: int):
        (out_h, out_w), (top, left), strides = geometry
        n, h, w, _ = x_shape
        mid, out_channels = narrow.shape
        self.swish = any(fi._HARD_SWISH in _codes(e, False)[::3] for e in (epilogues[0], epilogues[2]))
        if self.swish:          # the banded path's run instead
            return
        self.width = width
        self.packed = (pointwise_simd.packs(n * h * w, widen, False, width),
                       pointwise_simd.packs(n * out_h * out_w, narrow, False, width))
        work = (n * h * w * widen.shape[0] * mid if has_expand else 0) + n * out_h * out_w * (out_channels + 9) * mid
        self.alone = work < fi.SMALL_WORK
        self.by_channels = not self.alone and n < workers and h * w * mid * 4 <= GROUP_BYTES
        if self.by_channels:
            self.kernel = inverted_residual_simd.group_kernel(width)
            self.counts = (_channel_groups(mid, workers, width), _channel_groups(out_channels, workers, width))
        else:
            self.kernel = inverted_residual_simd.band_kernel(width)
            rows = _band_rows(n, h, w, mid, out_h, strides[0], workers)
            self.counts = (rows, -(-out_h // rows))
        affine = [e.get("scale") is not None for e in epilogues]
        self.geometry = np.array([h, w, mid, strides[0], top, left, out_h, out_w, *self.counts,
                                  has_expand, *affine, has_residual, *self.packed], dtype=np.int64)
        self.unread = np.zeros((1, 1, out_channels), np.float32)
        self.unread_mid = np.zeros((1, 1, mid), np.float32)
        zeros_mid = np.zeros(mid, np.float32)
        self._zeros = (zeros_mid, zeros_mid, np.zeros(out_channels, np.float32))
        self._limits = [_limits(e) for e in epilogues]

    def ends(self, index: int, epilogue) -> tuple:
        """(bias, scale, shift, limits) of step `index`'s epilogue as the kernels take them (float32)."""
        return _present(epilogue, self._zeros[index]) + (self._limits[index],)


def _key(epilogue) -> tuple:
    """What of an epilogue dict a `_Layout` depends on: its activations, and whether it has a scale."""
    return epilogue.get("activation"), epilogue.get("then"), epilogue.get("scale") is None


def _channel_groups(channels: int, workers: int, width: int) -> int:
    """Groups of whole pairs of vectors (of `width` lanes) an image's channels are shared in:
    `GROUPS_PER_THREAD` per thread (a thread that starts late or runs slower takes fewer), at most one per pair."""
    return max(1, min(channels // (2 * width), GROUPS_PER_THREAD * workers))


def _matrix(filters, depth: int) -> np.ndarray:
    """A 1x1 convolution's filters as its (depth, channels) matrix, C-contiguous float32."""
    return np.ascontiguousarray(filters, dtype=np.float32).reshape(depth, -1)


def _band_rows(n: int, h: int, w: int, mid: int, out_h: int, stride: int, workers: int) -> int:
    """Output rows per band: a whole image where its expanded rows fit `BAND_BYTES` and each thread has an
    image, else as many rows as fit (each thread at least one band for fewer images than threads)."""
    if h * w * mid * 4 <= BAND_BYTES and n >= workers:
        return out_h
    return _rows_per_band(n, w, mid, out_h, stride, workers)


def _rows_per_band(n: int, w: int, mid: int, out_h: int, stride: int, workers: int) -> int:
    """Output rows of a band whose expanded input rows fit `BAND_BYTES`, at most one thread's share of the
    images' rows (and of one image's)."""
    rows = max(1, (BAND_BYTES // (w * mid * 4) - 3) // stride + 1)
    return max(1, min(rows, -(-out_h * n // workers), out_h))


def _ends(channels: int, epilogue) -> tuple:
    """(bias, scale, shift, limits) of an epilogue dict as the compiled kernels take them (float32)."""
    return _present(epilogue, np.zeros(channels, np.float32)) + (_limits(epilogue),)


def _present(epilogue, zeros) -> tuple:
    """(bias, scale, shift) of an epilogue dict in float32, `zeros` for each one absent."""
    return fi._present(zeros, np.float32, epilogue.get("bias"), epilogue.get("scale"), epilogue.get("shift"))


def _limits(epilogue) -> np.ndarray:
    """The limits of an epilogue dict's activation and `then`, as `fused_inference`'s kernels take them."""
    return fi._limits(fi._CODES[epilogue.get("activation", "linear")], fi._CODES[epilogue.get("then", "linear")],
                      np.float32)


def _one_by_one(steps, geometry, channels):
    """The three prepared `fused_inference` ops one after another."""
    first, second, third = steps

    def run(x, expand, depthwise, project, expand_epilogue, depthwise_epilogue, project_epilogue, residual):
        mid = x if first is None else first(x, np.asarray(expand), residual=None, **_values(expand_epilogue))
        mid = second(mid, np.asarray(depthwise), residual=None, **_values(depthwise_epilogue))
        return third(mid, np.asarray(project), residual=residual, **_values(project_epilogue))
    return run


def _values(epilogue) -> dict:
    """The per-call arrays of an epilogue dict, as the prepared runs take them."""
    return {key: epilogue.get(key) for key in ("bias", "scale", "shift")}


def _banded(steps, geometry, channels):
    (out_h, out_w), (top, left), strides = geometry

    def run(x, expand, depthwise, project, expand_epilogue, depthwise_epilogue, project_epilogue, residual):
        x = x if expand is not None else np.ascontiguousarray(x)    # its rows go to the kernel as they are
        n, h, w, c = x.shape
        widen = None if expand is None else np.ascontiguousarray(expand, dtype=np.float32).reshape(c, -1)
        mid = c if widen is None else widen.shape[1]
        narrow = np.ascontiguousarray(project, dtype=np.float32).reshape(mid, -1)
        taps = np.ascontiguousarray(np.asarray(depthwise)[..., 0], dtype=np.float32).reshape(-1)
        out = np.empty((n, out_h, out_w, narrow.shape[1]), dtype=np.float32)
        plan = _Band(x, widen, taps, narrow, out, residual, (expand_epilogue, depthwise_epilogue, project_epilogue),
                     strides[0], top, left)
        work = (0 if widen is None else x.size * mid) + out.size * mid + out_h * out_w * n * mid * 9
        workers = worker_count()
        if h * w * mid * 4 <= BAND_BYTES and n >= workers:     # whole images per unit: larger products
            per = max(1, min(BAND_BYTES // (h * w * mid * 4), -(-n // workers)))
            units = balanced_ranges(n, per)          # as many images per thread (within one)
            step = plan.images
        else:           # bands of output rows of one image (at least one per thread for fewer images)
            rows = _rows_per_band(n, w, mid, out_h, strides[0], workers)
            units = [(image, start, rows) for image in range(n) for start in range(0, out_h, rows)]
            step = plan.band
        def each(chunk):
            for unit in chunk:
                step(*unit)

        run_in_parallel(units, each, alone=work < fi.SMALL_WORK, claimed=True)   # BLAS single-threaded either way
        return out
    return run


class _Band:
    """One call's arrays and epilogue arguments, shared by its bands (per call: nothing kept after it)."""

    def __init__(self, x, widen, taps, narrow, out, residual, epilogues, stride, top, left):
        expand_e, depthwise_e, project_e = epilogues
        mid = narrow.shape[0]
        self.x, self.widen, self.taps, self.narrow, self.out = x, widen, taps, narrow, out
        self.stride, self.top, self.left = stride, top, left
        self.expand = None if widen is None else self._arrays(widen, x.shape[0] * x.shape[1] * x.shape[2], expand_e,
                                                              None)
        bias, scale, shift, limits = _ends(mid, depthwise_e)
        self.depthwise = (bias, scale, shift, np.zeros((1, mid), np.float32), limits,
                          depthwise_e.get("scale") is not None)
        self.project = self._arrays(narrow, out.shape[0] * out.shape[1] * out.shape[2], project_e, residual)
        self.kernel = depthwise_fast.depthwise3x3_tiles(depthwise_fast.lanes())

    @staticmethod
    def _arrays(matrix, count, epilogue, residual):
        """`_product_rows`' (arrays, codes) for the call's `count` rows by `matrix` (packed once where it pays)."""
        codes = _codes(epilogue, residual is not None)
        return fi._rows_arrays(np.float32, matrix, count, epilogue.get("bias"), epilogue.get("scale"),
                               epilogue.get("shift"), residual, codes), codes

    def _expanded(self, rows):
        """The expansion of input rows with its epilogue (a new array), or the rows themselves without one."""
        if self.widen is None:
            return rows
        expanded = np.empty((len(rows), self.widen.shape[1]), dtype=np.float32)
        fi._product_rows(rows, self.widen, expanded, 0, *self.expand)
        return expanded

    def images(self, first, stop):
        """Images first..stop whole: each step one product or kernel call over all their rows."""
        x, out, s = self.x, self.out, self.stride
        count, (h, w, c) = stop - first, x.shape[1:]
        out_h, out_w, mid = out.shape[1], out.shape[2], self.narrow.shape[0]
        expanded = self._expanded(x[first:stop].reshape(-1, c))
        middle = np.empty((count * out_h, out_w * mid), dtype=np.float32)
        bias, scale, shift, dummy, limits, affine = self.depthwise
        self.kernel(expanded.reshape(count * h, w * mid), self.taps, bias, scale, shift, dummy, limits, affine, False,
                    h, w, mid, s, self.top, self.left, 0, count * out_h, middle, 0, mid)
        target = out[first:stop].reshape(count * out_h * out_w, -1)
        fi._product_rows(middle.reshape(-1, mid), self.narrow, target, first * out_h * out_w, *self.project)

    def band(self, image, start, rows):
        """Output rows start..start + rows of one image."""
        x, out, s = self.x, self.out, self.stride
        h, w, c = x.shape[1:]
        out_h, out_w, mid = out.shape[1], out.shape[2], self.narrow.shape[0]
        stop = min(out_h, start + rows)
        first, last = max(start * s - self.top, 0), min((stop - 1) * s - self.top + 3, h)
        expanded = self._expanded(x[image].reshape(h * w, c)[first * w:last * w])
        middle = np.empty((stop - start, out_w * mid), dtype=np.float32)
        bias, scale, shift, dummy, limits, affine = self.depthwise
        self.kernel(expanded.reshape(last - first, w * mid), self.taps, bias, scale, shift, dummy, limits, affine,
                    False, last - first, w, mid, s, self.top + first - start * s, self.left, 0, stop - start, middle,
                    0, mid)
        target = out[image].reshape(out_h * out_w, -1)[start * out_w:stop * out_w]
        fi._product_rows(middle.reshape(-1, mid), self.narrow, target, (image * out_h + start) * out_w,
                         *self.project)


def _codes(epilogue, has_residual: bool) -> tuple:
    """`fused_inference._apply_rows`' codes of an epilogue dict."""
    return (fi._CODES[epilogue.get("activation", "linear")], epilogue.get("scale") is not None, has_residual,
            fi._CODES[epilogue.get("then", "linear")])


# The paths of `inverted_residual_inference`, in order: the first that applies runs.
_PATHS = (
    ("compiled_bands", _compiled_bands_applies, _compiled_bands),
    ("banded", _banded_applies, _banded),
    ("one_by_one", lambda x, expand, depthwise, project, geometry: True, _one_by_one),
)
