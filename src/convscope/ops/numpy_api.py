"""The `keras.ops` array functions (Keras 3 names, arguments and defaults), in NumPy, each
recording its gradient rule on an active `ops.Tape` (see ops/tape.py).

Inputs: ndarrays, Python and NumPy numbers, lists, Variables and Traced values.  Result dtypes
follow Keras' promotion: Python and NumPy scalars are weak (a float with a float32 array stays
float32, with an int array gives floatx), ints with floats give the float, a list of floats is
floatx.  Unlike Keras on torch/JAX, 64-bit types are kept (float64 in -> float64 out, the
contract of convscope.ops).  Integer and bool values get no gradient.  Results may share memory
with the inputs (views), as NumPy's and torch's do.
"""

from __future__ import annotations

import builtins
import functools
import string
import sys
from typing import NamedTuple, Optional, Tuple

import numpy as np

from .. import backend
from ..variables import Variable, install_operators
from .activations import erf as _erf, erfc as _erfc, get_activation
from .tape import Traced, record_node

__all__ = [
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "negative", "power",
    "square", "sqrt", "exp", "log", "log1p", "abs", "absolute", "sign", "tanh", "erf", "erfc", "maximum",
    "minimum", "clip", "where", "matmul", "dot", "tensordot", "einsum",
    "sum", "mean", "max", "min", "prod", "var", "std", "argmax", "argmin",
    "reshape", "transpose", "expand_dims", "squeeze", "concatenate", "stack", "split", "tile",
    "repeat", "broadcast_to", "take", "pad", "cast", "zeros_like", "ones_like", "convert_to_tensor",
    "convert_to_numpy", "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
]


# -- operands and Keras' dtype promotion -------------------------------------------------------
class _Arg(NamedTuple):
    value: np.ndarray
    weak: str           # "" for an array; "b", "i" or "f" for a Python or NumPy scalar


def _arg(x, fn: str, arg: str) -> _Arg:
    """One operand as an array, and whether it is a weakly typed scalar."""
    if isinstance(x, (Traced, Variable)):
        return _Arg(x.value, "")
    if isinstance(x, np.ndarray):
        return _Arg(_numeric(x, fn, arg), "")
    for kinds, weak in (((bool, np.bool_), "b"), ((int, np.integer), "i"), ((float, np.floating), "f")):
        if isinstance(x, kinds):
            return _Arg(np.asarray(x), weak)
    if isinstance(x, (list, tuple)):
        if any(isinstance(item, (Traced, Variable)) for item in x):
            raise TypeError(f"ops.{fn}: argument `{arg}` is a list holding traced values or Variables; "
                            "combine them with ops.stack or ops.concatenate")
        array = _numeric(np.asarray(x), fn, arg)
        if array.dtype == np.float64:
            return _Arg(array.astype(backend.floatx()), "")
        return _Arg(array.astype(np.int32) if array.dtype == np.int64 else array, "")
    raise TypeError(f"ops.{fn}: argument `{arg}` must be an array, a number, a Variable or a traced value, "
                    f"got {type(x).__name__}")


