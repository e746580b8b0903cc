"""The array math of Keras' augmentation layers, forward and backward, as Keras 3 on torch computes it.

`affine_transform` samples each image at coordinates given by a transform per image, Keras'
8-vector `[a0, a1, a2, b0, b1, b2, c0, c1]`: output pixel (x, y) reads the input at
((a0·x + a1·y + a2) / k, (b0·x + b1·y + b2) / k), k = c0·x + c1·y + 1 (1 without a projective part:
Keras' `perspective_transform` divides, its `affine_transform` has none), x the column and y the row.
Per axis, as Keras' `map_coordinates`: "bilinear" takes floor(c) and floor(c) + 1 weighted by
distance, "nearest" takes round(c) (half to even, as torch.round).  Each index outside the
image is fixed by the fill mode: "reflect" (d c b a | a b c d | d c b a), "wrap" (index mod
size), "nearest" (clamped); "constant" clamps it too, but a tap whose row or column index lies
outside reads `fill_value` instead (so edges blend into the fill value, as in Keras).

The output is a linear map of the input (for fixed transforms), so the backward pass scatters
each output gradient back to the taps it read, times their weights.  The matrices
(`rotation_transforms`, `zoom_transforms`, `translation_transforms`, `shear_transforms`,
`homography_transforms`) follow Keras' layers.
`flip`, `crop_resize`, `brightness` and `contrast` are the other layers' maps.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from .padding import check_data_format, check_numeric_array
from .resize import resize2d_backward, resize2d_forward

__all__ = ["FILL_MODES", "MAP_FILL_MODES", "INTERPOLATIONS", "affine_transform", "affine_transform_forward",
           "map_coordinates_forward", "elastic_coordinates",
           "affine_transform_backward", "rotation_transforms", "zoom_transforms", "translation_transforms",
           "shear_transforms", "homography_transforms",
           "flip", "crop_resize_forward", "crop_resize_backward", "brightness_forward", "brightness_backward",
           "contrast_forward", "contrast_backward", "center_crop_window"]

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
MAP_FILL_MODES = FILL_MODES + ("mirror",)       # map_coordinates' (RandomElasticTransform's) modes
INTERPOLATIONS = ("bilinear", "nearest")


# -- transforms (Keras' matrices) -------------------------------------------------------------
def rotation_transforms(angles_degrees, height: int, width: int) -> np.ndarray:
    """(N, 8) transforms rotating each image by its angle about the centre ((W-1)/2, (H-1)/2),
    as Keras' `_compute_affine_matrix` (no shear, no scale, no translation)."""
    angle = np.asarray(angles_degrees, np.float64).reshape(-1) * (np.pi / 180.0)
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    cos, sin = np.cos(angle), np.sin(angle)
    a0, a1, b0, b1 = cos, -sin, sin, cos
    a2 = cx - cx * a0 - cy * a1
    b2 = cy - cx * b0 - cy * b1
    zero = np.zeros_like(angle)
    return np.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)


def zoom_transforms(width_zoom, height_zoom, height: int, width: int) -> np.ndarray:
    """(N, 8) transforms scaling about the centre by a factor per image and axis (> 1 zooms out),
    as Keras' `RandomZoom._get_zoom_matrix`."""
    zx = np.asarray(width_zoom, np.float64).reshape(-1)
    zy = np.asarray(height_zoom, np.float64).reshape(-1)
    zero = np.zeros_like(zx)
    return np.stack([zx, zero, (width - 1) / 2.0 * (1.0 - zx), zero, zy, (height - 1) / 2.0 * (1.0 - zy),
                     zero, zero], axis=1)


def translation_transforms(dx, dy) -> np.ndarray:
    """(N, 8) transforms moving each image by (dx, dy) pixels (right and down), as Keras'
    `RandomTranslation._get_translation_matrix`."""
    dx = np.asarray(dx, np.float64).reshape(-1)
    dy = np.asarray(dy, np.float64).reshape(-1)
    one, zero = np.ones_like(dx), np.zeros_like(dx)
    return np.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)


