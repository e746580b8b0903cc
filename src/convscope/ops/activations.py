"""Element-wise activations with their derivatives, under Keras' names and defaults.

`get_activation(identifier)` returns an `Activation` whose `forward(x)` gives y
and `backward(grad_y, x, y)` gives the gradient w.r.t. x (using whichever of x
or y is cheaper).  Softmax acts on the last axis (or `axis`), and its backward
pass is the Jacobian-vector product on that axis.
"""

from __future__ import annotations

import math
from typing import Callable, Dict

import numpy as np

from . import elementwise_fast, softmax_rows

__all__ = ["Activation", "get_activation", "erf", "erfc", "ACTIVATION_NAMES"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_PI = math.sqrt(math.pi)


# erf(x) = x * sum_n c_n x^(2n), c_n = 2/sqrt(pi) (-1)^n / (n! (2n + 1)); 26 terms reach double
# precision for |x| < 1.5, where the largest term is only about twice the sum.
_ERF_TAYLOR = tuple(2.0 / _SQRT_PI * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(26))
_ERF_SPLIT = 1.5


def _erf_small(x: np.ndarray) -> np.ndarray:
    """erf(x) for |x| < 1.5: the Taylor series, evaluated by Horner's rule in x^2."""
    square = x * x
    total = np.full_like(x, _ERF_TAYLOR[-1])
    for coefficient in _ERF_TAYLOR[-2::-1]:
        total *= square
        total += coefficient
    return x * total


def _erfc_large(x: np.ndarray) -> np.ndarray:
    """erfc(x) for x >= 1.5 from the continued fraction (80 levels, ~1e-13 relative; tested):
    erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))."""
    fraction = x.copy()
    for k in range(80, 0, -1):
        fraction = x + (0.5 * k) / fraction
    return np.exp(-x * x) / _SQRT_PI / fraction


def _erfc_nonnegative(x: np.ndarray) -> np.ndarray:
    """erfc(x) for x >= 0 in float64: 1 - erf below 1.5 (erfc >= 0.03 there), the fraction above."""
    out = np.empty_like(x)
    small = x < _ERF_SPLIT
    out[small] = 1.0 - _erf_small(x[small])
    out[~small] = _erfc_large(x[~small])
    return out


def erfc(x) -> np.ndarray:
    """Complementary error function, vectorized in float64 (NumPy has none, SciPy is not a dependency)."""
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1)
    out = _erfc_nonnegative(np.abs(flat))
    out = np.where(flat < 0, 2.0 - out, out)
    return out.reshape(x.shape)


def erf(x) -> np.ndarray:
    """Error function, vectorized in float64."""
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    small = np.abs(flat) < _ERF_SPLIT
    out[small] = _erf_small(flat[small])
    large = flat[~small]
    out[~small] = np.sign(large) * (1.0 - _erfc_nonnegative(np.abs(large)))
    return out.reshape(x.shape)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) = erfc(-x / sqrt(2)) / 2, accurate in relative terms for very negative x too."""
    return 0.5 * erfc(-x / math.sqrt(2.0))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) as exp(min(x, 0)) / (1 + exp(-|x|)): no overflow, full relative precision."""
    return np.exp(np.minimum(x, 0)) / (1.0 + np.exp(-np.abs(x)))


class Activation:
    """A named element-wise function with its derivative; float32 in -> float32 out."""

    def __init__(self, name: str, forward: Callable, backward: Callable, **params):
        self.name = name
        self.params = dict(params)
        self._forward = forward
        self._backward = backward

    def forward(self, x) -> np.ndarray:
        x = _as_float(x, self.name)
        return np.asarray(self._forward(x, **self.params), dtype=x.dtype)

    def backward(self, grad_y, x, y) -> np.ndarray:
        x = _as_float(x, self.name)
        grad_y = np.asarray(grad_y)
        y = np.asarray(y, dtype=x.dtype)
        if grad_y.shape != x.shape or y.shape != x.shape:
            raise ValueError(f"activation '{self.name}' backward: arguments `grad_y`, `x` and `y` must have "
                             f"the same shape, got {grad_y.shape}, {x.shape} and {y.shape}")
        return np.asarray(self._backward(grad_y.astype(x.dtype, copy=False), x, y, **self.params),
                          dtype=x.dtype)

    @property
    def output_suffices(self) -> bool:
        """Whether `backward(g, y, y)` equals `backward(g, x, y)`: the derivative is read from the output
        alone, so a training call need not keep the input (a ReLU after BatchNormalization keeps one
        tensor, not two).  relu/relu6 without slope or threshold: y > 0 and y < max exactly where x is."""
        if self.name == "relu":
            return not self.params.get("negative_slope") and not self.params.get("threshold")
        return self.name in _OUTPUT_SUFFICES

    def __call__(self, x) -> np.ndarray:
        return self.forward(x)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"Activation({self.name!r}{args})"


