"""Weight penalties, as `keras.regularizers`: `regularizer(w)` is the penalty added to the loss.

`gradient(w)` is its derivative, which the training loop adds to the weight's
gradient (and, for activity regularizers, to the layer's output gradient).
Keras' penalties have no 1/2: L2 is `l2 * sum(w ** 2)`, whose gradient is `2 * l2 * w`.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from . import ops
from ._registry import Registry
from .ops.tape import Traced
from .variables import Variable

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize", "deserialize"]


def _check_factor(owner: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: argument `{arg}` must be a non-negative number, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: argument `{arg}` must be a non-negative number, got {value!r}")
    return float(value)


class Regularizer:
    """Base: `__call__(x)` -> penalty (float), `gradient(x)` -> array like x."""

    def __call__(self, x) -> float:
        raise NotImplementedError

    def gradient(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Regularizer":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """`l1 * sum(|x|) + l2 * sum(x ** 2)`."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _check_factor(type(self).__name__, "l1", l1)
        self.l2 = _check_factor(type(self).__name__, "l2", l2)

    def __call__(self, x) -> float:
        if isinstance(x, (Traced, Variable)):      # in a traced call (`add_loss(regularizer(self.w))`): on the tape
            return self._on_tape(x)
        x = np.asarray(x)
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.sum(np.abs(x), dtype=np.float64))
        if self.l2:
            penalty += self.l2 * float(np.sum(np.square(x), dtype=np.float64))
        return penalty

    def _on_tape(self, x):
        penalty = 0.0
        if self.l1:
            penalty = ops.add(penalty, ops.multiply(self.l1, ops.sum(ops.abs(x))))
        if self.l2:
            penalty = ops.add(penalty, ops.multiply(self.l2, ops.sum(ops.square(x))))
        return penalty

    def gradient(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        grad = np.zeros_like(x)
        if self.l1:
            grad += self.l1 * np.sign(x)
        if self.l2:
            grad += 2 * self.l2 * x
        return grad

    def get_config(self) -> Dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """`l1 * sum(|x|)` (the subgradient at 0 is 0)."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> Dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """`l2 * sum(x ** 2)`."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> Dict[str, Any]:
        return {"l2": self.l2}


# Keras 3 exports the lower-case names as aliases of the classes.
l1 = L1
l2 = L2
l1_l2 = L1L2

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, **_CLASSES}
_REGISTRY = Registry("regularizers", Regularizer, _CLASSES, _NAMES)
serialize = _REGISTRY.serialize
deserialize = _REGISTRY.deserialize
get = _REGISTRY.get
