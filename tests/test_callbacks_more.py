"""ReduceLROnPlateau, LambdaCallback, BackupAndRestore, TensorBoard and the missing-monitor warnings,
each against Keras 3.15.1's own callbacks driven with the same logs, and in real `fit` runs."""

import json
import os
import warnings

import numpy as np
import pytest

from convscope import _rng, optimizers
from convscope.callbacks import (BackupAndRestore, Callback, EarlyStopping, LambdaCallback, ModelCheckpoint,
                                 ReduceLROnPlateau)
from convscope.layers import Dense, Dropout
from convscope.models import Sequential


def _convscope_model(learning_rate=0.1, optimizer=None):
    model = Sequential([Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(optimizer=optimizer or optimizers.SGD(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _keras_model(keras, learning_rate=0.1):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    return model


def _data(count=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3)).astype("float32")
    return x, (x[:, 0] + 0.3 * x[:, 1] > 0).astype(int)


# -- ReduceLROnPlateau ---------------------------------------------------------------------------

PLATEAU_CASES = [
    (dict(), [1.0, 0.9] + [0.95] * 25),                                      # Keras' defaults
    (dict(factor=0.5, patience=2, cooldown=1), [1.0, 0.99995, 0.9, 0.9, 0.91, 0.92, 0.93, 0.8, 0.85, 0.86,
                                                 0.87, 0.88, 0.89, 0.9, 0.91]),
    (dict(factor=0.2, patience=1, min_lr=0.003, min_delta=0.05), [1.0, 0.96, 0.9, 0.88, 0.87, 0.86, 0.85,
                                                                   0.84, 0.83, 0.82]),
    (dict(monitor="val_accuracy", mode="max", factor=0.3, patience=0, cooldown=2, min_delta=0.0),
     [0.5, 0.6, 0.6, 0.55, 0.7, 0.65, 0.65, 0.65, 0.9, 0.9, 0.9]),
    (dict(monitor="loss", mode="min", factor=0.0, patience=1), [3.0, 3.0, 3.0, 2.0, 2.5]),
]


@pytest.mark.parametrize("kwargs, values", PLATEAU_CASES)
def test_reduce_lr_on_plateau_follows_keras_epoch_by_epoch(keras, kwargs, values):
    monitor = kwargs.get("monitor", "val_loss")
    ours, theirs = ReduceLROnPlateau(**kwargs), keras.callbacks.ReduceLROnPlateau(**kwargs)
    ours.set_model(_convscope_model())
    theirs.set_model(_keras_model(keras))
    ours.on_train_begin()
    theirs.on_train_begin()
    changes = 0
    for epoch, value in enumerate(values):
        our_logs, their_logs = {"loss": 0.5, monitor: value}, {"loss": 0.5, monitor: value}
        before = ours.model.optimizer.learning_rate
        ours.on_epoch_end(epoch, our_logs)
        theirs.on_epoch_end(epoch, their_logs)
        our_lr = ours.model.optimizer.learning_rate
        their_lr = float(keras.ops.convert_to_numpy(theirs.model.optimizer.learning_rate))
        # Keras keeps the rate in a float32 variable, convscope in a Python float
        assert our_lr == pytest.approx(their_lr, rel=1e-6, abs=1e-12), f"epoch {epoch}"
        assert our_logs["learning_rate"] == pytest.approx(their_logs["learning_rate"], rel=1e-6)
        assert (ours.wait, ours.cooldown_counter) == (theirs.wait, theirs.cooldown_counter), f"epoch {epoch}"
        assert ours.best == theirs.best
        changes += our_lr != before
    assert changes >= 1                               # every case reduces at least once


def test_reduce_lr_on_plateau_in_a_real_fit_matches_keras_on_the_same_logs(keras):
    x, y = _data()
    _rng.set_seed(0)
    model = _convscope_model(learning_rate=0.5)
    used = []                                         # the rate each epoch's first step really reads
    spy = LambdaCallback(on_train_batch_begin=lambda batch, logs: batch == 0 and used.append(
        model.optimizer.learning_rate))
    callback = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.05, min_lr=0.05)
    history = model.fit(x, y, epochs=8, batch_size=5, verbose=0, callbacks=[spy, callback])
    assert history.history["learning_rate"] == used
    theirs = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.05,
                                               min_lr=0.05)
    theirs.set_model(_keras_model(keras, learning_rate=0.5))
    theirs.on_train_begin()
    expected = []
    for epoch, loss in enumerate(history.history["loss"]):
        logs = {"loss": loss}
        theirs.on_epoch_end(epoch, logs)
        expected.append(logs["learning_rate"])
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    assert len(set(used)) > 1 and min(used) >= 0.05     # it did reduce, and stops at min_lr


def test_reduce_lr_on_plateau_refuses_schedules_as_keras_does_and_checks_arguments(keras):
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    ours = ReduceLROnPlateau(monitor="loss", patience=0)
    ours.set_model(_convscope_model(optimizer=optimizers.SGD(learning_rate=schedule)))
    theirs = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)),
                  loss="mse")
    theirs.set_model(model)
    for callback in (ours, theirs):
        callback.on_train_begin()
        callback.on_epoch_end(0, {"loss": 1.0})
        with pytest.raises(TypeError):
            callback.on_epoch_end(1, {"loss": 1.0})
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: argument `factor` must be a number \[0.0, 1.0\), "
                                         r"got 1.0"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau: argument `min_lr` must be a number, got '0'"):
        ReduceLROnPlateau(min_lr="0")
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: argument `patience` must be a non-negative int, "
                                         r"got 2.5"):
        ReduceLROnPlateau(patience=2.5)
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: argument `mode` must be 'auto', 'min' or 'max', "
                                         r"got 'up'"):
        ReduceLROnPlateau(mode="up")


