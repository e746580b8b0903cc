"""Threads: concurrent predict on one model, training beside it, and the process-wide state under them.

The rules these tests hold the library to: `predict` on one model from many threads gives the bits
of a serial predict; a model trained in one thread while others predict (on another model) trains
as it would alone; `no_backward()` and `use_compiled()` are per thread; automatic names stay
unique; BLAS' thread count, one setting of the process, comes back to what it was.  Orderings are
forced with events, not left to timing; the waits' timeouts only keep a broken build from hanging.
"""

import contextlib
import threading
import time
from collections import defaultdict

import numpy as np
import pytest

from convscope import backend
from convscope.layers import Activation, Conv2D, Dense, Flatten, Input, Layer
from convscope.models import Sequential
from convscope.ops import compiled, parallel
from convscope.utils import set_random_seed

from seed_models import seed001_model, seed002_model

WAIT = 30          # seconds: an event that has not come by then never will (a hang, not a slow machine)


def _start(target, *args, name=None):
    thread = threading.Thread(target=_recording(target), args=args, name=name, daemon=True)
    thread.start()
    return thread


_ERRORS: list = []


def _recording(target):
    """`target` with any exception kept in _ERRORS (a thread's exception would otherwise only be printed)."""
    def run(*args):
        try:
            target(*args)
        except BaseException as error:          # noqa: BLE001 - raised again by _join
            _ERRORS.append(error)
    return run


def _join(*threads):
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), f"thread {thread.name} did not finish within {WAIT} s"
    errors, _ERRORS[:] = list(_ERRORS), []
    if errors:
        raise errors[0]


@pytest.fixture(autouse=True)
def _no_errors_left():
    _ERRORS.clear()
    yield
    _ERRORS.clear()


def _blas_threads():
    """The thread count of each BLAS library (through threadpoolctl), or skip without one."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    counts = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    if not counts:
        pytest.skip("no BLAS library that threadpoolctl controls")
    return counts


def _two_blas_threads():
    """BLAS on 2 threads for the block (process-wide), so that the ops' pool threads take part."""
    _blas_threads()
    import threadpoolctl
    return threadpoolctl.threadpool_limits(2, user_api="blas")


def _has_blas_control() -> bool:
    try:
        _blas_threads()
    except pytest.skip.Exception:
        return False
    return True


# -- the acceptance test: 8 threads predict on one model while another trains a second ---------------------

PREDICT_THREADS, PREDICTS_PER_THREAD = 8, 25            # 200 predicts in all
PREDICT_SHAPES = [(1, 1), (5, 2), (32, 16), (3, 32)]    # (samples, batch_size): the calling thread alone, and blocks
                                                        # of images shared with the pool threads


def _train_round(model, x, y, k):
    """Round k of the training thread: a fit epoch (shuffled: draws from the library generator) every
    fourth round, else one train_on_batch; Dropout draws its masks in both."""
    if k % 4 == 0:
        return model.fit(x, y, batch_size=8, epochs=1, shuffle=True, verbose=0).history["loss"][-1]
    start = 8 * (k % 3)
    return model.train_on_batch(x[start:start + 8], y[start:start + 8])


