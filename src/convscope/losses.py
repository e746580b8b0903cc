"""Keras-named losses: functions returning one value per sample, and `Loss` objects.

A `Loss` object reduces to the mean over the batch (Keras' default
"sum_over_batch_size") and also knows its gradient, which the training loop
uses.  The crossentropies on probabilities expose `fused_activation`
("softmax" or "sigmoid"): when the model's last activation is that one, the
training loop computes the loss from the pre-activation instead (as Keras does
with the logits it keeps on a softmax output), so the gradient w.r.t. the
logits is simply (p - y) / N.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from ._custom_objects import get_registered_name, lookup
from .backend import snake_case
from .ops import losses as ops
from .ops.numpy_api import convert_to_numpy, sum as ops_sum
from .ops.tape import Tape

__all__ = [
    "Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
    "MeanSquaredError", "MeanAbsoluteError", "Huber", "FunctionLoss",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
    "mean_squared_error", "mean_absolute_error", "huber", "mse", "mae", "MSE", "MAE",
    "get", "serialize", "deserialize",
]

_REDUCTIONS = ("sum_over_batch_size", "sum", "none")


def _as_float(y_pred) -> np.ndarray:
    """Predictions as a float array (float32 unless already float)."""
    y_pred = np.asarray(y_pred)
    return y_pred if y_pred.dtype.kind == "f" else y_pred.astype("float32")


def _as_float_arrays(y_true, y_pred) -> Tuple[np.ndarray, np.ndarray]:
    """Float arrays of y_pred's dtype, of one rank where they differ by a last axis of 1 (Keras'
    `squeeze_or_expand_to_same_rank`): (N,) targets for (N, 1) outputs gain the axis, and so do (N,) outputs
    for (N, 1) targets; deeper, the extra axis of 1 goes."""
    y_pred = _as_float(y_pred)
    y_true = np.asarray(y_true).astype(y_pred.dtype, copy=False)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None] if y_true.ndim == 1 else y_true
        y_pred = y_pred if y_true.ndim == y_pred.ndim else y_pred[..., 0]
    elif y_pred.ndim == y_true.ndim - 1 and y_true.shape[-1] == 1:
        y_pred = y_pred[..., None] if y_pred.ndim == 1 else y_pred
        y_true = y_true if y_true.ndim == y_pred.ndim else y_true[..., 0]
    return y_true, y_pred


def _check_same_shape(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: y_true and y_pred must have the same shape, "
                         f"got y_true {y_true.shape} and y_pred {y_pred.shape}")


def _smooth(y_true: np.ndarray, label_smoothing: float, classes: int) -> np.ndarray:
    if not label_smoothing:
        return y_true
    return y_true * (1 - label_smoothing) + label_smoothing / classes


def _check_fraction(owner: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{owner}: argument `{arg}` must be a number in [0, 1], got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{owner}: argument `{arg}` must be in [0, 1], got {value!r}")
    return float(value)


# -- Keras' loss functions (one value per sample) ------------------------------------------
def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0,
                             axis: int = -1) -> np.ndarray:
    """Crossentropy between one-hot `y_true` and probabilities (or logits) `y_pred`."""
    if is_traced(y_true, y_pred):
        return builtin_on_tape("categorical_crossentropy", y_true, y_pred, from_logits, label_smoothing, axis=axis)
    y_true, y_pred = _as_float_arrays(y_true, y_pred)
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    y_true = _smooth(y_true, label_smoothing, y_pred.shape[-1])    # the last axis' size, whatever `axis` (Keras')
    return ops.categorical_crossentropy(y_true, y_pred, from_logits, axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Crossentropy between integer labels and probabilities (or logits) on the last axis."""
    if is_traced(y_pred):
        classes = np.shape(y_pred.value)[-1]
        labels = _check_sparse_labels("sparse_categorical_crossentropy", y_true, np.shape(y_pred.value))
        return builtin_on_tape("categorical_crossentropy", np.eye(classes, dtype=y_pred.value.dtype)[labels],
                               y_pred, from_logits)
    y_pred = _as_float(y_pred)
    labels = _check_sparse_labels("sparse_categorical_crossentropy", y_true, y_pred.shape)
    return ops.sparse_categorical_crossentropy(labels, y_pred, from_logits)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0) -> np.ndarray:
    """Mean binary crossentropy over the last axis."""
    if is_traced(y_true, y_pred):
        return builtin_on_tape("binary_crossentropy", y_true, y_pred, from_logits, label_smoothing)
    y_true, y_pred = _as_float_arrays(y_true, y_pred)
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    y_true = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
    return ops.binary_crossentropy(y_true, y_pred, from_logits)


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    if is_traced(y_true, y_pred):
        return builtin_on_tape("mean_squared_error", y_true, y_pred)
    y_true, y_pred = _as_float_arrays(y_true, y_pred)
    _check_same_shape("mean_squared_error", y_true, y_pred)
    return ops.mean_squared_error(y_true, y_pred)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    if is_traced(y_true, y_pred):
        return builtin_on_tape("mean_absolute_error", y_true, y_pred)
    y_true, y_pred = _as_float_arrays(y_true, y_pred)
    _check_same_shape("mean_absolute_error", y_true, y_pred)
    return ops.mean_absolute_error(y_true, y_pred)


