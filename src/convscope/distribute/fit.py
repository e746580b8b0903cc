"""Data-parallel `fit` on a Dask cluster: `model.fit(x, y, distribute=client)` or `DaskStrategy(client)`.

As Keras' `tf.distribute.MirroredStrategy` does on one machine's GPUs: each global batch (the
`batch_size` given to `fit`) is split into one contiguous shard per replica; each replica runs the
forward and backward pass on its shard (`Model._gradients`, the code of a normal training step);
the driver averages the gradients weighted by shard size — the global batch's gradient — and
applies the update with its own optimizer.  So the weights do not depend on the number of workers
(up to float32 rounding of the sum).  The replicas are rebuilt once per worker from `.convscope`
bytes and get the current weights at every step.

Why `distribute=` (a Client or a `DaskStrategy`) on `fit` rather than tf.distribute's
`with strategy.scope():` around model creation: TensorFlow's scope exists to create mirrored
variables on every device; here the variables live only on the driver and the replicas are
rebuilt from the model's file each fit, so nothing has to be known when the model is built, and
the same model can be fitted in process or on a cluster call by call.  `DaskStrategy` keeps
tf.distribute's `num_replicas_in_sync`.

BatchNormalization normalizes each shard with that shard's statistics (per replica, as
MirroredStrategy, not synchronized); the moving averages are the mean of the replicas' updates, as
MirroredStrategy aggregates them.  Dropout draws its masks on the workers, so a model with Dropout
is not reproducible step for step against a single process.

Faults: a step's tasks are pure functions of (weights, shard); Dask reruns those of a lost worker
on the others, so training continues on the remaining workers from the same step.  A step that
still fails after `retries` attempts stops training with a RuntimeError naming the epoch and batch;
the model keeps the weights of the last completed step, and files written by ModelCheckpoint are
whole (every save is atomic).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Dict, List, Optional

import numpy as np

from ..callbacks import CallbackList, History, ProgbarLogger, TerminateOnNaN, check_callbacks
from ..models.training import _check_int, check_fit_arguments
from ._replica import model_bytes, replica

_CHUNK_ROWS = 1024


class DaskStrategy:
    """Train on the workers of a `dask.distributed.Client` (the default client when `client` is None).

    `num_replicas`: shards per global batch; None takes the number of workers at each step (each
    worker a replica).  `retries`: attempts of a step before training stops (a lost worker's tasks
    are rerun by Dask itself first).  `timeout`: seconds one attempt may take, None for no limit.
    """

    def __init__(self, client=None, num_replicas: Optional[int] = None, retries: int = 3,
                 timeout: Optional[float] = None):
        where = "DaskStrategy"
        if client is None:
            from distributed import default_client
            try:
                client = default_client()
            except ValueError:
                raise ValueError(f"{where}: argument `client` is None and no dask.distributed Client is running; "
                                 "start one (Client(LocalCluster(...))) or pass it") from None
        if not _is_client(client):
            raise TypeError(f"{where}: argument `client` must be a dask.distributed.Client, "
                            f"got {type(client).__name__}")
        if num_replicas is not None:
            num_replicas = _check_int(num_replicas, "num_replicas", where, 1)
        self.client = client
        self.num_replicas = num_replicas
        self.retries = _check_int(retries, "retries", where, 1)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout <= 0):
            raise ValueError(f"{where}: argument `timeout` must be None or a positive number of seconds, "
                             f"got {timeout!r}")
        self.timeout = timeout

    @property
    def workers(self) -> List[str]:
        """The addresses of the cluster's workers now."""
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    @property
    def num_replicas_in_sync(self) -> int:
        """Replicas per step (tf.distribute's name): `num_replicas`, else the number of workers."""
        return self.num_replicas or max(1, len(self.workers))

    def __repr__(self) -> str:
        return f"DaskStrategy({self.client!r}, num_replicas={self.num_replicas})"


class _NoWorkers(Exception):
    """The cluster has no worker now (a fault a later attempt may not have)."""


def _cluster_faults() -> tuple:
    """The exceptions that mean the cluster, not the model, failed."""
    from concurrent.futures import CancelledError
    from distributed.scheduler import KilledWorker
    return (KilledWorker, CancelledError, OSError, TimeoutError, _NoWorkers)


def _is_client(value) -> bool:
    try:
        from distributed import Client
    except ImportError:          # pragma: no cover - dask[distributed] is a test requirement
        return False
    return isinstance(value, Client)