def _training_model():
    set_random_seed(1234)
    model = seed001_model()                      # Conv2D relu, BatchNormalization, pooling, Dropout, Dense softmax
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_predict_from_8_threads_on_one_model_while_another_thread_trains_matches_serial_runs():
    rng = np.random.default_rng(0)
    x = rng.random((32, 28, 28, 1), dtype=np.float32)
    x_train, y_train = rng.random((24, 28, 28, 1), dtype=np.float32), rng.integers(0, 25, 24)
    blas_control = _has_blas_control()                   # without threadpoolctl the ops run on one thread
    with _two_blas_threads() if blas_control else contextlib.nullcontext():
        before = _blas_threads() if blas_control else None
        served = seed001_model()
        expected = {shape: served.predict(x[:shape[0]], batch_size=shape[1], verbose=0) for shape in PREDICT_SHAPES}

        trained = _training_model()
        start, done = threading.Barrier(PREDICT_THREADS + 1), threading.Event()
        results = [[] for _ in range(PREDICT_THREADS)]
        losses = []

        def predictor(i):
            start.wait(WAIT)
            for k in range(PREDICTS_PER_THREAD):
                shape = PREDICT_SHAPES[(i + k) % len(PREDICT_SHAPES)]
                results[i].append((shape, served.predict(x[:shape[0]], batch_size=shape[1], verbose=0)))

        def trainer():
            start.wait(WAIT)
            k = 0
            while k < 4 or not done.is_set():           # trains as long as the predictors run
                losses.append(_train_round(trained, x_train, y_train, k))
                k += 1

        threads = [_start(predictor, i, name=f"predictor-{i}") for i in range(PREDICT_THREADS)]
        training = _start(trainer, name="trainer")
        _join(*threads)
        done.set()
        _join(training)
        if blas_control:
            assert _blas_threads() == before             # the count the threads lowered is back

        for i, calls in enumerate(results):
            assert len(calls) == PREDICTS_PER_THREAD
            for shape, output in calls:
                assert np.array_equal(output, expected[shape]), f"thread {i}, {shape}: not the serial result"

        alone = _training_model()                        # the same rounds, the same seed, no other thread
        serial_losses = [_train_round(alone, x_train, y_train, k) for k in range(len(losses))]
    assert serial_losses == losses
    for mine, theirs in zip(alone.get_weights(), trained.get_weights()):
        assert np.array_equal(mine, theirs)


# -- no_backward() is per thread ----------------------------------------------------------------------------

def test_no_backward_in_one_thread_leaves_another_thread_keeping_for_backward():
    inside, leave = threading.Event(), threading.Event()
    seen = {}

    def inference():
        with backend.no_backward():
            seen["inside"] = backend.keeps_for_backward()
            inside.set()
            assert leave.wait(WAIT)
        seen["after"] = backend.keeps_for_backward()

    thread = _start(inference)
    assert inside.wait(WAIT)
    try:
        here = backend.keeps_for_backward()
    finally:
        leave.set()
        _join(thread)
    assert here is True
    assert seen == {"inside": False, "after": True}


def test_overlapping_no_backward_blocks_in_two_threads_each_restore_their_own_setting():
    """A enters, B enters, A leaves, B leaves: a shared flag saved and restored by each would end False."""
    steps = {name: threading.Event() for name in ("a_in", "b_in", "a_out", "b_may_leave")}
    seen = {}

    def first():
        with backend.no_backward():
            steps["a_in"].set()
            assert steps["b_in"].wait(WAIT)
        steps["a_out"].set()

    def second():
        assert steps["a_in"].wait(WAIT)
        with backend.no_backward():
            steps["b_in"].set()
            assert steps["a_out"].wait(WAIT)
            seen["b_after_a_left"] = backend.keeps_for_backward()
            assert steps["b_may_leave"].wait(WAIT)
        seen["b_after"] = backend.keeps_for_backward()

    threads = [_start(first), _start(second)]
    assert steps["a_out"].wait(WAIT)
    steps["b_may_leave"].set()
    _join(*threads)
    assert seen == {"b_after_a_left": False, "b_after": True}
    assert backend.keeps_for_backward() is True
    later = []
    _join(_start(lambda: later.append(backend.keeps_for_backward())))
    assert later == [True]


class _Pause(Layer):
    """The identity, which stops in its call (under predict's no_backward) until released."""

    def __init__(self, entered, release, **kwargs):
        super().__init__(**kwargs)
        self._entered, self._release = entered, release

    def compute_output_shape(self, input_shape):
        return input_shape          # else building the model would run `call` to learn it (and stop there)

    def call(self, inputs, training=False):
        self._entered.set()
        assert self._release.wait(WAIT)
        return inputs

    def backward(self, grad_output):
        return grad_output


