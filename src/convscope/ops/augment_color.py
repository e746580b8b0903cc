"""The pixel maps of Keras 3's augmentation layers (RandomGrayscale, RandomInvert, Solarization,
RandomPosterization, RandomColorDegeneration, RandomSharpness, RandomSaturation, RandomHue, AutoContrast,
Equalization, RandomGaussianBlur, RandomErasing), written with the Keras ops of `convscope.ops` in the
order Keras' code applies them.

Each map takes a batch of images (NHWC or NCHW: `channel_axis` -1 or -3) and the parameters a layer drew
for it (one per image).  On plain arrays it returns an array.  Given a value a `Tape` watches, it records
its ops, and the tape's gradient is the gradient torch's autograd takes through Keras' layer: the same rules
(a `where` passes the gradient to the branch it took, a `clip` inside its bounds, ties of `maximum` and
`minimum` split it in halves).  RandomPosterization's cast to bytes and Equalization's table lookup pass no
gradient to the values they map, as in torch.
"""

from __future__ import annotations

import numpy as np

from . import numpy_api as K
from .tape import Traced

__all__ = ["GRAY_WEIGHTS", "SHARPEN_KERNEL", "to_value_range", "grayscale", "select_grayscale", "invert",
           "solarize", "posterize", "degenerate", "sharpen", "rgb_to_hsv", "hsv_to_rgb", "adjust_saturation",
           "adjust_hue", "auto_contrast", "equalize", "channel_axis", "gaussian_kernel", "gaussian_blur", "erase"]

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)       # Keras' rgb_to_grayscale (ITU-R 601 luma, rounded)
SHARPEN_KERNEL = (1.0 / 13.0, 5.0 / 13.0)   # RandomSharpness' 3x3 smoothing: (each neighbour, the centre)


def channel_axis(data_format: str) -> int:
    """-1 for "channels_last", -3 for "channels_first" (Keras' data_format names)."""
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"augment_color: argument `data_format` must be 'channels_last' or 'channels_first', "
                         f"got {data_format!r}")
    return -1 if data_format == "channels_last" else -3


def _value(x) -> np.ndarray:
    return x.value if isinstance(x, Traced) else np.asarray(x)


def _check_images(x, op: str, channels=None) -> None:
    shape = _value(x).shape
    if len(shape) != 4:
        raise ValueError(f"{op}: argument `images` must be a rank-4 batch, got shape {shape}")
    if channels is not None and shape[channels[0]] not in channels[1]:
        raise ValueError(f"{op}: the images must have {' or '.join(map(str, channels[1]))} channels "
                         f"(axis {channels[0]}), got shape {shape}")


def _per_image(values, x, op: str, name: str) -> np.ndarray:
    """One float32 parameter per image, shaped to broadcast over (N, H, W, C) or (N, C, H, W)."""
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if values.shape[0] != _value(x).shape[0]:
        raise ValueError(f"{op}: argument `{name}` must hold one value per image ({_value(x).shape[0]}), got "
                         f"{values.shape[0]}")
    return values.reshape(-1, 1, 1, 1)


def to_value_range(x, source, target):
    """Keras' `_transform_value_range`: x from [source] to [target] (the same object where they are equal)."""
    if source[0] == target[0] and source[1] == target[1]:
        return x
    low, high = np.float32(source[0]), np.float32(source[1])
    to_low, to_high = np.float32(target[0]), np.float32(target[1])
    return K.add(K.multiply(K.divide(K.subtract(x, low), high - low), to_high - to_low), to_low)


def grayscale(x, axis: int):
    """Keras' `rgb_to_grayscale`: 0.2989 r + 0.587 g + 0.114 b as one channel (a 1-channel image as it is)."""
    _check_images(x, "grayscale", (axis, (1, 3)))
    if _value(x).shape[axis] == 1:
        return x
    r, g, b = (K.take(x, [i], axis=axis) for i in range(3))
    weights = [np.float32(w) for w in GRAY_WEIGHTS]
    return K.add(K.add(K.multiply(weights[0], r), K.multiply(weights[1], g)), K.multiply(weights[2], b))


def select_grayscale(x, apply, axis: int):
    """RandomGrayscale: each image where `apply` holds replaced by its gray level on every channel."""
    flags = np.asarray(apply, dtype=bool).reshape(-1, 1, 1, 1)
    return K.where(flags, grayscale(x, axis), x)


