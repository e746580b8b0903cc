"""The SIMD intrinsics' partial store and load (`simd.store_first`, `simd.load_first`) against NumPy: the masked
store (AVX-512) and the lane-by-lane one (AVX2) write the first `count` lanes and nothing past them; the masked
load reads the first `count` lanes, zeros in the others, and not the memory past them (it ends at a page no
access is allowed to).  Each runs in a child process compiled for its features (numba types an intrinsic once
per process)."""

import os
import subprocess
import sys
import textwrap

import pytest

from convscope.ops import compiled

pytestmark = pytest.mark.skipif(not compiled.available(), reason="the intrinsics are compiled")

SCRIPT = textwrap.dedent("""
    import ctypes, mmap, numba, numpy as np
    from convscope.ops.simd import load, load_first, store_first, vector_bits, zeros

    def storer(lanes):
        @numba.njit
        def store(values, out, at, count):
            store_first(out, at, load(values, 0, zeros(lanes)), count)
        return store

    for lanes in (8, 16, 32):
        store = storer(lanes)
        values = np.arange(1, lanes + 1, dtype=np.float32) * 3
        for dtype in (np.float32, np.uint8):
            for count in range(lanes + 1):
                out = np.full(lanes + 7, 250, dtype=dtype)
                store(values, out, 3, count)
                expected = np.full(lanes + 7, 250, dtype=dtype)
                expected[3:3 + count] = values[:count].astype(dtype)
                assert np.array_equal(out, expected), (lanes, dtype, count, out)

    def loader(lanes):
        @numba.njit
        def load_into(values, at, count, out):
            store_first(out, 0, load_first(values, at, count, lanes), lanes)
        return load_into

    page = mmap.PAGESIZE
    guarded = mmap.mmap(-1, 2 * page)           # a page of values, then one that faults on any access
    start = ctypes.addressof(ctypes.c_char.from_buffer(guarded))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(start + page, page, 0) == 0, ctypes.get_errno()
    values = np.frombuffer(guarded, dtype=np.float32, count=page // 4)
    values[:] = np.arange(1, page // 4 + 1, dtype=np.float32)
    for lanes in (8, 16, 32):
        load_into = loader(lanes)
        for count in range(lanes + 1):
            out = np.full(lanes, 250, dtype=np.float32)
            load_into(values, values.size - count, count, out)     # the last `count` values of the page
            expected = np.zeros(lanes, dtype=np.float32)
            expected[:count] = values[values.size - count:]
            assert np.array_equal(out, expected), (lanes, count, out)
    del values
    print(vector_bits(), "ok")
""")

AVX2 = "+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+lzcnt,+movbe"


@pytest.mark.parametrize("features", ["host", "avx2"])
def test_store_first_and_load_first_touch_the_first_count_lanes_only(features, tmp_path):
    """On this CPU's features (the masked store where it has AVX-512) and on AVX2's (lane by lane)."""
    from convscope.ops.simd import vector_bits
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    if features == "avx2":
        env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=AVX2)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [str(vector_bits() if features == "host" else 256), "ok"]


@pytest.mark.parametrize("level", ["prefetch", "prefetch_l2"])
def test_prefetch_is_a_hint_that_changes_no_value_and_never_faults(level):
    """`simd.prefetch` (and `prefetch_l2`, into L2) compiles and leaves the sums alone, at addresses inside the
    array and far past its end (a strip's row `AHEAD_ROWS` on, beyond the matrix's last row: x86 never faults
    on a prefetch)."""
    import numba
    import numpy as np

    from convscope.ops import simd
    prefetch = getattr(simd, level)

    @numba.njit
    def summed(values, ahead):
        total = np.float32(0)
        for i in range(values.size):
            prefetch(values, i + ahead)
            total += values[i]
        return total

    values = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    plain = summed(values, 0)
    for ahead in (16, 4096, 1 << 20, 1 << 28):
        assert summed(values, ahead) == plain
    assert np.isclose(plain, values.sum(dtype=np.float64), rtol=1e-4)