def _strategy(distribute, where: str) -> DaskStrategy:
    if distribute is None:
        from distributed import default_client
        try:
            return DaskStrategy(default_client())
        except ValueError:
            raise ValueError(f"{where}: `x` is a dask array but no dask.distributed Client is running; pass "
                             f"distribute=Client(...) (or a DaskStrategy), or start a Client first") from None
    if isinstance(distribute, DaskStrategy):
        return distribute
    if _is_client(distribute):
        return DaskStrategy(distribute)
    raise TypeError(f"{where}: argument `distribute` must be a dask.distributed.Client or a "
                    f"convscope.distribute.DaskStrategy, got {type(distribute).__name__}")


def _as_dask(value, arg: str, where: str):
    """A dask array of `value` (a dask array, or an in-memory array the cluster will hold)."""
    import dask.array as da
    if isinstance(value, da.Array):
        if any(math.isnan(s) for s in value.shape):
            raise ValueError(f"{where}: argument `{arg}` needs known chunk sizes (call "
                             f"{arg}.compute_chunk_sizes() first), got shape {value.shape}")
        array = value
    elif value is None:
        raise ValueError(f"{where}: argument `{arg}` is required, got None")
    else:
        array = np.asarray(value)
        array = da.from_array(array, chunks=(_CHUNK_ROWS,) + array.shape[1:]) if array.ndim else array
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: argument `{arg}` must be a numeric array, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{where}: argument `{arg}` must have a batch axis, got a scalar")
    return array


def _identity(value):
    """A value as a task's result (recomputable from the task)."""
    return value


def _shard_step(blob: bytes, token: str, weights: List[np.ndarray], x: np.ndarray, y: np.ndarray):
    """On a worker: this shard's (loss, output, gradients, non-trainable weights after the step, y)."""
    model = replica(blob, token)
    with model._replica_lock:
        for variable, value in zip(model.weights, weights):
            variable.value[...] = value
        loss, output, grads = model._gradients(x, y)
        states = [np.array(v.value) for v in model.non_trainable_weights]
    return float(loss), output, grads, states, y


def _combine(results, count: int):
    """The global batch's (loss, output, gradients, non-trainable weights, y) from the shards'."""
    fractions = [len(r[4]) / count for r in results]
    loss = sum(f * r[0] for f, r in zip(fractions, results))
    grads = []
    for index in range(len(results[0][2])):
        total = sum(f * r[2][index].astype(np.float64) for f, r in zip(fractions, results))
        grads.append(total.astype(results[0][2][index].dtype))
    states = []
    for index in range(len(results[0][3])):
        values = [r[3][index] for r in results]
        same = all(np.array_equal(values[0], v) for v in values[1:])
        mean = values[0] if same else np.mean(np.stack(values), axis=0).astype(values[0].dtype)
        states.append(mean)
    output = np.concatenate([r[1] for r in results], axis=0)
    y = np.concatenate([r[4] for r in results], axis=0)
    return loss, output, grads, states, y


class _Trainer:
    """The cluster side of one `fit`: the model's bytes on the workers, one step at a time."""

    def __init__(self, model, strategy: DaskStrategy, x, y):
        self.model, self.strategy, self.client = model, strategy, strategy.client
        self.x, self.y = self.client.persist([x, y])        # the data moves to the cluster once
        self.blob, self.token = model_bytes(model)
        self._blob_future = None

    def _shipped_blob(self):
        """The model's bytes as a task's result on the cluster (not scattered: Dask can recompute a
        task's result when the worker holding it dies, never scattered data)."""
        if self._blob_future is None or self._blob_future.status in ("error", "cancelled", "lost"):
            self._blob_future = self.client.submit(_identity, self.blob, pure=False)
        return self._blob_future

    def step(self, indices: np.ndarray, where: str, epoch: int, batch: int):
        """The combined results of one global batch; a cluster fault (a lost worker or piece of data, a
        timeout) is retried, an error of the computation itself (raised by the model) is raised as is."""
        import dask
        faults = _cluster_faults()
        last_error = None
        for attempt in range(self.strategy.retries):
            try:
                return self._attempt(indices, dask)
            except faults as error:
                last_error = error
                self._blob_future = None
                if attempt + 1 < self.strategy.retries:
                    time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(
            f"{where}: the Dask cluster failed at epoch {epoch + 1}, batch {batch + 1} after "
            f"{self.strategy.retries} attempt(s) ({type(last_error).__name__}: {last_error}); training stopped "
            f"with the weights of the last completed step (the last ModelCheckpoint file is whole)"
        ) from last_error

    def _attempt(self, indices: np.ndarray, dask):
        workers = self.strategy.workers
        if not workers:
            raise _NoWorkers("the cluster has no workers")
        replicas = min(self.strategy.num_replicas or len(workers), len(indices))
        blob = self._shipped_blob()
        with warnings.catch_warnings():      # the weights go with the task on purpose: recomputable
            warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
            weights = self.client.submit(_identity, [np.array(v.value) for v in self.model.weights], pure=False)
        futures = []
        for index, shard in enumerate(np.array_split(indices, replicas)):
            task = dask.delayed(_shard_step, pure=False)(blob, self.token, weights, self.x[shard], self.y[shard])
            futures.append(self.client.compute(task, workers=[workers[index % len(workers)]],
                                               allow_other_workers=True))
        try:
            results = self.client.gather(futures) if self.strategy.timeout is None else \
                [f.result(timeout=self.strategy.timeout) for f in futures]
        finally:
            for future in futures + [weights]:
                future.release()
        return _combine(results, len(indices))

    def apply(self, combined, where: str, epoch: int, batch: int, raise_on_nan: bool):
        loss, output, grads, states, y = combined
        for variable, value in zip(self.model.non_trainable_weights, states):
            variable.value[...] = value
        loss = self.model._apply_gradients(grads, loss, where, epoch, batch, raise_on_nan)
        return loss, output, y


