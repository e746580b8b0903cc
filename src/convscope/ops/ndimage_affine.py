"""SciPy's `ndimage.affine_transform` for one 2-D image at order 0 or 1, without SciPy: the resampling
Keras' legacy `ImageDataGenerator` uses (`preprocessing/image.py`), its coordinate and tap rules."""

from __future__ import annotations

import numpy as np

__all__ = ["resample_affine", "map_coordinate", "mirror_taps"]


def resample_affine(image: np.ndarray, affine: np.ndarray, offset: np.ndarray, order: int, mode: str, cval) -> np.ndarray:
    """SciPy's `ndimage.affine_transform(image, affine, offset, order, mode, cval)` for a 2-D image and
    order 0 or 1: output pixel o reads the input at affine @ o + offset (its C code's steps: the
    coordinate mapped by the mode, then the taps, mirrored where they fall off the edge)."""
    rows, cols = np.meshgrid(np.arange(image.shape[0], dtype=np.float64),
                             np.arange(image.shape[1], dtype=np.float64), indexing="ij")
    outside = np.zeros(rows.shape, bool)
    taps = []
    for axis, n in enumerate(image.shape):
        c = rows * affine[axis, 0] + cols * affine[axis, 1] + offset[axis]
        if mode == "constant":
            outside |= (c < 0) | (c > n - 1)
        c = map_coordinate(c, n, mode)
        start = np.floor(c) if order == 1 else np.floor(c + 0.5)
        weight = c - start
        start = start.astype(np.int64)
        taps.append([(mirror_taps(start, n), 1 - weight), (mirror_taps(start + 1, n), weight)] if order == 1
                    else [(mirror_taps(start, n), np.ones_like(c))])
    out = np.zeros(rows.shape, np.float64)
    for r_index, r_weight in taps[0]:
        for c_index, c_weight in taps[1]:
            out += r_weight * c_weight * image[r_index, c_index]
    if mode == "constant":
        out = np.where(outside, cval, out)
    return out.astype(image.dtype, copy=False)


def map_coordinate(c: np.ndarray, n: int, mode: str) -> np.ndarray:
    """A coordinate outside [0, n - 1] mapped back as SciPy's `map_coordinate` does for `mode`."""
    if n <= 1:
        return np.zeros_like(c)
    low, high = c < 0, c > n - 1
    if mode in ("nearest", "constant"):         # constant: those pixels get cval afterwards
        return np.clip(c, 0, n - 1)
    if mode == "reflect":
        period = 2 * n
        below = np.where(c < -period, period * np.trunc(-c / period) + c, c)
        below = np.where(below < -n, below + period, -below - 1)
        above = c - period * np.trunc(c / period)
        above = np.where(above >= n, period - above - 1, above)
    else:                                         # "wrap": period n - 1, first and last overlap
        period = n - 1
        below = c + period * (np.trunc(-c / period) + 1)
        above = c - period * np.trunc(c / period)
    return np.where(low, below, np.where(high, above, c))


def mirror_taps(index: np.ndarray, n: int) -> np.ndarray:
    """Tap indices beyond the edges mirrored about the first and last pixel (SciPy's taps)."""
    if n <= 1:
        return np.zeros_like(index)
    period = 2 * n - 2
    low = period * (-index // period) + index
    low = np.where(low <= 1 - n, low + period, -low)
    high = index - period * (index // period)
    high = np.where(high >= n, period - high, high)
    return np.where(index < 0, low, np.where(index >= n, high, index))