# -- missing monitors warn with Keras' words -----------------------------------------------------

def _warning_texts(function):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        function()
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_missing_monitor_warnings_are_keras_own(keras, tmp_path):
    logs = {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.6}

    def drive(callback, model):
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_end(0, dict(logs))

    model, keras_model = _convscope_model(), _keras_model(keras)
    for ours, theirs in [
            (EarlyStopping(monitor="val_acc", mode="max"), keras.callbacks.EarlyStopping(monitor="val_acc",
                                                                                         mode="max")),
            (ReduceLROnPlateau(monitor="val_acc", mode="max"),
             keras.callbacks.ReduceLROnPlateau(monitor="val_acc", mode="max"))]:
        expected = _warning_texts(lambda: drive(theirs, keras_model))
        assert len(expected) == 1 and "`val_acc`" in expected[0]
        assert _warning_texts(lambda: drive(ours, model)) == expected
    with pytest.warns(UserWarning, match=r"Early stopping conditioned on metric `val_acc` which is not available\. "
                                         r"Available metrics are: loss,accuracy,val_loss$"):
        drive(EarlyStopping(monitor="val_acc", mode="max"), model)
    # ModelCheckpoint(save_best_only) warns and then saves anyway, in Keras 3 as here
    keras_path = tmp_path / "k.weights.h5"
    theirs = keras.callbacks.ModelCheckpoint(keras_path, monitor="val_acc", mode="max", save_best_only=True,
                                             save_weights_only=True)
    expected = _warning_texts(lambda: drive(theirs, keras_model))
    assert expected == ["Can save best model only with val_acc available."] and keras_path.exists()
    our_path = tmp_path / "c.weights.npz"
    ours = ModelCheckpoint(our_path, monitor="val_acc", mode="max", save_best_only=True, save_weights_only=True)
    assert _warning_texts(lambda: drive(ours, model)) == expected
    assert our_path.exists()


@pytest.mark.parametrize("values, best, stops", [
    ([1.0, 0.5, 0.7, 0.8, 0.45, 0.6, 0.7], 4, False),       # never stops: restored at the end all the same
    ([1.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.2], 1, True)])
def test_early_stopping_restores_the_best_weights_when_keras_does(keras, values, best, stops):
    def drive(callback, model, set_epoch):
        callback.set_model(model)
        callback.on_train_begin()
        for epoch, value in enumerate(values):
            set_epoch(epoch)
            callback.on_epoch_end(epoch, {"val_loss": value})
            if model.stop_training:
                break
        callback.on_train_end()
        return epoch

    keras_model = _keras_model(keras)
    keras_model.stop_training = False
    kernel = keras_model.layers[0].kernel
    last = drive(keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True), keras_model,
                 lambda epoch: kernel.assign(np.full((3, 2), epoch, "float32")))
    model = _convscope_model()
    model.stop_training = False
    variable = model.layers[0].kernel
    ours = EarlyStopping(patience=3, restore_best_weights=True)
    assert drive(ours, model, lambda epoch: variable.assign(np.full((3, 2), epoch, "float32"))) == last
    assert (last < len(values) - 1) == stops and bool(ours.stopped_epoch) == stops
    np.testing.assert_array_equal(variable.numpy(), keras.ops.convert_to_numpy(kernel))
    assert variable.numpy()[0, 0] == best                     # the weights of the best epoch


