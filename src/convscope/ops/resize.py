"""Image resizing, forward and backward, as Keras' `Resizing` and bilinear `UpSampling2D` compute it.

Keras 3 on torch calls `F.interpolate(size=..., align_corners=False, antialias=False)`:
pixel centres, so output pixel `d` samples the input at `s = (d + 0.5) * in / out - 0.5`.
* "bilinear": the two input pixels around `s` (clamped at 0 and at the last pixel), weighted
  by distance (torch's `area_pixel_compute_source_index`, in the input's float type).
* "nearest": input pixel `floor((d + 0.5) * in / out)` (torch's "nearest-exact", the ratio a
  float32 as torch computes it), never beyond the last pixel.
Both are separable: each spatial axis is interpolated in turn by a list of taps (index, weight).
The backward pass sends each output gradient back to its taps: a sum over the output pixels
that read an input pixel (indices are non-decreasing, so `np.add.reduceat` sums each run).

`crop_to_aspect_ratio` first takes the centred window of the target's aspect ratio;
`pad_to_aspect_ratio` first pads the short side with `fill_value`, as Keras' backends do
(the same amount on both sides: `floor((padded - size) / 2)`).

`center_crop_forward` is Keras' CenterCrop: the centred (height, width) window of an image at least that
large on both axes, else Keras' `smart_resize` (the aspect-ratio crop, then a bilinear resize).
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from .padding import check_data_format, check_numeric_array
from .tape import record_forward, sees

__all__ = ["resize2d", "resize2d_forward", "resize2d_backward", "resize_taps", "aspect_window",
           "center_crop_forward", "center_crop_backward", "center_crop_resizes", "INTERPOLATIONS"]

INTERPOLATIONS = ("bilinear", "nearest")
Taps = List[Tuple[np.ndarray, np.ndarray]]      # (input index per output pixel, weight per output pixel)


def resize_taps(in_size: int, out_size: int, interpolation: str, dtype) -> Taps:
    """The taps of one axis: [(index, weight)], one entry for "nearest", two for "bilinear"."""
    dst = np.arange(out_size)
    if interpolation == "nearest":
        scale = np.float32(in_size) / np.float32(out_size)
        src = np.floor(((dst + 0.5) * np.float64(scale)).astype(np.float32)).astype(np.int64)
        return [(np.minimum(src, in_size - 1), np.ones(out_size, dtype))]
    dtype = np.dtype(dtype)
    scale = dtype.type(in_size) / dtype.type(out_size)
    src = np.maximum(scale * (dst.astype(dtype) + dtype.type(0.5)) - dtype.type(0.5), dtype.type(0))
    low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam = np.clip(src - low, 0, 1).astype(dtype)
    high = low + (low < in_size - 1)
    return [(low, (1 - lam).astype(dtype)), (high, lam)]


def _along(weights: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return weights.reshape(shape)


def _interpolate(x: np.ndarray, axis: int, taps: Taps) -> np.ndarray:
    """sum over taps of x[index] * weight along `axis`."""
    out = None
    for index, weight in taps:
        term = np.take(x, index, axis=axis)
        if len(taps) > 1:
            term *= _along(weight, x.ndim, axis)
        out = term if out is None else out + term
    return out


def _interpolate_backward(grad: np.ndarray, axis: int, taps: Taps, in_size: int) -> np.ndarray:
    """The transpose of `_interpolate`: each input index receives the sum of its weighted outputs."""
    shape = list(grad.shape)
    shape[axis] = in_size
    out = np.zeros(shape, grad.dtype)
    where = [slice(None)] * grad.ndim
    for index, weight in taps:
        values = grad * _along(weight, grad.ndim, axis) if len(taps) > 1 else grad
        targets, starts = np.unique(index, return_index=True)
        where[axis] = targets
        out[tuple(where)] += np.add.reduceat(values, starts, axis=axis)
    return out


def aspect_window(height: int, width: int, size, mode: str):
    """Where the resize reads: ("crop", top, left, rows, cols), ("pad", rows_each_side, cols_each_side)
    or None, as Keras' backends compute them."""
    target_h, target_w = size
    if mode == "crop":
        rows = max(min(height, int(float(width * target_h) / target_w)), 1)
        cols = max(min(width, int(float(height * target_w) / target_h)), 1)
        return ("crop", int(float(height - rows) / 2), int(float(width - cols) / 2), rows, cols)
    if mode == "pad":
        rows = max(height, int(float(width * target_h) / target_w))
        cols = max(width, int(float(height * target_w) / target_h))
        return ("pad", int(float(rows - height) / 2), int(float(cols - width) / 2))
    return None


def _check(x, size, interpolation, data_format, op):
    x = check_numeric_array(x, op, "x", ndim=4)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    data_format = check_data_format(data_format, op)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{op}: argument `interpolation` must be one of {INTERPOLATIONS}, got {interpolation!r}")
    try:
        size = tuple(int(s) for s in size)
    except TypeError:
        raise TypeError(f"{op}: argument `size` must be (height, width), got {size!r}") from None
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{op}: argument `size` must be 2 positive ints (height, width), got {size!r}")
    return x, size, data_format


