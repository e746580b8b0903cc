"""Contrast-limited adaptive histogram equalization (CLAHE), as Keras 3's layer computes it.

On the [0, 255] scale, channels last: the image padded (mirrored, the edge repeated: NumPy's and TensorFlow's
"symmetric"; Keras 3.15.1 on torch repeats the edge row instead) to whole tiles of a
`grid` (rows, columns); each tile's 256-bin histogram of the values cut to integers, clipped at
`clip_limit` · tile area / 256 with the excess spread evenly over the bins; its cumulative table stretched to
0..255 (from its first value); each pixel looked up in the tables of the four nearest tile centres (the grid's
edge tables repeated beyond it) and the four blended bilinearly.  No gradient: the output reads the input only
through integer bins.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["clahe"]


def _tables(tiles: np.ndarray, clip_limit: float, area: int) -> np.ndarray:
    """(..., 256) stretched cumulative tables from (..., area) int pixel values in 0..255."""
    rows = int(np.prod(tiles.shape[:-1]))      # one histogram per (image, tile row, tile column, channel)
    bins = (np.arange(rows)[:, None] * 256 + tiles.reshape(rows, -1)).reshape(-1)
    hists = np.bincount(bins, minlength=rows * 256).astype(np.float32).reshape(tiles.shape[:-1] + (256,))
    if clip_limit > 0:
        limit = np.float32(clip_limit * area / 256.0)
        clipped = np.clip(hists, 0, limit)
        hists = clipped + np.sum(hists - clipped, axis=-1, keepdims=True) / np.float32(256.0)
    cdf = np.cumsum(hists, axis=-1, dtype=np.float32)
    cdf_min = np.min(cdf, axis=-1, keepdims=True)
    denominator = np.float32(area) - cdf_min
    denominator = np.where(denominator == 0, np.float32(1.0), denominator)
    return np.clip((cdf - cdf_min) * np.float32(255.0) / denominator, 0, 255)


def _axis_weights(length: int, tile: int, grid: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower table index, upper, weight of the upper) per pixel along one axis of the padded image, the
    grid's tables numbered from 1 (0 and grid + 1: the edge tables repeated)."""
    position = (np.arange(length, dtype=np.float32) - np.float32(tile / 2.0)) / np.float32(tile) + np.float32(1.0)
    low = np.floor(position)
    weight = position - low
    return (np.clip(low, 0, grid + 1).astype(np.int64), np.clip(low + 1, 0, grid + 1).astype(np.int64), weight)


def clahe(images: np.ndarray, clip_limit: float, grid: Tuple[int, int]) -> np.ndarray:
    """CLAHE of a float32 batch (N, H, W, C) on the [0, 255] scale; a new float32 array."""
    n, height, width, channels = images.shape
    grid_h, grid_w = grid
    tile_h, tile_w = -(-height // grid_h), -(-width // grid_w)
    pad = ((0, 0), (0, tile_h * grid_h - height), (0, tile_w * grid_w - width), (0, 0))
    padded = np.pad(images, pad, mode="symmetric") if any(p for _, p in pad) else images
    with np.errstate(invalid="ignore"):         # inf and huge values: cut to an int first (a bin at the end)
        binned = np.clip(padded.astype(np.int32), 0, 255)       # the histograms' bins, as Keras: cast, clip
    pixels = np.clip(padded, 0, 255).astype(np.int32)          # the lookups': clip, then cast (inf reads 255)
    tiles = binned.reshape(n, grid_h, tile_h, grid_w, tile_w, channels).transpose(0, 1, 3, 5, 2, 4)
    tables = _tables(tiles.reshape(n, grid_h, grid_w, channels, tile_h * tile_w), clip_limit, tile_h * tile_w)
    tables = np.pad(tables, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0)), mode="edge")
    y0, y1, wy = _axis_weights(tile_h * grid_h, tile_h, grid_h)
    x0, x1, wx = _axis_weights(tile_w * grid_w, tile_w, grid_w)
    b = np.arange(n)[:, None, None, None]
    c = np.arange(channels)[None, None, None, :]
    rows0, rows1 = y0[None, :, None, None], y1[None, :, None, None]
    cols0, cols1 = x0[None, None, :, None], x1[None, None, :, None]
    wy, wx = wy[None, :, None, None], wx[None, None, :, None]
    top = tables[b, rows0, cols0, c, pixels] * (1 - wx) + tables[b, rows0, cols1, c, pixels] * wx
    bottom = tables[b, rows1, cols0, c, pixels] * (1 - wx) + tables[b, rows1, cols1, c, pixels] * wx
    return np.ascontiguousarray((top * (1 - wy) + bottom * wy)[:, :height, :width, :], dtype=np.float32)
