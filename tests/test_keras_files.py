"""Real Keras files in and out (issue 13): Keras 3 `.keras` archives and legacy `.h5` model files.

Every file is made at test time by Keras 3.15.1 (the oracle) or by convscope: Keras' models load
in convscope with the same parameters, layer names and outputs, and train one SGD step as
Keras' `train_on_batch` does; convscope's files open in Keras with the same outputs.  Files are
data: a Lambda's bytecode is never run, a class named in a file is never imported, and a
truncated, damaged or mismatched file raises a ValueError naming the function and the file.
"""

import json
import os
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope import backend
from convscope.cli import main
from convscope.io import keras_files, saving
from convscope.io.keras_tree import keras_layers
from seed_models import seed000_model, seed001_model

pytest.importorskip("h5py")
FORMATS = [".keras", ".h5"]


# -- Keras models, with weights and BN statistics away from their initial values ----------------

def k_seed(keras):
    L = keras.layers
    return keras.Sequential([L.Input((12, 12, 1)), L.Conv2D(6, 3, padding="same", activation="relu"),
                             L.BatchNormalization(), L.MaxPooling2D(), L.Dropout(0.25), L.Flatten(),
                             L.Dense(16, activation="relu"), L.Dropout(0.5), L.Dense(4, activation="softmax")])


def k_resnet(keras):
    L = keras.layers
    i = L.Input((10, 10, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(i)))
    y = L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(x))
    x = L.ReLU()(L.Add()([x, y]))
    return keras.Model(i, L.Dense(5, activation="softmax")(L.GlobalAveragePooling2D()(x)), name="resnet")


def k_unet(keras):
    L = keras.layers
    i = L.Input((8, 8, 2))
    c1 = L.Conv2D(4, 3, padding="same", activation="relu")(i)
    c2 = L.Conv2D(8, 3, padding="same", activation="relu")(L.MaxPooling2D()(c1)) * 0.5   # an operation
    u = L.UpSampling2D(interpolation="nearest")(c2)
    x = L.Concatenate()([u, c1])
    return keras.Model(i, L.Conv2D(1, 1, activation="sigmoid")(x), name="unet")


def k_two_io(keras):
    L = keras.layers
    a, b = L.Input((6, 6, 1), name="image"), L.Input((5,), name="extra")
    x = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu")(a))
    x = L.Concatenate()([x, L.Dense(4, activation="relu")(b)])
    return keras.Model([a, b], [L.Dense(3, activation="softmax", name="kind")(x), L.Dense(1, name="size")(x)])


def k_nested(keras):
    L = keras.layers
    inner = keras.Sequential([L.Input((8,)), L.Dense(6, activation="relu"), L.BatchNormalization(),
                              L.Dense(4)], name="inner")
    i = L.Input((6, 6, 2))
    x = L.Dense(8)(L.Flatten()(L.Conv2D(3, 3, activation="relu")(i)))
    return keras.Model(i, L.Dense(2)(inner(x)), name="outer")


BUILDERS = {"seed": k_seed, "resnet": k_resnet, "unet": k_unet, "two_io": k_two_io, "nested": k_nested}


def randomize(model, seed=0, scale=0.3):
    """Every weight drawn anew; BN's gamma/variance positive and its statistics away from 0 and 1."""
    rng = np.random.default_rng(seed)
    arrays = []
    for variable in model.weights:
        name, shape = variable.path if hasattr(variable, "path") else variable.name, tuple(variable.shape)
        if name.endswith(("gamma", "moving_variance")):
            arrays.append(rng.uniform(0.5, 1.5, shape))
        else:
            arrays.append(rng.normal(0.0, scale, shape))
    model.set_weights([a.astype("float32") for a in arrays])


def inputs_for(model, seed=1, batch=4):
    rng = np.random.default_rng(seed)
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    xs = [rng.normal(size=(batch,) + s).astype("float32") for s in shapes]
    return xs[0] if len(xs) == 1 else xs


def targets_for(model, seed=2, batch=4):
    rng = np.random.default_rng(seed)
    ys = [rng.uniform(size=(batch,) + tuple(t.shape[1:])).astype("float32") for t in model.outputs]
    return ys[0] if len(ys) == 1 else ys


def as_list(value):
    return [np.asarray(v) for v in value] if isinstance(value, (list, tuple)) else [np.asarray(value)]


