"""More `keras.ops` array functions (Keras 3 names, arguments and defaults), in NumPy, each recording its
gradient rule on an active `ops.Tape` as `numpy_api`'s do: trigonometric and hyperbolic functions, exponentials
and logarithms of other bases, rounding (no gradient), arrays made from nothing, axes moved, flipped and rolled,
triangles, cumulative sums, logsumexp, sorting, and the predicates and reductions to booleans.

Dtypes follow `numpy_api` (Keras' promotion, 64-bit kept); the gradients follow torch's rules (as Keras on torch).
"""

from __future__ import annotations

import builtins

import numpy as np

from .. import backend
from .numpy_api import _arg, _axes, _axis, _check_broadcast, _common, _one, _result_dtype, _symbolic_dispatch, _unary
from .tape import record_node

__all__ = [
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "expm1",
    "exp2", "log2", "log10", "reciprocal", "rsqrt", "cbrt", "floor", "ceil", "round", "trunc", "isnan", "isinf",
    "isfinite", "logical_and", "logical_or", "logical_not", "arange", "zeros", "ones", "full", "full_like", "eye",
    "identity", "linspace", "swapaxes", "moveaxis", "flip", "roll", "ravel", "triu", "tril", "cumsum",
    "logsumexp", "sort", "argsort", "any", "all", "count_nonzero", "shape", "ndim", "size",
]

_LN2, _LN10 = np.log(2.0), np.log(10.0)


# -- element-wise, differentiable --------------------------------------------------------------
def _smooth(fn: str, forward, derivative):
    """An element-wise function whose gradient is g · derivative(x, y)."""
    def op(x):
        return _unary(fn, x, forward, lambda v, y: lambda g, need: (g * derivative(v, y),))
    op.__name__ = op.__qualname__ = fn
    op.__doc__ = f"Keras' `ops.{fn}`, element by element (floats; ints become floatx)."
    return op


sin = _smooth("sin", np.sin, lambda v, y: np.cos(v))
cos = _smooth("cos", np.cos, lambda v, y: -np.sin(v))
tan = _smooth("tan", np.tan, lambda v, y: 1 + y * y)
arcsin = _smooth("arcsin", np.arcsin, lambda v, y: 1 / np.sqrt(1 - v * v))
arccos = _smooth("arccos", np.arccos, lambda v, y: -1 / np.sqrt(1 - v * v))
arctan = _smooth("arctan", np.arctan, lambda v, y: 1 / (1 + v * v))
sinh = _smooth("sinh", np.sinh, lambda v, y: np.cosh(v))
cosh = _smooth("cosh", np.cosh, lambda v, y: np.sinh(v))
arcsinh = _smooth("arcsinh", np.arcsinh, lambda v, y: 1 / np.sqrt(v * v + 1))
arccosh = _smooth("arccosh", np.arccosh, lambda v, y: 1 / np.sqrt(v * v - 1))
arctanh = _smooth("arctanh", np.arctanh, lambda v, y: 1 / (1 - v * v))
expm1 = _smooth("expm1", np.expm1, lambda v, y: y + 1)
exp2 = _smooth("exp2", np.exp2, lambda v, y: y * np.asarray(_LN2, v.dtype))
log2 = _smooth("log2", np.log2, lambda v, y: 1 / (v * np.asarray(_LN2, v.dtype)))
log10 = _smooth("log10", np.log10, lambda v, y: 1 / (v * np.asarray(_LN10, v.dtype)))
reciprocal = _smooth("reciprocal", np.reciprocal, lambda v, y: -y * y)
rsqrt = _smooth("rsqrt", lambda v: 1 / np.sqrt(v), lambda v, y: -0.5 * y * y * y)
cbrt = _smooth("cbrt", np.cbrt, lambda v, y: 1 / (3 * y * y))


# -- rounding: a zero gradient ------------------------------------------------------------------
def _flat(fn: str, forward, floating: bool = False):
    def op(x):
        value = _one(x, fn, floating=floating)
        return record_node(fn, (x,), np.asarray(forward(value)), lambda g, need: (np.zeros_like(g),))
    op.__name__ = op.__qualname__ = fn
    op.__doc__ = f"Keras' `ops.{fn}`, element by element; a zero gradient (as torch)."
    return op


floor = _flat("floor", np.floor, floating=True)       # ints become floatx, as Keras'
ceil = _flat("ceil", np.ceil, floating=True)
trunc = _flat("trunc", np.trunc)


def _int_arg(value, fn: str, arg: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"ops.{fn}: argument `{arg}` must be an int, got {value!r}")
    return builtins.int(value)


def round(x, decimals=0):
    """Rounded to `decimals` places, halves to even (NumPy's and torch's); a zero gradient."""
    decimals = _int_arg(decimals, "round", "decimals")
    value = _one(x, "round")
    return record_node("round", (x,), np.asarray(np.round(value, decimals)), lambda g, need: (np.zeros_like(g),))


