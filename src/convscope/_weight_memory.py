"""Weights on 2 MiB pages (Linux' transparent huge pages), so a model's weights take few TLB entries.

MobileNetV2's 14 MB of weights lie on ~3,500 pages of 4 KiB, more than the second-level TLB holds
(2,048 entries on Zen 3), and each block reads its own: an inference at batch 1 walked the page
tables again and again; placed on 2 MiB pages the same predict ran faster (measurements: benchmarks/README.md,
'Measurements behind the code's choices').  `weight_array` gives an array of at least `MIN_BYTES` its memory
from an anonymous mapping advised `MADV_HUGEPAGE` (Linux' "madvise" mode gives huge pages to such ranges
only): arrays up to `SHARED_MAX_BYTES` share 2 MiB-aligned blocks of `BLOCK_BYTES`, taken in order (a block
is unmapped when none of its arrays is left and the next block is taken), larger ones get a mapping of their
own from a 2 MiB boundary, advised over the whole huge pages they fill (their last, partial one stays on
4 KiB pages: no page is resident beyond the array).  Smaller arrays, other systems, transparent huge pages
off ("never"), or `CONVSCOPE_HUGE_PAGES=0` set before importing convscope: a plain `np.empty`.  The arrays
are ordinary writable NumPy arrays; only where their memory lies differs.  `Layer.add_weight` and the
loaders allocate weights here; nothing else does (activations come and go with each call).
"""

from __future__ import annotations

import math
import mmap
import os
import sys
import threading
from typing import Optional

import numpy as np

MIN_BYTES = 4 << 10            # smaller arrays (biases, batch-norm vectors) stay where NumPy puts them
SHARED_MAX_BYTES = 4 << 20     # arrays up to this share blocks; larger ones get their own mapping
BLOCK_BYTES = 16 << 20         # a shared block: eight huge pages (resident only where arrays were written)
HUGE_PAGE = 2 << 20
_ALIGN = 64                    # each array starts on a cache line

_lock = threading.Lock()       # guards _block: threads building layers at once take distinct ranges
_block = {"memory": None, "used": 0, "end": 0}


def _enabled() -> bool:
    if os.environ.get("CONVSCOPE_HUGE_PAGES", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as setting:
            return "[never]" not in setting.read()
    except OSError:
        return False


ENABLED = _enabled()


def weight_array(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape` and `dtype`, on huge pages where it is large enough
    (see the module's docstring), else `np.empty`'s."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if not _on_huge_pages(nbytes):
        return np.empty(shape, dtype)
    if nbytes > SHARED_MAX_BYTES:
        memory, start = _aligned_mapping(nbytes, nbytes // HUGE_PAGE * HUGE_PAGE)
    else:
        memory, start = _shared_range(nbytes)
    return np.frombuffer(memory, dtype=np.uint8, count=nbytes, offset=start).view(dtype).reshape(shape)


def holding(array: np.ndarray) -> np.ndarray:
    """`array`'s values in a `weight_array` (the array itself, C-contiguous, where it stays on NumPy's pages);
    a scalar stays a scalar (`np.ascontiguousarray` would make it (1,): Keras' `add_weight(shape=())` is ())."""
    array = array if array.flags.c_contiguous else array.copy(order="C")
    if not _on_huge_pages(array.nbytes):
        return array
    target = weight_array(array.shape, array.dtype)
    target[...] = array
    return target


def _on_huge_pages(nbytes: int) -> bool:
    return ENABLED and nbytes >= MIN_BYTES


def _aligned_mapping(nbytes: int, advised: int):
    """(an anonymous mapping, the offset of its first 2 MiB boundary) with at least `nbytes` from that
    boundary on, the first `advised` bytes from it advised MADV_HUGEPAGE."""
    size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE + HUGE_PAGE
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    start = (-np.frombuffer(memory, dtype=np.uint8, count=1).ctypes.data) % HUGE_PAGE
    memory.madvise(mmap.MADV_HUGEPAGE, start, advised)
    return memory, start


def _shared_range(nbytes: int):
    """(the current shared block, the offset of `nbytes` just taken from it), a new block when it is full."""
    with _lock:
        memory: Optional[mmap.mmap] = _block["memory"]
        start = -(-_block["used"] // _ALIGN) * _ALIGN
        if start + nbytes > _block["end"]:          # none yet, or full
            memory, start = _aligned_mapping(BLOCK_BYTES, BLOCK_BYTES)
            _block.update(memory=memory, end=start + BLOCK_BYTES)
        _block["used"] = start + nbytes
        return memory, start