def huber(y_true, y_pred, delta: float = 1.0) -> np.ndarray:
    if is_traced(y_true, y_pred):
        return builtin_on_tape("huber", y_true, y_pred, delta=delta)
    y_true, y_pred = _as_float_arrays(y_true, y_pred)
    _check_same_shape("huber", y_true, y_pred)
    return ops.huber(y_true, y_pred, delta)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


def _fits(shape, expected) -> bool:
    """`shape` is `expected` but where that is None (an axis of unknown size: a variable-length sequence)."""
    return len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))


def _check_sparse_labels(owner: str, y_true, output_shape) -> np.ndarray:
    """Integer labels in [0, classes) shaped like the output without its class axis."""
    labels = np.asarray(y_true)
    classes = output_shape[-1]
    expected = tuple(output_shape[:-1])
    if labels.ndim == len(output_shape) and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if not _fits(labels.shape, expected):
        hint = (" (these look like one-hot labels: use loss='categorical_crossentropy')"
                if labels.ndim == len(output_shape) else "")
        raise ValueError(f"{owner}: integer labels must have shape {expected} (one label per sample), "
                         f"got {np.asarray(y_true).shape}{hint}")
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: labels must be integers, got dtype {labels.dtype}")
    if labels.size:
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            raise ValueError(f"{owner}: labels must be whole numbers (class indices), "
                             f"got non-integer values such as {labels[labels != np.round(labels)][:3]}")
        bad = (labels < 0) | (labels >= classes)
        if np.any(bad):
            index = tuple(int(i) for i in np.unravel_index(np.argmax(bad), labels.shape))
            raise ValueError(f"{owner}: labels must be in [0, {classes}) for an output with {classes} "
                             f"units, got label {labels[index].item()} at index "
                             f"{index[0] if len(index) == 1 else index} "
                             f"(labels range from {labels.min()} to {labels.max()})")
    return labels.astype(np.int64)


def weights_like(sample_weight, shape, where: str = "fit") -> np.ndarray:
    """Sample weights (one per sample, or per sample and step) broadcast to loss values of `shape`."""
    weights = np.asarray(sample_weight, dtype=np.float64)
    weights = weights.reshape(weights.shape + (1,) * (len(shape) - weights.ndim))
    try:
        return np.broadcast_to(weights, shape)
    except ValueError:
        raise ValueError(f"{where}: sample weights of shape {np.shape(sample_weight)} do not match the loss "
                         f"values of shape {tuple(shape)}") from None


def _own_methods(cls) -> set:
    """The methods a Loss subclass defines itself or inherits from its own subclasses (not from `Loss`)."""
    names = set()
    for klass in cls.__mro__:
        if klass is Loss:
            break
        names |= set(vars(klass))
    return names


def _hashable(obj) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True