def test_a_training_step_runs_while_another_thread_is_inside_predict_on_another_model():
    entered, release = threading.Event(), threading.Event()
    served = Sequential([Dense(3, input_shape=(4,)), _Pause(entered, release)])
    set_random_seed(5)
    trained = seed002_model()                     # Conv2D, MaxPooling2D: backward needs what forward kept
    trained.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.random.default_rng(1).random((6, 8, 8, 1), dtype=np.float32), np.array([0, 1, 2, 0, 1, 2])
    set_random_seed(5)
    alone = seed002_model()
    alone.compile("sgd", "sparse_categorical_crossentropy")
    expected = alone.train_on_batch(x, y)

    thread = _start(lambda: served.predict(np.ones((2, 4), np.float32), verbose=0))
    assert entered.wait(WAIT)
    try:
        loss = trained.train_on_batch(x, y)       # with one shared flag: "backward() needs a forward pass ..."
    finally:
        release.set()
        _join(thread)
    assert loss == expected
    for mine, theirs in zip(alone.get_weights(), trained.get_weights()):
        assert np.array_equal(mine, theirs)


# -- use_compiled() is per thread, and reaches the pool threads working for the caller ----------------------

def test_use_compiled_in_one_thread_leaves_other_threads_alone_and_reaches_its_pool_threads():
    if not compiled.available():
        pytest.skip("numba is not installed")
    default = compiled.active()
    inside, leave = threading.Event(), threading.Event()
    seen = {}

    def switched():
        with compiled.use_compiled(not default):
            seen["inside"] = compiled.active()
            inside.set()
            assert leave.wait(WAIT)

    thread = _start(switched)
    assert inside.wait(WAIT)
    try:
        here = compiled.active()
    finally:
        leave.set()
        _join(thread)
    assert seen == {"inside": not default}
    assert here == default

    def chunk_state(chunk):
        return compiled.active(), backend.keeps_for_backward(), threading.current_thread().name

    with _two_blas_threads(), compiled.use_compiled(not default), backend.no_backward():
        states = parallel.run_in_parallel([0, 1], chunk_state)
    assert [state[:2] for state in states] == [(not default, False)] * 2
    assert states[1][2].startswith("convscope-ops")          # the second chunk did run on a pool thread


# -- automatic names ----------------------------------------------------------------------------------------

class _YieldingCounts(defaultdict):
    """The name counter, letting other threads run between reading a count and writing it back (as
    free-threaded Python, or any Python code there, may)."""

    def __getitem__(self, key):
        time.sleep(0)
        return super().__getitem__(key)


def test_unique_name_from_many_threads_gives_unique_names(monkeypatch):
    monkeypatch.setattr(backend, "_NAME_COUNTS", _YieldingCounts(int))
    start = threading.Barrier(8)
    names = [[] for _ in range(8)]

    def name_layers(i):
        start.wait(WAIT)
        for _ in range(200):
            names[i].append(backend.unique_name("conv2d"))

    _join(*[_start(name_layers, i) for i in range(8)])
    every = [name for part in names for name in part]
    assert sorted(every) == sorted(["conv2d"] + [f"conv2d_{k}" for k in range(1, 1600)])


# -- BLAS' thread count, one setting of the process ---------------------------------------------------------

def test_single_threaded_blas_overlapping_in_two_threads_keeps_one_thread_until_the_last_leaves():
    """A enters, B enters, A leaves, B leaves: each saving and restoring for itself leaves BLAS on 1 thread
    (and A's restore would give B's region all the threads while B still runs in it)."""
    with _two_blas_threads():
        before = _blas_threads()
        steps = {name: threading.Event() for name in ("a_in", "b_in", "a_may_leave", "b_may_leave")}

        def first():
            with parallel.single_threaded_blas():
                steps["a_in"].set()
                assert steps["a_may_leave"].wait(WAIT)

        def second():
            assert steps["a_in"].wait(WAIT)
            with parallel.single_threaded_blas():
                steps["b_in"].set()
                assert steps["b_may_leave"].wait(WAIT)

        a, b = _start(first), _start(second)
        assert steps["b_in"].wait(WAIT)
        both_inside = _blas_threads()
        steps["a_may_leave"].set()
        _join(a)
        b_alone_inside = _blas_threads()
        steps["b_may_leave"].set()
        _join(b)
        after = _blas_threads()
    assert before == [2] * len(before)
    assert both_inside == [1] * len(before)
    assert b_alone_inside == [1] * len(before)
    assert after == before


