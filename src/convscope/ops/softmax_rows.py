"""Softmax on the last axis, row by row in compiled code.

A classifier's last layer at a small batch ((1, 10), (32, 25)) spent several times longer in NumPy's five
passes (max, subtract, exp, sum, divide, each a call with its own temporary) than in its product: one call
here takes the rows in turn.  Each row's largest value is subtracted and the exponentials are taken in the
array's dtype (as the NumPy reference does; the C library's `expf`/`exp`, within a unit in the last place),
their sum is kept in float64 and each output is the rounded quotient: as accurate as the reference or more (its
sum rounds more), not the same bits.  A row's bits depend on its values alone (not on the rows beside it, the
batch size or the input's layout: a sample's output has the same bits in any batch), so the path is chosen by
the rows' length only (`MAX_ROW`: a classifier's head); a large array's rows are shared among the threads.  NaN
anywhere in a row (or an infinite maximum) makes the row NaN, as in the reference, without its floating-point
warnings.  Measurements: benchmarks/README.md, 'Measurements behind the code's choices'.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from . import compiled
from .parallel import on_slices

__all__ = ["MAX_ROW", "applies", "softmax"]

MAX_ROW = 25                # longer rows stay on NumPy, whose vectorized exponentials catch up there at a few
                            # hundred rows (benchmarks/README.md, 'Measurements behind the code's choices')
_MIN_PARALLEL_BYTES = 1 << 20


def applies(x: np.ndarray, axis) -> bool:
    """A float32 or float64 array of rows of 1 to `MAX_ROW` elements, softmax on its last axis (an int
    axis), compiled ops on."""
    return (isinstance(x, np.ndarray) and x.ndim >= 1 and isinstance(axis, (int, np.integer))
            and not isinstance(axis, bool) and axis in (-1, x.ndim - 1) and x.dtype in (np.float32, np.float64)
            and 0 < x.shape[-1] <= MAX_ROW and compiled.active())


def softmax(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """The softmax of `x` (where `applies`) on its last axis, into a new C-contiguous array or `out` (a C-contiguous
    array of x's shape and dtype, `x` itself or one sharing no memory with it: a row is read whole before it is
    written)."""
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    if out is None:
        out = np.empty(x.shape, dtype=x.dtype)
    elif not isinstance(out, np.ndarray):
        raise TypeError(f"softmax_rows.softmax: argument `out` must be a NumPy array, got {type(out).__name__}")
    elif (out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous
          or (out is not x and np.may_share_memory(out, x))):
        raise ValueError(f"softmax_rows.softmax: argument `out` must be a C-contiguous {x.dtype} array of shape "
                         f"{x.shape}, `x` itself or apart from it, got {out.dtype} of shape {out.shape}")
    flat = out.reshape(-1, x.shape[-1])
    if rows.nbytes < _MIN_PARALLEL_BYTES:
        _softmax_rows(rows, flat)           # (no closure for a classifier's few rows)
    else:
        on_slices(len(rows), rows.nbytes, lambda part: _softmax_rows(rows[part], flat[part]),
                  min_size=_MIN_PARALLEL_BYTES)
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
        for j in range(row.shape[0]):
            result[j] = math.exp(row[j] - largest)
        total = 0.0
        for j in range(row.shape[0]):
            total += np.float64(result[j])
        for j in range(row.shape[0]):
            result[j] = np.float64(result[j]) / total