# -- the affine transform -----------------------------------------------------------------------
def shear_transforms(shear_x, shear_y) -> np.ndarray:
    """(N, 8) transforms reading output (x, y) at (x + sx·y, sy·x + y), as Keras' RandomShear."""
    sx, sy = (np.asarray(v, np.float64).reshape(-1) for v in (shear_x, shear_y))
    ones, zeros = np.ones_like(sx), np.zeros_like(sx)
    return np.stack([ones, sx, zeros, sy, ones, zeros, zeros, zeros], axis=1)


def homography_transforms(start_points, end_points) -> np.ndarray:
    """(N, 8) projective transforms taking each image's four `end_points` (x, y) of the output to its
    `start_points` in the input, as Keras' `compute_homography_matrix` (its 8x8 system, solved in float32)."""
    start = np.asarray(start_points, np.float32).reshape(-1, 4, 2)
    end = np.asarray(end_points, np.float32).reshape(-1, 4, 2)
    if start.shape != end.shape:
        raise ValueError(f"homography_transforms: arguments `start_points` and `end_points` must have the same "
                         f"shape (N, 4, 2), got {np.shape(start_points)} and {np.shape(end_points)}")
    rows = []
    for k in range(4):
        (sx, sy), (ex, ey) = start[:, k].T, end[:, k].T
        one, zero = np.ones_like(ex), np.zeros_like(ex)
        rows.append(np.stack([ex, ey, one, zero, zero, zero, -sx * ex, -sx * ey], axis=-1))
        rows.append(np.stack([zero, zero, zero, ex, ey, one, -sy * ex, -sy * ey], axis=-1))
    matrix = np.stack(rows, axis=1)
    target = start.reshape(-1, 8, 1)
    return np.linalg.solve(matrix, target).reshape(-1, 8).astype(np.float32)


def _images(images, op: str) -> np.ndarray:
    """A rank-4 float array (integers become float32, as Keras casts to its compute dtype)."""
    images = check_numeric_array(images, op, "images", ndim=4)
    return images if images.dtype.kind == "f" else images.astype(np.float32)


def _check_choice(value, allowed, arg: str, op: str) -> str:
    if value not in allowed:
        raise ValueError(f"{op}: argument `{arg}` must be one of {allowed}, got {value!r}")
    return value


def _fix_index(index: np.ndarray, size: int, fill_mode: str) -> np.ndarray:
    """Keras' index fixers: an integer index anywhere -> one inside [0, size)."""
    if fill_mode == "wrap":
        return index % size
    if fill_mode == "reflect":      # Keras' _reflect_index_fixer through its mirror fixer
        s = 2 * size
        mirrored = np.abs((2 * index + 1 + s) % (2 * s) - s)
        return (mirrored - 1) // 2
    if fill_mode == "mirror" and size > 1:      # Keras' _mirror_index_fixer (d c b | a b c d | c b a)
        s = size - 1
        return np.abs((index + s) % (2 * s) - s)
    return np.clip(index, 0, size - 1)


def _axis_taps(coordinate: np.ndarray, size: int, interpolation: str, fill_mode: str):
    """[(fixed index, weight, valid)] along one axis (valid: False where "constant" reads the fill)."""
    if interpolation == "nearest":
        nodes = [(np.round(coordinate).astype(np.int64), None)]
    else:
        lower = np.floor(coordinate)
        upper_weight = coordinate - lower
        lower = lower.astype(np.int64)
        nodes = [(lower, 1 - upper_weight), (lower + 1, upper_weight)]
    taps = []
    for index, weight in nodes:
        valid = (index >= 0) & (index < size) if fill_mode == "constant" else None
        taps.append((_fix_index(index, size, fill_mode), weight, valid))
    return taps


