"""Regression metrics as Keras' objects: MeanSquaredError, MeanAbsoluteError, RootMeanSquaredError."""

from __future__ import annotations

import numpy as np

from .. import losses
from .base import MeanMetricWrapper, squeeze_or_expand


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