# -- Loss objects ----------------------------------------------------------------------------
class Loss:
    """Base of the loss objects: `loss(y_true, y_pred)` is the reduced (mean) loss."""

    #: activation whose output this loss can fuse with (the model's last activation)
    fused_activation: Optional[str] = None

    def __init__(self, name: Optional[str] = None, reduction: str = "sum_over_batch_size"):
        owner = type(self).__name__
        name = snake_case(owner) if name is None else name      # Keras' default: the class name
        if not isinstance(name, str) or not name:
            raise TypeError(f"{owner}: argument `name` must be a non-empty string, got {name!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{owner}: argument `reduction` must be one of {_REDUCTIONS}, got {reduction!r}")
        self.name = name
        self.reduction = reduction

    # what subclasses provide
    def per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _backward(self, y_true: np.ndarray, y_pred: np.ndarray, grad_loss: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check_targets(self, y_true, output_shape, where: str) -> None:
        """Raise ValueError (naming `where`) if `y_true` cannot be scored against outputs of `output_shape`."""
        y_true = np.asarray(y_true)
        expected = (y_true.shape[0],) + tuple(output_shape[1:])
        if y_true.ndim == len(output_shape) - 1 and output_shape[-1] == 1:
            expected = expected[:-1]           # (N,) targets for (N, 1) outputs, as Keras
        if not _fits(y_true.shape, expected):     # an axis the output leaves unknown (None) takes any size
            raise ValueError(f"{where}: loss '{self.name}' needs targets shaped like the model output "
                             f"{tuple(output_shape)}, i.e. {expected}, got y of shape {y_true.shape}")

    def _prepare(self, y_true, y_pred):
        return _as_float_arrays(y_true, y_pred)

    # shared machinery
    def __call__(self, y_true, y_pred) -> Any:
        y_true, y_pred = self._prepare(y_true, y_pred)
        values = self.per_sample(y_true, y_pred)
        if self.reduction == "none":
            return values
        total = np.sum(values, dtype=np.float64)
        if self.reduction == "sum":
            return float(total)
        return float(total / max(values.size, 1))

    def gradient(self, y_true, y_pred) -> np.ndarray:
        """d(reduced loss) / d(y_pred), same shape and dtype as `y_pred`."""
        shape = np.shape(y_pred)
        y_true, y_pred = self._prepare(y_true, y_pred)
        count = int(np.prod(y_pred.shape[:-1]))
        if self.reduction == "none":
            raise ValueError(f"{type(self).__name__}: gradient() needs a scalar loss; "
                             "reduction='none' gives one value per sample")
        scale = 1.0 if self.reduction == "sum" else 1.0 / max(count, 1)
        grad_loss = np.full(y_pred.shape[:-1], scale, dtype=y_pred.dtype)
        return self._backward(y_true, y_pred, grad_loss).astype(y_pred.dtype, copy=False).reshape(shape)

    def weighted(self, y_true, y_pred, sample_weight, where: str = "fit") -> float:
        """The loss of a batch; with `sample_weight` (one per sample, or per sample and step) Keras' weighted mean:
        sum(w * loss) over the number of loss values ('sum_over_batch_size')."""
        if sample_weight is None:
            return self(y_true, y_pred)
        values = np.asarray(self.per_sample(*self._prepare(y_true, y_pred)), dtype=np.float64)
        total = float(np.sum(values * self._weights_for(values, sample_weight, where)))
        return total if self.reduction == "sum" else total / max(values.size, 1)

    def weighted_gradient(self, y_true, y_pred, sample_weight, where: str = "fit") -> np.ndarray:
        """d(`weighted`)/d(y_pred): each sample's gradient scaled by its weight."""
        grad = self.gradient(y_true, y_pred)
        if sample_weight is None:
            return grad
        weights = weights_like(sample_weight, grad.shape[:-1], where)[..., None]
        return (grad * weights).astype(grad.dtype, copy=False)

    def _weights_for(self, values, sample_weight, where: str):
        """Sample weights for loss `values`: broadcast to them, or for one value for the whole batch (a Dice over
        the batch), Keras' factor: the weights' mean ("sum_over_batch_size") or sum ("sum")."""
        if np.ndim(values) == 0:
            weights = np.asarray(sample_weight, dtype=np.float64)
            return float(np.sum(weights) if self.reduction == "sum" else np.mean(weights))
        return weights_like(sample_weight, np.shape(values), where)

    def with_logits(self) -> "Loss":
        """The same loss taking the pre-activation of `fused_activation` (only where fusable)."""
        raise ValueError(f"{type(self).__name__}: this loss does not fuse with an activation")

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Loss":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _ProbabilityLoss(Loss):
    """Crossentropies: `from_logits` and `label_smoothing`, and fusion with the output activation."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, *, name: str,
                 reduction: str = "sum_over_batch_size"):
        super().__init__(name, reduction)
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: argument `from_logits` must be True or False, "
                            f"got {from_logits!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_fraction(type(self).__name__, "label_smoothing", label_smoothing)

    def with_logits(self) -> "Loss":
        if self.from_logits:
            return super().with_logits()
        config = self.get_config()
        config["from_logits"] = True
        return type(self).from_config(config)

    @property
    def fused_activation(self):  # type: ignore[override]
        return None if self.from_logits else self._activation

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(_ProbabilityLoss):
    """One-hot targets; `axis=-1` is the class axis."""

    _activation = "softmax"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: str = "categorical_crossentropy"):
        super().__init__(from_logits, label_smoothing, name=name, reduction=reduction)
        if axis != -1:
            raise ValueError(f"CategoricalCrossentropy: argument `axis` must be -1 (the class axis is last), "
                             f"got {axis!r}")
        self.axis = axis

    def _smoothed(self, y_true, y_pred):
        return _smooth(y_true, self.label_smoothing, y_pred.shape[-1])

    def per_sample(self, y_true, y_pred):
        _check_same_shape(self.name, y_true, y_pred)
        return ops.categorical_crossentropy(self._smoothed(y_true, y_pred), y_pred, self.from_logits)

    def _backward(self, y_true, y_pred, grad_loss):
        return ops.categorical_crossentropy_backward(self._smoothed(y_true, y_pred), y_pred, grad_loss,
                                                     self.from_logits)

    def check_targets(self, y_true, output_shape, where):
        y_true = np.asarray(y_true)
        units = output_shape[-1]
        if y_true.ndim == len(output_shape) - 1 or (y_true.ndim == len(output_shape) and y_true.shape[-1] == 1
                                                     and units != 1):
            raise ValueError(f"{where}: loss '{self.name}' needs one-hot targets of width {units} "
                             f"(the output units), got y of shape {y_true.shape}; for integer labels use "
                             "loss='sparse_categorical_crossentropy' or convscope.utils.to_categorical")
        if y_true.ndim == len(output_shape) and y_true.shape[-1] != units:
            raise ValueError(f"{where}: loss '{self.name}': one-hot width of y is {y_true.shape[-1]} but "
                             f"the model has {units} output units (y shape {y_true.shape}, "
                             f"output shape {tuple(output_shape)})")
        super().check_targets(y_true, output_shape, where)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class SparseCategoricalCrossentropy(_ProbabilityLoss):
    """Integer class labels (shape (N,) or (N, 1)); no label smoothing, as Keras."""

    _activation = "softmax"

    def __init__(self, from_logits: bool = False, reduction: str = "sum_over_batch_size",
                 name: str = "sparse_categorical_crossentropy"):
        super().__init__(from_logits, 0.0, name=name, reduction=reduction)

    def _prepare(self, y_true, y_pred):
        y_pred = _as_float(y_pred)
        return _check_sparse_labels(self.name, y_true, y_pred.shape), y_pred

    def per_sample(self, y_true, y_pred):
        return ops.sparse_categorical_crossentropy(y_true, y_pred, self.from_logits)

    def _backward(self, y_true, y_pred, grad_loss):
        return ops.sparse_categorical_crossentropy_backward(y_true, y_pred, grad_loss, self.from_logits)

    def check_targets(self, y_true, output_shape, where):
        _check_sparse_labels(f"{where}: loss '{self.name}'", y_true,
                             (np.asarray(y_true).shape[0],) + tuple(output_shape[1:]))

    def get_config(self):
        config = super().get_config()
        del config["label_smoothing"]
        return config


class BinaryCrossentropy(_ProbabilityLoss):
    """Targets in [0, 1], one per output unit."""

    _activation = "sigmoid"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 reduction: str = "sum_over_batch_size", name: str = "binary_crossentropy"):
        super().__init__(from_logits, label_smoothing, name=name, reduction=reduction)

    def _smoothed(self, y_true):
        return y_true * (1 - self.label_smoothing) + 0.5 * self.label_smoothing

    def per_sample(self, y_true, y_pred):
        _check_same_shape(self.name, y_true, y_pred)
        return ops.binary_crossentropy(self._smoothed(y_true), y_pred, self.from_logits)

    def _backward(self, y_true, y_pred, grad_loss):
        return ops.binary_crossentropy_backward(self._smoothed(y_true), y_pred, grad_loss, self.from_logits)

    def check_targets(self, y_true, output_shape, where):
        y_true = np.asarray(y_true)
        super().check_targets(y_true, output_shape, where)
        if y_true.size and (np.min(y_true) < 0 or np.max(y_true) > 1):
            raise ValueError(f"{where}: loss '{self.name}' needs targets in [0, 1], "
                             f"got values from {np.min(y_true)} to {np.max(y_true)}")


class MeanSquaredError(Loss):
    def __init__(self, reduction: str = "sum_over_batch_size", name: str = "mean_squared_error"):
        super().__init__(name, reduction)

    def per_sample(self, y_true, y_pred):
        _check_same_shape(self.name, y_true, y_pred)
        return ops.mean_squared_error(y_true, y_pred)

    def _backward(self, y_true, y_pred, grad_loss):
        return ops.mean_squared_error_backward(y_true, y_pred, grad_loss)


class MeanAbsoluteError(Loss):
    def __init__(self, reduction: str = "sum_over_batch_size", name: str = "mean_absolute_error"):
        super().__init__(name, reduction)

    def per_sample(self, y_true, y_pred):
        _check_same_shape(self.name, y_true, y_pred)
        return ops.mean_absolute_error(y_true, y_pred)

    def _backward(self, y_true, y_pred, grad_loss):
        return ops.mean_absolute_error_backward(y_true, y_pred, grad_loss)


class Huber(Loss):
    """Quadratic for errors up to `delta`, linear beyond."""

    def __init__(self, delta: float = 1.0, reduction: str = "sum_over_batch_size", name: str = "huber_loss"):
        super().__init__(name, reduction)
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating, np.integer)) or delta <= 0:
            raise ValueError(f"Huber: argument `delta` must be a positive number, got {delta!r}")
        self.delta = float(delta)

    def per_sample(self, y_true, y_pred):
        _check_same_shape(self.name, y_true, y_pred)
        return ops.huber(y_true, y_pred, self.delta)

    def _backward(self, y_true, y_pred, grad_loss):
        return ops.huber_backward(y_true, y_pred, grad_loss, self.delta)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class FunctionLoss(Loss):
    """A loss function of your own, `fn(y_true, y_pred)` written with `convscope.ops` (as Keras users write a
    Dice or focal loss with `keras.ops`): its values (any shape: one per sample, per pixel, or one for the
    batch) reduced as Keras reduces a function's, their mean ("sum_over_batch_size") or sum; the gradient
    from a tape.  Saved by the function's registered name: a file names it, your code provides it
    (`custom_objects`, or `saving.register_keras_serializable`)."""

    def __init__(self, fn, reduction: str = "sum_over_batch_size", name: Optional[str] = None):
        if not callable(fn):
            raise TypeError(f"FunctionLoss: argument `fn` must be a function (y_true, y_pred) -> losses, got "
                            f"{type(fn).__name__}")
        super().__init__(name or getattr(fn, "__name__", "loss"), reduction)
        self.fn = fn

    def _values(self, y_true, y_pred):
        try:
            return self.fn(y_true, y_pred)
        except Exception as error:
            raise ValueError(f"loss '{self.name}': the function failed on targets of shape {np.shape(y_true)} and "
                             f"predictions of shape {np.shape(y_pred)}: {type(error).__name__}: {error}") from error

    def per_sample(self, y_true, y_pred):
        return np.asarray(convert_to_numpy(self._values(y_true, y_pred)), dtype=y_pred.dtype)

    def check_targets(self, y_true, output_shape, where: str) -> None:
        """Only the batch is checked: the function decides what targets it takes (labels, masks, ...)."""
        if np.ndim(y_true) == 0:
            raise ValueError(f"{where}: loss '{self.name}' needs one target per sample, got a scalar y")

    def weighted_gradient(self, y_true, y_pred, sample_weight, where: str = "fit") -> np.ndarray:
        """The weights applied to the function's values on the tape (they may be per value, as Keras')."""
        return self.gradient(y_true, y_pred, sample_weight, where)

    def gradient(self, y_true, y_pred, sample_weight=None, where: str = "gradient") -> np.ndarray:
        """d(reduced loss)/d(y_pred), with `sample_weight` (broadcast against the function's values, as Keras
        weighs a function's values) applied on the tape."""
        shape = np.shape(y_pred)
        y_true, y_pred = self._prepare(y_true, y_pred)
        if self.reduction == "none":
            raise ValueError(f"{type(self).__name__}: gradient() needs a scalar loss; reduction='none' gives one "
                             "value per sample")
        with Tape() as tape:
            watched = tape.watch(y_pred)
            values = self._values(y_true, watched)
            if sample_weight is not None:
                weights = self._weights_for(convert_to_numpy(values), sample_weight, where)
                values = values * np.asarray(weights, dtype=y_pred.dtype)
            total = ops_sum(values)
        grad = tape.gradient(total, [watched])[0]
        if grad is None:
            raise ValueError(f"loss '{self.name}': its value does not depend on y_pred through convscope.ops, so it "
                             "has no gradient; write the function with convscope.ops (NumPy's functions are not "
                             "differentiated)")
        scale = 1.0 if self.reduction == "sum" else 1.0 / max(int(np.size(convert_to_numpy(values))), 1)
        return (np.asarray(grad) * scale).astype(y_pred.dtype, copy=False).reshape(shape)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "function": get_registered_name(self.fn)}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Loss":
        config = dict(config)
        name = config.pop("function", None)
        fn = lookup(name, name) if isinstance(name, str) else None
        if fn is None:
            raise ValueError(f"losses.deserialize: the loss function {name!r} is your own code, which a file only "
                             f"names: pass custom_objects={{{name!r}: your_function}} (or register it with "
                             "saving.register_keras_serializable), or load with compile=False")
        return cls(fn, **config)


