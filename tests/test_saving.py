"""Save/load: bit-exact round trips, training that continues identically, clear errors, atomic writes."""

import json
import os
import zipfile

import numpy as np
import pytest

from convscope import _rng, losses
from convscope.datasets import shapes
from convscope.io import saving
from convscope.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from convscope.models import Sequential
from convscope.optimizers import Adam


def small_model(units: int = 3, extra_dense: bool = False) -> Sequential:
    """Seed 002's shape classifier with BatchNormalization (non-trainable weights) and Dropout (RNG)."""
    layers = [Conv2D(4, (3, 3), input_shape=(8, 8, 1), padding="same", activation="relu"),
              BatchNormalization(),
              MaxPooling2D(pool_size=(2, 2)),
              Flatten(),
              Dropout(0.25)]
    if extra_dense:
        layers.append(Dense(5, activation="relu"))
    layers.append(Dense(units, activation="softmax"))
    return Sequential(layers)


@pytest.fixture(scope="module")
def data():
    (x_train, y_train), (x_test, _) = shapes.load_data(num_train=96, num_test=24)
    return (x_train[..., None].astype(np.float32) / 255, y_train.astype(np.int64),
            x_test[..., None].astype(np.float32) / 255)


def trained_model(data, epochs: int = 1) -> Sequential:
    x, y, _ = data
    _rng.set_seed(11)
    model = small_model()
    model.compile(optimizer=Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    return model


def continue_training(model, data, seed: int = 5):
    x, y, _ = data
    _rng.set_seed(seed)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return model.get_weights(), history.history


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


# -- round trips ------------------------------------------------------------------------------

def test_round_trip_preserves_predictions_bit_for_bit(tmp_path, data):
    model = trained_model(data)
    path = saving.save_model(model, tmp_path / "model.convscope")
    assert files_in(tmp_path) == ["model.convscope"]
    loaded = saving.load_model(path)
    assert type(loaded) is Sequential
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.get_config() == model.get_config()
    for mine, theirs in zip(model.get_weights(), loaded.get_weights()):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)
    x_test = data[2]
    assert np.array_equal(model.predict(x_test, verbose=0), loaded.predict(x_test, verbose=0))
    saved, restored_config = model.get_compile_config(), loaded.get_compile_config()
    assert restored_config["optimizer"] == saved["optimizer"]
    assert restored_config["metrics"] == saved["metrics"]
    assert losses.serialize(losses.as_loss_object(restored_config["loss"])) == \
        losses.serialize(losses.as_loss_object(saved["loss"]))
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    state, restored = model.optimizer.get_state(), loaded.optimizer.get_state()
    assert sorted(state) == sorted(restored)
    assert all(np.array_equal(state[k], restored[k]) for k in state)


