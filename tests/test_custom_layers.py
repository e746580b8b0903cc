"""Custom layers (only `build` and `call`, written with `ops`) differentiated on the tape, and
arithmetic on symbolic tensors (`x * 0.5 + y`) recorded as Keras 3's operation layers.

Oracles: PyTorch (forward, loss, every gradient), float64 finite differences (the custom layer's
weights), Keras 3.15.1 on the torch backend (configs both ways, outputs).
"""

import json
import threading

import numpy as np
import pytest

import convscope as cs
from convscope import backend, losses, ops
from convscope import layers as L
from convscope.layers import autodiff, operations

from _gradcheck import numerical_gradient

torch = pytest.importorskip("torch")
F = torch.nn.functional


def make_scale_gate(base, k_ops):
    """The same custom layer for convscope (`base=L.Layer`, `k_ops=ops`) or Keras."""
    class ScaleGate(base):
        """A learned per-channel scale and a gated activation."""

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

        def call(self, x):
            return k_ops.multiply(x, self.scale) * k_ops.sigmoid(x) + 0.5 * x
    return ScaleGate


ScaleGate = make_scale_gate(L.Layer, ops)


def gated_model(dtype="float32", shared=False):
    """Conv2D -> ScaleGate -> `z * 0.5 + y` -> Flatten -> Dense(softmax); `shared`: the gate used twice."""
    inputs = L.Input((6, 6, 3), dtype=dtype)
    y = L.Conv2D(4, 3, dtype=dtype)(inputs)
    gate = ScaleGate(dtype=dtype)
    z = gate(y)
    w = z * 0.5 + y
    if shared:
        w = gate(w) - y
    outputs = L.Dense(3, activation="softmax", dtype=dtype)(L.Flatten(dtype=dtype)(w))
    return cs.Model(inputs, outputs)


def _randomize(model, rng, scale=0.2):
    """Weights away from their initial values (the gate's scale around 1), small enough that the
    softmax does not saturate (the losses clip probabilities below 1e-7)."""
    for variable in model.weights:
        variable.assign(rng.normal(0, scale, variable.shape) + (1.0 if variable.name.endswith("scale") else 0.0))


def _t(array, grad=False):
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=grad)


def torch_gated(model, params, x_nhwc, shared=False):
    """The same graph in PyTorch, float64."""
    conv, gate, dense = (model.get_layer(name) for name in ("conv2d", "scale_gate", "dense"))

    def gate_fn(t):
        return t * params[gate.scale.name] * torch.sigmoid(t) + 0.5 * t
    x = (x_nhwc if torch.is_tensor(x_nhwc) else _t(x_nhwc)).permute(0, 3, 1, 2)
    y = F.conv2d(x, params[conv.kernel.name].permute(3, 2, 0, 1), params[conv.bias.name]).permute(0, 2, 3, 1)
    w = gate_fn(y) * 0.5 + y
    if shared:
        w = gate_fn(w) - y
    logits = w.reshape(w.shape[0], -1) @ params[dense.kernel.name] + params[dense.bias.name]
    return torch.softmax(logits, dim=-1)


def _rel(ours, theirs, floor=1e-6):
    theirs = np.asarray(theirs)
    return float(np.abs(np.asarray(ours) - theirs).max() / max(np.abs(theirs).max(), floor))


def _run_and_differentiate(model, x, y, loss):
    outputs, execution = model.run([x], training=True, keep=True)
    input_grads, pairs = model.backward_graph(execution, [loss.gradient(y, outputs[0])])
    return outputs[0], input_grads[0], {variable.name: grad for variable, grad in pairs}


# -- (e): a custom layer and symbolic arithmetic against PyTorch ---------------------------------

