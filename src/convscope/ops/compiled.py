"""Compiled kernels (numba) for the passes BLAS cannot do; NumPy stays the reference and the fallback.

An op asks `compiled.active()` and, when it is true, calls its `@compiled.kernel`
functions instead of its NumPy code.  Kernels are compiled on first use (and cached
on disk), release the GIL, and run single-threaded: the ops share their blocks of
work among threads with `parallel.run_in_parallel`, as they do for BLAS, so numba's
own thread pool is never started.

The compiled path is on when numba imports and the environment variable
`CONVSCOPE_COMPILED` is not `0`; `use_compiled(False)` switches it off (the tests run
the oracle comparisons on both paths).  The switch is per thread (and per asyncio task):
a `use_compiled` block in one thread leaves the path of another thread's ops alone, and
the blocks of work `parallel.run_in_parallel` hands to its pool threads follow the
caller's switch.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None

__all__ = ["available", "active", "use_compiled", "kernel", "address", "load_runtime"]

# The default of every thread (numba installed and CONVSCOPE_COMPILED not 0), which `use_compiled`
# overrides in the calling thread's context only.
_ON = contextvars.ContextVar("convscope_compiled",
                             default=numba is not None and os.environ.get("CONVSCOPE_COMPILED", "1") != "0")


def available() -> bool:
    """True when numba is installed, whatever `use_compiled` says."""
    return numba is not None


def active() -> bool:
    """True when the ops should call their compiled kernels (in this thread or asyncio task)."""
    return _ON.get()


@contextlib.contextmanager
def use_compiled(flag: bool):
    """Within this block the ops use their compiled kernels (`True`, needs numba) or NumPy only (`False`),
    in the calling thread (or asyncio task) and the ops' pool threads working for it; other threads
    keep their own setting."""
    if not isinstance(flag, bool):
        raise TypeError(f"use_compiled: argument `flag` must be a bool, got {flag!r}")
    if flag and numba is None:
        raise ValueError("use_compiled: argument `flag` is True but numba is not installed "
                         "(pip install numba)")
    previous = _ON.get()
    _ON.set(flag)
    try:
        yield
    finally:
        _ON.set(previous)


def kernel(function=None, *, fastmath: bool = False, inline: bool = False):
    """Decorator: `function` compiled by numba (no GIL, cached on disk), or left as is without numba.

    `fastmath=True` lets the compiler reorder float additions (vectorized sums); use it only
    where the result may differ in the last bits from NumPy's order.  `inline=True` copies a
    small helper into the kernels that call it (a call in an inner loop kept one epilogue
    kernel from vectorizing as well, and slower; measurements: benchmarks/README.md, 'Measurements
    behind the code's choices').
    """
    def decorate(fn):
        if numba is None:
            return fn
        return numba.njit(nogil=True, cache=True, fastmath=fastmath, error_model="numpy",
                          inline="always" if inline else "never")(fn)
    return decorate(function) if function is not None else decorate


def address(array) -> int:
    """The address of a NumPy array's first element: read by a compiled call where numba is installed
    (NumPy's `array.ctypes.data` builds a ctypes helper object first, at every read; the ops read it to
    align their buffers at every call), else through `ctypes`."""
    return _address(array) if _address is not None else array.ctypes.data


def _make_address():
    if numba is None:
        return None

    @numba.njit(nogil=True, cache=True)
    def read(array):
        return array.ctypes.data
    return read


_address = _make_address()


@functools.lru_cache(maxsize=None)
def float32_lanes() -> int:
    """float32s per SIMD vector numba compiles for (8 with AVX2, 16 with AVX-512), the lanes of the SIMD
    kernels; 0 without numba or on narrower SIMD (no SIMD path).  Asked once: numba's target features take
    milliseconds to read."""
    if numba is None:
        return 0
    from .simd import vector_bits
    bits = vector_bits()
    return bits // 32 if bits >= 256 else 0


def load_runtime() -> bool:
    """Load numba's compiler runtime (LLVM, ~40 MB) now instead of at the first compiled kernel.

    A server that wants its start-up memory and time paid before the first request, or a
    benchmark that counts a framework's libraries in its baseline (PyTorch's load at import),
    calls it once.  Returns True when the runtime is loaded, False without numba.
    """
    if numba is None:
        return False
    _identity(0)
    return True


@kernel
def _identity(value):
    return value