def invert(x, apply, high):
    """RandomInvert: high - x for the images where `apply` holds."""
    flags = np.asarray(apply, dtype=bool).reshape(-1, 1, 1, 1)
    return K.where(flags, K.subtract(np.float32(high), x), x)


def solarize(x, additions, thresholds, value_range):
    """Solarization, on the [0, 255] scale: r = clip(x + addition, 0, 255), then 255 - r where r is at
    least the threshold."""
    op = "solarize"
    _check_images(x, op)
    additions, thresholds = _per_image(additions, x, op, "additions"), _per_image(thresholds, x, op, "thresholds")
    r = K.clip(K.add(to_value_range(x, value_range, (0, 255)), additions), np.float32(0), np.float32(255))
    flipped = K.where(_value(r) < thresholds, r, K.subtract(np.float32(255), r))
    return to_value_range(flipped, (0, 255), value_range)


def posterize(x, shifts, value_range) -> np.ndarray:
    """RandomPosterization: the [0, 255] values cast to bytes (as torch: truncated, then modulo 256), their
    lowest `shift` bits cleared (all of them from 8 on), and back to float32 in `value_range` (no gradient)."""
    op = "posterize"
    _check_images(x, op)
    shifts = np.asarray(shifts, dtype=np.int64).reshape(-1)
    if shifts.shape[0] != _value(x).shape[0] or np.any((shifts < 0) | (shifts > 255)):
        raise ValueError(f"{op}: argument `shifts` must hold one shift of 0 to 255 per image "
                         f"({_value(x).shape[0]}), got {shifts.tolist()}")
    scaled = np.asarray(to_value_range(_value(x).astype(np.float32), value_range, (0, 255)), dtype=np.float32)
    as_bytes = np.trunc(scaled).astype(np.int64) % 256
    shifts = shifts.reshape(-1, 1, 1, 1)
    cleared = np.where(shifts < 8, (as_bytes >> np.minimum(shifts, 7)) << np.minimum(shifts, 7), 0)  # torch's bytes
    cleared = cleared.astype(np.float32)
    return np.asarray(to_value_range(cleared, (0, 255), value_range), dtype=np.float32)


def degenerate(x, factors, value_range, axis: int):
    """RandomColorDegeneration: clip(x + factor (gray - x), low, high), factor per image."""
    factors = _per_image(factors, x, "degenerate", "factors")
    blended = K.add(x, K.multiply(factors, K.subtract(grayscale(x, axis), x)))
    return K.clip(blended, np.float32(value_range[0]), np.float32(value_range[1]))


def _filtered(x, kernel: np.ndarray):
    """NHWC images filtered channel by channel by an odd square float32 `kernel` (a cross-correlation, zero
    padding, 'same' size): the taps summed in the kernel's row-major order."""
    size = kernel.shape[0]
    height, width = _value(x).shape[1:3]
    pad = size // 2
    padded = K.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    total = None
    for i in range(size):
        for j in range(size):
            tap = K.multiply(kernel[i, j], padded[:, i:i + height, j:j + width, :])
            total = tap if total is None else K.add(total, tap)
    return total


def _smoothed(x):
    """RandomSharpness' 3x3 smoothing of NHWC images (`SHARPEN_KERNEL`)."""
    edge, centre = (np.float32(v) for v in SHARPEN_KERNEL)
    kernel = np.full((3, 3), edge, np.float32)
    kernel[1, 1] = centre
    return _filtered(x, kernel)


def gaussian_kernel(size: int, sigma) -> np.ndarray:
    """Keras' (torch backend's) `gaussian_blur` kernel: outer(k(sigma[1]), k(sigma[0])) of the float32 1-D
    kernels exp(-(x / s)^2 / 2) / sum, x = -(size - 1) / 2 .. (size - 1) / 2."""
    sigma = np.asarray(sigma, np.float32).reshape(2)
    x = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)

    def one(s):
        k = np.exp(np.float32(-0.5) * (x / s) ** 2)
        return k / np.sum(k, dtype=np.float32)
    return np.outer(one(sigma[1]), one(sigma[0])).astype(np.float32)


