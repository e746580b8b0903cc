"""Products of a few rows by a matrix (a Dense layer on 1-4 samples), compiled.

Such a product only streams the matrix once per row.  Through BLAS it also pays for holding
BLAS to one thread around the call (`parallel.single_threaded_blas`), several times the product
itself for a small matrix (seed 001's batch-1 Dense 512 -> 25; figures in benchmarks/README.md).
Here one compiled call computes each row alone, four matrix rows per pass over the
output row (vectorized over its columns), so a row's bits do not depend on the rows beside it
(a batch of more rows runs through BLAS, whose last bits may differ from these).
`parallel.matmul` takes this path first where it applies; NumPy's product is the reference.
"""

from __future__ import annotations

import numpy as np

from . import compiled

__all__ = ["MAX_ROWS", "applies", "matmul"]

MAX_ROWS = 4        # as `parallel.GEMV_ROWS`: more rows share each pass over the matrix in BLAS' gemm
MAX_BYTES = 1 << 20  # as `parallel.GEMV_BYTES`: a larger matrix streams faster through BLAS' matrix-vector
                     # product, whose call then costs little beside it


def applies(a: np.ndarray, b: np.ndarray) -> bool:
    """True for 2-D float32 or float64 operands of one dtype, at most `MAX_ROWS` rows, `b` C-contiguous
    (its rows read whole) and under `MAX_BYTES`, compiled ops on."""
    return (a.ndim == 2 and b.ndim == 2 and 0 < a.shape[0] <= MAX_ROWS and b.nbytes < MAX_BYTES
            and a.dtype == b.dtype and a.dtype in (np.float32, np.float64) and b.flags.c_contiguous
            and compiled.active())


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` for operands where `applies`."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    _rows_times_matrix(np.ascontiguousarray(a), b, out)
    return out


@compiled.kernel
def _rows_times_matrix(a, b, out):
    rows, depth = a.shape
    columns = b.shape[1]
    for i in range(rows):
        row = out[i]
        for j in range(columns):
            row[j] = 0
        k = 0
        while k + 4 <= depth:
            x0, x1, x2, x3 = a[i, k], a[i, k + 1], a[i, k + 2], a[i, k + 3]
            w0, w1, w2, w3 = b[k], b[k + 1], b[k + 2], b[k + 3]
            for j in range(columns):
                row[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
            k += 4
        while k < depth:
            x0, w0 = a[i, k], b[k]
            for j in range(columns):
                row[j] += x0 * w0[j]
            k += 1
