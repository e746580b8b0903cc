"""PyTorch oracle: training steps of seed 000's and seed 002's models (Dropout removed).

Same initial weights (Keras HWIO kernels -> torch OIHW, Dense kernel -> Linear
weight transposed) and the same batches; the loss, every gradient and the
weights after SGD (with and without momentum) and Adam must agree with torch
to 1e-5 relative in float32.  Keras flattens channels-last, so the torch model
flattens after moving channels last; torch's Adam gets Keras' epsilon divided
by sqrt(1 - beta_2^t).
"""

import numpy as np
import pytest

from convscope import _rng, optimizers
from convscope.layers import Conv2D, Dense, Flatten, MaxPooling2D
from convscope.models import Sequential
from seed_models import seed000_model, seed002_model

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]     # Keras' numpy-2 notices
F = torch.nn.functional


def torch_logits(model, params, x_nhwc):
    """The same network in torch (NCHW), returning the pre-softmax output."""
    h = torch.tensor(x_nhwc).permute(0, 3, 1, 2)
    weights = iter(params)
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            kernel, bias = next(weights), next(weights)
            h = F.conv2d(h, kernel.permute(3, 2, 0, 1), bias, padding="same")   # same split as TF at stride 1
        elif isinstance(layer, MaxPooling2D):
            h = F.max_pool2d(h, 2)
        elif isinstance(layer, Flatten):
            h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)
        elif isinstance(layer, Dense):
            kernel, bias = next(weights), next(weights)
            h = h @ kernel + bias
        if layer is not model.layers[-1] and getattr(layer, "activation", None) is not None \
                and layer.activation.name == "relu":
            h = F.relu(h)
    return h


def _close(ours, theirs, what, atol=0.0):
    """1e-5 relative, with an absolute floor of 1e-5 of the array's largest value (float32 sums)."""
    theirs = theirs.detach().numpy()
    scale = float(np.abs(theirs).max()) or 1.0
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=max(1e-5 * scale, atol), err_msg=what)


def _batch(rng, model, n):
    shape = (n,) + tuple(model.input_shape[1:])
    classes = model.output_shape[-1]
    x = rng.uniform(0, 1, shape).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, n)]
    return x, y


@pytest.mark.parametrize("make_model,batch", [(lambda: seed000_model(dropout=False), 4), (seed002_model, 6)],
                         ids=["seed000", "seed002"])
