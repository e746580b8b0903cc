"""The arithmetic of Keras' preprocessing layers `Rescaling` and `Normalization`, forward and backward.

* rescale: y = x * scale + offset (scale and offset broadcast against x);
* standardize: y = (x - mean) / max(sqrt(variance), 1e-7), or with `invert` its inverse
  y = mean + x * max(sqrt(variance), 1e-7) — Keras' `backend.epsilon()` guards a zero variance;
* moments: the mean and (biased) variance of data over `reduce_axes`, from one array or combined
  over batches as Keras' `Normalization.adapt` does.
"""

from __future__ import annotations

from typing import Iterable, Tuple

import numpy as np

__all__ = ["rescale", "rescale_backward", "standardize", "standardize_backward", "moments",
           "combine_moments", "KERAS_EPSILON"]

KERAS_EPSILON = 1e-7    # keras.backend.epsilon()


def rescale(x: np.ndarray, scale, offset) -> np.ndarray:
    """x * scale + offset in x's float type."""
    dtype = x.dtype
    return (x * np.asarray(scale, dtype) + np.asarray(offset, dtype)).astype(dtype, copy=False)


def rescale_backward(grad_y: np.ndarray, scale, input_shape) -> np.ndarray:
    """grad_y * scale, summed back to the input's shape where scale broadcast it wider."""
    grad = grad_y * np.asarray(scale, grad_y.dtype)
    return _unbroadcast(grad, input_shape)


def _unbroadcast(grad: np.ndarray, shape) -> np.ndarray:
    shape = tuple(shape)
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, shape)) if s == 1 and g != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _denominator(variance, dtype) -> np.ndarray:
    return np.maximum(np.sqrt(np.asarray(variance, dtype)), dtype.type(KERAS_EPSILON))


def standardize(x: np.ndarray, mean, variance, invert: bool = False) -> np.ndarray:
    """(x - mean) / max(sqrt(variance), 1e-7), or mean + x * max(...) when `invert`."""
    dtype = x.dtype
    denominator = _denominator(variance, dtype)
    mean = np.asarray(mean, dtype)
    return (mean + x * denominator) if invert else (x - mean) / denominator


def standardize_backward(grad_y: np.ndarray, variance, invert: bool, input_shape) -> np.ndarray:
    """The input gradient of `standardize` (mean and variance are constants)."""
    denominator = _denominator(variance, grad_y.dtype)
    grad = grad_y * denominator if invert else grad_y / denominator
    return _unbroadcast(grad, input_shape)


def moments(x: np.ndarray, reduce_axes: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and biased variance over `reduce_axes`, accumulated in float64."""
    x = np.asarray(x)
    mean = np.mean(x, axis=reduce_axes, dtype=np.float64)
    variance = np.var(x, axis=reduce_axes, dtype=np.float64)
    return mean, variance


def combine_moments(batches: Iterable[np.ndarray], reduce_axes: Tuple[int, ...]):
    """Mean and variance over a stream of batches, updated per batch as Keras' `adapt` does
    (weights count_batch / count_total; the spread between the means added to the variances)."""
    total_mean = total_var = None
    total = 0
    for batch in batches:
        batch_mean, batch_var = moments(batch, reduce_axes)
        count = int(np.prod([np.shape(batch)[a] for a in reduce_axes], dtype=np.int64)) if reduce_axes else 1
        total += count
        weight = count / total
        if total_mean is None:
            total_mean, total_var = np.zeros_like(batch_mean), np.zeros_like(batch_var)
        new_mean = total_mean * (1 - weight) + batch_mean * weight
        total_var = (total_var + (total_mean - new_mean) ** 2) * (1 - weight) + \
            (batch_var + (batch_mean - new_mean) ** 2) * weight
        total_mean = new_mean
    return total_mean, total_var, total
