"""Keras 3's `layers.Pipeline` (layers/pipeline.py): layers applied in turn as one layer.

Oracles: Keras 3.15.1 on torch — its Pipeline's standalone calls and configs, a model holding one (its
`.keras` file both ways, and one SGD step of `train_on_batch` from the same weights).
"""

import json

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L


def _np(keras, value):
    return keras.ops.convert_to_numpy(value)


def _images(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")


def _plain(config):
    """A layer config without its name and dtype (Keras writes a dtype policy), nested layers likewise."""
    config = json.loads(json.dumps(config))
    for key in ("name", "dtype"):
        config.pop(key, None)
    if "layers" in config:
        config["layers"] = [(entry["class_name"], _plain(entry["config"])) for entry in config["layers"]]
    return config


def test_a_standalone_call_augments_and_training_false_does_not(keras):
    x = _images((3, 5, 5, 2), seed=1)
    ours = L.Pipeline([L.RandomBrightness((0.2, 0.2), value_range=(0, 10)), L.Rescaling(0.5)])
    theirs = keras.layers.Pipeline([keras.layers.RandomBrightness((0.2, 0.2), value_range=(0, 10)),
                                    keras.layers.Rescaling(0.5)])
    np.testing.assert_allclose(ours(x), _np(keras, theirs(x.copy())), rtol=1e-6)          # (x + 2) / 2
    np.testing.assert_allclose(ours(x, training=False), _np(keras, theirs(x.copy(), training=False)), rtol=1e-6)
    np.testing.assert_allclose(ours(x), (x + 2) * 0.5, rtol=1e-6)
    np.testing.assert_allclose(ours(x, training=False), x * 0.5, rtol=1e-6)
    assert ours.layers[1].scale == 0.5


def test_in_a_model_it_follows_fit_and_predict_and_trains_as_keras(keras):
    """The same weights, one SGD step of train_on_batch (a RandomFlip in the pipeline that never flips at
    inference, a Conv2D whose kernel learns through it) give Keras' weights."""
    k = keras.layers
    kmodel = keras.Sequential([k.Input((6, 6, 3)), k.Pipeline([k.Conv2D(4, 3, activation="relu"), k.Rescaling(2.0)]),
                               k.Flatten(), k.Dense(2)])
    model = cs.models.Sequential([L.Input((6, 6, 3)), L.Pipeline([L.Conv2D(4, 3, activation="relu"), L.Rescaling(2.0)]),
                                  L.Flatten(), L.Dense(2)])
    model.set_weights([_np(keras, w) for w in kmodel.get_weights()])
    x, y = _images((5, 6, 6, 3), seed=2), _images((5, 2), seed=3)
    np.testing.assert_allclose(model.predict(x, verbose=0), _np(keras, kmodel.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-6)
    kmodel.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.compile(optimizer=cs.optimizers.SGD(0.1), loss="mse")
    kmodel.train_on_batch(x, y)
    model.train_on_batch(x, y)
    for ours, theirs in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(ours, _np(keras, theirs), rtol=1e-5, atol=1e-6)
    assert [w.shape for w in model.layers[0].weights] == [(3, 3, 3, 4), (4,)]


def test_configs_and_files_both_ways(keras, tmp_path):
    k = keras.layers
    theirs = k.Pipeline([k.RandomFlip("horizontal", seed=2), k.RandomRotation(0.1)], name="augment")
    ours = L.Pipeline([L.RandomFlip("horizontal", seed=2), L.RandomRotation(0.1)], name="augment")
    assert _plain(ours.get_config()) == _plain(theirs.get_config())
    assert set(ours.get_config()) == set(theirs.get_config()) == {"layers", "name"}
    rebuilt = L.deserialize({"class_name": "Pipeline", "config": json.loads(json.dumps(theirs.get_config()))})
    assert rebuilt.name == "augment" and [type(layer).__name__ for layer in rebuilt.layers] == ["RandomFlip",
                                                                                                 "RandomRotation"]
    back = k.Pipeline.from_config(json.loads(json.dumps(ours.get_config())))
    assert _plain(back.get_config()) == _plain(theirs.get_config())
    kmodel = keras.Sequential([k.Input((6, 6, 3)), k.Pipeline([k.RandomFlip(), k.Conv2D(2, 3)]), k.Flatten(),
                               k.Dense(1)])
    kmodel.save(tmp_path / "k.keras")
    x = _images((2, 6, 6, 3), seed=4)
    model = cs.models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), _np(keras, kmodel.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-6)
    model.save(tmp_path / "ours.keras")
    reloaded = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(_np(keras, reloaded.predict(x, verbose=0)), model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_errors_name_the_culprit():
    with pytest.raises(TypeError, match=r"Pipeline 'pipeline\w*': argument `layers` must be a list of layers, got"):
        L.Pipeline(L.RandomFlip())
    with pytest.raises(ValueError, match=r"Pipeline.from_config: the config must hold 'layers'"):
        L.Pipeline.from_config({"name": "p"})
