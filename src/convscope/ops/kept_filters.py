"""A form of an inference op's filters made from them (the direct kernel's filters padded to its tiles), kept
from one call to the next while the filters are bitwise the same.

A plan's stage runs its op with the same weights call after call, and making the form anew took a sizeable share
of a small convolution's time at batch 1 (seed 001's layers: the padded copy written again while the last one's
lines sat in the other core's cache; measurements: benchmarks/README.md, 'Measurements behind the code's choices').
Nothing tracks writes to the weights (a `Variable.value` is a writable array; a training step and `set_weights`
write in place), so each call compares the filters with the copy kept of them, in compiled code, and makes the
form anew where any bit differs: reading them costs less than writing the form.  A new form replaces the kept
one whole, never written into, so threads calling the same op each read one consistent with the filters they
compared.  Training's ops make their forms per call (their weights change at every step), and so does the 3x3
Winograd's filter transform: kept, it ran slower in ResNet50 at batch 1, whose weights come from memory at each call
(the comparison reads the filters and their copy, the transform only the filters, and its output is then in cache).
The 2x2 Winograd's (`winograd_pool`) is kept, as the direct kernel's padded copy is: on seed 000's 2x2 32 -> 64
filters at batch 1 the comparison costs less than the transform (measurements: benchmarks/README.md, 'Measurements
behind the code's choices').
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from . import compiled

__all__ = ["KeptFilters", "kept_or_made"]

_BLOCK = 4096       # elements compared between checks for a difference (an early end on changed filters)


class KeptFilters:
    """One op's kept form of its filters: `get(filters, kind, make)`."""

    __slots__ = ("_kept",)

    def __init__(self):
        self._kept: Optional[tuple] = None       # (kind, copy of the filters, form)

    def get(self, filters: np.ndarray, kind: str, make: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """`make(filters)` (a form named `kind`), the kept one while the filters have the bits it was made from."""
        kept = self._kept
        if kept is not None and kept[0] == kind and same_bits(filters, kept[1]):
            return kept[2]
        copy = np.array(filters, copy=True)     # the form is made from the copy: a write racing with this call
        form = make(copy)                       # cannot leave a form that disagrees with the bits kept
        self._kept = (kind, copy, form)
        return form


def kept_or_made(kept: Optional[KeptFilters], filters: np.ndarray, kind: str,
                 make: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`kept.get(filters, kind, make)`, or `make(filters)` where there is no `KeptFilters` (a call of its own)."""
    return make(filters) if kept is None else kept.get(filters, kind, make)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """True where `a` and `b` have the same shape, dtype and bits (NaNs and signed zeros compared as bits)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not compiled.active() or a.dtype.itemsize not in (4, 8):
        return a.tobytes() == b.tobytes()
    view = np.uint32 if a.dtype.itemsize == 4 else np.uint64
    return bool(_same_bits(np.ascontiguousarray(a).reshape(-1).view(view),
                           np.ascontiguousarray(b).reshape(-1).view(view)))


@compiled.kernel
def _same_bits(a, b):
    """True where a[i] == b[i] for every i (unsigned integer views), in blocks of `_BLOCK` (a loop of a fixed
    count, which the compiler vectorizes: with the block's end computed per block it ran 8x slower)."""
    whole = a.size // _BLOCK * _BLOCK
    for start in range(0, whole, _BLOCK):
        differ = 0
        for i in range(_BLOCK):
            differ |= a[start + i] ^ b[start + i]
        if differ != 0:
            return False
    differ = 0
    for i in range(whole, a.size):
        differ |= a[i] ^ b[i]
    return differ == 0