def test_missing_monitor_warns_in_a_real_fit():
    x, y = _data()
    model = _convscope_model()
    with pytest.warns(UserWarning, match=r"metric `val_acc` which is not available\. Available metrics are: "
                                         r"loss,accuracy,val_loss,val_accuracy"):
        history = model.fit(x, y, epochs=2, batch_size=5, verbose=0, validation_split=0.25,
                            callbacks=[EarlyStopping(monitor="val_acc", patience=0)])
    assert history.epoch == [0, 1]                    # never stops on a metric it cannot see


# -- LambdaCallback --------------------------------------------------------------------------------

def test_lambda_callback_calls_each_function_with_the_hook_arguments():
    calls = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: calls.append(("train_begin",)),
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
        on_train_batch_end=lambda batch, logs: calls.append(("batch_end", batch, sorted(logs))),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, sorted(logs))),
        on_test_end=lambda logs: calls.append(("test_end", sorted(logs))),
        on_train_end=lambda logs: calls.append(("train_end",)))
    x, y = _data(10)
    _convscope_model().fit(x, y, epochs=2, batch_size=4, verbose=0, validation_split=0.2, callbacks=[callback])
    batch = [("batch_end", b, ["accuracy", "loss"]) for b in range(2)]
    epoch_end = lambda e: [("test_end", ["accuracy", "loss"]),
                           ("epoch_end", e, ["accuracy", "loss", "val_accuracy", "val_loss"])]
    assert calls == ([("train_begin",), ("epoch_begin", 0)] + batch + epoch_end(0)
                     + [("epoch_begin", 1)] + batch + epoch_end(1) + [("train_end",)])
    with pytest.raises(TypeError, match=r"LambdaCallback: argument `on_epoch_end` must be a function or None, "
                                        r"got 3"):
        LambdaCallback(on_epoch_end=3)
    with pytest.raises(TypeError, match=r"LambdaCallback: unexpected argument `on_epoch_finish`; expected hook "
                                        r"names \(on_train_begin, "):
        LambdaCallback(on_epoch_finish=print)
    assert LambdaCallback().on_epoch_end(0, {}) is None            # hooks not given do nothing


# -- BackupAndRestore ------------------------------------------------------------------------------

