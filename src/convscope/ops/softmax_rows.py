"""Softmax of a small array on its last axis in one compiled call.

A classifier's last layer at a small batch ((1, 10), (32, 25)) spent several times longer in NumPy's five
passes (max, subtract, exp, sum, divide, each a call with its own temporary) than in its product: one call
here takes the rows in turn.  Each row's largest value is subtracted in the array's dtype (as the NumPy
reference does), the exponentials are taken in float64 and rounded to the dtype, their sum is kept in float64
and each output is the rounded quotient: as accurate as the reference or more (its float32 `exp` and sum round
more), not the same bits.  NaN anywhere in a row (or an infinite maximum) makes the row NaN, as the reference.
Larger arrays stay on NumPy, whose exponentials are vectorized (`MAX_ELEMENTS`; measurements:
benchmarks/README.md, 'Measurements behind the code's choices').
"""

from __future__ import annotations

import math

import numpy as np

from . import compiled

__all__ = ["MAX_ELEMENTS", "applies", "softmax"]

MAX_ELEMENTS = 1 << 14      # larger arrays: NumPy's vectorized exponentials beat the call saved


def applies(x: np.ndarray, axis) -> bool:
    """A float32 or float64 C-contiguous array of 1 to `MAX_ELEMENTS` elements, on its last axis, compiled ops on."""
    return (isinstance(x, np.ndarray) and x.ndim >= 1 and axis in (-1, x.ndim - 1)
            and x.dtype in (np.float32, np.float64) and 0 < x.size <= MAX_ELEMENTS and x.flags.c_contiguous
            and compiled.active())


def softmax(x: np.ndarray) -> np.ndarray:
    """The softmax of `x` (where `applies`) on its last axis, a new array."""
    out = np.empty_like(x)
    _softmax_rows(x.reshape(-1, x.shape[-1]), out.reshape(-1, x.shape[-1]))
    return out


@compiled.kernel
def _softmax_rows(x, out):
    """out[r] = exp(x[r] - max(x[r])) / their sum, row by row (see the module's note)."""
    for r in range(x.shape[0]):
        row, result = x[r], out[r]
        largest = row[0]
        for j in range(1, row.shape[0]):
            if row[j] > largest:        # a NaN is never larger: it makes the sum, so the whole row, NaN
                largest = row[j]
        total = 0.0
        for j in range(row.shape[0]):
            result[j] = math.exp(np.float64(row[j] - largest))
            total += np.float64(result[j])
        for j in range(row.shape[0]):
            result[j] = np.float64(result[j]) / total
