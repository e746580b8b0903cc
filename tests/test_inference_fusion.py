"""The execution plan (models/plan.py): predict/evaluate run a Conv2D and the BatchNormalization, ReLU
and pooling after it as one op, a training step a Conv2D('relu') and its max pooling: which layers are
fused, the same numbers as the layers one by one, nothing kept on the layers, and the profile's rows."""

import re

import numpy as np
import pytest

from convscope import backend
from convscope.layers import (Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                              MaxPooling2D, ReLU)
from convscope.models import Sequential
from convscope.models.plan import INFERENCE, TRAINING, build_plan
from convscope.ops import compiled, direct, winograd
from convscope.utils.profiling import profile

pytestmark = pytest.mark.usefixtures("kernel_path")


def _with_moving_statistics(model, seed=0):
    """Non-trivial moving statistics, so that a wrongly applied normalization shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            channels = layer.moving_mean.shape
            layer.moving_mean.assign(rng.standard_normal(channels).astype("float32"))
            layer.moving_variance.assign((rng.random(channels) + 0.3).astype("float32"))
            layer.gamma.assign(rng.standard_normal(channels).astype("float32"))
    return model


def _layer_by_layer(model, x):
    with backend.no_backward():
        for layer in model.layers:
            x = layer(x, training=False)
    return x


MODELS = {
    "conv-bn-pool": lambda: [Conv2D(6, 3, padding="same", activation="relu", input_shape=(10, 10, 3)),
                             BatchNormalization(), MaxPooling2D(padding="same")],
    "conv-dropout-bn-relu-avgpool": lambda: [Conv2D(5, 3, input_shape=(11, 11, 2)), Dropout(0.3),
                                             BatchNormalization(), Activation("relu"),
                                             AveragePooling2D(3, strides=2, padding="same")],
    "conv-relu-pool-conv-bn": lambda: [Conv2D(4, 3, input_shape=(12, 12, 1)), ReLU(), MaxPooling2D(),
                                       Conv2D(3, 2, activation="relu"), BatchNormalization()],
    "conv-pool-bn (bn after the pool stays apart)": lambda: [
        Conv2D(4, 3, activation="relu", input_shape=(9, 9, 2)), MaxPooling2D(), BatchNormalization()],
    "tanh conv (not fused)": lambda: [Conv2D(4, 3, activation="tanh", input_shape=(9, 9, 2)),
                                      BatchNormalization(), MaxPooling2D()],
    "channels_first (not fused)": lambda: [
        Conv2D(4, 3, activation="relu", data_format="channels_first", input_shape=(2, 9, 9)),
        BatchNormalization(axis=1), MaxPooling2D(data_format="channels_first")],
    "capped ReLU (not fused)": lambda: [Conv2D(4, 3, input_shape=(9, 9, 2)), ReLU(max_value=1.0),
                                        MaxPooling2D()],
}

STAGES = {
    "conv-bn-pool": [3],
    "conv-dropout-bn-relu-avgpool": [5],
    "conv-relu-pool-conv-bn": [3, 2],
    "conv-pool-bn (bn after the pool stays apart)": [2, 1],
    "tanh conv (not fused)": [1, 1, 1],
    "channels_first (not fused)": [1, 1, 1],
    "capped ReLU (not fused)": [1, 1, 1],
}


@pytest.mark.parametrize("name", MODELS)
def test_stages_and_predict_match_the_layers_one_by_one(name):
    model = Sequential(MODELS[name]() + [Flatten(), Dense(3, activation="softmax")])
    model.build()
    _with_moving_statistics(model)
    assert [len(stage.layers) for stage in build_plan(model.layers, INFERENCE)] == STAGES[name] + [1, 1]
    x = np.random.default_rng(1).standard_normal((9,) + model.input_shape[1:]).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), _layer_by_layer(model, x))


@pytest.mark.parametrize("name", ["conv-bn-pool", "conv-dropout-bn-relu-avgpool", "conv-relu-pool-conv-bn"])
def test_a_prepared_stage_reads_the_weights_of_each_call(name):
    """The fused stage prepares its op once per input shape (checks, geometry, path) but reads the kernel,
    bias and batch norm's statistics at every call: after they change, and at another batch size and back,
    predict is still the layers one by one."""
    model = Sequential(MODELS[name]() + [Flatten(), Dense(3, activation="softmax")])
    model.build()
    _with_moving_statistics(model)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6,) + model.input_shape[1:]).astype("float32")
    for batch in (6, 1, 4, 6):
        expected = np.concatenate([_layer_by_layer(model, x[start:start + batch]) for start in range(0, 6, batch)])
        np.testing.assert_allclose(model.predict(x, batch_size=batch, verbose=0), expected, rtol=1e-5, atol=1e-6)
        conv = model.layers[0]
        conv.kernel.assign(rng.standard_normal(conv.kernel.shape).astype("float32"))
        conv.bias.assign(rng.standard_normal(conv.bias.shape).astype("float32"))
        _with_moving_statistics(model, seed=batch)


def test_seed001_model_predict_and_evaluate_are_unchanged_by_fusion(monkeypatch):
    """Fused, the 3x3 75 -> 50 layer is pooled in the direct kernel's tiles, which beats Winograd; layer
    by layer its 8 images would run as Winograd, so the reference runs them on the direct kernel too.
    Where the direct kernel does not take its 675 taps (AVX2's tiles take 512), both run without Winograd."""
    from seed_models import seed001_model
    model = _with_moving_statistics(seed001_model())
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(2)
    x = rng.random((20, 28, 28, 1), dtype=np.float32)
    y = np.eye(25, dtype=np.float32)[rng.integers(0, 25, 20)]
    with monkeypatch.context() as patch:
        patch.setattr(winograd, "applies", lambda *args: False)
        expected = np.concatenate([_layer_by_layer(model, x[start:start + 8]) for start in (0, 8, 16)])
    assert [len(stage.layers) for stage in build_plan(model.layers, INFERENCE)] == [3, 4, 3, 1, 1, 1, 1]
    with monkeypatch.context() as patch:
        if not direct.applies(np.float32, (3, 3), 1, 75, 50, (9, 9), False):
            patch.setattr(winograd, "applies", lambda *args: False)
        np.testing.assert_array_equal(model.predict(x, batch_size=8, verbose=0), expected)
    loss = -np.mean(np.sum(y * np.log(np.clip(expected, 1e-7, 1 - 1e-7)), axis=1))
    assert model.evaluate(x, y, batch_size=20, verbose=0)[0] == pytest.approx(loss, rel=1e-5)


def test_seed001_predicts_at_batch_1_see_each_weight_change(monkeypatch):
    """The plan's convolutions of 75, 50 and 25 filters keep their padded filters between predicts
    (`kept_filters.KeptFilters`): a training step, `set_weights` and a kernel written in place in between each give
    the predictions of the new weights, layer by layer's (never the kept copy's).  The model is a functional one
    over seed 001's layers: its inference plan (and the kept filters) outlive a training step."""
    from seed_models import seed001_model
    from convscope import Input, Model
    from convscope.ops import kept_filters
    layers = _with_moving_statistics(seed001_model()).layers
    inputs = Input((28, 28, 1))
    outputs = inputs
    for layer in layers:
        outputs = layer(outputs)
    model = Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    rng = np.random.default_rng(4)
    x = rng.random((1, 28, 28, 1), dtype=np.float32)
    made = []
    original = kept_filters.KeptFilters.get
    monkeypatch.setattr(kept_filters.KeptFilters, "get", lambda self, *args: made.append(self) or original(self, *args))
    conv = layers[3]
    changes = [lambda: model.train_on_batch(x, np.eye(25, dtype=np.float32)[[3]]),
               lambda: model.set_weights([w * np.float32(0.5) for w in model.get_weights()]),
               lambda: conv.kernel.value.__setitem__((1, 1, 0), conv.kernel.value[1, 1, 0] + 0.25)]
    for change in [lambda: None] + changes:
        change()
        got = model.predict(x, batch_size=1, verbose=0)
        expected = x
        with backend.no_backward():
            for layer in layers:
                expected = layer(expected, training=False)
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6)
    if compiled.active() and direct.applies(np.float32, (3, 3), 1, 75, 50, (14, 14), False, 1):
        assert len(set(map(id, made))) == 3       # the same three kept forms from the first predict to the last


