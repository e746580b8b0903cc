"""`Metric` (Keras 3's running-value API), `Mean` and `MeanMetricWrapper`, and the argument checks
the metric classes share.

State lives on the metric object only (no module state); `result()` is a Python float, or an
array for a metric with several thresholds.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from .. import backend

FLOAT_DTYPES = ("float32", "float64")


def check_name(owner: str, name) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{owner}: argument `name` must be a non-empty string or None, got {name!r}")
    return name


def check_dtype(owner: str, dtype, allowed: Sequence[str] = FLOAT_DTYPES, default: str = "float32") -> str:
    if dtype is None:
        return default
    name = getattr(dtype, "name", dtype) if not isinstance(dtype, str) else dtype
    if name not in allowed:
        raise ValueError(f"{owner}: argument `dtype` must be None or one of {list(allowed)}, got {dtype!r}")
    return name


def check_int(owner: str, arg: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: argument `{arg}` must be an int >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{owner}: argument `{arg}` must be an int >= {low}, got {value!r}")
    return int(value)


def check_bool(owner: str, arg: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: argument `{arg}` must be True or False, got {value!r}")
    return bool(value)


def check_number(owner: str, arg: str, value, low: float = -np.inf, high: float = np.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: argument `{arg}` must be a number in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{owner}: argument `{arg}` must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def as_array(owner: str, arg: str, value) -> np.ndarray:
    """`value` as a numeric (or boolean) NumPy array; TypeError naming `owner` and `arg` otherwise."""
    if value is None:
        raise TypeError(f"{owner}: argument `{arg}` must be a numeric array, got None")
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: argument `{arg}` must be a numeric array, got dtype {array.dtype}")
    return array


def squeeze_or_expand(x1: np.ndarray, x2: np.ndarray, expand_rank_1: bool = True):
    """Keras' `squeeze_or_expand_to_same_rank`: ranks differing by one lose (or gain) a last axis of 1."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    if x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def divide_no_nan(a, b):
    """a / b, 0 where b == 0 (Keras' `ops.divide_no_nan`)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    safe = np.where(b == 0, 1.0, b)
    return np.where(b == 0, 0.0, a / safe)


def as_result(value):
    """A Python float for one value, else a float32 array (as Keras' result tensors)."""
    value = np.asarray(value)
    return float(value) if value.ndim == 0 else value.astype(np.float32)


class Metric:
    """A running value: `update_state(y_true, y_pred, sample_weight=None)`, `result()`, `reset_state()`.

    `metric(y_true, y_pred)` updates and returns the result, as Keras.
    """

    def __init__(self, dtype=None, name: Optional[str] = None):
        owner = type(self).__name__
        self.name = check_name(owner, name) if name is not None else \
            backend.unique_name(backend.snake_case(owner))
        self._dtype = check_dtype(owner, dtype)

    @property
    def dtype(self) -> str:
        return self._dtype

    def update_state(self, *args, **kwargs) -> None:
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Metric":
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: argument `config` must be a dict, got {config!r}")
        try:
            return cls(**config)
        except TypeError as error:
            if "unexpected keyword" not in str(error):
                raise
            raise TypeError(f"{cls.__name__}.from_config: {error}") from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _samplewise(values: np.ndarray, sample_weight):
    """Keras' `reduce_to_samplewise_values` with a mean: (weighted values per sample, weights or None)."""
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand(values, sample_weight)
        if values.ndim > sample_weight.ndim:
            values = values.mean(axis=tuple(range(sample_weight.ndim, values.ndim)))
        try:
            sample_weight = np.broadcast_to(sample_weight, values.shape)
        except ValueError:
            return None, None
        values = values * sample_weight
        if sample_weight.ndim > 1:
            sample_weight = sample_weight.mean(axis=tuple(range(1, sample_weight.ndim)))
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Mean(Metric):
    """Weighted running mean: values are averaged per sample, then over the samples (weights sum)."""

    def __init__(self, name: str = "mean", dtype=None):
        super().__init__(dtype=dtype, name=name)
        self.reset_state()

    def update_state(self, values, sample_weight=None) -> None:
        owner = f"{type(self).__name__}.update_state"
        values = as_array(owner, "values", values).astype(np.float64)
        weight = None if sample_weight is None else as_array(owner, "sample_weight", sample_weight).astype(np.float64)
        reduced, weight_out = _samplewise(values, weight)
        if reduced is None:
            raise ValueError(f"{owner}: argument `sample_weight` of shape {weight.shape} does not broadcast to "
                             f"the values of shape {values.shape}")
        self._total += float(np.sum(reduced))
        if weight_out is not None:
            self._count += float(np.sum(weight_out))
        else:
            self._count += float(reduced.shape[0]) if reduced.ndim >= 1 else 1.0

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0

    def reset_state(self) -> None:
        self._total = 0.0
        self._count = 0.0


class MeanMetricWrapper(Mean):
    """The running mean over samples of a per-sample function `fn(y_true, y_pred, **kwargs)`."""

    def __init__(self, fn: Callable, name: Optional[str] = None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"{type(self).__name__}: argument `fn` must be a function of (y_true, y_pred), "
                            f"got {fn!r}")
        Metric.__init__(self, dtype=dtype, name=name)
        self.reset_state()
        self.fn = fn
        self.kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:  # type: ignore[override]
        owner = f"{type(self).__name__}.update_state"
        y_true, y_pred = as_array(owner, "y_true", y_true), as_array(owner, "y_pred", y_pred)
        super().update_state(self.fn(y_true, y_pred, **self.kwargs), sample_weight)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        if type(self) is MeanMetricWrapper:
            config.update({"fn": getattr(self.fn, "__name__", repr(self.fn)), **self.kwargs})
        return config
