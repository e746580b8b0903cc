"""Thresholded confusion-matrix counts, as Keras 3's `metrics_utils.update_confusion_matrix_variables`.

Pure functions (no state): the metric objects add what these return to their counts.  Evenly
spaced thresholds take Keras' bucketed path (each prediction falls in one bucket of width
1/(n-1), float32 arithmetic as Keras; counts are reverse cumulative sums); other thresholds
compare every prediction with every threshold.  A prediction is positive when strictly above.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from .base import squeeze_or_expand

NEG_INF = -1e10
EPSILON = 1e-7


def evenly_distributed(thresholds: Sequence[float]) -> bool:
    """Keras' test: at least 3 thresholds at i / (n - 1)."""
    count = len(thresholds)
    if count < 3:
        return False
    even = np.arange(count, dtype=np.float32) / (count - 1)
    return bool(np.allclose(thresholds, even, atol=EPSILON))


def filter_top_k(x: np.ndarray, k: int) -> np.ndarray:
    """`x` with every score outside the k highest of its row set to NEG_INF."""
    top = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=-1)
    return np.where(mask, x, np.float32(NEG_INF)).astype(np.float32)


def prepare(owner: str, y_true, y_pred, sample_weight, top_k: Optional[int] = None,
            class_id: Optional[int] = None):
    """float32 (y_true, y_pred, sample_weight broadcast to y_pred or None), ranks matched, top-k
    filtered and `class_id`'s column taken, as Keras does before counting."""
    y_true = np.asarray(y_true).astype(np.float32)
    y_pred = np.asarray(y_pred).astype(np.float32)
    y_pred, y_true = squeeze_or_expand(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{owner}: y_true and y_pred must have the same shape, got y_true {y_true.shape} "
                         f"and y_pred {y_pred.shape}")
    weight = None
    if sample_weight is not None:
        weight = np.asarray(sample_weight).astype(np.float32)[..., None]
        _, weight = squeeze_or_expand(y_true, weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError(f"{owner}: with `class_id`, y_pred must have a class axis (num_samples, "
                             f"num_classes), got shape {y_pred.shape}")
        if not class_id < y_pred.shape[-1]:
            raise ValueError(f"{owner}: `class_id`={class_id} is out of range for y_pred with "
                             f"{y_pred.shape[-1]} classes")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    if weight is not None:
        try:
            weight = np.broadcast_to(weight, y_pred.shape)
        except ValueError:
            raise ValueError(f"{owner}: argument `sample_weight` of shape {np.shape(sample_weight)} does not "
                             f"broadcast to y_pred of shape {y_pred.shape}") from None
    return y_true, y_pred, weight


def _weights(y_pred, sample_weight, label_weights):
    """The weight of each prediction (None: all 1)."""
    weights = sample_weight
    if label_weights is not None:
        labels = np.broadcast_to(np.asarray(label_weights, dtype=np.float32)[None], y_pred.shape)
        weights = labels if weights is None else weights * labels
    return weights


def _reverse_cumsum(x: np.ndarray) -> np.ndarray:
    return np.flip(np.cumsum(np.flip(x, axis=0), axis=0), axis=0)


def _bucketed(y_true, y_pred, weights, count: int, with_epsilon: bool, multi_label: bool):
    """(tp, fp, positives, negatives) by buckets; per label columns when `multi_label`."""
    weights = np.float32(1.0) if weights is None else weights
    y_pred = np.clip(y_pred, 0.0, 1.0)
    y_true = (y_true != 0).astype(np.float32)
    if not multi_label:
        y_true, y_pred = y_true.reshape(-1, 1), y_pred.reshape(-1, 1)
        weights = np.reshape(weights, (-1, 1)) if np.ndim(weights) else weights
    true_labels = y_true * weights
    false_labels = (1.0 - y_true) * weights
    buckets = np.ceil(y_pred * (np.float32(count) - np.float32(1))) - np.float32(1)
    if with_epsilon:
        buckets = np.maximum(buckets, 0)
    buckets = buckets.astype(np.int64)
    tp = np.zeros((count, y_pred.shape[1]))
    fp = np.zeros((count, y_pred.shape[1]))
    for label in range(y_pred.shape[1]):
        keep = buckets[:, label] >= 0           # Keras' segment_sum drops out-of-range ids
        tp[:, label] = np.bincount(buckets[keep, label], true_labels[keep, label], minlength=count)
        fp[:, label] = np.bincount(buckets[keep, label], false_labels[keep, label], minlength=count)
    tp, fp = _reverse_cumsum(tp), _reverse_cumsum(fp)
    positives, negatives = true_labels.sum(axis=0, dtype=np.float64), false_labels.sum(axis=0, dtype=np.float64)
    if not multi_label:
        return tp[:, 0], fp[:, 0], positives[0], negatives[0]
    return tp, fp, positives, negatives


def _compared(y_true, y_pred, weights, thresholds, multi_label: bool):
    """(tp, fp, fn, tn) comparing each prediction with each threshold."""
    thresholds = np.asarray(thresholds, dtype=np.float32)
    if not multi_label:
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        weights = None if weights is None else weights.reshape(-1)
    shape = (len(thresholds),) + (1,) * y_pred.ndim
    positive = y_pred[None] > thresholds.reshape(shape)
    label = (y_true != 0)[None]
    weights = np.float64(1.0) if weights is None else weights[None].astype(np.float64)

    def total(mask):
        return np.sum(np.where(mask, weights, 0.0), axis=1)
    return (total(label & positive), total(~label & positive), total(label & ~positive),
            total(~label & ~positive))


def confusion_counts(y_true, y_pred, thresholds: Sequence[float], evenly: bool, weights=None,
                     multi_label: bool = False, label_weights=None) -> Dict[str, np.ndarray]:
    """{"tp", "fp", "tn", "fn"}: the counts at each threshold of prepared arrays (see `prepare`);
    shape (thresholds,) or, with `multi_label`, (thresholds, labels)."""
    if not multi_label:
        weights = _weights(y_pred, weights, label_weights)
    if evenly:
        with_epsilon = bool(thresholds[0] < 0.0 or thresholds[-1] > 1.0)
        tp, fp, positives, negatives = _bucketed(y_true, y_pred, weights, len(thresholds), with_epsilon,
                                                 multi_label)
        return {"tp": tp, "fp": fp, "fn": positives - tp, "tn": negatives - fp}
    tp, fp, fn, tn = _compared(y_true, y_pred, weights, thresholds, multi_label)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