class _Interrupt(Callback):
    """Raises in the middle of epoch `epoch` (after batch 1), as a crash would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            raise RuntimeError("interrupted")


def _dropout_model(seed):
    _rng.set_seed(seed)
    model = Sequential([Dense(8, activation="relu", input_shape=(3,)), Dropout(0.3),
                        Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_backup_and_restore_resumes_to_the_same_weights_as_an_uninterrupted_fit(tmp_path):
    x, y = _data(40)
    fit = dict(epochs=6, batch_size=8, verbose=0, shuffle=True)
    model = _dropout_model(3)
    reference = model.fit(x, y, **fit)
    expected = model.get_weights()

    folder = tmp_path / "backup"
    ends = {}
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: ends.setdefault(epoch, model.get_weights()))
    model = _dropout_model(3)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, callbacks=[BackupAndRestore(folder), record, _Interrupt(3)], **fit)
    state = json.loads((folder / "training_state.json").read_text())
    assert state["epoch"] == 3 and sorted(os.listdir(folder)) == sorted(
        ["training_state.json", state["model_file"], state["optimizer_file"]])   # old generations removed
    load_model = pytest.importorskip("convscope.io").load_model
    for saved, at_end in zip(load_model(folder / state["model_file"]).get_weights(), ends[2]):
        np.testing.assert_array_equal(saved, at_end)          # the backup is a usable model file

    model = _dropout_model(99)                                # other weights, other generator state
    history = model.fit(x, y, callbacks=[BackupAndRestore(folder)], **fit)
    assert history.epoch == [3, 4, 5]
    assert history.history["loss"] == reference.history["loss"][3:]
    assert model.optimizer.iterations == 6 * 5
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_array_equal(got, want)
    assert not folder.exists()                                # deleted after a successful fit


def test_backup_and_restore_batch_frequency_keep_and_refusals(tmp_path):
    x, y = _data(20)
    folder = tmp_path / "b"
    model = _convscope_model()
    seen = []
    spy = LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(
        json.loads((folder / "training_state.json").read_text())["batch"]
        if (folder / "training_state.json").exists() else None))
    model.fit(x, y, epochs=2, batch_size=5, verbose=0,
              callbacks=[BackupAndRestore(folder, save_freq=3, delete_checkpoint=False), spy])
    assert seen == [None, None, 2, 2, 2, 1, 1, 1]           # a backup every 3 batches, across epochs
    assert (folder / "training_state.json").exists()         # kept: delete_checkpoint=False
    optimizer_file = folder / json.loads((folder / "training_state.json").read_text())["optimizer_file"]
    optimizer_file.write_bytes(optimizer_file.read_bytes()[:40])              # cut short
    with pytest.raises(ValueError, match=r"BackupAndRestore: the backup's optimizer state '.*optimizer-\d+\.npz' "
                                         r"is damaged"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BackupAndRestore(folder)])
    (folder / "training_state.json").write_text('{"epoch": "three"}')
    with pytest.raises(ValueError, match=r"BackupAndRestore: the backup '.*training_state.json' is damaged: "
                                         r"expected an object with"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BackupAndRestore(folder)])
    with pytest.raises(ValueError, match=r"BackupAndRestore: argument `backup_dir` must be a non-empty path, "
                                         r"got ''"):
        BackupAndRestore("")
    with pytest.raises(ValueError, match=r"BackupAndRestore: argument `save_freq` must be 'epoch' or a positive "
                                         r"int \(batches\), got 'batch'"):
        BackupAndRestore(folder, save_freq="batch")
    with pytest.raises(TypeError, match=r"BackupAndRestore: argument `delete_checkpoint` must be True or False, "
                                        r"got 'yes'"):
        BackupAndRestore(folder, delete_checkpoint="yes")


# -- TensorBoard -----------------------------------------------------------------------------------

def _crc32c_bitwise(data):
    """CRC-32C bit by bit (no table), independent of convscope's."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked(data):
    crc = _crc32c_bitwise(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _records(path):
    """The TFRecord payloads of a file, both checksums verified."""
    import struct
    data, position, out = path.read_bytes(), 0, []
    while position < len(data):
        header = data[position:position + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[position + 8:position + 12])[0] == _masked(header), "length CRC"
        payload = data[position + 12:position + 12 + length]
        assert len(payload) == length, "cut record"
        end = position + 12 + length
        assert struct.unpack("<I", data[end:end + 4])[0] == _masked(payload), "data CRC"
        out.append(payload)
        position = end + 4
    return out


def _fields(buffer):
    """Protobuf wire format: {field number: [values]} (varints as ints, others as bytes)."""
    fields, position = {}, 0

    def varint():
        nonlocal position
        shift = value = 0
        while True:
            byte = buffer[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
    while position < len(buffer):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 1:
            value, position = buffer[position:position + 8], position + 8
        elif wire == 5:
            value, position = buffer[position:position + 4], position + 4
        else:
            assert wire == 2, f"wire type {wire}"
            size = varint()
            value, position = buffer[position:position + size], position + size
        fields.setdefault(number, []).append(value)
    return fields


def _read_events(folder, tensors=None):
    """(file name, file_version, {tag: [(step, value)]}) of the one event file in `folder`;
    string tensors go to `tensors` as {tag: (step, plugin name, plugin content, dtype, text)}."""
    import struct
    tensors = {} if tensors is None else tensors
    files = sorted(folder.iterdir())
    assert len(files) == 1, files
    records = [_fields(r) for r in _records(files[0])]
    version = records[0][3][0].decode()
    scalars = {}
    for event in records[1:]:
        assert struct.unpack("<d", event[1][0])[0] > 1.6e9            # wall_time: seconds since 1970
        for value in _fields(event[5][0])[1]:
            value = _fields(value)
            if 8 in value:
                tensor, plugin = _fields(value[8][0]), _fields(_fields(value[9][0])[1][0])
                tensors[value[1][0].decode()] = (event[2][0], plugin[1][0].decode(), plugin[2][0],
                                                 tensor[1][0], tensor[8][0].decode())
                continue
            scalars.setdefault(value[1][0].decode(), []).append(
                (event[2][0], struct.unpack("<f", value[2][0])[0]))
    return files[0].name, version, scalars


def test_event_file_checksums_match_an_independent_crc32c():
    from convscope.callbacks import event_file
    assert event_file.crc32c(b"123456789") == _crc32c_bitwise(b"123456789") == 0xE3069283   # the check value
    payload = bytes(range(256)) * 3
    assert _records_from_bytes(event_file.record(payload)) == [payload]
    damaged = bytearray(event_file.record(payload))
    damaged[20] ^= 1
    with pytest.raises(AssertionError, match="data CRC"):
        _records_from_bytes(bytes(damaged))


def test_event_file_writer_encodes_large_steps_and_long_tags(tmp_path):
    from convscope.callbacks.event_file import EventFileWriter
    writer = EventFileWriter(str(tmp_path))
    tag = "a/" + "x" * 300                                      # lengths past one varint byte
    writer.scalars(300, [(tag, 1.5), ("b", -2.25)])
    writer.scalars(2**40 + 5, [("b", 3.0)])
    writer.close()
    with pytest.raises(ValueError, match=r"EventFileWriter: '.*' is closed"):
        writer.scalars(1, [("b", 1.0)])
    assert _read_events(tmp_path)[2] == {tag: [(300, 1.5)], "b": [(300, -2.25), (2**40 + 5, 3.0)]}


def test_event_file_writers_in_the_same_second_get_their_own_files(tmp_path, monkeypatch):
    from convscope.callbacks import event_file
    monkeypatch.setattr(event_file.time, "time", lambda: 1_700_000_000.25)
    first, second = event_file.EventFileWriter(str(tmp_path)), event_file.EventFileWriter(str(tmp_path))
    first.scalars(1, [("a", 1.0)])
    second.scalars(1, [("b", 2.0)])
    first.close()
    second.close()
    assert [os.path.basename(w.path)[-5:] for w in (first, second)] == [".0.v2", ".1.v2"]
    for writer, tag, value in ((first, "a", 1.0), (second, "b", 2.0)):
        os.rename(writer.path, tmp_path / "only")                  # _read_events reads a folder's one file
        folder = tmp_path / tag
        folder.mkdir()
        os.rename(tmp_path / "only", folder / os.path.basename(writer.path))
        assert _read_events(folder)[2] == {tag: [(1, value)]}


def _records_from_bytes(data):
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r"
        path.write_bytes(data)
        return _records(path)


def _tensorboard_fit(log_dir, epochs=3, after=(), **kwargs):
    from convscope.callbacks import TensorBoard
    x, y = _data(20)
    _rng.set_seed(0)
    model = _convscope_model()
    history = model.fit(x, y, epochs=epochs, batch_size=4, verbose=0, validation_split=0.2,
                        callbacks=[ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1.0, factor=0.5),
                                   TensorBoard(log_dir, **kwargs), *after])
    return model, history


def test_tensorboard_writes_keras_tags_with_the_history_values(tmp_path):
    import re
    import socket
    seen = []                                # what a reader finds right after each epoch: flushed events
    spy = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        sorted(_read_events(tmp_path / "logs" / "train")[2]["epoch_loss"])[-1][0]))
    model, history = _tensorboard_fit(tmp_path / "logs", after=[spy])
    assert seen == [0, 1, 2]
    h = history.history
    name, version, train = _read_events(tmp_path / "logs" / "train")
    assert re.fullmatch(rf"events\.out\.tfevents\.\d{{10}}\.{re.escape(socket.gethostname())}\.{os.getpid()}"
                        rf"\.\d+\.v2", name)
    assert version == "brain.Event:2"
    f32 = lambda values: [(step, float(np.float32(v))) for step, v in enumerate(values)]
    assert train == {"epoch_loss": f32(h["loss"]), "epoch_accuracy": f32(h["accuracy"]),
                     # the rate after each epoch's ReduceLROnPlateau (its first epoch sets the best)
                     "epoch_learning_rate": f32([0.1, 0.05, 0.025])}
    _, _, validation = _read_events(tmp_path / "logs" / "validation")
    steps = [4 * (epoch + 1) for epoch in range(3)]          # 16 training samples, batches of 4
    assert h["learning_rate"] == [0.1, 0.1, 0.05]             # logs hold the rate each epoch used
    assert validation == {"epoch_loss": f32(h["val_loss"]), "epoch_accuracy": f32(h["val_accuracy"]),
                          "evaluation_loss_vs_iterations": list(zip(steps, [v for _, v in f32(h["val_loss"])])),
                          "evaluation_accuracy_vs_iterations": list(zip(steps, [v for _, v in
                                                                                f32(h["val_accuracy"])]))}