# -- lookup ----------------------------------------------------------------------------------
_FUNCTIONS = {
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy, "bce": binary_crossentropy, "BCE": binary_crossentropy,
    "mean_squared_error": mean_squared_error, "mse": mse, "MSE": MSE,
    "mean_absolute_error": mean_absolute_error, "mae": mae, "MAE": MAE,
    "huber": huber, "huber_loss": huber,
}
_CLASSES = {cls.__name__: cls for cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                          BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError, Huber,
                                          FunctionLoss)}
_OBJECT_FOR_FUNCTION = {
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    huber: Huber,
}


# Keras' further losses (tape_losses.py, written with convscope.ops): found by the same names.
from .tape_losses import (  # noqa: E402,F401  (after FunctionLoss, which they build on)
    CLASS_FOR_FUNCTION, CLASSES, FUNCTIONS, BinaryFocalCrossentropy, CategoricalFocalCrossentropy, CategoricalHinge,
    CosineSimilarity, Dice, Hinge, KLDivergence, LogCosh, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
    Poisson, SquaredHinge, Tversky, binary_focal_crossentropy, builtin_on_tape, categorical_focal_crossentropy,
    categorical_hinge, cosine_similarity, dice, hinge, is_traced, kl_divergence, log_cosh,
    mean_absolute_percentage_error, mean_squared_logarithmic_error, poisson, squared_hinge, tversky)

