"""Model.compile/fit/evaluate/train_on_batch/test_on_batch: behaviour, gradients, input checks."""

import numpy as np
import pytest

import convscope as cs
from convscope import _rng, optimizers, regularizers
from convscope.callbacks import Callback, TerminateOnNaN
from convscope.layers import Activation, Conv2D, Dense, Flatten, MaxPooling2D
from convscope.models import Sequential

from _gradcheck import assert_gradients_close, numerical_gradient


def _blobs(n=120, seed=0):
    """Three well separated Gaussian clusters in 4-D, labels 0..2."""
    rng = np.random.default_rng(seed)
    centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], dtype="float32")
    labels = rng.integers(0, 3, n)
    return (centers[labels] + rng.normal(scale=0.5, size=(n, 4))).astype("float32"), labels


def _mlp(units=3, activation="softmax", **dense_kwargs):
    return Sequential([Dense(8, activation="relu", input_shape=(4,), **dense_kwargs),
                       Dense(units, activation=activation)])


def test_fit_on_digits_reaches_high_accuracy():
    digits = pytest.importorskip("convscope.datasets.digits")
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    x_train = x_train[..., None].astype("float32") / 16
    x_test = x_test[..., None].astype("float32") / 16
    _rng.set_seed(1)
    model = Sequential([Conv2D(8, (3, 3), padding="same", activation="relu", input_shape=(8, 8, 1)),
                        MaxPooling2D((2, 2)), Flatten(), Dense(64, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.005), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=10, verbose=0, validation_split=0.1)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] / 4
    assert history.history["val_accuracy"][-1] > 0.85       # the last 10% (other writers) is the hardest part
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95 and loss < 0.3


def test_history_keys_partial_batch_and_batch_weighting():
    x, y = _blobs(10)
    _rng.set_seed(0)
    model = _mlp()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    seen = []

    class Steps(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, self.params["steps"]))

    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False, callbacks=[Steps()],
                        validation_data=(x[:5], y[:5]))
    assert seen == [(0, 3), (1, 3), (2, 3)] * 2                      # 4 + 4 + 2: the last partial batch is kept
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == [0, 1] and model.history is history
    # With a zero learning rate the epoch loss is the mean over all 10 samples, i.e. evaluate's.
    full = model.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    assert history.history["loss"][0] == pytest.approx(full["loss"], rel=1e-6)
    assert history.history["accuracy"][0] == pytest.approx(full["accuracy"])
    assert history.history["val_loss"][1] == pytest.approx(model.evaluate(x[:5], y[:5], verbose=0)[0], rel=1e-6)


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = _blobs(50)
    _rng.set_seed(0)
    model = _mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=1, batch_size=8, validation_split=0.2, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[40:], y[40:], verbose=0), rel=1e-6)
    assert history.history["val_loss"][0] != pytest.approx(model.evaluate(x[:10], y[:10], verbose=0), rel=1e-6)


def test_shuffling_is_repeatable_with_the_seed_and_initial_epoch_counts():
    x, y = _blobs(40)
    results = []
    for _ in range(2):
        _rng.set_seed(5)
        model = _mlp()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, epochs=3, initial_epoch=1, batch_size=8, verbose=0)
        results.append(model.get_weights())
        assert history.epoch == [1, 2] and model.optimizer.iterations == 10
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_steps_per_epoch_and_stop_training():
    x, y = _blobs(20)
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, steps_per_epoch=5, verbose=0)
    assert model.optimizer.iterations == 10                       # runs on through reshuffled passes

    class StopAtBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    history = model.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[StopAtBatch()])
    assert history.epoch == [0] and model.optimizer.iterations == 12


def test_train_and_test_on_batch():
    x, y = _blobs(16)
    _rng.set_seed(0)
    model = _mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.test_on_batch(x, y, return_dict=True)
    loss, accuracy = model.train_on_batch(x, y)
    assert loss == pytest.approx(before["loss"], rel=1e-6) and accuracy == pytest.approx(before["accuracy"])
    assert model.test_on_batch(x, y)[0] < loss
    assert model.metrics_names == ["loss", "accuracy"]