def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
        validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
        steps_per_epoch=None, distribute=None) -> History:
    """`Model.fit` on a Dask cluster (Keras' arguments, plus `distribute`); returns the `History`."""
    from ..models.sequential import Sequential
    where = "fit"
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: data-parallel training on Dask (distribute= or a dask array x) supports "
                        f"Sequential models, got {type(model).__name__} '{model.name}'")
    model._require_compiled(where)
    strategy = _strategy(distribute, where)
    batch_size, epochs, initial_epoch, verbose, steps_per_epoch = check_fit_arguments(
        batch_size, epochs, initial_epoch, verbose, shuffle, steps_per_epoch, validation_split, where)
    user_callbacks = check_callbacks(callbacks, where)
    x, y = _as_dask(x, "x", where), _as_dask(y, "y", where)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: `x` and `y` must have the same number of samples, got {x.shape[0]} in x "
                         f"(shape {x.shape}) and {y.shape[0]} in y (shape {y.shape})")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: `x` is empty (shape {x.shape}); there is nothing to train on")
    output_shape = model._output_shape_for(x.shape, where)
    x_val = y_val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"{where}: argument `validation_data` must be a tuple (x_val, y_val), "
                             f"got {type(validation_data).__name__}")
        x_val, y_val = (np.asarray(v.compute() if hasattr(v, "compute") else v) for v in validation_data)
    elif validation_split:
        split_at = int(math.floor(x.shape[0] * (1.0 - validation_split)))
        if split_at in (0, x.shape[0]):
            raise ValueError(f"{where}: validation_split={validation_split} of {x.shape[0]} samples leaves "
                             f"{split_at} for training and {x.shape[0] - split_at} for validation; both need some")
        x_val, y_val = x[split_at:].compute(), y[split_at:].compute()     # evaluated on the driver
        x, y = x[:split_at], y[:split_at]
    if x_val is not None:
        x_val, y_val = model._check_data(x_val, y_val, where, "x_val", "y_val")
    model._loss.check_targets(np.asarray(y[:batch_size].compute()), output_shape, where)

    trainer = _Trainer(model, strategy, x, y)
    count = x.shape[0]
    steps = steps_per_epoch or math.ceil(count / batch_size)
    history = History()
    extra = [ProgbarLogger(verbose)] if verbose else []
    callback_list = CallbackList(extra + user_callbacks + [history], model=model,
                                 params={"verbose": verbose, "epochs": epochs, "steps": steps})
    raise_on_nan = not any(isinstance(c, TerminateOnNaN) for c in user_callbacks)
    model.stop_training = False
    model.history = history
    stream = model._batch_stream(count, batch_size, shuffle)
    callback_list.on_train_begin()
    resumed, model._initial_epoch = getattr(model, "_initial_epoch", None), None   # BackupAndRestore's
    for epoch in range(resumed or initial_epoch, epochs):
        model._reset_metrics(np.empty((0,) + tuple(y.shape[1:]), y.dtype), output_shape)
        callback_list.on_epoch_begin(epoch)
        logs: Dict[str, float] = {}
        for batch in range(steps):
            indices = next(stream)
            callback_list.on_train_batch_begin(batch)
            combined = trainer.step(indices, where, epoch, batch)
            loss, output, y_batch = trainer.apply(combined, where, epoch, batch, raise_on_nan)
            logs = model._update_metrics(loss, y_batch, output, len(indices))
            callback_list.on_train_batch_end(batch, dict(logs))
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if x_val is not None:
            val_logs = model._evaluate_arrays(x_val, y_val, batch_size, callback_list)
            epoch_logs.update({f"val_{key}": value for key, value in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return history
