"""Weights on memory advised for transparent huge pages (`convscope._weight_memory`): where they lie, that
their values are what they would be anyway, that threads building layers at once get separate memory, and
that a mapping goes when its arrays do."""

import gc
import mmap
import os
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest

import convscope as cs
from convscope import _weight_memory as wm
from convscope import layers as L

LINUX_MADVISE = sys.platform.startswith("linux") and hasattr(mmap, "MADV_HUGEPAGE")
needs_madvise = pytest.mark.skipif(not LINUX_MADVISE, reason="needs Linux' madvise(MADV_HUGEPAGE)")


def _vm_flags(address: int) -> list:
    """The VmFlags of the mapping of this process that holds `address` (/proc/self/smaps)."""
    flags, inside = None, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start, stop = (int(part, 16) for part in head.split("-"))
                inside = start <= address < stop
            elif inside and head == "VmFlags:":
                flags = line.split()[1:]
                break
    assert flags is not None, f"no mapping holds {address:#x}"
    return flags


def _mapping(array):
    """The object that owns `array`'s memory: the mmap under NumPy's views and the buffer's memoryview."""
    while isinstance(array, np.ndarray):
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


@pytest.fixture
def huge(monkeypatch):
    monkeypatch.setattr(wm, "ENABLED", True)


@needs_madvise
def test_a_layer_s_large_weights_lie_on_memory_advised_for_huge_pages_its_small_ones_on_numpy_s(huge):
    layer = L.Conv2D(64, 3)
    layer.build((None, 8, 8, 64))                       # kernel 147 KB, bias 256 bytes
    assert isinstance(_mapping(layer.kernel.value), mmap.mmap)
    assert "hg" in _vm_flags(layer.kernel.value.ctypes.data)
    assert layer.kernel.value.flags.c_contiguous and layer.kernel.value.flags.writeable
    assert layer.bias.value.base is None                # np.empty's own
    dense = L.Dense(1100)
    dense.build((None, 1000))                           # 4.4 MB: a mapping of its own, from a 2 MiB boundary
    kernel = dense.kernel.value
    assert kernel.ctypes.data % wm.HUGE_PAGE == 0
    assert "hg" in _vm_flags(kernel.ctypes.data)        # its two whole huge pages advised,
    assert "hg" not in _vm_flags(kernel.ctypes.data + kernel.nbytes - 1)    # its last 0.4 MB not


@needs_madvise
def test_weights_hold_the_same_values_and_give_the_same_outputs_on_either_memory(monkeypatch):
    def model():
        cs.utils.set_random_seed(3)
        built = cs.Sequential([L.Input((12, 12, 8)), L.Conv2D(48, 3, activation="relu"), L.Flatten(),
                               L.Dense(40), L.Dense(5, activation="softmax")])
        return built
    monkeypatch.setattr(wm, "ENABLED", True)
    on = model()
    monkeypatch.setattr(wm, "ENABLED", False)
    off = model()
    assert sum(v.value.base is not None for v in on.weights) >= 2
    assert all(v.value.base is None for v in off.weights)
    for a, b in zip(on.get_weights(), off.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((3, 12, 12, 8), dtype=np.float32)
    np.testing.assert_array_equal(on.predict(x, verbose=0), off.predict(x, verbose=0))


@needs_madvise
def test_threads_taking_weight_arrays_at_once_get_separate_memory(huge):
    """Eight threads each take arrays of many sizes (shared blocks and own mappings) and fill them with
    their own numbers; none may overlap another (the shared block's offset is taken under a lock)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)              # threads switch between any two bytecodes
    arrays = [[] for _ in range(8)]

    def take(index):
        rng = np.random.default_rng(index)
        for count in range(60):
            size = int(rng.integers(wm.MIN_BYTES // 4, wm.SHARED_MAX_BYTES // 4 + 4000))
            array = wm.weight_array((size,), np.float32)
            array[...] = index * 1000 + count
            arrays[index].append(array)
    try:
        threads = [threading.Thread(target=take, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    for index, taken in enumerate(arrays):
        assert len(taken) == 60
        for count, array in enumerate(taken):
            assert (array == index * 1000 + count).all(), (index, count)


@needs_madvise
def test_a_mapping_is_released_once_none_of_its_arrays_is_left(huge, monkeypatch):
    monkeypatch.setattr(wm, "_block", {"memory": None, "used": 0, "end": 0})     # no earlier test's arrays in it
    own = wm.weight_array((wm.SHARED_MAX_BYTES // 4 + 1,), np.float32)
    shared = [wm.weight_array((wm.MIN_BYTES,), np.float32) for _ in range(3)]
    mappings = [weakref.ref(_mapping(own)), weakref.ref(_mapping(shared[0]))]
    filler = [wm.weight_array((wm.SHARED_MAX_BYTES // 4,), np.float32) for _ in range(6)]   # past the block
    assert mappings[0]() is not None and mappings[1]() is not None
    del own, shared, filler
    gc.collect()
    assert mappings[0]() is None                        # its own mapping: gone with the array
    assert mappings[1]() is None                        # the first block: gone once the next was taken


def test_small_arrays_and_switched_off_memory_are_numpy_s(monkeypatch):
    monkeypatch.setattr(wm, "ENABLED", True)
    small = wm.weight_array((wm.MIN_BYTES // 4 - 1,), np.float32)
    assert small.base is None and small.shape == (wm.MIN_BYTES // 4 - 1,)
    monkeypatch.setattr(wm, "ENABLED", False)
    large = wm.weight_array((3, 1 << 20), np.float32)
    assert large.base is None and large.shape == (3, 1 << 20) and large.dtype == np.float32
    values = np.arange(12.0).reshape(3, 4)
    kept = wm.holding(values)
    np.testing.assert_array_equal(kept, values)


def test_the_environment_switch_turns_huge_pages_off_before_import():
    code = "from convscope import _weight_memory as wm; print(wm.ENABLED)"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, CONVSCOPE_HUGE_PAGES="0"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


@needs_madvise
@pytest.mark.parametrize("suffix", [".keras", ".convscope"])
def test_a_loaded_file_s_weights_lie_on_memory_advised_for_huge_pages(huge, tmp_path, suffix):
    cs.utils.set_random_seed(1)
    model = cs.Sequential([L.Input((6, 6, 4)), L.Conv2D(96, 3), L.Flatten(), L.Dense(300)])
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = cs.models.load_model(path)
    for saved, variable in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(saved.value, variable.value)
    kernel = loaded.layers[-1].kernel.value
    assert isinstance(_mapping(kernel), mmap.mmap)      # read straight into the allocator's memory
    assert "hg" in _vm_flags(kernel.ctypes.data)
    assert kernel.flags.writeable and kernel.flags.c_contiguous
