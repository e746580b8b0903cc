"""Keras 3's `keras.random`: random arrays for custom layers and scripts.

`seed` is what Keras takes: None (convscope's generator, which `utils.set_random_seed` seeds), an int (the same
numbers at every call, as Keras) or a `SeedGenerator` (a stream of its own that advances at each call, for a
layer's repeatable noise).  The numbers are NumPy's (PCG64), not those of Keras' backends; the distributions,
shapes, dtypes and seeding rules are Keras'.  `dropout` multiplies with `convscope.ops`, so that on a tape the
gradient flows through the kept values.
"""

from __future__ import annotations

import numbers
import threading
import numpy as np

from . import _rng, backend
from .ops import numpy_api

__all__ = ["SeedGenerator", "normal", "uniform", "truncated_normal", "randint", "categorical", "dropout", "shuffle",
           "gamma", "binomial", "beta"]


class SeedGenerator:
    """A stream of random numbers of its own: each draw from it continues where the last one stopped (Keras'
    `random.SeedGenerator`; `seed` None draws a seed from convscope's generator).  Safe from several threads."""

    def __init__(self, seed=None, name=None, **kwargs):
        unknown = sorted(set(kwargs) - {"backend", "dtype"})
        if unknown:
            raise TypeError(f"SeedGenerator: unexpected keyword argument(s): {', '.join(unknown)}")
        if seed is None:
            seed = int(_rng.generator().integers(0, 2 ** 31 - 1))
        self.seed = _check_seed(seed, "SeedGenerator")
        self.name = backend.unique_name("seed_generator") if name is None else str(name)
        self._generator = np.random.default_rng(_numpy_seed(self.seed))
        self._draws = 0
        self._lock = threading.Lock()

    def draw(self, draw):
        """`draw(generator)` on this stream (one draw at a time)."""
        with self._lock:
            self._draws += 1
            return draw(self._generator)

    @property
    def state(self) -> np.ndarray:
        """[seed, draws so far] (Keras keeps [seed, counter] in a variable)."""
        return np.array([self.seed, self._draws], dtype=np.int64)

    def next(self, ordered=True) -> np.ndarray:
        """A new seed pair from the stream, as Keras' `next()` (each call a different one)."""
        return self.draw(lambda g: g.integers(0, 2 ** 31 - 1, 2)).astype(np.int64)

    def get_config(self):
        return {"seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_seed(seed, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{where}: argument `seed` must be None, an int or a SeedGenerator, got {seed!r}")
    return int(seed)


def _numpy_seed(seed: int) -> int:
    """An int seed as NumPy takes it (non-negative): negative seeds, which Keras takes, map to distinct ones."""
    return seed if seed >= 0 else 2 ** 64 + seed


def _draw(seed, where: str, draw):
    """`draw(generator)` with the generator `seed` names (see the module's notes)."""
    if isinstance(seed, SeedGenerator):
        return seed.draw(draw)
    if seed is None:
        return draw(_rng.generator())
    return draw(np.random.default_rng(_numpy_seed(_check_seed(seed, where))))


def _shape(shape, where: str) -> tuple:
    try:
        shape = tuple(int(d) for d in (shape if isinstance(shape, (list, tuple)) else (shape,)))
    except (TypeError, ValueError):
        raise TypeError(f"{where}: argument `shape` must be a tuple of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{where}: argument `shape` must hold non-negative sizes, got {shape}")
    return shape


def _float_dtype(dtype, where: str):
    dtype = np.dtype(backend.floatx() if dtype is None else dtype)
    if dtype.kind != "f":
        raise ValueError(f"{where}: argument `dtype` must be a float type, got {dtype.name}")
    return dtype


def _number(value, arg: str, where: str, positive: bool = False, non_negative: bool = False):
    """A finite number (or, for the distributions' parameters, an array of them broadcast against the shape)."""
    array = None
    if not isinstance(value, bool) and isinstance(value, (numbers.Real, list, tuple, np.ndarray)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = None
    bad = array is None or not np.all(np.isfinite(array)) or (positive and not np.all(array > 0)) or \
        (non_negative and not np.all(array >= 0))
    if bad:
        kind = " positive" if positive else " non-negative" if non_negative else ""
        raise ValueError(f"{where}: argument `{arg}` must be a finite{kind} number (or an array of them), got "
                         f"{value!r}")
    return float(array) if array.ndim == 0 else array


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Values from N(mean, stddev²)."""
    where = "random.normal"
    shape, dtype = _shape(shape, where), _float_dtype(dtype, where)
    mean, stddev = _number(mean, "mean", where), _number(stddev, "stddev", where, non_negative=True)
    return _draw(seed, where, lambda g: g.normal(mean, stddev, shape)).astype(dtype)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Values from U[minval, maxval)."""
    where = "random.uniform"
    shape, dtype = _shape(shape, where), _float_dtype(dtype, where)
    low, high = _number(minval, "minval", where), _number(maxval, "maxval", where)
    if not np.all(np.asarray(low) < np.asarray(high)):
        raise ValueError(f"{where}: argument `minval` must be below `maxval`, got {minval!r} and {maxval!r}")
    return _draw(seed, where, lambda g: g.uniform(low, high, shape)).astype(dtype)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Values from N(mean, stddev²) within two standard deviations of the mean (others drawn again)."""
    where = "random.truncated_normal"
    shape, dtype = _shape(shape, where), _float_dtype(dtype, where)
    mean, stddev = _number(mean, "mean", where), _number(stddev, "stddev", where, non_negative=True)

    def draw(g):
        values = g.standard_normal(shape)
        outside = np.abs(values) > 2
        while outside.any():
            values[outside] = g.standard_normal(int(outside.sum()))
            outside = np.abs(values) > 2
        return values
    return (mean + stddev * _draw(seed, where, draw)).astype(dtype)


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers from [minval, maxval)."""
    where = "random.randint"
    shape, dtype = _shape(shape, where), np.dtype(dtype)
    if dtype.kind not in "iu" or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                     for v in (minval, maxval)) or not minval < maxval:
        raise ValueError(f"{where}: arguments `minval` < `maxval` must be ints and `dtype` an int type, got "
                         f"{minval!r}, {maxval!r}, {dtype.name}")
    limits = np.iinfo(dtype)
    if minval < limits.min or maxval - 1 > limits.max:
        raise ValueError(f"{where}: [minval, maxval) = [{minval}, {maxval}) does not fit `dtype` {dtype.name} "
                         f"([{limits.min}, {limits.max}])")
    return _draw(seed, where, lambda g: g.integers(minval, maxval, shape)).astype(dtype)


