"""Products of a batch of rows by a large matrix (a Dense layer on 5-32 samples, 5-64 with 512-bit vectors, 5-128
where a CPU runs them as two halves), in SIMD registers.

BLAS' product packs the whole matrix on every call; with few rows each packed element is used only a few
times, and the packing costs about as much as the multiply-adds.  Here the matrix is read as it lies: for
each block of `DEPTH_BLOCK` of its rows (a strip of its columns stays in L1), each strip of two vectors of
columns (three where vectors are 512-bit: 32 registers hold tiles of `WIDE_ROWS` rows), each tile of rows
of the input sums into registers, and the matrix streams from memory once (the first tile of each strip
asks for the rows `AHEAD_ROWS` on: `_prefetch`).  A matrix of `STREAM_BYTES` or more, read from memory at
every call, goes in blocks of `STREAM_BLOCK` rows, and (where 512-bit vectors run whole) while a strip of three
vectors is summed, each of its tiles of `WIDE_ROWS` rows asks for a line of the next strip's rows (into L2): the
memory's latency is then hidden behind all of a strip's tiles, not the first alone (`depth_block`).  Each output
is summed block by block (a chain of fused multiply-adds in the depth's order per block, added to the total of
the blocks before it: as accurate as BLAS' blocked sums, where one chain over 3136 products lost 4x more), the same
operations whatever the tile or the threads: a row's bits are those of the row alone, on any machine (they may differ
from BLAS' in the last bits).  Columns past the last whole vector are the last lanes of the vector that ends
at the matrix's last column, summed alike.  `parallel.matmul` takes this path where it applies; NumPy's
product is the reference.  Given the matrix rows to read (`kept_depth`), the tiles skip those that only zeros
multiply, with the same values for finite weights.  Compiled path, float32, AVX2 or wider; the measurements behind
the limits: benchmarks/README.md, 'Measurements behind the code's choices'.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from . import compiled
from .scalar_epilogue import epilogue_value

if compiled.available():
    from .claims import claim
    from .simd import add, broadcast, double_pumped, fma, load, prefetch, prefetch_l2, store_first, zeros

__all__ = ["MIN_ROWS", "MAX_ROWS", "WIDE_MAX_ROWS", "PUMPED_MAX_ROWS", "MIN_BYTES", "ROWS", "WIDE_ROWS", "DEPTH_BLOCK",
           "STREAM_BYTES", "STREAM_BLOCK", "AHEAD_ROWS", "applies", "fits", "max_rows", "column_ranges", "strip",
           "depth_block", "product", "claimed_work", "kept_depth"]

VECTOR_BITS = 32 * compiled.float32_lanes()     # 0 without numba or below AVX2: no tiles
_DOUBLE_PUMPED = VECTOR_BITS >= 512 and double_pumped()
MIN_ROWS = 5            # fewer rows: `few_rows` (each row streams the matrix alone)
MAX_ROWS = 32           # more rows reuse BLAS' packed matrix enough to pay for it (AVX2's tiles)
WIDE_MAX_ROWS = 64      # the same for the tiles of three 512-bit vectors (see `max_rows`)
PUMPED_MAX_ROWS = 128   # ... on a CPU that runs 512-bit vectors as two halves (Zen 4: `simd.double_pumped`)
MIN_BYTES = 1 << 20     # a smaller matrix: BLAS' packing is cheap beside the products
ROWS = 4                # rows per tile of a pair of vectors: 8 vectors of accumulators (AVX2's 16 registers)
WIDE_ROWS = 8           # rows per tile of three 512-bit vectors: 24 accumulators of the 32 registers
AHEAD_ROWS = 16         # the first tile of a strip asks for the strip's rows this far ahead (see `_prefetch`)
DEPTH_BLOCK = 256       # matrix rows per block: a strip 16 KB with AVX2, 48 KB with three 512-bit vectors
STREAM_BYTES = 4 << 20  # a matrix this large streams from memory at every call (`depth_block`)
STREAM_BLOCK = 64       # its rows per block: a strip of three 512-bit vectors 12 KB, well inside L1
_NO_BIAS = np.zeros(0, dtype=np.float32)     # `claimed_work` without an epilogue (never read)


def lanes() -> int:
    """float32 lanes of one vector register."""
    return VECTOR_BITS // 32


def applies(a: np.ndarray, b: np.ndarray) -> bool:
    """True for a float32 `a` of `MIN_ROWS`-`max_rows()` rows times a float32 C-contiguous `b` of at least
    `MIN_BYTES` and one vector of columns, compiled ops on, AVX2 or wider."""
    return (a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0] and a.dtype == np.float32
            and b.dtype == np.float32 and b.flags.c_contiguous and fits(a.shape[0], b.shape[0], b.shape[1]))


def fits(rows: int, depth: int, columns: int) -> bool:
    """`applies`' conditions on the sizes of a float32 product (rows, depth) x (depth, columns)."""
    return (MIN_ROWS <= rows <= max_rows() and depth * columns * 4 >= MIN_BYTES and columns >= lanes()
            and VECTOR_BITS >= 256 and compiled.active())


