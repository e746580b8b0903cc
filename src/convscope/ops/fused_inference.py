"""Inference convolutions of MobileNet/ResNet blocks with their whole epilogue fused.

The epilogue of one output value is

    then(activation(z + bias) * scale + shift + residual)

— the layer's bias and activation, an inference BatchNormalization's per-channel map
(`batch_norm_affine`), the other operand of a residual `Add`, and the activation after
them; `activation` and `then` are "linear", "relu", "relu6" or "hard_silu" (hard-swish).
It is applied to each block of output while the block is in cache, so a conv -> BN ->
ReLU6 or a conv -> BN -> Add -> ReLU writes its output once.

Each op has a short NumPy reference (`*_reference`: the ops one after another) and an
ordered list of paths, the first that applies runs (as oneDNN's implementation lists):

* `depthwise_inference`: for MobileNets' 3x3 windows (stride 1 or 2), a SIMD kernel that loads each
  input vector once for all the pixels of a tile that read it; else the SIMD kernel for any window;
  else a compiled NHWC kernel (channel multiplier 1, channels innermost so the compiler vectorizes
  over them; any window, stride, dilation, padding, borders handled without a padded copy); else
  the reference;
* `conv2d_epilogue_inference`: `conv2d_inference` where its own epilogue (bias, ReLU, the
  BN map, ReLU, a ReLU6's cap last) is the whole epilogue, but for an unpadded 1x1 convolution of one group; else
  a 1x1 convolution as one GEMM on the NHWC rows
  (a strided one reads every s-th pixel first): of few rows (batch 1), the matrix's columns shared
  among the threads (`dense_tiles`' products for 5 to `dense_tiles.max_rows()` float32 rows, then the epilogue), or,
  of one image of a few hundred pixels, `direct_wide`'s tiles on blocks of 64 filters finishing the whole epilogue
  (residual included) themselves, or BLAS' columns, then the epilogue; else, where the rows-first tiles below take
  the whole product, its blocks of rows claimed by the threads in compiled code (`pointwise_simd`'s shared product:
  no pool thread waiting for the GIL), or one block of rows per thread with the epilogue after its product; else
  `conv2d_inference` and the rest of the epilogue in one more pass (each path prepared once per input shape:
  `conv2d_inference`'s checks and geometry are not repeated at every call);
* `_product_rows` (a block of a 1x1 product with its epilogue, here and in `inverted_residual`): SIMD
  tiles finished in registers (`pointwise_simd`): up to 32 input channels without a residual; more, rows
  first, from the matrix packed once per op where the product has `pointwise_simd.PACK_ROWS` rows or more
  (a 1x1 convolution's tiles of `pointwise_simd.TALL_ROWS` where 512-bit units run whole: 512 rows and a matrix
  of at most `pointwise_simd.TALL_PACK_BYTES`), or from the matrix as it is up to 64 (a large output of at
  most 64 input channels stored non-temporally); else BLAS' product, then the compiled epilogue.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from . import compiled, conv_split, dense_tiles, depthwise_fast, direct_wide, pointwise_simd
from .activations import get_activation
from .conv import _check_conv_args, conv2d
from .epilogue import FUSED_ACTIVATIONS, check_affine, finish_channels, finish_channels_as
from .fused import prepare_conv2d_inference
from .padding import check_numeric_array, float_dtype, window_geometry
from .parallel import balanced_ranges, on_slices, run_in_parallel, tiles_by_columns, worker_count

__all__ = ["INFERENCE_ACTIVATIONS", "epilogue_inference", "epilogue_reference", "depthwise_inference",
           "prepare_depthwise_inference", "depthwise_inference_reference", "conv2d_epilogue_inference",
           "prepare_conv2d_epilogue_inference", "conv2d_epilogue_reference"]

INFERENCE_ACTIVATIONS = ("linear", "relu", "relu6", "hard_silu")
_CODES = {name: code for code, name in enumerate(INFERENCE_ACTIVATIONS)}
_HARD_SWISH = _CODES["hard_silu"]
GEMM_BLOCK_ROWS = sys.maxsize   # rows of one 1x1 product block at most: in effect one block per thread (BLAS packs
                                # the matrix once per block; blocks in L2 for the epilogue ran 1.1-1.3x as long)
COLUMN_SPLIT_ROWS = 1024       # 1x1 products of at most this many rows are shared among threads by columns
SMALL_WORK = 1 << 22            # multiply-adds under which a 1x1 product stays one block on the calling thread


def _conv_args(op, input, filters, strides, padding, dilations, groups):
    """`conv._check_conv_args` (NHWC), its errors naming `op`."""
    try:
        return _check_conv_args(input, filters, strides, padding, "NHWC", dilations, groups)
    except (TypeError, ValueError) as error:
        raise type(error)(str(error).replace("conv2d:", f"{op}:", 1)) from None


# -- the epilogue ------------------------------------------------------------------------------------

def _check_activation(value, op: str, arg: str) -> int:
    if value not in _CODES:
        raise ValueError(f"{op}: argument `{arg}` must be one of {INFERENCE_ACTIVATIONS}, got {value!r}")
    return _CODES[value]


def _check_epilogue(op, channels, out_shape, bias, activation, scale, shift, residual, then):
    """The checked epilogue arguments: (bias, scale, shift, residual, activation code, then code)."""
    act, after = _check_activation(activation, op, "activation"), _check_activation(then, op, "then")
    if bias is not None:
        bias = check_numeric_array(bias, op, "bias", ndim=1)
        if bias.shape != (channels,):
            raise ValueError(f"{op}: argument `bias` must have shape ({channels},) (one per output channel), "
                             f"got {bias.shape}")
    scale, shift = check_affine(scale, shift, "linear", channels, op)
    if residual is not None:
        residual = check_numeric_array(residual, op, "residual")
        if residual.shape != tuple(out_shape):
            raise ValueError(f"{op}: argument `residual` must have the output's shape {tuple(out_shape)}, "
                             f"got {residual.shape}")
    return bias, scale, shift, residual, act, after


_LIMITS = {0: (-np.inf, np.inf, 0), 1: (0, np.inf, 0), 2: (0, 6, 0), 3: (-np.inf, np.inf, 1)}   # by code


def _limits(act: int, then: int, dtype) -> np.ndarray:
    """(low, high, swish) of the activation codes `act` and `then`, for `epilogue.finish_channels`."""
    return np.array(_LIMITS[act] + _LIMITS[then], dtype=dtype)


@compiled.kernel
def _epilogue_rows(z, bias, scale, shift, residual, limits, affine, has_residual):
    """z[r, c] = then(act(z[r, c] + bias[c]) * scale[c] + shift[c] + residual[r, c]), in place."""
    zero = z.dtype.type(0)
    if limits[2] != zero or limits[5] != zero:      # a hard-swish
        for r in range(z.shape[0]):
            finish_channels(z[r], bias, scale, shift, residual[r if has_residual else 0], limits, affine,
                            has_residual)
    else:               # clips only: the loop without the swish branches
        for r in range(z.shape[0]):
            finish_channels_as(z[r], bias, scale, shift, residual[r if has_residual else 0], limits, affine,
                               has_residual, False, False)


def _epilogue_arrays(dtype, channels, bias, scale, shift, residual):
    """The kernels' arguments: zeros for what is absent, all in `dtype`; residual as rows."""
    rows = (np.zeros((1, channels), dtype=dtype) if residual is None
            else np.ascontiguousarray(residual, dtype=dtype).reshape(-1, channels))
    return _present(np.zeros(channels, dtype=dtype), dtype, bias, scale, shift) + (rows,)