def _axes(data_format: str) -> Tuple[int, int]:
    return (1, 2) if data_format == "NHWC" else (2, 3)


def _apply_window(x: np.ndarray, window, axes, fill_value) -> np.ndarray:
    if window is None:
        return x
    where = [slice(None)] * 4
    if window[0] == "crop":
        _, top, left, rows, cols = window
        where[axes[0]], where[axes[1]] = slice(top, top + rows), slice(left, left + cols)
        return x[tuple(where)]
    _, rows, cols = window
    widths = [(0, 0)] * 4
    widths[axes[0]], widths[axes[1]] = (rows, rows), (cols, cols)
    return np.pad(x, widths, constant_values=fill_value)


def _window_backward(grad: np.ndarray, input_shape, window, axes) -> np.ndarray:
    if window is None:
        return grad
    where = [slice(None)] * 4
    if window[0] == "crop":
        _, top, left, rows, cols = window
        where[axes[0]], where[axes[1]] = slice(top, top + rows), slice(left, left + cols)
        out = np.zeros(input_shape, grad.dtype)
        out[tuple(where)] = grad
        return out
    _, rows, cols = window
    where[axes[0]] = slice(rows, grad.shape[axes[0]] - rows)
    where[axes[1]] = slice(cols, grad.shape[axes[1]] - cols)
    return np.ascontiguousarray(grad[tuple(where)])


def resize2d_forward(x, size, interpolation="bilinear", data_format="NHWC", crop_to_aspect_ratio=False,
                     pad_to_aspect_ratio=False, fill_value=0.0):
    """(images resized to `size` = (height, width), ctx for `resize2d_backward`)."""
    op = "resize2d"
    x, size, data_format = _check(x, size, interpolation, data_format, op)
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError(f"{op}: only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True")
    axes = _axes(data_format)
    mode = "crop" if crop_to_aspect_ratio else "pad" if pad_to_aspect_ratio else None
    window = aspect_window(x.shape[axes[0]], x.shape[axes[1]], size, mode)
    source = _apply_window(x, window, axes, fill_value)
    taps = [resize_taps(source.shape[a], s, interpolation, x.dtype) for a, s in zip(axes, size)]
    y = _interpolate(_interpolate(source, axes[0], taps[0]), axes[1], taps[1])
    return np.ascontiguousarray(y), (x.shape, source.shape, window, axes, taps)


def resize2d(x, size, interpolation="bilinear", data_format="NHWC", crop_to_aspect_ratio=False,
             pad_to_aspect_ratio=False, fill_value=0.0) -> np.ndarray:
    """Images resized to `size`; see the module docstring for the pixel convention.  On an active tape that sees
    the images it records its backward."""
    if sees(x):
        return record_forward("resize2d", [x], lambda v: resize2d_forward(
            v, size, interpolation, data_format, crop_to_aspect_ratio, pad_to_aspect_ratio, fill_value),
            lambda ctx, g, need: [resize2d_backward(g, ctx)])
    return resize2d_forward(x, size, interpolation, data_format, crop_to_aspect_ratio, pad_to_aspect_ratio,
                            fill_value)[0]


def resize2d_backward(grad_output, ctx) -> np.ndarray:
    """The gradient w.r.t. the images of the `resize2d_forward` call that returned `ctx`."""
    input_shape, source_shape, window, axes, taps = ctx
    grad = np.asarray(grad_output)
    grad = _interpolate_backward(grad, axes[1], taps[1], source_shape[axes[1]])
    grad = _interpolate_backward(grad, axes[0], taps[0], source_shape[axes[0]])
    return _window_backward(grad, input_shape, window, axes)


def center_crop_resizes(height: int, width: int, size) -> bool:
    """True where Keras' CenterCrop resizes an image of (height, width) (smaller than `size` on an axis)."""
    return height < size[0] or width < size[1]


def center_crop_forward(x, size, data_format="NHWC"):
    """(images center-cropped to `size` = (height, width), or smart-resized where smaller, ctx)."""
    x, size, data_format = _check(x, size, "bilinear", data_format, "center_crop")
    axes = _axes(data_format)
    height, width = x.shape[axes[0]], x.shape[axes[1]]
    if center_crop_resizes(height, width, size):
        y, ctx = resize2d_forward(x, size, "bilinear", data_format, crop_to_aspect_ratio=True)
        return y, ("resize", ctx)
    window = ("crop", (height - size[0]) // 2, (width - size[1]) // 2, size[0], size[1])
    return np.ascontiguousarray(_apply_window(x, window, axes, 0.0)), ("crop", (x.shape, window, axes))


def center_crop_backward(grad_output, ctx) -> np.ndarray:
    """The gradient w.r.t. the images of the `center_crop_forward` call that returned `ctx`."""
    mode, inner = ctx
    if mode == "resize":
        return resize2d_backward(grad_output, inner)
    input_shape, window, axes = inner
    return _window_backward(np.asarray(grad_output), input_shape, window, axes)
