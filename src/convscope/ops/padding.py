"""Argument parsing shared by the window ops, and zero padding.

`tf.nn` takes strides, dilations and window sizes as an int, a 2-list or a
4-list, and padding as "SAME", "VALID" or explicit per-axis pairs in the
data_format's axis order.  These helpers turn all of them into plain
(height, width) pairs once, so each op validates its arguments the same way.
The padding amounts themselves always come from `ops/shapes.py`.
"""

from __future__ import annotations

import functools
from typing import Tuple, Union

import numpy as np

from .shapes import conv_output_length, pad_amounts
from .tape import record_forward, sees

__all__ = ["zero_pad2d", "zero_pad2d_backward"]

Pair = Tuple[int, int]
ExplicitPadding = Tuple[Pair, Pair]
_FORMATS = ("NHWC", "NCHW")


def check_data_format(data_format, op: str) -> str:
    """"NHWC" or "NCHW" (case-insensitive), else a ValueError naming the op."""
    if not isinstance(data_format, str) or data_format.upper() not in _FORMATS:
        raise ValueError(f"{op}: argument `data_format` must be 'NHWC' or 'NCHW', got {data_format!r}")
    return data_format.upper()


def check_numeric_array(x, op: str, arg: str, ndim: int = None) -> np.ndarray:
    """`x` as a NumPy array of a numeric dtype (and rank `ndim` when given)."""
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{op}: argument `{arg}` must be a numeric array, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{op}: argument `{arg}` must be a rank-{ndim} array, "
                         f"got rank {array.ndim} with shape {array.shape}")
    return array


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The float type of the result: the first float input's dtype (float32 stays float32)."""
    for array in arrays:
        if array.dtype.kind == "f":
            return np.dtype(np.float64 if array.dtype.itemsize > 4 else np.float32)
    return np.dtype(np.float64)


def spatial_pair(value, arg: str, op: str, data_format: str) -> Pair:
    """Strides, dilations or ksize as (height, width) from an int, a 2-list or a 4-list.

    In a 4-list the batch and channel entries must be 1, as `tf.nn` requires.
    """
    if isinstance(value, bool):
        raise TypeError(f"{op}: argument `{arg}` must be an int or a list of 1, 2 or 4 ints, got {value!r}")
    if isinstance(value, (int, np.integer)):
        items = (int(value), int(value))
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(f"{op}: argument `{arg}` must be an int or a list of 1, 2 or 4 ints, "
                            f"got {value!r}") from None
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
                raise TypeError(f"{op}: argument `{arg}` must contain ints, got {value!r}")
        items = tuple(int(item) for item in items)
        if len(items) == 1:
            items = items * 2
        elif len(items) == 4:
            outer = (items[0], items[3]) if data_format == "NHWC" else (items[0], items[1])
            if outer != (1, 1):
                raise ValueError(f"{op}: argument `{arg}` must be 1 on the batch and channel axes, "
                                 f"got {value!r} for data_format {data_format!r}")
            items = items[1:3] if data_format == "NHWC" else items[2:4]
        elif len(items) != 2:
            raise ValueError(f"{op}: argument `{arg}` must be an int or a list of 1, 2 or 4 ints, "
                             f"got {value!r} ({len(items)} values)")
    if min(items) < 1:
        raise ValueError(f"{op}: argument `{arg}` must be positive, got {value!r}")
    return items