def _numeric(array: np.ndarray, fn: str, arg: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise TypeError(f"ops.{fn}: argument `{arg}` must be numeric, got dtype {array.dtype}")
    return array


def _result_dtype(args) -> np.dtype:
    """Keras' result_type: arrays promote (floats win over ints, the widest float wins); weak
    scalars only change ints/bools: a float makes floatx, an int makes bool int32."""
    strong = [a.value.dtype for a in args if not a.weak]
    weak = {a.weak for a in args if a.weak}
    floats = [d for d in strong if d.kind == "f"]
    if floats:
        return builtins.max(floats, key=lambda d: d.itemsize)
    base = np.result_type(*strong) if strong else None
    if "f" in weak:
        return np.dtype(backend.floatx())
    if base is None:
        return np.dtype(np.int32) if "i" in weak else np.dtype(bool)
    if base.kind == "b" and "i" in weak:
        return np.dtype(np.int32)
    return base


def _float_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.kind == "f" else np.dtype(backend.floatx())


def _one(x, fn: str, arg: str = "x", floating: bool = False) -> np.ndarray:
    """A single operand's value in its Keras dtype (optionally made float)."""
    a = _arg(x, fn, arg)
    dtype = _result_dtype([a])
    return a.value.astype(_float_dtype(dtype) if floating else dtype, copy=False)


def _common(fn: str, args, names, floating: bool = False):
    """The operands' values cast to their common Keras dtype."""
    parsed = [_arg(x, fn, name) for x, name in zip(args, names)]
    dtype = _result_dtype(parsed)
    dtype = _float_dtype(dtype) if floating else dtype
    return [p.value.astype(dtype, copy=False) for p in parsed]


def _elementwise(fn: str, args, forward, grads=None, floating: bool = False, names=("x1", "x2")):
    """A broadcasting op: forward on the common dtype; `grads(*values, out)` makes the rule."""
    values = _common(fn, args, names, floating)
    _check_broadcast(fn, values, names)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.asarray(forward(*values))
    if grads is None:
        return out
    return record_node(fn, args, out, _quiet(grads(*values, out)))


def _quiet(rule):
    """A rule run with NumPy's division/overflow warnings off (inf and nan are the answers)."""
    def run(g, need):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return rule(g, need)
    return run


def _check_broadcast(fn: str, values, names) -> None:
    try:
        np.broadcast_shapes(*(v.shape for v in values))
    except ValueError:
        given = ", ".join(f"`{n}` of shape {v.shape}" for n, v in zip(names, values))
        raise ValueError(f"ops.{fn}: cannot broadcast {given} together") from None


def _unary(fn: str, x, forward, grads, floating: bool = True):
    """An element-wise function of one operand; `grads(value, out)` makes the rule."""
    value = _one(x, fn, floating=floating)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.asarray(forward(value))
    return record_node(fn, (x,), out, _quiet(grads(value, out)))


# -- arithmetic --------------------------------------------------------------------------------
def add(x1, x2):
    """x1 + x2, broadcasting."""
    return _elementwise("add", (x1, x2), np.add, lambda a, b, y: lambda g, need: (g, g))


def subtract(x1, x2):
    """x1 - x2, broadcasting."""
    return _elementwise("subtract", (x1, x2), np.subtract, lambda a, b, y: lambda g, need: (g, -g))


def multiply(x1, x2):
    """x1 * x2, broadcasting."""
    def grads(a, b, y):
        return lambda g, need: (g * b if need[0] else None, g * a if need[1] else None)
    return _elementwise("multiply", (x1, x2), np.multiply, grads)


def divide(x1, x2):
    """x1 / x2, always a float (ints give floatx)."""
    def grads(a, b, y):
        return lambda g, need: (g / b if need[0] else None, -g * y / b if need[1] else None)
    return _elementwise("divide", (x1, x2), np.true_divide, grads, floating=True)


def true_divide(x1, x2):
    """The same as `divide`."""
    return divide(x1, x2)


def floor_divide(x1, x2):
    """x1 // x2 (no gradient, as TensorFlow)."""
    return _elementwise("floor_divide", (x1, x2), np.floor_divide)


def negative(x):
    """-x."""
    return _unary("negative", x, np.negative, lambda v, y: lambda g, need: (-g,), floating=False)


def power(x1, x2):
    """x1 ** x2; gradients as torch.pow (0 where an exponent is 0; 0 for the exponent where x1 = 0)."""
    def grads(a, b, y):
        def rule(g, need):
            ga = np.where(b == 0, 0, g * b * a ** (b - 1)) if need[0] else None
            gb = np.where((a == 0) & (b >= 0), 0, g * y * np.log(a)) if need[1] else None
            return ga, gb
        return rule
    return _elementwise("power", (x1, x2), np.power, grads)


def square(x):
    """x * x (a bool becomes int32, as Keras)."""
    value = _one(x, "square")
    value = value.astype(np.int32) if value.dtype == bool else value
    return record_node("square", (x,), np.square(value), lambda g, need: (2 * g * value,))


def sqrt(x):
    return _unary("sqrt", x, np.sqrt, lambda v, y: lambda g, need: (g / (2 * y),))


def exp(x):
    return _unary("exp", x, np.exp, lambda v, y: lambda g, need: (g * y,))


def log(x):
    return _unary("log", x, np.log, lambda v, y: lambda g, need: (g / v,))


def log1p(x):
    return _unary("log1p", x, np.log1p, lambda v, y: lambda g, need: (g / (1 + v),))


def abs(x):
    """|x|; the gradient is sign(x) (0 at 0)."""
    return _unary("absolute", x, np.abs, lambda v, y: lambda g, need: (g * np.sign(v),), floating=False)


absolute = abs


def sign(x):
    """-1, 0 or 1; a zero gradient (as torch and TensorFlow)."""
    return _unary("sign", x, np.sign, lambda v, y: lambda g, need: (np.zeros_like(g),), floating=False)


def tanh(x):
    activation = get_activation("tanh")
    return _unary("tanh", x, activation.forward, lambda v, y: lambda g, need: (activation.backward(g, v, y),))


def erf(x):
    """The error function in x's float type; d/dx = 2/√π · exp(-x²)."""
    return _unary("erf", x, lambda v: _erf(v).astype(v.dtype),
                  lambda v, y: lambda g, need: ((g * _ERF_SLOPE * np.exp(-np.square(v))).astype(v.dtype),))


def erfc(x):
    """1 - erf(x), computed without the cancellation; d/dx = -2/√π · exp(-x²)."""
    return _unary("erfc", x, lambda v: _erfc(v).astype(v.dtype),
                  lambda v, y: lambda g, need: ((-g * _ERF_SLOPE * np.exp(-np.square(v))).astype(v.dtype),))


_ERF_SLOPE = 2.0 / np.sqrt(np.pi)


def maximum(x1, x2):
    """Element-wise larger; a tie splits the gradient in halves (as torch)."""
    return _elementwise("maximum", (x1, x2), np.maximum, _select_grads(np.greater))


def minimum(x1, x2):
    """Element-wise smaller; a tie splits the gradient in halves (as torch)."""
    return _elementwise("minimum", (x1, x2), np.minimum, _select_grads(np.less))


def _select_grads(wins):
    """torch's rule: a tie splits the gradient, a strict loser gets none, and otherwise (a NaN) both get it."""
    def grads(a, b, y):
        def rule(g, need):
            tie = a == b
            share_a = np.where(tie, 0.5, np.where(wins(b, a), 0.0, 1.0)).astype(g.dtype)
            share_b = np.where(tie, 0.5, np.where(wins(a, b), 0.0, 1.0)).astype(g.dtype)
            return (g * share_a if need[0] else None, g * share_b if need[1] else None)
        return rule
    return grads


def clip(x, x_min, x_max):
    """x limited to [x_min, x_max]; x gets the gradient inside the range, a bound outside it."""
    def grads(v, lo, hi, y):
        return lambda g, need: (g * ((v >= lo) & (v <= hi)), g * (v < lo), g * (v > hi))
    return _elementwise("clip", (x, x_min, x_max), np.clip, grads, names=("x", "x_min", "x_max"))


def where(condition, x1=None, x2=None):
    """x1 where condition holds, else x2; with neither, the indices where it holds (a tuple, as
    np.nonzero and Keras' NumPy, JAX and TensorFlow backends; Keras on torch stacks them)."""
    cond = np.asarray(condition.value if isinstance(condition, (Traced, Variable)) else condition)
    if x1 is None and x2 is None:
        return np.nonzero(cond)
    if x1 is None or x2 is None:
        raise ValueError("ops.where: give both `x1` and `x2`, or neither (to get the indices where "
                         f"`condition` holds); got x1={'None' if x1 is None else 'a value'}, "
                         f"x2={'None' if x2 is None else 'a value'}")
    cond = cond.astype(bool)

    def grads(a, b, y):
        return lambda g, need: (np.where(cond, g, 0), np.where(cond, 0, g))
    values = _common("where", (x1, x2), ("x1", "x2"))
    _check_broadcast("where", [cond] + values, ("condition", "x1", "x2"))
    out = np.where(cond, *values)
    return record_node("where", (x1, x2), out, grads(*values, out))


# -- comparisons (bool results, no gradient) ---------------------------------------------------
def less(x1, x2):
    return _elementwise("less", (x1, x2), np.less)


def less_equal(x1, x2):
    return _elementwise("less_equal", (x1, x2), np.less_equal)


def greater(x1, x2):
    return _elementwise("greater", (x1, x2), np.greater)


def greater_equal(x1, x2):
    return _elementwise("greater_equal", (x1, x2), np.greater_equal)


def equal(x1, x2):
    return _elementwise("equal", (x1, x2), np.equal)


def not_equal(x1, x2):
    return _elementwise("not_equal", (x1, x2), np.not_equal)


# -- products ----------------------------------------------------------------------------------
def matmul(x1, x2):
    """The matrix product with NumPy's rules (1-D operands, broadcast batch axes)."""
    a, b = _common("matmul", (x1, x2), ("x1", "x2"))
    if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"ops.matmul: cannot multiply `x1` of shape {a.shape} by `x2` of shape {b.shape} "
                         "(x1's last axis must match x2's second-to-last; scalars need ops.multiply)")
    try:
        out = np.asarray(np.matmul(a, b))
    except ValueError:
        raise ValueError(f"ops.matmul: cannot broadcast the batch axes of `x1` {a.shape} and `x2` {b.shape}") from None
    return record_node("matmul", (x1, x2), out, _matmul_grads(a, b))


