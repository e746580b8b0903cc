"""Products of a batch of rows by a large matrix (a Dense layer on 5-32 samples; 5-8 where vectors are 512-bit),
in SIMD registers.

BLAS' product packs the whole matrix on every call; with few rows each packed element is used only a few
times, and the packing costs about as much as the multiply-adds.  Here the matrix is read as it lies: for
each block of `DEPTH_BLOCK` of its rows (a strip of two vectors of columns stays in L1), each pair of
vectors of columns, each tile of `ROWS` rows of the input sums into registers, and the matrix streams from
memory once.  Each output is summed block by block (a chain of fused multiply-adds in the depth's order per
block, added to the total of the blocks before it: as accurate as BLAS' blocked sums, where one chain over
3136 products lost 4x more), the same operations whatever the tile or the threads: a row's bits are those
of the row alone, on any machine (they may differ from BLAS' in the last bits).  Columns past the last
whole vector are summed by plain multiply-adds, in the same blocks.  `parallel.matmul` takes this path
where it applies; NumPy's product is the reference.  Compiled path, float32, AVX2 or wider; the
measurements behind the limits: benchmarks/README.md, 'Measurements behind the code's choices'.
"""

from __future__ import annotations

import functools

import numpy as np

from . import compiled

if compiled.available():
    from .simd import add, broadcast, fma, load, store_first, zeros

__all__ = ["MIN_ROWS", "MAX_ROWS", "MIN_BYTES", "ROWS", "DEPTH_BLOCK", "applies", "column_ranges", "product"]

VECTOR_BITS = 32 * compiled.float32_lanes()     # 0 without numba or below AVX2: no tiles
MIN_ROWS = 5            # fewer rows: `few_rows` (each row streams the matrix alone)
MAX_ROWS = 8 if VECTOR_BITS > 256 else 32   # more rows reuse BLAS' packed matrix enough to pay for it (sooner
                                            # beside BLAS' 512-bit kernels)
MIN_BYTES = 1 << 20     # a smaller matrix: BLAS' packing is cheap beside the products
ROWS = 4                # rows per tile: 8 vectors of accumulators, enough in flight for two FMA units
DEPTH_BLOCK = 256       # matrix rows per block: a strip of two vectors of columns 16 KB with AVX2, in L1


def lanes() -> int:
    """float32 lanes of one vector register."""
    return VECTOR_BITS // 32


def applies(a: np.ndarray, b: np.ndarray) -> bool:
    """True for a float32 `a` of `MIN_ROWS`-`MAX_ROWS` rows times a float32 C-contiguous `b` of at least
    `MIN_BYTES` and one vector of columns, compiled ops on, AVX2 or wider."""
    return (a.ndim == 2 and b.ndim == 2 and MIN_ROWS <= a.shape[0] <= MAX_ROWS and a.shape[1] == b.shape[0]
            and a.dtype == np.float32 and b.dtype == np.float32 and b.flags.c_contiguous
            and b.nbytes >= MIN_BYTES and b.shape[1] >= lanes() and VECTOR_BITS >= 256 and compiled.active())


def column_ranges(columns: int, parts: int) -> list:
    """`parts` (start, stop) ranges of the columns, each a whole number of vector pairs but the last (which
    ends at `columns`), of near-equal widths; empty ranges left out."""
    pair = 2 * lanes()
    pairs = columns // pair
    bounds = [pairs * k // parts * pair for k in range(parts)] + [columns]
    return [(start, stop) for start, stop in zip(bounds, bounds[1:]) if stop > start]


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
    """out[:, start:stop] = a @ b[:, start:stop] for 2-D float32 arrays (`a` copied C-contiguous where it is
    not; `b` and `out` C-contiguous, `out` a row per row of `a`), `start` a multiple of two vectors (as
    `column_ranges` gives).  Checked first: the kernel reads and writes without bounds checks."""
    a = np.ascontiguousarray(a)
    for name, array in (("a", a), ("b", b), ("out", out)):
        if not (isinstance(array, np.ndarray) and array.dtype == np.float32 and array.ndim == 2
                and array.flags.c_contiguous):
            raise ValueError(f"dense_tiles.product: argument `{name}` must be a C-contiguous 2-D float32 array, got "
                             f"{getattr(array, 'dtype', type(array).__name__)} of shape {np.shape(array)}")
    if b.shape[0] != a.shape[1] or out.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"dense_tiles.product: arguments must be `a` (rows, depth), `b` (depth, columns) and `out` "
                         f"(rows, columns), got {a.shape}, {b.shape} and {out.shape}")
    if not (0 <= start <= stop <= b.shape[1] and start % (2 * lanes()) == 0):
        raise ValueError(f"dense_tiles.product: arguments `start`, `stop` must be columns 0 <= start <= stop <= "
                         f"{b.shape[1]}, start a multiple of {2 * lanes()}, got {start}, {stop}")
    _kernel_for(lanes())(a, b, out, start, stop, DEPTH_BLOCK)


