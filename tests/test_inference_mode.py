"""predict/evaluate keep nothing for backward; the numbers are those of a normal forward pass."""

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
    assert model.layers[0]._ctx is not None
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    for layer in model.layers[:4]:
        assert layer._ctx is None
    with pytest.raises(RuntimeError, match=r"AveragePooling2D 'average_pooling2d': backward\(\) needs a forward pass"):
        model._backward(np.ones((7, 5), "float32"))


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