def _matmul_grads(a: np.ndarray, b: np.ndarray):
    """1-D operands are made matrices (a row, a column) and the extra axis dropped again."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b

    def rule(g, need):
        g2 = g[..., None] if b.ndim == 1 else g
        g2 = g2[..., None, :] if a.ndim == 1 else g2
        ga = gb = None
        if need[0]:
            ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
            ga = ga[..., 0, :] if a.ndim == 1 else ga
        if need[1]:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
            gb = gb[..., 0] if b.ndim == 1 else gb
        return ga, gb
    return rule


def dot(x1, x2):
    """NumPy's dot: a product with a scalar; else a sum over x1's last axis and x2's
    second-to-last (its only axis when 1-D).  (Keras on torch runs `matmul` for N-D x2.)"""
    a, b = _common("dot", (x1, x2), ("x1", "x2"))
    if a.ndim == 0 or b.ndim == 0:
        return multiply(x1, x2)
    return _contract("dot", x1, x2, a, b, [a.ndim - 1], [builtins.max(b.ndim - 2, 0)])


def tensordot(x1, x2, axes=2):
    """The sum of products over `axes`: an int (x1's last n with x2's first n) or two lists."""
    a, b = _common("tensordot", (x1, x2), ("x1", "x2"))
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        if not 0 <= axes <= builtins.min(a.ndim, b.ndim):
            raise ValueError(f"ops.tensordot: argument `axes` must be between 0 and {builtins.min(a.ndim, b.ndim)} "
                             f"for shapes {a.shape} and {b.shape}, got {axes}")
        first, second = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    elif isinstance(axes, (list, tuple)) and len(axes) == 2:
        first = [_axis(i, a.ndim, "tensordot", "axes") for i in np.atleast_1d(axes[0]).tolist()]
        second = [_axis(i, b.ndim, "tensordot", "axes") for i in np.atleast_1d(axes[1]).tolist()]
    else:
        raise TypeError(f"ops.tensordot: argument `axes` must be an int or a pair of axis lists, got {axes!r}")
    return _contract("tensordot", x1, x2, a, b, first, second)


def _contract(fn: str, x1, x2, a, b, first, second):
    """tensordot(a, b, (first, second)), recorded."""
    if len(first) != len(second) or any(a.shape[i] != b.shape[j] for i, j in zip(first, second)):
        raise ValueError(f"ops.{fn}: cannot contract axes {first} of `x1` (shape {a.shape}) with axes "
                         f"{second} of `x2` (shape {b.shape})")
    out = np.asarray(np.tensordot(a, b, (first, second)))
    return record_node(fn, (x1, x2), out, _tensordot_grads(a, b, first, second))


def _tensordot_grads(a, b, first, second):
    a_free = [i for i in range(a.ndim) if i not in first]
    b_free = [i for i in range(b.ndim) if i not in second]
    n = len(a_free)

    def rule(g, need):
        ga = gb = None
        if need[0]:     # axes of the result: a_free, then a's contracted axes in the order of b's
            order = a_free + [first[j] for j in np.argsort(second)]
            ga = np.tensordot(g, b, (list(range(n, g.ndim)), b_free)).transpose(np.argsort(order))
        if need[1]:
            order = [second[j] for j in np.argsort(first)] + b_free
            gb = np.tensordot(a, g, (a_free, list(range(n)))).transpose(np.argsort(order))
        return ga, gb
    return rule


def einsum(subscripts, *operands, **kwargs):
    """Einstein summation (NumPy's notation, `...` included).  The gradient of an operand with a
    repeated subscript (a diagonal, `"ii->i"`) is not implemented."""
    if not isinstance(subscripts, str):
        raise TypeError(f"ops.einsum: argument `subscripts` must be a string, got {subscripts!r}")
    unknown = sorted(set(kwargs) - {"optimize"})
    if unknown:
        raise TypeError(f"ops.einsum: unexpected keyword argument(s) {unknown}")
    values = _common("einsum", operands, [f"operands[{i}]" for i in range(len(operands))])
    inputs, output = _einsum_spec(subscripts, [v.ndim for v in values])
    try:
        out = np.asarray(np.einsum(",".join(inputs) + "->" + output, *values, **kwargs))
    except ValueError as error:
        raise ValueError(f"ops.einsum: {subscripts!r} does not fit operands of shapes "
                         f"{[v.shape for v in values]}: {error}") from None
    return record_node("einsum", operands, out, _einsum_grads(values, inputs, output))


def _einsum_spec(subscripts: str, ndims):
    """Explicit subscripts: `...` replaced by letters (right-aligned, as broadcasting), the output
    of the implicit form (ellipsis axes, then the letters used once, sorted) written out."""
    text = subscripts.replace(" ", "")
    left, arrow, right = text.partition("->")
    inputs = left.split(",")
    if len(inputs) != len(ndims):
        raise ValueError(f"ops.einsum: {subscripts!r} names {len(inputs)} operand(s), got {len(ndims)}")
    spare = [c for c in string.ascii_uppercase + string.ascii_lowercase if c not in text]
    widths = [ndim - len(s.replace("...", "")) if "..." in s else 0 for s, ndim in zip(inputs, ndims)]
    if builtins.min(widths, default=0) < 0:
        raise ValueError(f"ops.einsum: {subscripts!r} has more subscripts than an operand has axes {list(ndims)}")
    ellipsis = "".join(spare[:builtins.max(widths, default=0)])
    inputs = [s.replace("...", ellipsis[len(ellipsis) - w:] if w else "") for s, w in zip(inputs, widths)]
    if arrow:
        return inputs, right.replace("...", ellipsis)
    letters = "".join(inputs)
    return inputs, ellipsis + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis))


def _einsum_grads(values, inputs, output):
    def gradient_of(i, g):
        subs = inputs[i]
        if len(set(subs)) != len(subs):
            raise NotImplementedError(f"ops.einsum: the gradient for operand {i} with repeated subscripts "
                                      f"'{subs}' is not implemented")
        others = [s for j, s in enumerate(inputs) if j != i]
        kept = "".join(c for c in subs if c in output or any(c in s for s in others))
        grad = np.einsum(",".join([output] + others) + "->" + kept, g, *(v for j, v in enumerate(values) if j != i))
        shape = values[i].shape
        for k, c in enumerate(kept):     # a size-1 axis broadcast against the others: sum it back
            if shape[subs.index(c)] == 1 and grad.shape[k] != 1:
                grad = grad.sum(axis=k, keepdims=True)
        grad = grad.reshape([shape[k] if c in kept else 1 for k, c in enumerate(subs)])
        return np.broadcast_to(grad, shape)
    return lambda g, need: [gradient_of(i, g) if needed else None for i, needed in enumerate(need)]


# -- reductions --------------------------------------------------------------------------------
def _axis(axis, ndim: int, fn: str, arg: str = "axis") -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"ops.{fn}: argument `{arg}` must hold ints, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"ops.{fn}: axis {axis} is out of range for an array of {ndim} dimension(s)")
    return int(axis) % ndim


def _axes(axis, ndim: int, fn: str) -> Optional[Tuple[int, ...]]:
    """None, or the sorted, non-negative axes of an int or a list of ints."""
    if axis is None:
        return None
    items = axis if isinstance(axis, (list, tuple)) else (axis,)
    axes = [_axis(a, ndim, fn) for a in items]
    if len(set(axes)) != len(axes):
        raise ValueError(f"ops.{fn}: argument `axis` repeats an axis: {axis!r}")
    return tuple(sorted(axes))


def _kept(g: np.ndarray, axes, shape) -> np.ndarray:
    """A reduction's gradient with the reduced axes back, as length 1 (keepdims or not)."""
    axes = range(len(shape)) if axes is None else axes
    return g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


def _count(shape, axes) -> int:
    return int(np.prod([n for i, n in enumerate(shape) if axes is None or i in axes]))


def sum(x, axis=None, keepdims=False):
    """The sum over `axis` (all by default); bools and small ints sum as int32 (as Keras)."""
    value = _one(x, "sum")
    axes = _axes(axis, value.ndim, "sum")
    small = value.dtype.kind in "bui" and value.dtype.itemsize < 4
    out = np.asarray(np.sum(value, axis=axes, keepdims=keepdims, dtype=np.int32 if small else None))
    shape = value.shape
    return record_node("sum", (x,), out, lambda g, need: (np.broadcast_to(_kept(g, axes, shape), shape),))


def mean(x, axis=None, keepdims=False):
    """The mean over `axis` (all by default); ints give floatx."""
    value = _one(x, "mean", floating=True)
    axes = _axes(axis, value.ndim, "mean")
    out = np.asarray(np.mean(value, axis=axes, keepdims=keepdims))
    shape, count = value.shape, _count(value.shape, axes)
    return record_node("mean", (x,), out, lambda g, need: (np.broadcast_to(_kept(g, axes, shape) / count, shape),))


def max(x, axis=None, keepdims=False, initial=None):
    """The largest value over `axis`; ties share the gradient equally (as torch.amax, tf.reduce_max)."""
    return _extreme("max", np.max, x, axis, keepdims, initial)


def min(x, axis=None, keepdims=False, initial=None):
    """The smallest value over `axis`; ties share the gradient equally."""
    return _extreme("min", np.min, x, axis, keepdims, initial)


def _extreme(fn: str, reduce, x, axis, keepdims, initial):
    value = _one(x, fn)
    axes = _axes(axis, value.ndim, fn)
    if value.size == 0 and initial is None:
        raise ValueError(f"ops.{fn}: an empty array (shape {value.shape}) has no {fn}; give `initial`")
    extra = {} if initial is None else {"initial": initial}
    out = np.asarray(reduce(value, axis=axes, keepdims=keepdims, **extra))

    def rule(g, need):
        hit = value == _kept(out, axes, value.shape)
        count = np.sum(hit, axis=axes, keepdims=True).astype(g.dtype)
        return (np.where(hit, _kept(g, axes, value.shape) / np.maximum(count, 1), 0),)
    return record_node(fn, (x,), out, rule)


def prod(x, axis=None, keepdims=False, dtype=None):
    """The product over `axis`; the gradient is the product of the other factors (exact at zeros)."""
    value = _one(x, "prod")
    axes = _axes(axis, value.ndim, "prod")
    if dtype is None and value.dtype.kind in "biu" and value.dtype.itemsize < 4:
        dtype = np.int32
    out = np.asarray(np.prod(value, axis=axes, keepdims=keepdims, dtype=dtype))
    return record_node("prod", (x,), out, lambda g, need: (_kept(g, axes, value.shape) * _others(value, axes),))


def _others(value: np.ndarray, axes) -> np.ndarray:
    """For each element, the product of the other elements of its reduction: exclusive cumulative
    products from the left and from the right, so a zero needs no division."""
    axes = tuple(range(value.ndim)) if axes is None else axes
    ends = tuple(range(value.ndim - len(axes), value.ndim))
    moved = np.moveaxis(value, axes, ends)
    flat = moved.reshape(moved.shape[:value.ndim - len(axes)] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,), flat.dtype)
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return np.moveaxis((left * right).reshape(moved.shape), ends, axes)