def test_single_threaded_blas_from_many_threads_holds_one_thread_inside_and_restores_the_count_after():
    """Each region sees BLAS on one thread whatever the others do (a thread restoring the count it saved
    while another is still inside gives that one all the threads), and the count comes back."""
    import threadpoolctl
    _blas_threads()
    libraries = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((700, 256)), rng.standard_normal((256, 700))     # over 2^25: split in blocks
    expected = a @ b
    with _two_blas_threads():
        before = _blas_threads()
        start = threading.Barrier(8)
        seen, products = [], []

        def work(i):
            start.wait(WAIT)
            for k in range(100):
                with parallel.single_threaded_blas():
                    time.sleep(0)                                   # let the other threads come and go
                    seen.append(tuple(library.num_threads for library in libraries))
                    if k % 10 == 0:
                        with parallel.single_threaded_blas():      # nested in the same thread
                            seen.append(tuple(library.num_threads for library in libraries))
                if k % 40 == i % 40:
                    products.append(parallel.matmul(a, b))

        _join(*[_start(work, i) for i in range(8)])
        after = _blas_threads()
    assert set(seen) == {(1,) * len(before)}
    assert after == before
    assert products and all(np.allclose(p, expected) for p in products)


def test_worker_count_is_the_users_blas_count_while_another_thread_holds_blas_single_threaded():
    """Work split by the lowered count would give other blocks (other sums) than in a serial run."""
    with _two_blas_threads():
        holding, leave = threading.Event(), threading.Event()

        def holder():
            with parallel.single_threaded_blas():
                holding.set()
                assert leave.wait(WAIT)

        thread = _start(holder)
        assert holding.wait(WAIT)
        try:
            count = parallel.worker_count()
            ranges = parallel.balanced_ranges(9, 4)
        finally:
            leave.set()
            _join(thread)
        with parallel.single_threaded_blas():
            own = parallel.worker_count()           # this thread's own single-threaded region: 1, as before
    assert count == 2
    assert [stop - start for start, stop in ranges] == [2, 2, 2, 3]      # on 1 worker: [3, 3, 3]
    assert own == 1


@pytest.mark.parametrize("rows", [8, 32, 128])     # a small product; seed 000's Dense at batch 32 and 128
def test_rows_by_a_large_matrix_never_run_on_blas_own_threads_and_the_bits_do_not_depend_on_them(
        rows, monkeypatch):
    """Rows times a large matrix (fewer than its columns) are split by columns among convscope's threads,
    each with BLAS single-threaded: BLAS' own threads, once used, spin for ~0.1 s of CPU and slow every op
    after them.  The column blocks are the same on one thread or two, so the bits are too (OpenBLAS' Haswell
    kernels give other bits for a product of other columns), and they are the serial product's to rounding.
    Up to `dense_tiles.max_rows()` rows (compiled, AVX2 or wider) the chunks run the SIMD tiles, which call no
    BLAS and leave its count as it is, with the tiles' bits."""
    import threadpoolctl
    from convscope.ops import dense_tiles
    rng = np.random.default_rng(4)
    a = rng.standard_normal((rows, 3136)).astype(np.float32)          # more than parallel.GEMV_ROWS
    b = rng.standard_normal((3136, 1000)).astype(np.float32)           # 12.5 MB: only streamed
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        serial = a @ b
        one_thread = parallel.matmul(a, b)
    counts = []
    region = parallel._in_region

    def recording(work, chunk, single):     # each thread's part of a region (`run_in_parallel`, `run_claimed`)
        counts.append(parallel._blas().lib_controllers[0].num_threads)
        return region(work, chunk, single)

    monkeypatch.setattr(parallel, "_in_region", recording)
    with _two_blas_threads():
        out = parallel.matmul(a, b)
    tiles = dense_tiles.applies(a, b)
    assert counts == ([2, 2] if tiles else [1, 1])     # two chunks of columns, each with BLAS on one thread
    assert np.array_equal(out, one_thread)
    if tiles:
        alone = np.empty_like(out)
        dense_tiles.product(a, b, alone, 0, b.shape[1])
        assert np.array_equal(out, alone)
    np.testing.assert_allclose(out, serial, rtol=1e-5, atol=1e-4)


