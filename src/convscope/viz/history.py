"""`plot_history`: training curves (train and validation) drawn as SVG or PNG by us."""

from __future__ import annotations

import math
from typing import Dict, List

import numpy as np

from ._model import check_dpi, check_path
from .i18n import check_lang, is_accuracy, label, metric_title
from .svg import Drawing, Figure, finish

PANEL_W, PANEL_H = 360.0, 210.0
PLOT_LEFT, PLOT_TOP, PLOT_RIGHT, PLOT_BOTTOM = 56.0, 30.0, 50.0, 36.0
TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"


def history_dict(history, where: str) -> Dict[str, List[float]]:
    """The `{metric: [value per epoch]}` dict of a History (or a plain dict), validated."""
    values = getattr(history, "history", history)
    if not isinstance(values, dict):
        raise TypeError(f"{where}: argument `history` must be a History (from fit) or a dict of lists, "
                        f"got {type(history).__name__}")
    if not values or not any(len(v) for v in values.values()):
        raise ValueError(f"{where}: argument `history` holds no values; train for at least one epoch")
    out = {}
    for key, series in values.items():
        try:
            out[str(key)] = [float(v) for v in series]
        except (TypeError, ValueError):
            raise TypeError(f"{where}: history[{key!r}] must be a list of numbers, got {series!r}") from None
    return out


def curve_panels(values: Dict[str, List[float]]) -> List[str]:
    """Metric names to plot, each with its `val_` partner: loss first, then the others in order."""
    names = [k for k in values if not k.startswith("val_")]
    names += [k[4:] for k in values if k.startswith("val_") and k[4:] not in values]
    return sorted(names, key=lambda k: (k != "loss", names.index(k)))


def plot_history(history, to_file=None, dpi=96, lang="en") -> Figure:
    """One panel per metric (loss first) with the training and `val_` curves over epochs.

    `history` is what `model.fit` returns (or its `.history` dict).  Ticks are
    round numbers, accuracies are drawn in %, each curve's last value is written
    at its end; `lang` ("en"/"ko") is the language of every label.  Writes
    `to_file` (.svg/.png) when given; returns a `Figure`.
    """
    where = "plot_history"
    lang = check_lang(lang, where)
    path = check_path(to_file, where)
    dpi = check_dpi(dpi, where)
    values = history_dict(history, where)
    panels = curve_panels(values)
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    drawing = Drawing(columns * PANEL_W + 20, rows * PANEL_H + 20)
    for index, name in enumerate(panels):
        r, c = divmod(index, columns)
        scale = 100.0 if is_accuracy(name) else 1.0
        series = [(name, TRAIN_COLOR, values.get(name)), (f"val_{name}", VAL_COLOR, values.get(f"val_{name}"))]
        series = [(label, color, [v * scale for v in s]) for label, color, s in series if s]
        _panel(drawing, 10 + c * PANEL_W, 10 + r * PANEL_H, metric_title(name, lang), series, lang,
               "%" if scale != 1.0 else "")
    return finish(drawing, path, dpi, where, panels=panels)


def nice_ticks(low: float, high: float, count: int = 5):
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering [low, high], and their decimals."""
    span = max(high - low, 1e-12)
    raw = span / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * 0.999)
    first = math.floor(low / step + 1e-9) * step
    ticks = []
    value = first
    while (not ticks or ticks[-1] < high - step * 1e-6) and len(ticks) < 50:   # the last tick >= high
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value = first + len(ticks) * step
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if abs(step / power - 2.5) < 1e-9 and step < 1 else 0)
    return ticks, decimals


def _value_text(value: float, decimals: int, unit: str) -> str:
    return f"{value:.{decimals}f}{unit}"


def _panel(drawing: Drawing, x0: float, y0: float, title: str, series, lang: str, unit: str) -> None:
    left, top = x0 + PLOT_LEFT, y0 + PLOT_TOP
    width, height = PANEL_W - PLOT_LEFT - PLOT_RIGHT, PANEL_H - PLOT_TOP - PLOT_BOTTOM
    finite = np.array([v for _, _, s in series for v in s if math.isfinite(v)] or [0.0])
    low, high = float(finite.min()), float(finite.max())
    if high - low < 1e-12:
        low, high = low - max(abs(low) * 0.1, 0.5), high + max(abs(high) * 0.1, 0.5)
    ticks, decimals = nice_ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])
    epochs = max(len(s) for _, _, s in series)

    def px(epoch: int) -> float:
        return left + width / 2 if epochs == 1 else left + (epoch / (epochs - 1)) * width

    def py(value: float) -> float:
        return top + (high - value) / (high - low) * height

    drawing.text(left, y0 + 18, title, size=12, weight="bold")
    drawing.rect(left, top, width, height, fill="#ffffff", stroke="#999999", stroke_width=0.8)
    for tick in ticks:
        drawing.line(left, py(tick), left + width, py(tick), stroke="#e6e6e6", stroke_width=0.6)
        drawing.text(left - 5, py(tick) + 3, _value_text(tick, decimals, unit), size=9, anchor="end",
                     fill="#444444", css_class="tick")
    step = max(1, math.ceil(epochs / 8))
    for epoch in range(0, epochs, step):
        drawing.text(px(epoch), top + height + 13, str(epoch + 1), size=9, anchor="middle", fill="#444444")
    axis = label(lang, "epoch") if epochs > 1 else label(lang, "one_epoch")
    drawing.text(left + width / 2, top + height + 28, axis, size=9, anchor="middle", fill="#444444")
    ends = []
    for number, (name, color, values) in enumerate(series):
        segment = []
        for epoch, value in enumerate(values + [math.nan]):
            if math.isfinite(value):
                segment.append((px(epoch), py(value)))
                continue
            if len(segment) == 1:
                drawing.rect(segment[0][0] - 3, segment[0][1] - 3, 6, 6, fill=color, css_class="curve")
            elif segment:
                drawing.polyline(segment, stroke=color, stroke_width=1.8, css_class="curve")
            segment = []
        last = next((i for i in range(len(values) - 1, -1, -1) if math.isfinite(values[i])), None)
        if last is not None:
            ends.append((py(values[last]), px(last), values[last], color))
        legend_x = left + width - 130 + 62 * number  # the legend sits in the title row, right of the title
        drawing.line(legend_x, y0 + 14, legend_x + 14, y0 + 14, stroke=color, stroke_width=2)
        drawing.text(legend_x + 18, y0 + 18, label(lang, "validation" if name.startswith("val_") else "train"),
                     size=9, fill="#333333")
    placed = []
    for y, x, value, color in sorted(ends):   # each curve's last value at its end, kept apart vertically
        y = max([y] + [p + 11 for p in placed])
        placed.append(y)
        drawing.text(min(x + 5, left + width + 2) if epochs > 1 else x + 7, y + 3,
                     _value_text(value, decimals + 1, unit), size=9, fill=color, weight="bold", css_class="final")
