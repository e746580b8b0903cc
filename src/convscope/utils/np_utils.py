"""Keras 2's `keras.utils.np_utils`: `to_categorical` and `normalize`."""

from __future__ import annotations

import numpy as np

__all__ = ["to_categorical", "normalize"]


def to_categorical(y, num_classes=None, dtype="float32") -> np.ndarray:
    """One-hot rows for integer class labels, as Keras: shape y.shape + (num_classes,).

    A trailing axis of size 1 is dropped first (labels shaped (n, 1) give (n, num_classes)).
    """
    where = "to_categorical"
    labels = np.asarray(y)
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"{where}: argument `y` must hold integer class labels, got dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise ValueError(f"{where}: argument `y` must hold finite integer class labels, got NaN or inf")
        if not np.all(labels == np.round(labels)):
            raise ValueError(f"{where}: argument `y` must hold integer class labels, got non-integer values "
                             f"such as {labels[labels != np.round(labels)].flat[0]!r}")
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)
    if flat.size and flat.min() < 0:
        raise ValueError(f"{where}: argument `y` must hold non-negative class labels, got {int(flat.min())}")
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
        if num_classes == 0:
            raise ValueError(f"{where}: argument `num_classes` is needed when `y` is empty")
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes <= 0:
        raise ValueError(f"{where}: argument `num_classes` must be a positive int, got {num_classes!r}")
    elif flat.size and flat.max() >= num_classes:
        raise ValueError(f"{where}: label {int(flat.max())} is out of range for num_classes={num_classes} "
                         f"(labels must be in [0, {num_classes - 1}])")
    dtype = np.dtype(dtype)
    categorical = np.zeros((flat.size, int(num_classes)), dtype=dtype)
    categorical[np.arange(flat.size), flat] = 1
    return categorical.reshape(tuple(shape) + (int(num_classes),))


def normalize(x, axis=-1, order=2) -> np.ndarray:
    """x divided by its `order`-norm along `axis` (zero norms left as zero), as Keras."""
    x = np.asarray(x, dtype=np.float64 if np.asarray(x).dtype.kind != "f" else None)
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order <= 0:
        raise ValueError(f"normalize: argument `order` must be a positive int, got {order!r}")
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)
