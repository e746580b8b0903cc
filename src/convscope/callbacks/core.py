"""Callbacks with Keras' hook names: History, EarlyStopping, ModelCheckpoint, LearningRateScheduler,
TerminateOnNaN, CSVLogger and the tqdm-based ProgbarLogger that `fit` adds itself.

`fit` calls, in order: `on_train_begin`, then per epoch `on_epoch_begin`,
`on_train_batch_begin`/`on_train_batch_end` per batch, the validation's
`on_test_*` hooks, `on_epoch_end(epoch, logs)`; finally `on_train_end`.
Setting `model.stop_training = True` ends training after the current batch.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "TerminateOnNaN", "CSVLogger", "ProgbarLogger"]

Logs = Dict[str, float]


class Callback:
    """Base class: override the hooks you need; `self.model` and `self.params` are set by `fit`."""

    def __init__(self):
        self.model = None
        self.params: Dict[str, Any] = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: Dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Optional[Logs] = None): pass
    def on_train_end(self, logs: Optional[Logs] = None): pass
    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None): pass
    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None): pass
    def on_train_batch_begin(self, batch: int, logs: Optional[Logs] = None): pass
    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None): pass
    def on_test_begin(self, logs: Optional[Logs] = None): pass
    def on_test_end(self, logs: Optional[Logs] = None): pass
    def on_test_batch_begin(self, batch: int, logs: Optional[Logs] = None): pass
    def on_test_batch_end(self, batch: int, logs: Optional[Logs] = None): pass
    def on_predict_begin(self, logs: Optional[Logs] = None): pass
    def on_predict_end(self, logs: Optional[Logs] = None): pass
    def on_predict_batch_begin(self, batch: int, logs: Optional[Logs] = None): pass
    def on_predict_batch_end(self, batch: int, logs: Optional[Logs] = None): pass


_HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList:
    """Calls each hook on every callback in order (`CallbackList(cbs).on_epoch_end(3, logs)`)."""

    def __new__(cls, callbacks: Sequence[Callback] = (), model=None, params: Optional[Dict[str, Any]] = None):
        # no callbacks: each hook a method found without `__getattr__` (a predict at batch 1 calls four hooks)
        empty = isinstance(callbacks, (list, tuple)) and not callbacks
        return super().__new__(_NoCallbacks if cls is CallbackList and empty else cls)

    def __init__(self, callbacks: Sequence[Callback], model=None, params: Optional[Dict[str, Any]] = None):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if model is not None:
                callback.set_model(model)
            if params is not None:
                callback.set_params(params)

    def __getattr__(self, name: str) -> Callable:
        if name not in _HOOKS:
            raise AttributeError(name)
        takes_index = "epoch" in name or "batch" in name

        def call_all(*args):
            if len(args) == takes_index:            # no logs given: an empty dict, as Keras passes
                args = (*args, {})
            elif args and args[-1] is None:
                args = (*args[:-1], {})
            for callback in self.callbacks:
                getattr(callback, name)(*args)
        return call_all


class _NoCallbacks(CallbackList):
    """A `CallbackList` made empty: each hook does nothing while it stays empty."""


def _quiet_hook(name: str) -> Callable:
    def hook(self, *args):
        if self.callbacks:              # callbacks appended after it was made
            return CallbackList.__getattr__(self, name)(*args)
    hook.__name__ = name
    return hook


for _hook in _HOOKS:
    setattr(_NoCallbacks, _hook, _quiet_hook(_hook))
del _hook


def check_callbacks(callbacks, where: str) -> List[Callback]:
    """A list of Callback instances, or a TypeError naming the offending entry."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{where}: argument `callbacks` must be a list of Callback objects, got {callbacks!r}")
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"{where}: argument `callbacks` must contain convscope.callbacks.Callback objects, "
                            f"got {callback!r}")
    return list(callbacks)


class History(Callback):
    """Records every epoch's logs: `history.history["loss"]`, `history.epoch`."""

    def __init__(self):
        super().__init__()
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


