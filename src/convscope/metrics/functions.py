"""Keras 3's per-sample metric functions: one value per element (or per sample), averaged by
`MeanMetricWrapper`.  Labels and predictions as Keras 3.15.1 compares them."""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from .. import losses
from .base import squeeze_or_expand


def _float(y_pred) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return y_pred if y_pred.dtype.kind == "f" else y_pred.astype(np.float32)


def accuracy(y_true, y_pred) -> np.ndarray:
    """1 where the prediction equals the target exactly (Keras' plain `accuracy`)."""
    y_pred = _float(y_pred)
    y_true, y_pred = squeeze_or_expand(np.asarray(y_true).astype(y_pred.dtype), y_pred)
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Per element: (y_pred > threshold), in y_true's dtype, equals y_true."""
    y_true, y_pred = squeeze_or_expand(np.asarray(y_true), _float(y_pred))
    predicted = (y_pred > np.asarray(threshold, dtype=y_pred.dtype)).astype(y_true.dtype)
    return (y_true == predicted).astype(np.float32)


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1 where argmax(y_pred) == argmax(y_true) (one-hot targets)."""
    y_pred = _float(y_pred)
    labels = np.argmax(y_true, axis=-1)
    shape = labels.shape
    squeezed = labels.ndim == y_pred.ndim
    if squeezed:
        labels = labels[..., 0]
    matches = (labels == np.argmax(y_pred, axis=-1)).astype(np.float32)
    return matches.reshape(shape) if squeezed else matches


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1 where argmax(y_pred) equals the integer label."""
    y_pred = _float(y_pred)
    labels = np.asarray(y_true).astype(y_pred.dtype)
    shape = labels.shape
    squeezed = labels.ndim == y_pred.ndim and labels.shape[-1] == 1
    if squeezed:
        labels = labels[..., 0]
    matches = (labels == np.argmax(y_pred, axis=-1).astype(labels.dtype)).astype(np.float32)
    if squeezed:
        matches = matches.reshape(shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = matches[..., 0]
    return matches


def _in_top_k(labels: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """The label's score is at least the k-th largest (ties count in, as Keras on torch)."""
    target = np.take_along_axis(y_pred, labels[:, None], axis=-1)
    return np.sum(y_pred > target, axis=-1) < k


def _top_k_matches(labels: np.ndarray, y_pred: np.ndarray, k: int, sorted_ids: bool = False) -> np.ndarray:
    shape = labels.shape
    y_pred = y_pred.reshape(-1, y_pred.shape[-1]) if y_pred.ndim > 2 else y_pred
    labels = labels.reshape(-1)
    if sorted_ids:
        matches = np.any(labels[:, None] == y_pred[:, :k], axis=1)
    else:
        matches = _in_top_k(labels.astype(np.int64), y_pred, k)
    return matches.astype(np.float32).reshape(shape)


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    """1 where the one-hot target's class is among the k highest scores."""
    return _top_k_matches(np.argmax(y_true, axis=-1), _float(y_pred), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5, from_sorted_ids: bool = False) -> np.ndarray:
    """1 where the integer label is among the k highest scores (or the first k ids of sorted ids)."""
    y_pred = _float(y_pred)
    labels = np.asarray(y_true).astype(y_pred.dtype if from_sorted_ids else np.int32)
    return _top_k_matches(labels, y_pred, k, from_sorted_ids)


FUNCTIONS: Dict[str, Callable] = {
    "accuracy": accuracy,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mean_squared_error": losses.mean_squared_error, "mse": losses.mean_squared_error,
    "MSE": losses.mean_squared_error,
    "mean_absolute_error": losses.mean_absolute_error, "mae": losses.mean_absolute_error,
    "MAE": losses.mean_absolute_error,
    "categorical_crossentropy": losses.categorical_crossentropy,
    "sparse_categorical_crossentropy": losses.sparse_categorical_crossentropy,
    "binary_crossentropy": losses.binary_crossentropy,
    "bce": losses.binary_crossentropy, "BCE": losses.binary_crossentropy,
    "mean_absolute_percentage_error": losses.mean_absolute_percentage_error,
    "mape": losses.mean_absolute_percentage_error, "MAPE": losses.mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": losses.mean_squared_logarithmic_error,
    "msle": losses.mean_squared_logarithmic_error, "MSLE": losses.mean_squared_logarithmic_error,
    "kl_divergence": losses.kl_divergence, "poisson": losses.poisson,
    "hinge": losses.hinge, "squared_hinge": losses.squared_hinge, "categorical_hinge": losses.categorical_hinge,
}
