"""`convscope.utils.profiling.profile`: per-layer forward/backward times, summaries and argument checks."""

import time

import numpy as np
import pytest

from convscope import layers
from convscope.layers.base import Layer
from convscope.models import Model, Sequential
from convscope.utils.profiling import ProfileResult, profile


class Sleepy(Layer):
    """Identity that sleeps a known time in call and backward: a hotspot of known minimum cost."""

    def __init__(self, forward_s, backward_s, **kwargs):
        super().__init__(**kwargs)
        self.forward_s, self.backward_s = forward_s, backward_s
        self.input_grad_requests = []

    def forward(self, inputs, training=False):
        time.sleep(self.forward_s)
        return inputs, ()

    def backward(self, ctx, grad_output, need_input_grad=True):
        self.input_grad_requests.append(need_input_grad)
        time.sleep(self.backward_s)
        return (grad_output if need_input_grad else None), []


def small_model():
    model = Sequential([
        layers.Conv2D(4, (3, 3), padding="same", activation="relu", input_shape=(8, 8, 2)),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.5),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    return model


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 2), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return x, y


def test_one_row_per_layer_with_shapes_and_consistent_totals(capsys):
    model = small_model()
    x, y = batch()
    result = profile(model, x, y, loss="categorical_crossentropy", repeats=2)
    assert isinstance(result, ProfileResult)
    assert [row.name for row in result.layers] == [layer.name for layer in model.layers]
    assert [row.class_name for row in result.layers] == ["Conv2D", "BatchNormalization", "MaxPooling2D",
                                                         "Dropout", "Flatten", "Dense"]
    assert [row.output_shape for row in result.layers] == [(4, 8, 8, 4), (4, 8, 8, 4), (4, 4, 4, 4),
                                                           (4, 4, 4, 4), (4, 64), (4, 3)]
    assert all(row.forward_s > 0 and row.backward_s > 0 for row in result.layers)
    assert result.loss_s > 0 and result.loss_name == "categorical_crossentropy"
    assert result.total_s == pytest.approx(result.forward_s + result.backward_s + result.loss_s)
    by_op = result.by_op()
    assert sum(sum(phases.values()) for phases in by_op.values()) == pytest.approx(
        result.forward_s + result.backward_s)
    printed = capsys.readouterr().out
    assert printed.strip() == result.table().strip()
    for layer in model.layers:
        assert layer.name in printed
    assert "Hotspots: 1." in printed and "By op: " in printed


def test_forward_flops_match_torch_flop_counter():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    model = small_model()
    x, _ = batch(5)
    result = profile(model, x, repeats=1, warmup=0, training=False, print_table=False)
    conv, dense = torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.Linear(64, 3)
    with FlopCounterMode(display=False) as counter:
        conv(torch.zeros(5, 2, 8, 8))
    assert result.layers[0].flops == counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        dense(torch.zeros(5, 64))
    assert result.layers[5].flops == counter.get_total_flops()
    assert [row.flops for row in result.layers[1:5]] == [0, 0, 0, 0]


def test_the_slowest_layer_is_the_top_hotspot():
    model = Sequential([layers.Dense(4, input_shape=(3,)), Sleepy(0.02, 0.05), layers.Dense(2)])
    x = np.ones((2, 3), np.float32)
    result = profile(model, x, repeats=2, print_table=False)
    sleepy = result.layers[1]
    assert sleepy.forward_s >= 0.02 and sleepy.backward_s >= 0.05
    label, phase, seconds, fraction = result.hotspots(1)[0]
    assert (label, phase) == (f"{sleepy.name} (Sleepy)", "backward")
    assert seconds == sleepy.backward_s and 0 < fraction <= 1
    assert result.by_op()["Sleepy"]["backward"] == sleepy.backward_s
    assert "gradient of the mean output" in result.table()


