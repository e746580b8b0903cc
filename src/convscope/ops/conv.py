"""2-D convolution (cross-correlation, as `tf.nn.conv2d`) forward and backward.

The input is padded once (NHWC), or, on the direct kernel, block by block as it is read.  The batch is
processed in blocks of
images (or bands of output rows of one large image): a strided sliding-window
view gathers each block's receptive fields (im2col) into a small reused buffer,
and one matrix product per group maps the columns to the output rows.  Blocks
keep the columns in the CPU cache between their copy and their product (faster
than one batch-wide column matrix; measurements: benchmarks/README.md, 'Measurements behind the code's choices')
and bound the memory to the padded input and the output.  Blocks are independent, so they run on as many
threads as BLAS has, each with single-threaded BLAS (`parallel.run_in_parallel`).

The backward pass rebuilds each block's columns for the filter gradient.  The
input gradient is a stride-1 transposed convolution of the output gradient from
`TRANSPOSED_MIN_CHANNELS` input channels per group, else col2im: one product,
then one strided addition per kernel offset.  Layouts are chosen by measurement:
single-channel inputs gather the columns offset-major (long contiguous runs
instead of one value per window cell), and 1x1 unpadded stride-1 convolutions
use the input itself as the column matrix.  On the compiled path, 3x3 stride-1
convolutions with enough channels run forward as Winograd F(2x2, 3x3)
(`ops/winograd.py`, 2.25x fewer multiplications), and thin float32 ones (few taps,
at most 128 filters) as a direct convolution with no columns at all
(`ops/direct.py`, which also computes, from 8 taps, the filter gradient without
columns).  One ordered list, `_CONV_PATHS`, chooses among them (the direct kernel
first where the product is too thin for Winograd's 16 BLAS products), for the forward
blocks and for the input gradient's transposed convolution alike.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import compiled, direct, winograd, winograd_pool
from .epilogue import bias_activation_forward, check_epilogue, epilogue_on_tape
from .parallel import balanced_ranges, on_slices, run_claimed, run_in_parallel, worker_count
from .tape import record_forward, sees
from .pad_fill import FLAT_FILL_MAX_CHANNELS, fill_pixels, fill_rows
from .padding import (check_data_format, check_numeric_array, check_image_batch, float_dtype, from_nhwc,
                      parse_padding, spatial_pair, to_nhwc, window_geometry)

__all__ = ["conv2d", "conv2d_forward", "conv2d_backward"]

COLUMN_BUDGET_BYTES = 4 * 2 ** 20  # im2col columns of one block of images (fits in L2 with its product)
POOLED_BAND_IMAGES = 4             # under this many images a pooled direct convolution's threads claim pooled rows,
                                   # not images (measurements: benchmarks/README.md, 'Measurements behind the code's
                                   # choices')
DIRECT_ITEMS_PER_THREAD = 8        # a direct convolution's items per thread, at least where rows allow: fewer
                                   # images than this are claimed in bands of rows (a faster core takes more)
TRANSPOSED_MIN_CHANNELS = 16       # from this many input channels per group, a transposed convolution
# In x out channels up to which the direct kernel runs before Winograd (whose 16 products are too thin for
# BLAS there), by its tile (filters, pixels: `direct.tile`).  Measured, 3x3 on 8-32 px, 128 images: AVX-512's
# 16/32-filter tiles of 8 pixels faster than Winograd up to 32 -> 64 and 64 -> 32, slower from 64 -> 64 (a CPU
# that runs them as two halves, or an earlier Intel VM: see the full-width limit below); AVX2's
# 8 x 8 tiles faster up to 24 -> 24, its 16-filter tiles of 4 pixels up to 32 -> 32 (forward and backward),
# slower at 32 -> 64 on 8x8 (measurements: benchmarks/README.md, 'Measurements behind the code's choices').
DIRECT_BEFORE_WINOGRAD = {(8, 8): 576, (16, 4): 1024, (16, 8): 2048, (32, 8): 2048}
# ... but up to this many where the CPU's 512-bit units run whole (`direct.full_width_units`: its multiply-adds twice
# as fast as a double-pumped CPU's): on an Intel VM 64 -> 64, 80 -> 80 and 64 -> 128 ran faster so, in inference and
# ResNet-20's training step, 96 -> 96 and 112 -> 112 at 8 images slower (benchmarks/README.md, as above)
FULL_WIDTH_DIRECT_BEFORE_WINOGRAD = 8192


class Geometry(NamedTuple):
    """What decides a convolution's path (`conv_path`): the forward pass's, or the input gradient's
    transposed convolution's.  `whole_images`: its blocks are whole images (Winograd's need)."""
    dtype: Any
    kernel_hw: Tuple[int, int]
    strides: Tuple[int, int]
    dilations: Tuple[int, int]
    groups: int
    in_per_group: int
    out_channels: int
    out_hw: Tuple[int, int]
    images: int
    pointwise: bool
    whole_images: bool


def _direct_applies(g: Geometry) -> bool:
    return direct.applies(g.dtype, g.kernel_hw, g.groups, g.in_per_group, g.out_channels, g.out_hw, g.pointwise,
                          g.images)


def direct_before_winograd(out_channels: int) -> int:
    """In x out channels up to which the direct kernel runs before Winograd, for `out_channels` filters (their
    tile's `DIRECT_BEFORE_WINOGRAD`, or `FULL_WIDTH_DIRECT_BEFORE_WINOGRAD` where 512-bit units run whole; 0: no
    tile)."""
    limit = DIRECT_BEFORE_WINOGRAD.get(direct.tile(out_channels), 0)
    return max(limit, FULL_WIDTH_DIRECT_BEFORE_WINOGRAD) if limit and direct.full_width_units() else limit


def _thin_direct_applies(g: Geometry) -> bool:
    return _direct_applies(g) and g.in_per_group * g.out_channels <= direct_before_winograd(g.out_channels)


def _winograd_applies(g: Geometry) -> bool:
    return g.whole_images and winograd.applies(g.kernel_hw, g.strides, g.dilations, g.groups, g.in_per_group,
                                               g.out_hw, g.images)


# The paths of a convolution (forward blocks, and the input gradient's transposed convolution), in order:
# the first that applies runs.  "gemm" is im2col + GEMM, the reference path's own computation.
_CONV_PATHS = (
    ("direct", _thin_direct_applies),
    ("winograd", _winograd_applies),
    ("direct", _direct_applies),
    ("gemm", lambda g: True),
)


def conv_path(geometry: Geometry) -> str:
    """The name of the first of `_CONV_PATHS` that applies to `geometry`."""
    return next(name for name, applies in _CONV_PATHS if applies(geometry))


def pad_spatial(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    """`x` (NHWC) with `pads` ((top, bottom), (left, right)) cells of `value` around each image.

    Each thread fills the border and copies the interior of its slice of images: the copy is
    written once (not zeros first), and it is not left to one thread (seed 001's second
    convolution spent a large share of its time padding its 10 MB input on one thread; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices')."""
    if not any(pads[0] + pads[1]):
        return x
    out = np.empty(padded_shape(x.shape, pads), dtype=x.dtype)
    on_slices(len(x), out.nbytes, lambda images: _fill_padded(out[images], x[images], pads, value))
    return out


def crop_spatial(x: np.ndarray, pads) -> np.ndarray:
    """`x` (NHWC) without its `pads` ((top, bottom), (left, right)) border cells, as a new C-contiguous
    array: `pad_spatial`'s gradient (compiled: a row at a time, each thread its slice of images)."""
    (top, bottom), (left, right) = pads
    index = (slice(None), slice(top, x.shape[1] - bottom), slice(left, x.shape[2] - right))
    if not (compiled.active() and x.dtype in (np.float32, np.float64)):
        return np.ascontiguousarray(x[index])
    out = np.empty(x[index].shape, dtype=x.dtype)
    on_slices(len(x), out.nbytes, lambda images: _crop_kernel(x[images], top, left, out[images]))
    return out


@compiled.kernel
def _crop_kernel(x, top, left, out):
    """out[n, i, j] = x[n, top + i, left + j], channels copied a row at a time."""
    for n in range(out.shape[0]):
        for i in range(out.shape[1]):
            source, target = x[n, top + i], out[n, i]
            for j in range(out.shape[2]):
                for k in range(out.shape[3]):
                    target[j, k] = source[left + j, k]


def padded_shape(shape, pads) -> Tuple[int, int, int, int]:
    """The NHWC `shape` with `pads` ((top, bottom), (left, right)) added."""
    (top, bottom), (left, right) = pads
    return (shape[0], shape[1] + top + bottom, shape[2] + left + right, shape[3])


def _fill_padded(block: np.ndarray, x_block: np.ndarray, pads, value=0.0) -> None:
    """block (padded images) = x_block with `pads` cells of `value` around each image (compiled: each row
    written once; NumPy's assignment of the interior copies a pixel's channels at a time)."""
    (top, bottom), (left, right) = pads
    if compiled.active() and block.dtype in (np.float32, np.float64) and x_block.dtype == block.dtype:
        flat = (block.flags.c_contiguous and x_block.flags.c_contiguous
                and x_block.shape[3] <= FLAT_FILL_MAX_CHANNELS)
        (fill_rows if flat else fill_pixels)(block, x_block, top, left, block.dtype.type(value))
        return
    h, w = x_block.shape[1:3]
    block[:, :top] = value
    block[:, top + h:] = value
    block[:, top:top + h, :left] = value
    block[:, top:top + h, left + w:] = value
    block[:, top:top + h, left:left + w] = x_block


def window_view(x_pad: np.ndarray, kernel_hw, strides, dilations, out_hw) -> np.ndarray:
    """Read-only view (N, out_h, out_w, kh, kw, C) of every window of a padded NHWC array (or a slice of one)."""
    sn, sh, sw, sc = x_pad.strides
    shape = (x_pad.shape[0], out_hw[0], out_hw[1], kernel_hw[0], kernel_hw[1], x_pad.shape[3])
    view_strides = (sn, sh * strides[0], sw * strides[1], sh * dilations[0], sw * dilations[1], sc)
    return as_strided(x_pad, shape=shape, strides=view_strides, writeable=False)


def offset_slice(i: int, j: int, strides, dilations, out_hw) -> Tuple[slice, slice, slice, slice]:
    """Index of the padded-input cells that kernel offset (i, j) touches, one per output pixel."""
    top, left = i * dilations[0], j * dilations[1]
    return (slice(None), slice(top, top + strides[0] * (out_hw[0] - 1) + 1, strides[0]),
            slice(left, left + strides[1] * (out_hw[1] - 1) + 1, strides[1]), slice(None))



def _image_blocks(ctx, image_bytes: int, budget: int) -> list:
    """(start, stop) ranges of images of `image_bytes` each that fit `budget` (at least one image each),
    as many per thread."""
    return balanced_ranges(ctx["input_shape"][0], budget // max(image_bytes, 1))


def _direct_blocks(ctx) -> bool:
    """True when `convolve` runs the direct kernel (`conv_path` chose it)."""
    return ctx["path"] == "direct"


def _forward_block_bytes(ctx, direct_blocks: bool) -> Tuple[int, int]:
    """(bytes per image, budget) of a forward block: the output the direct convolution writes, or
    the im2col (or Winograd) columns (the product's output follows them through the cache)."""
    if direct_blocks:
        return ctx["image_output_bytes"], direct.OUTPUT_BUDGET_BYTES
    return ctx["image_column_bytes"], COLUMN_BUDGET_BYTES


def _row_bands(ctx, direct_blocks: bool) -> list:
    """(images, output rows) slices of the forward blocks: whole images while one image fits the
    block budget, else bands of output rows of one image (e.g. 300x300 images)."""
    n, oh = ctx["input_shape"][0], ctx["out_hw"][0]
    image_bytes, budget = _forward_block_bytes(ctx, direct_blocks)
    if image_bytes <= budget:
        return [(slice(start, stop), slice(0, oh)) for start, stop in _image_blocks(ctx, image_bytes, budget)]
    rows = budget // max(image_bytes // oh, 1)
    return [(slice(image, image + 1), slice(top, bottom))
            for image in range(n) for top, bottom in balanced_ranges(oh, rows)]


def _column_buffer(ctx, images: int, rows: int) -> np.ndarray:
    """One flat buffer, reused by every block, for the columns of `images` images of `rows` output rows."""
    row_bytes = ctx["image_column_bytes"] // ctx["out_hw"][0]
    return np.empty(images * rows * row_bytes // ctx["dtype"].itemsize, dtype=ctx["dtype"])


def _columns(x_block: np.ndarray, geometry, buffer: np.ndarray) -> np.ndarray:
    """im2col of a block of padded images (one group's channels) as a (rows, kh*kw*C) matrix.

    `geometry` holds kernel_hw, strides, dilations, out_hw and pointwise.

    Single-channel input is gathered offset-major, kh*kw copies of long contiguous runs,
    and returned transposed (BLAS reads the transpose without a copy); otherwise the
    window view is copied once.  A 1x1, stride-1, unpadded convolution needs no copy.
    """
    nb, channels = x_block.shape[0], x_block.shape[3]
    (oh, ow), (kh, kw) = geometry["out_hw"], geometry["kernel_hw"]
    rows = nb * oh * ow
    if geometry["pointwise"]:
        return x_block.reshape(rows, channels)
    if channels == 1:
        cols_t = buffer[:kh * kw * rows].reshape(kh, kw, nb, oh, ow)
        for i in range(kh):
            for j in range(kw):
                cols_t[i, j] = x_block[offset_slice(i, j, geometry["strides"], geometry["dilations"],
                                                    geometry["out_hw"])][..., 0]
        return cols_t.reshape(kh * kw, rows).T
    cols = buffer[:rows * kh * kw * channels].reshape(nb, oh, ow, kh, kw, channels)
    np.copyto(cols, window_view(x_block, geometry["kernel_hw"], geometry["strides"], geometry["dilations"],
                                geometry["out_hw"]))
    return cols.reshape(rows, kh * kw * channels)


def _group_filters(w: np.ndarray, groups: int) -> list:
    """Each group's filters as a (kh*kw*in/groups, out/groups) matrix."""
    kh, kw, in_per_group, out_channels = w.shape
    per_group = out_channels // groups
    return [w[..., g * per_group:(g + 1) * per_group].reshape(kh * kw * in_per_group, per_group)
            for g in range(groups)]


def _check_conv_args(input, filters, strides, padding, data_format, dilations, groups):
    """The checked arguments; `groups=None` is inferred as `tf.nn.conv2d` does: in_channels / filters.shape[2]."""
    op = "conv2d"
    data_format = check_data_format(data_format, op)
    x = check_numeric_array(input, op, "input", ndim=4)
    w = check_numeric_array(filters, op, "filters", ndim=4)
    if groups is not None:
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
            raise TypeError(f"{op}: argument `groups` must be None (inferred from `filters`) or a positive int, "
                            f"got {groups!r}")
        if groups < 1:
            raise ValueError(f"{op}: argument `groups` must be None (inferred from `filters`) or a positive int, "
                             f"got {groups!r}")
    strides = spatial_pair(strides, "strides", op, data_format)
    dilations = spatial_pair(1 if dilations is None else dilations, "dilations", op, data_format)
    padding = parse_padding(padding, op, data_format)
    input_shape = x.shape
    x = check_image_batch(x, op, data_format)
    channels = x.shape[3]
    in_per_group, out_channels = w.shape[2:]
    if min(w.shape) < 1:
        raise ValueError(f"{op}: argument `filters` must have a non-empty shape [kh, kw, in/groups, out], "
                         f"got {w.shape}")
    if groups is None:       # tf.nn.conv2d: groups = in_channels / filters.shape[2]
        if channels % in_per_group:
            raise ValueError(f"{op}: argument `filters` of shape {w.shape} has {in_per_group} input channels "
                             f"per group (axis 2), which must divide the input's {channels} channels "
                             f"(groups = in_channels / filters.shape[2]), got input of shape {input_shape} "
                             f"({data_format})")
        groups = channels // in_per_group
        if out_channels % groups:
            raise ValueError(f"{op}: argument `filters` of shape {w.shape} has {out_channels} output channels "
                             f"(axis 3), which must be a multiple of groups = in_channels / filters.shape[2] "
                             f"= {channels} / {in_per_group} = {groups}")
        return x, w, strides, dilations, padding, data_format, int(groups)
    if channels % groups:
        raise ValueError(f"{op}: argument `groups` ({groups}) must divide the input channels, "
                         f"got {channels} input channels (input of shape {input_shape}, {data_format})")
    if out_channels % groups:
        raise ValueError(f"{op}: argument `groups` ({groups}) must divide the output channels of "
                         f"`filters`, got {out_channels} output channels (filters of shape {w.shape})")
    if in_per_group * groups != channels:
        raise ValueError(f"{op}: argument `filters` must have in/groups = {channels // groups} input "
                         f"channels on axis 2 (input has {channels} channels, groups={groups}), got filters "
                         f"of shape {w.shape}; leave `groups` out to infer it as in_channels / filters.shape[2]")
    return x, w, strides, dilations, padding, data_format, int(groups)


def _forward_context(x: np.ndarray, w: np.ndarray, strides, padding, dilations, groups: int,
                     data_format: str, pad_in_blocks: bool = False) -> Dict[str, Any]:
    """The geometry of a convolution of the validated `x` (NHWC) by `w`, with the input (padded, or to be padded
    by the blocks): what the blocks of the forward pass and `conv2d_backward` read.

    "path": the forward blocks' computation (`conv_path`); "direct": the direct kernel applies
    (its tiles can pool, `pools_in_tiles`); "winograd": the path is Winograd.  With
    `pad_in_blocks`, the direct convolution's blocks pad their images (or a band's rows of one) into a
    scratch block that stays in cache, and the context holds `x` instead of the padded input ("x_pad" None
    until another path asks `padded_input`; `conv2d_backward`'s direct filter gradient pads its blocks too):
    padding the whole input first took a noticeable share of seed 000's second layer's time at 128 images
    (measurements: benchmarks/README.md, 'Measurements behind the code's choices').
    """
    return bind_arrays(forward_geometry(x, w, strides, padding, dilations, groups, data_format, pad_in_blocks),
                       x, w)


def forward_geometry(x: np.ndarray, w: np.ndarray, strides, padding, dilations, groups: int,
                     data_format: str, pad_in_blocks: bool = False) -> Dict[str, Any]:
    """`_forward_context` without its arrays: what the shapes and dtypes of `x` and `w` decide, so that a
    prepared op decides it once for every call of those shapes (`bind_arrays` adds a call's arrays)."""
    dtype = float_dtype(x, w)
    n, h, width = x.shape[:3]
    kh, kw, in_per_group, out_channels = w.shape
    out_hw, pads = window_geometry((h, width), (kh, kw), strides, dilations, padding, "conv2d", "filters")
    pointwise = (kh, kw) == (1, 1) and strides == (1, 1) and pads == ((0, 0), (0, 0))
    column_bytes = out_hw[0] * out_hw[1] * kh * kw * in_per_group * dtype.itemsize
    geometry = Geometry(dtype, (kh, kw), strides, dilations, groups, in_per_group, out_channels, out_hw, n,
                        pointwise, column_bytes <= COLUMN_BUDGET_BYTES)
    path, use_direct = conv_path(geometry), _direct_applies(geometry)
    ctx = {"input_shape": x.shape, "pads": pads, "strides": strides, "dilations": dilations,
           "groups": groups, "kernel_hw": (kh, kw), "out_hw": out_hw, "data_format": data_format,
           "dtype": dtype, "image_column_bytes": column_bytes, "path": path,
           "image_output_bytes": out_hw[0] * out_hw[1] * out_channels * dtype.itemsize,
           "pointwise": pointwise, "direct": use_direct, "padded_shape": padded_shape(x.shape, pads),
           "winograd": path == "winograd"}
    ctx["pads_in_blocks"] = pad_in_blocks and use_direct and any(pads[0] + pads[1])
    return ctx


def bind_arrays(geometry: Dict[str, Any], x: np.ndarray, w: np.ndarray) -> Dict[str, Any]:
    """A new context: `geometry` (`forward_geometry`'s, for these shapes and dtypes) with the filters and
    the input, padded now or ("pads_in_blocks") by the direct kernel's blocks."""
    dtype = geometry["dtype"]
    x = x.astype(dtype, copy=False)
    ctx = dict(geometry, filters=w.astype(dtype, copy=False))
    if ctx["pads_in_blocks"]:
        ctx["x"], ctx["x_pad"] = np.ascontiguousarray(x), None
    else:
        x_pad = pad_spatial(x, ctx["pads"])
        ctx["x_pad"] = np.ascontiguousarray(x_pad) if ctx["direct"] else x_pad
    return ctx


def padded_input(ctx) -> np.ndarray:
    """The whole padded input of the context (padded now, once, if it pads in blocks)."""
    if ctx["x_pad"] is None:
        ctx["x_pad"] = pad_spatial(ctx["x"], ctx["pads"])
    return ctx["x_pad"]


def whole_image_blocks(ctx, direct_blocks: Optional[bool] = None) -> bool:
    """True when the forward blocks (of `convolve`, or of the direct kernel if `direct_blocks`) are
    whole images, not bands of rows of one large image."""
    image_bytes, budget = _forward_block_bytes(ctx, _direct_blocks(ctx) if direct_blocks is None else direct_blocks)
    return image_bytes <= budget


def direct_bands(ctx) -> int:
    """Bands of output rows per image for `run_direct_claimed`: 1, or as many as give `DIRECT_ITEMS_PER_THREAD` items
    per thread where the images are fewer, or keep a band's output within `direct.OUTPUT_BUDGET_BYTES` (a band's
    padded rows stay in cache); each a tile high at least (2 rows where the output is narrower than the tiles'
    `direct.PIXELS`)."""
    images, (oh, ow) = ctx["input_shape"][0], ctx["out_hw"]
    height = 2 if ow < direct.PIXELS else 1
    wanted = max(-(-DIRECT_ITEMS_PER_THREAD * worker_count() // images),
                 -(-ctx["image_output_bytes"] // direct.OUTPUT_BUDGET_BYTES))
    return max(1, min(oh // height, wanted))


def run_direct_claimed(ctx, out: np.ndarray, prepared, bands: int, finish: Optional[tuple]) -> None:
    """`out` = the direct convolution of the context's input (`prepared`: `direct.prepare`'s), its items (band
    i % `bands` of image i // `bands`) claimed by the threads in compiled code (`direct.conv_claimed_block`, no
    Python per item; all on the calling thread under `direct.SMALL_WORK`, `_direct_alone`): the padded input where
    the context holds one, else the rows an item's windows read padded into a scratch block of the call's;
    `finish`: `direct.finish_vectors`' (None: the sums as they are)."""
    x, pads = (ctx["x"], ctx["pads"]) if ctx["x_pad"] is None else (ctx["x_pad"], None)
    x = np.ascontiguousarray(x)
    reach = (ctx["kernel_hw"][0] - 1) * ctx["dilations"][0] + 1
    run_claimed(len(out) * bands, lambda counter: direct.conv_claimed_block(
        x, pads, prepared, ctx["strides"], reach, out, counter, bands, finish=finish), alone=_direct_alone(ctx))


def _run_direct(ctx, bands: list, compute: Callable[[list], Any]) -> None:
    """`compute` on the direct kernel's `bands`, shared among the threads, or all on the calling thread
    when the convolution is small (`_direct_alone`)."""
    run_in_parallel(bands, compute, calls_blas=False, alone=_direct_alone(ctx), claimed=True)


def _direct_alone(ctx) -> bool:
    """True when the direct convolution is smaller than `direct.SMALL_WORK` multiply-adds: it stays on the
    calling thread (a hand-over costs more)."""
    n, (oh, ow) = ctx["input_shape"][0], ctx["out_hw"]
    kh, kw, in_per_group, out_channels = ctx["filters"].shape
    return n * oh * ow * kh * kw * in_per_group * out_channels < direct.SMALL_WORK


def convolve(ctx, epilogue: Callable[[np.ndarray], Any], out: Optional[np.ndarray] = None,
             finish: Optional[Callable[[slice, np.ndarray], Any]] = None,
             in_tiles: Optional[Tuple[Any, str]] = None) -> None:
    """The forward blocks of the convolution `ctx` describes, on the BLAS threads.

    `epilogue(rows)` finishes each block's output, a (rows, out_channels) matrix, in place
    while it is in cache.  The blocks are written into `out` (N, out_h, out_w, out_channels)
    or, with `finish`, into one scratch block per thread handed to `finish(images, block)`,
    which must be done with it before the next block (whole-image blocks only).  `in_tiles`:
    (bias, activation), what `epilogue` does ((None, "linear"): nothing), which the direct kernel does instead in
    its tiles (`direct.finish_vectors`: the same numbers, no pass over the block), its items then claimed by the
    threads in compiled code where no `finish` is given (`run_direct_claimed`).
    """
    w, groups, direct_blocks = ctx["filters"], ctx["groups"], _direct_blocks(ctx)
    x_pad = None if direct_blocks else padded_input(ctx)
    kh, kw, in_per_group, out_channels = w.shape
    out_hw, strides, dilations = ctx["out_hw"], ctx["strides"], ctx["dilations"]
    out_per_group = out_channels // groups
    filter_matrices = _group_filters(w, groups)
    bands = _row_bands(ctx, direct_blocks)

    def targets(chunk):
        """(images, rows, output block) of each band of `chunk`: views of `out`, or of one scratch block."""
        if finish is None:
            return [(images, rows, out[images, rows]) for images, rows in chunk]
        scratch = np.empty((max(images.stop - images.start for images, _ in chunk),) + tuple(out_hw)
                           + (out_channels,), dtype=ctx["dtype"])
        return [(images, rows, scratch[:images.stop - images.start]) for images, rows in chunk]

    def compute(chunk):
        buffer = _column_buffer(ctx, max(b[0].stop - b[0].start for b in chunk),
                                max(b[1].stop - b[1].start for b in chunk))
        for images, rows, target in targets(chunk):
            band = dict(ctx, out_hw=(rows.stop - rows.start, out_hw[1]))
            top, bottom = rows.start * strides[0], (rows.stop - 1) * strides[0] + dilations[0] * (kh - 1) + 1
            out_band = target.reshape(-1, out_channels)
            for g in range(groups):
                cols = _columns(x_pad[images, top:bottom, :, g * in_per_group:(g + 1) * in_per_group], band,
                                buffer)
                if groups == 1:
                    np.matmul(cols, filter_matrices[0], out=out_band)
                else:
                    out_band[:, g * out_per_group:(g + 1) * out_per_group] = cols @ filter_matrices[g]
            epilogue(out_band)
            if finish is not None:
                finish(images, target)

    def compute_direct(chunk):               # (the epilogue not in the tiles, or a `finish`)
        padded = padded_input(ctx)
        for images, rows, target in targets(chunk):
            direct.conv_block(padded, images.start, rows.start * strides[0], prepared, strides, target)
            epilogue(target.reshape(-1, out_channels))
            if finish is not None:
                finish(images, target)

    def compute_winograd(chunk):
        for images, _, target in targets(chunk):
            winograd.conv_block(tiled, transformed, target, images.start)
            epilogue(target.reshape(-1, out_channels))
            if finish is not None:
                finish(images, target)

    if not bands:
        return
    if finish is not None and not whole_image_blocks(ctx):
        raise ValueError("convolve: `finish` needs whole-image blocks")
    if ctx["path"] == "winograd":
        transformed, tiled = winograd.transform_filters(w), winograd.tile_input(x_pad, out_hw)
        run_in_parallel(bands, compute_winograd, claimed=True)
    elif direct_blocks:
        prepared = direct.prepare(w, ctx["padded_shape"], dilations, ctx.get("kept_filters"))
        finishes = in_tiles is not None and (in_tiles[0] is not None or in_tiles[1] == "relu")
        vectors = direct.finish_vectors(prepared, in_tiles[0], in_tiles[1] == "relu", None, None, False,
                                        False) if finishes else None
        if finish is None and in_tiles is not None:     # the whole epilogue in the tiles: no Python per item
            run_direct_claimed(ctx, out, prepared, direct_bands(ctx), vectors)
        else:
            _run_direct(ctx, bands, compute_direct)
    else:
        run_in_parallel(bands, compute, claimed=True)


def pools_in_tiles(ctx, window, pooled_hw, clip: bool = False) -> bool:
    """True when `convolve_pooled` can compute this convolution followed by a pooling `window`
    (`pool_geometry`'s): the direct kernel, whole-image blocks and a 2x2 stride-2 unpadded window (with
    `clip`, an inference's max pooling, also one that the output's edge cuts: `direct.pools_in_tiles`).
    Also where Winograd applies: never writing the convolution's output beats it (seed 001's 3x3
    75 -> 50 layer with its pooling: as fast as Winograd or faster at 8-512 images; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices')."""
    return (ctx["direct"] and whole_image_blocks(ctx, True)
            and direct.pools_in_tiles(ctx["out_hw"], window, pooled_hw, clip))


def convolve_pooled(ctx, bias, activation: str, scale, shift, then: str, average: bool,
                    pooled: np.ndarray, argmax: Optional[np.ndarray] = None) -> None:
    """`pooled` = the 2x2 stride-2 max (or, if `average`, mean) pooling of
    `then(activation(conv + bias) * scale + shift)`, each tile finished and pooled in registers by the first of
    `_POOLED_KERNELS` that applies (where `pools_in_tiles`): the convolution's output is never written.  With
    `argmax` (a training step's), also each window's offset of its first maximum (`max_pool2d_context`'s)."""
    x, pads = (ctx["x"], ctx["pads"]) if ctx["x_pad"] is None else (ctx["x_pad"], None)
    x = np.ascontiguousarray(x)
    prepare_pooled(ctx, x.shape, pads, pooled.shape, argmax is not None)(
        x, ctx["filters"], ctx.get("kept_filters"), (bias, activation, scale, shift, then, average), pooled, argmax)


def prepare_pooled(geometry, x_shape, pads, pooled_shape, tracked: bool = False):
    """`convolve_pooled`'s choices for a convolution of `geometry` (a context, or `forward_geometry`'s with the
    "filters") of inputs of `x_shape`, padded by `pads` as its blocks are computed (or None), pooled into
    `pooled_shape`, with `argmax` if `tracked`: its kernel, threads, bands and the kernel's constant arguments,
    made once (an inference op prepared per input shape makes them once; at batch 1 they were a sizeable share of
    its time).  Returns `run(x, filters, kept, finish, pooled, argmax)`: `x` and `pooled` C-contiguous of those
    shapes, `kept` a `KeptFilters` or None, `finish` (bias, activation, scale, shift, then, average)."""
    _, bind = next(entry for entry in _POOLED_KERNELS if entry[0](geometry, pooled_shape[1:3], tracked))
    alone = _direct_alone(geometry)     # one thread: whole images (a band's last tiles leave part of a register tile)
    bands = pooled_shape[1] if pooled_shape[0] < POOLED_BAND_IMAGES and not alone else 1
    items, work = pooled_shape[0] * bands, bind(geometry, x_shape, pads, pooled_shape, bands, tracked)

    def run(x, filters, kept, finish, pooled, argmax=None):
        run_claimed(items, work(x, filters, kept, finish, pooled, argmax), alone=alone)
    return run


def _direct_pooled(geometry, x_shape, pads, pooled_shape, bands, tracked):
    """`work(x, filters, kept, finish, pooled, argmax)` -> `work(counter)` of the direct kernel's pooled tiles
    (`direct.pooled_tiles`)."""
    filter_shape = geometry["filters"].shape
    taps, lanes = direct.taps_and_lanes(filter_shape, geometry["padded_shape"], geometry["dilations"])
    padded = direct.padded_channels(filter_shape[3], lanes)
    call = direct.pooled_tiles(x_shape, pads, taps, lanes, geometry["strides"], pooled_shape, bands, tracked,
                               direct.pooled_clips(geometry["out_hw"], pooled_shape[1:3]))

    def work(x, filters, kept, finish, pooled, argmax):
        tiled, epilogue = direct.tile_filters(filters, lanes, kept), direct.tile_epilogue(padded, *finish)
        return lambda counter: call(x, tiled, epilogue, pooled, counter, argmax)
    return work


def _winograd_pooled(geometry, x_shape, pads, pooled_shape, bands, tracked):
    """`work(x, filters, kept, finish, pooled, argmax)` -> `work(counter)` of Winograd F(2x2, 2x2)'s pooled tiles
    (`winograd_pool.pooled_tiles`; never `tracked`)."""
    filter_shape = geometry["filters"].shape
    taps, lanes = winograd_pool.taps_and_lanes(filter_shape)
    padded = direct.padded_channels(filter_shape[3], lanes)
    call = winograd_pool.pooled_tiles(x_shape, pads, taps, lanes, pooled_shape, bands)

    def work(x, filters, kept, finish, pooled, argmax):
        cells, epilogue = winograd_pool.tile_cells(filters, lanes, kept), direct.tile_epilogue(padded, *finish)
        return lambda counter: call(x, cells, epilogue, pooled, counter)
    return work


def _winograd_pool_applies(ctx, pooled_hw, tracked: bool) -> bool:
    """`winograd_pool.applies` to an inference convolution of `ctx` and its pooling (`convolve_pooled` runs only
    where `pools_in_tiles`: a 2x2 stride-2 unpadded window).  A training step's (`tracked`) keeps the direct
    kernel's numbers, those of the ops one after another; a CPU whose 512-bit units run whole
    (`direct.full_width_units`) the direct kernel's tiles, whose multiply-adds there ran seed 000's second layer
    as fast or faster (measurements: benchmarks/README.md, 'Measurements behind the code's choices')."""
    kh, kw, in_per_group, out_channels = ctx["filters"].shape
    return (not tracked and not direct.full_width_units()
            and winograd_pool.applies((kh, kw), ctx["strides"], ctx["dilations"], ctx["groups"], in_per_group,
                                      out_channels, ctx["out_hw"], (2, 2, 2, 2, 0, 0), pooled_hw, ctx["dtype"]))


# convolve_pooled's kernels, the first that applies is taken: (applies(geometry, pooled_hw, tracked), work-maker)
_POOLED_KERNELS = (
    (_winograd_pool_applies, _winograd_pooled),
    (lambda ctx, pooled_hw, tracked: True, _direct_pooled),
)


def conv2d_forward(input, filters, strides, padding, data_format: str = "NHWC", dilations=None,
                   groups: Optional[int] = None, bias=None, activation: str = "linear"
                   ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """`conv2d` plus the context `conv2d_backward` needs (the input, padded where the direct kernel does not pad
    its blocks, the filters and the geometry).

    `bias` (one per filter) and `activation` ("linear" or "relu") are applied to each
    block of output while it is in the cache, as Conv2D does after the convolution;
    `conv2d_backward` returns the gradient w.r.t. the convolution's own output, so the
    caller applies the activation's and the bias' backward (`ops.bias_activation_backward`).
    The context holds a reference to the input (not a copy): the caller must not change the input in
    place before the backward pass.  Where the direct kernel runs, its blocks pad what they read in
    cache in both passes (the whole padded input, written first and kept for the backward pass, took
    longer since the forward pass claims its blocks in compiled code; measurements: benchmarks/README.md,
    'Measurements behind the code's choices'); other paths keep the padded input.
    """
    x, w, strides, dilations, padding, data_format, groups = _check_conv_args(
        input, filters, strides, padding, data_format, dilations, groups)
    bias = check_epilogue(bias, activation, w.shape[3], "conv2d", "one per filter")
    ctx = _forward_context(x, w, strides, padding, dilations, groups, data_format, pad_in_blocks=True)
    bias = None if bias is None else bias.astype(ctx["dtype"], copy=False)
    out = np.empty((x.shape[0],) + tuple(ctx["out_hw"]) + (w.shape[3],), dtype=ctx["dtype"])
    convolve(ctx, lambda rows: bias_activation_forward(rows, bias, activation), out, in_tiles=(bias, activation))
    return from_nhwc(out, data_format), ctx


def conv2d(input, filters, strides, padding, data_format: str = "NHWC", dilations=None,
           groups: Optional[int] = None, bias=None, activation: str = "linear") -> np.ndarray:
    """`tf.nn.conv2d`: filters [kh, kw, in/groups, out], cross-correlation, TF's SAME split;
    then, optionally, `activation(. + bias)` fused in ("linear" or "relu").

    `groups` is inferred as `tf.nn.conv2d` does, in_channels / filters.shape[2], when it is
    None; a given `groups` must agree with the filters' shape.

    The columns are built a block of images at a time, so memory stays near the
    size of the input and the output even for large batches (e.g. 300x300 images).
    On an active tape that sees the input or the filters (a custom layer's call) it records its backward.
    """
    if sees(input, filters, bias):
        y = record_forward("conv2d", [input, filters], lambda x, w: conv2d_forward(
            x, w, strides, padding, data_format, dilations, groups), lambda ctx, g, need: list(conv2d_backward(
                g, ctx, need_input_grad=need[0])))
        return epilogue_on_tape(y, bias, activation, data_format, "conv2d")
    return conv2d_forward(input, filters, strides, padding, data_format, dilations, groups, bias, activation)[0]


def _add_input_grad(grad_block: np.ndarray, grad_rows: np.ndarray, w_group: np.ndarray, ctx) -> None:
    """Add one block's (and group's) input gradient into `grad_block`, its slice of the padded gradient.

    The column gradient comes from one product, then one strided addition per kernel
    offset scatters it back (col2im); a 1x1 unpadded stride-1 convolution needs only the product.
    """
    nb, channels = grad_block.shape[0], grad_block.shape[3]
    (oh, ow), (kh, kw) = ctx["out_hw"], ctx["kernel_hw"]
    if ctx["pointwise"]:
        if grad_block.flags.c_contiguous:         # one group: the product written in place, no copy after
            np.matmul(grad_rows, w_group.T, out=grad_block.reshape(-1, channels))
        else:
            grad_block[...] = (grad_rows @ w_group.T).reshape(grad_block.shape)
        return
    grad_cols = grad_rows @ w_group.T
    if compiled.active():
        _col2im_kernel(grad_cols, grad_block, kh, kw, *ctx["strides"], *ctx["dilations"], oh, ow)
        return
    grad_cols = grad_cols.reshape(nb, oh, ow, kh, kw, channels)
    for i in range(kh):
        for j in range(kw):
            grad_block[offset_slice(i, j, ctx["strides"], ctx["dilations"], ctx["out_hw"])] += grad_cols[:, :, :, i, j]


@compiled.kernel
def _col2im_kernel(grad_cols, grad_block, kh, kw, stride_h, stride_w, dilation_h, dilation_w, oh, ow):
    """Add each column-gradient row into the padded input cells its window covers (col2im), in one pass."""
    channels = grad_block.shape[3]
    for n in range(grad_block.shape[0]):
        for oy in range(oh):
            for ox in range(ow):
                row = (n * oh + oy) * ow + ox
                for i in range(kh):
                    iy = oy * stride_h + i * dilation_h
                    for j in range(kw):
                        ix = ox * stride_w + j * dilation_w
                        base = (i * kw + j) * channels
                        for c in range(channels):
                            grad_block[n, iy, ix, c] += grad_cols[row, base + c]


def _transposed_geometry(ctx):
    """Geometry of the input gradient as a stride-1 convolution of the output gradient, or None.

    With stride 1, grad_input = the output gradient padded by (k_eff - 1 - pad) cells on each
    side, correlated with the filters flipped in space and transposed (in <-> out channels).
    Used from `TRANSPOSED_MIN_CHANNELS` input channels per group, where its product (depth
    kh*kw*out) runs faster than the column gradient's product plus the strided scatter.
    """
    in_per_group = ctx["filters"].shape[2]
    if ctx["strides"] != (1, 1) or ctx["pointwise"] or in_per_group < TRANSPOSED_MIN_CHANNELS:
        return None
    grad_pads = []
    for axis in range(2):
        span = ctx["dilations"][axis] * (ctx["kernel_hw"][axis] - 1) + 1
        before, after = ctx["pads"][axis]
        if max(before, after) > span - 1:
            return None
        grad_pads.append((span - 1 - before, span - 1 - after))
    return {"kernel_hw": ctx["kernel_hw"], "strides": (1, 1), "dilations": ctx["dilations"],
            "out_hw": tuple(ctx["input_shape"][1:3]), "pointwise": False, "pads": tuple(grad_pads)}


def _transposed_filters(w_group: np.ndarray) -> np.ndarray:
    """Filters (kh, kw, in, out) flipped in space, as a (kh*kw*out, in) matrix for the transposed convolution."""
    kh, kw, channels, out_channels = w_group.shape
    return np.ascontiguousarray(w_group[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(kh * kw * out_channels, channels)


def _transposed_plan(ctx) -> Optional[Dict[str, Any]]:
    """How the input gradient runs as a stride-1 transposed convolution (`_transposed_geometry`), or None:
    its padding, the flipped filters and its path (`conv_path`) with what that path prepares."""
    transposed = _transposed_geometry(ctx)
    if transposed is None:
        return None
    n, h, width, channels = ctx["input_shape"]
    w, groups, out_hw = ctx["filters"], ctx["groups"], ctx["out_hw"]
    kh, kw, in_per_group, out_channels = w.shape
    out_per_group = out_channels // groups
    (top, bottom), (left, right) = transposed["pads"]
    plan = dict(transposed, pad_hw=(top + out_hw[0] + bottom, left + out_hw[1] + right),
                flipped=[_transposed_filters(w[..., g * out_per_group:(g + 1) * out_per_group])
                         for g in range(groups)])
    plan["path"] = conv_path(Geometry(ctx["dtype"], (kh, kw), (1, 1), ctx["dilations"], groups, out_per_group,
                                      in_per_group, (h, width), n, False, True))
    if plan["path"] == "winograd":
        plan["winograd"] = winograd.transform_filters(plan["flipped"][0].reshape(kh, kw, out_channels, channels))
    elif plan["path"] == "direct":
        plan["direct"] = direct.prepare(plan["flipped"][0].reshape(kh, kw, out_channels, channels),
                                        (n,) + plan["pad_hw"] + (out_channels,), ctx["dilations"])
    return plan


def _transposed_block(plan, ctx, grad_pad: np.ndarray, grad_columns, g: int, target: np.ndarray) -> None:
    """target (images, h, w, in/groups) = group g's input gradient from its padded output gradient
    `grad_pad` (images first), by the plan's path."""
    if plan["path"] == "winograd":
        winograd.conv_block(winograd.tile_input(grad_pad, target.shape[1:3]), plan["winograd"], target, 0)
    elif plan["path"] == "direct":
        direct.conv_block(grad_pad, 0, 0, plan["direct"], (1, 1), target)
    elif ctx["groups"] == 1:       # contiguous: the product goes straight into the gradient
        np.matmul(_columns(grad_pad, plan, grad_columns), plan["flipped"][g], out=target.reshape(-1, target.shape[3]))
    else:
        target[...] = (_columns(grad_pad, plan, grad_columns) @ plan["flipped"][g]).reshape(target.shape)


def conv2d_backward(grad_output, ctx: Dict[str, Any],
                    need_input_grad: bool = True) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """Gradients of the last `conv2d_forward` w.r.t. its input and its filters.

    Block by block as the forward pass: the columns are rebuilt for the filter gradient
    (cheaper than keeping kh*kw copies of the input between the passes), or, for thin float32
    convolutions, the direct kernel sums it from the padded input (or blocks of images padded in a scratch
    block, where the context keeps the unpadded input).  The input gradient is a
    stride-1 transposed convolution where that is faster, on the path `conv_path` chooses for
    it (direct, Winograd, im2col + GEMM), else col2im.
    """
    op = "conv2d_backward"
    data_format = ctx["data_format"]
    grad = to_nhwc(check_numeric_array(grad_output, op, "grad_output", ndim=4), data_format)
    n, h, width, channels = ctx["input_shape"]
    w = ctx["filters"]
    kh, kw, in_per_group, out_channels = w.shape
    out_hw, groups, dtype = ctx["out_hw"], ctx["groups"], ctx["dtype"]
    expected = (n, out_hw[0], out_hw[1], out_channels)
    if grad.shape != expected:
        raise ValueError(f"{op}: argument `grad_output` must have the forward output's shape "
                         f"{from_nhwc(np.empty(expected, dtype=bool), data_format).shape}, "
                         f"got {np.shape(grad_output)}")
    out_per_group = out_channels // groups
    pixels = out_hw[0] * out_hw[1]
    grad_rows = np.ascontiguousarray(grad, dtype=dtype).reshape(-1, out_channels)
    filter_matrices = _group_filters(w, groups)
    plan = _transposed_plan(ctx) if need_input_grad else None
    if plan is not None:
        grad_input = np.empty((n, h, width, channels), dtype=dtype)
    elif need_input_grad:
        grad_input = np.empty(ctx["padded_shape"], dtype=dtype)  # padded, each block zeroed first; cropped at the end
    filter_direct = None
    if direct.computes_filter_grad(dtype, (kh, kw), groups, in_per_group, out_channels, ctx["pointwise"]):
        filter_direct = direct.prepare(w, ctx["padded_shape"], ctx["dilations"])
    # the direct filter gradient pads each block itself where the forward pass kept no padded input (in cache,
    # not a whole padded copy written to memory and read back)
    x_pad = padded_input(ctx) if filter_direct is None else ctx["x_pad"]
    if x_pad is not None and filter_direct is not None:
        x_pad = np.ascontiguousarray(x_pad)

    def compute(blocks):
        """The filter gradient of `blocks` (returned) and their input gradient (written in place)."""
        images = max(stop - start for start, stop in blocks)
        buffer = None if filter_direct is not None else _column_buffer(ctx, images, out_hw[0])
        scratch = np.empty((images,) + ctx["padded_shape"][1:], dtype=dtype) if x_pad is None else None
        grad_w = np.zeros((groups, kh * kw * in_per_group, out_per_group), dtype=dtype)
        if filter_direct is not None:      # the direct kernel's (taps, padded filters) layout
            padded_grad_w = np.zeros((kh * kw * in_per_group, filter_direct[0].size // filter_direct[1].size),
                                     dtype=dtype)
        if plan is not None:
            grad_pad = np.empty((images,) + plan["pad_hw"] + (out_per_group,), dtype=dtype)
            grad_columns = (np.empty(images * h * width * kh * kw * out_per_group, dtype=dtype)
                            if plan["path"] == "gemm" else None)
        for start, stop in blocks:
            count = stop - start
            for g in range(groups):
                channel_slice = slice(g * in_per_group, (g + 1) * in_per_group)
                block_grad = grad_rows[start * pixels:stop * pixels, g * out_per_group:(g + 1) * out_per_group]
                if filter_direct is not None:
                    padded, first = x_pad, start
                    if scratch is not None:
                        padded, first = scratch[:count], 0
                        _fill_padded(padded, ctx["x"][start:stop], ctx["pads"])
                    direct.filter_grad_block(padded, first, filter_direct, ctx["strides"],
                                             block_grad.reshape(count, *out_hw, out_channels), padded_grad_w)
                else:
                    cols = _columns(x_pad[start:stop, :, :, channel_slice], ctx, buffer)
                    grad_w[g] += cols.T @ block_grad
                if plan is not None:
                    _fill_padded(grad_pad[:count], block_grad.reshape(count, *out_hw, out_per_group), plan["pads"])
                    _transposed_block(plan, ctx, grad_pad[:count], grad_columns, g,
                                      grad_input[start:stop, :, :, channel_slice])
                elif need_input_grad:
                    if not ctx["pointwise"]:          # col2im adds into it (a 1x1's product is assigned)
                        grad_input[start:stop, :, :, channel_slice] = 0
                    _add_input_grad(grad_input[start:stop, :, :, channel_slice], block_grad, filter_matrices[g], ctx)
        if filter_direct is not None:
            grad_w[0] = padded_grad_w[:, :out_channels]
        return grad_w

    blocks = _image_blocks(ctx, ctx["image_column_bytes"], COLUMN_BUDGET_BYTES)
    grad_w = (sum(run_in_parallel(blocks, compute)) if blocks
              else np.zeros((groups, kh * kw * in_per_group, out_per_group), dtype=dtype))
    grad_filters = np.ascontiguousarray(
        grad_w.reshape(groups, kh, kw, in_per_group, out_per_group).transpose(1, 2, 3, 0, 4)
        .reshape(kh, kw, in_per_group, out_channels))
    if not need_input_grad:
        return None, grad_filters
    if plan is None:
        (top, _), (left, _) = ctx["pads"]
        grad_input = grad_input[:, top:top + h, left:left + width, :]
    return from_nhwc(grad_input, data_format), grad_filters
