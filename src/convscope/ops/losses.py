"""Loss functions as pure array maths: per-sample forward and its backward.

Every `<loss>(y_true, y_pred, ...)` returns one loss per sample (the last axis
is reduced, as Keras does); `<loss>_backward(y_true, y_pred, grad_loss, ...)`
returns d(sum(grad_loss * loss)) / d(y_pred), so a caller that averages over
the batch passes `grad_loss = 1 / count`.

With probabilities (`from_logits=False`) the crossentropies follow Keras:
rescale to sum 1 along the class axis, clip to [EPSILON, 1 - EPSILON], take
the log.  The clip has zero gradient outside the interval, as
`tf.clip_by_value`.  With logits they use the stable log-softmax / softplus
forms, whose gradient is the familiar softmax(z) - y (or sigmoid(z) - y).
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7

__all__ = [
    "EPSILON",
    "softmax", "log_softmax", "sigmoid",
    "categorical_crossentropy", "categorical_crossentropy_backward",
    "sparse_categorical_crossentropy", "sparse_categorical_crossentropy_backward",
    "one_hot",
    "binary_crossentropy", "binary_crossentropy_backward",
    "mean_squared_error", "mean_squared_error_backward",
    "mean_absolute_error", "mean_absolute_error_backward",
    "huber", "huber_backward",
]


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _per_sample_grad(grad_loss, like: np.ndarray, axis: int) -> np.ndarray:
    """`grad_loss` (one value per sample) broadcast back over the reduced axis."""
    return np.expand_dims(np.asarray(grad_loss, dtype=like.dtype), axis)


def _clipped_probabilities(y_pred: np.ndarray, axis: int):
    total = np.sum(y_pred, axis=axis, keepdims=True)
    rescaled = y_pred / total
    clipped = np.clip(rescaled, EPSILON, 1 - EPSILON)
    return total, rescaled, clipped


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, axis: int = -1) -> np.ndarray:
    """-sum(y_true * log p) over `axis`, one value per sample."""
    if from_logits:
        return -np.sum(y_true * log_softmax(y_pred, axis), axis=axis)
    _, _, clipped = _clipped_probabilities(y_pred, axis)
    return -np.sum(y_true * np.log(clipped), axis=axis)


def categorical_crossentropy_backward(y_true, y_pred, grad_loss, from_logits: bool = False,
                                      axis: int = -1) -> np.ndarray:
    upstream = _per_sample_grad(grad_loss, y_pred, axis)
    if from_logits:
        y_sum = np.sum(y_true, axis=axis, keepdims=True)
        return (softmax(y_pred, axis) * y_sum - y_true) * upstream
    total, rescaled, clipped = _clipped_probabilities(y_pred, axis)
    inside = (rescaled >= EPSILON) & (rescaled <= 1 - EPSILON)
    grad_rescaled = np.where(inside, -y_true / clipped, 0) * upstream
    # d(p_j / S) / d p_k = (delta_jk - p_j / S) / S
    return ((grad_rescaled - np.sum(grad_rescaled * rescaled, axis=axis, keepdims=True)) / total
            ).astype(y_pred.dtype, copy=False)


def one_hot(labels, num_classes: int, dtype) -> np.ndarray:
    """Integer labels of any shape -> one-hot with a new last axis."""
    labels = np.asarray(labels).astype(np.int64)
    return (labels[..., None] == np.arange(num_classes)).astype(dtype)


def _sparse_labels(labels, y_pred: np.ndarray) -> np.ndarray:
    """Keras accepts labels shaped like y_pred without the class axis, or with a trailing 1."""
    labels = np.asarray(labels)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    return one_hot(labels, y_pred.shape[-1], y_pred.dtype)


def sparse_categorical_crossentropy(labels, y_pred, from_logits: bool = False) -> np.ndarray:
    """Categorical crossentropy with integer labels on the last axis."""
    return categorical_crossentropy(_sparse_labels(labels, y_pred), y_pred, from_logits)


def sparse_categorical_crossentropy_backward(labels, y_pred, grad_loss,
                                             from_logits: bool = False) -> np.ndarray:
    return categorical_crossentropy_backward(_sparse_labels(labels, y_pred), y_pred, grad_loss,
                                             from_logits)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Mean over the last axis of -(y log p + (1 - y) log(1 - p))."""
    if from_logits:
        z = y_pred
        elementwise = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
    else:
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        elementwise = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
    return np.mean(elementwise, axis=-1)


def binary_crossentropy_backward(y_true, y_pred, grad_loss, from_logits: bool = False) -> np.ndarray:
    upstream = _per_sample_grad(grad_loss, y_pred, -1) / y_pred.shape[-1]
    if from_logits:
        return (sigmoid(y_pred) - y_true) * upstream
    p = np.clip(y_pred, EPSILON, 1 - EPSILON)
    inside = (y_pred >= EPSILON) & (y_pred <= 1 - EPSILON)
    grad = np.where(inside, (p - y_true) / (p * (1 - p)), 0)
    return (grad * upstream).astype(y_pred.dtype, copy=False)


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    return np.mean(np.square(y_pred - y_true), axis=-1)


def mean_squared_error_backward(y_true, y_pred, grad_loss) -> np.ndarray:
    upstream = _per_sample_grad(grad_loss, y_pred, -1)
    return (2 * (y_pred - y_true) / y_pred.shape[-1] * upstream).astype(y_pred.dtype, copy=False)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    return np.mean(np.abs(y_pred - y_true), axis=-1)


def mean_absolute_error_backward(y_true, y_pred, grad_loss) -> np.ndarray:
    upstream = _per_sample_grad(grad_loss, y_pred, -1)
    return (np.sign(y_pred - y_true) / y_pred.shape[-1] * upstream).astype(y_pred.dtype, copy=False)


def huber(y_true, y_pred, delta: float = 1.0) -> np.ndarray:
    """Quadratic within `delta` of the target, linear beyond (Keras' huber)."""
    error = np.abs(y_pred - y_true)
    quadratic = 0.5 * np.square(error)
    linear = delta * error - 0.5 * delta ** 2
    return np.mean(np.where(error <= delta, quadratic, linear), axis=-1)


def huber_backward(y_true, y_pred, grad_loss, delta: float = 1.0) -> np.ndarray:
    upstream = _per_sample_grad(grad_loss, y_pred, -1)
    error = y_pred - y_true
    grad = np.clip(error, -delta, delta)
    return (grad / y_pred.shape[-1] * upstream).astype(y_pred.dtype, copy=False)
