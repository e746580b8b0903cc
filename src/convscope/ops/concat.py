"""Concatenation along the last axis (a U-Net's skip connections: Concatenate on channels-last maps).

NumPy's `concatenate` copies each input's rows on one thread, a short strided copy per row (a pixel's
channels).  Here one compiled pass copies a contiguous block of rows, each output row built from the
inputs' rows in turn, the threads claiming blocks of about `BLOCK_BYTES` in compiled code
(`parallel.run_claimed`: in a model, an input made long before comes from memory, and two threads' misses
overlap).  A copy: the same bits as NumPy's.  One ordered list, `_PATHS`, chooses the path; NumPy's
`concatenate` is the reference and the fallback.  The measurements behind the limits: benchmarks/README.md,
'Measurements behind the code's choices'.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import compiled
from .parallel import block_bounds, run_claimed

if compiled.available():
    from numba import literal_unroll

    from .claims import claim_rows

__all__ = ["concatenate", "MIN_BYTES", "BLOCK_BYTES"]

MIN_BYTES = 2 << 20      # smaller outputs: NumPy's copy (faster while the output stays in the caches)
BLOCK_BYTES = 256 << 10  # output bytes per block of rows the threads claim


def _rows_applies(arrays: Sequence[np.ndarray], axis: int) -> bool:
    """The compiled row pass: the last axis, 2-8 C-contiguous float32/float64 arrays of one dtype, the same
    leading shape, a large output, compiled ops on."""
    first = arrays[0]
    return (compiled.active() and 2 <= len(arrays) <= 8 and first.ndim >= 2 and axis in (-1, first.ndim - 1)
            and first.dtype in (np.float32, np.float64)
            and all(a.dtype == first.dtype and a.flags.c_contiguous and a.shape[:-1] == first.shape[:-1]
                    for a in arrays)
            and sum(a.nbytes for a in arrays) >= MIN_BYTES)


def _rows(arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
    rows = int(np.prod(arrays[0].shape[:-1]))
    flat = tuple(a.reshape(rows, a.shape[-1]) for a in arrays)
    widths = [a.shape[-1] for a in arrays]
    out = np.empty(arrays[0].shape[:-1] + (sum(widths),), dtype=arrays[0].dtype)
    out_rows = out.reshape(rows, -1)
    bounds = block_bounds(rows, out.nbytes, BLOCK_BYTES)
    run_claimed(len(bounds) - 1, lambda counter: _claimed_rows(flat, out_rows, counter, bounds))
    return out


def _numpy(arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
    return np.concatenate(arrays, axis=axis)


# The paths, in order: the first whose test passes runs.
_PATHS = (
    ("rows", _rows_applies, _rows),
    ("numpy", lambda arrays, axis: True, _numpy),
)


def concatenate(arrays: Sequence[np.ndarray], axis: int = -1) -> np.ndarray:
    """`np.concatenate(arrays, axis)` for arrays of one rank (NumPy's checks and errors where the shapes
    disagree), by the first of `_PATHS` that applies."""
    arrays = [np.asarray(a) for a in arrays]
    return next(run for _, applies, run in _PATHS if applies(arrays, axis))(arrays, axis)


@compiled.kernel
def _claimed_rows(arrays, out, counter, bounds):
    """`_copy_rows` of each block of rows bounds[k]..bounds[k + 1] this call claims from `counter`."""
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        _copy_rows(arrays, out, start, stop)


@compiled.kernel
def _copy_rows(arrays, out, start, stop):
    """out[r] = the rows r of `arrays` one after another, for r in start..stop (the loop over the inputs
    unrolled: as a loop, the compiler did not vectorize the copies)."""
    for r in range(start, stop):
        row = out[r]
        at = 0
        for a in literal_unroll(arrays):
            source = a[r]
            for j in range(source.shape[0]):
                row[at + j] = source[j]
            at += source.shape[0]
