"""Keep freed memory in the heap for the next training step instead of giving it back (glibc only).

A training step allocates and frees the same large arrays every step (layer outputs,
gradients, padded inputs).  glibc gives freed memory above its trim threshold back to
the system, so the next step's arrays get fresh pages that the kernel zeroes again on
first touch: on seed 001's model (batch 128) the page faults and their system time were a
noticeable share of each step (measurements: benchmarks/README.md, 'Measurements behind the code's choices').
Raising the trim threshold to 1 GiB and fixing the mmap threshold at its maximum (32 MiB)
keeps that memory for reuse.  Arrays larger than 32 MiB (a batch of 32 images' early layer outputs:
MobileNetV2's first convolution 51 MB, ResNet50's 103 MB) would still be mapped afresh on every call
and faulted in again, as transparent huge pages where NumPy asks for them, at times slowly: so mmap is
not used at all (`M_MMAP_MAX` 0) and they come from the heap too.  Freed memory then stays in the
process for the next call, as a framework's arena keeps it, and the heap gives back its free top above
the trim threshold.  Set the environment variable `CONVSCOPE_MALLOC_TUNING=0` before importing
convscope to leave malloc as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 1 << 30
MMAP_THRESHOLD_BYTES = 32 << 20   # glibc's largest allowed value on 64-bit systems


def tune_allocator() -> bool:
    """Apply the thresholds; True if glibc accepted them (False elsewhere or when switched off)."""
    if os.environ.get("CONVSCOPE_MALLOC_TUNING", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and libc.mallopt(M_MMAP_MAX, 0))
