"""Regression metrics as Keras' objects: MeanSquaredError, MeanAbsoluteError, RootMeanSquaredError, R2Score."""

from __future__ import annotations

import numpy as np

from .. import losses
from .base import Metric, MeanMetricWrapper, as_array, as_result, squeeze_or_expand


class MeanSquaredError(MeanMetricWrapper):
    """The running mean of (y_true - y_pred)^2 (each sample's mean over its last axis)."""

    def __init__(self, name: str = "mean_squared_error", dtype=None):
        super().__init__(losses.mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """The running mean of |y_true - y_pred| (each sample's mean over its last axis)."""

    def __init__(self, name: str = "mean_absolute_error", dtype=None):
        super().__init__(losses.mean_absolute_error, name=name, dtype=dtype)


class RootMeanSquaredError(MeanMetricWrapper):
    """The square root of the running mean of (y_true - y_pred)^2 over every value (Keras': the root is taken
    of the mean, not averaged over batches)."""

    def __init__(self, name: str = "root_mean_squared_error", dtype=None):
        super().__init__(_squared_errors, name=name, dtype=dtype)

    def result(self) -> float:
        return float(np.sqrt(super().result()))


def _squared_errors(y_true, y_pred) -> np.ndarray:
    """(y_true - y_pred)^2 value by value, the target made the prediction's shape (Keras' RMSE)."""
    y_true, y_pred = squeeze_or_expand(np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64))
    try:
        return np.square(y_true - y_pred)       # broadcast, as Keras
    except ValueError:
        raise ValueError(f"RootMeanSquaredError: targets of shape {y_true.shape} do not match predictions of shape "
                         f"{y_pred.shape}") from None


class R2Score(Metric):
    """The coefficient of determination 1 - Σ(y - ŷ)² / Σ(y - ȳ)² per output of (samples, outputs) data,
    aggregated as `class_aggregation` says ("uniform_average", "variance_weighted_average" or None: one per
    output); with `num_regressors` p > 0, the adjusted form 1 - (1 - R²)(n - 1) / (n - p - 1)."""

    AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        super().__init__(dtype=dtype, name=name)
        owner = type(self).__name__
        if class_aggregation not in self.AGGREGATIONS:
            raise ValueError(f"{owner}: argument `class_aggregation` must be one of {self.AGGREGATIONS}, got "
                             f"{class_aggregation!r}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, (int, np.integer)) or num_regressors < 0:
            raise ValueError(f"{owner}: argument `num_regressors` must be an int >= 0, got {num_regressors!r}")
        self.class_aggregation, self.num_regressors = class_aggregation, int(num_regressors)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        owner = f"{type(self).__name__}.update_state"
        y_true, y_pred = squeeze_or_expand(as_array(owner, "y_true", y_true).astype(self.dtype),
                                           as_array(owner, "y_pred", y_pred).astype(self.dtype))
        if y_true.ndim != 2 or y_pred.shape != y_true.shape:
            raise ValueError(f"{owner}: expected 2-D targets and predictions of one shape (samples, outputs), got "
                             f"y_true {y_true.shape} and y_pred {y_pred.shape}")
        weight = np.ones(1, self.dtype) if sample_weight is None else \
            as_array(owner, "sample_weight", sample_weight).astype(self.dtype)
        weight = np.broadcast_to(weight[:, None] if weight.ndim == 1 and sample_weight is not None else weight,
                                 y_true.shape)
        sums = np.stack([np.sum(y_true * weight, axis=0), np.sum(y_true * y_true * weight, axis=0),
                         np.sum((y_true - y_pred) ** 2 * weight, axis=0), np.sum(weight, axis=0)])
        self._sums = sums if self._sums is None else self._sums + sums
        self._values += y_true.size

    def result(self):
        if self._sums is None:
            return 0.0
        total, squares, residual, count = self._sums
        spread = squares - total * (total / count)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = 1 - residual / spread
        scores = np.where(np.isinf(scores), 0.0, scores)
        if self.class_aggregation == "uniform_average":
            scores = np.mean(scores)
        elif self.class_aggregation == "variance_weighted_average":
            scores = np.sum(spread * scores) / np.sum(spread)
        n, p = self._values, self.num_regressors
        if 0 < p < n - 1:
            scores = 1.0 - (1.0 - scores) * (n - 1.0) / (n - p - 1.0)
        return as_result(scores)

    def reset_state(self) -> None:
        self._sums, self._values = None, 0      # rows: Σwy, Σwy², Σw(y - ŷ)², Σw per output

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