@pytest.mark.parametrize("shared", [False, True], ids=["once", "shared"])
def test_custom_layer_and_arithmetic_match_torch(shared):
    """Forward, loss and every gradient (weights and input) of Conv2D -> ScaleGate -> z * 0.5 + y ->
    Dense agree with PyTorch; used twice, the gate's gradient is the sum over both uses."""
    rng = np.random.default_rng(0)
    model = gated_model(shared=shared)
    gate = model.get_layer("scale_gate")
    np.testing.assert_array_equal(gate.scale.value, np.ones(4, "float32"))      # initializer="ones"
    assert [type(layer).__name__ for layer in model.layers].count("ScaleGate") == 1
    _randomize(model, rng)
    x = rng.normal(size=(5, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 3, size=5)
    loss = losses.SparseCategoricalCrossentropy()

    outputs, input_grad, grads = _run_and_differentiate(model, x, y, loss)
    params = {v.name: _t(v.value, grad=True) for v in model.weights}
    x_torch = _t(x, grad=True)
    probabilities = torch_gated(model, params, x_torch, shared=shared)
    torch_loss = F.nll_loss(torch.log(probabilities), torch.tensor(y))
    torch_loss.backward()

    assert outputs.dtype == np.float32 and outputs.min() > 1e-5
    assert _rel(outputs, probabilities.detach().numpy()) < 1e-5
    assert abs(loss(y, outputs) - torch_loss.item()) < 1e-5 * abs(torch_loss.item())
    assert sorted(grads) == sorted(v.name for v in model.trainable_weights)
    for variable in model.trainable_weights:
        assert grads[variable.name].dtype == np.float32, variable.name
        assert _rel(grads[variable.name], params[variable.name].grad.numpy()) < 1e-4, variable.name
    assert input_grad.dtype == np.float32
    assert _rel(input_grad, x_torch.grad.numpy()) < 1e-4


def test_shared_gate_gradient_is_the_sum_of_both_uses():
    """Each use differentiated alone (the other's weight frozen in PyTorch) adds up to the shared gradient."""
    rng = np.random.default_rng(1)
    model = gated_model(shared=True)
    _randomize(model, rng)
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 3, size=4)
    loss = losses.SparseCategoricalCrossentropy()
    _, _, grads = _run_and_differentiate(model, x, y, loss)
    scale_name = model.get_layer("scale_gate").scale.name
    per_use = []
    for use in (0, 1):
        params = {v.name: _t(v.value, grad=True) for v in model.weights}
        live, frozen = params[scale_name], params[scale_name].detach()
        calls = iter([live, frozen] if use == 0 else [frozen, live])

        class Swap(dict):
            def __getitem__(self, key):
                return next(calls) if key == scale_name else dict.__getitem__(self, key)
        probabilities = torch_gated(model, Swap(params), x, shared=True)
        F.nll_loss(torch.log(probabilities), torch.tensor(y)).backward()
        per_use.append(live.grad.numpy())
    assert _rel(grads[scale_name], per_use[0] + per_use[1]) < 1e-4
    assert _rel(per_use[0], per_use[1]) > 1e-3          # both uses matter


def test_custom_layer_weight_gradients_float64_finite_differences():
    """float64 model: the gate's scale (and the input) gradients equal central differences of the loss."""
    rng = np.random.default_rng(2)
    model = gated_model(dtype="float64", shared=True)
    _randomize(model, rng)
    x = rng.normal(size=(3, 6, 6, 3))
    y = rng.integers(0, 3, size=3)
    loss = losses.SparseCategoricalCrossentropy()
    outputs, input_grad, grads = _run_and_differentiate(model, x, y, loss)
    assert outputs.dtype == np.float64
    scale = model.get_layer("scale_gate").scale

    def loss_value():
        return float(loss(y, model.run([x], training=True, keep=True)[0][0]))
    numeric = numerical_gradient(loss_value, scale.value)
    np.testing.assert_allclose(grads[scale.name], numeric, rtol=1e-6, atol=1e-9)
    assert np.abs(numeric).max() > 1e-4
    numeric_x = numerical_gradient(loss_value, x[:1, :2])     # a corner of the input (a view: perturbs x)
    np.testing.assert_allclose(input_grad[:1, :2], numeric_x, rtol=1e-6, atol=1e-9)