def assert_close(got, want, rtol=1e-5, atol=1e-6):
    for g, w in zip(as_list(got), as_list(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def keras_model(keras, kind, compiled=True):
    model = BUILDERS[kind](keras)
    randomize(model)
    if compiled:
        loss = ["mse", "mse"] if kind == "two_io" else "mse"
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    return model


@pytest.fixture(scope="module")
def keras_files_made(keras, tmp_path_factory):
    """Each Keras model saved as .keras and .h5 (once for the module), with Keras' outputs."""
    folder = tmp_path_factory.mktemp("keras")
    made = {}
    for kind in BUILDERS:
        model = keras_model(keras, kind)
        x = inputs_for(model)
        for suffix in FORMATS:
            model.save(folder / f"{kind}{suffix}")
        made[kind] = (folder, model, x)
    return made


# -- Keras -> convscope ------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("kind", list(BUILDERS))
def test_a_keras_file_loads_with_the_same_structure_and_outputs(keras_files_made, kind, suffix):
    folder, kmodel, x = keras_files_made[kind]
    model = cs.models.load_model(folder / f"{kind}{suffix}")
    assert type(model).__name__ == ("Sequential" if kind == "seed" else "Functional")
    assert model.count_params() == kmodel.count_params()
    assert [layer.name for layer in keras_layers(model)] == [layer.name for layer in kmodel.layers]
    assert [w.shape for w in model.get_weights()] == [tuple(w.shape) for w in kmodel.get_weights()]
    assert_close(model.predict(x, verbose=0), kmodel.predict(x, verbose=0))
    assert model.optimizer.learning_rate == pytest.approx(0.1)


@pytest.mark.parametrize("kind", ["resnet", "unet", "two_io", "nested"])
def test_one_sgd_step_agrees_with_keras_train_on_batch(keras, tmp_path, kind):
    kmodel = keras_model(keras, kind)
    for suffix in FORMATS:
        kmodel.save(tmp_path / f"m{suffix}")
    loaded = {suffix: cs.models.load_model(tmp_path / f"m{suffix}") for suffix in FORMATS}
    x, y = inputs_for(kmodel), targets_for(kmodel)
    want_loss = kmodel.train_on_batch(x, y)
    want = kmodel.get_weights()
    for suffix, model in loaded.items():
        loss = model.train_on_batch(x, y)
        assert np.ravel(loss)[0] == pytest.approx(float(np.ravel(want_loss)[0]), rel=1e-4), suffix
        assert_close(model.get_weights(), want, rtol=1e-4, atol=1e-5)


def test_a_compiled_models_optimizer_state_comes_along(keras, tmp_path):
    """Adam after two Keras steps: iterations, learning rate and both moments map to convscope's
    slots, so the third step matches Keras' third step."""
    kmodel = BUILDERS["resnet"](keras)
    randomize(kmodel)
    kmodel.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    x, y = inputs_for(kmodel), targets_for(kmodel)
    kmodel.train_on_batch(x, y)
    kmodel.train_on_batch(x * 0.5, y)
    for suffix in FORMATS:
        kmodel.save(tmp_path / f"m{suffix}")
    loaded = {suffix: cs.models.load_model(tmp_path / f"m{suffix}") for suffix in FORMATS}
    kmodel.train_on_batch(x, y)
    for suffix, model in loaded.items():
        assert type(model.optimizer).__name__ == "Adam" and model.optimizer.iterations == 2, suffix
        assert model.optimizer.learning_rate == pytest.approx(0.01)
        logs = model.train_on_batch(x, y, return_dict=True)
        assert sorted(logs) == ["loss", "mae"]
        assert_close(model.get_weights(), kmodel.get_weights(), rtol=1e-4, atol=1e-5)


def test_compile_false_leaves_the_model_uncompiled(keras_files_made):
    folder, _, _ = keras_files_made["resnet"]
    for suffix in FORMATS:
        assert not cs.models.load_model(folder / f"resnet{suffix}", compile=False).compiled


# -- convscope -> Keras ------------------------------------------------------------------------------

def native_models():
    backend.clear_session(free_memory=False)
    seed0 = seed000_model()
    seed1 = seed001_model()
    for model in (seed0, seed1):
        model.build((None, 28, 28, 1))
        randomize(model, seed=3)
    return {"seed000": seed0, "seed001": seed1}


@pytest.mark.parametrize("suffix", FORMATS)
def test_convscope_files_open_in_keras_with_the_same_outputs(keras, keras_files_made, tmp_path, suffix):
    models = native_models()
    for kind in BUILDERS:
        folder, _, _ = keras_files_made[kind]
        models[kind] = cs.models.load_model(folder / f"{kind}.keras", compile=False)
    for kind, model in models.items():
        path = model.save(tmp_path / f"{kind}{suffix}")
        kmodel = keras.saving.load_model(path, compile=False)
        x = inputs_for(model) if hasattr(model, "inputs") else \
            np.random.default_rng(5).normal(size=(3, 28, 28, 1)).astype("float32")
        assert kmodel.count_params() == model.count_params(), kind
        assert [layer.name for layer in kmodel.layers] == [layer.name for layer in keras_layers(model)]
        assert_close(kmodel.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_convscope_optimizer_state_opens_in_keras(keras, tmp_path):
    """convscope's Adam after a step, saved as .keras: Keras continues with the same next step."""
    backend.clear_session(free_memory=False)
    model = seed000_model(dropout=False)
    model.build((None, 28, 28, 1))
    randomize(model, seed=4, scale=0.05)
    model.compile(optimizer=cs.optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 28, 28, 1)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 4)]
    model.train_on_batch(x, y)
    path = model.save(tmp_path / "m.keras")
    kmodel = keras.saving.load_model(path)
    assert int(kmodel.optimizer.iterations) == 1
    model.train_on_batch(x, y)
    kmodel.train_on_batch(x, y)
    assert_close(kmodel.get_weights(), model.get_weights(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("suffix", FORMATS)
def test_convscope_round_trip_keeps_weights_and_optimizer(tmp_path, suffix):
    backend.clear_session(free_memory=False)
    model = seed000_model(dropout=False)
    model.build((None, 28, 28, 1))
    model.compile(optimizer=cs.optimizers.RMSprop(0.01, momentum=0.5), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 28, 28, 1)).astype("float32"), rng.uniform(size=(2, 10)).astype("float32")
    model.train_on_batch(x, y)
    again = cs.models.load_model(model.save(tmp_path / f"m{suffix}"))
    for got, want in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    state, want = again.optimizer.get_state(), model.optimizer.get_state()
    assert sorted(state) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(state[key], want[key])


def test_weights_h5_of_graph_models_both_ways(keras, tmp_path):
    """`.weights.h5` of a Functional with a nested Sequential: Keras' file into convscope, and
    convscope's into Keras (the tree names of nested layers as Keras gives them)."""
    kmodel = keras_model(keras, "nested", compiled=False)
    kmodel.save(tmp_path / "m.keras")
    kmodel.save_weights(tmp_path / "keras.weights.h5")
    model = cs.models.load_model(tmp_path / "m.keras")
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    model.load_weights(tmp_path / "keras.weights.h5")
    x = inputs_for(kmodel)
    assert_close(model.predict(x, verbose=0), kmodel.predict(x, verbose=0))
    randomize(model, seed=9)
    model.save_weights(tmp_path / "ours.weights.h5")
    kmodel.load_weights(tmp_path / "ours.weights.h5")
    assert_close(kmodel.predict(x, verbose=0), model.predict(x, verbose=0))


# -- files are data ----------------------------------------------------------------------------------

def test_a_lambda_with_bytecode_is_refused_and_never_run(keras, tmp_path):
    sentinel = tmp_path / "ran"
    L = keras.layers
    model = keras.Sequential([L.Input((3,)), L.Lambda(lambda x, p=str(sentinel): (open(p, "w").close(), x)[1]),
                              L.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    model.save(tmp_path / "lambda.h5")
    sentinel.unlink()                              # Keras ran it while building; convscope must not
    for suffix in FORMATS:
        with pytest.raises(ValueError, match=r"load_model: '.*lambda\%s' holds a Lambda layer with "
                                             r"serialized Python bytecode" % suffix):
            cs.models.load_model(tmp_path / f"lambda{suffix}")
    assert not sentinel.exists()


def rewrite_archive(path, new_path, change):
    """A copy of a .keras archive with `change(name, bytes) -> bytes` applied to each entry."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(new_path, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, change(info.filename, source.read(info.filename)))
    return new_path


def test_an_unknown_class_is_named_and_its_module_never_imported(keras_files_made, tmp_path):
    folder, _, _ = keras_files_made["seed"]
    module = "convscope_never_imported_module"

    def rename(name, data):
        if name != "config.json":
            return data
        config = json.loads(data)
        config["config"]["layers"][2].update(module=module, class_name="Shiny", registered_name="pkg>Shiny")
        return json.dumps(config).encode()

    path = rewrite_archive(folder / "seed.keras", tmp_path / "unknown.keras", rename)
    with pytest.raises(ValueError, match=r"load_model: '.*unknown.keras' holds a layer of class 'Shiny' "
                                         r"\(module 'convscope_never_imported_module'\).*custom_objects="):
        cs.models.load_model(path)
    assert module not in sys.modules


def test_truncated_damaged_and_mismatched_files_are_refused(keras_files_made, tmp_path):
    folder, _, _ = keras_files_made["resnet"]
    for suffix in FORMATS:
        data = (folder / f"resnet{suffix}").read_bytes()
        for cut in (len(data) // 3, len(data) - 200):
            path = tmp_path / f"cut{cut}{suffix}"
            path.write_bytes(data[:cut])
            with pytest.raises(ValueError, match=rf"load_model: '.*cut{cut}\{suffix}'"):
                cs.models.load_model(path)
    flipped = bytearray((folder / "resnet.keras").read_bytes())
    with zipfile.ZipFile(folder / "resnet.keras") as archive:
        info = archive.getinfo("model.weights.h5")
    flipped[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0x10
    (tmp_path / "flipped.keras").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"load_model: '.*flipped.keras' is damaged: the entry "
                                         r"'model.weights.h5' fails its CRC check"):
        cs.models.load_model(tmp_path / "flipped.keras")
    other, _, _ = keras_files_made["unet"]
    with zipfile.ZipFile(other / "unet.keras") as archive:
        foreign = archive.read("model.weights.h5")
    path = rewrite_archive(folder / "resnet.keras", tmp_path / "mixed.keras",
                           lambda name, data: foreign if name == "model.weights.h5" else data)
    with pytest.raises(ValueError, match=r"load_model: '.*mixed.keras' has no weights for layer "
                                         r"'batch_normalization\w*'.*different architecture"):
        cs.models.load_model(path)


def test_a_weights_only_h5_and_an_unknown_suffix_get_clear_errors(keras_files_made, tmp_path):
    folder, kmodel, _ = keras_files_made["seed"]
    kmodel.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match=r"load_model: '.*w.weights.h5' is an HDF5 file without a model"):
        cs.models.load_model(tmp_path / "w.weights.h5")
    model = cs.models.load_model(folder / "seed.keras")
    with pytest.raises(ValueError, match=r"save_model: cannot tell the format of '.*m.pt'.*known suffixes: "
                                         r"\.convscope, \.keras, \.h5, \.hdf5"):
        model.save(tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


# -- writes: modes, links, atomicity ------------------------------------------------------------------

@pytest.fixture
def small():
    backend.clear_session(free_memory=False)
    model = cs.models.Sequential([cs.layers.Dense(3, input_shape=(4,))])
    model.build((None, 4))
    return model


@pytest.mark.parametrize("suffix", FORMATS)
def test_saves_respect_umask_modes_and_symlinks(small, tmp_path, suffix):
    old = os.umask(0o077)
    try:
        path = small.save(tmp_path / f"m{suffix}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    small.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    link = tmp_path / f"link{suffix}"
    link.symlink_to(path.name)
    small.save(link)
    assert link.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o640
    np.testing.assert_array_equal(cs.models.load_model(link).get_weights()[0], small.get_weights()[0])


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_failed_save_leaves_the_old_file(small, tmp_path, monkeypatch, suffix):
    path = small.save(tmp_path / f"m{suffix}")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(keras_files, "write_weight_tree" if suffix == ".keras" else "_write_legacy_weights",
                        broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        small.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# -- the command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", FORMATS)
def test_cli_summary_of_keras_files(keras_files_made, capsys, suffix):
    folder, kmodel, _ = keras_files_made["resnet"]
    backend.clear_session(free_memory=False)
    assert main(["summary", str(folder / f"resnet{suffix}")]) == 0
    out = capsys.readouterr().out
    assert all(layer.name in out for layer in kmodel.layers)
    assert f"{kmodel.count_params():,}" in out


def test_load_model_reads_by_content_not_suffix(keras_files_made, tmp_path):
    """saving.load_model tells the three formats apart by their bytes."""
    folder, kmodel, x = keras_files_made["unet"]
    for suffix in FORMATS:
        renamed = tmp_path / f"renamed{suffix}.bin"
        renamed.write_bytes((folder / f"unet{suffix}").read_bytes())
        assert_close(saving.load_model(renamed).predict(x, verbose=0), kmodel.predict(x, verbose=0))


# -- tf.keras 2 files (written here as tf.keras 2.13 lays them out: no TensorFlow needed) --------------

def keras2_layer(class_name, name, inbound=None, **config):
    entry = {"class_name": class_name, "config": dict(name=name, trainable=True, dtype="float32", **config)}
    if inbound is not None:
        entry.update(name=name, inbound_nodes=[[[source, 0, 0, {}] for source in inbound]] if inbound else [])
    return entry


def keras2_conv(name, filters, inbound=None):
    return keras2_layer("Conv2D", name, inbound, filters=filters, kernel_size=[3, 3], strides=[1, 1],
                        padding="same", data_format="channels_last", dilation_rate=[1, 1], groups=1,
                        activation="relu", use_bias=True,
                        kernel_initializer={"class_name": "GlorotUniform", "config": {"seed": None}},
                        bias_initializer={"class_name": "Zeros", "config": {}}, kernel_regularizer=None,
                        bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                        bias_constraint=None)


def keras2_functional():
    """A tf.keras 2 functional config: `batch_input_shape`, dtype strings, list-style inbound nodes."""
    layers = [{"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
               "config": {"batch_input_shape": [None, 6, 6, 2], "dtype": "float32", "sparse": False,
                          "ragged": False, "name": "input_1"}},
              keras2_conv("conv2d", 3, ["input_1"]), keras2_conv("conv2d_1", 3, ["conv2d"]),
              keras2_layer("Add", "add", ["conv2d", "conv2d_1"]),
              keras2_layer("GlobalAveragePooling2D", "global_average_pooling2d", ["add"],
                           data_format="channels_last", keepdims=False),
              keras2_layer("Dense", "dense", ["global_average_pooling2d"], units=2, activation="softmax",
                           use_bias=True, kernel_initializer={"class_name": "GlorotUniform", "config": {"seed": None}},
                           bias_initializer={"class_name": "Zeros", "config": {}}, kernel_regularizer=None,
                           bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                           bias_constraint=None)]
    return {"class_name": "Functional", "config": {"name": "model", "layers": layers,
                                                   "input_layers": [["input_1", 0, 0]],
                                                   "output_layers": [["dense", 0, 0]]}}


def write_keras2_h5(path, config, weights, optimizer_weights=None):
    """`weights`: {layer: [(name, array)]} in the file's layer order, as tf.keras 2 writes them."""
    import h5py
    training = {"loss": "categorical_crossentropy", "metrics": ["accuracy"], "weighted_metrics": None,
                "loss_weights": None, "optimizer_config": {"class_name": "Adam", "config": {
                    "name": "Adam", "learning_rate": 0.002, "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999,
                    "epsilon": 1e-07, "amsgrad": False}}}
    with h5py.File(path, "w") as handle:
        handle.attrs.update(backend="tensorflow", keras_version="2.13.1", model_config=json.dumps(config),
                            training_config=json.dumps(training))
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode() for name in [e["config"]["name"] for e in config["config"]["layers"]]]
        for layer in [e["config"]["name"] for e in config["config"]["layers"]]:
            entries = weights.get(layer, [])
            sub = group.create_group(layer)
            sub.attrs["weight_names"] = [n.encode() for n, _ in entries] or np.zeros(0)
            for name, array in entries:
                sub.create_dataset(name, data=array)
        if optimizer_weights:
            opt = handle.create_group("optimizer_weights")
            opt.attrs["weight_names"] = [n.encode() for n, _ in optimizer_weights]
            for name, array in optimizer_weights:
                opt.create_dataset(name, data=array)
    return path


def test_a_tf_keras_2_h5_file_loads_as_keras_3_loads_it(keras, tmp_path):
    rng = np.random.default_rng(7)
    shapes = {"conv2d": [(3, 3, 2, 3), (3,)], "conv2d_1": [(3, 3, 3, 3), (3,)], "dense": [(3, 2), (2,)]}
    weights = {layer: [(f"{layer}/{kind}:0", rng.normal(0, 0.5, shape).astype("float32"))
                       for kind, shape in zip(("kernel", "bias"), pair)] for layer, pair in shapes.items()}
    adam = [("Adam/iter:0", np.asarray(3, dtype=np.int64)),
            ("Adam/conv2d/kernel/m:0", np.ones((3, 3, 2, 3), "float32"))]
    path = write_keras2_h5(tmp_path / "tf2.h5", keras2_functional(), weights, adam)
    x = rng.normal(size=(3, 6, 6, 2)).astype("float32")
    want = keras.saving.load_model(path, compile=False).predict(x, verbose=0)
    with pytest.warns(UserWarning, match=r"written by Keras 2.13.1, whose optimizer weights convscope does not map"):
        model = cs.models.load_model(path)
    assert_close(model.predict(x, verbose=0), want)
    assert [layer.name for layer in model.layers] == ["input_1", "conv2d", "conv2d_1", "add",
                                                      "global_average_pooling2d", "dense"]
    assert type(model.optimizer).__name__ == "Adam" and model.optimizer.learning_rate == pytest.approx(0.002)
    assert model.optimizer.iterations == 0


def test_a_decompression_bomb_dataset_is_refused_before_allocating(tmp_path):
    """A config whose Dense kernel takes 128 MiB, stored as a compressed dataset of a few bytes."""
    import tracemalloc
    import h5py
    from convscope.layers.base import deferred_weights
    with deferred_weights():
        probe = cs.models.Sequential([cs.layers.Dense(8192, input_shape=(4096,), name="dense")], name="bomb")
    config = {"class_name": "Sequential", "config": probe.get_config()}
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config)
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = [b"dense"]
        sub = group.create_group("dense")
        sub.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        sub.create_dataset("dense/kernel:0", shape=(4096, 8192), dtype="float32", compression="gzip",
                           chunks=(512, 512))
        sub.create_dataset("dense/bias:0", data=np.zeros(8192, "float32"))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"load_model: '.*bomb.h5' is implausible \(a decompression "
                                             r"bomb\?\).*'dense/kernel'"):
            cs.models.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_a_sequential_inside_a_sequential_loads_trains_and_saves_back(keras, tmp_path):
    """A Sequential holding a Sequential (with a batch norm), as Keras' data-augmentation idiom nests them.
    Its file and its JSON open in convscope and convscope's in Keras (a nested model written as Keras writes
    it: module "keras"); one SGD step agrees with Keras'."""
    L = keras.layers
    inner = keras.Sequential([L.Conv2D(3, 3, activation="relu"), L.BatchNormalization()], name="inner")
    kmodel = keras.Sequential([L.Input((8, 8, 2)), inner, L.Flatten(), L.Dense(2)], name="outer")
    randomize(kmodel)
    kmodel.save(tmp_path / "k.keras")
    x = np.random.default_rng(3).standard_normal((4, 8, 8, 2)).astype("float32")
    y = np.random.default_rng(4).standard_normal((4, 2)).astype("float32")
    model = cs.models.load_model(tmp_path / "k.keras")
    assert [type(layer).__name__ for layer in model.layers] == ["Sequential", "Flatten", "Dense"]
    expected = keras.ops.convert_to_numpy(kmodel.predict(x, verbose=0))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "ours.keras")
    back = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-5)
    assert [type(layer).__name__ for layer in cs.models.model_from_json(kmodel.to_json()).layers] == \
        ["Sequential", "Flatten", "Dense"]
    assert type(keras.models.model_from_json(model.to_json()).layers[0]).__name__ == "Sequential"
    for lib_model, optimizer in ((kmodel, keras.optimizers.SGD(0.05)), (model, cs.optimizers.SGD(0.05))):
        lib_model.compile(optimizer=optimizer, loss="mse")
        lib_model.train_on_batch(x, y)
    assert_close(model.get_weights(), kmodel.get_weights(), rtol=1e-4, atol=1e-5)