def var(x, axis=None, keepdims=False):
    """The (population) variance over `axis`."""
    value = _one(x, "var", floating=True)
    axes = _axes(axis, value.ndim, "var")
    out = np.asarray(np.var(value, axis=axes, keepdims=keepdims))
    count = _count(value.shape, axes)
    centered = value - np.mean(value, axis=axes, keepdims=True)
    return record_node("var", (x,), out, lambda g, need: (_kept(g, axes, value.shape) * centered * (2 / count),))


def std(x, axis=None, keepdims=False):
    """The (population) standard deviation over `axis`."""
    value = _one(x, "std", floating=True)
    axes = _axes(axis, value.ndim, "std")
    out = np.asarray(np.std(value, axis=axes, keepdims=keepdims))
    count = _count(value.shape, axes)
    centered = value - np.mean(value, axis=axes, keepdims=True)

    def rule(g, need):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (_kept(g, axes, value.shape) * centered / (count * _kept(out, axes, value.shape)),)
    return record_node("std", (x,), out, rule)


def argmax(x, axis=None, keepdims=False):
    """The index of the largest value (int32, the first of ties; no gradient)."""
    value = _one(x, "argmax")
    axis = None if axis is None else _axis(axis, value.ndim, "argmax")
    return np.asarray(np.argmax(value, axis=axis, keepdims=keepdims)).astype(np.int32)


