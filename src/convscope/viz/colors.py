"""The diverging colour scale used by every picture, and its colour bar.

Negative values are blue, zero white, positive red, on a scale symmetric
around zero (`vmax` = largest magnitude), so one colour means one value across
all tiles of a figure — the same scale the HTML report uses.
"""

from __future__ import annotations

import numpy as np

NEGATIVE = np.array([33, 102, 172], np.float64)   # #2166ac
ZERO = np.array([247, 247, 247], np.float64)      # #f7f7f7
POSITIVE = np.array([178, 24, 43], np.float64)    # #b2182b


def symmetric_limit(values: np.ndarray) -> float:
    """Largest finite magnitude of `values`, or 1.0 when all are zero (so the scale is defined)."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    limit = float(np.max(np.abs(finite))) if finite.size else 0.0
    return limit if limit > 0 else 1.0


def diverging_rgb(values: np.ndarray, vmax: float) -> np.ndarray:
    """uint8 RGB of `values` (any shape) on the blue-white-red scale from -vmax to +vmax."""
    t = np.clip(np.nan_to_num(np.asarray(values, np.float64) / vmax), -1.0, 1.0)[..., None]
    rgb = np.where(t >= 0, ZERO + (POSITIVE - ZERO) * t, ZERO + (NEGATIVE - ZERO) * (-t))
    return np.round(rgb).astype(np.uint8)


def draw_colorbar(drawing, x: float, y: float, width: float, vmax: float, label: str = "") -> float:
    """A horizontal colour bar from -vmax to +vmax with three ticks; returns the height used."""
    gradient = diverging_rgb(np.linspace(-vmax, vmax, 128)[None, :], vmax)
    drawing.image(x, y, width, 10, gradient, css_class="colorbar")
    drawing.rect(x, y, width, 10, stroke="#888888", stroke_width=0.5)
    for fraction, value in ((0.0, -vmax), (0.5, 0.0), (1.0, vmax)):
        anchor = {0.0: "start", 0.5: "middle", 1.0: "end"}[fraction]
        drawing.text(x + fraction * width, y + 22, _tick(value), size=9, anchor=anchor, fill="#444444")
    if label:
        drawing.text(x + width + 8, y + 9, label, size=9, fill="#444444")
    return 26.0


def _tick(value: float) -> str:
    return "0" if value == 0 else f"{value:+.3g}"