def test_one_hot_targets_and_binary_output():
    x, labels = _blobs(60)
    _rng.set_seed(2)
    model = _mlp()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, np.eye(3)[labels], epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    binary = _mlp(units=1, activation="sigmoid")
    binary.compile(optimizer=optimizers.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy"])
    history = binary.fit(x, (labels == 0).astype("float32"), epochs=8, batch_size=8, verbose=0)
    assert binary._metric_objects[0].fn.__name__ == "binary_accuracy"
    assert history.history["accuracy"][-1] > 0.9


@pytest.mark.parametrize("head,loss,fused", [
    ("softmax_layer", "sparse_categorical_crossentropy", True),
    ("dense_softmax", "categorical_crossentropy", True),
    ("dense_sigmoid", "binary_crossentropy", True),
    ("dense_softmax", "mean_squared_error", False),
])
def test_model_gradient_matches_finite_differences(head, loss, fused):
    """Whole-model check in float64: the reported loss (with weight and activity penalties) vs its gradient."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4))
    units = 1 if head == "dense_sigmoid" else 3
    y = {"sparse_categorical_crossentropy": rng.integers(0, 3, 6),
         "categorical_crossentropy": np.eye(3)[rng.integers(0, 3, 6)],
         "binary_crossentropy": rng.integers(0, 2, (6, 1)).astype(float),
         "mean_squared_error": rng.normal(size=(6, 3))}[loss]
    last = {"softmax_layer": [Dense(units, dtype="float64"), Activation("softmax", dtype="float64")],
            "dense_softmax": [Dense(units, activation="softmax", dtype="float64",
                                    kernel_regularizer=regularizers.L1L2(l1=0.01, l2=0.02))],
            "dense_sigmoid": [Dense(units, activation="sigmoid", dtype="float64")]}[head]
    model = Sequential([
        Dense(5, activation="tanh", input_shape=(4,), dtype="float64", kernel_regularizer=regularizers.L2(0.05),
              bias_regularizer=regularizers.L1(0.01), activity_regularizer=regularizers.L2(0.02)),
        *last,
    ])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss=loss)
    model.train_on_batch(x, y)
    assert (model._fusion() is not None) == fused       # the loss was taken on the activation's input
    for variable in model.trainable_weights:
        numeric = numerical_gradient(lambda: model.test_on_batch(x, y), variable.value)
        assert_gradients_close(variable.grad, numeric, rtol=1e-6, atol=1e-9)


def test_regression_with_flat_targets():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(50, 3)).astype("float32")
    model = Sequential([Dense(1, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    history = model.fit(x, x.sum(axis=1), epochs=10, verbose=0)          # targets (50,) for outputs (50, 1)
    assert history.history["loss"][-1] < history.history["loss"][0] / 2 and "mae" in history.history
    with pytest.raises(ValueError, match=r"fit: loss 'mean_squared_error' needs targets shaped like the model "
                                         r"output \(None, 1\), i.e. \(50, 1\), got y of shape \(50, 2\)"):
        model.fit(x, np.zeros((50, 2)), verbose=0)


def test_penalties_are_added_to_the_reported_loss():
    x, y = _blobs(8)
    model = _mlp(kernel_regularizer=regularizers.L2(0.1))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain.set_weights(model.get_weights())
    penalty = 0.1 * float(np.sum(model.layers[0].kernel.value.astype(np.float64) ** 2))
    assert model.test_on_batch(x, y) == pytest.approx(plain.test_on_batch(x, y) + penalty, rel=1e-6)


def test_softmax_crossentropy_fusion_keeps_saturated_outputs_trainable():
    torch = pytest.importorskip("torch")
    model = Sequential([Dense(3, activation="softmax", input_shape=(2,))])
    model.set_weights([np.array([[60.0, 0.0, -60.0], [0.0, 0.0, 0.0]], "float32"), np.zeros(3, "float32")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    x, y = np.array([[2.0, 0.0]], "float32"), np.array([2])       # the true class has p ~ e^-240 = 0 in float32
    loss = model.train_on_batch(x, y)
    logits = torch.tensor([[120.0, 0.0, -120.0]])
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor([2])).item(), rel=1e-6)
    kernel_grad = model.layers[0].kernel.grad
    np.testing.assert_allclose(kernel_grad[0], [2.0, 0.0, -2.0], atol=1e-6)     # x * (p - y)


def test_input_errors_name_expected_and_given():
    x, y = _blobs(10)
    model = _mlp()
    with pytest.raises(RuntimeError, match=r"fit: the model must be compiled .* call model.compile"):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"fit: `x` and `y` must have the same number of samples, got 10 in x "
                                         r"\(shape \(10, 4\)\) and 9 in y"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) for an output with 3 units, got label 7 "
                                         r"at index 4"):
        model.fit(x, np.where(np.arange(10) == 4, 7, y), verbose=0)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"fit: `x` must hold finite numbers, got 1 NaN and 0 infinite values "
                                         r"\(first in sample 3\)"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match=r"fit: the model expects input of shape \(None, 4\), got x of shape "
                                         r"\(10, 5\)"):
        model.fit(np.zeros((10, 5), "float32"), y, verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: the model expects input of shape \(None, 4\), got x of "
                                         r"shape \(10, 2, 2\)"):
        model.evaluate(np.zeros((10, 2, 2), "float32"), y, verbose=0)
    with pytest.raises(ValueError, match=r"integer labels must have shape \(10,\) \(one label per sample\), "
                                         r"got \(10, 3\) \(these look like one-hot labels: "
                                         r"use loss='categorical_crossentropy'\)"):
        model.fit(x, np.eye(3)[y], verbose=0)
    binary = _mlp(units=1, activation="sigmoid")
    binary.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"loss 'binary_crossentropy' needs targets in \[0, 1\], "
                                         r"got values from 0 to 2"):
        binary.fit(x, y, verbose=0)
    one_hot = _mlp()
    one_hot.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"one-hot width of y is 5 but the model has 3 output units"):
        one_hot.fit(x, np.eye(5)[y], verbose=0)
    with pytest.raises(ValueError, match=r"needs one-hot targets of width 3 .* got y of shape \(10,\); "
                                         r"for integer labels use loss='sparse_categorical_crossentropy'"):
        one_hot.fit(x, y, verbose=0)


def test_argument_errors():
    x, y = _blobs(10)
    model = _mlp()
    with pytest.raises(ValueError, match=r"compile: argument `loss` is required"):
        model.compile(optimizer="adam")
    with pytest.raises(TypeError, match=r"compile: argument `metrics` must be a list"):
        model.compile(optimizer="adam", loss="mse", metrics="accuracy")
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        model.compile(optimizer="adamm", loss="mse")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"fit: argument `batch_size` must be an int >= 1, got 0"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"fit: argument `validation_split` must be a number in \[0, 1\), got 1.5"):
        model.fit(x, y, validation_split=1.5)
    with pytest.raises(ValueError, match=r"fit: argument `verbose` must be 'auto', 0, 1 or 2, got 3"):
        model.fit(x, y, verbose=3)
    with pytest.raises(TypeError, match=r"fit: argument `callbacks` must contain .*Callback objects, got 'x'"):
        model.fit(x, y, callbacks=["x"])
    with pytest.raises(ValueError, match=r"fit: argument `validation_data` must be a tuple \(x_val, y_val\), "
                                         r"got a tuple of 1 items"):
        model.fit(x, y, validation_data=(x,), verbose=0)


def test_non_finite_loss_stops_naming_epoch_and_batch():
    x, _ = _blobs(12)
    model = Sequential([Dense(1, input_shape=(4,))])
    model.compile(optimizer="sgd", loss="mse")
    y = np.zeros((12, 1), "float32")
    y[9] = 1e30                                   # its square overflows float32 in the third batch
    before = model.get_weights()
    with np.errstate(over="ignore"), pytest.raises(
            ValueError, match=r"fit: the loss became inf at epoch 2, batch 3 \(the weights were not updated with it\)"):
        model.fit(x, y, epochs=2, initial_epoch=1, batch_size=4, shuffle=False, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))   # batches 1-2 trained
    with np.errstate(over="ignore", invalid="ignore"):
        history = model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[TerminateOnNaN()])
    assert history.epoch == [0] and not np.isfinite(history.history["loss"][0])


def test_compile_config_round_trip():
    model = _mlp()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], loss_weights=[0.5])
    config = model.get_compile_config()
    other = _mlp()
    other.compile_from_config(config)
    assert other.get_compile_config() == config
    assert other.optimizer.learning_rate == 0.01 and other._loss_weight == 0.5
    x, y = _blobs(8)
    model.set_weights(other.get_weights())
    assert model.test_on_batch(x, y)[0] == pytest.approx(other.test_on_batch(x, y)[0])


def test_dropout_and_batch_norm_train_in_fit_and_infer_in_evaluate():
    from convscope.layers import BatchNormalization, Dropout
    x, y = _blobs(64)
    _rng.set_seed(3)
    model = Sequential([Dense(16, input_shape=(4,)), BatchNormalization(), Activation("relu"), Dropout(0.5),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    moving_mean = model.layers[1].moving_mean.numpy()
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.array_equal(model.layers[1].moving_mean.numpy(), moving_mean)    # moved in training
    first = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, y, verbose=0) == first and first[1] > 0.9             # inference is deterministic
    assert len(model.trainable_weights) == 6                                         # moving stats not trained


def test_first_layer_is_asked_to_skip_its_input_gradient():
    calls = []

    class RecordingDense(Dense):
        def backward(self, ctx, grad_output, need_input_grad=True, **options):
            calls.append(need_input_grad)
            return super().backward(ctx, grad_output, need_input_grad=need_input_grad, **options)

    x, y = _blobs(8)
    model = Sequential([RecordingDense(5, activation="relu", input_shape=(4,)), RecordingDense(3),
                        Activation("softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    assert calls == [True, False]              # the last Dense passes its gradient on, the first need not


def _class_weighted_run(module, x, y, loss, class_weight, split):
    model = module.Sequential([module.Input((5,)), module.layers.Dense(3, activation="softmax",
                                                                       kernel_initializer="ones")])
    model.compile(module.optimizers.SGD(0.1), loss, metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, class_weight=class_weight,
                        validation_split=split)
    return history.history, model.get_weights()


def test_class_weight_weights_each_training_sample_by_its_class_as_keras(keras):
    """Integer labels, one-hot rows and (n, 1) labels; a class left out weighs 1; with a validation split the
    validation samples are not weighted: the history and the weights as Keras 3's."""
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(24, 5)).astype("float32"), rng.integers(0, 3, 24)
    cases = [(labels, "sparse_categorical_crossentropy", {0: 1.0, 1: 3.0, 2: 0.5}, 0.0),
             (np.eye(3)[labels], "categorical_crossentropy", {0: 2.0, 2: 0.25}, 0.25),
             (labels.reshape(-1, 1), "sparse_categorical_crossentropy", {1: 4.0}, 0.0)]
    for y, loss, class_weight, split in cases:
        ours, weights = _class_weighted_run(cs, x, y, loss, class_weight, split)
        theirs, k_weights = _class_weighted_run(keras, x, y, loss, class_weight, split)
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
        for a, b in zip(weights, k_weights):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    unweighted, _ = _class_weighted_run(cs, x, labels, "sparse_categorical_crossentropy", None, 0.0)
    assert unweighted["loss"] != _class_weighted_run(cs, x, labels, "sparse_categorical_crossentropy",
                                                     {1: 3.0}, 0.0)[0]["loss"]


