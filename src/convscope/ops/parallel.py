"""Independent blocks of work on as many threads as BLAS has, with BLAS single-threaded meanwhile.

The ops' block products are small and skinny: OpenBLAS splitting each of them over
2 threads ran 5-30x slower than 1 thread on a busy 2-core machine (threads wait for
each other at every call).  Independent blocks on the same number of threads keep
both cores busy with no waiting, and parallelise the copies around the products too
(NumPy releases the GIL in both).  Without threadpoolctl, or with one BLAS thread,
the blocks run in order.

Every product of the ops runs this way, large ones too (`matmul` splits them): after
a call on its own threads OpenBLAS keeps them spinning for a while, and they take the
cores from the next op's threads (measured: seed 001's inference 1.7x slower).  The
one exception is a product of a few rows by a large matrix (a Dense layer on one
sample), which only streams the matrix from memory.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

_state: Dict[str, Any] = {"blas": None, "pools": {}}
_region = threading.local()          # .inside: this thread is running a chunk of `run_in_parallel`
SMALL_PRODUCT = 1 << 25              # multiply-adds under which `matmul` stays on the calling thread: handing
                                     # work to a pool thread costs ~100 us on this VM (a sleeping vCPU's wake-up);
                                     # measured, two threads win from ~30M (seed 000's batch-1 Dense: 0.66 ->
                                     # 0.35 ms; seed 001's 128x400x512 Dense: 0.45 -> 0.34 ms)
STREAMED_BYTES = 4 << 20             # except a small product by a matrix this large: a few rows (under
                                     # 2^25 / its size) that only stream the matrix, which BLAS' own threads
                                     # read at twice one core's bandwidth (seed 000's Dense, 12.5 MB, at
                                     # batch 1: 445 -> 265 us, batch 8: 1011 -> 523 us; the last bits then
                                     # depend on the thread count)


def _blas():
    """threadpoolctl's controller of the BLAS thread pools (created once), or None without threadpoolctl."""
    if _state["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _state["blas"] = False
        else:
            _state["blas"] = ThreadpoolController().select(user_api="blas")
    return _state["blas"] or None


def _pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool kept for the life of the process (starting threads per call costs ~0.3 ms)."""
    pool = _state["pools"].get(workers)
    if pool is None:
        pool = _state["pools"][workers] = ThreadPoolExecutor(workers, thread_name_prefix="convscope-ops")
    return pool


def _in_region(work: Callable[[list], Any], chunk: list) -> Any:
    """`work(chunk)` marked as inside a parallel region, so that nested calls run in place."""
    _region.inside = True
    try:
        return work(chunk)
    finally:
        _region.inside = False


def worker_count() -> int:
    """The number of threads `run_in_parallel` uses: BLAS' thread count (1 without threadpoolctl)."""
    blas = _blas()
    return max((library.num_threads for library in blas.lib_controllers), default=1) if blas else 1


def balanced_ranges(count: int, max_size: int) -> List[Tuple[int, int]]:
    """(start, stop) ranges covering 0..count, each at most `max_size` long (at least 1), their number a
    multiple of the worker count and their lengths within one of each other: equal work per thread
    (41 + 41 + 41 + 5 images on 2 threads would leave one idle for a third of the time)."""
    if count <= 0:
        return []
    workers = worker_count()
    pieces = -(-count // max(1, max_size))
    pieces = min(count, -(-pieces // workers) * workers)
    return [(count * k // pieces, count * (k + 1) // pieces) for k in range(pieces)]


def run_in_parallel(items: list, work: Callable[[list], Any], calls_blas: bool = True) -> List[Any]:
    """`work` on contiguous chunks of `items`, one chunk per BLAS thread (the first on the calling
    thread, which saves one hand-over); the chunks' results in order.  `calls_blas=False` (compiled
    kernels only) spares setting BLAS single-threaded meanwhile (~5 us: a stage's kernel at batch 1
    takes 20)."""
    workers = min(len(items), worker_count())
    if getattr(_region, "inside", False):
        return [work(items)]               # nested calls run where they are: no pool deadlock
    limit = single_threaded_blas() if calls_blas else contextlib.nullcontext()
    if workers <= 1:                       # one block: still no BLAS threads left spinning after it
        with limit:
            return [work(items)]
    bounds = [len(items) * k // workers for k in range(workers + 1)]
    chunks = [items[bounds[k]:bounds[k + 1]] for k in range(workers)]
    with limit:
        others = [_pool(workers - 1).submit(_in_region, work, chunk) for chunk in chunks[1:]]
        try:
            first = _in_region(work, chunks[0])
        except BaseException:
            wait(others)                   # no chunk may still be writing when the error surfaces
            raise
        return [first] + [future.result() for future in others]


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


@contextlib.contextmanager
def single_threaded_blas():
    """A context in which BLAS runs on the calling thread only (nothing without threadpoolctl).

    Sets each BLAS library's thread count through threadpoolctl's controllers and restores
    it after: 3.6 us, where `ThreadpoolController.limit` took ~6 (it reads every library's
    whole info first), at two calls per batch-1 Dense layer."""
    blas = _blas()
    counts = [(library, library.num_threads) for library in (blas.lib_controllers if blas else [])]
    changed = [(library, count) for library, count in counts if count != 1]
    for library, _ in changed:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, count in changed:
            library.set_num_threads(count)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` (2-D) split among the threads of `run_in_parallel`: by rows of `a` when it has at least
    as many rows as `b` has columns, else by columns of `b`; small products on the calling thread,
    but a few rows times a large `b` on BLAS' own threads (see `STREAMED_BYTES`)."""
    if a.shape[0] * a.shape[1] * b.shape[1] < SMALL_PRODUCT:
        if b.nbytes >= STREAMED_BYTES:
            return a @ b                   # memory-bound: BLAS' own threads double the bandwidth
        with single_threaded_blas():
            return a @ b
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    by_rows = a.shape[0] >= b.shape[1]
    parts = balanced_ranges(a.shape[0] if by_rows else b.shape[1], max(a.shape[0], b.shape[1]) // worker_count())

    def work(ranges):
        for start, stop in ranges:
            if by_rows:
                np.matmul(a[start:stop], b, out=out[start:stop])
            else:
                np.matmul(a, b[:, start:stop], out=out[:, start:stop])

    if parts:
        run_in_parallel(parts, work)
    return out
