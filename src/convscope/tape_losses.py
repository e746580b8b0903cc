"""Keras 3's further losses, written with `convscope.ops` so that the tape gives their gradients.

Hinge, squared and categorical hinge, log-cosh, KL divergence, Poisson, mean absolute percentage and mean
squared logarithmic errors, cosine similarity, the focal crossentropies, Dice and Tversky: each function
computes its values as Keras 3.15's `keras.src.losses.losses` does (one per sample, or per position
along the last axis reduced; Dice and Tversky with `axis=None` one for the whole batch), and each class is
a `FunctionLoss` of that function with Keras' arguments and config.  `losses.get` and `compile` find
them by their Keras names.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional

import numpy as np

from . import ops
from .losses import FunctionLoss, Loss, _check_fraction
from .ops.tape import Traced
from .variables import Variable

__all__ = ["Hinge", "SquaredHinge", "CategoricalHinge", "LogCosh", "KLDivergence", "Poisson",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "CosineSimilarity",
           "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy", "Dice", "Tversky",
           "hinge", "squared_hinge", "categorical_hinge", "log_cosh", "kl_divergence", "poisson",
           "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "cosine_similarity",
           "binary_focal_crossentropy", "categorical_focal_crossentropy", "dice", "tversky",
           "FUNCTIONS", "CLASSES", "CLASS_FOR_FUNCTION"]

EPSILON = 1e-7      # Keras' backend.epsilon()


def _targets(y_true, y_pred, traced: bool = False):
    """The targets as an array of the predictions' float type (never on the tape), or, with `traced`, a traced
    target as it is (a loss between two values of a call: its gradient reaches both)."""
    if traced and isinstance(y_true, (Traced, Variable)):
        return y_true
    return np.asarray(ops.convert_to_numpy(y_true), dtype=np.dtype(y_pred.dtype))


def _matched(y_true, y_pred, traced: bool = False):
    """Targets and predictions of one rank where they differ by a last axis of 1 (Keras'
    `squeeze_or_expand_to_same_rank`): (N,) targets for (N, 1) predictions gain the axis."""
    y_true = _targets(y_true, y_pred, traced)
    true, pred = _shape(y_true), _shape(y_pred)
    if len(true) == len(pred) - 1 and pred[-1] == 1:
        if len(true) == 1:
            return ops.expand_dims(y_true, -1), y_pred
        return y_true, ops.squeeze(y_pred, axis=-1)
    if len(pred) == len(true) - 1 and true[-1] == 1:
        if len(pred) == 1:
            return y_true, ops.expand_dims(y_pred, -1)
        return ops.squeeze(y_true, axis=-1), y_pred
    return y_true, y_pred


def _shape(value) -> tuple:
    return tuple(np.shape(getattr(value, "value", value)))


def is_traced(*values) -> bool:
    """Whether a value is a tape's (or a variable): a loss of it must stay on the tape."""
    return any(isinstance(value, (Traced, Variable)) for value in values)


def builtin_on_tape(name: str, y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0,
                    delta: float = 1.0, axis: int = -1):
    """losses.py's mean squared and absolute errors, Huber and the binary and categorical crossentropies of
    traced values (a custom call's `add_loss(keras.losses.mse(x, y))`): Keras' formulas in ops (the crossentropies
    `keras.ops`'), differentiated by the tape in both arguments; losses.py computes the same numbers on arrays with
    ops.losses' own."""
    y_pred = y_pred if isinstance(y_pred, (Traced, Variable)) else np.asarray(y_pred)
    if np.dtype(y_pred.dtype).kind != "f":
        y_pred = ops.cast(y_pred, "float32")
    y_true, y_pred = _matched(y_true, y_pred, traced=True)
    if _shape(y_true) != _shape(y_pred):
        raise ValueError(f"{name}: y_true and y_pred must have the same shape, got y_true {_shape(y_true)} and "
                         f"y_pred {_shape(y_pred)}")
    if name == "mean_squared_error":
        return ops.mean(ops.square(ops.subtract(y_pred, y_true)), axis=-1)
    if name == "mean_absolute_error":
        return ops.mean(ops.abs(ops.subtract(y_pred, y_true)), axis=-1)
    if name == "huber":
        error = ops.subtract(y_pred, y_true)
        size = ops.abs(error)
        return ops.mean(ops.where(size <= delta, 0.5 * ops.square(error), delta * size - 0.5 * delta ** 2), axis=-1)
    if name == "binary_crossentropy":
        y_true = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
        return ops.mean(ops.binary_crossentropy(y_true, y_pred, from_logits), axis=-1)
    assert name == "categorical_crossentropy", name
    y_true = y_true * (1 - label_smoothing) + label_smoothing / _shape(y_pred)[-1] if label_smoothing else y_true
    return ops.categorical_crossentropy(y_true, y_pred, from_logits, axis)