def max_rows() -> int:
    """The most rows the tiles take: `WIDE_MAX_ROWS` where vectors are 512-bit (8 x 3 tiles, 24 accumulators:
    0.98x BLAS' time at 64 rows and 1.05x at 128 on an Intel VM), `PUMPED_MAX_ROWS` where the CPU runs them as
    two halves (a Zen 4 VM: 0.82-0.97x up to 128 rows, level at 256, slower at 512), else `MAX_ROWS` (AVX2's
    4 x 2 tiles: 1.03-1.04x BLAS' time at 64-128 rows).  Measurements: benchmarks/README.md, 'Measurements
    behind the code's choices'."""
    if VECTOR_BITS < 512:
        return MAX_ROWS
    return PUMPED_MAX_ROWS if _DOUBLE_PUMPED else WIDE_MAX_ROWS


def strip() -> int:
    """Columns of one strip of the tiles: two vectors, three where they are 512-bit."""
    return (3 if lanes() > 8 else 2) * lanes()


def column_ranges(columns: int, parts: int) -> list:
    """`parts` (start, stop) ranges of the columns, of near-equal widths, each starting on a vector (a whole
    number of vectors but the last, which ends at `columns`; a range's columns past its last strip run in
    narrower tiles, so whole strips per range left the last range up to a strip longer: 4% of seed 000's
    Dense at batch 32); empty ranges left out."""
    width = lanes()
    bounds = [min(columns, round(columns * k / parts / width) * width) for k in range(parts)] + [columns]
    return [(start, stop) for start, stop in zip(bounds, bounds[1:]) if stop > start]


def depth_block(b: np.ndarray) -> tuple:
    """(matrix rows per block, whether the tiles ask for the next strip) for the matrix `b`: from `STREAM_BYTES`
    `STREAM_BLOCK` rows, and the next strip asked for where 512-bit vectors run whole (measured there, faster on
    seed 000's 12.5 MB Dense; not measured on a CPU that runs them as two halves), else `DEPTH_BLOCK` and no asks
    (a matrix in cache gains nothing from them, and smaller blocks cost their tiles' setup).  The block depends
    on the sizes alone: a row's bits stay those of the row alone, on any machine.  Measurements:
    benchmarks/README.md, 'Measurements behind the code's choices'."""
    if b.nbytes < STREAM_BYTES:
        return DEPTH_BLOCK, False
    return STREAM_BLOCK, VECTOR_BITS >= 512 and not _DOUBLE_PUMPED


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray, start: int, stop: int, skip_zeros: bool = False) -> None:
    """out[:, start:stop] = a @ b[:, start:stop] for 2-D float32 arrays (`a` copied C-contiguous where it is
    not; `b` and `out` C-contiguous, `out` a row per row of `a`), `start` a multiple of one vector (the
    ranges of `column_ranges` give every output the same bits whatever their number); `skip_zeros`: see
    `kept_depth`.  Checked first: the kernel reads and writes without bounds checks."""
    a = _checked(a, b, out, [(start, stop)], "product")
    _kernel_for(lanes())(a, b, out, start, stop, *depth_block(b), AHEAD_ROWS * b.shape[1], kept_depth(a, skip_zeros))


