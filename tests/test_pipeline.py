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


def _sgd_step_as_keras(keras, model, kmodel, x, y, rtol):
    """One SGD step of mse from the same weights gives Keras' weights."""
    kmodel.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.compile(optimizer=cs.optimizers.SGD(0.1), loss="mse")
    kmodel.train_on_batch(x, y)
    model.train_on_batch(x, y)
    for ours, theirs in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(ours, _np(keras, theirs), rtol=rtol, atol=1e-6)


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
    _sgd_step_as_keras(keras, model, kmodel, x, y, rtol=1e-5)
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


def test_gradients_pass_through_augmentation_and_dropout_inside_traced_calls(keras):
    """A Pipeline (a traced call) holding a convolution before an augmentation layer or a dropout at rate 0:
    one SGD step from the same weights moves the convolution as Keras moves it; on a tape, an augmentation
    layer passes the gradient (Keras' torch autograd: RandomBrightness adds a constant)."""
    import torch
    k = keras.layers
    x, y = _images((4, 6, 6, 3), seed=7), _images((4, 2), seed=8)
    for ours_tail, their_tail in [(L.RandomSharpness((0.8, 0.8)), k.RandomSharpness((0.8, 0.8))),
                                  (L.Dropout(0.0), k.Dropout(0.0))]:
        kmodel = keras.Sequential([k.Input((6, 6, 3)), k.Pipeline([k.Conv2D(3, 3), their_tail]), k.Flatten(),
                                   k.Dense(2)])
        model = cs.models.Sequential([L.Input((6, 6, 3)), L.Pipeline([L.Conv2D(3, 3), ours_tail]), L.Flatten(),
                                      L.Dense(2)])
        model.set_weights([_np(keras, w) for w in kmodel.get_weights()])
        _sgd_step_as_keras(keras, model, kmodel, x, y, rtol=1e-4)
    with cs.ops.Tape() as tape:
        watched = tape.watch(x)
        loss = cs.ops.sum(L.RandomBrightness((0.1, 0.1), value_range=(0, 10))(watched))
        grad = tape.gradient(loss, watched)
    x_t = torch.tensor(x, requires_grad=True)
    torch.sum(k.RandomBrightness((0.1, 0.1), value_range=(0, 10))(x_t * 1.0)).backward()
    np.testing.assert_array_equal(grad, x_t.grad.numpy())


def test_training_is_inherited_as_keras_inherits_it(keras):
    """A custom layer calling an augmentation layer or a Pipeline without `training`: called alone it augments
    (neither says: the augmentation's own default, True), inside predict it does not, with training=True it
    does; a Pipeline takes one image and Keras' dict."""
    brighten = dict(factor=(0.2, 0.2), value_range=(0, 10))

    def holder(lib, inner):
        class Holder(lib.layers.Layer):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def call(self, x):
                return self.inner(x)
        return Holder()

    x = _images((2, 4, 4, 1), seed=9)
    for make in (lambda lib: lib.layers.RandomBrightness(**brighten),
                 lambda lib: lib.layers.Pipeline([lib.layers.RandomBrightness(**brighten)])):
        ours, theirs = holder(cs, make(cs)), holder(keras, make(keras))
        for kwargs in ({}, {"training": True}, {"training": False}):
            np.testing.assert_allclose(ours(x, **kwargs), _np(keras, theirs(x.copy(), **kwargs)), rtol=1e-6)
        inputs = L.Input((4, 4, 1))
        model = cs.models.Model(inputs, holder(cs, make(cs))(inputs))
        np.testing.assert_allclose(model.predict(x, verbose=0), x, rtol=1e-6)
    pipeline = L.Pipeline([L.RandomBrightness(**brighten), L.MixUp()])
    out = pipeline({"images": x, "labels": np.eye(2, dtype=np.float32)})
    assert out["images"].shape == x.shape and out["labels"].shape == (2, 2)
    np.testing.assert_allclose(L.Pipeline([L.RandomBrightness(**brighten)])(x[0]), x[0] + 2, rtol=1e-6)
    single = L.RandomFlip()({"images": x[0], "labels": np.int64(3)})
    assert single["images"].shape == x[0].shape and single["labels"] == 3


CALLS = {      # a custom layer's `call` around an augmentation (or a dropout), as Keras scripts write them
    "no training argument": ("def call(self, x):\n    return self.inner(x)", "aug"),
    "None passed on": ("def call(self, x, training=None):\n    return self.inner(x, training=training)", "aug"),
    "None by default": ("def call(self, x, training=None):\n    return self.inner(x)", "aug"),
    "False by default": ("def call(self, x, training=False):\n    return self.inner(x)", "aug"),
    "True by default": ("def call(self, x, training=True):\n    return self.inner(x)", "drop"),
    "True by default, passed on": ("def call(self, x, training=True):\n    return self.inner(x, training=training)",
                                   "drop"),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_keras_rule_for_training_in_custom_layers_and_sequential_models(keras, name):
    """Keras' rule: `training` as passed (None too), else the enclosing call's True or False, else the layer's
    `call` default (True for augmentation, False for dropout, None for `training=None`); a Sequential given none
    lets each layer take its own default (its augmentation augments, its dropout infers)."""
    source, inner = CALLS[name]
    x = np.arange(32, dtype=np.float32).reshape(2, 4, 4, 1)

    def make(lib):
        namespace = {}
        exec("class Holder(base):\n    def __init__(self, inner):\n        super().__init__()\n"
             "        self.inner = inner\n" + "\n".join("    " + line for line in source.splitlines()),
             {"base": lib.layers.Layer}, namespace)
        made = (lib.layers.RandomBrightness((0.2, 0.2), value_range=(0, 100)) if inner == "aug"
                else lib.layers.Dropout(0.5, seed=1))
        return namespace["Holder"](made)

    ours, theirs = make(cs), make(keras)
    for kwargs in ({}, {"training": True}, {"training": False}, {"training": None}):
        changed = [not np.array_equal(np.asarray(y), x) for y in (ours(x, **kwargs),
                                                                  _np(keras, theirs(x.copy(), **kwargs)))]
        assert changed[0] == changed[1], (name, kwargs, changed)
    for lib in (cs, keras):
        model = lib.Sequential([lib.layers.Input((4, 4, 1)), lib.Sequential([lib.layers.RandomBrightness(
            (0.2, 0.2), value_range=(0, 100))]), lib.layers.Dropout(0.5)])
        y = np.asarray(model(x)) if lib is cs else _np(keras, model(x.copy()))
        np.testing.assert_allclose(y, x + 20, rtol=1e-6)          # augmented; the dropout inferring
        predicted = model.predict(x, verbose=0)
        np.testing.assert_allclose(np.asarray(predicted) if lib is cs else _np(keras, predicted), x, rtol=1e-6)


def test_custom_objects_reach_a_pipelines_layers():
    class Scale(L.Layer):
        def call(self, x):
            return x * 2.0

    model = cs.models.Sequential([L.Input((3,)), L.Pipeline([Scale(), L.Dense(2)])])
    config = model.get_config()
    with pytest.raises(ValueError, match="unknown layer class 'Scale'"):
        cs.models.Sequential.from_config(config)
    rebuilt = cs.models.Sequential.from_config(config, custom_objects={"Scale": Scale})
    assert [type(layer).__name__ for layer in rebuilt.layers[0].layers] == ["Scale", "Dense"]
    again = L.deserialize(L.serialize(model.layers[0]), custom_objects={"Scale": Scale})
    assert type(again.layers[0]) is Scale


def test_a_composite_names_itself_in_its_errors_and_takes_an_empty_batch():
    with pytest.raises(ValueError, match=r"RandAugment 'rand_augment\w*': expected a 4-D input"):
        L.RandAugment()(np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match=r"AugMix 'aug_mix\w*': its RandomColorDegeneration cannot take the input"):
        L.AugMix()(np.zeros((2, 8, 8, 4), np.float32))
    empty = np.zeros((0, 8, 8, 3), np.float32)
    for layer in (L.AutoContrast(), L.RandAugment(num_ops=11), L.Equalization()):
        assert layer(empty, training=True).shape == empty.shape


def test_one_image_at_a_time_inside_a_traced_call():
    """A custom layer augmenting each image of its batch alone (rank 3) trains; on a tape one image passes the
    gradient."""

    class EachImage(L.Layer):
        def __init__(self):
            super().__init__()
            self.brighten = L.RandomBrightness((0.1, 0.1), value_range=(0, 10))

        def call(self, x, training=None):
            return cs.ops.stack([self.brighten(x[i], training=training) for i in range(2)])

    inputs = L.Input((4, 4, 1))
    model = cs.models.Model(inputs, L.Dense(1)(L.Flatten()(EachImage()(L.Conv2D(1, 1)(inputs)))))
    model.compile(optimizer=cs.optimizers.SGD(0.01), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(_images((2, 4, 4, 1), seed=10), np.ones((2, 1), np.float32))
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    image = _images((4, 4, 3), seed=11)
    with cs.ops.Tape() as tape:
        watched = tape.watch(image)
        grad = tape.gradient(cs.ops.sum(L.RandomBrightness((0.1, 0.1), value_range=(0, 10))(watched)), watched)
    np.testing.assert_array_equal(grad, np.ones_like(image))


def test_a_pipeline_holding_a_sequential_round_trips(keras, tmp_path):
    """A model inside a Pipeline: JSON, clone_model, .keras files both ways (a model is a layer in
    `layers.deserialize` too)."""
    model = cs.models.Sequential([L.Input((6, 6, 3)), L.Pipeline([L.RandomFlip(), cs.models.Sequential(
        [L.RandomRotation(0.1), L.Conv2D(2, 3)])]), L.Flatten(), L.Dense(1)])
    x = _images((2, 6, 6, 3), seed=12)
    expected = model.predict(x, verbose=0)
    assert type(cs.models.model_from_json(model.to_json()).layers[0].layers[1]).__name__ == "Sequential"
    clone = cs.models.clone_model(model)
    assert [type(layer).__name__ for layer in clone.layers[0].layers[1].layers] == ["RandomRotation", "Conv2D"]
    model.save(tmp_path / "ours.keras")
    np.testing.assert_array_equal(cs.models.load_model(tmp_path / "ours.keras").predict(x, verbose=0), expected)
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(_np(keras, theirs.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    np.testing.assert_allclose(cs.models.load_model(tmp_path / "theirs.keras").predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    assert type(L.deserialize(L.serialize(cs.models.Sequential([L.Dense(2)])))).__name__ == "Sequential"
