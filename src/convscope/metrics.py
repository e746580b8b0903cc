"""Keras-named metrics, and `"accuracy"` resolved from the shapes as Keras' `compile` does.

Metric functions return one value per sample; `MeanMetricWrapper` averages
them over every sample seen since `reset_state()` (the running epoch value that
`fit` shows and records in `History`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import numpy as np

from . import losses

__all__ = [
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "Metric", "Mean", "MeanMetricWrapper", "get", "resolve",
]


def accuracy(y_true, y_pred) -> np.ndarray:
    """1 where the prediction equals the target exactly (Keras' plain `accuracy` function)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return (y_true == y_pred).astype("float32")


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Mean over the last axis of (y_pred > threshold) == y_true."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    return np.mean((y_pred > threshold) == (y_true > 0.5), axis=-1).astype("float32")


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1 where argmax(y_pred) == argmax(y_true) (one-hot targets)."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype("float32")


def _integer_labels(y_true, y_pred) -> np.ndarray:
    y_true = np.asarray(y_true)
    if y_true.ndim == np.ndim(y_pred) and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return y_true.astype(np.int64)


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1 where argmax(y_pred) equals the integer label."""
    return (_integer_labels(y_true, y_pred) == np.argmax(y_pred, axis=-1)).astype("float32")


def _in_top_k(labels: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    target_scores = np.take_along_axis(y_pred, labels[..., None], axis=-1)
    return (np.sum(y_pred > target_scores, axis=-1) < k).astype("float32")


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return _in_top_k(_integer_labels(y_true, y_pred), y_pred, k)


class Metric:
    """A running value: `update_state(y_true, y_pred)`, `result()`, `reset_state()`."""

    def __init__(self, name: str):
        self.name = name

    def update_state(self, y_true, y_pred) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class Mean(Metric):
    """Weighted running mean of scalars (the loss tracker: weight = batch size)."""

    def __init__(self, name: str = "mean"):
        super().__init__(name)
        self.reset_state()

    def update_state(self, value, sample_weight: float = 1.0) -> None:
        self._total += float(value) * sample_weight
        self._count += sample_weight

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0

    def reset_state(self) -> None:
        self._total = 0.0
        self._count = 0.0


class MeanMetricWrapper(Mean):
    """Mean over all samples of a per-sample metric function."""

    def __init__(self, fn: Callable, name: str, **kwargs):
        super().__init__(name)
        self.fn = fn
        self.kwargs = kwargs

    def update_state(self, y_true, y_pred) -> None:  # type: ignore[override]
        values = np.asarray(self.fn(y_true, y_pred, **self.kwargs), dtype=np.float64)
        self._total += float(np.sum(values))
        self._count += values.size


_FUNCTIONS: Dict[str, Callable] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mean_squared_error": losses.mean_squared_error, "mse": losses.mean_squared_error,
    "mean_absolute_error": losses.mean_absolute_error, "mae": losses.mean_absolute_error,
    "categorical_crossentropy": losses.categorical_crossentropy,
    "sparse_categorical_crossentropy": losses.sparse_categorical_crossentropy,
    "binary_crossentropy": losses.binary_crossentropy,
}


def get(identifier) -> Callable:
    """The metric function for a Keras name, or a callable/Metric unchanged."""
    if isinstance(identifier, Metric) or callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]
    known = ", ".join(["accuracy", "acc"] + sorted(_FUNCTIONS))
    raise ValueError(f"metrics.get: unknown metric {identifier!r}; known metrics: {known}")


def _accuracy_for_shapes(y_true_shape: Tuple[int, ...], y_pred_shape: Tuple[int, ...]) -> Callable:
    """Keras' rule: one output unit -> binary; labels without a class axis -> sparse; else categorical."""
    is_binary = y_pred_shape[-1] == 1
    is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and not is_binary)
    if is_binary:
        return binary_accuracy
    return sparse_categorical_accuracy if is_sparse else categorical_accuracy


def resolve(identifier, y_true_shape, y_pred_shape) -> Metric:
    """A running `Metric` for `compile(metrics=[...])`; "accuracy"/"acc" keep their short name."""
    if isinstance(identifier, Metric):
        return identifier
    if identifier in ("accuracy", "acc"):
        return MeanMetricWrapper(_accuracy_for_shapes(tuple(y_true_shape), tuple(y_pred_shape)), identifier)
    fn = get(identifier)
    name = identifier if isinstance(identifier, str) else getattr(fn, "__name__", "metric")
    return MeanMetricWrapper(fn, name)


def serialize(identifier) -> Any:
    """A metric as `compile` settings store it: its name."""
    if isinstance(identifier, Metric):
        return identifier.name
    if isinstance(identifier, str):
        return identifier
    return getattr(identifier, "__name__", repr(identifier))