def test_tensorboard_writes_the_model_json_as_keras_for_the_graph_tab(keras, tmp_path):
    import convscope
    from convscope.callbacks import TensorBoard
    from convscope.layers import Conv2D, Flatten
    keras_util = pytest.importorskip("tensorboard.plugins.graph.keras_util")
    model = convscope.Sequential([convscope.Input((6, 6, 1), name="image"), Conv2D(2, 3, activation="relu",
                                  name="conv"), Flatten(name="flat"), Dense(2, activation="softmax", name="out")],
                                 name="net")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype("float32")
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0, callbacks=[TensorBoard(tmp_path)])
    tensors = {}
    _read_events(tmp_path / "train", tensors)
    assert tensors == {"keras": (0, "graph_keras_model", b"1", 7, model.to_json())}   # 7: DT_STRING
    twin = keras.Sequential([keras.Input((6, 6, 1), name="image"), keras.layers.Conv2D(2, 3, activation="relu",
                             name="conv"), keras.layers.Flatten(name="flat"),
                             keras.layers.Dense(2, activation="softmax", name="out")], name="net")
    nodes = lambda text: [(n.name, list(n.input), n.attr["keras_class"].s)
                          for n in keras_util.keras_model_to_graph_def(json.loads(text)).node]
    assert nodes(model.to_json()) == nodes(twin.to_json())      # TensorBoard draws the same graph
    assert [name for name, _, _ in nodes(model.to_json())] == ["net/image", "net/conv", "net/flat", "net/out"]