def test_training_continues_exactly_where_it_stopped(tmp_path, data):
    model = trained_model(data)
    saving.save_model(model, tmp_path / "model.convscope")
    expected_weights, expected_history = continue_training(model, data)

    resumed_weights, resumed_history = continue_training(
        saving.load_model(tmp_path / "model.convscope"), data)
    assert resumed_history == expected_history
    for want, got in zip(expected_weights, resumed_weights):
        assert np.array_equal(want, got)

    # Without the optimizer state (fresh Adam moments) the continuation differs: the state matters.
    fresh = saving.load_model(tmp_path / "model.convscope", compile=False)
    assert fresh.get_compile_config() is None
    fresh.compile(optimizer=Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    fresh_weights, _ = continue_training(fresh, data)
    assert not all(np.array_equal(a, b) for a, b in zip(expected_weights, fresh_weights))


def test_uncompiled_model_round_trip(tmp_path, data):
    _rng.set_seed(3)
    model = small_model()
    saving.save_model(model, tmp_path / "plain.convscope")
    loaded = saving.load_model(tmp_path / "plain.convscope")
    assert loaded.get_compile_config() is None
    assert np.array_equal(model.predict(data[2], verbose=0), loaded.predict(data[2], verbose=0))
    with zipfile.ZipFile(tmp_path / "plain.convscope") as archive:
        header = json.loads(archive.read("convscope.json"))
        assert "optimizer.json" not in archive.namelist()
    assert header["format"] == "convscope-model" and header["format_version"] == 1
    assert header["class_name"] == "Sequential"


def test_weights_round_trip_into_a_new_model(tmp_path, data):
    model = trained_model(data)
    path = saving.save_weights(model, tmp_path / "shapes.weights.npz")
    _rng.set_seed(99)
    other = small_model()   # same architecture, other initial weights and layer names
    assert not np.array_equal(other.predict(data[2], verbose=0), model.predict(data[2], verbose=0))
    saving.load_weights(other, path)
    assert np.array_equal(other.predict(data[2], verbose=0), model.predict(data[2], verbose=0))
    # a whole-model file also serves as a weights file
    saving.save_model(model, tmp_path / "whole.convscope")
    third = small_model()
    saving.load_weights(third, tmp_path / "whole.convscope")
    assert all(np.array_equal(a, b) for a, b in zip(third.get_weights(), model.get_weights()))


# -- clear errors -----------------------------------------------------------------------------

def test_weights_for_a_different_architecture(tmp_path):
    _rng.set_seed(1)
    saving.save_weights(small_model(units=3), tmp_path / "three.weights.npz")
    with pytest.raises(ValueError, match=r"load_weights: .*three.weights.npz' is for a different "
                                         r"architecture: weight 6 \('dense/kernel' in the file\) "
                                         r"has shape \(64, 3\), the model's 'dense_1/kernel' has "
                                         r"shape \(64, 4\)"):
        saving.load_weights(small_model(units=4), tmp_path / "three.weights.npz")
    with pytest.raises(ValueError, match=r"holds 8 weight arrays .* but the model has 10 .*"
                                         r"different architecture"):
        saving.load_weights(small_model(extra_dense=True), tmp_path / "three.weights.npz")


def test_truncated_files(tmp_path, data):
    model = trained_model(data)
    for name, save in (("m.convscope", saving.save_model), ("m.weights.npz", saving.save_weights)):
        path = save(model, tmp_path / name)
        whole = path.read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
        with pytest.raises(ValueError, match=r"is a truncated or damaged zip file; expected a file "
                                             r"written by convscope"):
            saving.load_model(path) if name.endswith(".convscope") else saving.load_weights(model, path)


def test_damaged_entry_fails_its_check(tmp_path, data):
    path = saving.save_model(trained_model(data), tmp_path / "m.convscope")
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("weights/00000.npy")
    raw = bytearray(path.read_bytes())
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    raw[middle] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"load_model: .* is damaged: the entry"):
        saving.load_model(path)


