"""Weight constraints, as `keras.constraints`: `constraint(w)` returns the projected weights.

The optimizer applies a variable's constraint right after each update.  Norms
are taken over `axis` (Keras' default 0: each column of a Dense kernel); for a
Conv2D kernel of shape (rows, cols, in, out) pass `axis=[0, 1, 2]` so that each
filter is constrained as a whole, as the Keras documentation recommends.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ._registry import Registry

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm",
           "max_norm", "non_neg", "unit_norm", "min_max_norm", "get", "serialize", "deserialize"]

EPSILON = 1e-7


def _check_axis(owner: str, axis):
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
        return [int(a) for a in axis]
    raise TypeError(f"{owner}: argument `axis` must be an int or a list of ints, got {axis!r}")


def _check_number(owner: str, arg: str, value, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: argument `{arg}` must be a number, got {value!r}")
    if value < low:
        raise ValueError(f"{owner}: argument `{arg}` must be >= {low}, got {value!r}")
    return float(value)


def _norms(w: np.ndarray, axis) -> np.ndarray:
    axes = tuple(axis) if isinstance(axis, list) else axis
    return np.sqrt(np.sum(np.square(w), axis=axes, keepdims=True))


class Constraint:
    """Base: `__call__(w)` -> constrained copy of `w`."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return w

    def get_config(self) -> Dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Constraint":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxNorm(Constraint):
    """Rescale slices whose L2 norm over `axis` exceeds `max_value`."""

    def __init__(self, max_value: float = 2.0, axis=0):
        self.max_value = _check_number("MaxNorm", "max_value", max_value)
        self.axis = _check_axis("MaxNorm", axis)

    def __call__(self, w):
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Set negative weights to zero."""

    def __call__(self, w):
        w = np.asarray(w)
        return w * (w >= 0)


class UnitNorm(Constraint):
    """Divide each slice by its L2 norm over `axis`."""

    def __init__(self, axis=0):
        self.axis = _check_axis("UnitNorm", axis)

    def __call__(self, w):
        w = np.asarray(w)
        return (w / (EPSILON + _norms(w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move each slice's norm toward [min_value, max_value] at `rate` (1.0: all the way)."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis=0):
        self.min_value = _check_number("MinMaxNorm", "min_value", min_value)
        self.max_value = _check_number("MinMaxNorm", "max_value", max_value)
        if self.max_value < self.min_value:
            raise ValueError(f"MinMaxNorm: argument `max_value` ({max_value!r}) must be >= "
                             f"`min_value` ({min_value!r})")
        self.rate = _check_number("MinMaxNorm", "rate", rate)
        self.axis = _check_axis("MinMaxNorm", axis)

    def __call__(self, w):
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return (w * (desired / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_CLASSES = {"MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm, "MinMaxNorm": MinMaxNorm}
_NAMES = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm,
          **_CLASSES}
_REGISTRY = Registry("constraints", Constraint, _CLASSES, _NAMES)
serialize = _REGISTRY.serialize
deserialize = _REGISTRY.deserialize
get = _REGISTRY.get