@pytest.mark.parametrize("optimizer", ["sgd", "sgd_momentum", "adam"])
def test_training_steps_match_torch(make_model, batch, optimizer, kernel_path):
    _rng.set_seed(0)
    model = make_model()
    ours_opt, make_torch = {
        "sgd": (optimizers.SGD(learning_rate=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        "sgd_momentum": (optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
                         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
        "adam": (optimizers.Adam(learning_rate=0.001), lambda p: torch.optim.Adam(p, lr=0.001)),
    }[optimizer]
    model.compile(optimizer=ours_opt, loss="categorical_crossentropy", metrics=["accuracy"])
    params = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    torch_opt = make_torch(params)
    rng = np.random.default_rng(1)
    for step in range(1, 3):
        x, y = _batch(rng, model, batch)
        loss, _ = model.train_on_batch(x, y)
        torch_opt.zero_grad()
        torch_loss = F.cross_entropy(torch_logits(model, params, x), torch.tensor(y.argmax(1)))
        torch_loss.backward()
        if optimizer == "adam":
            torch_opt.param_groups[0]["eps"] = 1e-7 / np.sqrt(1 - 0.999 ** step)
        torch_opt.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-5)
        for variable, param in zip(model.trainable_weights, params):
            _close(variable.grad, param.grad, f"step {step}: gradient of {variable.name}")
            # Adam moves a weight by ~lr * g / (|g| + eps): for a gradient near eps, float32 rounding of g
            # shows in the step, so the floor there is 0.1% of one step.
            _close(variable.value, param, f"step {step}: {variable.name} after the {optimizer} update",
                   atol=1e-3 * ours_opt.learning_rate if optimizer == "adam" else 0.0)


# -- Keras itself (on the torch backend) as the oracle for fit's bookkeeping -----------------------

def _twins(keras, case):
    """The same small model, compile settings and data in Keras and in convscope."""
    from convscope import constraints, regularizers
    from convscope.layers import Activation, BatchNormalization, GlobalAveragePooling2D
    K, L = keras, keras.layers
    K.utils.set_random_seed(0)                         # Keras draws the initial weights both models use
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype("float32")
    if case == "sgd_regularized":
        y = rng.integers(0, 3, 50)
        k = [L.Dense(8, activation="relu", kernel_regularizer=K.regularizers.L2(0.01),
                     activity_regularizer=K.regularizers.L1(0.001)), L.Dense(3, activation="softmax")]
        c = [Dense(8, activation="relu", kernel_regularizer=regularizers.L2(0.01),
                   activity_regularizer=regularizers.L1(0.001)), Dense(3, activation="softmax")]
        settings = (K.optimizers.SGD(0.1, momentum=0.9), optimizers.SGD(0.1, momentum=0.9),
                    "sparse_categorical_crossentropy", ["accuracy"])
    elif case == "adam_schedule_clipnorm":
        y = np.eye(3, dtype="float32")[rng.integers(0, 3, 50)]
        k = [L.Dense(6, activation="tanh"), L.Dense(3), L.Activation("softmax")]
        c = [Dense(6, activation="tanh"), Dense(3), Activation("softmax")]
        settings = (K.optimizers.Adam(K.optimizers.schedules.ExponentialDecay(0.05, 3, 0.5), clipnorm=0.5),
                    optimizers.Adam(optimizers.schedules.ExponentialDecay(0.05, 3, 0.5), clipnorm=0.5),
                    "categorical_crossentropy", ["accuracy"])
    elif case == "rmsprop_binary_constraints":
        y = (x[:, 0] + x[:, 1] > 0).astype("float32")
        k = [L.Dense(5, activation="relu", kernel_constraint=K.constraints.MaxNorm(0.8),
                     bias_constraint=K.constraints.NonNeg()), L.Dense(1, activation="sigmoid")]
        c = [Dense(5, activation="relu", kernel_constraint=constraints.MaxNorm(0.8),
                   bias_constraint=constraints.NonNeg()), Dense(1, activation="sigmoid")]
        settings = (K.optimizers.RMSprop(0.01, momentum=0.5), optimizers.RMSprop(0.01, momentum=0.5),
                    "binary_crossentropy", ["accuracy"])
    elif case == "sgd_conv_batchnorm":
        x = rng.uniform(size=(50, 8, 8, 1)).astype("float32")
        y = rng.integers(0, 3, 50)
        k = [L.Conv2D(2, (3, 3), padding="same", activation="relu"), L.BatchNormalization(), L.MaxPooling2D((2, 2)),
             L.Conv2D(3, (2, 2), strides=2, padding="same"), L.BatchNormalization(momentum=0.9), L.Activation("relu"),
             L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")]
        c = [Conv2D(2, (3, 3), padding="same", activation="relu"), BatchNormalization(), MaxPooling2D((2, 2)),
             Conv2D(3, (2, 2), strides=2, padding="same"), BatchNormalization(momentum=0.9), Activation("relu"),
             GlobalAveragePooling2D(), Dense(3, activation="softmax")]
        settings = (K.optimizers.SGD(0.05), optimizers.SGD(0.05), "sparse_categorical_crossentropy", ["accuracy"])
    else:  # "adamw_regression"
        y = (x @ rng.normal(size=(4, 2))).astype("float32")
        k = [L.Dense(6, activation="elu"), L.Dense(2)]
        c = [Dense(6, activation="elu"), Dense(2)]
        settings = (K.optimizers.AdamW(0.01, weight_decay=0.05), optimizers.AdamW(0.01, weight_decay=0.05),
                    "huber", ["mae"])
    keras_opt, our_opt, loss, metrics = settings
    keras_model = K.Sequential([K.Input(x.shape[1:])] + k)
    keras_model.compile(optimizer=keras_opt, loss=loss, metrics=metrics)
    model = Sequential(c)
    model.build((None,) + x.shape[1:])
    model.compile(optimizer=our_opt, loss=loss, metrics=metrics)
    model.set_weights([np.asarray(w) for w in keras_model.get_weights()])
    return keras_model, model, x, y


@pytest.mark.parametrize("case", ["sgd_regularized", "adam_schedule_clipnorm", "rmsprop_binary_constraints",
                                  "adamw_regression", "sgd_conv_batchnorm"])
def test_fit_history_and_weights_match_keras(keras, case):
    """validation_split (the last 20%), the partial last batch (16 + 16 + 8), batch-size-weighted running
    means, penalties in the loss, schedules, clipping, constraints, BatchNormalization's training mode and
    moving statistics: all as Keras computes them."""
    keras_model, model, x, y = _twins(keras, case)
    kwargs = dict(epochs=3, batch_size=16, validation_split=0.2, shuffle=False, verbose=0)
    expected = keras_model.fit(x, y, **kwargs).history
    history = model.fit(x, y, **kwargs).history
    assert set(history) == set(expected)
    for key in expected:
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-5, err_msg=key)
    for variable, theirs in zip(model.weights, keras_model.get_weights()):
        # biases that start at 0 stay tiny; float32 rounding (~1e-7) of their updates is the floor
        _close(variable.value, torch.tensor(np.asarray(theirs)), f"{variable.name} after fit", atol=1e-7)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0),
                               keras_model.evaluate(x, y, verbose=0), rtol=1e-5)