def test_the_model_is_left_unchanged():
    model = small_model()
    x, y = batch()
    model.build()
    model.layers[0].kernel.grad = np.full(model.layers[0].kernel.shape, 0.5, np.float32)   # a gradient to keep
    before = [w.copy() for w in model.get_weights()]
    grad_before = model.layers[0].kernel.grad.copy()
    attributes = [set(vars(layer)) for layer in model.layers]
    profile(model, x, y, loss="categorical_crossentropy", repeats=2, print_table=False)
    after = model.get_weights()
    for old, new in zip(before, after):  # BatchNormalization's moving statistics included
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(model.layers[0].kernel.grad, grad_before)
    assert [set(vars(layer)) for layer in model.layers] == attributes       # nothing of the runs kept


def test_inference_profile_has_no_backward():
    model = small_model()
    x, _ = batch()
    result = profile(model, x, repeats=1, training=False, print_table=False)
    assert all(row.backward_s is None for row in result.layers)
    assert result.loss_s is None and result.backward_s == 0
    assert "inference" in result.table()
    assert set(result.to_dict()) >= {"layers", "by_op", "total_s"}
    stages = model._plan("inference")          # as predict runs: the conv's stage keeps no context
    assert len(stages[0].layers) == 3 and stages[0].forward(x)[1] is None


def test_argument_errors_name_the_function_and_argument():
    model = small_model()
    x, y = batch()
    with pytest.raises(TypeError, match=r"profile: argument `model` must be a Sequential model .* got int"):
        profile(3, x)
    with pytest.raises(ValueError, match=r"profile: argument `repeats` must be at least 1, got 0"):
        profile(model, x, repeats=0)
    with pytest.raises(TypeError, match=r"profile: argument `warmup` must be an int, got 1.5"):
        profile(model, x, warmup=1.5)
    with pytest.raises(TypeError, match=r"profile: argument `x` must be a numeric array, got dtype <U1"):
        profile(model, np.array(["a"]))
    with pytest.raises(ValueError, match=r"profile: argument `x` must be a batch .* got shape \(\)"):
        profile(model, 1.0)
    with pytest.raises(ValueError, match=r"profile: targets `y` were given but no loss"):
        profile(model, x, y)
    with pytest.raises(ValueError, match=r"profile: argument `loss` needs targets `y`"):
        profile(model, x, loss="mse")
    with pytest.raises(ValueError, match=r"profile: argument `y` must hold one target per sample of `x` "
                                         r"\(4\), got shape \(3, 3\)"):
        profile(model, x, y[:3], loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"profile: arguments `y` and `loss` are only used with training=True"):
        profile(model, x, y, loss="categorical_crossentropy", training=False)
    with pytest.raises(TypeError, match=r"profile: argument `training` must be True or False, got 1"):
        profile(model, x, training=1)
    with pytest.raises(ValueError, match=r"profile: argument `model` has no layers"):
        profile(Sequential(), x)
    image, vector = layers.Input((4, 4, 1)), layers.Input((3,))
    two_inputs = Model([image, vector], layers.Concatenate()([layers.Flatten()(image), vector]))
    with pytest.raises(ValueError, match=r"profile: graph models with one input and one output only, got 2 "
                                         r"inputs and 1 outputs"):
        profile(two_inputs, [np.ones((2, 4, 4, 1)), np.ones((2, 3))])


def test_compiled_model_uses_its_loss_and_times_a_shadow_optimizer_update():
    from convscope.optimizers import Adam

    model = small_model()
    model.compile(optimizer=Adam(), loss="categorical_crossentropy")
    x, y = batch()
    before = [w.copy() for w in model.get_weights()]
    result = profile(model, x, y, repeats=2, print_table=False)
    assert result.loss_name == "categorical_crossentropy"
    assert result.update_name == "Adam" and result.update_s > 0
    assert ("update (Adam)", "optimizer") in [(label, phase) for label, phase, _, _ in result.hotspots(20)]
    assert "update (Adam)" in result.table()
    assert model.optimizer.iterations == 0
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_first_layer_skips_the_input_gradient_as_in_training():
    first, middle = Sleepy(0.0, 0.0, input_shape=(3,)), Sleepy(0.0, 0.0)
    model = Sequential([first, middle, layers.Dense(2)])
    profile(model, np.ones((2, 3), np.float32), repeats=2, warmup=1, print_table=False)
    assert first.input_grad_requests == [False] * 3
    assert middle.input_grad_requests == [True] * 3