def _hinge_labels(y_true: np.ndarray) -> np.ndarray:
    """0/1 labels as -1/1 (other labels unchanged), as Keras' `convert_binary_labels_to_hinge`."""
    return 2.0 * y_true - 1.0 if np.all((y_true == 0) | (y_true == 1)) else y_true


def hinge(y_true, y_pred):
    y_true = _hinge_labels(_targets(y_true, y_pred))
    return ops.mean(ops.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    y_true = _hinge_labels(_targets(y_true, y_pred))
    return ops.mean(ops.square(ops.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    y_true = _targets(y_true, y_pred)
    positive = ops.sum(y_true * y_pred, axis=-1)
    negative = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(negative - positive + 1.0, 0.0)


def log_cosh(y_true, y_pred):
    y_true, y_pred = _matched(y_true, y_pred)
    error = y_pred - y_true
    return ops.mean(error + ops.softplus(error * -2.0) - float(np.log(2.0)), axis=-1)


def kl_divergence(y_true, y_pred):
    y_true = np.clip(_targets(y_true, y_pred), EPSILON, 1)
    return ops.sum(y_true * ops.log(y_true / ops.clip(y_pred, EPSILON, 1)), axis=-1)


def poisson(y_true, y_pred):
    return ops.mean(y_pred - _targets(y_true, y_pred) * ops.log(y_pred + EPSILON), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _matched(y_true, y_pred)
    return 100.0 * ops.mean(ops.abs((y_true - y_pred) / np.maximum(np.abs(y_true), EPSILON)), axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _matched(y_true, y_pred)
    second = np.log(np.maximum(y_true, EPSILON) + 1.0)
    return ops.mean(ops.square(ops.log(ops.maximum(y_pred, EPSILON) + 1.0) - second), axis=-1)


def _l2_normalized(x, axis):
    """x · min(1 / √Σx², 1 / 1e-7): Keras' `normalize` with its default epsilon (backend.epsilon())."""
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.minimum(1.0 / ops.sqrt(ops.maximum(square_sum, 1e-30)), 1.0 / EPSILON)


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = _matched(y_true, y_pred)
    return -ops.sum(_l2_normalized(y_true, axis) * _l2_normalized(y_pred, axis), axis=axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    y_true = _targets(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    clipped = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    bce = -(y_true * ops.log(clipped) + (1.0 - y_true) * ops.log(1.0 - clipped))
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = ops.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return ops.mean(focal, axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    y_true = _targets(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=axis)
    output = ops.clip(y_pred / ops.sum(y_pred, axis=axis, keepdims=True), EPSILON, 1.0 - EPSILON)
    alpha = np.asarray(alpha, dtype=y_true.dtype)             # one number, or one per class (the last axis)
    return ops.sum(ops.power(1.0 - output, gamma) * alpha * (-y_true * ops.log(output)), axis=axis)


def _axes(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def dice(y_true, y_pred, axis=None):
    y_true, axis = _targets(y_true, y_pred), _axes(axis)
    intersection = ops.sum(y_true * y_pred, axis=axis)
    return 1.0 - 2.0 * intersection / (np.sum(y_true, axis=axis) + ops.sum(y_pred, axis=axis) + EPSILON)


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    y_true, axis = _targets(y_true, y_pred), _axes(axis)
    intersection = ops.sum(y_true * y_pred, axis=axis)
    false_positives = ops.sum((1.0 - y_pred) * y_true, axis=axis)
    false_negatives = ops.sum(y_pred * (1.0 - y_true), axis=axis)
    return 1.0 - intersection / (intersection + false_positives * alpha + false_negatives * beta + EPSILON)


# -- the classes -----------------------------------------------------------------------------------
class _OpsLoss(FunctionLoss):
    """A Keras loss class over one of the functions above: FunctionLoss' reduction and tape gradient, Loss'
    check that targets are shaped like the outputs, and a config of Keras' arguments (`_ARGS`)."""

    _FUNCTION: Any = None               # the function above that gives the values
    _ARGS: Dict[str, Any] = {}          # argument -> default, in Keras' config order

    def __init__(self, reduction: str = "sum_over_batch_size", name: Optional[str] = None, dtype=None,
                 **arguments):
        """Keras' (reduction, name, dtype); the classes with arguments of their own take them first, as Keras'.
        `dtype` is accepted and unused (the loss is computed in the predictions' float type)."""
        unknown = sorted(set(arguments) - set(self._ARGS))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s): {', '.join(unknown)}")
        Loss.__init__(self, name or self._FUNCTION.__name__, reduction)
        self.arguments = {key: arguments.get(key, default) for key, default in self._ARGS.items()}
        self._check_arguments()
        self.fn = functools.partial(self._FUNCTION, **self.arguments)

    def _check_arguments(self) -> None:
        """Raise naming the class and argument where an argument is out of its range."""

    check_targets = Loss.check_targets

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, **self.arguments}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Loss":
        return cls(**{key: value for key, value in config.items() if key not in ("fn", "dtype")})


def _check_axis(owner: str, axis, optional: bool) -> None:
    if (axis is None and optional) or (isinstance(axis, (int, np.integer)) and not isinstance(axis, bool)):
        return
    raise TypeError(f"{owner}: argument `axis` must be an int{' or None' if optional else ''}, got {axis!r}")


def _check_number(owner: str, arg: str, value, low: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not np.isfinite(value) or value < low:
        raise ValueError(f"{owner}: argument `{arg}` must be a finite number ≥ {low}, got {value!r}")


class _FocalLoss(_OpsLoss):
    def _check_arguments(self) -> None:
        owner, args = type(self).__name__, self.arguments
        alpha = args["alpha"]
        if isinstance(alpha, (list, tuple)) and "apply_class_balancing" not in args:   # one per class (Keras')
            for value in alpha:
                _check_fraction(owner, "alpha", value)
            args["alpha"] = list(alpha)
        else:
            _check_fraction(owner, "alpha", alpha)
        _check_fraction(owner, "label_smoothing", args["label_smoothing"])
        _check_number(owner, "gamma", args["gamma"])
        _check_axis(owner, args["axis"], optional=False)
        for flag in ("from_logits", "apply_class_balancing"):
            if flag in args and not isinstance(args[flag], (bool, np.bool_)):
                raise TypeError(f"{owner}: argument `{flag}` must be True or False, got {args[flag]!r}")


class Hinge(_OpsLoss):
    """mean(max(1 - y·ŷ, 0)) over the last axis; 0/1 labels become -1/1."""
    _FUNCTION = staticmethod(hinge)


class SquaredHinge(_OpsLoss):
    """mean(max(1 - y·ŷ, 0)²) over the last axis; 0/1 labels become -1/1."""
    _FUNCTION = staticmethod(squared_hinge)


class CategoricalHinge(_OpsLoss):
    """max(max((1 - y)·ŷ) - Σ y·ŷ + 1, 0) per sample."""
    _FUNCTION = staticmethod(categorical_hinge)


class LogCosh(_OpsLoss):
    """mean(log(cosh(ŷ - y))) over the last axis."""
    _FUNCTION = staticmethod(log_cosh)


class KLDivergence(_OpsLoss):
    """Σ y·log(y / ŷ) over the last axis, both clipped to [1e-7, 1]."""
    _FUNCTION = staticmethod(kl_divergence)


class Poisson(_OpsLoss):
    """mean(ŷ - y·log(ŷ + 1e-7)) over the last axis."""
    _FUNCTION = staticmethod(poisson)


class MeanAbsolutePercentageError(_OpsLoss):
    """100·mean(|y - ŷ| / max(|y|, 1e-7)) over the last axis."""
    _FUNCTION = staticmethod(mean_absolute_percentage_error)


class MeanSquaredLogarithmicError(_OpsLoss):
    """mean((log(max(ŷ, 1e-7) + 1) - log(max(y, 1e-7) + 1))²) over the last axis."""
    _FUNCTION = staticmethod(mean_squared_logarithmic_error)


class CosineSimilarity(_OpsLoss):
    """-Σ (y / ‖y‖)·(ŷ / ‖ŷ‖) along `axis`: -1 for predictions pointing as the targets."""
    _FUNCTION = staticmethod(cosine_similarity)
    _ARGS = {"axis": -1}

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        super().__init__(reduction, name, dtype, axis=axis)

    def _check_arguments(self) -> None:
        _check_axis(type(self).__name__, self.arguments["axis"], optional=False)


class BinaryFocalCrossentropy(_FocalLoss):
    """Binary crossentropy weighted by (1 - p_t)^gamma (and alpha per class with `apply_class_balancing`)."""
    _FUNCTION = staticmethod(binary_focal_crossentropy)
    _ARGS = {"from_logits": False, "label_smoothing": 0.0, "axis": -1, "apply_class_balancing": False,
             "alpha": 0.25, "gamma": 2.0}

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, reduction="sum_over_batch_size", name="binary_focal_crossentropy", dtype=None):
        super().__init__(reduction, name, dtype, apply_class_balancing=apply_class_balancing, alpha=alpha,
                         gamma=gamma, from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)


class CategoricalFocalCrossentropy(_FocalLoss):
    """Categorical crossentropy weighted by alpha·(1 - p)^gamma per class (`alpha` one number, or one per class)."""
    _FUNCTION = staticmethod(categorical_focal_crossentropy)
    _ARGS = {"from_logits": False, "label_smoothing": 0.0, "axis": -1, "alpha": 0.25, "gamma": 2.0}

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy", dtype=None):
        super().__init__(reduction, name, dtype, alpha=alpha, gamma=gamma, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class Dice(_OpsLoss):
    """1 - 2·Σ y·ŷ / (Σ y + Σ ŷ + 1e-7), the sums over `axis` (None: the whole batch, one value)."""
    _FUNCTION = staticmethod(dice)
    _ARGS = {"axis": None}

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(reduction, name, dtype, axis=axis)

    def _check_arguments(self) -> None:
        axis = self.arguments["axis"]
        if isinstance(axis, (list, tuple)):
            self.arguments["axis"] = axis = list(axis)
            if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
                return
        _check_axis(type(self).__name__, axis, optional=True)


class Tversky(Dice):
    """1 - TP / (TP + alpha·FP + beta·FN + 1e-7) with soft counts summed over `axis` (None: the whole batch)."""
    _FUNCTION = staticmethod(tversky)
    _ARGS = {"alpha": 0.5, "beta": 0.5, "axis": None}

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky", axis=None, dtype=None):
        _OpsLoss.__init__(self, reduction, name, dtype, alpha=alpha, beta=beta, axis=axis)

    def _check_arguments(self) -> None:
        super()._check_arguments()
        for arg in ("alpha", "beta"):
            _check_number(type(self).__name__, arg, self.arguments[arg])


CLASSES = {cls.__name__: cls for cls in (
    Hinge, SquaredHinge, CategoricalHinge, LogCosh, KLDivergence, Poisson, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, CosineSimilarity, BinaryFocalCrossentropy, CategoricalFocalCrossentropy, Dice,
    Tversky)}
CLASS_FOR_FUNCTION = {cls._FUNCTION: cls for cls in CLASSES.values()}
FUNCTIONS = {function.__name__: function for function in CLASS_FOR_FUNCTION}
FUNCTIONS.update({"mape": mean_absolute_percentage_error, "MAPE": mean_absolute_percentage_error,     # Keras'
                  "msle": mean_squared_logarithmic_error, "MSLE": mean_squared_logarithmic_error,   # aliases
                  "kld": kl_divergence, "KLD": kl_divergence})