def categorical(logits, num_samples, dtype="int32", seed=None):
    """For each row of (batch, classes) `logits`, `num_samples` class ids drawn with the softmax's probabilities."""
    where = "random.categorical"
    logits = np.asarray(numpy_api.convert_to_numpy(logits), dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"{where}: argument `logits` must be 2-D (batch, classes), got shape {logits.shape}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
        raise ValueError(f"{where}: argument `num_samples` must be a non-negative int, got {num_samples!r}")
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(probabilities, axis=1)
    draws = _draw(seed, where, lambda g: g.random((logits.shape[0], int(num_samples))))
    ids = np.array([np.searchsorted(row, u, side="right") for row, u in zip(cumulative, draws)])
    return np.minimum(ids, logits.shape[1] - 1).reshape(logits.shape[0], int(num_samples)).astype(dtype)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """`inputs` with each value (or each slice along the axes where `noise_shape` is 1) set to 0 with probability
    `rate` and the others scaled by 1 / (1 - rate); differentiable on a tape."""
    where = "random.dropout"
    rate = _number(rate, "rate", where)
    if not 0 <= rate <= 1:
        raise ValueError(f"{where}: argument `rate` must be in [0, 1], got {rate!r}")
    shape = tuple(np.shape(inputs))
    given = shape if noise_shape is None else tuple(noise_shape)
    mask_shape = tuple(s if n is None else int(n) for s, n in zip(shape, given))
    if len(given) != len(shape) or any(m not in (1, s) for m, s in zip(mask_shape, shape)):
        raise ValueError(f"{where}: argument `noise_shape` {noise_shape} must have the input's rank {len(shape)} with "
                         f"each size 1 or the input's (shape {shape})")
    keep = _draw(seed, where, lambda g: g.random(mask_shape)) >= rate
    dtype = np.dtype(getattr(inputs, "dtype", None) or backend.floatx())
    scale = keep / (1.0 - rate) if rate < 1 else np.zeros(mask_shape)              # rate 1: all dropped (Keras')
    return numpy_api.multiply(inputs, scale.astype(dtype if dtype.kind == "f" else backend.floatx()))


def shuffle(x, axis=0, seed=None):
    """`x` with its entries along `axis` in a random order (a new array)."""
    where = "random.shuffle"
    array = np.asarray(numpy_api.convert_to_numpy(x))
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -array.ndim <= axis < array.ndim:
        raise ValueError(f"{where}: argument `axis` must be an axis of the input (rank {array.ndim}), got {axis!r}")
    order = _draw(seed, where, lambda g: g.permutation(array.shape[axis]))
    return np.take(array, order, axis=int(axis))


def gamma(shape, alpha, dtype=None, seed=None):
    """Values from Gamma(alpha, 1)."""
    where = "random.gamma"
    shape, dtype = _shape(shape, where), _float_dtype(dtype, where)
    alpha = _number(alpha, "alpha", where, positive=True)
    return _draw(seed, where, lambda g: g.gamma(alpha, 1.0, shape)).astype(dtype)


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Numbers of successes in `counts` trials of success probability `probabilities`, as floats."""
    where = "random.binomial"
    shape, dtype = _shape(shape, where), _float_dtype(dtype, where)
    counts = np.asarray(counts)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if counts.dtype.kind not in "iuf" or np.any(counts < 0) or np.any(counts != np.round(counts)) or \
            np.any((probabilities < 0) | (probabilities > 1)):
        raise ValueError(f"{where}: arguments `counts` must be whole numbers ≥ 0 and `probabilities` in [0, 1], got "
                         f"{counts!r} and {probabilities!r}")
    return _draw(seed, where, lambda g: g.binomial(counts.astype(np.int64), probabilities, shape)).astype(dtype)


def beta(shape, alpha, beta, dtype=None, seed=None):       # noqa: A002 (Keras' argument name)
    """Values from Beta(alpha, beta)."""
    where = "random.beta"
    shape, dtype = _shape(shape, where), _float_dtype(dtype, where)
    a, b = _number(alpha, "alpha", where, positive=True), _number(beta, "beta", where, positive=True)
    return _draw(seed, where, lambda g: g.beta(a, b, shape)).astype(dtype)