def test_early_stopping_and_scheduler_match_keras(keras):
    from convscope.callbacks import EarlyStopping, LearningRateScheduler
    keras_model, model, x, y = _twins(keras, "sgd_regularized")
    kwargs = dict(epochs=12, batch_size=16, validation_split=0.2, shuffle=False, verbose=0)
    halve = lambda epoch, lr: lr * 0.7          # noqa: E731
    expected = keras_model.fit(x, y, callbacks=[
        keras.callbacks.EarlyStopping(patience=1, min_delta=0.01, restore_best_weights=True),
        keras.callbacks.LearningRateScheduler(halve)], **kwargs).history
    history = model.fit(x, y, callbacks=[EarlyStopping(patience=1, min_delta=0.01, restore_best_weights=True),
                                         LearningRateScheduler(halve)], **kwargs).history
    assert len(history["loss"]) == len(expected["loss"]) < 12
    for key in expected:
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-5, err_msg=key)
    for variable, theirs in zip(model.weights, keras_model.get_weights()):
        _close(variable.value, torch.tensor(np.asarray(theirs)), f"{variable.name} after early stopping",
               atol=1e-7)


def test_losses_on_probabilities_match_keras(keras):
    """Keras rescales probabilities to sum 1 and clips them to [1e-7, 1 - 1e-7]."""
    from convscope import losses
    rng = np.random.default_rng(0)
    y_pred = rng.uniform(0, 2, size=(6, 4)).astype("float32")
    y_pred[0] = [0.0, 0.0, 3.0, 1.0]                                 # a zero probability on the target
    labels = np.array([0, 1, 2, 3, 0, 1])
    one_hot = np.eye(4, dtype="float32")[labels]
    bce_pred = np.clip(y_pred / 2, 0, 1)
    cases = [
        ("categorical_crossentropy", one_hot, y_pred),
        ("sparse_categorical_crossentropy", labels, y_pred),
        ("binary_crossentropy", (one_hot > 0).astype("float32"), bce_pred),
        ("mean_squared_error", one_hot, y_pred),
        ("mean_absolute_error", one_hot, y_pred),
        ("huber", one_hot, y_pred),
    ]
    for name, y_true, pred in cases:
        expected = np.asarray(keras.losses.get(name)(y_true, pred))
        np.testing.assert_allclose(losses.get(name)(y_true, pred), expected, rtol=1e-5, err_msg=name)
