"""Products of rows by a matrix of a few columns (a classifier's last Dense layer: 10 or 25 classes), compiled.

BLAS packs the matrix into panels and the rows into tiles on every call; with 10 columns the packing and the
call cost more than the multiply-adds (a batch of 32 rows by a 1000 x 10 matrix).  Here the matrix is read as
it lies: each of its rows is one or two vectors of `LANES` lanes (`simd.load_first`: the lanes past its last
column are zeros, their memory not read), and a tile of `ROWS` input rows sums into a vector each, a chain of fused
multiply-adds per `DEPTH_BLOCK` matrix rows added to the total of the blocks before it (as `dense_tiles`).
Each output row's bits are those of the row alone, whatever the rows beside it, the tile or the threads.  The
epilogue (+ bias, then the ReLU) is applied to each tile in its registers, as `epilogue.epilogue_value`.
`parallel.matmul` takes this path where neither `few_rows` nor `dense_tiles` does (both skip matrix rows that only
zeros multiply; here a zero times an infinite weight gives NaN, as in NumPy's product).  NumPy's product is the
reference.  Compiled path, float32.
"""

from __future__ import annotations

import numpy as np

from . import compiled

if compiled.available():
    from .simd import add, broadcast, epilogue, fma, load_first, store_first, vector_bits, zeros

__all__ = ["LANES", "MAX_COLUMNS", "ROWS", "DEPTH_BLOCK", "applies", "product", "kernel_for"]

LANES = 16          # one AVX-512 register, two AVX2 ones
MAX_COLUMNS = 32    # two vectors of columns: the most this path takes
ROWS = 4            # rows per tile: 4 independent chains of multiply-adds per vector hide the FMA's latency (2 with
                    # two vectors of columns on AVX2, whose 16 registers hold 8 vectors of 8 lanes of them)
DEPTH_BLOCK = 256   # matrix rows per chain, as `dense_tiles.DEPTH_BLOCK`


def applies(a: np.ndarray, b: np.ndarray) -> bool:
    """True for C-contiguous 2-D float32 operands, `b` of 1-`MAX_COLUMNS` columns, compiled ops on (a strided `a`,
    a Dense layer's input transposed in its backward pass, stays with BLAS: copying it cost more than the product,
    benchmarks/README.md)."""
    return (a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0] and 0 < b.shape[1] <= MAX_COLUMNS
            and a.dtype == np.float32 and b.dtype == np.float32 and a.flags.c_contiguous and b.flags.c_contiguous
            and compiled.active())