def _check_transforms(transforms, batch: int, op: str) -> np.ndarray:
    t = np.asarray(transforms, np.float64)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] not in (6, 8) or t.shape[0] not in (1, batch):
        raise ValueError(f"{op}: argument `transforms` must have shape (8,), (1, 8) or ({batch}, 8) for "
                         f"{batch} images, got {np.shape(transforms)}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{op}: argument `transforms` must be finite, got {t.tolist()}")
    return np.broadcast_to(t, (batch, t.shape[1]))


def _coordinates(t: np.ndarray, h: int, w: int):
    """The input (row, column) each output pixel reads, in the images' float type and in Keras' order
    of operations (y·b1 + x·b0, then + b2), so that float32 rounding (and round()'s ties) agree."""
    rows, cols = np.meshgrid(np.arange(h, dtype=t.dtype), np.arange(w, dtype=t.dtype), indexing="ij")
    row = (rows * t[:, 4, None, None] + cols * t[:, 3, None, None]) + t[:, 5, None, None]
    col = (rows * t[:, 1, None, None] + cols * t[:, 0, None, None]) + t[:, 2, None, None]
    if t.shape[1] == 8 and np.any(t[:, 6:] != 0):      # projective: Keras' perspective_transform's division
        k = (cols * t[:, 6, None, None] + rows * t[:, 7, None, None]) + t.dtype.type(1)
        row, col = row / k, col / k
    return row, col


def affine_transform_forward(images, transforms, interpolation="bilinear", fill_mode="constant",
                             fill_value=0.0, data_format="NHWC"):
    """(the images resampled through `transforms`, ctx for `affine_transform_backward`)."""
    op = "affine_transform"
    images, x, data_format = _sampling_arguments(images, interpolation, fill_mode, FILL_MODES, data_format, op)
    t = _check_transforms(transforms, x.shape[0], op)
    row, col = _coordinates(t.astype(x.dtype), x.shape[1], x.shape[2])
    return _sample(images, x, row, col, interpolation, fill_mode, fill_value, data_format)


def map_coordinates_forward(images, rows, cols, interpolation="bilinear", fill_mode="constant", fill_value=0.0,
                            data_format="NHWC"):
    """(each image sampled at its own (N, H, W) `rows` and `cols`, Keras' map_coordinates rules — "mirror" too —,
    ctx for `affine_transform_backward`): RandomElasticTransform's displaced grids."""
    op = "map_coordinates"
    images, x, data_format = _sampling_arguments(images, interpolation, fill_mode, MAP_FILL_MODES, data_format, op)
    rows, cols = (np.broadcast_to(np.asarray(v, x.dtype), x.shape[:3]) for v in (rows, cols))
    return _sample(images, x, rows, cols, interpolation, fill_mode, fill_value, data_format)


def _sampling_arguments(images, interpolation, fill_mode, fill_modes, data_format, op):
    """(the images checked, them as NHWC, the data format): a resampling's checks."""
    images = _images(images, op)
    data_format = check_data_format(data_format, op)
    _check_choice(interpolation, INTERPOLATIONS, "interpolation", op)
    _check_choice(fill_mode, fill_modes, "fill_mode", op)
    return images, (images if data_format == "NHWC" else images.transpose(0, 2, 3, 1)), data_format


def _sample(images, x, row, col, interpolation, fill_mode, fill_value, data_format):
    """The NHWC images `x` sampled at (row, col) per output pixel, and the taps for the backward pass."""
    n, h, w, c = x.shape
    base = (np.arange(n) * (h * w))[:, None, None]
    flat = x.reshape(n * h * w, c)
    out = np.zeros((n, h, w, c), x.dtype)
    taps: List[Tuple[np.ndarray, np.ndarray]] = []
    for ri, rw, rv in _axis_taps(row, h, interpolation, fill_mode):
        for ci, cw, cv in _axis_taps(col, w, interpolation, fill_mode):
            weight = np.ones((n, h, w), x.dtype) if rw is None else rw
            weight = weight if cw is None else weight * cw
            index = (base + ri * w + ci).reshape(-1)
            weight = weight.astype(x.dtype).reshape(-1)
            values = flat[index]
            if rv is not None:
                valid = (rv & cv).reshape(-1)
                values = np.where(valid[:, None], values, x.dtype.type(fill_value))
                weight_in = np.where(valid, weight, 0).astype(x.dtype)
            else:
                weight_in = weight
            out += (weight[:, None] * values).reshape(n, h, w, c)
            taps.append((index, weight_in))
    y = out if data_format == "NHWC" else out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(y), (images.shape, data_format, taps)