def test_calls_keep_nothing_on_the_layers_and_a_backward_without_context_fails_clearly():
    model = _with_moving_statistics(Sequential([Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                                                BatchNormalization(), MaxPooling2D(), Flatten(), Dense(2)]))
    x = np.random.default_rng(3).standard_normal((4, 8, 8, 1)).astype("float32")
    before = [dict(vars(layer)) for layer in model.layers]
    model(x, training=True)
    model.predict(x, verbose=0)
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, np.zeros((4, 2), "float32"))
    for layer, attributes in zip(model.layers, before):
        assert set(vars(layer)) == set(attributes), layer.name          # no per-call attribute appeared
    with backend.no_backward():
        _, ctx = model.layers[1].forward(np.ones((4, 6, 6, 4), "float32"))
    assert ctx is None
    with pytest.raises(RuntimeError, match=r"BatchNormalization 'batch_normalization\w*': backward\(\) needs the "
                                           r"context of a forward pass that kept its inputs"):
        model.layers[1].backward(ctx, np.ones((4, 6, 6, 4), "float32"))


def test_layers_carry_no_fusion_methods_the_plan_reads_their_descriptions():
    for name in ("call_fused", "call_max_pooled", "backward_through_relu", "keep_forward", "forget_forward",
                 "inference_affine", "inference_pool", "inference_relu"):
        for cls in (Conv2D, BatchNormalization, MaxPooling2D, ReLU, Activation):
            assert not hasattr(cls, name), (cls.__name__, name)
    conv = Conv2D(2, 3, activation="tanh")
    conv.build_from_shape((None, 5, 5, 1))
    spec = conv.describe()
    assert (spec.kind, spec.activation, spec.window.size, spec.weights["kernel"]) == ("conv2d", "tanh", (3, 3),
                                                                                      conv.kernel)
    assert [len(stage.layers) for stage in build_plan([conv, ReLU(), MaxPooling2D()], INFERENCE)] == [1, 1, 1]