# The activations whose backward reads only the output y (see `Activation.output_suffices`).
_OUTPUT_SUFFICES = frozenset({"linear", "sigmoid", "tanh", "softmax", "relu6"})


def _as_float(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"activation '{name}': argument `x` must be a numeric array, got dtype {x.dtype}")
    return x if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else x.astype(
        np.float32 if x.dtype.kind == "f" else np.float64)


# -- the functions, (forward, backward) ---------------------------------------------------
def _linear(x):
    return x


def _linear_grad(g, x, y):
    return g


def _relu_reference(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras' relu in NumPy (the reference of the compiled kernel); scalars act in x's dtype (NEP 50)."""
    if not negative_slope and max_value is None and not threshold:
        return np.maximum(x, 0)
    y = np.where(x > threshold, x, negative_slope * (x - threshold) if negative_slope else 0.0)
    return y if max_value is None else np.minimum(y, max_value)


def _relu_grad_reference(g, x, negative_slope=0.0, max_value=None, threshold=0.0):
    """The gradient of `_relu_reference`: slope 1 above threshold, negative_slope at or below, 0 from max_value."""
    if not negative_slope and max_value is None and not threshold:
        return g * (x > 0)
    slope = np.where(x > threshold, x.dtype.type(1), x.dtype.type(negative_slope))
    if max_value is not None:
        slope = np.where(x >= max_value, x.dtype.type(0), slope)
    return g * slope


# The paths of relu and its gradient, in order: the first whose test takes the arrays runs.
_RELU_PATHS = (
    ("compiled", elementwise_fast.relu_applies, elementwise_fast.relu_forward, elementwise_fast.relu_backward),
    ("reference", lambda params, *arrays: True, _relu_reference, _relu_grad_reference),
)


def _relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    params = (negative_slope, max_value, threshold)
    forward = next(path for _, applies, path, _ in _RELU_PATHS if applies(params, x))
    return forward(x, *params)


def _relu_grad(g, x, y, negative_slope=0.0, max_value=None, threshold=0.0):
    params = (negative_slope, max_value, threshold)
    backward = next(path for _, applies, _, path in _RELU_PATHS if applies(params, g, x))
    return backward(g, x, *params)


def _leaky_relu(x, negative_slope=0.2):
    if 0 <= negative_slope <= 1:
        return np.maximum(x, negative_slope * x)
    return np.where(x > 0, x, negative_slope * x)


def _leaky_relu_grad(g, x, y, negative_slope=0.2):
    slope = (x > 0).astype(x.dtype)
    slope *= 1 - negative_slope
    slope += negative_slope
    return g * slope


def _sigmoid_grad(g, x, y):
    return g * y * (1.0 - y)


def _tanh_grad(g, x, y):
    return g * (1.0 - y * y)


def _softmax_reference(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


# The paths of softmax, in order: the first whose test takes the array and axis runs.
_SOFTMAX_PATHS = (
    ("compiled_rows", softmax_rows.applies, lambda x, axis: softmax_rows.softmax(x)),
    ("reference", lambda x, axis: True, _softmax_reference),
)


def _softmax(x, axis=-1):
    return next(path for _, applies, path in _SOFTMAX_PATHS if applies(x, axis))(x, axis)


def _softmax_grad(g, x, y, axis=-1):
    return y * (g - (g * y).sum(axis=axis, keepdims=True))


def _elu(x, alpha=1.0):
    # each term is zero on the other side of 0, so the sum needs no (slow) `where`
    return np.maximum(x, 0) + alpha * np.expm1(np.minimum(x, 0))


def _elu_grad(g, x, y, alpha=1.0):
    positive = x > 0
    return g * (positive + (~positive) * (alpha * np.exp(np.minimum(x, 0))))


def _selu(x):
    return _SELU_SCALE * _elu(x, _SELU_ALPHA)


def _selu_grad(g, x, y):
    return _SELU_SCALE * _elu_grad(g, x, y, _SELU_ALPHA)


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _softplus_grad(g, x, y):
    return g * _sigmoid(x)


def _softsign(x):
    return x / (1.0 + np.abs(x))


def _softsign_grad(g, x, y):
    d = 1.0 + np.abs(x)
    return g / (d * d)


def _swish(x):
    return x * _sigmoid(x)


def _swish_grad(g, x, y):
    s = _sigmoid(x)
    return g * (s + x * s * (1.0 - s))


def _gelu(x, approximate=False):
    if approximate:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)
        return 0.5 * x * (1.0 + np.tanh(inner))
    return x * _normal_cdf(x.astype(np.float64))


def _gelu_grad(g, x, y, approximate=False):
    if approximate:
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x ** 3))
        return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x))
    x64 = x.astype(np.float64)
    density = np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)
    return g * (_normal_cdf(x64) + x64 * density)


def _hard_sigmoid(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def _hard_sigmoid_grad(g, x, y):
    return g * ((x > -3.0) & (x < 3.0)) * (1.0 / 6.0)


def _relu6(x):
    return np.clip(x, 0.0, 6.0)


def _relu6_grad(g, x, y):
    return g * ((x > 0.0) & (x < 6.0))


def _hard_silu(x):
    return x * (np.clip(x + 3.0, 0.0, 6.0) / 6.0)


def _hard_silu_grad(g, x, y):
    """torch's hardswish derivative: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above."""
    slope = np.where(x < -3.0, 0.0, np.where(x > 3.0, 1.0, x / 3.0 + 0.5))
    return g * slope


def _mish(x):
    return x * np.tanh(_softplus(x))


def _mish_grad(g, x, y):
    t = np.tanh(_softplus(x))
    return g * (t + x * (1.0 - t * t) * _sigmoid(x))


def _log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _log_softmax_grad(g, x, y, axis=-1):
    return g - np.exp(y) * g.sum(axis=axis, keepdims=True)


def _celu(x, alpha=1.0):
    return np.maximum(x, 0.0) + np.minimum(0.0, alpha * np.expm1(np.minimum(x, 0.0) / alpha))


def _celu_grad(g, x, y, alpha=1.0):
    return g * np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0) / alpha))


