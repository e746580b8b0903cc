"""Dropout(rate=1.0), which Keras 3 accepts: zeros in training, the identity at inference, no inf/nan."""


import numpy as np
import pytest

from _calls import backward, forward
from convscope import layers as L
from convscope import ops
from convscope.models import Sequential
from convscope.optimizers import SGD


@pytest.mark.parametrize("noise_shape", [None, (None, 1, None)])
@pytest.mark.parametrize("training", [True, False])
def test_layer_with_rate_one_matches_keras(keras, training, noise_shape):
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(np.float32) * 1e30
    theirs = keras.ops.convert_to_numpy(keras.layers.Dropout(1.0, noise_shape=noise_shape)(x, training=training))
    layer = L.Dropout(1.0, noise_shape=noise_shape)
    ours = layer(x, training=training)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    kept, ctx = forward(layer, x, training=training)
    np.testing.assert_array_equal(kept, theirs)
    grad, _ = backward(layer, ctx, np.ones_like(x))
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad, np.zeros_like(x) if training else np.ones_like(x))


def test_config_with_rate_one_round_trips_through_keras(keras):
    config = keras.layers.Dropout(1.0).get_config()
    ours = L.Dropout.from_config({"name": config["name"], "rate": config["rate"], "seed": config["seed"],
                                  "noise_shape": config["noise_shape"]})
    assert ours.rate == 1.0 and ours.get_config()["rate"] == config["rate"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("noise_shape", [None, (1, None)])
def test_op_with_rate_one_gives_zeros_and_a_zero_mask(kernel_path, dtype, noise_shape):
    x = np.random.default_rng(5).standard_normal((4, 9)).astype(dtype)
    y, mask = ops.dropout_forward(x, 1.0, noise_shape, rng=np.random.default_rng(1))
    assert y.dtype == np.dtype(dtype) and mask.dtype == np.dtype(dtype)
    assert y.shape == x.shape and mask.shape == (x.shape if noise_shape is None else (1, 9))
    assert np.isfinite(mask).all() and np.isfinite(y).all()
    np.testing.assert_array_equal(y, 0)
    np.testing.assert_array_equal(ops.dropout_backward(np.ones_like(x), mask), 0)


def test_op_draws_one_key_at_rate_one_as_at_any_rate():
    """The generator advances by one key whatever the rate, so the masks after it do not depend on it."""
    a, b = np.random.default_rng(2), np.random.default_rng(2)
    ops.dropout_forward(np.ones(8), 1.0, rng=a)
    ops.dropout_forward(np.ones(8), 0.5, rng=b)
    assert a.bit_generator.random_raw() == b.bit_generator.random_raw()


@pytest.mark.parametrize("rate, error, pattern", [
    (1.5, ValueError, r"dropout_forward: argument `rate` must be in \[0, 1\], got 1.5"),
    (-0.1, ValueError, r"dropout_forward: argument `rate` must be in \[0, 1\], got -0.1"),
    ("1", TypeError, r"dropout_forward: argument `rate` must be a float in \[0, 1\], got '1'"),
])
def test_op_still_refuses_rates_outside_zero_one(rate, error, pattern):
    with pytest.raises(error, match=pattern):
        ops.dropout_forward(np.ones(3), rate)


def test_layer_still_refuses_rates_above_one():
    with pytest.raises(ValueError, match=r"Dropout 'dropout': argument `rate` must be a finite number in "
                                         r"\[0.0, 1.0\], got 1.5"):
        L.Dropout(1.5)


def test_fit_through_rate_one_matches_keras(keras):
    """Nothing reaches the layers below a Dropout(1.0) in training: Keras and convscope leave the first
    Dense as it was, train the last one's bias only, and agree on the loss."""
    K = keras.layers
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)
    twin = keras.Sequential([keras.Input((5,)), K.Dense(4, activation="relu"), K.Dropout(1.0), K.Dense(2)])
    twin.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    model = Sequential([L.Input(shape=(5,)), L.Dense(4, activation="relu"), L.Dropout(1.0), L.Dense(2)])
    model.compile(optimizer=SGD(learning_rate=0.1), loss="mse")
    model.set_weights([np.asarray(w) for w in twin.get_weights()])
    before = model.get_weights()
    expected = twin.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(history, expected, rtol=1e-5)
    for ours, theirs in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-5, atol=1e-7)
    for ours, old in zip(model.get_weights()[:3], before[:3]):
        np.testing.assert_array_equal(ours, old)
    np.testing.assert_allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