def test_files_of_another_format(tmp_path):
    model = small_model()
    (tmp_path / "notes.convscope").write_text("hello, not a model")
    with pytest.raises(ValueError, match=r"load_model: .*notes.convscope' \(18 bytes\) is not a zip "
                                         r"file \(it does not start with the zip signature\)"):
        saving.load_model(tmp_path / "notes.convscope")
    np.savez(tmp_path / "arrays.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=r"load_model: .*arrays.npz' is a zip file but not a "
                                         r"convscope model file \(no 'convscope.json' entry; it "
                                         r"holds \['a.npy'\]\)"):
        saving.load_model(tmp_path / "arrays.npz")
    with pytest.raises(ValueError, match=r"load_weights: .*arrays.npz' is a zip file but not a "
                                         r"convscope weights or model file"):
        saving.load_weights(model, tmp_path / "arrays.npz")
    (tmp_path / "keras.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ValueError, match=r"load_model: .*keras.h5' cannot be read as an HDF5 file"):
        saving.load_model(tmp_path / "keras.h5")
    with pytest.raises(FileNotFoundError, match=r"load_model: no file at '.*missing.convscope'"):
        saving.load_model(tmp_path / "missing.convscope")


def test_newer_format_version_is_refused(tmp_path):
    path = saving.save_model(small_model(), tmp_path / "m.convscope")
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["convscope.json"] = json.dumps({"format": "convscope-model", "format_version": 99}).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    with pytest.raises(ValueError, match=r"has format version 99; this convscope reads versions up "
                                         r"to 1 — upgrade convscope"):
        saving.load_model(path)


def test_argument_errors(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match=r"save_weights: argument `filepath` must end in "
                                         r"'.weights.npz' \(or '.weights.h5'\), got '.*w.npz'"):
        saving.save_weights(model, tmp_path / "w.npz")
    with pytest.raises(TypeError, match=r"save_model: argument `filepath` must be a path "
                                        r"\(str or os.PathLike\), got 3"):
        saving.save_model(model, 3)
    with pytest.raises(TypeError, match=r"save_model: argument `model` must be a convscope model, "
                                        r"got list"):
        saving.save_model([1, 2], tmp_path / "x.convscope")
    saving.save_model(model, tmp_path / "x.convscope")
    with pytest.raises(FileExistsError, match=r"save_model: .*x.convscope' exists and overwrite=False"):
        saving.save_model(model, tmp_path / "x.convscope", overwrite=False)
    with pytest.raises(FileNotFoundError, match=r"the folder '.*nowhere' does not exist"):
        saving.save_model(model, tmp_path / "nowhere" / "x.convscope")


# -- atomic writes ----------------------------------------------------------------------------

def interrupt_after(monkeypatch, entries: int):
    """Make the zip writer fail after `entries` entries, as a crash or a full disk would."""
    written = []
    real = saving._write_entry

    def failing(archive, name, payload):
        if len(written) == entries:
            raise OSError("No space left on device (simulated)")
        written.append(name)
        real(archive, name, payload)

    monkeypatch.setattr(saving, "_write_entry", failing)
    return written


def test_interrupted_save_keeps_the_earlier_file(tmp_path, data, monkeypatch):
    target = tmp_path / "model.convscope"
    first = trained_model(data)
    saving.save_model(first, target)
    before = target.read_bytes()
    second = trained_model(data, epochs=2)
    written = interrupt_after(monkeypatch, 4)
    with pytest.raises(OSError, match="simulated"):
        saving.save_model(second, target)
    assert len(written) == 4                      # it really stopped half-way
    assert target.read_bytes() == before          # the earlier file is intact
    assert files_in(tmp_path) == ["model.convscope"]   # and no partial file is left
    monkeypatch.undo()
    assert np.array_equal(saving.load_model(target).predict(data[2], verbose=0),
                          first.predict(data[2], verbose=0))


def test_interrupted_first_save_leaves_nothing(tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 2)
    with pytest.raises(OSError, match="simulated"):
        saving.save_model(small_model(), tmp_path / "new.convscope")
    assert files_in(tmp_path) == []


def test_interrupted_weights_save_keeps_the_earlier_file(tmp_path, monkeypatch):
    _rng.set_seed(4)
    target = tmp_path / "w.weights.npz"
    saving.save_weights(small_model(), target)
    before = target.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        saving.save_weights(small_model(), target)
    assert target.read_bytes() == before
    assert files_in(tmp_path) == ["w.weights.npz"]
    assert os.access(target, os.R_OK)


# -- Keras .weights.h5 (optional h5py; Keras itself, on the torch backend, is the oracle) ----------

@pytest.fixture(scope="module")
def keras(keras):
    """The shared Keras fixture, with h5py for .weights.h5."""
    pytest.importorskip("h5py")
    return keras


def keras_twin(keras):
    """The Keras model of `small_model()` (Dropout is the identity in prediction)."""
    L = keras.layers
    return keras.Sequential([keras.Input((8, 8, 1)),
                             L.Conv2D(4, (3, 3), padding="same", activation="relu"),
                             L.BatchNormalization(), L.MaxPooling2D(pool_size=(2, 2)), L.Flatten(),
                             L.Dropout(0.25), L.Dense(3, activation="softmax")])


def random_weights(shapes_list, seed):
    """Signed random weights; entry 5 (BatchNormalization's moving_variance) stays positive."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in shapes_list]
    arrays[5] = rng.uniform(0.5, 1.5, shapes_list[5]).astype(np.float32)
    return arrays


def test_loads_keras3_weights_h5_and_predicts_as_keras(tmp_path, keras, data):
    twin = keras_twin(keras)
    twin.set_weights(random_weights([w.shape for w in twin.get_weights()], 0))
    twin.save_weights(str(tmp_path / "keras.weights.h5"))
    model = small_model()
    saving.load_weights(model, tmp_path / "keras.weights.h5")
    expected = np.asarray(twin.predict(data[2], verbose=0))
    np.testing.assert_allclose(model.predict(data[2], verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_keras_reads_our_weights_h5(tmp_path, keras, data):
    _rng.set_seed(8)
    model = small_model()
    model.set_weights(random_weights([w.shape for w in model.get_weights()], 1))
    saving.save_weights(model, tmp_path / "ours.weights.h5")
    twin = keras_twin(keras)
    twin.load_weights(str(tmp_path / "ours.weights.h5"))
    for ours, theirs in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    assert files_in(tmp_path) == ["ours.weights.h5"]


def test_loads_keras2_legacy_h5(tmp_path, keras, data):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    twin = keras_twin(keras)
    twin.set_weights(random_weights([w.shape for w in twin.get_weights()], 2))
    with h5py.File(tmp_path / "legacy.h5", "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, twin)
    model = small_model()
    saving.load_weights(model, tmp_path / "legacy.h5")
    for ours, theirs in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(ours, np.asarray(theirs))


def test_keras_h5_for_a_different_architecture(tmp_path, keras):
    twin = keras_twin(keras)
    twin.save_weights(str(tmp_path / "keras.weights.h5"))
    with pytest.raises(ValueError, match=r"load_weights: .* is for a different architecture: the "
                                         r"group 'layers/dense/vars' holds weights of shapes "
                                         r"\[\(64, 3\), \(3,\)\], but layer 'dense' \(Dense\) has "
                                         r"\[\(64, 4\), \(4,\)\]"):
        saving.load_weights(small_model(units=4), tmp_path / "keras.weights.h5")
    with pytest.raises(ValueError, match=r"has no weights for layer 'dense_\d+' \(looked for the group "
                                         r"'layers/dense_1/vars'"):
        saving.load_weights(small_model(extra_dense=True), tmp_path / "keras.weights.h5")


def test_h5_without_h5py_says_what_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"needs the optional package h5py: pip install "
                                          r"'convscope\[h5\]'"):
        saving.save_weights(small_model(), tmp_path / "m.weights.h5")
    assert files_in(tmp_path) == []


def test_model_methods_use_these_functions(tmp_path, data):
    model = trained_model(data)
    model.save(tmp_path / "m.convscope")
    model.save_weights(tmp_path / "m.weights.npz")
    other = small_model()
    other.load_weights(tmp_path / "m.weights.npz")
    loaded = saving.load_model(tmp_path / "m.convscope")
    expected = model.predict(data[2], verbose=0)
    assert np.array_equal(other.predict(data[2], verbose=0), expected)
    assert np.array_equal(loaded.predict(data[2], verbose=0), expected)


def test_functional_model_round_trip(tmp_path, data):
    """A functional model (saved as class 'Functional') comes back through Model.from_config."""
    from convscope.layers import Input
    from convscope.models import Model
    _rng.set_seed(6)
    inputs = Input((8, 8, 1))
    hidden = Flatten()(Conv2D(4, (3, 3), activation="relu")(inputs))
    model = Model(inputs, Dense(3, activation="softmax")(hidden))
    path = saving.save_model(model, tmp_path / "functional.convscope")
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("convscope.json"))["class_name"] == type(model).__name__
    loaded = saving.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    for mine, theirs in zip(model.get_weights(), loaded.get_weights()):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)
    assert np.array_equal(model.predict(data[2], verbose=0), loaded.predict(data[2], verbose=0))


def test_a_model_with_an_integer_counter_weight_saves_and_loads_in_every_format(tmp_path):
    """Normalization keeps Keras' int32 `count`: weights may be integer counters, each array still of
    exactly its variable's dtype."""
    import convscope as cs
    from convscope import layers as L
    norm = L.Normalization()
    norm.adapt(np.random.default_rng(0).random((20, 3)).astype("float32"))
    model = cs.Sequential([cs.Input((3,)), norm, L.Dense(2)])
    x = np.random.default_rng(1).random((4, 3)).astype("float32")
    assert any(w.dtype == np.int32 for w in model.get_weights())
    for suffix in (".convscope", ".keras", ".h5"):
        path = tmp_path / f"model{suffix}"
        model.save(path)
        loaded = cs.models.load_model(path)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
        assert [w.dtype for w in loaded.get_weights()] == [w.dtype for w in model.get_weights()]
    model.save_weights(tmp_path / "model.weights.h5")
    model.load_weights(tmp_path / "model.weights.h5")


def _swapped_layout_file(source, target, first, second):
    """A copy of a convscope zip file (model or weights) with weights `first` and `second` listed and stored in
    each other's place: the order an older convscope wrote a frozen layer's weights in."""
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    if "weights.json" in entries:                       # a .convscope model file
        layout = json.loads(entries["weights.json"])
        layout[first], layout[second] = layout[second], layout[first]
        entries["weights.json"] = json.dumps(layout).encode()
        a, b = f"weights/{first:05d}.npy", f"weights/{second:05d}.npy"
    else:                                               # a .weights.npz file
        layout_key = next(name for name in entries if not name.startswith("w0"))
        layout = json.loads(np.load(source)[layout_key[:-4]].item())
        for key in ("names", "shapes"):
            layout[key][first], layout[key][second] = layout[key][second], layout[key][first]
        import io
        buffer = io.BytesIO()
        np.save(buffer, np.array(json.dumps(layout)))
        entries[layout_key] = buffer.getvalue()
        a, b = f"w{first:05d}.npy", f"w{second:05d}.npy"
    entries[a], entries[b] = entries[b], entries[a]
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("count_shape", [(3,), (1,)])
def test_a_file_naming_the_weights_in_another_order_loads_them_by_name(tmp_path, count_shape):
    """A frozen layer whose non-trainable weight was made first: older convscope files list its weights in
    creation order, now trainable-first (Keras' order).  Same names, other order: each array goes to the weight
    it names, not to the one in its place (two weights of one shape would swap silently)."""
    from convscope import layers as L

    class Counting(L.Layer):
        def build(self, input_shape):
            self.count = self.add_weight(shape=count_shape, initializer="zeros", trainable=False, name="count")
            self.w = self.add_weight(shape=(3,), initializer="ones", name="w")

        def call(self, x):
            return x * self.w + self.count

    def model():
        built = Sequential([L.Input((3,)), Dense(3), Counting(name="counting")])
        built.layers[1].trainable = False
        return built
    saved = model()
    saved.layers[1].count.assign(np.full(count_shape, 7.0))
    saved.layers[1].w.assign(np.array([2.0, 2.0, 2.0]))
    assert [v.name for v in saved.weights][-2:] == ["counting/w", "counting/count"]
    for suffix in (".weights.npz", ".convscope"):
        path = tmp_path / f"new{suffix}"
        saved.save_weights(path) if suffix == ".weights.npz" else saved.save(path)
        _swapped_layout_file(path, tmp_path / f"old{suffix}", 2, 3)
        loaded = model()
        if suffix == ".weights.npz":
            loaded.load_weights(tmp_path / f"old{suffix}")
        else:
            loaded = saving.load_model(tmp_path / f"old{suffix}", custom_objects={"Counting": Counting})
        np.testing.assert_array_equal(loaded.layers[1].w.numpy(), [2.0, 2.0, 2.0])
        np.testing.assert_array_equal(loaded.layers[1].count.numpy(), np.full(count_shape, 7.0))
        for a, b in zip(loaded.get_weights(), saved.get_weights()):
            np.testing.assert_array_equal(a, b)
