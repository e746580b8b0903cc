"""Precision, Recall and the four confusion counts at one or several thresholds (Keras 3's confusion-matrix
metrics)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from . import confusion
from .base import Metric, as_array, as_result, check_int, divide_no_nan


def check_thresholds(owner: str, thresholds) -> Optional[List[float]]:
    """None, one number or a list of numbers, each in [0, 1]; as a list (None stays None)."""
    if thresholds is None:
        return None
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
    bad = [t for t in values if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating))
           or not 0 <= t <= 1]
    if not values or bad:
        raise ValueError(f"{owner}: argument `thresholds` must be a number or a non-empty list of numbers in "
                         f"[0, 1], got {thresholds!r}")
    return [float(t) for t in values]


class _ThresholdMetric(Metric):
    """Counts of two confusion-matrix cells at each threshold; `top_k` and `class_id` as Keras."""

    _cells = ("tp",)

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        owner = type(self).__name__
        super().__init__(dtype=dtype, name=name)
        parsed = check_thresholds(owner, thresholds)
        self.init_thresholds = thresholds if not isinstance(thresholds, np.ndarray) else parsed
        self.top_k = None if top_k is None else check_int(owner, "top_k", top_k, 1)
        self.class_id = None if class_id is None else check_int(owner, "class_id", class_id, 0)
        default = 0.5 if top_k is None else confusion.NEG_INF
        self.thresholds = parsed if parsed is not None else [default]
        self._evenly = confusion.evenly_distributed(self.thresholds)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        owner = f"{type(self).__name__}.update_state"
        y_true, y_pred = as_array(owner, "y_true", y_true), as_array(owner, "y_pred", y_pred)
        weight = None if sample_weight is None else as_array(owner, "sample_weight", sample_weight)
        y_true, y_pred, weight = confusion.prepare(owner, y_true, y_pred, weight, self.top_k, self.class_id)
        counts = confusion.confusion_counts(y_true, y_pred, self.thresholds, self._evenly, weight)
        for cell in self._cells:
            self._counts[cell] += counts[cell]

    def reset_state(self) -> None:
        self._counts = {cell: np.zeros(len(self.thresholds)) for cell in self._cells}

    def _ratio(self, other: str):
        tp = self._counts["tp"]
        value = divide_no_nan(tp, tp + self._counts[other])
        return as_result(value[0] if len(self.thresholds) == 1 else value)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_ThresholdMetric):
    """tp / (tp + fp): of the predictions above the threshold, the share that are positive."""

    _cells = ("tp", "fp")

    def result(self):
        return self._ratio("fp")


class Recall(_ThresholdMetric):
    """tp / (tp + fn): of the positives, the share predicted above the threshold."""

    _cells = ("tp", "fn")

    def result(self):
        return self._ratio("fn")


class _Count(_ThresholdMetric):
    """One confusion-matrix cell's (weighted) count at each threshold."""

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, name=name, dtype=dtype)

    def result(self):
        counts = self._counts[self._cells[0]]
        return as_result(counts[0] if len(self.thresholds) == 1 else counts)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds}


class TruePositives(_Count):
    """Positives predicted above the threshold."""
    _cells = ("tp",)


class FalsePositives(_Count):
    """Negatives predicted above the threshold."""
    _cells = ("fp",)


class TrueNegatives(_Count):
    """Negatives predicted at or below the threshold."""
    _cells = ("tn",)


class FalseNegatives(_Count):
    """Positives predicted at or below the threshold."""
    _cells = ("fn",)