def argmin(x, axis=None, keepdims=False):
    """The index of the smallest value (int32, the first of ties; no gradient)."""
    value = _one(x, "argmin")
    axis = None if axis is None else _axis(axis, value.ndim, "argmin")
    return np.asarray(np.argmin(value, axis=axis, keepdims=keepdims)).astype(np.int32)


# -- shapes ------------------------------------------------------------------------------------
def _shape_arg(shape, fn: str, arg: str) -> Tuple[int, ...]:
    items = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if not isinstance(items, (list, tuple)) or any(isinstance(n, bool) or not isinstance(n, (int, np.integer))
                                                   for n in items):
        raise TypeError(f"ops.{fn}: argument `{arg}` must be an int or a list of ints, got {shape!r}")
    return tuple(int(n) for n in items)


def _reshaped(fn: str, x, value: np.ndarray, out: np.ndarray):
    """An op that only rearranges the elements in C order: the gradient is reshaped back."""
    shape = value.shape
    return record_node(fn, (x,), out, lambda g, need: (g.reshape(shape),))


def reshape(x, newshape):
    """The same elements in shape `newshape` (one entry may be -1)."""
    value = _one(x, "reshape")
    shape = _shape_arg(newshape, "reshape", "newshape")
    try:
        out = value.reshape(shape)
    except ValueError:
        raise ValueError(f"ops.reshape: cannot reshape an array of shape {value.shape} into {shape}") from None
    return _reshaped("reshape", x, value, out)