def test_fit_trains_the_custom_layer():
    rng = np.random.default_rng(3)
    model = gated_model()
    x = rng.normal(size=(64, 6, 6, 3)).astype("float32")
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 0).astype("int64") + (x[:, :, :, 1].mean(axis=(1, 2)) > 0)
    model.compile(optimizer=cs.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    assert not np.allclose(model.get_layer("scale_gate").scale.value, 1.0)


# -- the tape contract --------------------------------------------------------------------------

class TwoInputGate(L.Layer):
    """A list input: a * sigmoid(b) * w; `training` scales the output."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[0][-1],), initializer="ones", name="w")
        self.frozen = self.add_weight(shape=(), initializer="ones", name="frozen", trainable=False)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def call(self, inputs, training=False):
        a, b = inputs
        out = a * ops.sigmoid(b) * self.w * self.frozen
        return out * 2.0 if training else out


def test_list_input_training_argument_and_frozen_weights():
    """Each input of a list gets its gradient; `training` reaches a `call` that takes it; a
    non-trainable weight gets none."""
    rng = np.random.default_rng(4)
    layer = TwoInputGate()
    a, b = rng.normal(size=(2, 3, 5))
    layer.build([(None, 5), (None, 5)])
    layer.w.assign(rng.normal(size=5))
    for training, factor in ((False, 1.0), (True, 2.0)):
        out, ctx = autodiff.forward_on_tape(layer, [a.astype("float32"), b.astype("float32")], training)
        assert type(out) is np.ndarray
        g = rng.normal(size=out.shape).astype("float32")
        (ga, gb), pairs = autodiff.backward_on_tape(layer, ctx, g)
        ta, tb, tw = _t(a, True), _t(b, True), _t(layer.w.value, True)
        expected = ta * torch.sigmoid(tb) * tw * factor
        assert _rel(out, expected.detach().numpy()) < 1e-6
        (expected * _t(g)).sum().backward()
        assert [v.name for v, _ in pairs] == [layer.w.name]
        assert _rel(ga, ta.grad.numpy()) < 1e-5 and _rel(gb, tb.grad.numpy()) < 1e-5
        assert _rel(pairs[0][1], tw.grad.numpy()) < 1e-5
        assert ga.dtype == gb.dtype == pairs[0][1].dtype == np.float32


def test_no_backward_keeps_nothing_and_backward_without_context_names_the_layer():
    layer = ScaleGate(name="gate")
    x = np.random.default_rng(5).normal(size=(2, 4)).astype("float32")
    layer.build((None, 4))
    with backend.no_backward():
        out, ctx = layer.forward(x)
    assert ctx is None and type(out) is np.ndarray
    with pytest.raises(RuntimeError, match="ScaleGate 'gate'.*no_backward"):
        layer.backward(None, np.ones_like(out))
    out, ctx = layer.forward(x)
    assert not hasattr(layer, "_ctx") and type(out) is np.ndarray        # nothing kept on the layer
    grad, pairs = layer.backward(ctx, np.ones_like(out))
    assert grad.shape == x.shape and len(pairs) == 1
    with pytest.raises(RuntimeError, match="ScaleGate 'gate'.*already differentiated"):
        layer.backward(ctx, np.ones_like(out))


def test_an_input_the_output_ignores_gets_zeros():
    class First(L.Layer):
        def compute_output_shape(self, input_shape):
            return input_shape[0]

        def call(self, inputs):
            return inputs[0] * 3.0
    a, b = np.ones((2, 3), "float32"), np.ones((2, 3), "float32")
    out, ctx = autodiff.forward_on_tape(First(), [a, b])
    (ga, gb), pairs = autodiff.backward_on_tape(First(), ctx, np.ones_like(out))
    np.testing.assert_array_equal(ga, np.full((2, 3), 3.0, "float32"))
    np.testing.assert_array_equal(gb, np.zeros((2, 3), "float32"))
    assert pairs == []


def test_infer_output_shape_runs_call_on_placeholders():
    """A custom layer that changes the shape and has no compute_output_shape: the shape its call gives."""
    class PoolPairs(L.Layer):
        def call(self, inputs):
            a, b = inputs
            return [ops.mean(a, axis=1), ops.concatenate([a, b], axis=-1)]
    shapes = autodiff.infer_output_shape(PoolPairs(), [(None, 4, 3), (None, 4, 2)])
    assert shapes == [(None, 3), (None, 4, 5)]
    gate = ScaleGate()
    gate.build((None, 7))
    assert autodiff.infer_output_shape(gate, (None, 5, 7)) == (None, 5, 7)


def test_predict_evaluate_and_eager_call_of_a_custom_layer_without_training_argument():
    rng = np.random.default_rng(12)
    model = gated_model()
    x = rng.normal(size=(3, 6, 6, 3)).astype("float32")
    expected = model.run([x], keep=True)[0][0]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)
    model.compile(loss="sparse_categorical_crossentropy")
    assert np.isfinite(model.evaluate(x, np.array([0, 1, 2]), verbose=0))
    gate = ScaleGate()
    np.testing.assert_allclose(gate(x[:, 0, 0]), x[:, 0, 0] / (1 + np.exp(-x[:, 0, 0])) + 0.5 * x[:, 0, 0],
                               rtol=1e-6)


def test_threads_calling_one_model_get_their_own_gradients():
    rng = np.random.default_rng(6)
    model = gated_model(shared=True)
    _randomize(model, rng)
    loss = losses.SparseCategoricalCrossentropy()
    batches = [(rng.normal(size=(3, 6, 6, 3)).astype("float32"), rng.integers(0, 3, size=3)) for _ in range(4)]
    expected = [_run_and_differentiate(model, x, y, loss)[2] for x, y in batches]
    results = [None] * len(batches)
    barrier = threading.Barrier(len(batches))

    def work(i):
        barrier.wait()
        for _ in range(3):
            results[i] = _run_and_differentiate(model, *batches[i], loss)[2]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, expected):
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


# -- operations: forward and gradients against PyTorch -----------------------------------------

def test_operations_forward_and_gradients_match_torch():
    """`x * 0.5 + y`, `2.0 - x`, `x / y`, `-x`, `abs`, `x ** 2`, `x[:, 0]`, `x @ m` and
    `ops.relu/sigmoid/exp/mean/concatenate/reshape` on symbolic tensors, differentiated through."""
    a = L.Input((4, 3), dtype="float64")
    b = L.Input((3, 2), dtype="float64")
    y = L.Dense(3, dtype="float64")(a)
    parts = [
        a * 0.5 + y, 2.0 - a, a / (ops.exp(y) + 1.0), -abs(a), a ** 2, ops.sigmoid(a) * ops.relu(y),
        ops.reshape(a @ b, (-1, 8)), ops.mean(y, axis=1, keepdims=False)[:, None, :] * a, y * y,
    ]
    picked = [ops.concatenate([p if p.ndim == 3 else ops.reshape(p, (-1, 4, 2)) for p in parts], axis=-1)[:, 1:, 0:5],
              a[:, 0] + a[..., -1, :]]
    model = cs.Model([a, b], picked)
    rng = np.random.default_rng(7)
    _randomize(model, rng)
    xa, xb = rng.normal(size=(3, 4, 3)), rng.normal(size=(3, 3, 2))
    outputs, execution = model.run([xa, xb], training=True, keep=True)
    assert [o.shape for o in outputs] == [(3,) + t.shape[1:] for t in model.outputs]
    g = [rng.normal(size=o.shape) for o in outputs]
    (ga, gb), pairs = model.backward_graph(execution, g)

    ta, tb = _t(xa, True), _t(xb, True)
    dense = model.get_layer("dense")
    kernel, bias = _t(dense.kernel.value, True), _t(dense.bias.value, True)
    ty = ta @ kernel + bias
    tparts = [ta * 0.5 + ty, 2.0 - ta, ta / (torch.exp(ty) + 1.0), -ta.abs(), ta ** 2,
              torch.sigmoid(ta) * torch.relu(ty), (ta @ tb).reshape(-1, 8), ty.mean(dim=1)[:, None, :] * ta, ty * ty]
    tcat = torch.cat([p if p.ndim == 3 else p.reshape(-1, 4, 2) for p in tparts], dim=-1)[:, 1:, 0:5]
    texpected = [tcat, ta[:, 0] + ta[..., -1, :]]
    for ours, theirs in zip(outputs, texpected):
        assert _rel(ours, theirs.detach().numpy()) < 1e-12
    sum((t * _t(gi)).sum() for t, gi in zip(texpected, g)).backward()
    assert _rel(ga, ta.grad.numpy()) < 1e-12 and _rel(gb, tb.grad.numpy()) < 1e-12
    grads = {v.name: grad for v, grad in pairs}
    assert _rel(grads[dense.kernel.name], kernel.grad.numpy()) < 1e-12
    assert _rel(grads[dense.bias.name], bias.grad.numpy()) < 1e-12


def test_operation_nodes_shapes_dtypes_and_errors():
    x = L.Input((4, 3))
    assert (x * 0.5).shape == (None, 4, 3) and (x * 0.5).dtype == "float32"
    assert (x + np.ones((1, 3), "float32")).shape == (None, 4, 3)
    assert x[:, 0].shape == (None, 3) and x[..., None, 0].shape == (None, 4, 1)
    assert ops.mean(x).shape == () and ops.sum(x, axis=1).shape == (None, 3)
    assert ops.reshape(x, (-1, 12)).shape == (None, 12)
    assert ops.greater(x, 0.0).dtype == "bool"
    first, second = ops.split(x, 2, axis=1)
    assert first.shape == second.shape == (None, 2, 3)
    assert type((x * 0.5).keras_history[0]).__name__ == "Multiply"
    assert type((x / 2.0).keras_history[0]).__name__ == "TrueDivide"
    assert type(ops.divide(x, 2.0).keras_history[0]).__name__ == "Divide"
    assert type(abs(x).keras_history[0]).__name__ == "Absolute"
    with pytest.raises(ValueError, match=r"Add 'add\w*': cannot take inputs of shape \(None, 4, 3\), \(None, 5\)"):
        x + L.Input((5,))
    with pytest.raises(ValueError, match=r"Matmul 'matmul\w*'.*ops.matmul"):
        x @ L.Input((4, 2))


# -- configs: Keras 3.15.1 both ways ------------------------------------------------------------

def _tail(z, y, o):
    """The arithmetic after the gate, the same for either library (`o`: its ops)."""
    w = z * 0.5 + y
    v = -w[:, 1:, ::2] ** 2 + abs(w[:, 1:, ::2])
    return o.concatenate([o.relu(v), o.mean(v, axis=-1, keepdims=True), 1.0 / (o.exp(v) + 2.0)], axis=-1)


def _ours():
    inputs = L.Input((6, 6, 3))
    y = L.Conv2D(4, 3)(inputs)
    u = _tail(ScaleGate()(y), y, ops)
    return cs.Model(inputs, L.Dense(3, activation="softmax")(L.Flatten()(u)))


def _theirs(keras, gate_cls):
    keras.utils.clear_session()
    inputs = keras.Input((6, 6, 3))
    y = keras.layers.Conv2D(4, 3)(inputs)
    u = _tail(gate_cls()(y), y, keras.ops)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(u)))


def _strip(entry):
    """A layer entry without what the two libraries legitimately write differently (layer configs)."""
    return {k: v for k, v in entry.items() if k not in ("config", "build_config")}


def test_our_config_is_keras_config_for_operations(keras):
    """The operation entries (module, class_name, config, registered_name, inbound_nodes) are what
    Keras writes for the same graph; Keras rebuilds our config and computes the same outputs."""
    ours = _ours()
    KGate = make_scale_gate(keras.layers.Layer, keras.ops)
    theirs = _theirs(keras, KGate)
    our_config = json.loads(json.dumps(ours.get_config()))
    their_config = json.loads(theirs.to_json())["config"]
    assert [e["name"] for e in our_config["layers"]] == [e["name"] for e in their_config["layers"]]
    for mine, keras_entry in zip(our_config["layers"], their_config["layers"]):
        if str(mine["module"]).startswith("keras.src.ops"):
            assert mine == keras_entry
        else:
            assert _strip(mine)["inbound_nodes"] == _strip(keras_entry)["inbound_nodes"], mine["name"]

    rebuilt = keras.Model.from_config(our_config, custom_objects={"ScaleGate": KGate})
    assert [_name_and_type(op) for op in rebuilt.operations] == [_name_and_type(op) for op in ours._layers]
    rng = np.random.default_rng(8)
    _randomize(ours, rng)
    rebuilt.set_weights(ours.get_weights())
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    expected = rebuilt.predict(x, verbose=0)
    got = ours.run([x], keep=True)[0][0]
    assert _rel(got, expected) < 1e-5


def _name_and_type(layer):
    return layer.name, type(layer).__name__


def test_operations_are_rows_and_names_though_not_layers():
    """`layers` leaves the operations out (as Keras), but the summary (as Keras'), the analysis and
    `get_layer` by name (a Grad-CAM target) still see them."""
    model = _ours()
    found = [op for op in model.operations if isinstance(op, operations.Operation)]
    assert found and not any(isinstance(layer, operations.Operation) for layer in model.layers)
    assert len(model.operations) == len(model.layers) + len(found)
    lines = []
    model.summary(print_fn=lines.append)
    assert all(any(op.name in line for line in lines) for op in found)
    assert [r.name for r in cs.models.analysis.analyze(model).layers] == [op.name for op in model.operations]
    assert model.get_layer(found[0].name) is found[0]


def test_keras_config_rebuilt_by_convscope(keras):
    """Keras' own config of the graph: the same layers, the same node arguments, the same outputs."""
    KGate = make_scale_gate(keras.layers.Layer, keras.ops)
    theirs = _theirs(keras, KGate)
    config = json.loads(theirs.to_json())["config"]
    again = cs.Model.from_config(config, custom_objects={"ScaleGate": ScaleGate})
    assert [_name_and_type(op) for op in again.operations] == [_name_and_type(op) for op in theirs.operations]
    assert [_name_and_type(layer) for layer in again.layers] == [_name_and_type(layer) for layer in theirs.layers]
    assert [_name_and_type(again.get_layer(index=i)) for i in range(len(theirs.layers))] == \
        [_name_and_type(theirs.get_layer(index=i)) for i in range(len(theirs.layers))]
    ours = json.loads(json.dumps(again.get_config()))["layers"]
    assert [(e["module"], e["class_name"], e["inbound_nodes"]) for e in ours] == \
        [(e["module"], e["class_name"], e["inbound_nodes"]) for e in config["layers"]]
    rng = np.random.default_rng(9)
    weights = [rng.normal(0, 0.4, w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    again.set_weights(weights)
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    assert _rel(again.run([x], keep=True)[0][0], theirs.predict(x, verbose=0)) < 1e-5


def test_our_config_round_trips_in_convscope():
    ours = _ours()
    rng = np.random.default_rng(10)
    _randomize(ours, rng)
    config = json.loads(json.dumps(ours.get_config()))
    again = cs.Model.from_config(config, custom_objects={"ScaleGate": ScaleGate})
    assert json.loads(json.dumps(again.get_config())) == config
    again.set_weights(ours.get_weights())
    x = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    np.testing.assert_array_equal(again.run([x], keep=True)[0][0], ours.run([x], keep=True)[0][0])


@pytest.mark.parametrize("make", [
    lambda o, x, y: o.clip(x, -0.5, 0.5), lambda o, x, y: o.where(o.greater(x, 0.0), x, y),
    lambda o, x, y: o.softmax(x, axis=1), lambda o, x, y: o.leaky_relu(x, negative_slope=0.1),
    lambda o, x, y: o.transpose(x, (0, 2, 1)), lambda o, x, y: o.stack([x, y], axis=1),
    lambda o, x, y: o.take(x, [0, 2], axis=1), lambda o, x, y: o.maximum(x, 0.0),
    lambda o, x, y: o.einsum("bij,bkj->bik", x, y), lambda o, x, y: o.gelu(x, approximate=False),
    lambda o, x, y: o.max(x, axis=-1, keepdims=True), lambda o, x, y: o.expand_dims(x, 1),
    lambda o, x, y: o.matmul(x, np.linspace(-1, 1, 6, dtype="float32").reshape(3, 2)),
    lambda o, x, y: x[:, 1:3, None] ** 3 - (y[:, ::2] * y[:, ::2] / 2.0)[:, :, None, ...],
], ids=["clip", "where", "softmax", "leaky_relu", "transpose", "stack", "take", "maximum", "einsum", "gelu",
        "max", "expand_dims", "matmul_constant", "indexing"])
def test_ops_functions_record_what_keras_records(keras, make):
    x, y = L.Input((4, 3)), L.Input((4, 3))
    ours = cs.Model([x, y], make(ops, x, y))
    keras.utils.clear_session()
    kx, ky = keras.Input((4, 3)), keras.Input((4, 3))
    theirs = keras.Model([kx, ky], make(keras.ops, kx, ky))
    mine = [e for e in json.loads(json.dumps(ours.get_config()))["layers"]
            if str(e["module"]).startswith("keras.src.ops")]
    keras_entries = [e for e in json.loads(theirs.to_json())["config"]["layers"]
                     if str(e["module"]).startswith("keras.src.ops")]
    assert mine == keras_entries
    rng = np.random.default_rng(11)
    xs = [rng.normal(size=(2, 4, 3)).astype("float32") for _ in range(2)]
    again = cs.Model.from_config(json.loads(theirs.to_json())["config"])
    expected = theirs.predict(xs, verbose=0)
    assert _rel(again.run(xs, keep=True)[0][0], expected) < 1e-5
    assert _rel(ours.run(xs, keep=True)[0][0], expected) < 1e-5


def test_unknown_operations_and_arguments_in_a_config_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown operation 'Cumprod' of module 'keras.src.ops.numpy'"):
        L.deserialize({"module": "keras.src.ops.numpy", "class_name": "Cumprod", "config": {"name": "c"}})
    with pytest.raises(ValueError, match=r"unknown operation 'Conv2d' of module 'keras.src.ops.nn'"):
        L.deserialize({"module": "keras.src.ops.nn", "class_name": "Conv2d", "config": {"name": "c"}})
    with pytest.raises(TypeError, match=r"Mean: unexpected argument\(s\) \['bogus'\]; ops.mean takes "
                                        r"\['axis', 'keepdims'\]"):
        L.deserialize({"module": "keras.src.ops.numpy", "class_name": "Mean", "config": {"name": "m", "bogus": 1}})
    merge = L.deserialize({"module": "keras.layers", "class_name": "Add", "config": {"name": "a"}})
    operation = L.deserialize({"module": "keras.src.ops.numpy", "class_name": "Add", "config": {"name": "b"}})
    assert type(merge) is L.Add and isinstance(operation, operations.Operation)
    assert L.serialize(operation)["module"] == "keras.src.ops.numpy" and L.serialize(merge)["module"] == "keras.layers"


class DenseGate(L.Layer):
    """A custom layer holding a Dense sublayer as Keras users write it: its weights tracked, `self.dense(x)`
    one node on the tape."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = L.Dense(units, dtype=self.dtype)

    def build(self, input_shape):
        self.gate = self.add_weight(shape=(self.units,), initializer="ones", name="gate")

    def call(self, x):
        h = self.dense(x)
        return h * ops.sigmoid(h * self.gate)


def test_a_sublayer_called_inside_call_is_differentiated_with_its_own_backward():
    rng = np.random.default_rng(13)
    inputs = L.Input((5,), dtype="float64")
    model = cs.Model(inputs, DenseGate(3, dtype="float64")(inputs) * 2.0)
    _randomize(model, rng)
    x = rng.normal(size=(4, 5))
    outputs, execution = model.run([x], training=True, keep=True)
    g = rng.normal(size=outputs[0].shape)
    (gx,), pairs = model.backward_graph(execution, [g])
    block = model.get_layer("dense_gate")
    params = {v.name: _t(v.value, True) for v in model.trainable_weights}
    tx = _t(x, True)
    h = tx @ params[block.dense.kernel.name] + params[block.dense.bias.name]
    expected = h * torch.sigmoid(h * params[block.gate.name]) * 2.0
    assert _rel(outputs[0], expected.detach().numpy()) < 1e-12
    (expected * _t(g)).sum().backward()
    grads = {v.name: grad for v, grad in pairs}
    assert sorted(grads) == sorted(params)
    for name, tensor in params.items():
        assert _rel(grads[name], tensor.grad.numpy()) < 1e-12, name
    assert _rel(gx, tx.grad.numpy()) < 1e-12


def test_save_and_load_a_model_with_a_custom_layer_and_operations(tmp_path):
    rng = np.random.default_rng(14)
    model = _ours()
    _randomize(model, rng)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path / "gated.keras"
    model.save(path)
    again = cs.models.load_model(path, custom_objects={"ScaleGate": ScaleGate})
    assert json.loads(json.dumps(again.get_config())) == json.loads(json.dumps(model.get_config()))
    x = rng.normal(size=(3, 6, 6, 3)).astype("float32")
    np.testing.assert_array_equal(again.run([x], keep=True)[0][0], model.run([x], keep=True)[0][0])


def make_scalar_affine(base, shape=()):
    """A custom layer with scalar weights (`add_weight(shape=())`): two trainable, one frozen."""
    class ScalarAffine(base):
        def build(self, input_shape):
            self.a = self.add_weight(shape=shape, initializer="ones", name="a")
            self.b = self.add_weight(shape=shape, initializer="zeros", name="b")
            self.c = self.add_weight(shape=shape, initializer="ones", name="c", trainable=False)

        def call(self, x):
            return x * self.a * self.c + self.b
    return ScalarAffine


def test_scalar_weights_are_scalars_train_and_load_as_keras(keras, tmp_path):
    """`add_weight(shape=())` makes a () variable as Keras' does (was (1,)): the same shapes and count, the same
    weights after SGD then Adam steps, and a `.keras` file Keras wrote loads with its scalars."""
    def model(module, layer):
        return module.Sequential([module.Input((3,)), module.layers.Dense(2, kernel_initializer="ones"), layer()])

    ours = model(cs, make_scalar_affine(L.Layer))
    k_affine = make_scalar_affine(keras.layers.Layer)
    theirs = model(keras, k_affine)
    assert [v.shape for v in ours.weights] == [tuple(v.shape) for v in theirs.weights] == [(3, 2), (2,), (), (), ()]
    assert ours.count_params() == theirs.count_params() == 11
    x = np.arange(12, dtype="float32").reshape(4, 3) / 10
    y = np.ones((4, 2), "float32")
    for make_optimizer in (lambda m: m.optimizers.SGD(0.1), lambda m: m.optimizers.Adam(0.1)):
        for net, module in ((ours, cs), (theirs, keras)):
            net.compile(optimizer=make_optimizer(module), loss="mse")
            net.fit(x, y, epochs=2, batch_size=2, verbose=0, shuffle=False)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "scalars.keras")
    loaded = cs.models.load_model(tmp_path / "scalars.keras", compile=False,
                                  custom_objects={"ScalarAffine": make_scalar_affine(L.Layer)})
    assert [w.shape for w in loaded.get_weights()] == [(3, 2), (2,), (), (), ()]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".convscope", ".weights.npz", ".weights.h5"])
def test_scalar_weights_an_older_convscope_wrote_as_one_value_load(tmp_path, suffix):
    """Files convscope wrote before scalar weights were scalars hold them as (1,): each format loads them into
    the () weights, the same predictions; a weight of another shape is still refused by name."""
    rng = np.random.default_rng(5)
    old_layer, new_layer = make_scalar_affine(L.Layer, (1,)), make_scalar_affine(L.Layer)

    def model(layer):
        return cs.Sequential([cs.Input((3,)), cs.layers.Dense(2), layer()])

    old = model(old_layer)
    for variable in old.weights:
        variable.assign(rng.normal(size=variable.shape))
    path = tmp_path / f"old{suffix}"
    x, y = rng.normal(size=(4, 3)).astype("float32"), np.ones((4, 2), "float32")
    old.compile(cs.optimizers.Adam(0.01), "mse")
    old.train_on_batch(x, y)                    # Adam's slots of the scalar weights: (1,) too
    if suffix.startswith(".weights"):
        old.save_weights(path)
        loaded = model(new_layer)
        loaded.load_weights(path)
    else:
        old.save(path)
        loaded = cs.models.load_model(path, custom_objects={"ScalarAffine": new_layer})     # compile=True
        np.testing.assert_allclose(loaded.train_on_batch(x, y), old.train_on_batch(x, y), rtol=1e-6)
        np.testing.assert_allclose(loaded.get_weights()[2], old.get_weights()[2].reshape(()), rtol=1e-6)
    assert [w.shape for w in loaded.get_weights()] == [(3, 2), (2,), (), (), ()]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), old.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    wider = model(make_scalar_affine(L.Layer, (2,)))
    with pytest.raises(ValueError, match=r"\(2,\)|different architecture|inconsistent"):
        if suffix.startswith(".weights"):
            wider.load_weights(path)
        else:
            cs.models.load_model(path, custom_objects={"ScalarAffine": make_scalar_affine(L.Layer, (2,))},
                                 compile=False)
