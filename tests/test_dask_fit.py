"""Data-parallel `fit` on a LocalCluster of 2 worker processes: the same weights as a single-process
fit with the same global batch, uneven shards weighted by size, BatchNormalization per replica, a
worker killed mid-fit (training goes on) and a step that cannot finish (training stops clearly)."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from seed_models import seed000_model, seed002_model

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from convscope import _rng, layers  # noqa: E402
from convscope.callbacks import LambdaCallback, ModelCheckpoint  # noqa: E402
from convscope.distribute import DaskStrategy  # noqa: E402
from convscope.distribute.fit import _combine  # noqa: E402
from convscope.io import load_model  # noqa: E402
from convscope.models import Sequential  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as c:
        yield c


def _pair(build, optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
    """Two compiled models with the same initial weights."""
    first = build()
    second = build()
    second.set_weights(first.get_weights())
    for model in (first, second):
        model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    return first, second


def _fit_both(single, parallel, x, y, client, seed=7, distribute=None, **options):
    _rng.set_seed(seed)
    h1 = single.fit(x, y, verbose=0, **options)
    _rng.set_seed(seed)
    h2 = parallel.fit(da.from_array(x, chunks=256), da.from_array(y, chunks=256), verbose=0,
                      distribute=distribute or client, **options)
    return h1, h2


def _small():
    model = seed002_model()
    model.build((None, 8, 8, 1))
    return model


def _data(count, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, count)


@pytest.mark.mnist
@pytest.mark.slow
def test_two_workers_fit_equals_single_process_fit_mnist(client):
    from convscope.datasets import mnist
    try:
        (x, y), _ = mnist.load_data()
    except (OSError, ValueError) as error:
        pytest.skip(f"MNIST not available: {error}")
    x = (x[:2048, :, :, None] / 255.0).astype(np.float32)
    y = y[:2048].astype(np.int64)

    def build():
        model = seed000_model(dropout=False)
        model.build((None, 28, 28, 1))
        return model

    single, parallel = _pair(build)
    initial = single.get_weights()
    h1, h2 = _fit_both(single, parallel, x, y, client, batch_size=512, epochs=2)
    moved = max(np.abs(a - b).max() for a, b in zip(single.get_weights(), initial))
    assert moved > 1e-3                                   # the weights really trained
    for a, b in zip(single.get_weights(), parallel.get_weights()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-6)
    assert h2.history["accuracy"] == h1.history["accuracy"]


def test_uneven_shards_are_weighted_by_size(client):
    x, y = _data(230)
    single, parallel = _pair(_small, optimizer="adam")
    strategy = DaskStrategy(client, num_replicas=3)      # batches of 50 split 17/17/16, the last 30 as 10/10/10
    h1, h2 = _fit_both(single, parallel, x, y, client, distribute=strategy, batch_size=50, epochs=2)
    for a, b in zip(single.get_weights(), parallel.get_weights()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-6)
    assert parallel.optimizer.iterations == single.optimizer.iterations == 10


def test_combine_is_the_global_batch_gradient():
    model = _small()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = _data(37, seed=4)
    loss, output, grads = model._gradients(x, y)
    shards = [model._gradients(x[s], y[s]) + ([], y[s]) for s in (slice(0, 5), slice(5, 30), slice(30, 37))]
    shards = [(a, b, c, d, e) for a, b, c, d, e in shards]
    c_loss, c_output, c_grads, _, c_y = _combine(shards, 37)
    assert c_loss == pytest.approx(loss, rel=1e-6)
    np.testing.assert_array_equal(c_y, y)
    np.testing.assert_allclose(c_output, output, rtol=1e-6)
    for a, b in zip(grads, c_grads):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-8)


def test_batch_normalization_statistics_per_replica(client):
    def build():
        model = Sequential([layers.Input((8, 8, 1)), layers.Conv2D(3, 3, activation="relu"),
                            layers.BatchNormalization(momentum=0.5), layers.Flatten(), layers.Dense(3, activation="softmax")])
        return model

    x, y = _data(64, seed=5)
    single, parallel = _pair(build)
    one = DaskStrategy(client, num_replicas=1)           # one replica: exactly the single-process step
    _fit_both(single, parallel, x, y, client, distribute=one, batch_size=64, epochs=1, shuffle=False)
    for a, b in zip(single.get_weights(), parallel.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)

    start = build()
    start.set_weights(parallel.get_weights())
    start.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    bn = start.layers[1]
    halves = []
    for part in (slice(0, 32), slice(32, 64)):           # what each replica does with its own statistics
        replica = build()
        replica.set_weights(start.get_weights())
        replica.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        replica._gradients(x[part], y[part])
        halves.append([np.array(v.value) for v in replica.layers[1].non_trainable_weights])
    start.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0, distribute=client)
    for index, variable in enumerate(bn.non_trainable_weights):     # moving mean/variance: the replicas' mean
        np.testing.assert_allclose(variable.value, (halves[0][index] + halves[1][index]) / 2, rtol=1e-6)


def test_worker_killed_during_fit_training_goes_on(client, tmp_path):
    x, y = _data(600, seed=6)
    single, parallel = _pair(_small)
    pids = client.run(os.getpid)
    killed = []

    def kill(batch, logs):
        if batch == 2 and not killed:
            killed.append(sorted(pids)[0])
            os.kill(pids[killed[0]], signal.SIGKILL)

    path = tmp_path / "last.convscope"
    _rng.set_seed(3)
    single.fit(x, y, batch_size=60, epochs=2, verbose=0)
    _rng.set_seed(3)
    history = parallel.fit(da.from_array(x, chunks=100), da.from_array(y, chunks=100), batch_size=60, epochs=2,
                           verbose=0, distribute=client,
                           callbacks=[LambdaCallback(on_train_batch_end=kill), ModelCheckpoint(str(path))])
    assert killed and len(history.history["loss"]) == 2
    for a, b in zip(single.get_weights(), parallel.get_weights()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    saved = load_model(path)
    for a, b in zip(saved.get_weights(), parallel.get_weights()):
        np.testing.assert_array_equal(a, b)
    client.wait_for_workers(2, timeout=180)  # a restarted worker imports convscope anew


def test_step_that_cannot_finish_stops_training_clearly(cluster, client, tmp_path):
    """A worker killed while it computes, with the scheduler allowed no retry: fit stops naming the
    epoch and batch, the model holds the last completed step, the last checkpoint is whole."""
    rng = np.random.default_rng(8)
    x, y = rng.random((1024, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 1024)
    model = seed000_model(dropout=False)      # a step of 256 images a replica: long enough to be caught
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    path = tmp_path / "last.convscope"
    pids = client.run(os.getpid)
    snapshots = []

    def killer():
        deadline = time.time() + 30
        while time.time() < deadline:
            busy = [w for w, tasks in client.processing().items() if any("_shard_step" in str(t) for t in tasks)]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                return
            time.sleep(0.005)

    def on_epoch_end(epoch, logs):
        snapshots.append(model.get_weights())
        if epoch == 0:
            threading.Thread(target=killer, daemon=True).start()

    allowed = cluster.scheduler.allowed_failures
    cluster.scheduler.allowed_failures = 0
    try:
        with pytest.raises(RuntimeError, match=r"fit: the Dask cluster failed at epoch 2, batch 1 after 1 "
                                               r"attempt\(s\) \(KilledWorker.*training stopped with the weights"):
            model.fit(da.from_array(x, chunks=256), da.from_array(y, chunks=256), batch_size=512, epochs=3, verbose=0,
                      distribute=DaskStrategy(client, retries=1),
                      callbacks=[LambdaCallback(on_epoch_end=on_epoch_end), ModelCheckpoint(str(path))])
    finally:
        cluster.scheduler.allowed_failures = allowed
    assert len(snapshots) == 1
    for a, b in zip(snapshots[0], model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(load_model(path).get_weights(), snapshots[0]):
        np.testing.assert_array_equal(a, b)
    client.wait_for_workers(2, timeout=180)  # a restarted worker imports convscope anew


def test_fit_distribute_argument_errors(client):
    model = _small()
    x, y = _data(20)
    with pytest.raises(RuntimeError, match="fit: the model must be compiled"):
        model.fit(x, y, distribute=client)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match=r"fit: argument `distribute` must be a dask.distributed.Client or a "
                                        r"convscope.distribute.DaskStrategy, got str"):
        model.fit(x, y, distribute="tcp://nowhere")
    with pytest.raises(ValueError, match=r"fit: `x` and `y` must have the same number of samples, got 20 in x"):
        model.fit(x, y[:10], distribute=client)
    with pytest.raises(ValueError, match=r"fit: argument `batch_size` must be an int >= 1, got 0"):
        model.fit(x, y, batch_size=0, distribute=client)
    with pytest.raises(ValueError, match=r"DaskStrategy: argument `num_replicas` must be an int >= 1, got 0"):
        DaskStrategy(client, num_replicas=0)
    with pytest.raises(TypeError, match=r"DaskStrategy: argument `client` must be a dask.distributed.Client, "
                                        r"got int"):
        DaskStrategy(3)
    with pytest.raises(ValueError, match=r"fit: the model expects input of shape \(None, 8, 8, 1\), got x of shape"):
        model.fit(np.zeros((20, 9, 9, 1), np.float32), y, distribute=client)
    assert DaskStrategy(client).num_replicas_in_sync == 2


def test_dask_x_without_a_client(monkeypatch):
    model = _small()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = _data(20)

    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "default_client", no_client)
    with pytest.raises(ValueError, match=r"fit: `x` is a dask array but no dask.distributed Client is running"):
        model.fit(da.from_array(x, chunks=10), y)
    with pytest.raises(ValueError, match=r"DaskStrategy: argument `client` is None and no dask.distributed Client"):
        DaskStrategy()