def expand_dims(x, axis):
    """A new axis of length 1 at `axis` (an int or a list of ints)."""
    value = _one(x, "expand_dims")
    items = axis if isinstance(axis, (list, tuple)) else (axis,)
    axes = tuple(_axis(a, value.ndim + len(items), "expand_dims") for a in items)
    return _reshaped("expand_dims", x, value, np.expand_dims(value, axes))


def squeeze(x, axis=None):
    """Without the axes of length 1 (all of them, or those in `axis`)."""
    value = _one(x, "squeeze")
    axes = _axes(axis, value.ndim, "squeeze")
    if axes is not None and any(value.shape[a] != 1 for a in axes):
        raise ValueError(f"ops.squeeze: cannot squeeze axis {axis!r} of an array of shape {value.shape}: "
                         "only axes of length 1 can be removed")
    return _reshaped("squeeze", x, value, np.squeeze(value, axis=axes))


def transpose(x, axes=None):
    """The axes permuted by `axes` (reversed by default)."""
    value = _one(x, "transpose")
    perm = tuple(range(value.ndim))[::-1] if axes is None else tuple(_axis(a, value.ndim, "transpose", "axes")
                                                                     for a in axes)
    if sorted(perm) != list(range(value.ndim)):
        raise ValueError(f"ops.transpose: argument `axes` must be a permutation of the {value.ndim} axes "
                         f"of an array of shape {value.shape}, got {axes!r}")
    inverse = tuple(np.argsort(perm))
    return record_node("transpose", (x,), value.transpose(perm), lambda g, need: (g.transpose(inverse),))


def broadcast_to(x, shape):
    """x broadcast to `shape` (a read-only view, as NumPy's)."""
    value = _one(x, "broadcast_to")
    shape = _shape_arg(shape, "broadcast_to", "shape")
    try:
        out = np.broadcast_to(value, shape)
    except ValueError:
        raise ValueError(f"ops.broadcast_to: cannot broadcast an array of shape {value.shape} to {shape}") from None
    return record_node("broadcast_to", (x,), out, lambda g, need: (g,))