_FUNCTIONS.update(FUNCTIONS)
_CLASSES.update(CLASSES)
_OBJECT_FOR_FUNCTION.update(CLASS_FOR_FUNCTION)
__all__ += [
    "Hinge", "SquaredHinge", "CategoricalHinge", "LogCosh", "KLDivergence", "Poisson", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "CosineSimilarity", "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy",
    "Dice", "Tversky", "hinge", "squared_hinge", "categorical_hinge", "log_cosh", "kl_divergence", "poisson",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "cosine_similarity",
    "binary_focal_crossentropy", "categorical_focal_crossentropy", "dice", "tversky"]


def get(identifier):
    """A loss from a Keras name ("mse", "categorical_crossentropy", "Huber"), a config dict, or itself.

    Function names give the function and class names an instance, as `keras.losses.get`.
    """
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if identifier is None or isinstance(identifier, Loss) or callable(identifier):
        return identifier
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]
        if identifier in _CLASSES and identifier != "FunctionLoss":
            return _CLASSES[identifier]()
        own = lookup(identifier, identifier)     # a function of the user's, registered or in a scope
        if own is not None:
            return own
        known = sorted(set(_FUNCTIONS) | set(_CLASSES) - {"FunctionLoss"})
        raise ValueError(f"losses.get: unknown loss {identifier!r}; known losses: {', '.join(known)}; a loss "
                         f"function of your own: pass custom_objects={{{identifier!r}: your_function}} (loading a "
                         "file) or register it with saving.register_keras_serializable")
    raise TypeError(f"losses.get: expected a loss name, a config dict or a Loss, got {identifier!r}")


