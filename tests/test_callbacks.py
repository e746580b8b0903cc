"""Callbacks: Keras' stopping/checkpoint/logging rules, driven by scripted logs and by real `fit` runs."""

import csv
import io

import numpy as np
import pytest

from convscope import _rng, optimizers
from convscope.callbacks import (Callback, CallbackList, CSVLogger, EarlyStopping, History, LearningRateScheduler,
                                 ModelCheckpoint, ProgbarLogger, TerminateOnNaN)
from convscope.layers import Dense
from convscope.models import Sequential


class FakeModel:
    """Just what callbacks touch: weights that change per epoch, `stop_training`, save calls, an optimizer."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(2)]
        self.saved = []
        self.optimizer = optimizers.SGD(learning_rate=0.1)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]

    def save(self, path):
        self.saved.append(("model", path))

    def save_weights(self, path):
        self.saved.append(("weights", path))


def _drive(callback, values, key="val_loss", model=None):
    """Run epochs with `values` as the monitored log; the fake weights hold the epoch number."""
    model = model or FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(values):
        model.weights = [np.full(2, float(epoch))]
        callback.on_epoch_end(epoch, {key: value})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return model, epochs


def test_early_stopping_patience_and_min_delta():
    _, epochs = _drive(EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.91, 0.5])
    assert epochs == 4                                       # two epochs without improvement after 0.9
    _, epochs = _drive(EarlyStopping(patience=1, min_delta=0.2), [1.0, 0.85, 0.5])
    assert epochs == 2                                       # 0.85 gains only 0.15 < min_delta
    _, epochs = _drive(EarlyStopping(patience=1, min_delta=0.2), [1.0, 0.75, 0.7, 0.1])
    assert epochs == 3                                       # 0.75 counts, 0.7 does not
    _, epochs = _drive(EarlyStopping(monitor="val_accuracy", patience=0), [0.5, 0.6, 0.55, 0.7], "val_accuracy")
    assert epochs == 3                                       # "auto" maximises accuracy
    _, epochs = _drive(EarlyStopping(monitor="val_accuracy", mode="min", patience=0), [0.5, 0.6], "val_accuracy")
    assert epochs == 2


def test_early_stopping_restores_best_weights_and_baseline():
    callback = EarlyStopping(patience=2, restore_best_weights=True)
    model, _ = _drive(callback, [1.0, 0.4, 0.6, 0.7, 0.1])
    assert callback.best_epoch == 1 and callback.stopped_epoch == 3
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])       # weights of epoch index 1
    # Improvements that do not beat the baseline do not reset the patience counter (Keras' rule).
    _, epochs = _drive(EarlyStopping(patience=2, baseline=0.5), [0.9, 0.8, 0.85, 0.7])
    assert epochs == 3
    _, epochs = _drive(EarlyStopping(patience=2), [0.9, 0.8, 0.85, 0.7])
    assert epochs == 4


def test_early_stopping_warns_on_missing_monitor_and_checks_arguments():
    with pytest.warns(UserWarning, match=r"metric `val_loss` which is not available. Available metrics are: loss"):
        callback = EarlyStopping()
        callback.set_model(FakeModel())
        callback.on_train_begin()
        callback.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match=r"EarlyStopping: argument `patience` must be a non-negative int, got -1"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match=r"EarlyStopping: argument `mode` must be 'auto', 'min' or 'max', got 'up'"):
        EarlyStopping(mode="up")


def test_model_checkpoint_formats_paths_and_saves_only_improvements():
    model = FakeModel()
    checkpoint = ModelCheckpoint("ckpt-{epoch:02d}-{val_loss:.2f}.convscope", save_best_only=True)
    _drive(checkpoint, [0.5, 0.7, 0.25], model=model)
    assert model.saved == [("model", "ckpt-01-0.50.convscope"), ("model", "ckpt-03-0.25.convscope")]
    model = FakeModel()
    _drive(ModelCheckpoint("w.weights", save_weights_only=True), [0.5, 0.7], model=model)
    assert model.saved == [("weights", "w.weights")] * 2
    with pytest.raises(KeyError, match=r"names 'val_acc', which is not in the logs"):
        _drive(ModelCheckpoint("{val_acc}.ckpt"), [0.5])


def test_model_checkpoint_with_real_save_continues_training(tmp_path):
    load_model = pytest.importorskip("convscope.io").load_model
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    _rng.set_seed(0)
    model = Sequential([Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path / "last.convscope"
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, shuffle=False, callbacks=[ModelCheckpoint(path)])
    restored = load_model(path)
    assert restored.optimizer.iterations == model.optimizer.iterations == 8
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    restored.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    weights_path = tmp_path / "best.weights.npz"
    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25,
              callbacks=[ModelCheckpoint(weights_path, save_weights_only=True, save_best_only=True)])
    restored.load_weights(weights_path)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def _fit(callbacks, epochs=3, verbose=0, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    _rng.set_seed(0)
    model = Sequential([Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model, model.fit(x, y, epochs=epochs, batch_size=8, verbose=verbose, callbacks=callbacks, **kwargs)


def test_hooks_are_called_in_keras_order():
    calls = []

    class Recorder(Callback):
        def __getattribute__(self, name):
            if name.startswith("on_"):
                calls.append(name)
            return object.__getattribute__(self, name)

    _fit([Recorder()], epochs=1, validation_split=0.2)
    assert calls == ["on_train_begin", "on_epoch_begin",
                     "on_train_batch_begin", "on_train_batch_end", "on_train_batch_begin", "on_train_batch_end",
                     "on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end",
                     "on_epoch_end", "on_train_end"]


def test_learning_rate_scheduler_sets_the_rate_and_logs_it():
    seen = []
    model, history = _fit([LearningRateScheduler(lambda epoch, lr: seen.append(lr) or lr * 0.5)])
    assert seen == pytest.approx([0.1, 0.05, 0.025])
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])
    model, history = _fit([LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))])
    assert model.optimizer.learning_rate == pytest.approx(0.03)
    with pytest.raises(ValueError, match=r"the schedule must return a finite number, got None at epoch 0"):
        _fit([LearningRateScheduler(lambda epoch: None)])


def test_early_stopping_inside_fit_restores_weights():
    stopper = EarlyStopping(monitor="loss", patience=0, min_delta=10.0, restore_best_weights=True)
    recorded = []

    class Weights(Callback):
        def on_epoch_end(self, epoch, logs=None):
            recorded.append(self.model.get_weights())

    model, history = _fit([Weights(), stopper], epochs=10)
    assert history.epoch == [0, 1]                           # no epoch improves by 10
    for restored, first in zip(model.get_weights(), recorded[0]):
        np.testing.assert_array_equal(restored, first)


def test_csv_logger_writes_valid_csv_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    _, history = _fit([CSVLogger(path)], epochs=2, validation_split=0.2)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert [float(r["loss"]) for r in rows] == pytest.approx(history.history["loss"])
    _fit([CSVLogger(path, append=True)], epochs=1, validation_split=0.2)
    with open(path, newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1", "0"]       # one header only
    with pytest.raises(ValueError, match=r"CSVLogger: argument `separator` must be one character, got ';;'"):
        CSVLogger(path, separator=";;")


def test_terminate_on_nan_and_history_defaults():
    callback = TerminateOnNaN()
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_batch_end(0, {"loss": 1.0})
    assert not model.stop_training
    callback.on_train_batch_end(1, {"loss": float("nan")})
    assert model.stop_training
    history = History()
    history.on_epoch_end(0, {"loss": 2.0})
    history.on_epoch_end(1, {"loss": 1.0})
    assert history.history == {"loss": [2.0, 1.0]} and history.epoch == [0, 1]


def test_progress_one_line_per_epoch_when_not_a_terminal(capsys):
    _fit([], epochs=2, verbose="auto", validation_split=0.2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 1/2 - 2/2 - ") and "loss: " in lines[0] and "val_accuracy: " in lines[0]
    _fit([], epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal():
    stream = FakeTerminal()
    _fit([ProgbarLogger(verbose=1, stream=stream)], epochs=2, verbose=0)
    text = stream.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "3/3" in text and "loss: " in text and "accuracy: " in text


class _Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(epoch)


def test_a_callback_list_made_empty_copied_or_pickled_still_calls_its_callbacks():
    """An empty list's hooks skip `__getattr__` (predict's fixed cost); a list copied, pickled, appended to after
    it was made empty, or made from a generator calls every callback all the same."""
    import copy
    import pickle
    recorder = _Recorder()
    full = CallbackList([recorder])
    for make in (copy.copy, copy.deepcopy, lambda made: pickle.loads(pickle.dumps(made))):
        recorder.seen.clear()
        clone = make(full)
        clone.on_epoch_end(1)
        assert clone.callbacks[0].seen == [1]
    empty = CallbackList([])
    assert isinstance(empty, CallbackList) and empty.on_epoch_end(0) is None
    empty.callbacks.append(recorder)
    empty.on_epoch_end(7)
    assert recorder.seen[-1] == 7
    CallbackList(c for c in [recorder]).on_epoch_end(8)
    assert recorder.seen[-1] == 8
