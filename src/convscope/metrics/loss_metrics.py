"""Metrics that are running means of a loss function (Keras 3's probabilistic, hinge and regression metrics):
the crossentropies, KL divergence, Poisson, the hinge family, MAPE, MSLE, log-cosh and cosine similarity."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import losses
from .base import MeanMetricWrapper, as_array, check_bool, check_int, check_number, squeeze_or_expand
from .functions import _float


class _LossMean(MeanMetricWrapper):
    """The running mean of `FUNCTION(y_true, y_pred, **arguments)`, configured as Keras writes it."""

    FUNCTION: Any = None
    NAME = ""

    def __init__(self, name=None, dtype=None, **arguments):
        super().__init__(type(self).FUNCTION, name=name or self.NAME, dtype=dtype, **arguments)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        super().update_state(y_true, _float(as_array(f"{type(self).__name__}.update_state", "y_pred", y_pred)),
                             sample_weight)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, **self.kwargs}


def _crossentropy_arguments(owner: str, from_logits, label_smoothing) -> Dict[str, Any]:
    return {"from_logits": check_bool(owner, "from_logits", from_logits),
            "label_smoothing": check_number(owner, "label_smoothing", label_smoothing, 0.0, 1.0)}


class BinaryCrossentropy(_LossMean):
    """The running mean of the binary crossentropy (each sample's mean over its last axis)."""
    FUNCTION, NAME = staticmethod(losses.binary_crossentropy), "binary_crossentropy"

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        super().__init__(name, dtype, **_crossentropy_arguments(type(self).__name__, from_logits, label_smoothing))


class CategoricalCrossentropy(_LossMean):
    """The running mean of the categorical crossentropy of one-hot targets."""
    FUNCTION, NAME = staticmethod(losses.categorical_crossentropy), "categorical_crossentropy"

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0, axis=-1):
        arguments = _crossentropy_arguments(type(self).__name__, from_logits, label_smoothing)
        super().__init__(name, dtype, **arguments, axis=check_int(type(self).__name__, "axis", axis, -2 ** 31))


def _sparse_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Per sample (and position); an `ignore_class` label scores 0 (and, without sample weights, still counts in
    the mean, as in Keras 3.15's metric)."""
    if axis not in (-1, np.ndim(y_pred) - 1):
        raise ValueError(f"SparseCategoricalCrossentropy: argument `axis` must be the last axis, got {axis}")
    if ignore_class is None:
        return losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits)
    labels = np.asarray(y_true)
    valid = labels != ignore_class
    values = losses.sparse_categorical_crossentropy(np.where(valid, labels, 0), y_pred, from_logits)
    return np.where(valid.reshape(values.shape), values, 0.0)


class SparseCategoricalCrossentropy(_LossMean):
    """The running mean of the crossentropy of integer labels (those equal to `ignore_class` scoring 0)."""
    FUNCTION, NAME = staticmethod(_sparse_crossentropy), "sparse_categorical_crossentropy"

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None,
                 axis=-1):
        owner = type(self).__name__
        ignore = None if ignore_class is None else check_int(owner, "ignore_class", ignore_class, -2 ** 31)
        super().__init__(name, dtype, from_logits=check_bool(owner, "from_logits", from_logits), ignore_class=ignore,
                         axis=check_int(owner, "axis", axis, -2 ** 31))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """With sample weights, an ignored label's weight is also 0 (Keras applies its mask to the weights only)."""
        ignore = self.kwargs["ignore_class"]
        if sample_weight is not None and ignore is not None:
            owner = f"{type(self).__name__}.update_state"
            valid = (as_array(owner, "y_true", y_true) != ignore).astype(np.float64)
            weight = as_array(owner, "sample_weight", sample_weight).astype(np.float64)
            valid, weight = squeeze_or_expand(valid, weight)
            try:
                sample_weight = weight * valid
            except ValueError:
                raise ValueError(f"{owner}: argument `sample_weight` of shape {weight.shape} does not broadcast to "
                                 f"the labels of shape {valid.shape}") from None
        super().update_state(y_true, y_pred, sample_weight)


class KLDivergence(_LossMean):
    """The running mean of Σ y·log(y / ŷ) over the last axis."""
    FUNCTION, NAME = staticmethod(losses.kl_divergence), "kl_divergence"


class Poisson(_LossMean):
    """The running mean of mean(ŷ - y·log(ŷ + 1e-7)) over the last axis."""
    FUNCTION, NAME = staticmethod(losses.poisson), "poisson"


class Hinge(_LossMean):
    """The running mean of the hinge loss (0/1 labels as -1/1)."""
    FUNCTION, NAME = staticmethod(losses.hinge), "hinge"


class SquaredHinge(_LossMean):
    """The running mean of the squared hinge loss (0/1 labels as -1/1)."""
    FUNCTION, NAME = staticmethod(losses.squared_hinge), "squared_hinge"


class CategoricalHinge(_LossMean):
    """The running mean of the categorical hinge loss."""
    FUNCTION, NAME = staticmethod(losses.categorical_hinge), "categorical_hinge"


class MeanAbsolutePercentageError(_LossMean):
    """The running mean of 100·|y - ŷ| / max(|y|, 1e-7) (each sample's mean over its last axis)."""
    FUNCTION, NAME = staticmethod(losses.mean_absolute_percentage_error), "mean_absolute_percentage_error"


class MeanSquaredLogarithmicError(_LossMean):
    """The running mean of (log(ŷ + 1) - log(y + 1))² (each sample's mean over its last axis)."""
    FUNCTION, NAME = staticmethod(losses.mean_squared_logarithmic_error), "mean_squared_logarithmic_error"


class LogCoshError(_LossMean):
    """The running mean of log(cosh(ŷ - y)) (each sample's mean over its last axis)."""
    FUNCTION, NAME = staticmethod(losses.log_cosh), "logcosh"


def cosine_similarity(y_true, y_pred, axis=-1):
    """Σ (y / ‖y‖)·(ŷ / ‖ŷ‖) along `axis` (the metric: the loss' value without its minus sign)."""
    return -losses.cosine_similarity(y_true, _float(y_pred), axis)


class CosineSimilarity(_LossMean):
    """The running mean of the cosine of the angle between targets and predictions along `axis`."""
    FUNCTION, NAME = staticmethod(cosine_similarity), "cosine_similarity"

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(name, dtype, axis=check_int(type(self).__name__, "axis", axis, -2 ** 31))

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}         # Keras 3.15 writes no `axis`