def _sequence(xs, fn: str, arg: str):
    if not isinstance(xs, (list, tuple)) or not xs:
        raise TypeError(f"ops.{fn}: argument `{arg}` must be a non-empty list of arrays, got {type(xs).__name__}")
    return _common(fn, xs, [f"{arg}[{i}]" for i in range(len(xs))])


def concatenate(xs, axis=0):
    """The arrays of `xs` joined along `axis`."""
    values = _sequence(xs, "concatenate", "xs")
    axis = _axis(axis, values[0].ndim, "concatenate")
    try:
        out = np.concatenate(values, axis=axis)
    except ValueError:
        raise ValueError(f"ops.concatenate: cannot join shapes {[v.shape for v in values]} along axis {axis}: "
                         "all other axes must match") from None
    offsets = np.cumsum([v.shape[axis] for v in values])[:-1]
    return record_node("concatenate", tuple(xs), out, lambda g, need: np.split(g, offsets, axis=axis))


def stack(x, axis=0):
    """The arrays of `x` (all one shape) stacked along a new axis."""
    values = _sequence(x, "stack", "x")
    if len({v.shape for v in values}) != 1:
        raise ValueError(f"ops.stack: all arrays must have one shape, got {[v.shape for v in values]}")
    axis = _axis(axis, values[0].ndim + 1, "stack")
    out = np.stack(values, axis=axis)
    return record_node("stack", tuple(x), out, lambda g, need: [np.take(g, i, axis=axis) for i in range(len(values))])


def split(x, indices_or_sections, axis=0):
    """A list of pieces of x along `axis`: n equal ones, or cut at the given indices."""
    value = _one(x, "split")
    axis = _axis(axis, value.ndim, "split")
    try:
        pieces = tuple(np.split(value, indices_or_sections, axis=axis))
    except ValueError:
        raise ValueError(f"ops.split: cannot split length {value.shape[axis]} (axis {axis}) into "
                         f"{indices_or_sections!r} equal pieces") from None
    out = record_node("split", (x,), pieces, lambda grads, need: (np.concatenate(grads, axis=axis),))
    return list(out)


def _gather(fn: str, x, value: np.ndarray, select):
    """An op that picks elements (`select(array)`): each picked element's gradient is added back
    where it came from (repeats sum).  The positions are found in backward, by selecting from
    the element numbers, so nothing but `select` is kept."""
    out = np.asarray(select(value))
    shape, size = value.shape, value.size

    def rule(g, need):
        positions = np.asarray(select(np.arange(size).reshape(shape)))
        return (np.bincount(positions.ravel(), weights=g.ravel(), minlength=size).reshape(shape),)
    return record_node(fn, (x,), out, rule)


def tile(x, repeats):
    """x repeated `repeats` times along each axis (np.tile)."""
    value = _one(x, "tile")
    repeats = _shape_arg(repeats, "tile", "repeats")
    if any(r < 0 for r in repeats):
        raise ValueError(f"ops.tile: argument `repeats` must not be negative, got {repeats}")
    return _gather("tile", x, value, lambda array: np.tile(array, repeats))


def repeat(x, repeats, axis=None):
    """Each element repeated (np.repeat): along `axis`, or of the flattened array."""
    value = _one(x, "repeat")
    axis = None if axis is None else _axis(axis, value.ndim, "repeat")
    counts = np.asarray(repeats.value if isinstance(repeats, (Traced, Variable)) else repeats)
    if counts.dtype.kind not in "iu" or (counts < 0).any():
        raise ValueError(f"ops.repeat: argument `repeats` must be non-negative ints, got {repeats!r}")
    try:
        return _gather("repeat", x, value, lambda array: np.repeat(array, counts, axis=axis))
    except ValueError as error:
        raise ValueError(f"ops.repeat: argument `repeats` does not fit an array of shape {value.shape}: "
                         f"{error}") from None


def take(x, indices, axis=None):
    """The elements at `indices` along `axis` (of the flattened array when None)."""
    value = _one(x, "take")
    axis = None if axis is None else _axis(axis, value.ndim, "take")
    index = np.asarray(indices.value if isinstance(indices, (Traced, Variable)) else indices)
    if index.dtype.kind not in "iu":
        raise TypeError(f"ops.take: argument `indices` must be ints, got dtype {index.dtype}")
    try:
        return _gather("take", x, value, lambda array: np.take(array, index, axis=axis))
    except IndexError as error:
        raise ValueError(f"ops.take: {error}") from None