def _hard_tanh(x):
    return np.clip(x, -1.0, 1.0)


def _hard_tanh_grad(g, x, y):
    return g * ((x > -1.0) & (x < 1.0))


def _hard_shrink(x, threshold=0.5):
    return np.where(np.abs(x) > threshold, x, 0.0).astype(x.dtype)


def _hard_shrink_grad(g, x, y, threshold=0.5):
    return g * (np.abs(x) > threshold)


def _soft_shrink(x, threshold=0.5):
    return np.where(x > threshold, x - threshold, np.where(x < -threshold, x + threshold, 0.0)).astype(x.dtype)


def _soft_shrink_grad(g, x, y, threshold=0.5):
    return g * (np.abs(x) > threshold)


def _tanh_shrink(x):
    return x - np.tanh(x)


def _tanh_shrink_grad(g, x, y):
    return g * np.square(np.tanh(x))


def _log_sigmoid(x):
    return -_softplus(-x)


def _log_sigmoid_grad(g, x, y):
    return g * _sigmoid(-x)


def _squareplus(x, b=4.0):
    return (x + np.sqrt(x * x + b)) / 2


def _squareplus_grad(g, x, y, b=4.0):
    return g * 0.5 * (1.0 + x / np.sqrt(x * x + b))


def _sparse_plus(x):
    return np.where(x <= -1.0, 0.0, np.where(x < 1.0, 0.25 * (x + 1.0) ** 2, x)).astype(x.dtype)


def _sparse_plus_grad(g, x, y):
    return g * np.where(x <= -1.0, 0.0, np.where(x < 1.0, 0.5 * (x + 1.0), 1.0))


def _sparse_sigmoid(x):
    return np.where(x <= -1.0, 0.0, np.where(x >= 1.0, 1.0, 0.5 * (x + 1.0))).astype(x.dtype)


def _sparse_sigmoid_grad(g, x, y):
    return g * ((x > -1.0) & (x < 1.0)) * 0.5


def _exponential_grad(g, x, y):
    return g * y