def claimed_work(a: np.ndarray, b: np.ndarray, out: np.ndarray, ranges: np.ndarray, skip_zeros: bool = False,
                 bias: Optional[np.ndarray] = None, relu: bool = False):
    """`work(counter)` for `parallel.run_claimed`: `product` over each of the (start, stop) column `ranges` (an
    int64 (items, 2) array of `column_ranges`) that the call claims from `counter`, in one compiled call per
    thread: the pool thread starts once this thread's call has claimed a range, not after a sleep for the GIL
    (halves one per thread ran faster than smaller ranges claimed in turn, which read the rows once per range;
    measurements: benchmarks/README.md).  The same bits as one `product` over all the columns.  With `bias` (a
    float32 vector, one per column) or `relu`, each range is finished as soon as it is summed, while it is in its
    thread's cache: + bias (zeros without one), then the ReLU (`relu`): `epilogue_value` (NaN stays NaN); a pass
    over the whole output after the product read each range's half from the other core.  Checked here, once."""
    a = _checked(a, b, out, ranges, "claimed_work")
    finish = bias is not None or bool(relu)
    bias = np.zeros(b.shape[1], dtype=np.float32) if bias is None and finish else bias
    if finish and not (isinstance(bias, np.ndarray) and bias.dtype == np.float32 and bias.shape == (b.shape[1],)):
        raise ValueError(f"dense_tiles.claimed_work: argument `bias` must be a float32 vector of {b.shape[1]} "
                         f"values, got {getattr(bias, 'dtype', type(bias).__name__)} of shape {np.shape(bias)}")
    kernel, ahead, kept = _CLAIMED[lanes()], AHEAD_ROWS * b.shape[1], kept_depth(a, skip_zeros)
    bias = np.ascontiguousarray(bias) if finish else _NO_BIAS
    block, follow = depth_block(b)
    return lambda counter: kernel(counter, a, b, out, ranges, block, follow, ahead, kept, bias, bool(relu), finish)


def kept_depth(a: np.ndarray, skip_zeros: bool) -> np.ndarray:
    """The matrix rows the tiles read (int64 indices, in order; only to be read: the array of every row is
    shared): all of them, or with `skip_zeros` those that some row of `a` multiplies by a nonzero (NaN
    included).  A zero column of `a` (a unit every sample's ReLU zeroed: a fifth of seed 000's Dense inputs at
    batch 128) adds exact zeros to each chain of multiply-adds, so skipping its matrix row gives the same values
    (the same bits but for the sign of a zero an underflow left), unless that row holds an infinite or NaN
    weight: the sums then stay finite, as the reference BLAS' gemm leaves them (NumPy's product gives NaN), and a
    row's result depends on whether another row of the batch reads that matrix row."""
    if not skip_zeros:
        return _every_row(a.shape[1])
    return _nonzero_columns(a, np.zeros(a.shape[1], dtype=np.bool_))


@functools.lru_cache(maxsize=64)
def _every_row(depth: int) -> np.ndarray:
    """0, 1, ..., depth - 1: one array per depth, shared by the calls, which only read it (a read-only flag made
    numba compile the tiles into a slower loop: benchmarks/README.md)."""
    return np.arange(depth, dtype=np.int64)