def test_inference_profile_shows_the_fused_layers_on_the_conv_row():
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), BatchNormalization(),
                        MaxPooling2D(), Flatten(), Dense(2)])
    x = np.random.default_rng(4).standard_normal((6, 8, 8, 1)).astype("float32")
    result = profile(model, x, training=False, repeats=2, print_table=False)
    rows = result.layers
    assert [row.fused_into for row in rows] == [None, rows[0].name, rows[0].name, None, None]
    assert rows[0].forward_s > 0 and rows[1].forward_s == rows[2].forward_s == 0.0
    assert [row.output_shape for row in rows] == [(6, 6, 6, 4), (6, 6, 6, 4), (6, 3, 3, 4), (6, 36), (6, 2)]
    table = result.table()
    assert re.search(rf"{rows[1].name} \(BatchNormalization\)\s+\(6, 6, 6, 4\)\s+fused\s+-", table)
    assert f"Fused: {rows[1].name}, {rows[2].name} ran inside {rows[0].name}'s op" in table


@pytest.mark.parametrize("activity_regularizer", [None, "l2"])
def test_training_takes_a_max_pooling_gradient_through_the_conv_relu_with_the_same_gradients(
        activity_regularizer):
    """A Conv2D('relu') -> MaxPooling2D pair skips the ReLU's full-size backward pass in training
    (relu_gated_pooling); the gradients are those of the layers' own backward passes."""
    def build():
        return Sequential([Conv2D(4, 3, activation="relu", activity_regularizer=activity_regularizer,
                                  input_shape=(9, 9, 2)), MaxPooling2D(padding="same"),
                           Conv2D(3, 2, activation="relu"), MaxPooling2D(), Flatten(), Dense(3)])

    model = build()
    assert [len(stage.layers) for stage in build_plan(model.layers, TRAINING)] == (
        [1, 1, 2, 1, 1] if activity_regularizer else [2, 2, 1, 1])
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 9, 9, 2)).astype("float32")
    y = rng.standard_normal((6, 3)).astype("float32")
    model.compile(optimizer="sgd", loss="mse")
    reference = build()
    reference.set_weights(model.get_weights())
    out, contexts = x, []
    for layer in reference.layers:                     # the layers one by one, each with its own ctx
        out, ctx = layer.forward(out, training=True)
        contexts.append((out, ctx))
    grad = 2 * (out - y) / out.size
    grads = {}
    for layer, (output, ctx) in zip(reversed(reference.layers), reversed(contexts)):
        if layer.activity_regularizer is not None:
            grad = grad + layer.activity_regularizer.gradient(output) / len(x)
        grad, pairs = layer.backward(ctx, grad)
        grads.update((id(variable), value) for variable, value in pairs)
    model.train_on_batch(x, y)
    for ours, theirs in zip(model.trainable_weights, reference.trainable_weights):
        np.testing.assert_allclose(ours.grad, grads[id(theirs)], rtol=1e-5, atol=1e-6)


def test_training_fuses_only_a_max_pooling_after_a_relu_conv():
    conv = Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1))
    plans = [build_plan(Sequential([conv, pool]).layers, TRAINING)
             for pool in (AveragePooling2D(), MaxPooling2D(data_format="channels_first"))]
    assert [[len(stage.layers) for stage in plan] for plan in plans] == [[1, 1], [1, 1]]


def test_a_training_step_runs_conv_relu_max_pool_as_one_op_and_keeps_no_conv_output():
    from seed_models import seed000_model
    model = seed000_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    plan = model._plan(TRAINING)
    assert [len(stage.layers) for stage in plan] == [2, 2, 1, 1, 1, 1, 1]
    rng = np.random.default_rng(7)
    x = rng.random((5, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 5)]
    pooled, ctx = plan[0].forward(x, training=True)
    conv_output_shape = (5, 28, 28, 32)
    kept = [value for value in ctx if isinstance(value, np.ndarray)]
    assert [a.shape for a in kept] == [pooled.shape] and pooled.shape == (5, 14, 14, 32)
    assert all(getattr(a, "shape", None) != conv_output_shape for part in ctx if isinstance(part, dict)
               for a in part.values())
    model.train_on_batch(x, y)
    conv = model.layers[0]
    assert conv.kernel.grad is not None and np.abs(conv.kernel.grad).sum() > 0
