"""The colour scales of every picture, chosen by the data, and their colour bar.

Data ≥ 0 (an image, ReLU maps) gets a sequential scale from 0 (white) to its
largest value (dark blue); data with negative values gets a diverging scale
symmetric around zero (blue, white at 0, red), so one colour means one value
across all tiles of a figure.  These are the report's scales: the same stops
as `SEQ`/`DIV_*` in assets/report.js, rounded the same way (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEGATIVE = np.array([33, 102, 172], np.float64)   # #2166ac
ZERO = np.array([247, 247, 247], np.float64)      # #f7f7f7
POSITIVE = np.array([178, 24, 43], np.float64)    # #b2182b
SEQUENTIAL = np.array([[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]],
                      np.float64)                 # white to dark blue
NOT_FINITE = np.array([255, 0, 255], np.uint8)    # NaN and inf stand out in magenta


@dataclass(frozen=True)
class Scale:
    """A colour scale: `kind` "seq" (0..hi) or "div" (-hi..hi); `lo`, `hi` its ends."""
    kind: str
    lo: float
    hi: float


def scale_of(values: np.ndarray) -> Scale:
    """Sequential from 0 to the largest value when every finite value is ≥ 0, else diverging around 0."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    if lo >= 0:
        return Scale("seq", 0.0, hi if hi > 0 else 1.0)
    limit = max(abs(lo), abs(hi))
    return Scale("div", -limit, limit)


def _round(rgb: np.ndarray) -> np.ndarray:
    return np.floor(rgb + 0.5).astype(np.uint8)   # JavaScript's Math.round, as the report


def diverging_rgb(values: np.ndarray, vmax: float) -> np.ndarray:
    """uint8 RGB of `values` (any shape) on the blue-white-red scale from -vmax to +vmax."""
    values = np.asarray(values, np.float64)
    t = np.clip(np.nan_to_num(values / vmax), -1.0, 1.0)[..., None]
    rgb = _round(np.where(t >= 0, ZERO + (POSITIVE - ZERO) * t, ZERO + (NEGATIVE - ZERO) * (-t)))
    rgb[~np.isfinite(values)] = NOT_FINITE
    return rgb


def sequential_rgb(values: np.ndarray, vmax: float) -> np.ndarray:
    """uint8 RGB of `values` (any shape) on the white-to-blue scale from 0 to vmax."""
    values = np.asarray(values, np.float64)
    f = np.clip(np.nan_to_num(values / vmax), 0.0, 1.0) * (len(SEQUENTIAL) - 1)
    i = np.minimum(len(SEQUENTIAL) - 2, np.floor(f)).astype(int)
    g = (f - i)[..., None]
    rgb = _round(SEQUENTIAL[i] + (SEQUENTIAL[i + 1] - SEQUENTIAL[i]) * g)
    rgb[~np.isfinite(values)] = NOT_FINITE
    return rgb


def scale_rgb(values: np.ndarray, scale: Scale) -> np.ndarray:
    """uint8 RGB of `values` on `scale`."""
    return (sequential_rgb if scale.kind == "seq" else diverging_rgb)(values, scale.hi)


def draw_colorbar(drawing, x: float, y: float, width: float, scale: Scale, label: str = "",
                  kind_label: str = "") -> float:
    """A horizontal colour bar of `scale` with three value ticks and its label; returns the height used."""
    gradient = scale_rgb(np.linspace(scale.lo, scale.hi, 128)[None, :], scale)
    drawing.image(x, y, width, 10, gradient, css_class="colorbar", title=label)
    drawing.rect(x, y, width, 10, stroke="#888888", stroke_width=0.5)
    for fraction in (0.0, 0.5, 1.0):
        value = scale.lo + fraction * (scale.hi - scale.lo)
        anchor = {0.0: "start", 0.5: "middle", 1.0: "end"}[fraction]
        drawing.text(x + fraction * width, y + 22, tick(value, scale.kind == "div"), size=9, anchor=anchor,
                     fill="#444444", css_class="colorbar-tick")
    words = f"{label} ({kind_label})" if label and kind_label else label or kind_label
    if words:
        drawing.text(x + width + 8, y + 9, words, size=9, fill="#444444", css_class="colorbar-label")
    return 26.0


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def tick(value: float, signed: bool = False) -> str:
    """A colour-bar value with three significant digits; powers of ten as ×10ⁿ (no letter "e" in any language)."""
    if value == 0:
        return "0"
    sign = "+" if signed and value > 0 else ""
    if 1e-3 <= abs(value) < 1e5:
        return sign + f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{sign}{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"