def test_class_weight_on_a_functional_model_as_keras(keras):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 4)).astype("float32"), rng.integers(0, 3, 12)

    def run(module):
        inputs = module.Input((4,))
        model = module.Model(inputs, module.layers.Dense(3, activation="softmax", kernel_initializer="ones")(inputs))
        model.compile(module.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, class_weight={1: 3.0})
        return history.history["loss"], model.get_weights()
    (ours, weights), (theirs, k_weights) = run(cs), run(keras)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    for a, b in zip(weights, k_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_class_weight_errors_name_the_argument():
    model = cs.Sequential([cs.Input((2,)), cs.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.zeros((4, 2), "float32"), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="fit: give `class_weight` or `sample_weight`, not both"):
        model.fit(x, y, class_weight={0: 1.0}, sample_weight=np.ones(4), verbose=0)
    with pytest.raises(TypeError, match="argument `class_weight` must be a dict .*got list"):
        model.fit(x, y, class_weight=[1.0, 2.0], verbose=0)
    with pytest.raises(ValueError, match="must map class indices .*got '0': 1.0"):
        model.fit(x, y, class_weight={"0": 1.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight` is supported for arrays x and y only"):
        model.fit(((x, y) for _ in range(1)), class_weight={0: 1.0}, verbose=0)
    segmenter = cs.Sequential([cs.Input((2, 2, 1)), cs.layers.Conv2D(2, 1, activation="softmax")])
    segmenter.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="takes one label per sample .*got targets of shape \\(4, 2, 2\\); for "
                                         "per-pixel weights pass `sample_weight`"):
        segmenter.fit(np.zeros((4, 2, 2, 1), "float32"), np.zeros((4, 2, 2), "int64"), class_weight={0: 1.0},
                      verbose=0)
    inputs = cs.Input((2,))
    two = cs.Model(inputs, [cs.layers.Dense(2)(inputs), cs.layers.Dense(2)(inputs)])
    two.compile("sgd", ["mse", "mse"])
    with pytest.raises(ValueError, match="class_weight` is for a model with one output, got targets for 2 outputs"):
        two.fit(x, [np.zeros((4, 2)), np.zeros((4, 2))], class_weight={0: 1.0}, verbose=0)
