"""`Variable` (a named weight array, as `keras.Variable`) and the array operators it shares with
`ops.tape.Traced`.

This module sits at the bottom of the house (numpy and `backend` only), yet `variable * x` must
run `ops.multiply`, so that under an active `ops.Tape` the variable is a leaf whose gradient is
recorded.  The operators therefore look their functions up in a table that `convscope.ops`
fills once when it is imported (`install_operators`); importing any part of `convscope` imports
`convscope.ops`, so the table is always there when a variable exists.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np

__all__ = ["Variable", "ArrayOperators", "install_operators", "apply_operator"]

# The Keras ops behind each operator: written once, by `convscope.ops` at import.
_OPERATORS: Dict[str, Callable] = {}
OPERATOR_NAMES = ("add", "subtract", "multiply", "true_divide", "floor_divide", "power", "matmul",
                  "negative", "absolute", "less", "less_equal", "greater", "greater_equal",
                  "equal", "not_equal", "getitem", "transpose")


def install_operators(functions: Dict[str, Callable]) -> None:
    """Give the operators of `ArrayOperators` their functions (called by `convscope.ops`)."""
    missing = sorted(set(OPERATOR_NAMES) - set(functions))
    if missing:
        raise ValueError(f"install_operators: argument `functions` lacks {missing}")
    _OPERATORS.update({name: functions[name] for name in OPERATOR_NAMES})


def apply_operator(name: str, *args):
    """Run the Keras op behind operator `name` (e.g. "multiply") on `args`."""
    try:
        function = _OPERATORS[name]
    except KeyError:
        raise RuntimeError(f"the operator '{name}' needs convscope.ops; import convscope first") from None
    return function(*args)


class ArrayOperators:
    """Python's array operators routed through the Keras ops, as on a Keras tensor or variable.

    `__array_ufunc__ = None` makes NumPy hand `ndarray * value` to the reflected method, so the
    product is recorded too; a NumPy ufunc applied directly (`np.exp(value)`) raises TypeError
    instead of silently dropping the value out of a tape (use `ops.exp`, or `np.asarray(value)`).
    """

    __slots__ = ()
    __array_ufunc__ = None

    def __add__(self, other):
        return apply_operator("add", self, other)

    def __radd__(self, other):
        return apply_operator("add", other, self)

    def __sub__(self, other):
        return apply_operator("subtract", self, other)

    def __rsub__(self, other):
        return apply_operator("subtract", other, self)

    def __mul__(self, other):
        return apply_operator("multiply", self, other)

    def __rmul__(self, other):
        return apply_operator("multiply", other, self)

    def __truediv__(self, other):
        return apply_operator("true_divide", self, other)

    def __rtruediv__(self, other):
        return apply_operator("true_divide", other, self)

    def __floordiv__(self, other):
        return apply_operator("floor_divide", self, other)

    def __rfloordiv__(self, other):
        return apply_operator("floor_divide", other, self)

    def __pow__(self, other):
        return apply_operator("power", self, other)

    def __rpow__(self, other):
        return apply_operator("power", other, self)

    def __matmul__(self, other):
        return apply_operator("matmul", self, other)

    def __rmatmul__(self, other):
        return apply_operator("matmul", other, self)

    def __neg__(self):
        return apply_operator("negative", self)

    def __pos__(self):
        return apply_operator("add", self, 0)

    def __abs__(self):
        return apply_operator("absolute", self)

    def __lt__(self, other):
        return apply_operator("less", self, other)

    def __le__(self, other):
        return apply_operator("less_equal", self, other)

    def __gt__(self, other):
        return apply_operator("greater", self, other)

    def __ge__(self, other):
        return apply_operator("greater_equal", self, other)

    def __getitem__(self, key):
        return apply_operator("getitem", self, key)


class Variable(ArrayOperators):
    """A named weight array, as `keras.Variable`: `.numpy()`, `.assign()`, `.shape`.

    `grad` holds the gradient from the last `backward` (None before one).  Arithmetic
    (`+ - * / // ** @`, unary `-`, `abs`, `< <= > >=`, indexing) returns arrays, as Keras'
    does; under an active `ops.Tape` a trainable variable is a leaf and the result is a traced
    value.  `==` and `!=` stay identity comparisons (unlike Keras): variables are looked up in
    lists (`v in layer.trainable_weights`) and used as dict keys.
    """

    def __init__(self, value: np.ndarray, name: str, trainable: bool = True,
                 regularizer=None, constraint=None):
        self.value = value
        self.name = name
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint
        self.grad: Optional[np.ndarray] = None

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def numpy(self) -> np.ndarray:
        """A copy of the value, as a TensorFlow variable's `.numpy()`."""
        return self.value.copy()

    def assign(self, value) -> None:
        """Overwrite the value in place; the shape must match."""
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError(f"Variable '{self.name}': cannot assign a value of shape {value.shape} "
                             f"to a variable of shape {self.value.shape}")
        self.value[...] = value

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __repr__(self) -> str:
        return f"<Variable '{self.name}' shape={self.shape} dtype={self.dtype}>"