def elastic_coordinates(noise_x, noise_y, alpha: float, sigma: float):
    """Keras' (torch backend's) `elastic_transform` grids: the (N, H, W) normal fields times sigma, blurred by its
    Gaussian of size int(6 sigma) | 1 (zero padding), then (rows, cols) = (y + alpha dy, x + alpha dx)."""
    from .augment_color import gaussian_kernel
    sigma, alpha = np.float32(sigma), np.float32(alpha)
    kernel = gaussian_kernel(int(6 * sigma) | 1, (sigma, sigma))
    size, pad = kernel.shape[0], kernel.shape[0] // 2

    def blurred(noise):
        field = np.asarray(noise, np.float32) * sigma
        n, h, w = field.shape
        padded = np.pad(field, ((0, 0), (pad, pad), (pad, pad)))
        total = np.zeros((n, h, w), np.float32)
        for i in range(size):
            for j in range(size):
                total += kernel[i, j] * padded[:, i:i + h, j:j + w]
        return total
    dx, dy = blurred(noise_x), blurred(noise_y)
    h, w = dx.shape[1:]
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    return rows + alpha * dy, cols + alpha * dx


def affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant", fill_value=0.0,
                     data_format="NHWC") -> np.ndarray:
    """The images resampled through one transform per image (see the module docstring)."""
    return affine_transform_forward(images, transforms, interpolation, fill_mode, fill_value, data_format)[0]


def affine_transform_backward(grad_output, ctx) -> np.ndarray:
    """The gradient w.r.t. the images of the `affine_transform_forward` call that returned `ctx`
    (the fill value is a constant: it gets no gradient)."""
    shape, data_format, taps = ctx
    g = np.asarray(grad_output)
    g = g if data_format == "NHWC" else g.transpose(0, 2, 3, 1)
    n, h, w, c = g.shape
    g = g.reshape(-1, c)
    grad = np.zeros((c, n * h * w))
    for index, weight in taps:      # a bincount per tap and channel (summed in float64): faster than np.add.at
        for k in range(c):
            grad[k] += np.bincount(index, weights=weight * g[:, k], minlength=grad.shape[1])
    grad = grad.T.astype(g.dtype).reshape(n, h, w, c)
    return np.ascontiguousarray(grad if data_format == "NHWC" else grad.transpose(0, 3, 1, 2))


# -- flips, crops, colour --------------------------------------------------------------------
def _spatial_axes(data_format: str) -> Tuple[int, int]:
    return (2, 3) if data_format == "NCHW" else (1, 2)


def flip(images, flips, horizontal: bool, vertical: bool, data_format="NHWC") -> np.ndarray:
    """Each image i with flips[i] True mirrored left-right (`horizontal`) and/or top-bottom
    (`vertical`); the others unchanged.  Its own inverse and a permutation: the backward pass of a
    flip is the same flip of the gradient."""
    op = "flip"
    images = _images(images, op)
    data_format = check_data_format(data_format, op)
    flips = np.asarray(flips, bool).reshape(-1)
    if flips.shape[0] != images.shape[0]:
        raise ValueError(f"{op}: argument `flips` must hold one flag per image ({images.shape[0]}), "
                         f"got {flips.shape[0]}")
    rows, cols = _spatial_axes(data_format)
    flipped = images[flips]
    if horizontal:
        flipped = np.flip(flipped, axis=cols)
    if vertical:
        flipped = np.flip(flipped, axis=rows)
    out = images.copy()
    out[flips] = flipped
    return out


