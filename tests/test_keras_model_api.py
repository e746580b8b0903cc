"""Keras 3 attributes scripts use on layers and models: `variables`, `trainable_variables`,
`non_trainable_variables` and `predict_on_batch`, against real Keras (torch backend)."""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L


def _pair(keras, frozen: bool):
    def build(lib):
        inputs = lib.Input((6, 6, 2))
        x = lib.layers.Conv2D(3, 3, name="conv")(inputs)
        x = lib.layers.BatchNormalization(name="bn")(x)
        x = lib.layers.Flatten()(x)
        return lib.Model(inputs, lib.layers.Dense(2, name="head")(x))

    ours, theirs = build(cs), build(keras)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    if frozen:
        for model in (ours, theirs):
            model.get_layer("bn").trainable = False
    return ours, theirs


@pytest.mark.parametrize("frozen", [False, True])
def test_variables_lists_are_keras_lists(keras, frozen):
    ours, theirs = _pair(keras, frozen)
    for attribute in ("variables", "trainable_variables", "non_trainable_variables"):
        expected = [v.path if hasattr(v, "path") else v.name for v in getattr(theirs, attribute)]
        assert [v.name for v in getattr(ours, attribute)] == expected, attribute
        for layer in ("bn", "head"):
            mine = getattr(ours.get_layer(layer), attribute)
            assert [v.name for v in mine] == [v.path for v in getattr(theirs.get_layer(layer), attribute)]
    assert ours.trainable_variables == ours.trainable_weights and ours.variables == ours.weights


def test_predict_on_batch_is_predict_on_one_batch(keras, capsys):
    ours, theirs = _pair(keras, False)
    x = np.random.default_rng(0).standard_normal((40, 6, 6, 2)).astype(np.float32)
    got = ours.predict_on_batch(x)
    assert capsys.readouterr().out == ""                 # nothing printed, as Keras'
    np.testing.assert_allclose(got, np.asarray(theirs.predict_on_batch(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got, ours.predict(x, batch_size=40, verbose=0))
    sequential = cs.Sequential([cs.Input((3,)), L.Dense(2)])
    assert sequential.predict_on_batch(np.ones((5, 3), np.float32)).shape == (5, 2)
    with pytest.raises(ValueError, match="expects shape"):
        ours.predict_on_batch(np.ones((2, 5, 5, 2), np.float32))