def test_tensorboard_files_read_by_tensorboard_itself(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    model, history = _tensorboard_fit(tmp_path / "logs", update_freq=2)
    for kind, prefix in (("train", ""), ("validation", "val_")):
        reader = accumulator.EventAccumulator(str(tmp_path / "logs" / kind))
        reader.Reload()
        for metric in ("loss", "accuracy"):
            events = reader.Scalars(f"epoch_{metric}")
            assert [e.step for e in events] == [0, 1, 2]
            np.testing.assert_array_equal([e.value for e in events],
                                          np.float32(history.history[prefix + metric]))
    reader = accumulator.EventAccumulator(str(tmp_path / "logs" / "train"))
    reader.Reload()
    assert [e.step for e in reader.Scalars("batch_loss")] == [2, 4, 6, 8, 10, 12]   # every 2nd of 12 batches
    assert reader.PluginTagToContent("graph_keras_model") == {"keras": b"1"}
    assert reader.Tensors("keras")[0].tensor_proto.string_val[0].decode() == model.to_json()


def test_tensorboard_appends_new_files_per_fit_and_checks_arguments(tmp_path):
    from convscope.callbacks import TensorBoard
    _tensorboard_fit(tmp_path / "logs", epochs=1)
    _tensorboard_fit(tmp_path / "logs", epochs=1)
    assert len(list((tmp_path / "logs" / "train").iterdir())) == 2
    with pytest.raises(ValueError, match=r"TensorBoard: argument `update_freq` must be 'epoch', 'batch' or a "
                                         r"positive int, got 0"):
        TensorBoard(update_freq=0)
    with pytest.raises(TypeError, match=r"TensorBoard: argument `log_dir` must be a non-empty path, got None"):
        TensorBoard(log_dir=None)
    with pytest.raises(ValueError, match=r"TensorBoard: argument `histogram_freq` must be a non-negative int, "
                                         r"got -1"):
        TensorBoard(histogram_freq=-1)
    with pytest.warns(UserWarning, match=r"TensorBoard: convscope writes scalars only; histogram_freq is ignored"):
        TensorBoard(histogram_freq=1)


def test_backup_and_restore_brings_back_a_reduced_learning_rate(tmp_path):
    x, y = _data(20)
    folder = tmp_path / "b"
    reduce = dict(monitor="loss", patience=0, min_delta=10.0, factor=0.5)   # halves after every epoch but the first
    model = _convscope_model(learning_rate=0.4)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, epochs=5, batch_size=5, verbose=0,
                  callbacks=[ReduceLROnPlateau(**reduce), BackupAndRestore(folder), _Interrupt(3)])
    assert model.optimizer.learning_rate == pytest.approx(0.1)             # after epochs 0, 1, 2
    model = _convscope_model(learning_rate=0.4)
    used = []
    spy = LambdaCallback(on_epoch_begin=lambda epoch, logs: used.append((epoch, model.optimizer.learning_rate)))
    model.fit(x, y, epochs=5, batch_size=5, verbose=0, callbacks=[BackupAndRestore(folder), spy])
    assert used == [(3, pytest.approx(0.1)), (4, pytest.approx(0.1))]