def parse_padding(padding, op: str, data_format: str) -> Union[str, ExplicitPadding]:
    """"same", "valid" or ((top, bottom), (left, right)) from a tf.nn padding argument.

    Explicit padding is 4 (before, after) pairs in the data_format's axis order,
    with zeros on the batch and channel axes; ((top, bottom), (left, right)) is
    accepted too.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in ("same", "valid"):
            raise ValueError(f"{op}: argument `padding` must be 'SAME', 'VALID' or explicit "
                             f"[[0, 0], [top, bottom], [left, right], [0, 0]] pairs, got {padding!r}")
        return mode
    expected = ("'SAME', 'VALID' or explicit [[0, 0], [top, bottom], [left, right], [0, 0]] pairs"
                if data_format == "NHWC" else
                "'SAME', 'VALID' or explicit [[0, 0], [0, 0], [top, bottom], [left, right]] pairs")
    try:
        pairs = [tuple(pair) for pair in padding]
    except TypeError:
        raise TypeError(f"{op}: argument `padding` must be {expected}, got {padding!r}") from None
    if len(pairs) not in (2, 4) or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"{op}: argument `padding` must be {expected}, got {padding!r}")
    for pair in pairs:
        for item in pair:
            if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
                raise TypeError(f"{op}: argument `padding` must contain ints, got {padding!r}")
            if item < 0:
                raise ValueError(f"{op}: argument `padding` must be non-negative, got {padding!r}")
    if len(pairs) == 4:
        outer = (pairs[0], pairs[3]) if data_format == "NHWC" else (pairs[0], pairs[1])
        if outer != ((0, 0), (0, 0)):
            raise ValueError(f"{op}: argument `padding` must be [0, 0] on the batch and channel axes, "
                             f"got {padding!r} for data_format {data_format!r}")
        pairs = pairs[1:3] if data_format == "NHWC" else pairs[2:4]
    return tuple((int(a), int(b)) for a, b in pairs)


def check_image_batch(x: np.ndarray, op: str, data_format: str) -> np.ndarray:
    """`x` (rank 4) as an NHWC view; height, width and channels must be non-empty (the batch may be)."""
    nhwc = to_nhwc(x, data_format)
    if 0 in nhwc.shape[1:]:
        raise ValueError(f"{op}: argument `input` must have non-empty height, width and channels "
                         f"({data_format}), got shape {x.shape}")
    return nhwc


@functools.lru_cache(maxsize=1024)
def window_geometry(in_hw: Pair, kernel_hw: Pair, strides: Pair, dilations: Pair, padding,
                    op: str, kernel_arg: str) -> Tuple[Pair, ExplicitPadding]:
    """Output (height, width) and ((top, bottom), (left, right)) padding of a window op.

    Raises a ValueError naming the op when the (dilated) window does not fit.  The arguments
    are `parse_padding`'s and `spatial_pair`'s (hashable): the answer is kept per geometry (a
    batch-1 convolution stage asked twice, a noticeable share of its Python time; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices').
    """
    out, pads = [], []
    for axis in range(2):
        pad_arg = padding if isinstance(padding, str) else padding[axis]
        before, after = pad_amounts(in_hw[axis], kernel_hw[axis], strides[axis], dilations[axis], pad_arg)
        length = conv_output_length(in_hw[axis], kernel_hw[axis], strides[axis], dilations[axis],
                                    (before, after))
        if length <= 0:
            raise ValueError(
                f"{op}: argument `{kernel_arg}` gives a window of size {kernel_hw} (dilations {dilations}) "
                f"larger than the padded input of size {in_hw} with padding {padding!r}; "
                f"expected a window that fits, got an output {'height' if axis == 0 else 'width'} of {length}")
        out.append(length)
        pads.append((before, after))
    return tuple(out), tuple(pads)


def to_nhwc(x: np.ndarray, data_format: str) -> np.ndarray:
    """A view of `x` in NHWC order (ops work in NHWC internally)."""
    return x if data_format == "NHWC" else x.transpose(0, 2, 3, 1)


def from_nhwc(x: np.ndarray, data_format: str) -> np.ndarray:
    """`x` (NHWC) back in the caller's data_format, contiguous."""
    return np.ascontiguousarray(x if data_format == "NHWC" else x.transpose(0, 3, 1, 2))


def _padding_pairs(padding, op: str) -> ExplicitPadding:
    try:
        (top, bottom), (left, right) = padding
        values = (top, bottom, left, right)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: argument `padding` must be ((top, bottom), (left, right)), "
                        f"got {padding!r}") from None
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{op}: argument `padding` must contain ints, got {padding!r}")
        if value < 0:
            raise ValueError(f"{op}: argument `padding` must be non-negative, got {padding!r}")
    return (int(top), int(bottom)), (int(left), int(right))


def _spatial_slices(shape, pads: ExplicitPadding, data_format: str):
    """Index of the original (unpadded) region inside a padded 4-D array."""
    (top, bottom), (left, right) = pads
    h_axis = 1 if data_format == "NHWC" else 2
    index = [slice(None)] * 4
    index[h_axis] = slice(top, shape[h_axis] - bottom)
    index[h_axis + 1] = slice(left, shape[h_axis + 1] - right)
    return tuple(index)


def zero_pad2d(x, padding, data_format: str = "NHWC") -> np.ndarray:
    """Add rows of zeros above/below and columns left/right of each image (ZeroPadding2D); recorded on an active
    tape that sees `x`."""
    if sees(x):
        return record_forward("zero_pad2d", [x], lambda v: (zero_pad2d(v, padding, data_format), None),
                              lambda ctx, g, need: [zero_pad2d_backward(g, padding, data_format)])
    op = "zero_pad2d"
    data_format = check_data_format(data_format, op)
    x = check_numeric_array(x, op, "x", ndim=4)
    pads = _padding_pairs(padding, op)
    if data_format == "NHWC" and any(pads[0] + pads[1]):
        from .conv import pad_spatial          # (conv imports this module): rows written once, per thread
        return pad_spatial(x, pads)
    h_axis = 1 if data_format == "NHWC" else 2
    shape = list(x.shape)
    shape[h_axis] += pads[0][0] + pads[0][1]
    shape[h_axis + 1] += pads[1][0] + pads[1][1]
    out = np.zeros(shape, dtype=x.dtype)
    out[_spatial_slices(shape, pads, data_format)] = x
    return out


def zero_pad2d_backward(grad, padding, data_format: str = "NHWC") -> np.ndarray:
    """Gradient of `zero_pad2d`: the padded border is cut away."""
    op = "zero_pad2d_backward"
    data_format = check_data_format(data_format, op)
    grad = check_numeric_array(grad, op, "grad", ndim=4)
    pads = _padding_pairs(padding, op)
    if data_format == "NHWC":
        from .conv import crop_spatial           # (conv imports this module)
        return crop_spatial(grad, pads)
    return np.ascontiguousarray(grad[_spatial_slices(grad.shape, pads, data_format)])