def multiply_adds(rows: int, depth: int, columns: int) -> int:
    """The multiply-adds of a product of this size here, each vector of columns counted whole (for the split among
    the threads, as `parallel.SMALL_PRODUCT` counts them)."""
    return rows * depth * LANES * -(-columns // LANES)


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray, bias=None, relu: bool = False) -> None:
    """out = a @ b (+ bias, then the ReLU with `relu`) for operands where `applies`, `out` a C-contiguous float32
    array of a row per row of `a` sharing no memory with them, `bias` None or a float32 vector of one value per
    column.  Checked first: the kernel reads and writes without bounds checks."""
    if not all(isinstance(value, np.ndarray) for value in (a, b, out)):
        raise TypeError(f"few_columns.product: arguments `a`, `b` and `out` must be NumPy arrays, got "
                        f"{', '.join(type(value).__name__ for value in (a, b, out))}")
    if not applies(a, b):
        raise ValueError(f"few_columns.product: arguments `a` and `b` must be C-contiguous float32 matrices, `b` of "
                         f"1-{MAX_COLUMNS} columns and as many rows as `a` has columns, got {a.dtype} of shape "
                         f"{a.shape} and {b.dtype} of shape {b.shape}")
    if (out.shape != (a.shape[0], b.shape[1]) or out.dtype != np.float32 or not out.flags.c_contiguous
            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        raise ValueError(f"few_columns.product: argument `out` must be a C-contiguous float32 array of shape "
                         f"{(a.shape[0], b.shape[1])} apart from `a` and `b`, got {out.dtype} of shape {out.shape}")
    finish = bias is not None or bool(relu)
    bias = np.zeros(b.shape[1], dtype=np.float32) if bias is None else bias
    if not (isinstance(bias, np.ndarray) and bias.dtype == np.float32 and bias.shape == (b.shape[1],)):
        raise ValueError(f"few_columns.product: argument `bias` must be a float32 vector of {b.shape[1]} "
                         f"values, got {getattr(bias, 'dtype', type(bias).__name__)} of shape {np.shape(bias)}")
    kernel_for(b.shape[1])(a, b, out, np.ascontiguousarray(bias), bool(relu), finish)


def kernel_for(columns: int):
    """The compiled `kernel(a, b, out, bias, relu, finish)` of `product` for a matrix of `columns` columns (checked),
    which itself checks nothing (for a caller that checked once: `linear.prepare_dense_inference`): `a`, `b`,
    `out` and `bias` C-contiguous float32 arrays of the shapes `product` takes; `finish`: + bias, then the ReLU
    with `relu`."""
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or not 0 < columns <= MAX_COLUMNS:
        raise ValueError(f"few_columns.kernel_for: argument `columns` must be an int from 1 to {MAX_COLUMNS}, "
                         f"got {columns!r}")
    return _KERNELS[columns > LANES, ROWS if columns <= LANES or _WIDE else ROWS // 2]


def _make_kernel(two: bool, rows_per_tile: int):
    """The product's kernel for one vector of columns per row or `two`, tiles of `rows_per_tile` rows (4 or 2).
    Each block's sums are added to the total in `out` (`_add_block`): in registers, the totals took as many as
    the sums, and AVX2's 16 did not hold both."""
    four = rows_per_tile == 4

    @compiled.kernel
    def product(x, w, out, bias, relu, finish):
        """out = x @ w by tiles of rows, then one row at a time (no depth: one empty block, zeros)."""
        rows, depth = x.shape
        columns = w.shape[1]
        first, second = min(columns, LANES), max(columns - LANES, 0)
        bias_0, bias_1 = load_first(bias, 0, first, LANES), load_first(bias, first, second, LANES)
        last = max(depth - 1, 0) // DEPTH_BLOCK * DEPTH_BLOCK
        r = 0
        while r + rows_per_tile <= rows:
            for start in range(0, last + 1, DEPTH_BLOCK):
                a0, a1, a2, a3 = zeros(LANES), zeros(LANES), zeros(LANES), zeros(LANES)
                c0, c1, c2, c3 = zeros(LANES), zeros(LANES), zeros(LANES), zeros(LANES)
                for k in range(start, min(depth, start + DEPTH_BLOCK)):
                    w0 = load_first(w, k * columns, first, LANES)
                    x0, x1 = broadcast(x, r * depth + k, LANES), broadcast(x, (r + 1) * depth + k, LANES)
                    a0, a1 = fma(x0, w0, a0), fma(x1, w0, a1)
                    if four:
                        x2, x3 = broadcast(x, (r + 2) * depth + k, LANES), broadcast(x, (r + 3) * depth + k, LANES)
                        a2, a3 = fma(x2, w0, a2), fma(x3, w0, a3)
                    if two:
                        w1 = load_first(w, k * columns + LANES, second, LANES)
                        c0, c1 = fma(x0, w1, c0), fma(x1, w1, c1)
                        if four:
                            c2, c3 = fma(x2, w1, c2), fma(x3, w1, c3)
                done = finish and start == last
                _add_block(out, r, columns, a0, c0, start, done, bias_0, bias_1, relu)
                _add_block(out, r + 1, columns, a1, c1, start, done, bias_0, bias_1, relu)
                if four:
                    _add_block(out, r + 2, columns, a2, c2, start, done, bias_0, bias_1, relu)
                    _add_block(out, r + 3, columns, a3, c3, start, done, bias_0, bias_1, relu)
            r += rows_per_tile
        for r in range(r, rows):
            for start in range(0, last + 1, DEPTH_BLOCK):
                a0, c0 = zeros(LANES), zeros(LANES)
                for k in range(start, min(depth, start + DEPTH_BLOCK)):
                    x0 = broadcast(x, r * depth + k, LANES)
                    a0 = fma(x0, load_first(w, k * columns, first, LANES), a0)
                    if two:
                        c0 = fma(x0, load_first(w, k * columns + LANES, second, LANES), c0)
                _add_block(out, r, columns, a0, c0, start, finish and start == last, bias_0, bias_1, relu)
    return product


if compiled.available():
    @compiled.kernel(inline=True)
    def _add_block(out, row, columns, v0, v1, start, done, bias_0, bias_1, relu):
        """out[row] = the first `columns` lanes of v0 then v1 (the first block, `start` 0), else out[row] + them;
        `done`: the last block, finished (+ bias, the ReLU with `relu`: `epilogue.epilogue_value`)."""
        first = min(columns, LANES)
        at = row * columns
        if start > 0:
            v0 = add(load_first(out, at, first, LANES), v0)
            v1 = add(load_first(out, at + LANES, columns - first, LANES), v1)
        if done:
            v0 = epilogue(v0, bias_0, relu, bias_0, bias_0, False, False)
            v1 = epilogue(v1, bias_1, relu, bias_1, bias_1, False, False)
        store_first(out, at, v0, first)
        if columns > LANES:
            store_first(out, at + LANES, v1, columns - LANES)

    _KERNELS = {(two, rows): _make_kernel(two, rows) for two in (False, True) for rows in (2, 4)}
    _WIDE = vector_bits() >= 512        # 32 vector registers: tiles of 4 rows by two vectors
