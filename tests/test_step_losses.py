"""The losses a layer's call adds to its fit/evaluate step (layers/step_losses.py): activity regularizers wherever
the layer is called (a graph's layers, a model nested in another, a layer used twice, a sublayer inside a custom
layer, a subclassed model or MultiHeadAttention, a wrapped layer) and `add_loss` in a custom `call`.  Keras 3.15.1
(torch backend) is the oracle of the losses fit and evaluate report and of the weights after training; float64
finite differences of the reported loss check the gradients."""

import numpy as np
import pytest

import convscope
from convscope import layers as L
from convscope import optimizers

from _gradcheck import assert_gradients_close, numerical_gradient


def _models(lib, case):
    """(model, input shape, target shapes) of `case` built with `lib` (keras or convscope)."""
    K = lib.layers
    if case == "functional":
        i = K.Input((5,))
        return lib.Model(i, K.Dense(2)(K.Dense(4, activation="tanh", activity_regularizer="l2")(i))), (8, 5), (8, 2)
    if case == "nested_sequential":
        inner = lib.Sequential([K.Input((5,)), K.Dense(4, activity_regularizer="l1"), K.Dense(3, activation="relu",
                                                                                          activity_regularizer="l2")])
        return lib.Sequential([K.Input((5,)), inner, K.Dense(2)]), (8, 5), (8, 2)
    if case == "nested_functional":
        i = K.Input((5,))
        inner = lib.Model(i, K.Dense(4, activity_regularizer="l2")(i))
        j = K.Input((5,))
        return lib.Model(j, K.Dense(2)(K.Add()([inner(j), K.Dense(4)(j)]))), (8, 5), (8, 2)
    if case == "shared_layer":
        i = K.Input((4,))
        shared = K.Dense(4, activation="tanh", activity_regularizer=lib.regularizers.L1L2(0.01, 0.01))
        return lib.Model(i, K.Dense(2)(shared(shared(i)))), (8, 4), (8, 2)
    if case == "conv_block":                        # chains the plans fuse, penalized at their ends
        i = K.Input((6, 6, 2))
        x = K.MaxPooling2D(2, activity_regularizer="l2")(K.Conv2D(3, 3, padding="same", activation="relu")(i))
        x = K.Conv2D(3, 3, padding="same")(x)
        x = K.ReLU(activity_regularizer="l2")(K.BatchNormalization()(x))
        return lib.Model(i, K.Dense(2)(K.GlobalAveragePooling2D()(x))), (8, 6, 6, 2), (8, 2)
    if case == "two_outputs":
        i = K.Input((5,))
        h = K.Dense(4, activity_regularizer="l2", name="h")(i)
        return lib.Model(i, [K.Dense(2, name="a")(h), K.Dense(1, name="b")(h)]), (8, 5), [(8, 2), (8, 1)]
    if case == "attention":                          # MultiHeadAttention gives it to each projection
        i = K.Input((4, 6))
        x = K.MultiHeadAttention(2, 3, activity_regularizer="l2")(i, i)
        return lib.Model(i, K.Dense(2)(K.Flatten()(x))), (8, 4, 6), (8, 2)
    if case == "custom_layer":                       # a sublayer called inside a custom layer's call

        class Block(K.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.dense = K.Dense(4, activity_regularizer="l2")
                self.inner = lib.Sequential([K.Input((4,)), K.Dense(3, activity_regularizer="l1")])

            def call(self, x):
                return self.inner(self.dense(x), training=True) * 2.0
        i = K.Input((5,))
        return lib.Model(i, K.Dense(2)(Block()(i))), (8, 5), (8, 2)
    if case == "subclassed_model":

        class Net(lib.Model):
            def __init__(self):
                super().__init__()
                self.hidden = K.Dense(4, activity_regularizer="l1")
                self.head = K.Dense(2)

            def call(self, x):
                return self.head(self.hidden(x))
        return Net(), (8, 5), (8, 2)
    if case == "spectral_normalization":             # Keras' wrapper calls the layer: its penalty counts
        i = K.Input((5,))
        return lib.Model(i, K.Dense(2)(K.SpectralNormalization(K.Dense(4, activity_regularizer="l2"))(i))), \
            (8, 5), (8, 2)
    if case == "add_loss":                           # Keras' guide to subclassing: add_loss in a model and a layer

        class ActivityPenalty(K.Layer):
            def call(self, inputs):
                self.add_loss([0.01 * lib.ops.mean(inputs), 0.001 * lib.ops.square(inputs)])   # each summed
                return inputs

        class Encoder(K.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.hidden, self.mean, self.log_var = K.Dense(6, activation="tanh"), K.Dense(2), K.Dense(2)

            def call(self, x):
                h = self.hidden(x)
                return self.mean(h), self.log_var(h)

        class AutoEncoder(lib.Model):
            def __init__(self):
                super().__init__()
                self.encoder, self.penalty, self.decoder = Encoder(), ActivityPenalty(), K.Dense(5)

            def call(self, x):
                mean, log_var = self.encoder(x)
                ops = lib.ops
                self.add_loss(-0.5 * ops.mean(log_var - ops.square(mean) - ops.exp(log_var) + 1))
                return self.decoder(self.penalty(mean))
        return AutoEncoder(), (8, 5), (8, 5)
    if case == "add_loss_in_graphs":                 # a custom layer's add_loss in a Sequential inside a Functional

        class Smooth(K.Layer):
            def call(self, inputs):
                self.add_loss(0.1 * lib.ops.sum(lib.ops.abs(inputs[:, 1:] - inputs[:, :-1])))
                return inputs
        inner = lib.Sequential([K.Input((4,)), K.Dense(4), Smooth()])
        i = K.Input((5,))
        return lib.Model(i, K.Dense(2)(inner(Smooth()(K.Dense(4)(i))))), (8, 5), (8, 2)
    if case == "subclass_calling_super":             # the built-in pass through super().call: one penalty per call

        class Scaled(K.Dense):
            def call(self, x):
                return super().call(x) * 0.5
        i = K.Input((5,))
        return lib.Model(i, K.Dense(2)(Scaled(4, activity_regularizer="l2")(i))), (8, 5), (8, 2)
    if case == "wrapped_attention":                  # Attention's own activity regularizer, in a custom layer

        class Attend(K.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.attention = K.Attention(activity_regularizer="l2")

            def call(self, x):
                return self.attention([x, x])
        i = K.Input((4, 3))
        return lib.Model(i, K.Dense(2)(K.Flatten()(Attend()(i)))), (8, 4, 3), (8, 2)
    if case == "discarded_sublayer":                 # a sublayer's add_loss whose output the call does not use

        class Penalty(K.Layer):
            def call(self, x):
                self.add_loss(0.05 * lib.ops.sum(lib.ops.square(x)))
                return x

        class Side(K.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.dense, self.penalty = K.Dense(4), Penalty()

            def call(self, x):
                h = self.dense(x)
                self.penalty(h * 2.0)
                return h
        i = K.Input((5,))
        return lib.Model(i, K.Dense(2)(Side()(i))), (8, 5), (8, 2)
    assert case == "time_distributed"                # Keras' wrapper calls `layer.call`: no penalty
    i = K.Input((3, 5))
    return lib.Model(i, K.Flatten()(K.TimeDistributed(K.Dense(2, activity_regularizer="l2"))(i))), (8, 3, 5), (8, 6)


CASES = ["functional", "nested_sequential", "nested_functional", "shared_layer", "conv_block", "two_outputs",
         "attention", "custom_layer", "subclassed_model", "spectral_normalization", "time_distributed", "add_loss",
         "add_loss_in_graphs", "subclass_calling_super", "wrapped_attention", "discarded_sublayer"]


def _data(input_shape, target_shapes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=input_shape).astype("float32")
    if isinstance(target_shapes, list):
        return x, [rng.normal(size=shape).astype("float32") for shape in target_shapes]
    return x, rng.normal(size=target_shapes).astype("float32")


@pytest.mark.parametrize("case", CASES)
def test_fit_and_evaluate_losses_and_weights_match_keras(keras, case):
    keras.utils.set_random_seed(0)
    theirs, input_shape, target_shapes = _models(keras, case)
    ours, _, _ = _models(convscope, case)
    x, y = _data(input_shape, target_shapes)
    theirs(x[:1])
    ours(x[:1])
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    results = []
    for model, lib in ((theirs, keras), (ours, convscope)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        before = model.evaluate(x, y, verbose=0)
        history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history["loss"]
        results.append((before, history, model.evaluate(x, y, verbose=0), model.get_weights()))
    (k_before, k_history, k_after, k_weights), (before, history, after, weights) = results
    np.testing.assert_allclose(before, k_before, rtol=1e-5)
    np.testing.assert_allclose(history, k_history, rtol=1e-5)
    np.testing.assert_allclose(after, k_after, rtol=1e-5)
    for got, expected in zip(weights, k_weights):
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-4, atol=1e-6)


def test_the_penalty_counts_once_per_call_and_not_outside_a_step():
    """A layer used twice adds two penalties (each on its own output); a plain forward/backward of the model (a
    saliency map's) adds no penalty gradient, as Keras' gradient of the outputs includes no loss of the model."""
    x = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")

    def twice(regularizer):
        i = L.Input((3,))
        shared = L.Dense(3, activity_regularizer=regularizer, kernel_initializer="identity", bias_initializer="ones")
        return convscope.Model(i, shared(shared(i)))
    model, plain = twice("l1"), twice(None)
    model.compile(optimizer="sgd", loss="mse")
    zeros = np.zeros((4, 3), "float32")
    expected = np.mean((x + 2) ** 2) + 0.01 * (np.abs(x + 1).sum() + np.abs(x + 2).sum()) / 4
    assert model.evaluate(x, zeros, verbose=0) == pytest.approx(float(expected), rel=1e-6)
    gradients = []
    for net in (model, plain):
        out, execution = net.forward(x, training=True)
        gradients.append(net.backward(execution, np.ones_like(out)))
    np.testing.assert_array_equal(gradients[0][0], gradients[1][0])
    for (_, got), (_, expected) in zip(gradients[0][1], gradients[1][1]):
        np.testing.assert_array_equal(got, expected)


def test_add_loss_takes_numbers_and_arrays_and_counts_only_inside_a_step():
    class Checked(L.Layer):
        def __init__(self, loss, **kwargs):
            super().__init__(**kwargs)
            self.loss = loss

        def call(self, inputs):
            self.add_loss(self.loss)
            return inputs
    x = np.ones((2, 3), "float32")
    for bad, name in (("0.1", "str"), (None, "NoneType"), (np.array([True]), "ndarray")):
        with pytest.raises((TypeError, ValueError), match=rf"Checked 'c'.add_loss: argument `loss` must be a number "
                                                          rf"or an array of numbers \(or a list of them\), got {name}"):
            Checked(bad, name="c")(x)
    assert np.array_equal(Checked(np.float32(2.0))(x), x)                # outside a step: nothing to add to
    model = convscope.Sequential([L.Input((3,)), Checked(np.array([1.5, 2.0]))])
    model.compile(optimizer="sgd", loss="mse")
    assert model.evaluate(x, x, verbose=0) == pytest.approx(3.5)


@pytest.mark.parametrize("case", ["nested_sequential", "nested_functional", "shared_layer", "custom_layer",
                                  "add_loss", "add_loss_in_graphs"])
def test_the_reported_loss_and_its_gradient_agree_in_float64(case):
    """The gradient fit applies is that of the loss it reports (penalties included), by finite differences."""
    convscope.backend.set_floatx("float64")
    try:
        convscope.utils.set_random_seed(3)
        model, input_shape, target_shapes = _models(convscope, case)
    finally:
        convscope.backend.set_floatx("float32")
    x, y = (a.astype("float64") for a in _data(input_shape, target_shapes))
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse")
    model.train_on_batch(x, y)
    for variable in model.trainable_weights:
        numeric = numerical_gradient(lambda: model.test_on_batch(x, y), variable.value)
        assert_gradients_close(variable.grad, numeric, rtol=1e-6, atol=1e-9)


def test_an_add_loss_on_an_output_without_a_loss_still_trains_as_keras(keras):
    """Two outputs, the second compiled with no loss but carrying an add_loss: its branch trains through that term
    (its backward once was skipped for want of an output gradient)."""
    def build(lib):
        class Penalty(lib.layers.Layer):
            def call(self, x):
                self.add_loss(0.1 * lib.ops.sum(lib.ops.square(x)))
                return x
        i = lib.Input((5,))
        return lib.Model(i, [lib.layers.Dense(2, name="a")(i), Penalty(name="p")(lib.layers.Dense(3, name="b")(i))])
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(8, 5)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    keras.utils.set_random_seed(2)
    theirs, ours = build(keras), build(convscope)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    history = []
    for model, lib in ((theirs, keras), (ours, convscope)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss=["mse", None])
        history.append(model.fit(x, [y, np.zeros((8, 3), "float32")], epochs=2, batch_size=8, verbose=0)
                       .history["loss"])
    np.testing.assert_allclose(history[1], history[0], rtol=1e-5)
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-4, atol=1e-6)