_FUNCTIONS: Dict[str, tuple] = {
    "linear": (_linear, _linear_grad),
    "relu": (_relu, _relu_grad),
    "sigmoid": (lambda x: _sigmoid(x), _sigmoid_grad),
    "tanh": (lambda x: np.tanh(x), _tanh_grad),
    "softmax": (_softmax, _softmax_grad),
    "elu": (_elu, _elu_grad),
    "selu": (_selu, _selu_grad),
    "softplus": (_softplus, _softplus_grad),
    "softsign": (_softsign, _softsign_grad),
    "swish": (_swish, _swish_grad),
    "silu": (_swish, _swish_grad),
    "gelu": (_gelu, _gelu_grad),
    "leaky_relu": (_leaky_relu, _leaky_relu_grad),
    "hard_sigmoid": (_hard_sigmoid, _hard_sigmoid_grad),
    "relu6": (_relu6, _relu6_grad),
    "hard_silu": (_hard_silu, _hard_silu_grad),
    "hard_swish": (_hard_silu, _hard_silu_grad),
    "mish": (_mish, _mish_grad),
    "log_softmax": (_log_softmax, _log_softmax_grad),
    "celu": (_celu, _celu_grad),
    "hard_tanh": (_hard_tanh, _hard_tanh_grad),
    "hard_shrink": (_hard_shrink, _hard_shrink_grad),
    "soft_shrink": (_soft_shrink, _soft_shrink_grad),
    "tanh_shrink": (_tanh_shrink, _tanh_shrink_grad),
    "log_sigmoid": (_log_sigmoid, _log_sigmoid_grad),
    "squareplus": (_squareplus, _squareplus_grad),
    "sparse_plus": (_sparse_plus, _sparse_plus_grad),
    "sparse_sigmoid": (_sparse_sigmoid, _sparse_sigmoid_grad),
    "exponential": (lambda x: np.exp(x), _exponential_grad),
}
ACTIVATION_NAMES = tuple(_FUNCTIONS)
# Keras 3 aliases: the activation keeps (and configs write) the name of the function they stand for.
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def get_activation(identifier=None, **params) -> Activation:
    """The activation named `identifier` (None -> linear), or `identifier` itself if an Activation.

    Keyword parameters as Keras: relu(negative_slope, max_value, threshold),
    leaky_relu(negative_slope=0.2), elu(alpha=1.0), softmax(axis=-1), log_softmax(axis=-1),
    gelu(approximate=False), celu(alpha=1.0), hard_shrink/soft_shrink(threshold=0.5), squareplus(b=4).
    Aliases take their function's name: swish -> silu,
    hard_swish -> hard_silu (as Keras 3 writes them in configs).
    """
    if isinstance(identifier, Activation):
        if params:
            raise TypeError(f"get_activation: parameters {sorted(params)} cannot be given with an "
                            f"Activation object ({identifier!r})")
        return identifier
    if identifier is None:
        identifier = "linear"
    if not isinstance(identifier, str):
        raise TypeError(f"get_activation: argument `identifier` must be an activation name, None or an "
                        f"Activation, got {identifier!r}")
    name = identifier.lower()
    if name not in _FUNCTIONS:
        raise ValueError(f"get_activation: unknown activation {identifier!r}; expected one of "
                         f"{', '.join(ACTIVATION_NAMES)}")
    name = _ALIASES.get(name, name)
    forward, backward = _FUNCTIONS[name]
    allowed = {"relu": ("negative_slope", "max_value", "threshold"), "leaky_relu": ("negative_slope",),
               "elu": ("alpha",), "softmax": ("axis",), "log_softmax": ("axis",),
               "gelu": ("approximate",), "celu": ("alpha",), "hard_shrink": ("threshold",),
               "soft_shrink": ("threshold",), "squareplus": ("b",)}.get(name, ())
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"get_activation: activation '{name}' takes no parameter(s) {unknown}; "
                        f"it takes {list(allowed)}")
    for param, check in _PARAM_CHECKS.get(name, {}).items():
        if param in params:
            _check_param(name, param, params[param], check)
    return Activation(name, forward, backward, **params)


# Parameters of the newer activations checked as Keras' backends refuse them: "nonzero" (celu's alpha divides),
# "non_negative" (shrink thresholds, squareplus' b).
_PARAM_CHECKS = {"celu": {"alpha": "nonzero"}, "elu": {"alpha": "finite"}, "hard_shrink": {"threshold": "non_negative"},
                 "soft_shrink": {"threshold": "non_negative"}, "squareplus": {"b": "non_negative"}}


def _check_param(name: str, param: str, value, check: str) -> None:
    number = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not number or not np.isfinite(value):
        raise TypeError(f"{name}: argument `{param}` must be a finite number, got {value!r}")
    if (check == "nonzero" and value == 0) or (check == "non_negative" and value < 0):
        raise ValueError(f"{name}: argument `{param}` must be {'non-zero' if check == 'nonzero' else '>= 0'}, "
                         f"got {value!r}")