def gaussian_blur(x, apply, kernel_size: int, sigma, value_range, axis: int):
    """RandomGaussianBlur: the images where `apply` holds blurred by `gaussian_kernel(kernel_size, sigma)` (one
    sigma pair for the batch), then every image clipped to `value_range`."""
    _check_images(x, "gaussian_blur")
    flags = np.asarray(apply, dtype=bool).reshape(-1, 1, 1, 1)
    kernel = gaussian_kernel(kernel_size, sigma)
    nhwc = x if axis == -1 else K.transpose(x, (0, 2, 3, 1))
    blurred = _filtered(nhwc, kernel)
    blurred = blurred if axis == -1 else K.transpose(blurred, (0, 3, 1, 2))
    return K.clip(K.where(flags, blurred, x), np.float32(value_range[0]), np.float32(value_range[1]))


def erase(x, masks, apply, fill):
    """RandomErasing: the pixels where `masks` (the images' shape) holds, in the images where `apply` holds,
    replaced by `fill` (the images' shape; no gradient to it)."""
    flags = np.asarray(apply, dtype=bool).reshape(-1, 1, 1, 1)
    return K.where(np.asarray(masks, dtype=bool) & flags, np.asarray(fill, dtype=np.float32), x)


def sharpen(x, factors, value_range, axis: int):
    """RandomSharpness: clip(x + (1 - 2 factor) (smoothed - x), low, high), factor per image (the smoothing
    on the image axes whatever the layout)."""
    _check_images(x, "sharpen")
    factors = _per_image(factors, x, "sharpen", "factors")
    nhwc = x if axis == -1 else K.transpose(x, (0, 2, 3, 1))
    blend = K.subtract(np.float32(1.0), K.multiply(factors, np.float32(2.0)))
    out = K.add(nhwc, K.multiply(blend, K.subtract(_smoothed(nhwc), nhwc)))
    out = K.clip(out, np.float32(value_range[0]), np.float32(value_range[1]))
    return out if axis == -1 else K.transpose(out, (0, 3, 1, 2))


def _planes(x, axis: int):
    return tuple(K.squeeze(K.take(x, [i], axis=axis), axis=axis) for i in range(3))


def rgb_to_hsv(x, axis: int):
    """Keras' (torch backend's) `rgb_to_hsv` of float images: hue in [0, 1), saturation, value = max."""
    _check_images(x, "rgb_to_hsv", (axis, (3,)))
    eps = np.finfo(np.float32).eps
    x = K.where(np.abs(_value(x)) < eps, np.float32(0.0), x)
    r, g, b = _planes(x, axis)
    value = K.maximum(K.maximum(r, g), b)
    minimum = K.minimum(K.minimum(r, g), b)
    spread = K.subtract(value, minimum)
    v, s = _value(value), _value(spread)
    safe_value = K.where(v > 0, value, np.float32(1.0))
    safe_spread = K.where(s > 0, spread, np.float32(1.0))
    saturation = K.where(v > 0, K.divide(spread, safe_value), np.float32(0.0))
    norm = K.divide(np.float32(1.0), K.multiply(np.float32(6.0), safe_spread))
    hue = K.where(v == _value(g), K.add(K.multiply(norm, K.subtract(b, r)), np.float32(2.0 / 6.0)),
                  K.add(K.multiply(norm, K.subtract(r, g)), np.float32(4.0 / 6.0)))
    hue = K.where(v == _value(r), K.multiply(norm, K.subtract(g, b)), hue)
    hue = K.add(K.where(s > 0, hue, np.float32(0.0)), (_value(hue) < 0).astype(np.float32))
    return K.stack([hue, saturation, value], axis=axis)


def hsv_to_rgb(x, axis: int):
    """Keras' (torch backend's) `hsv_to_rgb`."""
    _check_images(x, "hsv_to_rgb", (axis, (3,)))
    hue, saturation, value = _planes(x, axis)
    dh = K.multiply(K.subtract(hue, np.floor(_value(hue))), np.float32(6.0))     # remainder(hue, 1) * 6
    one, two, zero = np.float32(1.0), np.float32(2.0), np.float32(0.0)
    ramps = (K.clip(K.subtract(K.abs(K.subtract(dh, np.float32(3.0))), one), zero, one),
             K.clip(K.subtract(two, K.abs(K.subtract(dh, two))), zero, one),
             K.clip(K.subtract(two, K.abs(K.subtract(dh, np.float32(4.0)))), zero, one))
    one_minus_s = K.subtract(one, saturation)
    return K.stack([K.multiply(value, K.add(one_minus_s, K.multiply(saturation, ramp))) for ramp in ramps],
                   axis=axis)


def adjust_saturation(x, factors, value_range, axis: int):
    """RandomSaturation: the HSV saturation times the factor, clipped to `value_range` (Keras clips the
    saturation itself to the images' value range), back to RGB."""
    factors = _per_image(factors, x, "adjust_saturation", "factors").reshape(-1, 1, 1)
    hue, saturation, value = _planes(rgb_to_hsv(x, axis), axis)
    saturation = K.clip(K.multiply(saturation, factors), np.float32(value_range[0]), np.float32(value_range[1]))
    return hsv_to_rgb(K.stack([hue, saturation, value], axis=axis), axis)


def adjust_hue(x, factors, value_range, axis: int):
    """RandomHue: on the [0, 1] scale, the HSV hue shifted by the factor (wrapped once into [0, 1]), back to
    RGB clipped to [0, 1], then to `value_range`."""
    factors = _per_image(factors, x, "adjust_hue", "factors").reshape(-1, 1, 1)
    hue, saturation, value = _planes(rgb_to_hsv(to_value_range(x, value_range, (0, 1)), axis), axis)
    hue = K.add(hue, factors)
    hue = K.where(_value(hue) > 1.0, K.subtract(hue, np.float32(1.0)), hue)
    hue = K.where(_value(hue) < 0.0, K.add(hue, np.float32(1.0)), hue)
    rgb = K.clip(hsv_to_rgb(K.stack([hue, saturation, value], axis=axis), axis), np.float32(0), np.float32(1))
    return to_value_range(rgb, (0, 1), value_range)


def auto_contrast(x, value_range):
    """AutoContrast: on the [0, 255] scale each image stretched so that its lowest value is 0 and its
    highest 255, over axes 1 and 2 (Keras' axes whatever the layout), clipped; an image whose values are all
    equal (a NaN) kept as it was."""
    _check_images(x, "auto_contrast")
    scaled = to_value_range(x, value_range, (0, 255))
    low, high = K.min(scaled, axis=(1, 2), keepdims=True), K.max(scaled, axis=(1, 2), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = K.multiply(K.divide(np.float32(1.0), K.subtract(high, low)), np.float32(255.0))  # torch: 1/t * 255
        stretched = K.add(K.multiply(scaled, scale), K.multiply(K.negative(low), scale))
        result = to_value_range(K.clip(stretched, np.float32(0.0), np.float32(255.0)), (0, 255), value_range)
    return K.where(np.isnan(_value(result)), x, result)


def equalize(x, value_range, bins: int, axis: int):
    """Equalization: each channel's histogram over the whole batch (Keras' bins on the [0, 255] scale) mapped
    through its rounded cumulative table; a channel with at most one filled bin kept as it is."""
    _check_images(x, "equalize")
    channels = []
    for c in range(_value(x).shape[axis]):
        channel = K.squeeze(K.take(x, [c], axis=axis), axis=axis)
        channels.append(_equalize_channel(channel, value_range, bins))
    return K.stack(channels, axis=axis)


def _equalize_channel(channel, value_range, bins: int):
    low, high = value_range
    scale = (255 - 0) / (high - low)                # Keras' `_scale_values`: Python numbers, then float32
    scaled = K.add(K.multiply(channel, np.float32(scale)), np.float32(0 - low * scale))
    values = _value(scaled)
    indices = np.clip(((values - np.float32(0)) * np.float32(bins - 1) / np.float32(255)).astype(np.int32),
                      0, bins - 1)
    hist = np.bincount(indices.reshape(-1), minlength=bins)
    if np.count_nonzero(hist) <= 1:
        equalized = scaled
    else:
        cdf = np.cumsum(hist)
        cdf_min = cdf[np.nonzero(cdf)[0][0]]
        denominator = np.float32(cdf[-1] - cdf_min if cdf[-1] != cdf_min else 1)
        table = np.clip(np.round(((cdf - cdf_min) * 255).astype(np.float32) / denominator), 0, 255)
        lookup = np.clip((values / np.float32(255.0)) * np.float32(bins - 1), 0, bins - 1).astype(np.int32)
        equalized = table[lookup].astype(np.float32)
    back = (high - low) / (255 - 0)
    return K.add(K.multiply(equalized, np.float32(back)), np.float32(low - 0 * back))
