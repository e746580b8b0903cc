"""FBetaScore and F1Score: the harmonic mean of precision and recall per class (Keras 3's f_score_metrics)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .base import Metric, as_array, as_result

EPSILON = 1e-7
AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """(1 + β²)·precision·recall / (β²·precision + recall) per class of (samples, classes) targets and scores;
    a score above `threshold` (None: each sample's largest score) counts as predicted.  `average`: None (one
    value per class), "micro" (counts over every class), "macro" (the classes' mean) or "weighted" (by support).
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(dtype=dtype, name=name)
        owner = type(self).__name__
        if average not in AVERAGES:
            raise ValueError(f"{owner}: argument `average` must be one of {AVERAGES}, got {average!r}")
        if isinstance(beta, bool) or not isinstance(beta, (float, int)) or not beta > 0:
            raise ValueError(f"{owner}: argument `beta` must be a number > 0, got {beta!r}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (float, int))
                                      or not 0 < threshold <= 1):
            raise ValueError(f"{owner}: argument `threshold` must be None or a number in (0, 1], got {threshold!r}")
        self.average, self.beta = average, float(beta)
        self.threshold = None if threshold is None else float(threshold)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        owner = f"{type(self).__name__}.update_state"
        y_true = as_array(owner, "y_true", y_true).astype(self.dtype)
        y_pred = as_array(owner, "y_pred", y_pred).astype(self.dtype)
        if y_true.ndim != 2 or y_pred.shape != y_true.shape:
            raise ValueError(f"{owner}: expected 2-D targets and scores of one shape (samples, classes), got "
                             f"y_true {y_true.shape} and y_pred {y_pred.shape}")
        if self._counts is not None and self._counts.shape[-1] != y_pred.shape[-1] and self.average != "micro":
            raise ValueError(f"{owner}: expected {self._counts.shape[-1]} classes (the earlier batches'), got "
                             f"{y_pred.shape[-1]}")
        if self.threshold is None:
            predicted = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (np.abs(y_pred) > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.astype(self.dtype)
        weight = None if sample_weight is None else \
            as_array(owner, "sample_weight", sample_weight).astype(self.dtype).reshape(-1, 1)
        axis = None if self.average == "micro" else 0
        cells = [predicted * y_true, predicted * (1 - y_true), (1 - predicted) * y_true, y_true]
        counts = np.stack([np.sum(c if weight is None else c * weight, axis=axis) for c in cells])
        self._counts = counts if self._counts is None else self._counts + counts

    def result(self):
        if self._counts is None:
            return 0.0
        tp, fp, fn, support = self._counts
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        beta2 = self.beta ** 2
        score = precision * recall / (beta2 * precision + recall + EPSILON) * (1 + beta2)
        if self.average == "weighted":
            score = np.sum(score * support / (np.sum(support) + EPSILON))
        elif self.average is not None:
            score = np.mean(score)
        return as_result(score)

    def reset_state(self) -> None:
        self._counts = None             # rows: true positives, false positives, false negatives, support

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """FBetaScore with β = 1: 2·precision·recall / (precision + recall)."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average, 1.0, threshold, name, dtype)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        del config["beta"]
        return config
