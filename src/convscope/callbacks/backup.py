"""BackupAndRestore: back up training at each epoch end so that an interrupted `fit` resumes (Keras 3).

A backup is three files in `backup_dir`: the model (`model.save`, convscope's `.convscope`
format), the optimizer's state (`optimizer-<n>.npz`) and `training_state.json`, which names
those two and holds the epoch, the learning rate and convscope's random generator state.  The
JSON file is written last, atomically (temporary file, fsync, rename): it commits the backup,
so a crash at any moment leaves the previous backup or the new one, never a mix.  Restoring the
generator makes a resumed run draw the same shuffles and dropout masks as an uninterrupted one
(Keras does not restore it; layers seeded with generators of their own are not covered).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .. import _rng
from ..optimizers import schedules
from .core import Callback

__all__ = ["BackupAndRestore"]

STATE_FILE = "training_state.json"


def _atomic_write(path: Path, write) -> None:
    """`write(handle)` into a temporary file beside `path`, fsync'ed, then renamed onto it."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


class BackupAndRestore(Callback):
    """Save the model, optimizer state and epoch at each epoch end (or every `save_freq` batches);
    a later `fit` with the same `backup_dir` starts from the epoch after the last backup, with
    those weights; the backup is deleted when `fit` ends normally (`delete_checkpoint`).

    `double_checkpoint` is accepted for Keras' signature: every backup is already committed
    atomically, so there is never a torn one to fall back from.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if hasattr(backup_dir, "__fspath__"):
            backup_dir = os.fspath(backup_dir)
        if not isinstance(backup_dir, str) or not backup_dir:
            raise ValueError(f"BackupAndRestore: argument `backup_dir` must be a non-empty path, got {backup_dir!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer))
                                     or save_freq < 1):
            raise ValueError(f"BackupAndRestore: argument `save_freq` must be 'epoch' or a positive int "
                             f"(batches), got {save_freq!r}")
        for name, value in (("double_checkpoint", double_checkpoint), ("delete_checkpoint", delete_checkpoint)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"BackupAndRestore: argument `{name}` must be True or False, got {value!r}")
        self.backup_dir = backup_dir
        self.save_freq = save_freq
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._current_epoch = 0
        self._last_batch_seen = 0
        self._batches_since_save = 0

    @property
    def _state_path(self) -> Path:
        return Path(self.backup_dir) / STATE_FILE

    # -- restoring -----------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        state = self._read_state()
        if state is None:
            return
        model = self.model
        if not getattr(model, "built", True):
            raise ValueError(f"BackupAndRestore: the model must be built before `fit` to restore the backup "
                             f"in '{self.backup_dir}'; model {getattr(model, 'name', model)!r} is not built "
                             f"(build it, e.g. by calling it on a batch)")
        folder = Path(self.backup_dir)
        model.load_weights(str(folder / state["model_file"]))
        try:
            with np.load(folder / state["optimizer_file"], allow_pickle=False) as arrays:
                optimizer_state = {key: arrays[f"a{i}"] for i, key in enumerate(state["optimizer_keys"])}
        except (KeyError, OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"BackupAndRestore: the backup's optimizer state "
                             f"'{folder / state['optimizer_file']}' is damaged: {error}") from None
        model.optimizer.set_state(optimizer_state)
        if state.get("learning_rate") is not None and \
                not isinstance(model.optimizer._learning_rate, schedules.LearningRateSchedule):
            model.optimizer.learning_rate = state["learning_rate"]
        generator = _rng.generator().bit_generator
        if state.get("rng", {}).get("bit_generator") == generator.state["bit_generator"]:
            generator.state = state["rng"]
        model._initial_epoch = state["epoch"]       # read by `fit` right after on_train_begin (Keras' name)
        self._current_epoch = state["epoch"]

    def _read_state(self):
        """The committed backup's description, None when there is none; ValueError if it is damaged."""
        path = self._state_path
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            expected = {"epoch": int, "batch": int, "model_file": str, "optimizer_file": str, "optimizer_keys": list}
            if not isinstance(state, dict) or any(not isinstance(state.get(k), t) for k, t in expected.items()):
                raise ValueError(f"expected an object with {sorted(expected)}")
            for name in (state["model_file"], state["optimizer_file"]):
                if Path(name).name != name or not (path.parent / name).is_file():
                    raise ValueError(f"the file it names, {name!r}, is not in the backup folder")
        except ValueError as error:           # json.JSONDecodeError is a ValueError
            raise ValueError(f"BackupAndRestore: the backup '{path}' is damaged: {error}") from None
        return state

    # -- saving --------------------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if self.save_freq == "epoch":
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += batch + 1 if batch <= self._last_batch_seen else batch - self._last_batch_seen
        self._last_batch_seen = batch
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save()

    def _save(self) -> None:
        """Write the model and optimizer files of a new generation, commit them, drop the old ones."""
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        previous = self._read_state()
        generation = previous.get("generation", 0) + 1 if previous else 0
        model_file, optimizer_file = f"model-{generation}.convscope", f"optimizer-{generation}.npz"
        self.model.save(str(folder / model_file))
        optimizer = self.model.optimizer
        optimizer_state = optimizer.get_state()
        keys = list(optimizer_state)
        _atomic_write(folder / optimizer_file,
                      lambda handle: np.savez(handle, **{f"a{i}": optimizer_state[k] for i, k in enumerate(keys)}))
        schedule = isinstance(optimizer._learning_rate, schedules.LearningRateSchedule)
        state = {"generation": generation, "epoch": self._current_epoch, "batch": self._last_batch_seen, "model_file": model_file,
                 "optimizer_file": optimizer_file, "optimizer_keys": keys,
                 "learning_rate": None if schedule else float(optimizer.learning_rate),
                 "rng": _rng.generator().bit_generator.state}
        _atomic_write(self._state_path, lambda handle: handle.write(json.dumps(state).encode("utf-8")))
        if previous:
            for name in (previous["model_file"], previous["optimizer_file"]):
                if name not in (model_file, optimizer_file):
                    (folder / name).unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)