def _checked(a, b, out, ranges, op: str) -> np.ndarray:
    """`a` C-contiguous, after the checks of `product`'s arguments (each range's start and stop) for `op`."""
    a = np.ascontiguousarray(a)
    for name, array in (("a", a), ("b", b), ("out", out)):
        if not (isinstance(array, np.ndarray) and array.dtype == np.float32 and array.ndim == 2
                and array.flags.c_contiguous):
            raise ValueError(f"dense_tiles.{op}: argument `{name}` must be a C-contiguous 2-D float32 array, got "
                             f"{getattr(array, 'dtype', type(array).__name__)} of shape {np.shape(array)}")
    if b.shape[0] != a.shape[1] or out.shape != (a.shape[0], b.shape[1]) or b.shape[1] < lanes():
        raise ValueError(f"dense_tiles.{op}: arguments must be `a` (rows, depth), `b` (depth, columns) and `out` "
                         f"(rows, columns), at least {lanes()} columns, got {a.shape}, {b.shape} and {out.shape}")
    for start, stop in ranges:
        if not (0 <= start <= stop <= b.shape[1] and start % lanes() == 0 and (stop == start or stop >= lanes())):
            raise ValueError(f"dense_tiles.{op}: arguments `start`, `stop` must be columns 0 <= start <= stop <= "
                             f"{b.shape[1]}, start a multiple of {lanes()}, stop at least {lanes()} (a vector ends "
                             f"there) unless equal to start, got {start}, {stop}")
    return a


