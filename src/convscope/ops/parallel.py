"""Independent blocks of work on as many threads as BLAS has, with BLAS single-threaded meanwhile.

The ops' block products are small and skinny: OpenBLAS splitting each of them over
2 threads ran 5-30x slower than 1 thread on a busy 2-core machine (threads wait for
each other at every call).  Independent blocks on the same number of threads keep
both cores busy with no waiting, and parallelise the copies around the products too
(NumPy releases the GIL in both).  Without threadpoolctl, or with one BLAS thread,
the blocks run in order.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Tuple

_state: Dict[str, Any] = {"blas": None, "pools": {}}
_WORKER_PREFIX = "convscope-ops"


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
        pool = _state["pools"][workers] = ThreadPoolExecutor(workers, thread_name_prefix=_WORKER_PREFIX)
    return pool


def worker_count() -> int:
    """The number of threads `run_in_parallel` uses: BLAS' thread count (1 without threadpoolctl)."""
    blas = _blas()
    return max((info["num_threads"] for info in blas.info()), default=1) if blas else 1


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


def run_in_parallel(items: list, work: Callable[[list], Any]) -> List[Any]:
    """`work` on contiguous chunks of `items`, one chunk per BLAS thread; the chunks' results in order."""
    blas = _blas()
    workers = min(len(items), worker_count())
    if workers <= 1 or threading.current_thread().name.startswith(_WORKER_PREFIX):
        return [work(items)]               # nested calls run in their worker: no pool deadlock
    bounds = [len(items) * k // workers for k in range(workers + 1)]
    chunks = [items[bounds[k]:bounds[k + 1]] for k in range(workers)]
    with blas.limit(limits=1):
        return list(_pool(workers).map(work, chunks))