def _native_thread_cpu_seconds() -> dict:
    """{thread id: CPU seconds} of this process' threads that are not Python threads (BLAS' own, say),
    from Linux's /proc (an empty dict elsewhere)."""
    import os
    python = {thread.native_id for thread in threading.enumerate()}
    seconds = {}
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []:
        if int(tid) not in python:
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as stat:
                    seconds[tid] = int(stat.read().split()[0]) / 1e9
            except OSError:                   # the thread ended meanwhile
                pass
    return seconds


def test_predict_at_batch_1_leaves_blas_own_threads_idle():
    """A batch-1 predict (a conv, then a Dense whose 8 MB matrix a single row only streams) keeps BLAS on
    one thread: OpenBLAS' own threads, once given a product, spin for ~0.1 s of CPU and slowed the next
    batch-1 ResNet50 inference 1.3x."""
    if not _native_thread_cpu_seconds():
        pytest.skip("needs Linux's /proc and a BLAS with threads of its own")
    model = Sequential([Input((8, 8, 32)), Conv2D(32, 3, padding="same", activation="relu"), Flatten(),
                        Dense(1024)])
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 32)).astype(np.float32)
    with _two_blas_threads():
        model.predict(x, verbose=0)
        time.sleep(0.5)                       # any earlier test's BLAS threads go back to sleep
        before = _native_thread_cpu_seconds()
        for _ in range(5):
            model.predict(x, verbose=0)
        time.sleep(0.3)                       # a spinning thread's whole spin
        after = _native_thread_cpu_seconds()
    busy = sum(after[tid] - before.get(tid, 0.0) for tid in after)
    assert busy < 0.02, f"threads outside Python ran {busy * 1e3:.0f} ms during and after 5 batch-1 predicts"


# -- state layers write during predict ----------------------------------------------------------------------

def test_two_threads_calls_of_one_layer_keep_their_own_contexts():
    """Thread 1's forward, then thread 2's forward and backward, then thread 1's backward: each call's
    output and gradient are its own (the context travels with the call, nothing stays on the layer)."""
    layer = Activation("relu")
    attributes = set(vars(layer))
    x1, x2 = np.array([[-1.0, 2.0]], np.float32), np.array([[3.0, -4.0]], np.float32)
    first_forward, second_done = threading.Event(), threading.Event()
    results = {}

    def first():
        results["y1"], ctx = layer.forward(x1)
        first_forward.set()
        assert second_done.wait(WAIT)
        results["g1"], _ = layer.backward(ctx, np.ones_like(x1))

    def second():
        assert first_forward.wait(WAIT)
        results["y2"], ctx = layer.forward(x2)
        results["g2"], _ = layer.backward(ctx, np.ones_like(x2))
        second_done.set()

    _join(_start(first, name="first"), _start(second, name="second"))
    assert np.array_equal(results["y1"], np.maximum(x1, 0)) and np.array_equal(results["y2"], np.maximum(x2, 0))
    assert np.array_equal(results["g1"], (x1 > 0).astype(np.float32))
    assert np.array_equal(results["g2"], (x2 > 0).astype(np.float32))
    assert set(vars(layer)) == attributes


def test_the_first_predicts_of_an_unbuilt_model_from_two_threads_build_it_once():
    model = Sequential([Dense(3), Dense(2)])                  # no input shape: the first call builds it
    first = model.layers[0]
    builds = []
    second_arrived = threading.Event()
    original = first.build

    def build(input_shape):
        builds.append(threading.current_thread().name)
        if len(builds) == 1:
            second_arrived.wait(0.5)     # room for a second thread to build as well (it must not: it waits)
        else:
            second_arrived.set()
        original(input_shape)

    first.build = build
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    start, outputs = threading.Barrier(2), {}

    def predict(name):
        start.wait(WAIT)
        outputs[name] = model.predict(x, verbose=0)

    _join(_start(predict, "a", name="a"), _start(predict, "b", name="b"))
    assert len(builds) == 1
    assert [v.shape for v in model.weights] == [(4, 3), (3,), (3, 2), (2,)]
    assert np.array_equal(outputs["a"], outputs["b"])
    assert np.array_equal(outputs["a"], model.predict(x, verbose=0))
