"""Independent blocks of work on as many threads as BLAS has, with BLAS single-threaded meanwhile.

The ops' block products are small and skinny: OpenBLAS splitting each of them over
2 threads ran many times slower than 1 thread on a busy 2-core machine (threads wait for
each other at every call; measurements: benchmarks/README.md, 'Measurements behind the code's choices').
Independent blocks on the same number of threads keep both cores busy with no waiting, and
parallelise the copies around the products too (NumPy releases the GIL in both).  Without
threadpoolctl, or with one BLAS thread, the blocks run in order.

Every product of the ops runs this way, large ones too (`matmul` splits them), and so does a
product of a few rows by a large matrix (a Dense layer on one sample), which only streams the matrix
from memory: after a call on its own threads OpenBLAS keeps them spinning a while, and
they take the cores from every op that follows (measured: a ResNet50 3x3 convolution at batch 1 ran
slower for the whole next batch-1 inference, and so did seed 001's inference; measurements:
benchmarks/README.md, 'Measurements behind the code's choices').

Threads.  BLAS' thread count is one setting for the whole process, so the threads that
call the ops share it: `single_threaded_blas` counts its users and lowers the count once,
for the first, and restores it when the last one leaves (with each thread saving and
restoring it for itself, the first out would give the others all the threads while they
still run; threadpoolctl's own setter ignores every thread but one, `_set_num_threads`).
`worker_count` gives the user's count meanwhile, not the lowered one, so that every thread
splits its work as it would alone.  The pool threads are shared by all the threads that call
the ops; each block of work runs in a copy of its caller's `contextvars` context
(`backend.no_backward`, `compiled.use_compiled` are per thread).  Do not change BLAS' thread
count (`threadpoolctl.threadpool_limits`) while other threads run convscope: it is restored to
what it was when the first of them lowered it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from . import dense_tiles, few_columns, few_rows
from .spin_pool import SpinningPool

_state: Dict[str, Any] = {"blas": None, "readers": (), "pools": {}}
_setup_lock = threading.Lock()       # creates the BLAS controller and the pools once


class _Region(threading.local):
    """Per thread: `inside`, it is running a chunk of `run_in_parallel`; `single`, it runs with BLAS
    single-threaded on its behalf (its own `single_threaded_blas`, or that of the caller whose chunk it runs).
    Class defaults: a thread that never set them reads them without a failed lookup (read several times per op)."""
    inside = False
    single = False


_region = _Region()
_blas_modes = threading.Lock()       # guards _modes
_modes: Dict[str, Any] = {
    "single": 0,                     # threads inside `single_threaded_blas` (outermost entries only)
    "saved": [],                     # [(library, count)] read when the count was lowered: the user's
    "changed": [],                   # those of them set to 1, to restore
}
SMALL_PRODUCT = 1 << 25              # multiply-adds under which `matmul` stays on the calling thread: handing
                                     # work to a pool thread costs more than a second core saves below it
STREAMED_BYTES = 4 << 20             # except a small product by a matrix this large (a few rows that only stream
                                     # it): split by columns, two cores read at twice one core's bandwidth.  A
STREAMED_COLUMNS = 512               # matrix this large is split in an even number of blocks of at most this
                                     # many columns, the same blocks on any number of threads (the same bits)
GEMV_ROWS = 4                        # but at most this many rows by a matrix of GEMV_BYTES or more run row by row:
GEMV_BYTES = 1 << 20                 # OpenBLAS' gemm packs the whole matrix for them


def _blas():
    """threadpoolctl's controller of the BLAS thread pools (created once), or None without threadpoolctl or
    a BLAS library it controls (kept as False: the controller's truth is its length, a Python call)."""
    blas = _state["blas"]
    if blas is None:
        with _setup_lock:
            if _state["blas"] is None:
                try:
                    from threadpoolctl import ThreadpoolController
                except ImportError:
                    _state["blas"] = False
                else:
                    controller = ThreadpoolController().select(user_api="blas")
                    _state["readers"] = tuple(_count_reader(library) for library in controller.lib_controllers)
                    _state["blas"] = controller if controller.lib_controllers else False
            blas = _state["blas"]
    return blas if blas is not False else None


def _count_reader(library) -> Callable[[], Any]:
    """A call giving `library`'s thread count as its `num_threads` does: for OpenBLAS the C function that
    threadpoolctl calls, looked up once (its property looks the symbol up again at every read, and the ops
    read the count several times per stage), else the controller's own `get_num_threads`."""
    reader = library.get_num_threads
    lookup = getattr(library, "_get_symbol", None)
    if getattr(library, "internal_api", None) != "openblas" or lookup is None:
        return reader
    openmp = getattr(library, "threading_layer", None) == "openmp"
    function = lookup("omp_get_max_threads" if openmp else "openblas_get_num_threads")
    return function if function is not None and function() == reader() else reader


def _pool(workers: int) -> SpinningPool:
    """A thread pool kept for the life of the process (starting threads per call is costly; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices'), shared by every thread that calls the
    ops; its threads spin a short while between jobs (`spin_pool`)."""
    pool = _state["pools"].get(workers)
    if pool is None:
        with _setup_lock:
            pool = _state["pools"].get(workers)
            if pool is None:
                pool = _state["pools"][workers] = SpinningPool(workers, "convscope-ops")
    return pool


def _forget_pools() -> None:
    """In a forked child the pools' threads do not exist: new pools are made on first use."""
    _state["pools"] = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _in_region(work: Callable[[list], Any], chunk: list, single: bool) -> Any:
    """`work(chunk)` marked as inside a parallel region, so that nested calls run in place; `single`: the
    caller holds BLAS single-threaded for it (so this thread neither lowers nor waits for the count)."""
    inside, held = _region.inside, _region.single
    _region.inside, _region.single = True, single
    try:
        return work(chunk)
    finally:
        _region.inside, _region.single = inside, held


def worker_count() -> int:
    """The number of threads `run_in_parallel` uses: BLAS' thread count (1 without threadpoolctl), or 1
    where this thread runs with BLAS single-threaded.  While other threads hold BLAS at one thread
    (`single_threaded_blas`), the count they lowered: each thread splits its work as it would alone."""
    blas = _blas()
    if not blas or _region.single:
        return 1
    with _blas_modes:
        if _modes["single"]:
            return max((count for _, count in _modes["saved"]), default=1)
        readers = _state["readers"]
        if len(readers) == 1:           # the usual case, at every op: no generator
            return readers[0]() or 1
        return max((read() or 1 for read in readers), default=1)


def balanced_ranges(count: int, max_size: int) -> List[Tuple[int, int]]:
    """(start, stop) ranges covering 0..count, each at most `max_size` long (at least 1), their number a
    multiple of the worker count and their lengths within one of each other: equal work per thread
    (41 + 41 + 41 + 5 images on 2 threads would leave one idle for a third of the time)."""
    if count <= 1:                       # one item (an image at batch 1) whatever the thread count
        return [(0, count)] if count == 1 else []
    workers = worker_count()
    pieces = -(-count // max(1, max_size))
    return even_ranges(count, min(count, -(-pieces // workers) * workers))


def even_ranges(count: int, pieces: int) -> List[Tuple[int, int]]:
    """(start, stop) ranges covering 0..count in `pieces` lengths within one of each other."""
    return [(count * k // pieces, count * (k + 1) // pieces) for k in range(pieces)]


def block_bounds(count: int, nbytes: int, block_bytes: int) -> np.ndarray:
    """The bounds (int64: 0, ..., count) of blocks of about `block_bytes` of `count` rows of `nbytes` in all, in
    lengths within one of each other, at least one row each: from the sizes alone, whatever the thread count
    (`claims.claim_rows` hands them out)."""
    blocks = max(1, min(count, nbytes // max(block_bytes, 1)))
    return np.array([count * k // blocks for k in range(blocks + 1)], dtype=np.int64)


def run_in_parallel(items: list, work: Callable[[list], Any], calls_blas: bool = True,
                    alone: bool = False, claimed: bool = False) -> List[Any]:
    """`work` on contiguous chunks of `items`, one chunk per BLAS thread (the first on the calling
    thread, which saves one hand-over); the chunks' results in order.  `calls_blas=False` (compiled
    kernels only) spares setting BLAS single-threaded meanwhile (a sizeable share of a stage's kernel time
    at batch 1; measurements: benchmarks/README.md, 'Measurements behind the code's choices').  `alone`: all
    of `items` as one chunk on the calling thread (work too small to hand out), BLAS single-threaded all
    the same.  `claimed`: each thread calls `work([item])` on the next item not yet taken until none is left
    (`_Claims`; results None), so a faster thread, or the one that started first, does more of them."""
    workers = 1 if alone or len(items) <= 1 else min(len(items), worker_count())
    if _region.inside:
        return [work(items)]               # nested calls run where they are: no pool deadlock
    limit = single_threaded_blas() if calls_blas else contextlib.nullcontext()
    if workers <= 1:                       # one block: still no BLAS threads left spinning after it
        with limit:
            return [work(items)]
    bounds = [len(items) * k // workers for k in range(workers + 1)]
    chunks = [items[bounds[k]:bounds[k + 1]] for k in range(workers)]
    if claimed:
        chunks, work = [_Claims(items)] * workers, functools.partial(_Claims.run, work=work)
    with limit:
        single = calls_blas or _region.single
        # each chunk in a copy of this thread's context: no_backward() and use_compiled() are per thread
        others = [_pool(workers - 1).submit(functools.partial(contextvars.copy_context().run, _in_region, work,
                                                              chunk, single))
                  for chunk in chunks[1:]]
        try:
            first = _in_region(work, chunks[0], single)
        finally:
            results, errors = _wait_all(others)     # no chunk may still be writing when an error surfaces
        if errors:
            raise errors[0]
        return [first] + results


class _Claims:
    """A region's items handed out one at a time, in order, to whichever thread asks next."""

    def __init__(self, items: list):
        self._items, self._next, self._lock = items, 0, threading.Lock()

    def run(self, work: Callable[[list], Any]) -> None:
        """`work([item])` on each item this thread claims, until none is left."""
        while True:
            with self._lock:
                index, self._next = self._next, self._next + 1
            if index >= len(self._items):
                return
            work(self._items[index:index + 1])


def run_claimed(count: int, work: Callable[[np.ndarray], Any], alone: bool = False) -> None:
    """`work(counter)` on every thread at once (on the calling thread alone if `alone`, or for one item), each
    `counter` an int64 array whose first element, 0, all share: each call claims items 0..count-1 from it in
    compiled code (`claims.claim`) until none is left, so a thread that runs faster takes more items
    (`run_in_parallel`'s equal chunks wait for the slower thread).  Compiled kernels only (BLAS left as it is).
    The counter is a gate of the pool's (`SpinningPool.gate`): its thread takes the GIL for its chunk once this
    thread's kernel has claimed an item, not while this thread still holds it (it would sleep); and this
    thread's kernel returns once the pool's jobs have ended (this thread's longer view of the counter:
    `SpinningPool.counter`), not while a pool thread holds the GIL."""
    workers = 1 if alone else max(1, min(count, worker_count()))
    if workers <= 1:               # as run_in_parallel's one chunk: the call itself, with no lists around it
        work(np.zeros(1, np.int64))
        return
    pool = _pool(workers - 1) if not _region.inside else None
    gate = -1 if pool is None else pool.gate(workers - 1)
    if gate < 0:
        run_in_parallel([np.zeros(1, np.int64)] * workers, lambda chunk: work(chunk[0]), calls_blas=False)
        return
    try:
        _run_gated(pool, gate, workers - 1, work)
    finally:
        pool.release(gate)


def _run_gated(pool: SpinningPool, gate: int, jobs: int, work: Callable[[np.ndarray], Any]) -> None:
    """`run_claimed`'s region on `gate`: `jobs` pool jobs, then `work` on this thread, as `run_in_parallel`'s
    chunks (each job in a copy of this thread's context) but without its lists of chunks: the Python around a
    region is paid at every claimed op, at batch 1 a sizeable share of it."""
    single = _region.single
    posted = [pool.submit(functools.partial(contextvars.copy_context().run, _in_region, work, pool.counter(gate),
                                            single), gate) for _ in range(jobs)]
    try:
        _in_region(work, pool.counter(gate, caller=True), single)
    finally:
        _, errors = _wait_all(posted)     # no job may still be writing when an error surfaces
    if errors:
        raise errors[0]


def _wait_all(jobs: list) -> Tuple[list, list]:
    """Wait for every one of `jobs`: their results (None for a failed one) and their errors, in order."""
    results, errors = [], []
    for job in jobs:
        try:
            results.append(job.wait())
        except BaseException as error:
            results.append(None)
            errors.append(error)
    return results, errors


def on_slices(count: int, size: int, work: Callable[[slice], Any], min_size: int = 1 << 20) -> List[Any]:
    """`work(s)` on one contiguous slice `s` of range(count) per thread (a compiled kernel's pass over
    rows, images or elements); the slices' results in order.  Work whose `size` (bytes, or another
    measure, as `min_size`) is under `min_size` stays on the calling thread: handing it out would cost
    about what it saves."""
    if count <= 0:
        return []
    if size < min_size:
        return [work(slice(0, count))]
    ranges = balanced_ranges(count, -(-count // worker_count()))
    return run_in_parallel(ranges, lambda chunk: work(slice(chunk[0][0], chunk[-1][1])))


def single_threaded_blas() -> "_SingleThreadedBlas":
    """A context in which BLAS runs on the calling thread only (nothing without threadpoolctl).

    Sets each BLAS library's thread count through threadpoolctl's controllers and restores
    it after (`ThreadpoolController.limit` reads every library's whole info first: slower, at
    two calls per batch-1 Dense layer).  The count is one setting of the process: the first of
    several threads inside lowers it, the last one out restores it.  A plain class, not a
    generator: ops enter it at every call, and a generator's context is slower to enter."""
    return _SingleThreadedBlas()


class _SingleThreadedBlas:
    __slots__ = ("entered",)

    def __enter__(self) -> None:
        blas = _blas()
        self.entered = bool(blas) and not _region.single   # nested: already single
        if self.entered:
            _enter_single_threaded(blas)
            _region.single = True

    def __exit__(self, *error) -> None:
        if self.entered:
            _region.single = False
            _leave_single_threaded()


def _set_num_threads(library, count: int) -> None:
    """Set one BLAS library's thread count from this thread, whichever it is.

    threadpoolctl (3.8) lets one Python thread only change OpenBLAS' process-wide count (the first to
    set it, while it lives) and silently ignores the others: predict in a second thread would run its
    blocks with BLAS on all its threads, slower and with other bits.  The users' count above
    coordinates convscope's own changes, so it calls the library's setter itself where threadpoolctl
    has one behind its guard."""
    getattr(library, "_real_set_num_threads", library.set_num_threads)(count)


def _enter_single_threaded(blas) -> None:
    with _blas_modes:
        if _modes["single"] == 0:
            saved = [(library, read()) for library, read in zip(blas.lib_controllers, _state["readers"])]
            changed = [(library, count) for library, count in saved if count != 1]
            for library, _ in changed:
                _set_num_threads(library, 1)
            _modes["saved"], _modes["changed"] = saved, changed
        _modes["single"] += 1


def _leave_single_threaded() -> None:
    with _blas_modes:
        _modes["single"] -= 1
        if _modes["single"] == 0:
            for library, count in _modes["changed"]:
                _set_num_threads(library, count)
            _modes["saved"], _modes["changed"] = [], []


def matmul(a: np.ndarray, b: np.ndarray, skip_zeros: bool = False) -> np.ndarray:
    """`a @ b` (2-D) split among the threads of `run_in_parallel`: by rows of `a` when it has at least
    as many rows as `b` has columns, else by columns of `b`; small products on the calling thread,
    but a few rows times a large `b` split by columns too (see `STREAMED_BYTES`); a large `b` split by
    columns in `column_blocks`, whatever the thread count; and up to `GEMV_ROWS` rows compiled, each row
    alone (`few_rows`, which skips the rows of `b` a row's zeros multiply, as the reference BLAS' gemv: 0 times
    an infinite weight adds nothing there; in one call, or by blocks of `b`'s rows among the threads from
    `STREAMED_BYTES`; else BLAS' matrix-vector product per row where `b` is large); up to `dense_tiles.max_rows()`
    rows by a large float32 `b` in SIMD tiles (`dense_tiles`, by columns among the threads; `skip_zeros`: not
    reading the rows of `b` only zeros of `a` multiply, `dense_tiles.kept_depth`); other C-contiguous float32
    operands, `b` of up to 32 columns (a classifier's head), compiled (`few_columns_product`).  BLAS never runs
    on its own threads."""
    if few_rows.applies(a, b):
        return few_rows.matmul(a, b) if b.nbytes < STREAMED_BYTES else _few_rows_by_depth(a, b)
    if dense_tiles.applies(a, b):
        return tiles_product(a, b, skip_zeros=skip_zeros)
    if few_columns.applies(a, b):
        return few_columns_product(a, b)
    if a.shape[0] <= GEMV_ROWS and b.nbytes >= GEMV_BYTES:
        return _row_by_row(a, b)
    small = a.shape[0] * a.shape[1] * b.shape[1] < SMALL_PRODUCT
    if small and b.nbytes < STREAMED_BYTES:
        with single_threaded_blas():
            return a @ b
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    by_rows = not small and a.shape[0] >= b.shape[1]
    if not by_rows and b.nbytes >= STREAMED_BYTES:
        parts = column_blocks(b.shape[1])
    else:
        parts = balanced_ranges(a.shape[0] if by_rows else b.shape[1], max(a.shape[0], b.shape[1]) // worker_count())

    def work(ranges):
        for start, stop in ranges:
            if by_rows:
                np.matmul(a[start:stop], b, out=out[start:stop])
            else:
                np.matmul(a, b[:, start:stop], out=out[:, start:stop])

    if parts:
        run_in_parallel(parts, work, claimed=True)
    return out


def column_blocks(columns: int) -> List[Tuple[int, int]]:
    """(start, stop) blocks of at most `STREAMED_COLUMNS` columns, of equal widths (within one) and an
    even number of them, whatever the thread count: a streamed matrix's product has the same bits on
    one thread or more (OpenBLAS' kernels give other bits for other blocks), two threads equal shares."""
    pieces = -(-columns // STREAMED_COLUMNS)
    return even_ranges(columns, min(columns, pieces + pieces % 2))


def _few_rows_by_depth(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A few rows by a matrix too large for one core's bandwidth: `few_rows_parts` added in block order (the
    same bits on any number of threads; each row's bits those of the row alone)."""
    parts = few_rows_parts(a, b)
    out = parts[0].copy()                  # its own memory: a view would keep every block's partial alive
    for part in parts[1:]:
        out += part
    return out


def few_rows_parts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The compiled partial products of a few rows by each block of `few_rows.depth_blocks(b)`, as one (blocks,
    rows, columns) array in block order (to be added in that order): the blocks claimed by the threads in
    compiled code (`run_claimed`: the pool thread starts behind the gate, not after a sleep for the GIL)."""
    a = np.ascontiguousarray(a)
    bounds = np.array(few_rows.depth_blocks(b), dtype=np.int64)
    parts = np.empty((len(bounds), a.shape[0], b.shape[1]), dtype=a.dtype)
    run_claimed(len(bounds), lambda counter: few_rows.claimed_partials(counter, a, b, parts, bounds))
    return parts


def few_columns_product(a: np.ndarray, b: np.ndarray, bias: Optional[np.ndarray] = None,
                        relu: bool = False) -> np.ndarray:
    """`few_columns.product` of operands where `few_columns.applies` into a new array (+ bias, then the ReLU with
    `relu`; `bias` a float32 vector of b's columns, as `prepare_dense_inference` checks it), split by rows among
    the threads from `SMALL_PRODUCT` multiply-adds (`few_columns.multiply_adds`): a row's bits do not depend on
    the split.  Its kernel is called directly: `product`'s checks (types, overlaps) are for arrays a caller brings,
    and measurably slowed a small product (benchmarks/README.md)."""
    if not few_columns.applies(a, b):
        raise ValueError(f"parallel.few_columns_product: arguments `a` and `b` must be operands `few_columns` takes, "
                         f"got {a.dtype} of shape {a.shape} and {b.dtype} of shape {b.shape}")
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    kernel, finish = few_columns.kernel_for(b.shape[1]), bias is not None or bool(relu)
    bias = np.zeros(b.shape[1], np.float32) if bias is None else np.ascontiguousarray(bias)
    on_slices(a.shape[0], few_columns.multiply_adds(*a.shape, b.shape[1]),
              lambda rows: kernel(a[rows], b, out[rows], bias, bool(relu), finish), min_size=SMALL_PRODUCT)
    return out


def tiles_product(a: np.ndarray, b: np.ndarray, bias: Optional[np.ndarray] = None, relu: bool = False,
                  skip_zeros: bool = False) -> np.ndarray:
    """A batch of rows by a large matrix in `dense_tiles`' tiles (`tiles_by_columns`), a small product (as
    `matmul`'s) on the calling thread; with `bias` or `relu`, + bias and the ReLU too, each thread finishing its
    columns (`dense_tiles.claimed_work`); `skip_zeros`: see `dense_tiles.kept_depth`."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    tiles_by_columns(a, b, out, alone=a.shape[0] * a.shape[1] * b.shape[1] < SMALL_PRODUCT
                     and b.nbytes < STREAMED_BYTES, skip_zeros=skip_zeros, bias=bias, relu=relu)
    return out


def tiles_by_columns(a: np.ndarray, b: np.ndarray, out: np.ndarray, alone: bool = False,
                     skip_zeros: bool = False, bias: Optional[np.ndarray] = None, relu: bool = False) -> None:
    """out = a @ b in `dense_tiles`' tiles, one range of the columns per thread (`dense_tiles.column_ranges`;
    each output summed alike in any range: the same bits on any number of threads), claimed in compiled code
    (`dense_tiles.claimed_work`: the pool thread starts without waiting for the GIL); `alone`: on the calling
    thread; `skip_zeros`: see `dense_tiles.kept_depth`; `bias`, `relu`: see `dense_tiles.claimed_work`."""
    ranges = np.array(dense_tiles.column_ranges(b.shape[1], 1 if alone else worker_count()), dtype=np.int64)
    run_claimed(len(ranges), dense_tiles.claimed_work(a, b, out, ranges, skip_zeros, bias, relu), alone=alone)


def _row_by_row(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` as one matrix-vector product (BLAS' gemv) per row of `a`, on the calling thread: each
    streams `b` once with no packing; a row's result does not depend on the other rows."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    a = np.ascontiguousarray(a)              # unit-stride rows: the same bits however `a` is laid out
    with single_threaded_blas():
        for row in range(a.shape[0]):
            np.matmul(a[row], b, out=out[row])
    return out
