"""AUC: the area under the ROC or precision-recall curve, approximated from confusion-matrix
counts at `num_thresholds` thresholds (Keras 3's AUC, the same numbers)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ..ops.activations import get_activation
from . import confusion
from .base import Metric, as_array, as_result, check_bool, check_int, divide_no_nan
from .precision_recall import check_thresholds

_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = {"interpolation": "interpolation", "majoring": "majoring", "minoring": "minoring"}


def _choice(owner: str, arg: str, value, table: Dict[str, str], allowed) -> str:
    key = value.lower() if isinstance(value, str) else None
    if key not in table or value not in (table[key], table[key].lower(), table[key].capitalize()):
        raise ValueError(f"{owner}: argument `{arg}` must be one of {allowed}, got {value!r}")
    return table[key]


class AUC(Metric):
    """Area under the ROC ("ROC") or precision-recall ("PR") curve; `multi_label` averages one
    curve per label column (weighted by `label_weights`)."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        owner = type(self).__name__
        self.curve = _choice(owner, "curve", curve, _CURVES, ["ROC", "PR", "PRGAIN"])
        self.summation_method = _choice(owner, "summation_method", summation_method, _SUMMATIONS,
                                        ["interpolation", "majoring", "minoring"])
        self.multi_label = check_bool(owner, "multi_label", multi_label)
        self._from_logits = check_bool(owner, "from_logits", from_logits)
        self._set_thresholds(owner, num_thresholds, thresholds)
        super().__init__(dtype=dtype, name=name)
        if num_labels is not None:
            if not self.multi_label:
                raise ValueError(f"{owner}: argument `num_labels` is needed only with multi_label=True, "
                                 f"got num_labels={num_labels!r} and multi_label=False")
            num_labels = check_int(owner, "num_labels", num_labels, 1)
        self.num_labels = num_labels
        self.label_weights = self._check_label_weights(owner, label_weights)
        self._num_labels = num_labels
        self.reset_state()

    def _set_thresholds(self, owner: str, num_thresholds, thresholds) -> None:
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(check_thresholds(owner, thresholds))
            self.num_thresholds = len(inner) + 2
            self._evenly = confusion.evenly_distributed([0.0] + inner + [1.0])
        else:
            self.num_thresholds = check_int(owner, "num_thresholds", num_thresholds, 2)
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
            self._evenly = True
        self._thresholds = [0.0 - confusion.EPSILON] + inner + [1.0 + confusion.EPSILON]

    def _check_label_weights(self, owner: str, label_weights) -> Optional[np.ndarray]:
        if label_weights is None:
            return None
        weights = np.asarray(label_weights)
        if weights.dtype.kind not in "iuf" or weights.ndim != 1 or \
                (self.num_labels is not None and len(weights) != self.num_labels):
            raise ValueError(f"{owner}: argument `label_weights` must be a list of numbers, one per label"
                             f"{f' ({self.num_labels})' if self.num_labels else ''}, got {label_weights!r}")
        return weights.astype(np.float32)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        owner = f"{type(self).__name__}.update_state"
        y_true, y_pred = as_array(owner, "y_true", y_true), as_array(owner, "y_pred", y_pred)
        weight = None if sample_weight is None else as_array(owner, "sample_weight", sample_weight)
        if self.multi_label:
            if y_pred.ndim != 2 or (self._num_labels is not None and y_pred.shape[1] != self._num_labels):
                expected = f"(batch, {self._num_labels})" if self._num_labels else "rank 2 (batch, labels)"
                raise ValueError(f"{owner}: with multi_label=True, y_pred must have shape {expected}, "
                                 f"got {y_pred.shape}")
            self._build(y_pred.shape[1])
        if self._from_logits:
            y_pred = get_activation("sigmoid").forward(y_pred.astype(np.float32))
        y_true, y_pred, weight = confusion.prepare(owner, y_true, y_pred, weight)
        counts = confusion.confusion_counts(y_true, y_pred, self._thresholds, self._evenly, weight,
                                            self.multi_label, None if self.multi_label else self.label_weights)
        for cell in ("tp", "fp", "tn", "fn"):
            self._counts[cell] = self._counts[cell] + counts[cell]

    def _build(self, labels: int) -> None:
        if self._num_labels is None:
            self._num_labels = labels
            self.reset_state()

    def reset_state(self) -> None:
        shape = (self.num_thresholds,) if not self.multi_label else (self.num_thresholds, self._num_labels or 0)
        self._counts = {cell: np.zeros(shape) for cell in ("tp", "fp", "tn", "fn")}

    def result(self) -> float:
        if self.multi_label and self._num_labels is None:
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            return as_result(self._by_label(self._interpolated_pr_terms()))
        x, y = self._curve_points()
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return as_result(self._by_label((x[:-1] - x[1:]) * heights))

    def _curve_points(self):
        """(x, y) of the curve at each threshold."""
        c = self._counts
        recall = divide_no_nan(c["tp"], c["tp"] + c["fn"])
        if self.curve == "ROC":
            return divide_no_nan(c["fp"], c["fp"] + c["tn"]), recall
        if self.curve == "PR":
            return recall, divide_no_nan(c["tp"], c["tp"] + c["fp"])
        scale = divide_no_nan(c["tp"] + c["fn"], c["tn"] + c["fp"])
        recall_gain = np.where(c["tp"] == 0, 0.0, 1.0 - scale * divide_no_nan(c["fn"], c["tp"]))
        precision_gain = np.where(c["tp"] == 0, 1.0, 1.0 - scale * divide_no_nan(c["fp"], c["tp"]))
        return np.maximum(recall_gain, 0.0), precision_gain

    def _interpolated_pr_terms(self):
        """Davis & Goadrich's interpolation of the PR curve between thresholds, as Keras."""
        tp, fp, fn = self._counts["tp"], self._counts["fp"], self._counts["fn"]
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))

    def _by_label(self, terms: np.ndarray) -> float:
        total = terms.sum(axis=0)
        if not self.multi_label:
            return total
        if self.label_weights is None:
            return total.mean()
        return divide_no_nan(np.sum(total * self.label_weights), np.sum(self.label_weights))

    def get_config(self) -> Dict[str, Any]:
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