def test_an_unbuilt_model_is_built_by_the_profile():
    model = Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)])
    result = profile(model, np.ones((3, 5), np.float32), repeats=1, print_table=False)
    assert [row.output_shape for row in result.layers] == [(3, 4), (3, 2)]
    assert model.layers[0].kernel.shape == (5, 4)


def test_a_graph_model_is_profiled_through_its_plan_one_row_per_node():
    import convscope as cs
    inputs = cs.Input((8, 8, 2), name="image")
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    y = Sleepy(0.01, 0.02, name="sleepy")(x)
    z = layers.Add(name="add")([x, y])
    outputs = layers.Dense(3, activation="softmax", name="head")(layers.Flatten(name="flat")(z))
    model = cs.Model(inputs, outputs)
    x_batch = np.random.default_rng(0).random((4, 8, 8, 2), dtype=np.float32)
    before = [w.copy() for w in model.get_weights()]
    inference = profile(model, x_batch, training=False, repeats=2, print_table=False)
    assert [row.name for row in inference.layers] == ["image", "conv", "bn", "relu", "sleepy", "add", "flat", "head"]
    assert [row.fused_into for row in inference.layers][1:4] == [None, "conv", "conv"]   # the plan's fused chain
    assert inference.layers[4].forward_s >= 0.01 and all(row.backward_s is None for row in inference.layers)
    trained = profile(model, x_batch, y=np.array([0, 1, 2, 0]), loss="sparse_categorical_crossentropy",
                      repeats=2, print_table=False)
    assert trained.layers[4].backward_s >= 0.02 and trained.layers[1].backward_s > 0
    for old, new in zip(before, model.get_weights()):       # moving statistics restored too
        np.testing.assert_array_equal(old, new)


def test_a_padding_folded_into_the_op_after_it_does_not_take_that_op_s_time():
    """ZeroPadding2D -> Conv2D('valid') -> BN (one stage) and ZeroPadding2D -> MaxPooling2D (one stage), as a ResNet's
    stem: each stage's time is on the convolution's or the pooling's row, the padding's row says "fused" into it;
    in a Sequential and a graph model alike."""
    import convscope as cs
    stem = [layers.ZeroPadding2D(2, name="conv_pad"), layers.Conv2D(4, 5, strides=2, name="conv"),
            layers.BatchNormalization(name="bn"), layers.ReLU(name="relu"), layers.ZeroPadding2D(1, name="pool_pad"),
            layers.MaxPooling2D(3, strides=2, name="pool")]
    x = np.random.default_rng(1).random((2, 16, 16, 3), dtype=np.float32)
    sequential = Sequential([layers.Input((16, 16, 3))] + stem)
    inputs = cs.Input((16, 16, 3), name="image")
    y = inputs
    for layer in [layers.ZeroPadding2D(2, name="conv_pad"), layers.Conv2D(4, 5, strides=2, name="conv"),
                  layers.BatchNormalization(name="bn"), layers.ReLU(name="relu"),
                  layers.ZeroPadding2D(1, name="pool_pad"), layers.MaxPooling2D(3, strides=2, name="pool")]:
        y = layer(y)
    graph = cs.Model(inputs, y)
    for model in (sequential, graph):
        result = profile(model, x, training=False, repeats=2, print_table=False)
        rows = {row.name: row for row in result.layers}
        assert [rows[name].fused_into for name in ("conv_pad", "conv", "bn", "relu", "pool_pad", "pool")] == [
            "conv", None, "conv", "conv", "pool", None]
        assert rows["conv"].forward_s > 0 and rows["pool"].forward_s > 0
        assert rows["conv_pad"].forward_s == 0 and rows["pool_pad"].forward_s == 0
    assert any("conv_pad, bn, relu ran inside conv's op" in note for note in profile(
        sequential, x, training=False, repeats=1, print_table=False).notes)