def _monitor_op(owner: str, mode: str, monitor: str):
    """np.less for metrics to minimise, np.greater for those to maximise; "auto" decides from the name."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: argument `mode` must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor[4:] if monitor.startswith("val_") else monitor
        maximise = name in ("acc", "accuracy", "auc") or name.endswith(("accuracy", "_acc", "auc"))
        return np.greater if maximise else np.less
    return np.less if mode == "min" else np.greater


def _check_monitor(owner: str, monitor) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"{owner}: argument `monitor` must be a metric name such as 'val_loss', got {monitor!r}")
    return monitor


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs (Keras' rules).

    With `restore_best_weights`, the weights of the best epoch are put back when training ends;
    with `baseline`, the patience counter only resets once the baseline is beaten.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: Optional[float] = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0):
        super().__init__()
        self.monitor = _check_monitor("EarlyStopping", monitor)
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"EarlyStopping: argument `patience` must be a non-negative int, got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(f"EarlyStopping: argument `min_delta` must be a non-negative number, got {min_delta!r}")
        if isinstance(start_from_epoch, bool) or not isinstance(start_from_epoch, int) or start_from_epoch < 0:
            raise ValueError(f"EarlyStopping: argument `start_from_epoch` must be a non-negative int, "
                             f"got {start_from_epoch!r}")
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _monitor_op("EarlyStopping", mode, self.monitor)
        self.min_delta = -float(min_delta) if self.monitor_op is np.less else float(min_delta)
        self.mode = mode

    def _is_improvement(self, value: float, reference: float) -> bool:
        return bool(self.monitor_op(value - self.min_delta, reference))

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.monitor_op is np.less else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs or {})}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """As Keras 3: the best weights come back at the end of training, stopped early or not."""
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or only its weights) after each epoch, or only when `monitor` improves.

    `filepath` may hold `{epoch}` and log keys, e.g. "ckpt-{epoch:02d}-{val_loss:.2f}.convscope".
    Saving goes through `model.save` / `model.save_weights`, which write atomically.  With
    `save_best_only` and `monitor` absent from the logs it warns and saves, as Keras 3 does.
    """

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", initial_value_threshold=None):
        super().__init__()
        filepath = str(filepath) if hasattr(filepath, "__fspath__") else filepath
        if not isinstance(filepath, str) or not filepath:
            raise TypeError(f"ModelCheckpoint: argument `filepath` must be a path, got {filepath!r}")
        self.filepath = filepath
        self.monitor = _check_monitor("ModelCheckpoint", monitor)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.monitor_op = _monitor_op("ModelCheckpoint", mode, self.monitor)
        self.best = initial_value_threshold if initial_value_threshold is not None else (
            math.inf if self.monitor_op is np.less else -math.inf)

    def _path(self, epoch: int, logs: Logs) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as error:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} names {error}, which is not in the "
                           f"logs (available: epoch, {', '.join(sorted(logs))})") from None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self._path(epoch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:        # Keras 3 warns, then saves anyway
                warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            elif not self.monitor_op(current, self.best):
                return
            else:
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                          f"saving model to {path}")
                self.best = current
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class LearningRateScheduler(Callback):
    """At each epoch start sets `optimizer.learning_rate = schedule(epoch, lr)` (or `schedule(epoch)`)."""

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: argument `schedule` must be a function of "
                            f"(epoch, lr), got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        try:
            parameters = inspect.signature(schedule).parameters.values()
            self._takes_lr = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                                 for p in parameters) >= 2
        except (TypeError, ValueError):
            self._takes_lr = True

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = self.schedule(epoch, optimizer.learning_rate) if self._takes_lr else self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)) or \
                not np.isfinite(lr):
            raise ValueError(f"LearningRateScheduler: the schedule must return a finite number, "
                             f"got {lr!r} at epoch {epoch}")
        optimizer.learning_rate = float(lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (instead of `fit` raising)."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """One CSV row per epoch: `epoch` then the log keys in sorted order (Keras' layout)."""

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        filename = str(filename) if hasattr(filename, "__fspath__") else filename
        if not isinstance(filename, str) or not filename:
            raise TypeError(f"CSVLogger: argument `filename` must be a path, got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: argument `separator` must be one character, got {separator!r}")
        self.filename = filename
        self.separator = separator
        self.append = bool(append)
        self._file = None
        self._writer = None
        self._keys: Optional[List[str]] = None

    def on_train_begin(self, logs=None):
        has_rows = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self._keys = None
        self._has_header = has_rows

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self._keys,
                                          delimiter=self.separator)
            if not self._has_header:
                self._writer.writeheader()
        row = {"epoch": epoch, **{key: logs.get(key, "NA") for key in self._keys}}
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def _format_logs(logs: Logs) -> str:
    parts = []
    for key, value in logs.items():
        if isinstance(value, (float, np.floating)):
            parts.append(f"{key}: {value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{key}: {value:.4e}")
        else:
            parts.append(f"{key}: {value}")
    return " - ".join(parts)


class ProgbarLogger(Callback):
    """Keras-style progress: a tqdm bar per epoch on a terminal (steps, ETA, running loss and metrics),
    one summary line per epoch otherwise (or with `verbose=2`)."""

    def __init__(self, verbose: int = 1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self._bar = None
        self._in_fit = False

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _use_bar(self) -> bool:
        stream = self._out()
        return self.verbose == 1 and hasattr(stream, "isatty") and stream.isatty()

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._seen = 0               # batches this epoch: the count when `steps` is unknown (a generator)
        epochs = self.params.get("epochs")
        if self._use_bar():
            print(f"Epoch {epoch + 1}/{epochs}", file=self._out())
            self._bar = tqdm(total=self.params.get("steps"), file=self._out(), unit="step", leave=True,
                             dynamic_ncols=True,
                             bar_format="{n_fmt}/{total_fmt} |{bar:30}| {elapsed} - ETA: {remaining}{desc}")
        self._epoch_label = f"Epoch {epoch + 1}/{epochs}"

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self._bar is not None:
            self._bar.set_description_str(" - " + _format_logs(logs or {}), refresh=False)
            self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start
        steps = self.params.get("steps") or self._seen
        if self._bar is not None:
            self._bar.set_description_str(" - " + _format_logs(logs or {}), refresh=True)
            self._bar.close()
            self._bar = None
        else:
            print(f"{self._epoch_label} - {steps}/{steps} - {seconds:.0f}s - {_format_logs(logs or {})}",
                  file=self._out())

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._test_start = time.perf_counter()

    def on_test_batch_end(self, batch, logs=None):
        self._test_seen = batch + 1

    def on_test_end(self, logs=None):
        if not self._in_fit:
            steps = self.params.get("steps") or getattr(self, "_test_seen", 0)
            seconds = time.perf_counter() - self._test_start
            print(f"{steps}/{steps} - {seconds:.0f}s - {_format_logs(logs or {})}", file=self._out())