def _getitem(x, key):
    """x[key] for the `[]` operator of Traced values and Variables."""
    value = _one(x, "getitem")
    items = key if isinstance(key, tuple) else (key,)
    items = tuple(np.asarray(k.value) if isinstance(k, (Traced, Variable)) else k for k in items)
    key = items if isinstance(key, tuple) else items[0]
    if all(k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice)) for k in items):
        shape = value.shape        # basic indexing: no element is picked twice

        def rule(g, need):
            grad = np.zeros(shape, g.dtype)
            grad[key] = g
            return (grad,)
        return record_node("getitem", (x,), np.asarray(value[key]), rule)
    return _gather("getitem", x, value, lambda array: array[key])


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad(x, pad_width, mode="constant", constant_values=None):
    """x padded as np.pad: `pad_width` an int, a (before, after) pair or one pair per axis."""
    value = _one(x, "pad")
    if mode not in _PAD_MODES:
        raise ValueError(f"ops.pad: argument `mode` must be one of {_PAD_MODES}, got {mode!r}")
    if constant_values is not None and mode != "constant":
        raise ValueError(f"ops.pad: argument `constant_values` needs mode='constant', got mode={mode!r}")
    try:
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (value.ndim, 2))
    except (ValueError, TypeError):
        raise ValueError(f"ops.pad: argument `pad_width` must be an int, a (before, after) pair or "
                         f"{value.ndim} pairs, got {pad_width!r}") from None
    if (widths < 0).any():
        raise ValueError(f"ops.pad: argument `pad_width` must not be negative, got {pad_width!r}")
    if mode != "constant":
        return _gather("pad", x, value, lambda array: np.pad(array, widths, mode=mode))
    out = np.pad(value, widths, constant_values=0 if constant_values is None else constant_values)
    inside = tuple(slice(before, before + n) for (before, _), n in zip(widths, value.shape))
    return record_node("pad", (x,), out, lambda g, need: (g[inside],))


def cast(x, dtype):
    """x as `dtype`; a float-to-float cast passes the gradient (in the source's dtype)."""
    value = _one(x, "cast")
    target = _dtype_argument("cast", dtype)
    return record_node("cast", (x,), value.astype(target, copy=False), lambda g, need: (g,))


def convert_to_tensor(x, dtype=None, sparse=None):
    """x as an array in its Keras dtype (Python floats float32, ints int32; arrays keep theirs), or `dtype`:
    convscope's tensors are NumPy arrays (a traced value is returned as it is, `dtype` then casts it)."""
    if sparse:
        raise ValueError(f"ops.convert_to_tensor: argument `sparse` is not supported (dense arrays only), "
                         f"got {sparse!r}")
    if isinstance(x, Traced):
        return x if dtype is None else cast(x, dtype)
    numpy_scalar = isinstance(x, np.generic) and not isinstance(x, (float, int))  # np.float64 is a float: weak
    value = _numeric(np.asarray(x), "convert_to_tensor", "x") if numpy_scalar else _one(x, "convert_to_tensor")
    return value if dtype is None else value.astype(_dtype_argument("convert_to_tensor", dtype), copy=False)


def convert_to_numpy(x) -> np.ndarray:
    """x as a NumPy array (a traced value's array, untracked; a variable's value copied, as Keras':
    `keras.ops.convert_to_numpy`)."""
    if isinstance(x, Variable):
        return x.numpy()
    return np.asarray(x.value if isinstance(x, Traced) else _one(x, "convert_to_numpy"))


def _dtype_argument(fn: str, dtype) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"ops.{fn}: argument `dtype` must be a dtype such as 'float32', got {dtype!r}") from None


def zeros_like(x, dtype=None):
    """Zeros of x's shape and dtype (or `dtype`); no gradient."""
    value = _one(x, "zeros_like")
    return np.zeros(value.shape, value.dtype if dtype is None else dtype)


def ones_like(x, dtype=None):
    """Ones of x's shape and dtype (or `dtype`); no gradient."""
    value = _one(x, "ones_like")
    return np.ones(value.shape, value.dtype if dtype is None else dtype)


install_operators({
    "add": add, "subtract": subtract, "multiply": multiply, "true_divide": true_divide,
    "floor_divide": floor_divide, "power": power, "matmul": matmul, "negative": negative,
    "absolute": absolute, "less": less, "less_equal": less_equal, "greater": greater,
    "greater_equal": greater_equal, "equal": equal, "not_equal": not_equal, "getitem": _getitem,
    "transpose": transpose,
})


# -- functional models: a call on symbolic tensors records an operation node -------------------
def _symbolic_dispatch(namespace, names) -> None:
    """Wrap each function so that a call with a KerasTensor argument (from `keras.Input`) records
    an operation node (layers/operations.py) instead of computing, as Keras' ops do."""
    for name in names:
        namespace[name] = _dispatching(namespace[name])


def _dispatching(fn):
    @functools.wraps(fn)
    def dispatch(*args, **kwargs):
        graph = sys.modules.get("convscope.layers.graph")      # not loaded: no KerasTensor exists
        if graph is not None and graph.is_symbolic([args, kwargs]):
            from ..layers.operations import symbolic_call
            return symbolic_call(fn.__name__, args, kwargs)
        return fn(*args, **kwargs)
    return dispatch


_symbolic_dispatch(globals(), __all__)
