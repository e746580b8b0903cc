"""predict/evaluate keep nothing for backward (no context, nothing on the layers); the numbers are those
of a normal forward pass."""

import numpy as np
import pytest

from convscope import backend
from convscope.layers import AveragePooling2D, Conv2D, Dense, Flatten, MaxPooling2D
from convscope.models import Sequential


def small_model():
    return Sequential([
        Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 2)),
        MaxPooling2D(),
        Conv2D(3, 2, strides=2, padding="same"),
        AveragePooling2D(padding="same"),
        Flatten(),
        Dense(5, activation="softmax"),
    ])


def test_predict_matches_the_forward_pass_and_keeps_no_context():
    model = small_model()
    x = np.random.default_rng(0).normal(size=(7, 8, 8, 2)).astype("float32")
    expected = model(x)
    attributes = [dict(vars(layer)) for layer in model.layers]
    output, ctx = model.forward(x)                  # a call that keeps its context has one
    assert ctx is not None
    np.testing.assert_allclose(output, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    with backend.no_backward():                     # what predict runs under: no context
        output, ctx = model.forward(x)
    assert ctx is None
    np.testing.assert_array_equal(output, expected)
    with pytest.raises(RuntimeError, match=r"Sequential 'sequential': backward\(\) needs the context"):
        model.backward(ctx, np.ones((7, 5), "float32"))
    h = x
    for layer in model.layers:
        kept_output, kept = layer.forward(h)
        assert kept is not None
        with backend.no_backward():
            output, ctx = layer.forward(h)
        np.testing.assert_allclose(output, kept_output, rtol=1e-6, atol=1e-7)
        if isinstance(layer, Flatten):      # its context is the input's shape, kept or not: no array
            assert ctx == kept == h.shape
        else:
            assert ctx is None
            with pytest.raises(RuntimeError, match=rf"{type(layer).__name__} '{layer.name}': backward\(\) needs"):
                layer.backward(ctx, np.ones_like(output))
        h = output
    np.testing.assert_array_equal(h, expected)
    for layer, before in zip(model.layers, attributes):     # nothing of any call stayed on a layer
        assert vars(layer).keys() == before.keys()
        assert all(vars(layer)[key] is value for key, value in before.items())


def test_no_backward_restores_the_mode_after_an_error():
    with pytest.raises(ZeroDivisionError):
        with backend.no_backward():
            assert not backend.keeps_for_backward()
            1 / 0
    assert backend.keeps_for_backward()


def test_evaluate_after_fit_step_gives_the_same_loss_as_test_on_batch():
    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 5, size=6)
    model.train_on_batch(x, y)
    loss = model.evaluate(x, y, batch_size=6, verbose=0)
    probs = model(x).astype("float64")
    expected = -np.mean(np.log(np.clip(probs[np.arange(6), y], 1e-7, 1)))
    assert loss == pytest.approx(expected, rel=1e-5)
    model.train_on_batch(x, y)            # training still works after an evaluation