def _present(zeros, dtype, bias, scale, shift) -> tuple:
    """(bias, scale, shift) in `dtype`, `zeros` (never written: the kernels only read them) for each one absent."""
    return (zeros if bias is None else np.asarray(bias).astype(dtype, copy=False),
            zeros if scale is None else np.asarray(scale).astype(dtype, copy=False),
            zeros if shift is None else np.asarray(shift).astype(dtype, copy=False))


def _rows_arrays(dtype, matrix, count, bias, scale, shift, residual, codes, out_bytes: int = 0, tall: bool = False):
    """`_product_rows`' arrays for a product of `count` rows by `matrix`: `_epilogue_arrays`', then the matrix
    packed once for all its blocks where `pointwise_simd.packs` (`tall`: as its tall tiles take it; else None),
    then whether the tiles rows first (packed or not) stream their output (`pointwise_simd.streams`, for an
    output of `out_bytes`)."""
    swish = _HARD_SWISH in (codes[0], codes[3])
    packed = pointwise_simd.pack(matrix) if pointwise_simd.packs(count, matrix, swish, tall=tall) else None
    stream = pointwise_simd.streams(matrix.shape[0], out_bytes)     # read by the tiles rows first only
    return _epilogue_arrays(dtype, matrix.shape[1], bias, scale, shift, residual) + (packed, stream)


def _apply_rows(z_rows, first, arrays, codes):
    """The compiled epilogue on rows `first`.. of the output (`z_rows`, a block of them)."""
    bias, scale, shift, residual = arrays[:4]
    act, affine, has_residual, then = codes
    part = residual[first:first + len(z_rows)] if has_residual else residual
    _epilogue_rows(z_rows, bias, scale, shift, part, _limits(act, then, z_rows.dtype), affine, has_residual)


def _tiles_applies(rows, matrix, arrays, codes) -> bool:
    act, _, has_residual, then = codes
    return pointwise_simd.applies(rows, matrix, _HARD_SWISH in (act, then), has_residual)


def _tiles_rows(rows, matrix, out, first, arrays, codes):
    bias, scale, shift = arrays[:3]
    act, affine, _, then = codes
    pointwise_simd.product_rows(rows, matrix, out, bias, scale, shift, _limits(act, then, out.dtype), affine)


