"""Keras' built-in loss functions (mean squared and absolute error, Huber, the crossentropies) called on traced
values, as a custom call does (`self.add_loss(keras.losses.mse(x, y))`): the same numbers as on arrays, and
gradients in both arguments equal to Keras 3.15.1's on torch's autograd; a model using one trains as Keras'."""

import numpy as np
import pytest

import convscope as cs
from convscope.layers import Variable
from convscope.ops.tape import Tape
from _oracle import assert_trains_as_keras

CASES = [("mean_squared_error", {}), ("mean_absolute_error", {}), ("huber", dict(delta=0.3)),
         ("binary_crossentropy", {}), ("binary_crossentropy", dict(from_logits=True, label_smoothing=0.1)),
         ("categorical_crossentropy", dict(label_smoothing=0.2)), ("categorical_crossentropy", dict(from_logits=True)),
         ("sparse_categorical_crossentropy", {}), ("sparse_categorical_crossentropy", dict(from_logits=True))]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_values_and_gradients_in_both_arguments_match_keras(keras, name, kwargs):
    import torch
    rng = np.random.default_rng(len(name) + len(kwargs))
    prediction = rng.uniform(0.05, 0.95, (4, 5)).astype("float32")
    if "crossentropy" in name and not kwargs.get("from_logits"):
        prediction[0, 0], prediction[1, 1] = 0.0, 1.0           # clipped to [1e-7, 1 - 1e-7] as in Keras
    sparse = name.startswith("sparse")
    target = rng.integers(0, 5, 4) if sparse else rng.uniform(0.0, 1.0, (4, 5)).astype("float32")
    ours = getattr(cs.losses, name)
    predicted, expected_target = Variable(prediction, name="p"), None if sparse else Variable(target, name="t")
    with Tape() as tape:
        tape.watch(predicted)
        if not sparse:
            tape.watch(expected_target)
        value = ours(target if sparse else expected_target, predicted, **kwargs)
        total = cs.ops.sum(value)
    sources = [predicted] if sparse else [predicted, expected_target]
    grads = tape.gradient(total, sources)
    np.testing.assert_allclose(value.value, ours(target, prediction, **kwargs), rtol=1e-6, atol=1e-7)   # arrays'
    torch_p = torch.tensor(prediction, requires_grad=True)
    torch_t = torch.tensor(target) if sparse else torch.tensor(target, requires_grad=True)
    theirs = getattr(keras.losses, name)(torch_t, torch_p, **kwargs)
    theirs.sum().backward()
    np.testing.assert_allclose(value.value, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[0], torch_p.grad.numpy(), rtol=1e-4, atol=1e-6)
    if not sparse:
        np.testing.assert_allclose(grads[1], torch_t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_an_autoencoder_adding_keras_losses_of_its_call_trains_as_keras(keras):
    """Keras' VAE pattern: the reconstruction loss of the call's own values given to `add_loss`."""
    def build(lib):
        class Reconstructing(lib.Model):
            def __init__(self):
                super().__init__()
                self.encode, self.decode = lib.layers.Dense(3, activation="tanh"), lib.layers.Dense(6,
                                                                                                      "sigmoid")

            def call(self, x):
                code = self.encode(x)
                rebuilt = self.decode(code)
                self.add_loss(lib.ops.mean(lib.losses.binary_crossentropy(x, rebuilt)))
                self.add_loss(0.1 * lib.ops.mean(lib.losses.mean_squared_error(code, lib.ops.zeros_like(code))))
                return rebuilt
        return Reconstructing()
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (8, 6)).astype("float32")
    theirs, ours = build(keras), build(cs)
    theirs(x[:1])
    ours(x[:1])
    assert_trains_as_keras(keras, theirs, ours, x, x, lambda lib: lib.optimizers.SGD(0.5))


def test_a_regularizer_of_a_weight_and_of_an_output_given_to_add_loss_trains_as_keras(keras):
    """`self.add_loss(regularizer(self.kernel))` and of an output inside a call: on the tape, as in Keras (a plain
    float would count the penalty and leave its gradient out)."""
    def build(lib):
        class Penalized(lib.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.dense = lib.layers.Dense(4)

            def call(self, x):
                y = self.dense(x)
                self.add_loss(lib.regularizers.L1L2(l1=0.01, l2=0.02)(self.dense.kernel))
                self.add_loss(lib.regularizers.L2(0.05)(y))
                return y
        inputs = lib.Input((5,))
        return lib.Model(inputs, lib.layers.Dense(2)(Penalized()(inputs)))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 5)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    assert_trains_as_keras(keras, build(keras), build(cs), x, y, lambda lib: lib.optimizers.SGD(0.2))
