"""2-D transposed convolution (`tf.nn.conv2d_transpose`, Keras' Conv2DTranspose) forward and backward.

A transposed convolution is the input gradient of the convolution it transposes:
each input pixel scatters `filters[i, j] @ pixel` into the output cell of tap
(i, j).  The forward pass does exactly that, one matrix product and one strided
addition per tap (kh*kw passes over an output-sized buffer, no im2col copy), into
the full output of (n - 1) * stride + k_eff cells per axis, then cuts (or, at the
end, zero-extends) it to the requested size (`shapes.deconv_padding`).  Where the
taps do not overlap (kernel = stride, dilation 1) all taps are one product and one
interleaving copy (`_FORWARD_PATHS`), which, compiled and where the output is exactly the interleaved
product, also applies the bias and the activation (a U-Net's up-convolutions: one pass over the output, not two).

Backward, the gradient w.r.t. the input is the transposed convolution's own
transpose, an ordinary strided convolution of the (padded) output gradient by the
same filters (`conv.conv2d`, with its fast paths); the filter gradient is again one
product per tap.  Filters are [kh, kw, out_channels, in_channels], as TensorFlow
and Keras store them.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import compiled, shapes
from .conv import conv2d
from .parallel import matmul, on_slices
from .epilogue import bias_activation_forward, check_epilogue, epilogue_on_tape, epilogue_value
from .tape import record_forward, sees
from .padding import (check_data_format, check_image_batch, check_numeric_array, float_dtype, from_nhwc,
                      parse_padding, spatial_pair, to_nhwc)

__all__ = ["conv2d_transpose", "conv2d_transpose_forward", "conv2d_transpose_backward"]

_OP = "conv2d_transpose"


def _output_padding(value, strides, dilations, data_format) -> Optional[Tuple[int, int]]:
    """None or (height, width) non-negative ints, each below its stride (as Keras and PyTorch require)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(f"{_OP}: argument `output_padding` must be None, an int or 2 ints, got {value!r}") from None
        if len(items) == 4:
            items = items[1:3] if data_format == "NHWC" else items[2:4]
    else:
        items = (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in items):
        raise TypeError(f"{_OP}: argument `output_padding` must be None, an int or 2 ints, got {value!r}")
    for axis, (pad, stride) in enumerate(zip(items, strides)):
        if not 0 <= pad < stride:
            raise ValueError(f"{_OP}: argument `output_padding` must be non-negative and below the stride on "
                             f"each axis; got output_padding={value!r} with strides={strides} (axis {axis})")
    return int(items[0]), int(items[1])


def _requested_lengths(output_shape, x_shape, out_channels, data_format) -> Tuple[int, int]:
    """(height, width) of a tf.nn-style `output_shape` (4 entries in data_format order, or 2)."""
    try:
        dims = [int(d) for d in output_shape]
    except (TypeError, ValueError):
        raise TypeError(f"{_OP}: argument `output_shape` must be None or 2 or 4 ints, got {output_shape!r}") from None
    if len(dims) == 4:
        batch, channels = (dims[0], dims[3]) if data_format == "NHWC" else (dims[0], dims[1])
        if (batch, channels) != (x_shape[0], out_channels):
            raise ValueError(f"{_OP}: argument `output_shape` {tuple(dims)} must have the input's batch "
                             f"{x_shape[0]} and the filters' {out_channels} output channels")
        dims = dims[1:3] if data_format == "NHWC" else dims[2:4]
    if len(dims) != 2 or min(dims) < 1:
        raise ValueError(f"{_OP}: argument `output_shape` must be None or 2 or 4 positive ints, got {output_shape!r}")
    return dims[0], dims[1]


def _axis_geometry(n, k, s, d, padding, output_padding, requested) -> Tuple[int, int, int]:
    """(output length, cells cut before, cells cut after; negative: zeros appended) on one axis."""
    k_eff = shapes.effective_kernel_size(k, d)
    full = (n - 1) * s + k_eff
    if requested is not None:            # tf.nn: the convolution of the output must give the input
        before, after = shapes.pad_amounts(requested, k, s, d, padding)
        if shapes.conv_output_length(requested, k, s, d, (before, after)) != n:
            raise ValueError(f"{_OP}: argument `output_shape` asks for {requested} cells, but a convolution "
                             f"(kernel {k}, stride {s}, dilation {d}, padding {padding!r}) of {requested} "
                             f"cells gives {shapes.conv_output_length(requested, k, s, d, (before, after))}, "
                             f"not the input's {n}")
        return requested, before, full - before - requested
    if isinstance(padding, str):
        length = shapes.deconv_output_length(n, k, s, d, padding, output_padding)
        before, after = shapes.deconv_padding(n, k, s, d, padding, output_padding)
        return length, before, after
    before, after = padding
    length = full - before - after + (output_padding or 0)
    return length, before, full - before - length


