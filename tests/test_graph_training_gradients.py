"""Training gradients of a residual functional graph (tensors with two consumers, stride-2 projection
shortcuts, BatchNormalization in training mode) against PyTorch autograd, both in float64."""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import real_cnns  # noqa: E402  (the PyTorch twin of a convscope functional model)

from convscope import layers as L  # noqa: E402
from convscope import optimizers  # noqa: E402
from convscope.models import Model  # noqa: E402


def _residual_net(seed):
    """Conv-BN-ReLU stem, an identity block (the stem's output feeds a conv and the Add) and a stride-2
    block with a 1x1 projection shortcut, as benchmarks/real_cnns.py's `resnet_cifar`, in float64."""
    def conv_bn(x, filters, strides=1, relu=True, kernel=3):
        x = L.Conv2D(filters, kernel, strides=strides, padding="same", dtype="float64")(x)
        x = L.BatchNormalization(dtype="float64")(x)
        return L.Activation("relu", dtype="float64")(x) if relu else x
    inputs = L.Input((8, 8, 3), dtype="float64")
    x = conv_bn(inputs, 4)
    for filters, strides in ((4, 1), (6, 2)):
        y = conv_bn(conv_bn(x, filters, strides), filters, relu=False)
        if strides != 1:
            x = conv_bn(x, filters, strides, relu=False, kernel=1)
        x = L.Activation("relu", dtype="float64")(L.Add(dtype="float64")([x, y]))
    x = L.GlobalAveragePooling2D(dtype="float64")(x)
    model = Model(inputs, L.Dense(5, activation="softmax", dtype="float64")(x))
    rng = np.random.default_rng(seed)
    # non-trivial BN parameters and conv biases (zero-gradient in exact arithmetic before a BN), rounded to
    # float32 values: the twin's parameters are float32, cast to float64 by `float64_gradients`
    weights = [w + 0.1 * rng.standard_normal(w.shape) for w in model.get_weights()]
    model.set_weights([w.astype(np.float32).astype(np.float64) for w in weights])
    return model


@pytest.mark.parametrize("seed", [0, 1])
def test_residual_graph_float64_gradients_match_torch_autograd(seed):
    model = _residual_net(seed)
    twin = real_cnns.to_torch(model)
    rng = np.random.default_rng(10 + seed)
    x = rng.random((4, 8, 8, 3))
    y = np.eye(5)[rng.integers(0, 5, 4)]
    expected = real_cnns.float64_gradients(twin, x, y)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy")
    model.train_on_batch(x, y)
    got = real_cnns.trainable_arrays(model, "grad")
    assert len(got) == len(expected) and all(g.dtype == np.float64 for g in got)
    scale = max(float(np.abs(e).max()) for e in expected)
    for g, e in zip(got, expected):
        # conv biases before a BN have zero exact gradients: judged on the model's gradient scale
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-10 * max(float(np.abs(e).max()), 1e-3 * scale))


def test_a_training_step_computes_no_gradient_for_the_models_own_inputs(monkeypatch):
    """`backward_graph(need_input_grads=False)` (a training step's): a layer or fused stage whose inputs are all
    the model's inputs is asked for no input gradient (the first convolution of an image model: its input
    gradient cost 4.3 of ResNet-20's 185 ms), one with another source still is (a residual Add of a model
    input); the weights' gradients are the bits of the pass that computes every input gradient."""
    from convscope.models import plan
    asked = []
    for cls in (plan.BatchNormReluStage, L.Conv2D):
        original = cls.backward
        monkeypatch.setattr(cls, "backward", lambda self, ctx, grad, need_input_grad=True, _original=original, **kw:
                            asked.append((self.layers[0].name if hasattr(self, "layers") else self.name,
                                          need_input_grad)) or _original(self, ctx, grad, need_input_grad, **kw))
    x1, x2 = L.Input((8, 8, 4)), L.Input((8, 8, 4))
    h = L.ReLU()(L.BatchNormalization(name="bn_x1")(x1))                        # a stage fed by a model input
    h = L.Conv2D(4, 3, padding="same", name="first")(h)
    h = L.Conv2D(4, 3, padding="same", name="second")(L.ReLU()(L.BatchNormalization(name="bn_in")(h)))
    r = L.ReLU()(L.Add()([L.BatchNormalization(name="bn_res")(h), x2]))        # its residual a model input
    side = L.Conv2D(4, 1, name="side")(x2)                                      # a layer fed by a model input
    s = L.ReLU()(L.Add()([L.BatchNormalization(name="bn_x2")(x2), r]))          # fed by one, its residual not
    model = Model([x1, x2], L.Dense(3, name="dense")(L.GlobalAveragePooling2D()(L.Add()([s, side]))))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 8, 8, 4)).astype(np.float32) for _ in range(2)]
    results = {}
    for need in (True, False):
        asked.clear()
        out, execution = model.run(arrays, training=True, keep=True)
        input_grads, pairs = model.backward_graph(execution, [np.ones_like(out[0])], need_input_grads=need)
        results[need] = ({v.name: g for v, g in pairs}, input_grads, dict(asked))
    assert results[True][2] == dict.fromkeys(["bn_x1", "first", "bn_in", "second", "bn_res", "side", "bn_x2"], True)
    assert results[False][2] == dict(results[True][2], bn_x1=False, side=False)
    assert results[False][1] is None and [g.shape for g in results[True][1]] == [(2, 8, 8, 4)] * 2
    assert results[True][0].keys() == results[False][0].keys() and len(results[True][0]) == 16
    for name, grad in results[True][0].items():
        np.testing.assert_array_equal(results[False][0][name], grad)