def _make_kernel(width: int):
    """The loop for vectors of `width` lanes (a closure constant: numba's vector type needs a literal)."""

    @compiled.kernel
    def tiles(x, w, out, start, stop, block):
        count, depth = x.shape
        columns = w.shape[1]
        xf, wf, of = x.reshape(-1), w.reshape(-1), out.reshape(-1)
        zero = zeros(width)
        pairs_stop = start + (stop - start) // (2 * width) * (2 * width)
        vectors_stop = start + (stop - start) // width * width
        k0 = 0
        while k0 < depth:
            k1 = min(depth, k0 + block)
            for c in range(start, pairs_stop, 2 * width):
                r = 0
                while r + ROWS <= count:
                    _tile_pair(xf, wf, of, r, c, k0, k1, depth, columns, k0 > 0, width, zero)
                    r += ROWS
                while r < count:
                    _row_pair(xf, wf, of, r, c, k0, k1, depth, columns, k0 > 0, width, zero)
                    r += 1
            for c in range(pairs_stop, vectors_stop, width):
                for r in range(count):
                    _row_vector(xf, wf, of, r, c, k0, k1, depth, columns, k0 > 0, width, zero)
            for r in range(count):
                for c in range(vectors_stop, stop):
                    total = np.float32(0)
                    for k in range(k0, k1):
                        total += xf[r * depth + k] * wf[k * columns + c]
                    of[r * columns + c] = of[r * columns + c] + total if k0 > 0 else total
            k0 = k1
    return tiles


if compiled.available():
    @compiled.kernel(inline=True)
    def _tile_pair(xf, wf, of, r, c, k0, k1, depth, columns, resume, width, zero):
        """Rows r..r+3 by columns c..c+2*width, summed over the matrix rows k0..k1 and stored in `of`, or added
        to the sums there (`resume`)."""
        at = r * columns + c
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        base = r * depth
        for k in range(k0, k1):
            w0, w1 = load(wf, k * columns + c, zero), load(wf, k * columns + c + width, zero)
            x0 = broadcast(xf, base + k, zero)
            a0, a1 = fma(x0, w0, a0), fma(x0, w1, a1)
            x1 = broadcast(xf, base + depth + k, zero)
            a2, a3 = fma(x1, w0, a2), fma(x1, w1, a3)
            x2 = broadcast(xf, base + 2 * depth + k, zero)
            a4, a5 = fma(x2, w0, a4), fma(x2, w1, a5)
            x3 = broadcast(xf, base + 3 * depth + k, zero)
            a6, a7 = fma(x3, w0, a6), fma(x3, w1, a7)
        if resume:
            a0, a1 = add(load(of, at, zero), a0), add(load(of, at + width, zero), a1)
            a2, a3 = add(load(of, at + columns, zero), a2), add(load(of, at + columns + width, zero), a3)
            a4, a5 = add(load(of, at + 2 * columns, zero), a4), add(load(of, at + 2 * columns + width, zero), a5)
            a6, a7 = add(load(of, at + 3 * columns, zero), a6), add(load(of, at + 3 * columns + width, zero), a7)
        store_first(of, at, a0, width)
        store_first(of, at + width, a1, width)
        store_first(of, at + columns, a2, width)
        store_first(of, at + columns + width, a3, width)
        store_first(of, at + 2 * columns, a4, width)
        store_first(of, at + 2 * columns + width, a5, width)
        store_first(of, at + 3 * columns, a6, width)
        store_first(of, at + 3 * columns + width, a7, width)

    @compiled.kernel(inline=True)
    def _row_pair(xf, wf, of, r, c, k0, k1, depth, columns, resume, width, zero):
        """`_tile_pair` for the one row r."""
        at = r * columns + c
        a0 = a1 = zero
        for k in range(k0, k1):
            x0 = broadcast(xf, r * depth + k, zero)
            a0 = fma(x0, load(wf, k * columns + c, zero), a0)
            a1 = fma(x0, load(wf, k * columns + c + width, zero), a1)
        if resume:
            a0, a1 = add(load(of, at, zero), a0), add(load(of, at + width, zero), a1)
        store_first(of, at, a0, width)
        store_first(of, at + width, a1, width)

    @compiled.kernel(inline=True)
    def _row_vector(xf, wf, of, r, c, k0, k1, depth, columns, resume, width, zero):
        """Row r by the one vector of columns from c."""
        at = r * columns + c
        a0 = zero
        for k in range(k0, k1):
            a0 = fma(broadcast(xf, r * depth + k, zero), load(wf, k * columns + c, zero), a0)
        if resume:
            a0 = add(load(of, at, zero), a0)
        store_first(of, at, a0, width)
else:  # pragma: no cover - exercised where numba is not installed
    _tile_pair = _row_pair = _row_vector = None


@functools.lru_cache(maxsize=None)
def _kernel_for(width: int):
    """The kernel for vectors of `width` lanes, compiled on first use (kept per width, as pointwise_simd's)."""
    return _make_kernel(width)