# -- predicates: booleans, no gradient ------------------------------------------------------------
def isnan(x):
    return np.isnan(_one(x, "isnan"))


def isinf(x):
    return np.isinf(_one(x, "isinf"))


def isfinite(x):
    return np.isfinite(_one(x, "isfinite"))


def logical_and(x1, x2):
    values = _common("logical_and", (x1, x2), ("x1", "x2"))
    _check_broadcast("logical_and", values, ("x1", "x2"))
    return np.logical_and(*values)


def logical_or(x1, x2):
    values = _common("logical_or", (x1, x2), ("x1", "x2"))
    _check_broadcast("logical_or", values, ("x1", "x2"))
    return np.logical_or(*values)


def logical_not(x):
    return np.logical_not(_one(x, "logical_not"))


# -- arrays made from nothing -------------------------------------------------------------------
def _dtype(dtype, default) -> np.dtype:
    return np.dtype(default if dtype is None else dtype)


def arange(start, stop=None, step=None, dtype=None):
    """start, start + step, ... below stop (`arange(n)`: 0 .. n - 1); ints give int32, a float floatx."""
    parts = [_arg(v, "arange", name) for v, name in ((start, "start"), (stop, "stop"), (step, "step"))
             if v is not None]
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("ops.arange: argument `step` must not be 0")
    return np.arange(start, stop, 1 if step is None else step, dtype=_dtype(dtype, _result_dtype(parts)))


def zeros(shape, dtype=None):
    return np.zeros(shape, _dtype(dtype, backend.floatx()))


def ones(shape, dtype=None):
    return np.ones(shape, _dtype(dtype, backend.floatx()))


def full(shape, fill_value, dtype=None):
    """`shape` filled with `fill_value` (floatx unless `dtype`, as Keras)."""
    return np.full(shape, fill_value, _dtype(dtype, backend.floatx()))


def full_like(x, fill_value, dtype=None):
    value = _one(x, "full_like")
    return np.full(value.shape, fill_value, _dtype(dtype, value.dtype))


def eye(N, M=None, k=0, dtype=None):
    return np.eye(N, M, k, dtype=_dtype(dtype, backend.floatx()))


def identity(n, dtype=None):
    return np.identity(n, _dtype(dtype, backend.floatx()))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """`num` evenly spaced values from start to stop (floatx unless `dtype`)."""
    if _int_arg(num, "linspace", "num") < 0:
        raise ValueError(f"ops.linspace: argument `num` must be >= 0, got {num}")
    result = np.linspace(start, stop, num, endpoint, retstep, None, axis)
    values, step = result if retstep else (result, None)
    values = values.astype(_dtype(dtype, backend.floatx()))
    return (values, step) if retstep else values


# -- axes moved: the gradient moved back ------------------------------------------------------------
def swapaxes(x, axis1, axis2):
    value = _one(x, "swapaxes")
    a, b = _axis(axis1, value.ndim, "swapaxes"), _axis(axis2, value.ndim, "swapaxes")
    return record_node("swapaxes", (x,), np.swapaxes(value, a, b), lambda g, need: (np.swapaxes(g, a, b),))


def _axes_as_given(axis, ndim: int, fn: str, arg: str = "axis"):
    """An int or a list/tuple of ints, each checked against `ndim` (order kept); None stays None."""
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        return tuple(_axis(a, ndim, fn, arg) for a in axis)
    return _axis(axis, ndim, fn, arg)


def moveaxis(x, source, destination):
    value = _one(x, "moveaxis")
    source = _axes_as_given(source, value.ndim, "moveaxis", "source")
    destination = _axes_as_given(destination, value.ndim, "moveaxis", "destination")
    if np.ndim(source) != np.ndim(destination) or np.size(source) != np.size(destination):
        raise ValueError(f"ops.moveaxis: arguments `source` and `destination` must name as many axes, got {source} "
                         f"and {destination}")
    return record_node("moveaxis", (x,), np.moveaxis(value, source, destination),
                       lambda g, need: (np.moveaxis(g, destination, source),))


def flip(x, axis=None):
    value = _one(x, "flip")
    axis = _axes_as_given(axis, value.ndim, "flip")
    return record_node("flip", (x,), np.flip(value, axis), lambda g, need: (np.flip(g, axis),))


def roll(x, shift, axis=None):
    value = _one(x, "roll")
    shift = tuple(_int_arg(s, "roll", "shift") for s in shift) if isinstance(shift, (list, tuple)) else \
        _int_arg(shift, "roll", "shift")
    axis = _axes_as_given(axis, value.ndim, "roll")
    back = tuple(-s for s in shift) if isinstance(shift, (list, tuple)) else -shift
    return record_node("roll", (x,), np.roll(value, shift, axis), lambda g, need: (np.roll(g, back, axis),))


def ravel(x):
    value = _one(x, "ravel")
    return record_node("ravel", (x,), value.reshape(-1), lambda g, need: (g.reshape(value.shape),))


