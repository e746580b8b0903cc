"""Float32 training gradients of a ResNet-style graph against float64 (issue 18: the ResNet-20 check).

A float32 gradient can be far from the float64 one with no rounding fault in the backward pass: where a
ReLU's input lies within the float32 forward error of zero (a few 1e-6 here), the float32 run may take
the other side of the gate, and that element's whole upstream gradient then goes elsewhere.  ResNet-20's
check (benchmarks/compare_torch.py, batch 8) is such a case: one ReLU input of the last stage is 2.3e-6 in
float64, -2.7e-7 in convscope's float32 and +2.7e-7 in PyTorch's (forward errors of 2.5e-6 and 2.0e-6, both
typical there), which moves convscope's kernel gradients by 4e-2; at batch 128 both flip about one gate
per ReLU layer.  So the first test uses a net and batch where no gate flips (checked), the second
compares against float64 run on the float32 run's gates, which holds on any net.  Both judge each tensor
by its largest float64 value (`_errors`).
"""

import copy
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
from convscope.models.plan import BatchNormReluStage  # noqa: E402

# Largest float32 gradient error relative to float64 that convscope and PyTorch stay within here (per
# tensor, over its largest value; conv biases over 1e-3 of the model's largest gradient).
TOLERANCE = 1e-5
BIAS_TOLERANCE = 2e-3


def _resnet(dtype, filters, blocks, size):
    """A conv-BN-ReLU stem and `blocks` identity blocks (each input feeds a conv and the Add) at
    size x size x filters, then GlobalAveragePooling2D and a softmax Dense, as real_cnns' `resnet_cifar`."""
    def conv_bn(x, relu=True):
        x = L.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal", dtype=dtype)(x)
        x = L.BatchNormalization(dtype=dtype)(x)
        return L.Activation("relu", dtype=dtype)(x) if relu else x
    inputs = L.Input((size, size, 3), dtype=dtype)
    x = conv_bn(inputs)
    for _ in range(blocks):
        y = conv_bn(conv_bn(x), relu=False)
        x = L.Activation("relu", dtype=dtype)(L.Add(dtype=dtype)([x, y]))
    x = L.GlobalAveragePooling2D(dtype=dtype)(x)
    model = Model(inputs, L.Dense(10, activation="softmax", kernel_initializer="he_normal", dtype=dtype)(x))
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy")
    return model


def _resnets(seed, filters=16, blocks=2, size=8):
    """The float32 net and its float64 copy with the same weights (float32 values) drawn from `seed`:
    He-normal kernels; BN parameters, moving statistics and biases perturbed so they are not 1/0."""
    model32, model64 = (_resnet(dtype, filters, blocks, size) for dtype in ("float32", "float64"))
    rng = np.random.default_rng(seed)
    weights = [(rng.standard_normal(w.shape) * np.sqrt(2.0 / np.prod(w.shape[:-1])) if w.ndim > 1
                else w + 0.1 * rng.standard_normal(w.shape)).astype(np.float32) for w in model32.get_weights()]
    model32.set_weights(weights)
    model64.set_weights([w.astype(np.float64) for w in weights])
    return model32, model64


def _batch(seed, batch=64, size=8):
    rng = np.random.default_rng(100 + seed)
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    return x, np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]


def _errors(model, got, expected):
    """{weight name: largest difference over the tensor's largest expected value}; a conv bias before a
    BatchNormalization has a zero exact gradient, so its float32 values (rounding noise) are judged on
    1e-3 of the model's largest gradient, as benchmarks/compare_torch's check does."""
    names = [v.name for layer in model.layers for v in layer.trainable_weights]
    floor = 1e-3 * max(float(np.abs(e).max()) for e in expected)
    return {name: float(np.abs(np.asarray(g, np.float64) - e).max())
            / (floor if _conv_bias(name) else float(np.abs(e).max())) for name, g, e in zip(names, got, expected)}


def _conv_bias(name):
    return name.startswith("conv2d") and name.endswith("/bias")


def _check(errors, context=""):
    """Every weight's gradient within TOLERANCE (conv biases: BIAS_TOLERANCE) of float64."""
    bad = {name: error for name, error in errors.items()
           if error > (BIAS_TOLERANCE if _conv_bias(name) else TOLERANCE)}
    assert not bad, f"float32 gradients off float64{context}: " + ", ".join(f"{k} {v:.2e}" for k, v in bad.items())


