"""TensorBoard: per-epoch (and per-batch) scalars in TensorBoard's event files, without TensorFlow.

As Keras 3: `log_dir/train` gets `epoch_<name>` for the training logs and the learning rate,
`log_dir/validation` gets `epoch_<name>` for the `val_` logs (prefix dropped) and
`evaluation_<name>_vs_iterations` at the optimizer's step count; with `update_freq="batch"` or
an int, `batch_<name>` every that many batches.  Files are appended and flushed each epoch.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from .core import Callback
from .event_file import EventFileWriter

__all__ = ["TensorBoard"]

_NOT_WRITTEN = ("histogram_freq", "write_images", "profile_batch", "embeddings_freq")


def _check_count(arg: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"TensorBoard: argument `{arg}` must be a non-negative int, got {value!r}")
    return int(value)


class TensorBoard(Callback):
    """Keras' TensorBoard callback for scalars: loss, metrics, `val_*`, the learning rate
    (and `steps_per_second` with `write_steps_per_second`).

    With `write_graph`, a Sequential or Functional model's JSON config goes to `train/` as Keras
    writes it (tag "keras", plugin "graph_keras_model"): TensorBoard's graph tab draws it.
    Histograms, images, profiling and embeddings are not written: `histogram_freq`,
    `write_images`, `profile_batch` and `embeddings_freq` warn when asked for.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        if hasattr(log_dir, "__fspath__"):
            log_dir = os.fspath(log_dir)
        if not isinstance(log_dir, str) or not log_dir:
            raise TypeError(f"TensorBoard: argument `log_dir` must be a non-empty path, got {log_dir!r}")
        if update_freq not in ("epoch", "batch") and (isinstance(update_freq, bool) or
                                                      not isinstance(update_freq, (int, np.integer))
                                                      or update_freq < 1):
            raise ValueError(f"TensorBoard: argument `update_freq` must be 'epoch', 'batch' or a positive int, "
                             f"got {update_freq!r}")
        self.log_dir = log_dir
        self.histogram_freq = _check_count("histogram_freq", histogram_freq)
        self.embeddings_freq = _check_count("embeddings_freq", embeddings_freq)
        self.write_graph, self.write_images = bool(write_graph), bool(write_images)
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self.profile_batch, self.embeddings_metadata = profile_batch, embeddings_metadata
        asked = [name for name in _NOT_WRITTEN if getattr(self, name)]
        if asked:
            warnings.warn(f"TensorBoard: convscope writes scalars only; {', '.join(asked)} "
                          f"{'is' if len(asked) == 1 else 'are'} ignored", stacklevel=2)
        self._writers = {}
        self._global_train_batch = 0
        self._in_fit = False

    def set_model(self, model) -> None:
        super().set_model(model)
        self._close_writers()
        if self.write_graph and type(model).__name__ in ("Functional", "Sequential"):
            self._write_model_json()

    def _write_model_json(self) -> None:
        """The model's JSON config as Keras' `keras_model_summary` writes it (TensorBoard's graph tab)."""
        try:
            text = self.model.to_json()
        except Exception as error:          # as Keras: a model that cannot be described is not an error
            warnings.warn(f"TensorBoard: model failed to serialize as JSON. Ignoring... {error}", stacklevel=3)
            return
        writer = self._writer("train")
        writer.text(0, "keras", text, "graph_keras_model", b"1")
        writer.flush()

    def _writer(self, kind: str) -> EventFileWriter:
        """The writer of `log_dir/train` or `log_dir/validation`, opened on first use."""
        if kind not in self._writers:
            self._writers[kind] = EventFileWriter(os.path.join(self.log_dir, kind))
        return self._writers[kind]

    def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # -- hooks -----------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._global_train_batch = 0
        self._writer("train")

    def on_train_end(self, logs=None):
        self._in_fit = False
        self._close_writers()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()
        self._epoch_start_iterations = self._iterations()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        self._writer("train").scalars(self._global_train_batch,
                                      [(f"batch_{name}", value) for name, value in (logs or {}).items()])

    def on_test_begin(self, logs=None):
        self._writer("validation")

    def on_test_end(self, logs=None):
        iterations = self._iterations()
        writer = self._writer("validation")
        if iterations is not None:
            writer.scalars(iterations, [(f"evaluation_{name}_vs_iterations", value)
                                        for name, value in (logs or {}).items()])
        writer.flush()
        if not self._in_fit:
            self._close_writers()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {key: value for key, value in logs.items() if not key.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            train["learning_rate"] = float(optimizer.learning_rate)
        if self.write_steps_per_second and optimizer is not None:
            seconds = time.time() - self._epoch_start
            train["steps_per_second"] = (self._iterations() - self._epoch_start_iterations) / max(seconds, 1e-9)
        self._writer("train").scalars(epoch, [(f"epoch_{name}", value) for name, value in train.items()])
        validation = [(f"epoch_{key[4:]}", value) for key, value in logs.items() if key.startswith("val_")]
        if validation:
            self._writer("validation").scalars(epoch, validation)
        for writer in self._writers.values():
            writer.flush()

    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        return None if optimizer is None else int(getattr(optimizer, "iterations", 0))
