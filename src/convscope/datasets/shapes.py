"""Seed 002's toy problem: 8×8 hand-drawn triangles, squares and circles.

The seed classifies "triangles, squares and circles drawn by hand" on an 8×8
grid with a tiny CNN.  These images are drawn, not stored: each shape's outline
is a closed polygon (3, 4 or 16 corners) with a random centre, size and tilt,
every corner nudged as a hand would, drawn with a pen whose pressure varies
from stroke to stroke, rendered at 4× resolution and averaged down to 8×8 with
a little sensor noise.  The same `seed` always gives the same images.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("triangle", "square", "circle")
_SUPERSAMPLE = 4
_CORNERS = (3, 4, 16)


def load_data(num_train: int = 600, num_test: int = 150, seed: int = 2):
    """Return `((x_train, y_train), (x_test, y_test))`: uint8 images (N, 8, 8) in 0..255, labels 0..2.

    Labels follow `CLASS_NAMES` (0 triangle, 1 square, 2 circle); classes are
    balanced and interleaved (label i % 3).
    """
    for arg, value, minimum in (("num_train", num_train, 3), ("num_test", num_test, 3),
                                ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"shapes.load_data: argument `{arg}` must be an int, got {value!r}")
        if value < minimum:
            raise ValueError(f"shapes.load_data: argument `{arg}` must be >= {minimum}, "
                             f"got {value}")
    rng = np.random.default_rng(int(seed))
    images, labels = draw_shapes(int(num_train) + int(num_test), rng)
    return ((images[:num_train], labels[:num_train]),
            (images[num_train:], labels[num_train:]))


def draw_shapes(count: int, rng: np.random.Generator):
    """`count` images (uint8, count×8×8) and labels (uint8), label i % 3 for image i."""
    labels = (np.arange(count) % len(CLASS_NAMES)).astype(np.uint8)
    images = np.zeros((count, 8, 8), np.float64)
    for label, corners in enumerate(_CORNERS):
        chosen = np.flatnonzero(labels == label)
        images[chosen] = _draw_polygons(len(chosen), corners, label, rng)
    images = np.clip(images + rng.normal(0.0, 0.04, images.shape), 0.0, 1.0)
    return np.round(images * 255).astype(np.uint8), labels


def _draw_polygons(count: int, corners: int, label: int, rng: np.random.Generator) -> np.ndarray:
    """Outlines of `count` jittered regular polygons, as count×8×8 intensities in 0..1."""
    radius = rng.uniform(2.4, 3.6, (count, 1))
    centre = 4.0 + rng.uniform(-0.5, 0.5, (count, 2))
    tilt = rng.uniform(-0.25, 0.25, (count, 1))
    # A triangle points up, a square sits on a side, a circle has no orientation.
    start = {0: -np.pi / 2, 1: np.pi / 4, 2: 0.0}[label]
    angles = start + tilt + 2 * np.pi * np.arange(corners) / corners
    wobble = 1.0 + rng.uniform(-0.08, 0.08, (count, corners))
    if label == 1:   # a square's corners lie further out than a triangle's or circle's edge
        radius = radius * 1.15
    ys = centre[:, :1] + radius * wobble * np.sin(angles)
    xs = centre[:, 1:] + radius * wobble * np.cos(angles)
    points = np.stack([ys, xs], axis=-1) + rng.normal(0.0, 0.15, (count, corners, 2))
    pressure = rng.uniform(0.6, 1.0, (count, corners))
    width = rng.uniform(0.45, 0.75, (count, 1, 1))
    return _render(points.astype(np.float32), pressure.astype(np.float32),
                   width.astype(np.float32))


def _render(points: np.ndarray, pressure: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Draw closed polylines (count×corners×2, in pixel units) as anti-aliased 8×8 images."""
    size = 8 * _SUPERSAMPLE
    centres = ((np.arange(size) + 0.5) / _SUPERSAMPLE).astype(np.float32)
    grid = np.stack(np.meshgrid(centres, centres, indexing="ij"), axis=-1).reshape(-1, 2)
    start = points[:, None, :, :]                              # count×1×corners×2
    segment = np.roll(points, -1, axis=1)[:, None] - start     # to the next corner
    offset = grid[None, :, None, :] - start                    # count×pixels×corners×2
    length2 = np.maximum(np.einsum("npcd,npcd->npc", segment, segment), 1e-12)
    along = np.clip(np.einsum("npcd,npcd->npc", offset, segment) / length2, 0.0, 1.0)
    gap = offset - along[..., None] * segment
    distance = np.sqrt(np.einsum("npcd,npcd->npc", gap, gap))
    ink = np.clip(1.0 - (distance - width) * 2.0, 0.0, 1.0) * pressure[:, None, :]
    fine = ink.max(axis=-1).reshape(-1, 8, _SUPERSAMPLE, 8, _SUPERSAMPLE)
    return fine.mean(axis=(2, 4))