def _check_args(input, filters, output_shape, strides, padding, data_format, dilations, output_padding):
    data_format = check_data_format(data_format, _OP)
    x = check_numeric_array(input, _OP, "input", ndim=4)
    w = check_numeric_array(filters, _OP, "filters", ndim=4)
    strides = spatial_pair(strides, "strides", _OP, data_format)
    dilations = spatial_pair(1 if dilations is None else dilations, "dilations", _OP, data_format)
    padding = parse_padding(padding, _OP, data_format)
    output_padding = _output_padding(output_padding, strides, dilations, data_format)
    input_shape = x.shape
    x = check_image_batch(x, _OP, data_format)
    if min(w.shape) < 1 or w.shape[3] != x.shape[3]:
        raise ValueError(f"{_OP}: argument `filters` must have shape [kh, kw, out_channels, in_channels] with "
                         f"the input's {x.shape[3]} channels last, got {w.shape} (input {input_shape}, {data_format})")
    if output_shape is not None and output_padding is not None:
        raise ValueError(f"{_OP}: give `output_shape` or `output_padding`, not both")
    requested = (None, None) if output_shape is None else _requested_lengths(output_shape, x.shape, w.shape[2],
                                                                               data_format)
    geometry = [_axis_geometry(x.shape[1 + a], w.shape[a], strides[a], dilations[a],
                               padding if isinstance(padding, str) else padding[a],
                               None if output_padding is None else output_padding[a], requested[a])
                for a in range(2)]
    for axis, (length, _, _) in enumerate(geometry):
        if length < 1:
            raise ValueError(f"{_OP}: the output would have {length} {('rows', 'cols')[axis]} (input {input_shape}, "
                             f"filters {w.shape}, strides {strides}, padding {padding!r}, output_padding "
                             f"{output_padding}); expected at least 1")
    return x, w, strides, dilations, data_format, geometry


def _tap_slices(i, j, strides, dilations, in_hw):
    """Index of the full output's cells that tap (i, j) reaches, one per input pixel."""
    top, left = i * dilations[0], j * dilations[1]
    return (slice(None), slice(top, top + strides[0] * (in_hw[0] - 1) + 1, strides[0]),
            slice(left, left + strides[1] * (in_hw[1] - 1) + 1, strides[1]), slice(None))


def _full_shape(ctx) -> Tuple[int, int, int, int]:
    """NHWC shape of the full output, extended to hold the requested output where that reaches further."""
    (n, h, width, _), w = ctx["input_shape"], ctx["filters"]
    rows = [(size - 1) * s + shapes.effective_kernel_size(k, d) + max(-after, 0)
            for size, k, s, d, (_, _, after) in zip((h, width), w.shape[:2], ctx["strides"], ctx["dilations"],
                                                    ctx["geometry"])]
    return (n, rows[0], rows[1], w.shape[2])


def _crop(ctx) -> Tuple[slice, slice, slice, slice]:
    """Index of the output inside the (extended) full output."""
    (lh, top, _), (lw, left, _) = ctx["geometry"]
    return slice(None), slice(top, top + lh), slice(left, left + lw), slice(None)