def center_crop_window(height: int, width: int, target_height: int, target_width: int) -> Tuple[int, int]:
    """(top, left) of Keras' RandomCrop's centred window (its path at inference or for small inputs)."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    return int(float(height - crop_height) / 2), int(float(width - crop_width) / 2)


def crop_resize_forward(images, top: int, left: int, size: Sequence[int], data_format="NHWC"):
    """(images[top:top + h, left:left + w], resized bilinearly to `size` = (h, w) when the slice is
    smaller (an input smaller than `size`), ctx): Keras' RandomCrop given its window."""
    op = "crop_resize"
    images = _images(images, op)
    data_format = check_data_format(data_format, op)
    rows, cols = _spatial_axes(data_format)
    height, width = int(size[0]), int(size[1])
    index = [slice(None)] * 4
    index[rows], index[cols] = slice(top, top + height), slice(left, left + width)
    window = images[tuple(index)]
    if window.shape[rows] == height and window.shape[cols] == width:
        return np.ascontiguousarray(window), (images.shape, tuple(index), None)
    resized, resize_ctx = resize2d_forward(np.ascontiguousarray(window), (height, width), "bilinear", data_format)
    return resized, (images.shape, tuple(index), resize_ctx)


def crop_resize_backward(grad_output, ctx) -> np.ndarray:
    """The gradient w.r.t. the images of the `crop_resize_forward` call that returned `ctx`."""
    shape, index, resize_ctx = ctx
    grad_window = np.asarray(grad_output) if resize_ctx is None else resize2d_backward(grad_output, resize_ctx)
    grad = np.zeros(shape, grad_window.dtype)
    grad[index] = grad_window
    return grad


def _per_image(values, images: np.ndarray, arg: str, op: str) -> np.ndarray:
    values = np.asarray(values, np.float64).reshape(-1)
    if values.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"{op}: argument `{arg}` must hold one value per image ({images.shape[0]}), "
                         f"got {values.shape[0]}")
    return values.astype(images.dtype).reshape(-1, 1, 1, 1)


def brightness_forward(images, delta, value_range):
    """(clip(images + delta, low, high), mask) with one delta per image: Keras' RandomBrightness."""
    op = "brightness"
    images = _images(images, op)
    low, high = value_range
    shifted = images + _per_image(delta, images, "delta", op)
    return np.clip(shifted, low, high), (shifted >= low) & (shifted <= high)


def brightness_backward(grad_output, mask) -> np.ndarray:
    """The gradient through the shift and the clip (torch's clamp: 1 inside [low, high], ends included)."""
    return np.where(mask, grad_output, 0).astype(np.asarray(grad_output).dtype)


def contrast_forward(images, factor, value_range, data_format="NHWC"):
    """(clip((x - mean) · factor + mean, low, high), ctx) with the mean per image and channel over
    the spatial axes and one factor per image: Keras' RandomContrast."""
    op = "contrast"
    images = _images(images, op)
    data_format = check_data_format(data_format, op)
    axes = _spatial_axes(data_format)
    factor = _per_image(factor, images, "factor", op)
    mean = images.mean(axis=axes, keepdims=True)
    adjusted = (images - mean) * factor + mean
    low, high = value_range
    return np.clip(adjusted, low, high), (factor, (adjusted >= low) & (adjusted <= high), axes)


def contrast_backward(grad_output, ctx) -> np.ndarray:
    """y = f·x + (1 - f)·mean(x) before the clip: grad_x = f·g + (1 - f)·mean(g) with g the clipped gradient."""
    factor, mask, axes = ctx
    g = np.where(mask, grad_output, 0).astype(np.asarray(grad_output).dtype)
    return factor * g + (1 - factor) * g.mean(axis=axes, keepdims=True)
