"""Weight initializers with Keras' names, arguments, fan rules and serialization.

An initializer is called as `init(shape, dtype="float32")` and returns a NumPy
array.  Random draws come from `convscope._rng.generator()` (so
`set_random_seed` makes them repeatable) unless the initializer has its own
`seed`, in which case every call returns the same values (as Keras 3).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _rng

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
    "LecunNormal", "Orthogonal", "Identity", "OrthogonalInitializer", "IdentityInitializer", "compute_fans", "get",
    "serialize", "deserialize",
]

# Standard deviation of a unit normal truncated to [-2, 2]; Keras divides by it so that
# the truncated draw keeps the requested variance.
_TRUNCATION_STDDEV = .87962566103423978

# Values drawn at a time (float64, cast into the weights): a 3136x1000 kernel peaks at its own
# 12.5 MB instead of 37.5 MB with the whole float64 draw beside it.
_DRAW_CHUNK = 1 << 20

# Config keys recent Keras versions write that convscope accepts only with the value None.
_KERAS_ONLY_KEYS = ("input_axes", "output_axes")


def compute_fans(shape: Tuple[int, ...], input_axes=None, output_axes=None) -> Tuple[int, int]:
    """Keras' (fan_in, fan_out): a conv kernel (kh, kw, in/groups, out) gives kh*kw*in/groups, kh*kw*out; with
    `input_axes` and `output_axes` (an EinsumDense kernel), the products of those axes' sizes."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return int(np.prod([shape[a] for a in input_axes])), int(np.prod([shape[a] for a in output_axes]))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = int(np.prod(shape[:-2]))
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _check_shape(shape, where: str) -> Tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: argument `shape` must be a tuple of non-negative ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ValueError(f"{where}: argument `shape` must be a tuple of non-negative ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def _check_dtype(dtype, where: str) -> np.dtype:
    dtype = np.dtype("float32" if dtype is None else dtype)
    if dtype.kind != "f":
        raise ValueError(f"{where}: argument `dtype` must be a float type, got {dtype.name!r}")
    return dtype


def _check_finite(value, arg: str, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{where}: argument `{arg}` must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: argument `{arg}` must be finite, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{where}: argument `{arg}` must be positive, got {value!r}")
    return value


def _check_seed(seed, where: str) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{where}: argument `seed` must be None or a non-negative int, got {seed!r}")
    return int(seed)


class Initializer:
    """Base class: `__call__(shape, dtype)`, `get_config()`, `from_config()`."""

    def __call__(self, shape, dtype=None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.__call__")

    def get_config(self) -> Dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Initializer":
        config = dict(config)
        for key in _KERAS_ONLY_KEYS:  # newer Keras 3 writes these; None means the standard fan rules
            if config.get(key, None) is not None:
                raise ValueError(f"initializers.{cls.__name__}: argument `{key}` is not supported, "
                                 f"got {config[key]!r}")
            config.pop(key, None)
        return cls(**config)

    def _where(self) -> str:
        return f"initializers.{type(self).__name__}"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(type(self).__name__)


class _RandomInitializer(Initializer):
    """An initializer that draws: from its own seed if it has one, else the library generator."""

    def __init__(self, seed=None):
        self.seed = _check_seed(seed, self._where())

    def _generator(self) -> np.random.Generator:
        return np.random.default_rng(self.seed) if self.seed is not None else _rng.generator()

    def _draw(self, method: str, shape, dtype, *args) -> np.ndarray:
        """`generator.<method>(*args, size)` into an array of `dtype`, a chunk at a time: the values of
        one float64 draw of `shape`, cast, without a float64 copy of the whole array."""
        draw = getattr(self._generator(), method)
        out = np.empty(shape, dtype=dtype)
        flat = out.reshape(-1)
        for start in range(0, flat.size, _DRAW_CHUNK):
            flat[start:start + _DRAW_CHUNK] = draw(*args, min(_DRAW_CHUNK, flat.size - start))
        return out

    def _truncated_normal(self, shape, mean: float, stddev: float, dtype) -> np.ndarray:
        """Normal draws re-drawn until all lie within two standard deviations (as Keras)."""
        generator = self._generator()
        values = generator.standard_normal(shape)
        outside = np.abs(values) > 2.0
        while outside.any():
            values[outside] = generator.standard_normal(int(outside.sum()))
            outside = np.abs(values) > 2.0
        return (mean + stddev * values).astype(dtype)

    def get_config(self) -> Dict[str, Any]:
        return {"seed": self.seed}


class Zeros(Initializer):
    """All zeros (Keras' default bias initializer)."""

    def __call__(self, shape, dtype=None) -> np.ndarray:
        return np.zeros(_check_shape(shape, self._where()), dtype=_check_dtype(dtype, self._where()))


class Ones(Initializer):
    """All ones (BatchNormalization's gamma and moving variance)."""

    def __call__(self, shape, dtype=None) -> np.ndarray:
        return np.ones(_check_shape(shape, self._where()), dtype=_check_dtype(dtype, self._where()))


class Constant(Initializer):
    """Every entry equal to `value`."""

    def __init__(self, value=0.0):
        self.value = _check_finite(value, "value", self._where())

    def __call__(self, shape, dtype=None) -> np.ndarray:
        return np.full(_check_shape(shape, self._where()), self.value,
                       dtype=_check_dtype(dtype, self._where()))

    def get_config(self) -> Dict[str, Any]:
        return {"value": self.value}


class RandomNormal(_RandomInitializer):
    """Normal draws with `mean` and `stddev`."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = _check_finite(mean, "mean", self._where())
        self.stddev = _check_finite(stddev, "stddev", self._where(), positive=True)

    def __call__(self, shape, dtype=None) -> np.ndarray:
        shape, dtype = _check_shape(shape, self._where()), _check_dtype(dtype, self._where())
        return self._draw("normal", shape, dtype, self.mean, self.stddev)

    def get_config(self) -> Dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(_RandomInitializer):
    """Uniform draws in [minval, maxval)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = _check_finite(minval, "minval", self._where())
        self.maxval = _check_finite(maxval, "maxval", self._where())
        if self.maxval <= self.minval:
            raise ValueError(f"{self._where()}: argument `maxval` must be greater than `minval`, "
                             f"got minval={self.minval}, maxval={self.maxval}")

    def __call__(self, shape, dtype=None) -> np.ndarray:
        shape, dtype = _check_shape(shape, self._where()), _check_dtype(dtype, self._where())
        return self._draw("uniform", shape, dtype, self.minval, self.maxval)

    def get_config(self) -> Dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(_RandomInitializer):
    """Normal draws re-drawn outside two standard deviations of the mean."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = _check_finite(mean, "mean", self._where())
        self.stddev = _check_finite(stddev, "stddev", self._where(), positive=True)

    def __call__(self, shape, dtype=None) -> np.ndarray:
        shape, dtype = _check_shape(shape, self._where()), _check_dtype(dtype, self._where())
        return self._truncated_normal(shape, self.mean, self.stddev, dtype)

    def get_config(self) -> Dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


class VarianceScaling(_RandomInitializer):
    """Draws with variance `scale / n`, n the fan given by `mode` (the Glorot/He/LeCun family)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale = _check_finite(scale, "scale", self._where(), positive=True)
        if mode not in _MODES:
            raise ValueError(f"{self._where()}: argument `mode` must be one of {_MODES}, got {mode!r}")
        if distribution == "normal":  # Keras 2's spelling of the truncated draw
            distribution = "truncated_normal"
        if distribution not in _DISTRIBUTIONS:
            raise ValueError(f"{self._where()}: argument `distribution` must be one of {_DISTRIBUTIONS}, "
                             f"got {distribution!r}")
        self.mode = mode
        self.distribution = distribution

    def __call__(self, shape, dtype=None, input_axes=None, output_axes=None) -> np.ndarray:
        """Draws for `shape`; `input_axes`/`output_axes` name the axes of the fans (as Keras' EinsumDense sets
        them), else Keras' rule for dense and convolution kernels."""
        shape, dtype = _check_shape(shape, self._where()), _check_dtype(dtype, self._where())
        fan_in, fan_out = compute_fans(shape, input_axes, output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            return self._truncated_normal(shape, 0.0, math.sqrt(variance) / _TRUNCATION_STDDEV, dtype)
        if self.distribution == "untruncated_normal":
            return self._draw("normal", shape, dtype, 0.0, math.sqrt(variance))
        limit = math.sqrt(3.0 * variance)
        return self._draw("uniform", shape, dtype, -limit, limit)

    def get_config(self) -> Dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


class _FixedVarianceScaling(VarianceScaling):
    """A named VarianceScaling whose only argument is `seed`."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "truncated_normal"

    def __init__(self, seed=None):
        super().__init__(self._SCALE, self._MODE, self._DISTRIBUTION, seed)

    def get_config(self) -> Dict[str, Any]:
        return {"seed": self.seed}


class GlorotUniform(_FixedVarianceScaling):
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)); Keras' default kernel initializer."""
    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_avg", "uniform"


class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out))."""
    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_avg", "truncated_normal"


class HeUniform(_FixedVarianceScaling):
    """U(-limit, limit), limit = sqrt(6 / fan_in)."""
    _SCALE, _MODE, _DISTRIBUTION = 2.0, "fan_in", "uniform"


class HeNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(2 / fan_in)."""
    _SCALE, _MODE, _DISTRIBUTION = 2.0, "fan_in", "truncated_normal"


class LecunUniform(_FixedVarianceScaling):
    """U(-limit, limit), limit = sqrt(3 / fan_in)."""
    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "uniform"


class LecunNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(1 / fan_in)."""
    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "truncated_normal"


class Orthogonal(_RandomInitializer):
    """An orthogonal matrix (rows or columns orthonormal) times `gain`, reshaped to `shape`."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = _check_finite(gain, "gain", self._where())

    def __call__(self, shape, dtype=None) -> np.ndarray:
        shape, dtype = _check_shape(shape, self._where()), _check_dtype(dtype, self._where())
        if len(shape) < 2:
            raise ValueError(f"{self._where()}: needs a shape of at least 2 dimensions, got {shape}")
        rows = int(np.prod(shape[:-1]))
        cols = shape[-1]
        flat = self._generator().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))  # makes the distribution uniform over orthogonal matrices
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self) -> Dict[str, Any]:
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """`gain` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain=1.0):
        self.gain = _check_finite(gain, "gain", self._where())

    def __call__(self, shape, dtype=None) -> np.ndarray:
        shape, dtype = _check_shape(shape, self._where()), _check_dtype(dtype, self._where())
        if len(shape) != 2:
            raise ValueError(f"{self._where()}: needs a 2-D shape, got {shape}")
        return (self.gain * np.eye(*shape)).astype(dtype)

    def get_config(self) -> Dict[str, Any]:
        return {"gain": self.gain}


_CLASSES = {cls.__name__: cls for cls in (
    Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
    GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal, Identity)}
_CLASSES["IdentityInitializer"] = Identity  # Keras 3's registered name
_CLASSES["OrthogonalInitializer"] = Orthogonal
OrthogonalInitializer, IdentityInitializer = Orthogonal, Identity      # Keras 3's other names for them

_ALIASES = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "random_normal": RandomNormal, "normal": RandomNormal, "random_uniform": RandomUniform,
    "uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
    "identity": Identity,
}


def serialize(initializer: Initializer) -> Dict[str, Any]:
    """Keras' form: {"class_name": "GlorotUniform", "config": {"seed": None}}."""
    if not isinstance(initializer, Initializer):
        raise TypeError(f"initializers.serialize: argument `initializer` must be an Initializer, "
                        f"got {initializer!r}")
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def deserialize(config: Dict[str, Any], where: str = "initializers.deserialize",
                arg: str = "config") -> Initializer:
    """Rebuild from Keras' dict (Keras 2 or 3: extra keys `module`/`registered_name` are ignored)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise TypeError(f"{where}: argument `{arg}` must be a dict with 'class_name' and 'config', "
                        f"got {config!r}")
    cls = _CLASSES.get(config["class_name"]) or _ALIASES.get(config["class_name"])
    if cls is None:
        raise ValueError(f"{where}: argument `{arg}` names an unknown initializer "
                         f"{config['class_name']!r}; expected one of {sorted(_CLASSES)}")
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier, where: str = "initializers.get", arg: str = "identifier"):
    """An Initializer from a name ("he_normal"), a class name, a config dict, an instance or a callable.

    `where` and `arg` name the caller in error messages (e.g. "Conv2D 'conv2d'", "kernel_initializer").
    """
    if identifier is None:
        return None
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, where, arg)
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"{where}: argument `{arg}` is an unknown initializer {identifier!r}; "
                             f"expected one of {sorted(_ALIASES)} or a Keras class name")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"{where}: argument `{arg}` must be an initializer name, dict, instance or callable, "
                    f"got {identifier!r}")


# Keras' lower-case function aliases: `initializers.glorot_uniform(seed=1)` etc.
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, orthogonal, identity = VarianceScaling, Orthogonal, Identity
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal
