"""Keras' custom-object registry: `register_keras_serializable`, `get_custom_objects`, `custom_object_scope`.

Oracle: Keras 3.15.1 on the torch backend — the same registered class on both sides; a file each one
writes opens in the other without `custom_objects`, with the same outputs; the registered name as Keras
writes it ("package>Name")."""

import threading

import numpy as np
import pytest

import convscope as cs
from convscope import ops


def make_scale(module, base, package):
    @module.saving.register_keras_serializable(package=package)
    class TestScale(base):
        def __init__(self, k=2.0, **kwargs):
            super().__init__(**kwargs)
            self.k = k

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, x):
            return x * self.w * self.k

        def get_config(self):
            return {**super().get_config(), "k": self.k}
    return TestScale


def _model(module, scale):
    return module.Sequential([module.Input((3,)), module.layers.Dense(4), scale(k=3.0)])


def test_a_registered_class_travels_both_ways_as_keras(keras, tmp_path):
    ours_cls, theirs_cls = make_scale(cs, cs.layers.Layer, "Tests"), make_scale(keras, keras.layers.Layer, "Tests")
    assert cs.saving.get_registered_name(ours_cls) == keras.saving.get_registered_name(theirs_cls) == \
        "Tests>TestScale"
    assert cs.saving.get_registered_object("Tests>TestScale") is ours_cls
    assert cs.layers.serialize(ours_cls())["registered_name"] == \
        keras.layers.serialize(theirs_cls())["registered_name"]
    ours, theirs = _model(cs, ours_cls), _model(keras, theirs_cls)
    rng = np.random.default_rng(0)
    theirs.set_weights([rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    x = rng.normal(size=(2, 3)).astype("float32")
    theirs.save(tmp_path / "keras.keras")
    loaded = cs.models.load_model(tmp_path / "keras.keras")        # no custom_objects: the registry has it
    assert type(loaded.layers[-1]) is ours_cls and loaded.layers[-1].k == 3.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-6, atol=1e-6)
    for suffix in (".keras", ".h5", ".convscope"):
        ours.save(tmp_path / f"ours{suffix}")
        again = cs.saving.load_model(tmp_path / f"ours{suffix}")
        assert type(again.layers[-1]) is ours_cls
        np.testing.assert_array_equal(again.predict(x, verbose=0), ours.predict(x, verbose=0))
    opened = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(opened.predict(x, verbose=0)), ours.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def test_scopes_and_get_custom_objects_find_a_class_in_their_thread_only(tmp_path):
    class Doubled(cs.layers.Layer):
        def call(self, x):
            return ops.multiply(x, 2.0)
    model = cs.Sequential([cs.Input((2,)), Doubled(name="doubled")])
    config = model.get_config()
    with pytest.raises(ValueError, match="unknown layer class 'Doubled'"):
        cs.Sequential.from_config(config)
    seen = []
    with cs.saving.custom_object_scope({"Doubled": Doubled}):
        assert type(cs.Sequential.from_config(config).layers[0]) is Doubled
        other = threading.Thread(target=lambda: seen.append(_refused(config)))
        other.start()
        other.join()
    assert seen == [True]                       # another thread does not see this thread's scope
    assert _refused(config)
    cs.utils.get_custom_objects()["Doubled"] = Doubled       # Keras' other way to register
    try:
        assert type(cs.Sequential.from_config(config).layers[0]) is Doubled
    finally:
        del cs.utils.get_custom_objects()["Doubled"]


def _refused(config) -> bool:
    try:
        cs.Sequential.from_config(config)
    except ValueError:
        return True
    return False


def test_what_is_refused_is_named():
    with pytest.raises(ValueError, match="register_keras_serializable: argument `package` must be a string "
                                         "without '>'"):
        cs.saving.register_keras_serializable(package="a>b")
    with pytest.raises(TypeError, match="custom_object_scope: expected dicts"):
        cs.saving.custom_object_scope(["Doubled"])
    with cs.saving.custom_object_scope({"Dense": len}):
        with pytest.raises(ValueError, match="the custom object for layer class 'Dense' is <built-in function len>, "
                                             "not a Layer subclass"):
            cs.layers.deserialize({"class_name": "Dense", "config": {"units": 2}})


def test_one_scope_object_shared_by_threads_and_malformed_names():
    class Doubled(cs.layers.Layer):
        def call(self, x):
            return ops.multiply(x, 2.0)
    config = cs.Sequential([cs.Input((2,)), Doubled(name="doubled")]).get_config()
    shared, errors, found = cs.saving.custom_object_scope({"Doubled": Doubled}), [], []
    barrier = threading.Barrier(4)

    def work():
        try:
            with shared:
                barrier.wait(5)                 # every thread inside the one scope object at once
                found.append(type(cs.Sequential.from_config(config).layers[0]) is Doubled)
        except Exception as error:          # noqa: BLE001 - the test reports any
            errors.append(error)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and found == [True] * 4 and _refused(config)
    with pytest.raises(ValueError, match="'class_name' must be a string naming a layer class, got \\['x'\\]"):
        cs.layers.deserialize({"class_name": ["x"], "config": {}})
    with pytest.raises(ValueError, match="unknown layer class 'Nope'"):
        cs.layers.deserialize({"class_name": "Nope", "registered_name": ["x"], "config": {}})


def test_a_registered_sequential_subclass_comes_back_from_json():
    @cs.saving.register_keras_serializable(package="Tests")
    class Halved(cs.Sequential):
        def call(self, x, training=None):
            return 0.5 * super().call(x, training=training)

        @classmethod
        def from_config(cls, config):           # Keras' signature: the config only
            return super().from_config(config)
    model = Halved([cs.Input((2,)), cs.layers.Dense(2, kernel_initializer="ones")])
    again = cs.models.model_from_json(model.to_json())
    assert type(again) is Halved
    x = np.ones((1, 2), "float32")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
