"""Work items claimed one at a time from a shared counter, inside compiled kernels (numba; imported
only where numba is).

`parallel.run_claimed` starts the same kernel call on every thread with one shared counter; each
call takes the next item with `claim(counter, count)` until none is left.  A thread that runs faster
takes more items, so the work ends when the last item does, not when the slower thread's fixed
half does: cores are not equally fast under a hypervisor's neighbours, or on a CPU with
performance and efficiency cores (measured on a 2-core VM: one vCPU at ~0.6x the other's speed for
stretches; benchmarks/README.md, 'Measurements behind the code's choices').  Claiming in compiled
code costs one atomic add per item and no GIL hand-over (items handed out from Python cost one each).

The items' results must not depend on which thread computes them (each writes its own part of the
output), so the output has the same bits however the items fall.  An item that needs others' results first
(a later step of the same image) waits for their count: each finished one `mark_done`, the reader
`wait_for` (release and acquire order: what they wrote is visible once counted).  It only waits for items
claimed before it, which threads are running, so it never waits forever.

The helpers here are inlined into kernels of other modules, which numba caches on disk checking only their
own file: after a change here, remove those modules' cached kernels (`__pycache__/*.nbi`, `*.nbc`).
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

from . import compiled
from .spin_pool import _add_one, _add_release, _load_acquire, _relax

__all__ = ["claim", "claim_band", "claim_rows", "mark_done", "wait_for"]


@compiled.kernel(inline=True)
def claim(counter, count):
    """The next unclaimed item of `count`, or a number >= count once none is left: counter[0], incremented
    atomically (an int64 array shared by the threads).  Monotonic order suffices: the items' outputs are
    published by the pool's hand-back, not by the counter.

    The calling thread of `parallel.run_claimed` holds the gate's longer counter (`SpinningPool.counter`):
    there the claim that finds none left first waits, up to counter[3] spin rounds, until counter[1] (the pool
    jobs that ended, each after its thread let the GIL go) reaches counter[2] (the jobs the gate was taken for),
    so that its kernel returns to the GIL after them, not while one of them holds it."""
    item = _take(counter)
    if item >= count and counter.shape[0] >= 4:
        ended = counter[1:2]
        for _ in range(counter[3]):
            if _load_acquire(ended) >= counter[2]:
                break
            _relax()
    return item


@compiled.kernel(inline=True)
def claim_band(counter, images, bands, rows):
    """`claim` of one of `images` x `bands` items, item i band i % `bands` of image i // `bands`'s `rows` rows:
    (image, first row, end row), the image -1 once none is left."""
    item = claim(counter, images * bands)
    if item >= images * bands:
        return -1, 0, 0
    band = item % bands
    return item // bands, band * rows // bands, (band + 1) * rows // bands


@compiled.kernel(inline=True)
def claim_rows(counter, bounds):
    """`claim` of one of the blocks of rows bounds[k]..bounds[k + 1]: (block, first row, end row), the block -1
    once none is left."""
    item = claim(counter, bounds.shape[0] - 1)
    if item >= bounds.shape[0] - 1:
        return -1, 0, 0
    return item, bounds[item], bounds[item + 1]


@intrinsic
def _take(typingctx, counter):
    """counter[0], incremented atomically with monotonic order."""
    _check(counter, "claim")
    return types.int64(counter), _add_one("monotonic")


mark_done = _add_release     # counter[0] += 1 with release order: what was written before is visible to `wait_for`


def _check(counter, name: str) -> None:
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        raise TypeError(f"claims.{name}: expected an int64 array, got {counter}")


@compiled.kernel(inline=True)
def wait_for(counter, count):
    """Spin (the CPU's pause hint between reads) until counter[0] >= count, read with acquire order."""
    while _load_acquire(counter) < count:
        _relax()