def as_loss_object(identifier, where: str = "compile") -> Loss:
    """The `Loss` object for a name, a Keras loss function or an object (what `compile` trains with)."""
    loss = get(identifier)
    if loss is None:
        raise ValueError(f"{where}: argument `loss` is required to train, e.g. "
                         "loss='categorical_crossentropy'; got None")
    if isinstance(loss, Loss):
        if "per_sample" not in _own_methods(type(loss)) and "call" in _own_methods(type(loss)):
            return FunctionLoss(loss.call, reduction=loss.reduction, name=loss.name)   # Keras' way: `call`
        return loss
    known = _OBJECT_FOR_FUNCTION.get(loss) if _hashable(loss) else None
    if known is not None:
        return known()
    if isinstance(loss, type) and issubclass(loss, Loss):      # a registered Loss class named by a string
        return loss()
    return FunctionLoss(loss)           # a function of the user's: differentiated on a tape


def serialize(loss) -> Dict[str, Any]:
    """`{"class_name", "config"}` of the loss object behind a name, function or object (and the registered name
    of a Loss class of the user's, by which it is found again)."""
    loss = as_loss_object(loss, "losses.serialize")
    entry = {"class_name": type(loss).__name__, "config": loss.get_config()}
    if type(loss) not in _CLASSES.values():
        entry["registered_name"] = get_registered_name(type(loss))
    return entry


def deserialize(config: Dict[str, Any]) -> Loss:
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"losses.deserialize: expected {{'class_name': ..., 'config': {{...}}}}, got {config!r}")
    name, registered = config["class_name"], config.get("registered_name")
    cls = None
    if isinstance(name, str):               # a subclass of yours (by its registered name) before ours
        cls = (isinstance(registered, str) and lookup(name, registered)) or _CLASSES.get(name) or lookup(name, None)
    if not (isinstance(cls, type) and issubclass(cls, Loss)):
        raise ValueError(f"losses.deserialize: unknown loss class {name!r}; known: {', '.join(sorted(_CLASSES))} "
                         "and the Loss subclasses your code registered or passes as custom_objects")
    return cls.from_config(config.get("config", {}))