def conv2d_transpose_forward(input, filters, output_shape=None, strides=1, padding="SAME", data_format="NHWC",
                             dilations=None, output_padding=None, bias=None, activation="linear"
                             ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """`conv2d_transpose` plus the context `conv2d_transpose_backward` needs (the input, filters, geometry).

    The context holds a reference to the input (not a copy): the caller must not change it in
    place before the backward pass."""
    x, w, strides, dilations, data_format, geometry = _check_args(input, filters, output_shape, strides, padding,
                                                                  data_format, dilations, output_padding)
    bias = check_epilogue(bias, activation, w.shape[2], _OP, "one per output channel")
    dtype = float_dtype(x, w)
    x, w = np.ascontiguousarray(x, dtype=dtype), w.astype(dtype, copy=False)
    ctx = {"input": x, "input_shape": x.shape, "filters": w, "strides": strides, "dilations": dilations,
           "geometry": geometry, "data_format": data_format, "dtype": dtype}
    bias = None if bias is None else bias.astype(dtype, copy=False)
    full, finished = next(run for _, applies, run in _FORWARD_PATHS if applies(ctx))(x, w, ctx, (bias, activation))
    out = np.ascontiguousarray(full[_crop(ctx)])
    if not finished:
        bias_activation_forward(out, bias, activation)
    return from_nhwc(out, data_format), ctx


def _per_tap(x, w, ctx, epilogue) -> Tuple[np.ndarray, bool]:
    """The full output, not finished: each tap's product added into its strided cells (products through
    `parallel.matmul`: BLAS single-threaded, or blocks on convscope's threads)."""
    full = np.zeros(_full_shape(ctx), dtype=ctx["dtype"])
    n, h, width, channels = x.shape
    rows = x.reshape(-1, channels)
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            contribution = matmul(rows, w[i, j].T)         # a view: BLAS reads it transposed
            full[_tap_slices(i, j, ctx["strides"], ctx["dilations"], (h, width))] += \
                contribution.reshape(n, h, width, w.shape[2])          # (an empty batch too)
    return full, False


def _one_product_applies(ctx) -> bool:
    kh, kw = ctx["filters"].shape[:2]
    return tuple(ctx["strides"]) == (kh, kw) and tuple(ctx["dilations"]) == (1, 1)


def _taps_product(x, w) -> np.ndarray:
    """The input rows times all taps' filters: (n * h * w, kh * kw * out_channels)."""
    kh, kw, out_channels, channels = w.shape
    taps = np.ascontiguousarray(w).reshape(kh * kw * out_channels, channels).T    # a view: BLAS reads it
    return matmul(x.reshape(-1, channels), taps)


def _one_product(x, w, ctx, epilogue) -> Tuple[np.ndarray, bool]:
    """The full output of a transposed convolution whose taps do not overlap (kernel = stride, U-Net's 2x2
    up-convolutions), not finished: one product of the input rows by all taps' filters, whose (kh, kw)
    blocks interleave into the output in one copy."""
    n, h, width, channels = x.shape
    kh, kw, out_channels = w.shape[:3]
    product = _taps_product(x, w).reshape(n, h, width, kh, kw, out_channels)
    interleaved = product.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * kh, width * kw, out_channels)
    shape = _full_shape(ctx)
    if shape == interleaved.shape:
        return interleaved, False
    full = np.zeros(shape, dtype=interleaved.dtype)     # output_padding reaching past the last tap
    full[:, :h * kh, :width * kw] = interleaved
    return full, False


def _finished_applies(ctx) -> bool:
    """`_one_product_applies`, compiled, float, and an output that is exactly the interleaved product."""
    n, h, width, _ = ctx["input_shape"]
    kh, kw, out_channels = ctx["filters"].shape[:3]
    return (_one_product_applies(ctx) and compiled.active() and ctx["dtype"] in (np.float32, np.float64)
            and _full_shape(ctx) == (n, h * kh, width * kw, out_channels)
            and all(part == slice(None) or (part.start, part.stop) == (0, size)
                    for part, size in zip(_crop(ctx), (n, h * kh, width * kw, out_channels))))


def _one_product_finished(x, w, ctx, epilogue) -> Tuple[np.ndarray, bool]:
    """`_one_product` with the bias and the activation applied in the interleaving copy (one pass over the
    output instead of two; each input row's blocks on the threads)."""
    n, h, width, _ = x.shape
    kh, kw, out_channels = w.shape[:3]
    product = _taps_product(x, w)
    out = np.empty((n, h * kh, width * kw, out_channels), dtype=product.dtype)
    bias, activation = epilogue
    relu, finish = activation == "relu", bias is not None or activation == "relu"   # as bias_activation_forward
    bias = np.zeros(out_channels, dtype=out.dtype) if bias is None else bias
    on_slices(n * h, out.nbytes, lambda rows: _interleave_kernel(product, bias, relu, finish, h, width, kh, kw,
                                                                  rows.start, rows.stop, out))
    return out, True


