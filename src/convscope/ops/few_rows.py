"""Products of a few rows by a matrix (a Dense layer on 1-4 samples), compiled.

Such a product only streams the matrix once per row.  Through BLAS it also pays for holding
BLAS to one thread around the call (`parallel.single_threaded_blas`), and BLAS' matrix-vector
product streams the matrix slower than this loop (figures in benchmarks/README.md).
Here one compiled call computes each row alone, eight matrix rows per pass over the
output row (vectorized over its columns), so a row's bits do not depend on the rows beside it
(a batch of more rows runs through `dense_tiles` or BLAS, whose last bits may differ from these).  As the reference
BLAS' gemv does, a row skips the matrix rows its zeros would multiply: a ReLU's or max pooling's
output is often 30-60% zeros, and those matrix rows are not read at all (so a zero times an infinite
or NaN weight adds nothing, where NumPy's product gives NaN; a NaN or infinite input still counts).  A matrix too
large for one core's bandwidth is summed in `depth_blocks` (its rows in fixed blocks, whatever the
thread count), one partial product per block, which `parallel.matmul` has its threads claim in compiled
code (`claimed_partials`) and adds in block order.  `parallel.matmul` takes this path first where it applies;
NumPy's product is the reference.
"""

from __future__ import annotations

import numpy as np

from . import compiled

if compiled.available():
    from .claims import claim

__all__ = ["MAX_ROWS", "applies", "matmul", "partial", "depth_blocks", "claimed_partials"]

MAX_ROWS = 4        # as `parallel.GEMV_ROWS`: more rows share each pass over the matrix in BLAS' gemm
BLOCK_BYTES = 4 << 20  # about this much of the matrix per block of `depth_blocks`
MAX_BLOCKS = 16


def applies(a: np.ndarray, b: np.ndarray) -> bool:
    """True for 2-D float32 or float64 operands of one dtype, at most `MAX_ROWS` rows, `b` C-contiguous
    (its rows read whole), compiled ops on."""
    return (a.ndim == 2 and b.ndim == 2 and 0 < a.shape[0] <= MAX_ROWS
            and a.dtype == b.dtype and a.dtype in (np.float32, np.float64) and b.flags.c_contiguous
            and compiled.active())


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` for operands where `applies`, in one call."""
    return partial(a, b, 0, a.shape[1])


def partial(a: np.ndarray, b: np.ndarray, start: int, stop: int) -> np.ndarray:
    """`a[:, start:stop] @ b[start:stop]` for operands where `applies` (a new array)."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    _rows_times_matrix(np.ascontiguousarray(a), b, out, start, stop)
    return out


def depth_blocks(b: np.ndarray) -> list:
    """(start, stop) blocks of `b`'s rows, about `BLOCK_BYTES` each (an even number, at most `MAX_BLOCKS`),
    each a multiple of 4 rows but the last; the same blocks on any number of threads, so the same bits."""
    depth = b.shape[0]
    count = max(2, -(-b.nbytes // BLOCK_BYTES))
    count = min(count + count % 2, MAX_BLOCKS, max(1, depth // 4))
    bounds = [depth * k // count // 4 * 4 for k in range(count)] + [depth]
    return [(start, stop) for start, stop in zip(bounds, bounds[1:]) if stop > start]


@compiled.kernel
def claimed_partials(counter, a, b, parts, bounds):
    """parts[i] = `partial(a, b, *bounds[i])` for each block i this call claims from `counter` (one int64 shared by
    the threads making the same call: `parallel.run_claimed`) until none is left: the partials of `depth_blocks`,
    `parts` one C-contiguous (blocks, rows, columns) array (a strided one kept the loop from vectorizing: 2.2x
    the time), `a` C-contiguous."""
    while True:
        i = claim(counter, bounds.shape[0])
        if i >= bounds.shape[0]:
            return
        _rows_times_matrix(a, b, parts[i], bounds[i, 0], bounds[i, 1])


@compiled.kernel
def _rows_times_matrix(a, b, out, start, stop):
    """out[i] = a[i, start:stop] @ b[start:stop] for each row i, skipping the zeros of a[i] (`_nonzero_rows`)."""
    for i in range(a.shape[0]):
        _row_times_matrix(a[i], b, out[i], _nonzero_rows(a[i], start, stop))


@compiled.kernel(inline=True)
def _nonzero_rows(x, start, stop):
    """The indices k in [start, stop) where x[k] != 0 (NaN included), in order."""
    kept = np.empty(stop - start, dtype=np.int64)
    count = 0
    for k in range(start, stop):
        if x[k] != 0:
            kept[count] = k
            count += 1
    return kept[:count]


@compiled.kernel
def _row_times_matrix(x, b, row, kept):
    """row = the sum of x[k] * b[k] over k in `kept`: eight matrix rows per pass over `row`, then four, then one.
    A call, not inlined: inlined into `linear._finished_rows`, the sums came out with other last bits there."""
    columns = b.shape[1]
    for j in range(columns):
        row[j] = 0
    p = 0
    while p + 8 <= kept.shape[0]:
        x0, x1, x2, x3 = x[kept[p]], x[kept[p + 1]], x[kept[p + 2]], x[kept[p + 3]]
        x4, x5, x6, x7 = x[kept[p + 4]], x[kept[p + 5]], x[kept[p + 6]], x[kept[p + 7]]
        w0, w1, w2, w3 = b[kept[p]], b[kept[p + 1]], b[kept[p + 2]], b[kept[p + 3]]
        w4, w5, w6, w7 = b[kept[p + 4]], b[kept[p + 5]], b[kept[p + 6]], b[kept[p + 7]]
        for j in range(columns):
            row[j] += ((x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j])
                       + (x4 * w4[j] + x5 * w5[j] + x6 * w6[j] + x7 * w7[j]))
        p += 8
    if p + 4 <= kept.shape[0]:
        x0, x1, x2, x3 = x[kept[p]], x[kept[p + 1]], x[kept[p + 2]], x[kept[p + 3]]
        w0, w1, w2, w3 = b[kept[p]], b[kept[p + 1]], b[kept[p + 2]], b[kept[p + 3]]
        for j in range(columns):
            row[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
        p += 4
    while p < kept.shape[0]:
        x0, w0 = x[kept[p]], b[kept[p]]
        for j in range(columns):
            row[j] += x0 * w0[j]
        p += 1
