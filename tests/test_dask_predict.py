"""`model.predict(x)` of a dask array: lazy, equal to in-memory predict, the model shipped once per
worker, and a worker killed mid-way loses no row (a LocalCluster of 2 worker processes)."""

import os
import signal
import time

import numpy as np
import pytest

from seed_models import seed000_model, seed002_model

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from convscope import layers  # noqa: E402
from convscope.distribute import _replica  # noqa: E402
from convscope.models import Model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Sending large graph:UserWarning")   # the model's bytes, on purpose


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def _model_token(lazy) -> str:
    keys = [k for k in lazy.__dask_graph__().keys() if isinstance(k, str) and k.startswith("convscope-model-")]
    assert len(keys) == 1, keys          # the model is one key of the graph, whatever the number of chunks
    return keys[0][len("convscope-model-"):]


def _images(count, shape, seed=0):
    return np.random.default_rng(seed).random((count,) + shape, dtype=np.float32)


def test_predict_dask_is_lazy_and_equals_in_memory_threads():
    model = seed002_model()
    model.build((None, 8, 8, 1))
    x = _images(203, (8, 8, 1))
    lazy = model.predict(da.from_array(x, chunks=50), batch_size=16)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == (203, 3) and lazy.dtype == np.float32
    assert all(n % 16 == 0 for n in lazy.chunks[0][:-1])      # batches line up with in-memory predict's
    with __import__("dask").config.set(scheduler="threads"):
        np.testing.assert_array_equal(lazy.compute(), model.predict(x, batch_size=16, verbose=0))
    # the graph holds the weights as they were at the call
    before = model.predict(x, batch_size=16, verbose=0)
    model.layers[-1].kernel.assign(np.zeros_like(model.layers[-1].kernel.value))
    with __import__("dask").config.set(scheduler="threads"):
        np.testing.assert_array_equal(lazy.compute(), before)


def _blas_threads() -> int:
    import threadpoolctl
    return max(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")


def test_predict_dask_on_cluster_equals_in_memory_and_ships_model_once(client):
    """The workers' predictions are in-memory predict's bits at the workers' BLAS thread count (dask gives
    each 1; some BLAS kernels' bits depend on how a product is split among threads), and within float32
    rounding of the driver's own."""
    import threadpoolctl
    model = seed000_model(dropout=False)
    model.build((None, 28, 28, 1))
    x = _images(300, (28, 28, 1), seed=1)
    lazy = model.predict(da.from_array(x, chunks=64))
    assert lazy.numblocks[0] == 5
    result = client.compute(lazy).result()
    (threads,) = set(client.run(_blas_threads).values())
    with threadpoolctl.threadpool_limits(threads, user_api="blas"):
        np.testing.assert_array_equal(result, model.predict(x, verbose=0))
    np.testing.assert_allclose(result, model.predict(x, verbose=0), rtol=1e-5, atol=1e-7)
    token = _model_token(lazy)
    rebuilt = client.run(_replica.rebuilds, token)
    assert len(rebuilt) == 2 and all(count <= 1 for count in rebuilt.values()) and sum(rebuilt.values()) >= 1
    assert _replica.rebuilds(token) == 0           # the driver only saved it


def test_predict_dask_functional_and_steps(client):
    inputs = layers.Input((6,))
    outputs = layers.Dense(4, activation="tanh")(layers.Dense(5, activation="relu")(inputs))
    model = Model(inputs, outputs)
    x = np.random.default_rng(2).standard_normal((101, 6)).astype(np.float64)
    lazy = model.predict(da.from_array(x, chunks=30), batch_size=8)
    assert lazy.dtype == model.predict(x[:1], verbose=0).dtype
    np.testing.assert_array_equal(lazy.compute(), model.predict(x, batch_size=8, verbose=0))
    steps = model.predict(da.from_array(x, chunks=30), batch_size=8, steps=3)
    np.testing.assert_array_equal(steps.compute(), model.predict(x, batch_size=8, steps=3, verbose=0))


def test_predict_dask_argument_errors():
    model = seed002_model()
    model.build((None, 8, 8, 1))
    x = da.from_array(_images(10, (8, 8, 1)), chunks=5)
    with pytest.raises(ValueError, match=r"predict: argument `callbacks` cannot be used with a dask array"):
        model.predict(x, callbacks=[object()])
    with pytest.raises(ValueError, match=r"predict: argument `batch_size` must be a positive int, got 0"):
        model.predict(x, batch_size=0)
    with pytest.raises(ValueError, match=r"predict: argument `steps` must be None or a positive int, got -1"):
        model.predict(x, steps=-1)
    with pytest.raises(ValueError, match=r"predict: the model expects input of shape \(None, 8, 8, 1\), "
                                         r"got x of shape \(4, 9, 9, 1\)"):
        model.predict(da.zeros((4, 9, 9, 1), chunks=2, dtype=np.float32))
    unknown = x[x[:, 0, 0, 0] > 0.5]
    with pytest.raises(ValueError, match=r"predict: a dask input needs known shape and chunks"):
        model.predict(unknown)


def test_worker_killed_during_predict_loses_no_row(client):
    model = seed002_model()
    model.build((None, 8, 8, 1))
    x = _images(4000, (8, 8, 1), seed=3)
    expected = model.predict(x, batch_size=20, verbose=0)

    def slow(block):            # a slow input stage, so that chunks are still running when a worker dies
        time.sleep(0.05)
        return block

    source = da.from_array(x, chunks=100).map_blocks(slow, dtype=x.dtype)
    lazy = model.predict(source, batch_size=20)
    before = client.run(os.getpid)
    future = client.compute(lazy)
    deadline = time.time() + 60
    while sum(len(v) for v in client.processing().values()) == 0 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    victim = sorted(before)[0]
    assert not future.done()
    os.kill(before[victim], signal.SIGKILL)
    result = future.result(timeout=120)
    assert result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)
    client.wait_for_workers(2, timeout=180)  # a restarted worker imports convscope anew
    after = client.run(os.getpid)
    assert before[victim] not in after.values()         # the worker really died (the nanny started another)