def _triangle(fn: str, x, k: int, keep):
    k = _int_arg(k, fn, "k")
    value = _one(x, fn)
    if value.ndim < 2:
        raise ValueError(f"ops.{fn}: argument `x` must have 2 or more axes, got shape {value.shape}")
    mask = keep(np.ones(value.shape[-2:], bool), k)
    return record_node(fn, (x,), np.where(mask, value, np.zeros((), value.dtype)), lambda g, need: (g * mask,))


def triu(x, k=0):
    """The upper triangle of the last two axes (from diagonal `k`), zeros below."""
    return _triangle("triu", x, k, np.triu)


def tril(x, k=0):
    """The lower triangle of the last two axes (to diagonal `k`), zeros above."""
    return _triangle("tril", x, k, np.tril)


# -- cumulative, reductions, sorting ------------------------------------------------------------
def cumsum(x, axis=None, dtype=None):
    """Running sums along `axis` (None: the flattened array); the gradient: running sums from the end."""
    value = _one(x, "cumsum")
    if dtype is not None:
        value = value.astype(_dtype(dtype, value.dtype))
    flat = axis is None
    source = value.reshape(-1) if flat else value
    along = 0 if flat else _axis(axis, value.ndim, "cumsum")
    out = np.cumsum(source, axis=along, dtype=np.int32 if value.dtype == bool else value.dtype)

    def rule(g, need):
        back = np.flip(np.cumsum(np.flip(g, along), axis=along), along)
        return (back.reshape(value.shape),)
    return record_node("cumsum", (x,), out, rule)


def logsumexp(x, axis=None, keepdims=False):
    """log(Σ exp(x)) over `axis`, computed from the largest value; the gradient: softmax over `axis`."""
    value = _one(x, "logsumexp", floating=True)
    axes = _axes(axis, value.ndim, "logsumexp")
    axes = tuple(range(value.ndim)) if axes is None else axes
    with np.errstate(invalid="ignore", over="ignore"):
        top = np.max(value, axis=axes, keepdims=True)
        top = np.where(np.isfinite(top), top, np.zeros((), value.dtype))
        kept = np.log(np.sum(np.exp(value - top), axis=axes, keepdims=True)) + top
    out = kept if keepdims else np.squeeze(kept, axes)

    def rule(g, need):
        grad = g if keepdims else np.expand_dims(g, axes)
        with np.errstate(invalid="ignore", over="ignore"):
            return (grad * np.exp(value - kept),)
    return record_node("logsumexp", (x,), np.asarray(out), rule)


def sort(x, axis=-1):
    """Sorted along `axis` (None: the flattened array); the gradient goes back to each value's place."""
    value = _one(x, "sort")
    source = value.reshape(-1) if axis is None else value
    along = 0 if axis is None else _axis(axis, value.ndim, "sort")
    order = np.argsort(source, axis=along, kind="stable")

    def rule(g, need):
        grad = np.zeros_like(g)
        np.put_along_axis(grad, order, g, axis=along)
        return (grad.reshape(value.shape),)
    return record_node("sort", (x,), np.take_along_axis(source, order, axis=along), rule)


def argsort(x, axis=-1):
    """The indices that sort `x` along `axis` (stable), int32 as Keras'."""
    value = _one(x, "argsort")
    if axis is None:
        return np.argsort(value.reshape(-1), kind="stable").astype(np.int32)
    return np.argsort(value, axis=_axis(axis, value.ndim, "argsort"), kind="stable").astype(np.int32)


def any(x, axis=None, keepdims=False):
    value = _one(x, "any")
    return np.asarray(np.any(value, axis=_axes(axis, value.ndim, "any"), keepdims=keepdims))


def all(x, axis=None, keepdims=False):
    value = _one(x, "all")
    return np.asarray(np.all(value, axis=_axes(axis, value.ndim, "all"), keepdims=keepdims))


def count_nonzero(x, axis=None):
    value = _one(x, "count_nonzero")
    return np.asarray(np.count_nonzero(value, axis=_axes(axis, value.ndim, "count_nonzero"))).astype(np.int32)


def shape(x):
    """The shape as a tuple of ints (None for an unknown axis of a symbolic tensor)."""
    if hasattr(x, "value"):
        x = x.value
    dims = x.shape if hasattr(x, "shape") and not isinstance(x, np.ndarray) else np.shape(x)
    return tuple(None if d is None else builtins.int(d) for d in dims)


def ndim(x):
    return len(shape(x))


def size(x):
    dims = shape(x)
    if None in dims:
        raise ValueError(f"ops.size: the size of a tensor with an unknown axis is not known, got shape {dims}")
    return builtins.int(np.prod(dims, dtype=np.int64))


# On symbolic tensors (`keras.Input`), the functions that take tensors record an operation node, as Keras' do.
_symbolic_dispatch(globals(), [name for name in __all__ if name not in (
    "arange", "zeros", "ones", "full", "eye", "identity", "linspace", "shape", "ndim", "size")])

