"""The compiled kernels load from numba's disk cache in a new process, none compiled again.

A kernel that closes over another kernel pickles differently in every process, so numba's cache
never matched it: each process compiled MobileNetV2's depthwise kernels anew (~0.3 s and ~20 MB of
its peak memory) and added one more entry to the cache.  Two fresh processes run the same small
MobileNet/ResNet-style model (inference and a training step); the second must compile nothing of
convscope's."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from convscope.ops import compiled, pointwise_simd

SCRIPT = textwrap.dedent("""
    import gc, json
    import numpy as np
    from convscope import layers as L, models
    from convscope.utils import set_random_seed

    set_random_seed(0)
    inputs = L.Input((12, 12, 3))
    x = L.Conv2D(24, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = L.ReLU(max_value=6.0)(L.BatchNormalization()(x))
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    y = L.ReLU(max_value=6.0)(L.BatchNormalization()(y))
    y = L.BatchNormalization()(L.Conv2D(24, 1, use_bias=False)(y))
    x = L.Add()([x, y])
    z = L.ReLU(max_value=6.0)(L.BatchNormalization()(L.Conv2D(32, 1, use_bias=False)(x)))
    z = L.ReLU(max_value=6.0)(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(z)))
    x = L.BatchNormalization()(L.Conv2D(32, 1, use_bias=False)(z))          # a block the compiled bands take
    x = L.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D()(x)
    outputs = L.Dense(4, activation="softmax")(L.Flatten()(x))
    model = models.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    data = np.random.default_rng(0).random((8, 12, 12, 3), dtype=np.float32)
    from convscope.ops import fused_inference, parallel
    fused_inference.SMALL_WORK = 0      # handed to the threads however small: one image shared by channels
    for batch in (1, 8):
        model.predict(data[:batch], verbose=0)
    model.train_on_batch(data, np.eye(4, dtype=np.float32)[np.arange(8) % 4])

    from numba.core.registry import CPUDispatcher
    # type(), not isinstance(): the heap may hold dead weak proxies (numba's constant inference keeps them to
    # the IR of the functions it inlined), which isinstance reads
    dispatchers = [d for d in gc.get_objects() if issubclass(type(d), CPUDispatcher)]
    misses = sorted({f"{d.py_func.__module__}.{d.__name__}" for d in dispatchers
                     if d.py_func.__module__.startswith("convscope") and sum(d.stats.cache_misses.values())})
    loaded = sum(1 for d in dispatchers if d.py_func.__module__.startswith("convscope") and d.overloads)
    simd = {d.__name__ for d in dispatchers if d.py_func.__module__ == "convscope.ops.inverted_residual_simd"
            and d.overloads}
    print(json.dumps({"misses": misses, "loaded": loaded, "bands": any(n.startswith("_bands") for n in simd),
                      "groups": any(n.startswith("_groups") for n in simd), "workers": parallel.worker_count()}))
""")


def _run(env):
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not compiled.active(), reason="needs numba (the compiled path)")
def test_a_second_process_compiles_no_kernel_again():
    env = dict(os.environ, CONVSCOPE_COMPILED="1")      # numba's own cache folder, as a user's
    _run(env)                             # compiles what the cache lacks (a fresh checkout: everything)
    second = _run(env)
    assert second["loaded"] >= 5          # the model did run compiled kernels (depthwise, epilogue, ...)
    assert second["bands"] == (pointwise_simd.VECTOR_BITS >= 256)     # inverted_residual_simd's kernels too
    assert second["groups"] == (pointwise_simd.VECTOR_BITS >= 256 and second["workers"] > 1)
    assert second["misses"] == [], f"compiled again in a new process: {second['misses']}"


RUNTIME_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    from convscope import layers as L, models
    from convscope.ops import compiled

    def rss():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

    model = models.Sequential([L.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                               L.Flatten(), L.Dense(3)])
    before = rss()
    loaded = compiled.load_runtime()
    after_load = rss()
    model.predict(np.ones((2, 8, 8, 3), np.float32), verbose=0)
    print(json.dumps({"loaded": loaded, "load_mb": after_load - before, "first_kernel_mb": rss() - after_load}))
""")


@pytest.mark.skipif(not compiled.active() or not os.path.exists("/proc/self/status"),
                    reason="needs numba and Linux's /proc")
def test_load_runtime_pays_numba_s_start_up_before_the_first_kernel():
    """With the kernels in numba's disk cache (the first run fills it where this test runs first: compiling
    a kernel takes memory of its own), a process's first kernel after `load_runtime` costs little memory."""
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", RUNTIME_SCRIPT], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] is True
    assert result["load_mb"] > 20                         # LLVM: tens of MB
    assert result["first_kernel_mb"] < result["load_mb"] / 2, result


def test_load_runtime_without_numba_says_so(monkeypatch):
    monkeypatch.setattr(compiled, "numba", None)
    assert compiled.load_runtime() is False