@compiled.kernel
def _interleave_kernel(product, bias, relu, finish, h, width, kh, kw, first, last, out):
    """out[b, i * kh + a, j * kw + c] = the epilogue of product[(b * h + i) * width + j, (a, c) block], for the
    input rows (b, i) first..last-1: `bias_activation_forward`'s `epilogue_value` where it has one (`finish`),
    else the value as it is (no bias added: -0.0 stays), so its bits."""
    channels = out.shape[3]
    blocks, cells = product.reshape(-1, channels), out.reshape(-1, channels)     # a row: one tap's channels
    zero = out.dtype.type(0)
    for row in range(first, last):
        b, i = row // h, row % h
        for a in range(kh):
            target = (b * h * kh + i * kh + a) * width * kw
            for j in range(width):
                source = ((row * width + j) * kh + a) * kw
                for c in range(kw):
                    if finish:
                        for channel in range(channels):
                            cells[target + j * kw + c, channel] = epilogue_value(
                                blocks[source + c, channel], bias[channel], relu, zero, zero, False, False, zero)
                    else:
                        for channel in range(channels):
                            cells[target + j * kw + c, channel] = blocks[source + c, channel]


# The paths of the forward pass, in order: the first that applies runs.
_FORWARD_PATHS = (
    ("one_product_finished", _finished_applies, _one_product_finished),
    ("one_product", _one_product_applies, _one_product),
    ("per_tap", lambda ctx: True, _per_tap),
)


def conv2d_transpose(input, filters, output_shape=None, strides=1, padding="SAME", data_format="NHWC",
                     dilations=None, output_padding=None, bias=None, activation="linear") -> np.ndarray:
    """`tf.nn.conv2d_transpose`: filters [kh, kw, out_channels, in_channels]; the output's size is
    `output_shape` (2 or 4 ints, TensorFlow's rule: a convolution of it must give the input) or,
    without it, Keras' Conv2DTranspose rule with `output_padding` (`shapes.deconv_output_length`).
    Then, optionally, `activation(. + bias)` ("linear" or "relu").  On an active tape that sees the input or the
    filters it records its backward."""
    if sees(input, filters, bias):
        y = record_forward("conv2d_transpose", [input, filters], lambda x, w: conv2d_transpose_forward(
            x, w, output_shape, strides, padding, data_format, dilations, output_padding),
            lambda ctx, g, need: list(conv2d_transpose_backward(g, ctx, need_input_grad=need[0])))
        return epilogue_on_tape(y, bias, activation, data_format, "conv2d_transpose")
    return conv2d_transpose_forward(input, filters, output_shape, strides, padding, data_format, dilations,
                                    output_padding, bias, activation)[0]


def _full_gradient(grad: np.ndarray, ctx) -> np.ndarray:
    """The output gradient placed in the full output's cells (zeros where the output was cut)."""
    full_shape = _full_shape(ctx)
    (_, _, after_h), (_, _, after_w) = ctx["geometry"]
    full = np.zeros((full_shape[0], full_shape[1] - max(-after_h, 0), full_shape[2] - max(-after_w, 0),
                     full_shape[3]), dtype=ctx["dtype"])
    (lh, top, _), (lw, left, _) = ctx["geometry"]
    reach_h, reach_w = min(lh, full.shape[1] - top), min(lw, full.shape[2] - left)
    full[:, top:top + reach_h, left:left + reach_w] = grad[:, :reach_h, :reach_w]
    return full


def conv2d_transpose_backward(grad_output, ctx: Dict[str, Any],
                              need_input_grad: bool = True) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """(gradient w.r.t. the input or None when not `need_input_grad`, gradient w.r.t. the filters) of
    the `conv2d_transpose_forward` call that made `ctx`; `grad_output` is w.r.t. its output before
    any activation (the caller applies the activation's and the bias' backward)."""
    op = "conv2d_transpose_backward"
    data_format, x, w = ctx["data_format"], ctx["input"], ctx["filters"]
    grad = to_nhwc(check_numeric_array(grad_output, op, "grad_output", ndim=4), data_format)
    expected = (x.shape[0], ctx["geometry"][0][0], ctx["geometry"][1][0], w.shape[2])
    if grad.shape != expected:
        raise ValueError(f"{op}: argument `grad_output` must have the forward output's shape "
                         f"{from_nhwc(np.empty(expected, dtype=bool), data_format).shape}, got {np.shape(grad_output)}")
    full = _full_gradient(grad.astype(ctx["dtype"], copy=False), ctx)
    n, h, width, channels = x.shape
    rows = x.reshape(-1, channels)
    grad_filters = np.empty_like(w)
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            taps = full[_tap_slices(i, j, ctx["strides"], ctx["dilations"], (h, width))].reshape(-1, w.shape[2])
            grad_filters[i, j] = matmul(taps.T, rows)
    if not need_input_grad:
        return None, grad_filters
    grad_input = conv2d(full, w, ctx["strides"], "VALID", "NHWC", ctx["dilations"], groups=1)
    return from_nhwc(grad_input, data_format), grad_filters