def _packed_applies(rows, matrix, arrays, codes) -> bool:
    return arrays[4] is not None and pointwise_simd.packed_applies(rows, arrays[4])


def _deep_tiles_applies(rows, matrix, arrays, codes) -> bool:
    act, _, _, then = codes
    return pointwise_simd.deep_applies(rows, matrix, _HARD_SWISH in (act, then))


def _deep_tiles_rows(rows, matrix, out, first, arrays, codes, shared: bool = False):
    """`pointwise_simd.deep_product_rows` by the packed matrix where there is one, else by `matrix` (`shared`: its
    blocks of rows claimed by the threads)."""
    bias, scale, shift, residual, packed, stream = arrays
    act, affine, has_residual, then = codes
    part = residual[first:first + len(rows)] if has_residual else residual
    pointwise_simd.deep_product_rows(rows, matrix if packed is None else packed, out, bias, scale, shift, part,
                                     _limits(act, then, out.dtype), affine, has_residual, stream, shared=shared)


def _blas_rows(rows, matrix, out, first, arrays, codes):
    np.matmul(rows, matrix, out=out)
    _apply_rows(out, first, arrays, codes)


# The paths of `_product_rows`, in order: the first that applies runs.
_ROWS_PATHS = (
    ("simd_tiles", _tiles_applies, _tiles_rows),
    ("simd_tiles_packed", _packed_applies, _deep_tiles_rows),
    ("simd_tiles_deep", _deep_tiles_applies, _deep_tiles_rows),
    ("blas+epilogue", lambda rows, matrix, arrays, codes: True, _blas_rows),
)


# The paths of `_ROWS_PATHS` whose tiles a whole product can share among the threads (`_gemm_path`).
_SHARED_ROWS_PATHS = ("simd_tiles_packed", "simd_tiles_deep")


def _rows_path(rows, matrix, arrays, codes):
    """(name, run) of the first of `_ROWS_PATHS` that applies."""
    return next((name, run) for name, applies, run in _ROWS_PATHS if applies(rows, matrix, arrays, codes))


def _product_rows(rows, matrix, out, first, arrays, codes):
    """out = the epilogue of `rows @ matrix`, rows `first`.. of a 1x1 convolution's output (a block of them;
    `arrays` from `_rows_arrays`): SIMD tiles (`pointwise_simd`: few input channels, or the matrix packed
    for a large product, or 33-64 input channels rows first), else BLAS' product then the compiled epilogue
    (`_ROWS_PATHS`)."""
    _rows_path(rows, matrix, arrays, codes)[1](rows, matrix, out, first, arrays, codes)


def epilogue_reference(z, bias=None, activation="linear", scale=None, shift=None, residual=None,
                       then="linear"):
    """The epilogue with NumPy and the activations of `ops.activations`, one op after another (a new array)."""
    y = np.array(z, copy=True)
    if bias is not None:
        y = y + np.asarray(bias).astype(y.dtype, copy=False)
    y = get_activation(activation).forward(y).astype(y.dtype, copy=False)
    if scale is not None:
        y = y * np.asarray(scale).astype(y.dtype, copy=False) + np.asarray(shift).astype(y.dtype, copy=False)
    if residual is not None:
        y = y + np.asarray(residual).astype(y.dtype, copy=False)
    return get_activation(then).forward(y).astype(y.dtype, copy=False)


def epilogue_inference(z, bias=None, activation="linear", scale=None, shift=None, residual=None,
                       then="linear") -> np.ndarray:
    """`then(activation(z + bias) * scale + shift + residual)` written into `z` (C-contiguous, channels
    last) and returned; one pass on the compiled path."""
    op = "epilogue_inference"
    z = check_numeric_array(z, op, "z")
    channels = z.shape[-1]
    bias, scale, shift, residual, act, after = _check_epilogue(op, channels, z.shape, bias, activation, scale,
                                                               shift, residual, then)
    if not compiled.active() or not z.flags.c_contiguous:
        z[...] = epilogue_reference(z, bias, activation, scale, shift, residual, then)
        return z
    _run_epilogue(z.reshape(-1, channels), bias, scale, shift, residual, act, after)
    return z


def _run_epilogue(rows, bias, scale, shift, residual, act, after):
    arrays = _epilogue_arrays(rows.dtype, rows.shape[1], bias, scale, shift, residual)
    codes = (act, scale is not None, residual is not None, after)
    on_slices(len(rows), rows.nbytes, lambda part: _apply_rows(rows[part], part.start, arrays, codes))


# -- depthwise ---------------------------------------------------------------------------------------