def _torch_float32_gradients(twin, x, y):
    """PyTorch's float32 gradients of the crossentropy, as `real_cnns.float64_gradients` in float32."""
    module = copy.deepcopy(twin.module).train()
    copies = dict(zip((id(p) for p in twin.module.parameters()), module.parameters()))
    logits = module(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
    return [np.array(to_keras(copies[id(p)].grad.numpy())) for pairs in twin.params for p, to_keras in pairs]


def _relu_inputs(model, monkeypatch, replace=None):
    """Record each ReLU Activation's input during the model's next forward passes (a list per call), or,
    with `replace` (such a list), hand its backward those arrays as the input instead.  A ReLU the training
    plan runs with the batch norm before it (`plan.BatchNormReluStage`) gives its output instead, positive
    exactly where its input is: with `replace`, its backward runs as the layers' (`batch_norm_act`'s
    reference), whose ReLU reads its gate from that output."""
    seen = []
    for step in model._steps(training=True, keep=True):
        if isinstance(step.stage, BatchNormReluStage):
            def fused(inputs, training=False, residual=None, original=step.stage.forward):
                outputs, ctx = original(inputs, training=training, residual=residual)
                if replace is not None:      # the layers' backward, its ReLU gated on y (the fused one
                    ctx[1]["y"] = replace[len(seen)].astype(outputs.dtype)     # recomputes the gate from x)
                    ctx[1]["path"] = "reference"
                seen.append(np.array(outputs))
                return outputs, ctx
            monkeypatch.setattr(step.stage, "forward", fused)
    for layer in model.layers:
        if type(layer).__name__ == "Activation" and layer.get_config()["activation"] == "relu":
            def forward(inputs, training=False, original=layer.forward):
                outputs, ctx = original(inputs, training=training)
                if replace is not None:
                    ctx.z = replace[len(seen)].astype(inputs.dtype)
                seen.append(np.array(inputs))
                return outputs, ctx
            monkeypatch.setattr(layer, "forward", forward)
    return seen


def _gradients(model, x, y):
    model.train_on_batch(x, y)
    return real_cnns.trainable_arrays(model, "grad")


def test_float32_gradients_match_float64_where_no_relu_gate_flips(monkeypatch):
    """Batch 64 at 8x8x16, two identity blocks, no ReLU input within 6e-6 of 0 (as context, Dec 2026 on an
    AVX-512 host, seeds 0-7 of this test: against PyTorch float64, convscope float32 within 0.7-2.1e-6 and
    PyTorch float32 within 2.4-6.9e-6, conv biases aside; seed 5: 1.0e-6 and 2.4e-6)."""
    model32, model64 = _resnets(5)
    x, y = _batch(5)
    twin = real_cnns.to_torch(model32)
    expected = real_cnns.float64_gradients(twin, x, y)
    z32, z64 = _relu_inputs(model32, monkeypatch), _relu_inputs(model64, monkeypatch)
    got = _gradients(model32, x, y)
    _gradients(model64, x.astype(np.float64), y.astype(np.float64))
    assert len(z32) == len(z64) == 5
    flips = sum(int(((a > 0) != (b > 0)).sum()) for a, b in zip(z32, z64))
    assert flips == 0, f"the test's batch has {flips} ReLU gate(s) flipped by float32 rounding: pick another seed"
    _check(_errors(model32, _torch_float32_gradients(twin, x, y), expected),
           " (PyTorch's own: the bounds do not fit this net)")
    _check(_errors(model32, got, expected))


@pytest.mark.parametrize("seed", [2, 5, 6])
def test_float32_gradients_match_float64_on_the_float32_relu_gates(monkeypatch, seed):
    """Batch 128 at 16x16x16, three blocks, seeds where float32 rounding flips one or two ReLU gates on an
    AVX-512 host (as context, Dec 2026: convscope float32 is then 1.2-3.7e-3 off plain float64, as is PyTorch
    float32 where it flips the same gate): the float64 gradient through the float32 run's gates is what the
    float32 backward computes up to its rounding (1.9-5.2e-6 then)."""
    model32, model64 = _resnets(seed, blocks=3, size=16)
    x, y = _batch(seed, batch=128, size=16)
    z32 = _relu_inputs(model32, monkeypatch)
    got = _gradients(model32, x, y)
    z64 = _relu_inputs(model64, monkeypatch, replace=z32)
    expected = _gradients(model64, x.astype(np.float64), y.astype(np.float64))
    assert len(z32) == len(z64) == 7
    _check(_errors(model32, got, expected))