def _make_kernel(width: int):
    """The loop for vectors of `width` lanes (a closure constant: numba's vector type needs a literal): strips
    of two vectors in tiles of `ROWS` rows; with 512-bit vectors strips of three in tiles of `WIDE_ROWS` rows
    (4 rows left: a pair tile and a vector tile), the columns past them in pairs, then one vector, each in tiles
    of `ROWS` rows (row by row, one vector of 16 lanes took most of a 256-column range's time; measurements:
    benchmarks/README.md).  Every output is the same chain of multiply-adds per block whichever tile computes it."""
    triples = width > 8

    @compiled.kernel
    def tiles(x, w, out, start, stop, block, follow, ahead, kept):
        count, depth = x.shape
        columns = w.shape[1]
        xf, wf, of = x.reshape(-1), w.reshape(-1), out.reshape(-1)
        zero = zeros(width)
        triples_stop = start + (stop - start) // (3 * width) * (3 * width) if triples else start
        pairs_stop = triples_stop + (stop - triples_stop) // (2 * width) * (2 * width)
        vectors_stop = start + (stop - start) // width * width
        sums = np.empty(count * width if vectors_stop < stop else 0, dtype=np.float32)
        k0 = p1 = 0
        while k0 < depth:
            k1 = min(depth, k0 + block)
            resume = k0 > 0
            p0 = p1
            while p1 < kept.shape[0] and kept[p1] < k1:
                p1 += 1
            for c in range(start, triples_stop, 3 * width):
                r = 0
                # the next strip's rows, or the next block's first strip: where the tiles ask for lines (`follow`)
                following = (3 * width if c + 3 * width < stop else block * columns - (c - start)) if follow else 0
                while r + WIDE_ROWS <= count:
                    _tile_8x3(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero,
                              ahead if r == 0 else 0, following, r // WIDE_ROWS)
                    r += WIDE_ROWS
                if r + ROWS <= count:
                    _tile_pair(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero,
                               ahead if r == 0 else 0, 3 * width)
                    _tile_vector(xf, wf, of, r, c + 2 * width, kept, p0, p1, depth, columns,
                                 r * columns + c + 2 * width, columns, resume, width, zero)
                    r += ROWS
                while r < count:
                    _row_triple(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero)
                    r += 1
            for c in range(triples_stop, pairs_stop, 2 * width):
                r = 0
                while r + ROWS <= count:
                    _tile_pair(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero,
                               ahead if r == 0 else 0, 2 * width)
                    r += ROWS
                while r < count:
                    _row_pair(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero)
                    r += 1
            for c in range(pairs_stop, vectors_stop, width):
                r = 0
                while r + ROWS <= count:
                    _tile_vector(xf, wf, of, r, c, kept, p0, p1, depth, columns, r * columns + c, columns, resume,
                                 width, zero)
                    r += ROWS
                while r < count:
                    _row_vector(xf, wf, of, r, c, kept, p0, p1, depth, columns, r * columns + c, resume, width, zero)
                    r += 1
            if vectors_stop < stop:
                r = 0
                while r + ROWS <= count:
                    _tile_vector(xf, wf, sums, r, stop - width, kept, p0, p1, depth, columns, r * width, width, resume,
                                 width, zero)
                    r += ROWS
                while r < count:
                    _row_vector(xf, wf, sums, r, stop - width, kept, p0, p1, depth, columns, r * width, resume, width,
                                zero)
                    r += 1
            k0 = k1
        for r in range(count if vectors_stop < stop else 0):
            for c in range(vectors_stop, stop):
                of[r * columns + c] = sums[r * width + c - stop + width]
    return tiles


if compiled.available():
    @compiled.kernel
    def _nonzero_columns(a, nonzero):
        """The indices of the columns of `a` with an entry != 0 (`nonzero`: a False per column, to fill)."""
        for r in range(a.shape[0]):
            row = a[r]
            for k in range(a.shape[1]):
                nonzero[k] |= row[k] != 0
        return np.flatnonzero(nonzero)

    @compiled.kernel(inline=True)
    def _prefetch(wf, at, span):
        """Asks for the cache lines of wf[at:at + span] (a strip's row, `ahead` elements on: a matrix's rows lie
        thousands of bytes apart, a stride the hardware's prefetchers do not follow, and a matrix larger than
        the last-level cache then streamed at the memory's latency, not its bandwidth: a 3136 x 1000 matrix at
        half the speed of one in cache on a 2-core AMD EPYC VM; measurements: benchmarks/README.md).  An
        address past the matrix is only a hint: it never faults."""
        for offset in range(0, span, 16):
            prefetch(wf, at + offset)
        prefetch(wf, at + span - 1)

    @compiled.kernel(inline=True)
    def _tile_pair(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero, ahead, span):
        """Rows r..r+3 by columns c..c+2*width, summed over the matrix rows kept[p0:p1] and stored in `of`, or added
        to the sums there (`resume`); with `ahead`, the strip's `span` columns of the row `ahead` elements on are
        asked for (`_prefetch`: the row `AHEAD_ROWS` on, skipped or not; asking for the kept row that far on
        instead compiled to a slower loop, as did read-only index arrays: benchmarks/README.md)."""
        at = r * columns + c
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        base = r * depth
        for q in range(p0, p1):
            k = kept[q]
            if ahead:
                _prefetch(wf, k * columns + c + ahead, span)
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
    def _tile_vector(xf, wf, out, r, c, kept, p0, p1, depth, columns, at, stride, resume, width, zero):
        """Rows r..r+3 by the vector of columns c..c+width, summed over the matrix rows kept[p0:p1] into `out` from
        `at`, a row every `stride`, or added to the sums there (`resume`): the third vector of a strip's last rows,
        and the columns past the last whole vector (the last lanes of the vector that ends at the last column)."""
        a0 = a1 = a2 = a3 = zero
        base = r * depth
        for q in range(p0, p1):
            k = kept[q]
            w0 = load(wf, k * columns + c, zero)
            a0 = fma(broadcast(xf, base + k, zero), w0, a0)
            a1 = fma(broadcast(xf, base + depth + k, zero), w0, a1)
            a2 = fma(broadcast(xf, base + 2 * depth + k, zero), w0, a2)
            a3 = fma(broadcast(xf, base + 3 * depth + k, zero), w0, a3)
        if resume:
            a0, a1 = add(load(out, at, zero), a0), add(load(out, at + stride, zero), a1)
            a2, a3 = add(load(out, at + 2 * stride, zero), a2), add(load(out, at + 3 * stride, zero), a3)
        store_first(out, at, a0, width)
        store_first(out, at + stride, a1, width)
        store_first(out, at + 2 * stride, a2, width)
        store_first(out, at + 3 * stride, a3, width)

    @compiled.kernel(inline=True)
    def _store_triple(of, at, v0, v1, v2, resume, width, zero):
        """Three vectors of sums stored at `at` in `of`, or added to the sums there (`resume`)."""
        if resume:
            v0, v1, v2 = add(load(of, at, zero), v0), add(load(of, at + width, zero), v1), \
                add(load(of, at + 2 * width, zero), v2)
        store_first(of, at, v0, width)
        store_first(of, at + width, v1, width)
        store_first(of, at + 2 * width, v2, width)

    @compiled.kernel(inline=True)
    def _tile_8x3(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero, ahead, following, part):
        """Rows r..r+7 by columns c..c+3*width, summed over the matrix rows kept[p0:p1] (`_tile_pair`'s sums and
        prefetches); with `following`, the strip's `part`-th tile (0-3) asks for the `part`-th of the 4 cache lines
        a strip's row may span, `following` elements on, into L2 (`prefetch_l2`: in L1 they would push out the
        strip in use)."""
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = zero
        b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = b8 = b9 = b10 = b11 = zero
        base = r * depth
        for q in range(p0, p1):
            k = kept[q]
            at = k * columns + c
            if ahead:
                _prefetch(wf, at + ahead, 3 * width)
            if following and part < 4:
                prefetch_l2(wf, at + following + min(16 * part, 3 * width - 1))
            w0, w1, w2 = load(wf, at, zero), load(wf, at + width, zero), load(wf, at + 2 * width, zero)
            x = broadcast(xf, base + k, zero)
            a0, a1, a2 = fma(x, w0, a0), fma(x, w1, a1), fma(x, w2, a2)
            x = broadcast(xf, base + depth + k, zero)
            a3, a4, a5 = fma(x, w0, a3), fma(x, w1, a4), fma(x, w2, a5)
            x = broadcast(xf, base + 2 * depth + k, zero)
            a6, a7, a8 = fma(x, w0, a6), fma(x, w1, a7), fma(x, w2, a8)
            x = broadcast(xf, base + 3 * depth + k, zero)
            a9, a10, a11 = fma(x, w0, a9), fma(x, w1, a10), fma(x, w2, a11)
            x = broadcast(xf, base + 4 * depth + k, zero)
            b0, b1, b2 = fma(x, w0, b0), fma(x, w1, b1), fma(x, w2, b2)
            x = broadcast(xf, base + 5 * depth + k, zero)
            b3, b4, b5 = fma(x, w0, b3), fma(x, w1, b4), fma(x, w2, b5)
            x = broadcast(xf, base + 6 * depth + k, zero)
            b6, b7, b8 = fma(x, w0, b6), fma(x, w1, b7), fma(x, w2, b8)
            x = broadcast(xf, base + 7 * depth + k, zero)
            b9, b10, b11 = fma(x, w0, b9), fma(x, w1, b10), fma(x, w2, b11)
        at = r * columns + c
        _store_triple(of, at, a0, a1, a2, resume, width, zero)
        _store_triple(of, at + columns, a3, a4, a5, resume, width, zero)
        _store_triple(of, at + 2 * columns, a6, a7, a8, resume, width, zero)
        _store_triple(of, at + 3 * columns, a9, a10, a11, resume, width, zero)
        _store_triple(of, at + 4 * columns, b0, b1, b2, resume, width, zero)
        _store_triple(of, at + 5 * columns, b3, b4, b5, resume, width, zero)
        _store_triple(of, at + 6 * columns, b6, b7, b8, resume, width, zero)
        _store_triple(of, at + 7 * columns, b9, b10, b11, resume, width, zero)

    @compiled.kernel(inline=True)
    def _row_triple(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero):
        """`_tile_8x3` for the one row r."""
        a0 = a1 = a2 = zero
        for q in range(p0, p1):
            k = kept[q]
            x = broadcast(xf, r * depth + k, zero)
            at = k * columns + c
            a0 = fma(x, load(wf, at, zero), a0)
            a1 = fma(x, load(wf, at + width, zero), a1)
            a2 = fma(x, load(wf, at + 2 * width, zero), a2)
        _store_triple(of, r * columns + c, a0, a1, a2, resume, width, zero)

    @compiled.kernel(inline=True)
    def _row_pair(xf, wf, of, r, c, kept, p0, p1, depth, columns, resume, width, zero):
        """`_tile_pair` for the one row r."""
        at = r * columns + c
        a0 = a1 = zero
        for q in range(p0, p1):
            k = kept[q]
            x0 = broadcast(xf, r * depth + k, zero)
            a0 = fma(x0, load(wf, k * columns + c, zero), a0)
            a1 = fma(x0, load(wf, k * columns + c + width, zero), a1)
        if resume:
            a0, a1 = add(load(of, at, zero), a0), add(load(of, at + width, zero), a1)
        store_first(of, at, a0, width)
        store_first(of, at + width, a1, width)

    @compiled.kernel(inline=True)
    def _row_vector(xf, wf, of, r, c, kept, p0, p1, depth, columns, at, resume, width, zero):
        """Row r by the one vector of columns from c, into `of` at `at` (`_tile_vector` for one row)."""
        a0 = zero
        for q in range(p0, p1):
            k = kept[q]
            a0 = fma(broadcast(xf, r * depth + k, zero), load(wf, k * columns + c, zero), a0)
        if resume:
            a0 = add(load(of, at, zero), a0)
        store_first(of, at, a0, width)
else:  # pragma: no cover - exercised where numba is not installed
    _tile_pair = _row_pair = _row_vector = _tile_vector = None
    _store_triple = _tile_8x3 = _row_triple = _prefetch = _nonzero_columns = None


@functools.lru_cache(maxsize=None)
def _kernel_for(width: int):
    """The kernel for vectors of `width` lanes, compiled on first use (kept per width, as pointwise_simd's)."""
    return _make_kernel(width)


if compiled.available():
    _tiles_8, _tiles_16 = _kernel_for(8), _kernel_for(16)    # module globals: the claiming kernels' disk cache

    @compiled.kernel(inline=True)
    def _claim_ranges(tiles, counter, x, w, out, ranges, block, follow, ahead, kept, bias, relu, finish):
        """`tiles` (a width's kernel) on each range claimed from `counter` until none is left, each range then
        finished (`finish`: + bias, then the ReLU where `relu`)."""
        while True:
            item = claim(counter, ranges.shape[0])
            if item >= ranges.shape[0]:
                return
            tiles(x, w, out, ranges[item, 0], ranges[item, 1], block, follow, ahead, kept)
            if finish:
                zero = np.float32(0)
                for r in range(out.shape[0]):
                    for c in range(ranges[item, 0], ranges[item, 1]):
                        out[r, c] = epilogue_value(out[r, c], bias[c], relu, zero, zero, False, False, zero)

    @compiled.kernel
    def _claimed_8(counter, x, w, out, ranges, block, follow, ahead, kept, bias, relu, finish):
        _claim_ranges(_tiles_8, counter, x, w, out, ranges, block, follow, ahead, kept, bias, relu, finish)

    @compiled.kernel
    def _claimed_16(counter, x, w, out, ranges, block, follow, ahead, kept, bias, relu, finish):
        _claim_ranges(_tiles_16, counter, x, w, out, ranges, block, follow, ahead, kept, bias, relu, finish)

    _CLAIMED = {8: _claimed_8, 16: _claimed_16}