@compiled.kernel
def _depthwise_kernel(x, w, bias, scale, shift, residual, limits, affine, has_residual,
                      sh, sw, dh, dw, top, left, first, last, out):
    """Output rows first..last (flat over images and rows) of a multiplier-1 depthwise convolution of `x`
    (NHWC, unpadded: the window is clipped at the borders) by `w` (kh, kw, C), each pixel's channels
    summed in `out` then finished by the epilogue."""
    n, h, width, c = x.shape
    kh, kw = w.shape[0], w.shape[1]
    oh, ow = out.shape[1], out.shape[2]
    zero = out.dtype.type(0)
    for flat in range(first, last):
        b, p = flat // oh, flat % oh
        row = p * sh - top
        i0, i1 = max(0, (-row + dh - 1) // dh), min(kh, (h - row + dh - 1) // dh)
        for q in range(ow):
            col = q * sw - left
            j0, j1 = max(0, (-col + dw - 1) // dw), min(kw, (width - col + dw - 1) // dw)
            o = out[b, p, q]
            for ch in range(c):
                o[ch] = zero
            for i in range(i0, i1):
                for j in range(j0, j1):
                    xv = x[b, row + i * dh, col + j * dw]
                    wv = w[i, j]
                    for ch in range(c):
                        o[ch] += xv[ch] * wv[ch]
            finish_channels(o, bias, scale, shift, residual[b, p, q] if has_residual else residual[0, 0, 0],
                            limits, affine, has_residual)


def depthwise_inference_reference(input, filter, strides, padding, dilations=None, bias=None,
                                  activation="linear", scale=None, shift=None, residual=None, then="linear"):
    """The depthwise convolution as `ops.conv2d` with one group per input channel (NHWC; the filter
    [kh, kw, in, multiplier] read as [kh, kw, 1, in * multiplier], as `ops.depthwise_conv2d` reads it),
    then `epilogue_reference`: a reference that none of the depthwise fast paths runs through."""
    w = np.asarray(filter)
    grouped = w.reshape(w.shape[0], w.shape[1], 1, -1) if w.ndim == 4 else w
    z = conv2d(input, grouped, strides, padding, "NHWC", dilations, w.shape[2] if w.ndim == 4 else 1)
    return epilogue_reference(z, bias, activation, scale, shift, residual, then)


def _depthwise_compiled_applies(x, w, dtype, strides, dilations) -> bool:
    return compiled.active() and w.shape[3] == 1 and dtype in (np.float32, np.float64)


def _depthwise_compiled(x, w, strides, dilations, pads, out_hw, dtype, epilogue):
    bias, scale, shift, residual, act, after = epilogue
    affine = scale is not None
    x = np.ascontiguousarray(x, dtype=dtype)
    taps = np.ascontiguousarray(w[..., 0], dtype=dtype)
    bias, scale, shift, _ = _epilogue_arrays(dtype, x.shape[3], bias, scale, shift, None)
    res = (np.zeros((1, 1, 1, 1), dtype=dtype) if residual is None
           else np.ascontiguousarray(residual, dtype=dtype))
    out = np.empty((x.shape[0],) + tuple(out_hw) + (x.shape[3],), dtype=dtype)
    arguments = (x, taps, bias, scale, shift, res, _limits(act, after, dtype), affine,
                 residual is not None, strides[0], strides[1], dilations[0], dilations[1],
                 pads[0][0], pads[1][0])
    count = x.shape[0] * out_hw[0]
    work = count * out_hw[1] * x.shape[3] * w.shape[0] * w.shape[1]
    on_slices(count, work, lambda part: _depthwise_kernel(*arguments, part.start, part.stop, out),
              min_size=SMALL_WORK)
    return out


def _depthwise_simd_3x3(x, w, strides, dilations, pads, out_hw, dtype, epilogue):
    """`depthwise_fast`'s 3x3 kernel: each input vector loaded once for the pixels of a tile that read it."""
    return _depthwise_simd(x, w, strides, dilations, pads, out_hw, dtype, epilogue, three_by_three=True)


def _depthwise_simd(x, w, strides, dilations, pads, out_hw, dtype, epilogue, three_by_three=False):
    """`depthwise_fast`'s kernel: tiles of pixels x channels in SIMD registers."""
    bias, scale, shift, residual, act, after = epilogue
    affine = scale is not None
    n, h, width, channels = x.shape
    x = np.ascontiguousarray(x, dtype=dtype)
    taps = np.ascontiguousarray(w[..., 0], dtype=dtype).reshape(-1)
    bias, scale, shift, _ = _epilogue_arrays(dtype, channels, bias, scale, shift, None)
    rows_shape = (n * out_hw[0], out_hw[1] * channels)
    res = (np.zeros((1, channels), dtype=dtype) if residual is None
           else np.ascontiguousarray(residual, dtype=dtype).reshape(rows_shape))
    out = np.empty(rows_shape, dtype=dtype)
    common = (x.reshape(n * h, width * channels), taps, bias, scale, shift, res, _limits(act, after, dtype),
              affine, residual is not None, h, width, channels)
    if three_by_three:
        kernel = depthwise_fast.depthwise3x3_tiles(depthwise_fast.lanes())
        arguments, channel_range = common + (strides[0], pads[0][0], pads[1][0]), (0, channels)
    else:
        kernel = depthwise_fast.depthwise_tiles(depthwise_fast.lanes())
        arguments = common + (w.shape[0], w.shape[1], strides[0], strides[1], dilations[0], dilations[1],
                              pads[0][0], pads[1][0])
        channel_range = ()
    work = out.size * w.shape[0] * w.shape[1]
    on_slices(len(out), work, lambda part: kernel(*arguments, part.start, part.stop, out, *channel_range),
              min_size=SMALL_WORK)
    return out.reshape((n,) + tuple(out_hw) + (channels,))


def depthwise_inference(input, filter, strides, padding, dilations=None, bias=None, activation="linear",
                        scale=None, shift=None, residual=None, then="linear") -> np.ndarray:
    """`then(activation(depthwise_conv2d(input) + bias) * scale + shift + residual)` for an NHWC batch.

    `filter` is [kh, kw, in, multiplier] and `strides`, `padding`, `dilations` are
    `depthwise_conv2d`'s; `bias`, `scale`, `shift` have one value per output channel and
    `residual` the output's shape.  Keeps nothing for a backward pass."""
    run = prepare_depthwise_inference(input, filter, strides, padding, dilations, bias, activation, scale, shift,
                                      residual, then)
    return run(np.asarray(input), np.asarray(filter), bias, scale, shift, residual)


def prepare_depthwise_inference(input, filter, strides, padding, dilations=None, bias=None, activation="linear",
                                scale=None, shift=None, residual=None, then="linear"):
    """Check `depthwise_inference`'s arguments and choose its path once: `run(input, filter, bias, scale,
    shift, residual)` computes it for arrays of the same shapes and dtypes (and the same parts present)
    with no further checks — a plan's stage prepares once per input shape and calls `run` per batch."""
    op = "depthwise_inference"
    x = check_numeric_array(input, op, "input", ndim=4)
    w = check_numeric_array(filter, op, "filter", ndim=4)
    if w.shape[2] != x.shape[3] or min(w.shape) < 1:
        raise ValueError(f"{op}: argument `filter` must have shape [kh, kw, in_channels, channel_multiplier] "
                         f"with the input's {x.shape[3]} channels on axis 2, got {w.shape} (input {x.shape})")
    grouped = w.reshape(w.shape[0], w.shape[1], 1, -1)
    x, _, strides, dilations, parsed, _, _ = _conv_args(op, x, grouped, strides, padding, dilations, x.shape[3])
    out_hw, pads = window_geometry(x.shape[1:3], w.shape[:2], strides, dilations, parsed, op, "filter")
    channels = w.shape[2] * w.shape[3]
    act, after = _check_epilogue(op, channels, (x.shape[0],) + out_hw + (channels,), bias, activation, scale,
                                 shift, residual, then)[4:]
    dtype = float_dtype(x, w)
    name, _, path = next(entry for entry in _DEPTHWISE_PATHS if entry[1](x, w, dtype, strides, dilations))
    if name == "reference":
        return lambda input, filter, bias, scale, shift, residual: depthwise_inference_reference(
            input, filter, strides, padding, dilations, bias, activation, scale, shift, residual, then)
    return lambda input, filter, bias, scale, shift, residual: path(
        input, filter, strides, dilations, pads, out_hw, dtype, (bias, scale, shift, residual, act, after))


# The paths of `depthwise_inference`, in order: the first that applies runs.
_DEPTHWISE_PATHS = (
    ("simd_3x3", depthwise_fast.applies_3x3, _depthwise_simd_3x3),
    ("simd_nhwc", lambda x, w, dtype, strides, dilations: depthwise_fast.applies(x, w, dtype), _depthwise_simd),
    ("compiled_nhwc", _depthwise_compiled_applies, _depthwise_compiled),
    ("reference", lambda x, w, dtype, strides, dilations: True, depthwise_inference_reference),
)


# -- convolutions ------------------------------------------------------------------------------------

def conv2d_epilogue_reference(input, filters, strides, padding, dilations=None, groups=1, bias=None,
                              activation="linear", scale=None, shift=None, residual=None, then="linear"):
    """`ops.conv2d` (NHWC) then `epilogue_reference`."""
    z = conv2d(input, filters, strides, padding, "NHWC", dilations, groups)
    return epilogue_reference(z, bias, activation, scale, shift, residual, then)


def _gemm_applies(x, w, geometry, epilogue) -> bool:
    strides, dilations, pads, groups = geometry
    return w.shape[:2] == (1, 1) and groups == 1 and pads == ((0, 0), (0, 0))


def _gemm_operands(x, w, strides, out_hw, dtype):
    """A 1x1 convolution's product: the NHWC pixels (every s-th with strides s) as rows, the (in, out)
    matrix, and the output rows."""
    if strides != (1, 1):
        x = x[:, ::strides[0], ::strides[1]][:, :out_hw[0], :out_hw[1]]
    rows = np.ascontiguousarray(x, dtype=dtype).reshape(-1, x.shape[3])
    matrix = np.ascontiguousarray(w, dtype=dtype).reshape(w.shape[2], w.shape[3])
    return rows, matrix, _aligned_empty((len(rows), matrix.shape[1]), dtype)


def _aligned_empty(shape, dtype, alignment: int = 64) -> np.ndarray:
    """np.empty(shape, dtype) starting on an `alignment`-byte boundary (a view of a slightly larger array):
    aligned vectors can be stored non-temporally (`pointwise_simd.streams`)."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    if alignment % dtype.itemsize == 0:         # whole elements of padding (NumPy's arrays start element-aligned)
        buffer = np.empty(size + alignment // dtype.itemsize, dtype=dtype)
        start = -compiled.address(buffer) % alignment // dtype.itemsize
        return buffer[start:start + size].reshape(shape)
    buffer = np.empty(size * dtype.itemsize + alignment, dtype=np.uint8)
    start = -compiled.address(buffer) % alignment
    return buffer[start:start + size * dtype.itemsize].view(dtype).reshape(shape)


def _gemm_rows(x, geometry) -> int:
    """The rows of an unpadded 1x1 convolution's product: its output pixels (every s-th input pixel)."""
    strides = geometry[0]
    return x.shape[0] * -(-x.shape[1] // strides[0]) * -(-x.shape[2] // strides[1])


def _columns_applies(x, w, geometry, epilogue) -> bool:
    """A 1x1 product of few rows (`COLUMN_SPLIT_ROWS`; batch 1) by a wide matrix, large enough to share, but
    not one whose matrix the tall tiles pack (`_tall_packs`)."""
    rows = _gemm_rows(x, geometry)
    return (_gemm_applies(x, w, geometry, epilogue) and compiled.active() and rows <= COLUMN_SPLIT_ROWS
            and w.shape[3] >= 64 and rows * w.shape[2] * w.shape[3] >= SMALL_WORK
            and not _tall_packs(rows, w, epilogue, float_dtype(x, w)))


def _tall_packs(rows: int, w, epilogue, dtype) -> bool:
    """True where `_gemm_path` would take the product of `rows` rows by the 1x1 filters `w` in the tall tiles
    from a packed matrix (`pointwise_simd.packs(..., tall=True)`, asked of the matrix `_gemm_operands` makes):
    its rows shared among the threads ran in 0.85-0.92x the time of the threads' columns by BLAS (medians;
    ResNet50's 28x28 stage at batch 1, 784 rows)."""
    swish = _HARD_SWISH in (epilogue[4], epilogue[5])
    matrix = np.ascontiguousarray(w, dtype=dtype).reshape(w.shape[2], w.shape[3])
    return pointwise_simd.tall_tiles() and pointwise_simd.packs(rows, matrix, swish, tall=True)


def _columns_path(x, w, geometry, out_hw, dtype, epilogue, arguments):
    """A 1x1 convolution of few rows: each thread multiplies all the rows by its own columns of the matrix
    (blocks of rows would each repack the whole matrix for a few rows), then the epilogue in one pass."""
    rows, matrix, out = _gemm_operands(x, w, geometry[0], out_hw, dtype)

    def work(ranges):
        for start, stop in ranges:
            np.matmul(rows, matrix[:, start:stop], out=out[:, start:stop])

    run_in_parallel(balanced_ranges(matrix.shape[1], -(-matrix.shape[1] // worker_count())), work)
    return _columns_finished(x, out, out_hw, dtype, epilogue)


def _column_tiles_applies(x, w, geometry, epilogue) -> bool:
    """`_columns_applies` for a float32 product that `dense_tiles` takes (5 to `dense_tiles.max_rows()` rows: a
    7x7 image with 512-bit vectors, whose tiles take 64 or more; a matrix of 1 MB or more)."""
    return (_columns_applies(x, w, geometry, epilogue) and float_dtype(x, w) == np.float32
            and dense_tiles.fits(_gemm_rows(x, geometry), w.shape[2], w.shape[3]))


def _column_tiles_path(x, w, geometry, out_hw, dtype, epilogue, arguments):
    """`_columns_path` with `dense_tiles`' products: the matrix read as it lies (BLAS packs each thread's
    columns for a few rows), its strips asked for ahead; measurements: benchmarks/README.md, 'Measurements
    behind the code's choices'."""
    rows, matrix, out = _gemm_operands(x, w, geometry[0], out_hw, dtype)
    tiles_by_columns(rows, matrix, out)
    return _columns_finished(x, out, out_hw, dtype, epilogue)


def _columns_finished(x, out, out_hw, dtype, epilogue):
    """The column paths' product `out` (rows, channels) with the epilogue applied in one pass, in NHWC."""
    bias, scale, shift, residual, act, after = epilogue
    arrays = _epilogue_arrays(dtype, out.shape[1], bias, scale, shift, residual)
    _apply_rows(out, 0, arrays, (act, scale is not None, residual is not None, after))
    return out.reshape((x.shape[0],) + tuple(out_hw) + (out.shape[1],))


def _wide_pointwise_applies(x, w, geometry, epilogue) -> bool:
    """An unpadded 1x1 convolution of one image of a few hundred pixels (`direct_wide.pointwise_applies`), float32,
    with a ReLU or none before the batch norm's map and a ReLU, ReLU6 or none after it (the residual between)."""
    act, then = epilogue[4], epilogue[5]
    return (_gemm_applies(x, w, geometry, epilogue) and float_dtype(x, w) == np.float32
            and act <= _CODES["relu"] and then <= _CODES["relu6"]
            and direct_wide.pointwise_applies(x.shape[0], _gemm_rows(x, geometry), w.shape[2], w.shape[3]))


def _wide_pointwise_path(x, w, geometry, out_hw, dtype, epilogue, arguments):
    """A 1x1 convolution of one image as `direct_wide`'s convolution of its pixels (every s-th with strides s) by a
    1x1 kernel: each thread claims blocks of 64 filters, a tap's chunk of the filters copied into a panel in L1, the
    whole epilogue on each finished block (the matrix's rows, 1-8 KB apart, would fall into a few of L1's sets)."""
    rows, matrix, out = _gemm_operands(x, w, geometry[0], out_hw, dtype)
    bias, scale, shift, residual, act, then = epilogue
    finish = conv_split.epilogue_tuple(bias, "relu" if act else "linear", scale, shift, "relu" if then else "linear",
                                       matrix.shape[1], dtype, 6.0 if then == _CODES["relu6"] else None)
    shape = (1,) + tuple(out_hw)
    out = out.reshape(shape + (matrix.shape[1],))
    direct_wide.conv_images(rows.reshape(shape + (matrix.shape[0],)), matrix.reshape((1, 1) + matrix.shape), (1, 1),
                            out, finish, None if residual is None else np.ascontiguousarray(residual, dtype=dtype))
    return out


def _gemm_path(x, w, geometry, out_hw, dtype, epilogue, arguments):
    """A 1x1 convolution: the NHWC pixels (every s-th with strides s) as rows times the (in, out) matrix,
    one block of rows per thread (`GEMM_BLOCK_ROWS`), each finished by the epilogue (`_product_rows`); where
    the rows-first tiles take the whole product, its blocks of rows claimed by the threads in compiled code."""
    rows, matrix, out = _gemm_operands(x, w, geometry[0], out_hw, dtype)
    bias, scale, shift, residual, act, after = epilogue
    finish, small = compiled.active(), len(rows) * matrix.size < SMALL_WORK
    if finish:
        codes = (act, scale is not None, residual is not None, after)
        arrays = _rows_arrays(dtype, matrix, len(rows), bias, scale, shift, residual, codes, out.nbytes,
                              pointwise_simd.tall_tiles())

    def work(ranges):
        for start, stop in ranges:
            if finish:
                _product_rows(rows[start:stop], matrix, out[start:stop], start, arrays, codes)
            else:
                np.matmul(rows[start:stop], matrix, out=out[start:stop])

    if finish and not small and _rows_path(rows, matrix, arrays, codes)[0] in _SHARED_ROWS_PATHS:
        _deep_tiles_rows(rows, matrix, out, 0, arrays, codes, shared=True)
    elif small:                                     # one block, BLAS on this thread (no hand-over, no spinning)
        run_in_parallel([(0, len(rows))], work)
    else:
        run_in_parallel(balanced_ranges(len(rows), GEMM_BLOCK_ROWS), work)
    out = out.reshape((x.shape[0],) + tuple(out_hw) + (matrix.shape[1],))
    if not finish:
        out[...] = epilogue_reference(out, bias, arguments["activation"], scale, shift, residual, arguments["then"])
    return out


def _own_epilogue(epilogue) -> bool:
    """True when `conv2d_inference` applies the whole epilogue itself: no residual, ReLU or none, or a ReLU6
    last (its cap on each finished block: `then`, or the activation where no BN map follows it)."""
    _, scale, _, residual, act, after = epilogue
    if residual is not None or max(act, after) > _CODES["relu6"]:
        return False
    return act != _CODES["relu6"] or scale is None


def _conv_own_prepare(x, w, geometry, out_hw, dtype, epilogue, arguments):
    """`conv2d_inference` applying the whole epilogue, its checks and path decided here, once."""
    strides, dilations, _, groups = geometry
    bias, scale, shift = epilogue[:3]
    conv = prepare_conv2d_inference(x, w, strides, arguments["padding"], dilations, groups, bias,
                                    arguments["activation"], scale, shift, arguments["then"])
    return lambda input, filters, bias, scale, shift, residual: conv(input, filters, bias, scale, shift)


def _conv_then_epilogue_prepare(x, w, geometry, out_hw, dtype, epilogue, arguments):
    """`conv2d_inference` (prepared here, once) with what of the epilogue it applies itself; the rest in one
    more pass."""
    strides, dilations, _, groups = geometry
    activation, then = arguments["activation"], arguments["then"]
    own = activation in FUSED_ACTIVATIONS      # the bias and this activation in the convolution's epilogue
    conv = prepare_conv2d_inference(x, w, strides, arguments["padding"], dilations, groups,
                                    epilogue[0] if own else None, activation if own else "linear")

    def run(input, filters, bias, scale, shift, residual):
        out = conv(input, filters, bias if own else None, None, None)
        return epilogue_inference(out, None if own else bias, "linear" if own else activation, scale, shift,
                                  residual, then)
    return run


def _per_call(path):
    """A path that takes the arrays at each call (the 1x1 products: their operands are the input itself) as
    a preparer: `prepare(...)` -> `run(input, filters, bias, scale, shift, residual)`."""
    def prepare(x, w, geometry, out_hw, dtype, epilogue, arguments):
        codes = epilogue[4:]
        return lambda input, filters, bias, scale, shift, residual: path(
            input, filters, geometry, out_hw, dtype, (bias, scale, shift, residual) + codes, arguments)
    return prepare


def _own_applies(x, w, geometry, epilogue) -> bool:
    """`conv2d_inference` takes the whole epilogue, but not an unpadded 1x1 convolution of one group: the 1x1
    paths below multiply all its pixels as one product (`conv2d_inference` multiplies each image's pixels
    apart: ResNet50's 1x1 layers at batch 2-32 ran 1.0-1.5x as long; measurements: benchmarks/README.md,
    'Measurements behind the code's choices')."""
    return _own_epilogue(epilogue) and not _gemm_applies(x, w, geometry, epilogue)


# The paths of `conv2d_epilogue_inference`, in order: (name, applies, prepare), the first that applies runs;
# `prepare(x, w, geometry, out_hw, dtype, epilogue, arguments)` -> `run(input, filters, bias, scale, shift,
# residual)`, what does not depend on the arrays decided once (per input shape, in a plan).
_CONV_PATHS = (
    ("conv2d_inference", _own_applies, _conv_own_prepare),
    ("gemm_1x1_column_tiles", _column_tiles_applies, _per_call(_column_tiles_path)),
    ("wide_1x1", _wide_pointwise_applies, _per_call(_wide_pointwise_path)),
    ("gemm_1x1_columns", _columns_applies, _per_call(_columns_path)),
    ("gemm_1x1", _gemm_applies, _per_call(_gemm_path)),
    ("conv2d_inference+epilogue", lambda x, w, geometry, epilogue: True, _conv_then_epilogue_prepare),
)


def conv2d_epilogue_inference(input, filters, strides, padding, dilations=None, groups=1, bias=None,
                              activation="linear", scale=None, shift=None, residual=None,
                              then="linear") -> np.ndarray:
    """`then(activation(conv2d(input) + bias) * scale + shift + residual)` for an NHWC batch.

    `filters`, `strides`, `padding`, `dilations`, `groups` are `conv2d`'s; `bias`, `scale`,
    `shift` one value per filter; `residual` the output's shape.  Keeps nothing for a
    backward pass."""
    run = prepare_conv2d_epilogue_inference(input, filters, strides, padding, dilations, groups, bias, activation,
                                            scale, shift, residual, then)
    return run(np.asarray(input), np.asarray(filters), bias, scale, shift, residual)


def prepare_conv2d_epilogue_inference(input, filters, strides, padding, dilations=None, groups=1, bias=None,
                                      activation="linear", scale=None, shift=None, residual=None, then="linear"):
    """Check `conv2d_epilogue_inference`'s arguments and choose its path once: `run(input, filters, bias,
    scale, shift, residual)` for arrays of the same shapes and dtypes, with no further checks."""
    op = "conv2d_epilogue_inference"
    x, w, strides, dilations, parsed, _, groups = _conv_args(op, input, filters, strides, padding, dilations,
                                                             groups)
    out_hw, pads = window_geometry(x.shape[1:3], w.shape[:2], strides, dilations, parsed, op, "filters")
    epilogue = _check_epilogue(op, w.shape[3], (x.shape[0],) + out_hw + (w.shape[3],), bias, activation,
                               scale, shift, residual, then)
    dtype = float_dtype(x, w)
    geometry = (strides, dilations, pads, groups)
    arguments = {"activation": activation, "then": then, "padding": padding}
    prepare = next(prepare for _, applies, prepare in _CONV_PATHS if applies(x, w, geometry, epilogue))
    return prepare(x, w, geometry, out_hw, dtype, epilogue, arguments)
