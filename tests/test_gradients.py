"""`convscope.gradients` against PyTorch autograd on the same weights: the seed models and the
ResNet-style graph model, d target / d input and / d intermediate layer outputs (read in
PyTorch with `retain_grad`), every kind of target, logits or outputs; threads; argument errors.
"""

import threading

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope import ops
from convscope.explain.gradients import gradient_trace

from _oracle import tf_same_split
from seed_models import seed000_model, seed001_model, seed002_model
from test_functional import _randomize, resnet_style

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(array):
    return torch.tensor(np.asarray(array, dtype=np.float64))


def _same_pad(x, layer, value=0.0):
    """TensorFlow's SAME padding of an NCHW tensor for `layer`'s window (written out in _oracle)."""
    size = getattr(layer, "kernel_size", None) or layer.pool_size
    top, bottom = tf_same_split(x.shape[2], size[0], layer.strides[0])
    left, right = tf_same_split(x.shape[3], size[1], layer.strides[1])
    return F.pad(x, (left, right, top, bottom), value=value)


def torch_layer(layer, args, logits):
    """`layer` applied in PyTorch (NCHW, float64) on the same weights; `logits`: without its activation."""
    kind = type(layer).__name__
    x = args[0]
    activation = layer.get_config().get("activation")
    if kind == "Conv2D":
        inp = _same_pad(x, layer) if layer.padding == "same" else x
        bias = _t(layer.bias.value) if layer.use_bias else None
        out = F.conv2d(inp, _t(layer.kernel.value).permute(3, 2, 0, 1), bias, stride=layer.strides)
    elif kind in ("MaxPooling2D", "MaxPool2D"):
        inp = _same_pad(x, layer, -np.inf) if layer.padding == "same" else x
        out = F.max_pool2d(inp, layer.pool_size, layer.strides)
    elif kind == "BatchNormalization":
        out = F.batch_norm(x, _t(layer.moving_mean.value), _t(layer.moving_variance.value),
                           _t(layer.gamma.value), _t(layer.beta.value), training=False, eps=layer.epsilon)
    elif kind == "Dropout":
        out = x
    elif kind == "Flatten":
        out = x.permute(0, 2, 3, 1).reshape(len(x), -1)          # Keras flattens channels last
    elif kind == "Dense":
        out = x @ _t(layer.kernel.value) + _t(layer.bias.value)
    elif kind == "ReLU":
        out = torch.relu(x)
    elif kind == "Add":
        out = args[0] + args[1]
    elif kind == "GlobalAveragePooling2D":
        out = x.mean(dim=(2, 3))
    elif kind == "Activation":
        out = x
    else:
        raise AssertionError(kind)
    if activation == "relu":
        out = torch.relu(out)
    elif activation == "softmax" and not logits:
        out = torch.softmax(out, dim=-1)
    return out


def torch_model(model, x_nhwc, logits, watch=()):
    """(output, {layer name: its output tensor, retaining its gradient}, input tensor); `logits`
    leaves out the last layer's softmax."""
    x = _t(x_nhwc).requires_grad_(True)
    last = model.layers[-1]
    watched = {}
    if isinstance(model, cs.Sequential):
        out = x.permute(0, 3, 1, 2)
        for layer in model.layers:
            out = torch_layer(layer, [out], logits and layer is last)
            if layer.name in watch:
                out.retain_grad()
                watched[layer.name] = out
        return out, watched, x
    values = {}
    for node in model._nodes:
        if node.is_input:
            values[id(node.outputs[0])] = x.permute(0, 3, 1, 2)
            continue
        out = torch_layer(node.layer, [values[id(t)] for t in node.input_tensors], logits and node.layer is last)
        if node.layer.name in watch:
            out.retain_grad()
            watched[node.layer.name] = out
        values[id(node.outputs[0])] = out
    return values[id(model.outputs[0])], watched, x


def _nhwc(tensor):
    array = tensor.detach().numpy()
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def _rel(ours, theirs):
    theirs = np.asarray(theirs)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-12))


def _check(model, x, target, torch_score, watch, logits=None, torch_logits=True):
    """convscope's gradients of `target` w.r.t. the input and `watch` against PyTorch's of `torch_score`."""
    trace = gradient_trace(model, x, target, layers=watch, logits=logits)
    out, watched, tx = torch_model(model, x, torch_logits, watch)
    scores = torch_score(out)
    scores.sum().backward()
    assert _rel(trace.scores, scores.detach().numpy()) < 1e-5
    assert trace.input_grads[0].shape == x.shape and trace.input_grads[0].dtype == np.float32
    assert _rel(trace.input_grads[0], tx.grad.numpy()) < 1e-4
    for name in watch:
        assert trace.grads[name].shape == trace.values[name].shape
        assert _rel(trace.values[name], _nhwc(watched[name])) < 1e-5, name
        assert _rel(trace.grads[name], _nhwc(watched[name].grad)) < 1e-4, name
    return trace


@pytest.mark.parametrize("seed", ["000", "001", "002"])
def test_seed_models_class_logit_gradients_match_torch(seed):
    rng = np.random.default_rng(int(seed))
    model = {"000": seed000_model, "001": seed001_model, "002": seed002_model}[seed]()
    size = 8 if seed == "002" else 28
    model.build((None, size, size, 1))
    _randomize(model, rng, scale=0.2)
    x = rng.normal(size=(2, size, size, 1)).astype("float32")
    convs = [layer.name for layer in model.layers if isinstance(layer, L.Conv2D)]
    trace = _check(model, x, 1, lambda out: out[:, 1], convs + [model.layers[-2].name])
    assert trace.logits
    last = gradient_trace(model, x, 1, layers=[model.layers[-1]])
    np.testing.assert_array_equal(last.values[model.layers[-1].name][:, 1], trace.scores)     # the logits
    # a class per sample
    _check(model, x, [2, 0], lambda out: out[torch.arange(2), torch.tensor([2, 0])], convs[-1:])


def test_seed002_probability_unit_and_callable_targets_match_torch():
    rng = np.random.default_rng(7)
    model = seed002_model()
    _randomize(model, rng, scale=0.5)
    x = rng.normal(size=(3, 8, 8, 1)).astype("float32")
    conv = model.layers[2].name
    # logits=False: the softmax probability itself
    trace = _check(model, x, 2, lambda out: out[:, 2], [conv], logits=False, torch_logits=False)
    assert not trace.logits
    # an output unit (a tuple), on the logits
    _check(model, x, (0,), lambda out: out[:, 0], [conv])
    # a callable on the outputs (the probabilities by default): log p1 - p0
    _check(model, x, lambda p: ops.log(p[:, 1]) - p[:, 0],
           lambda out: torch.log(out[:, 1]) - out[:, 0], [conv], torch_logits=False)
    # a callable on the logits
    _check(model, x, lambda z: ops.sum(z * z, axis=1), lambda out: (out * out).sum(dim=1), [conv],
           logits=True)


def test_resnet_style_graph_gradients_match_torch():
    rng = np.random.default_rng(3)
    model = resnet_style()
    _randomize(model, rng)
    x = rng.normal(size=(3, 12, 12, 3)).astype("float32")
    watch = ["stem_relu", "s1_conv1", "s1_proj", "s1_add", "s2_conv2", "s2_out", "gap"]
    trace = _check(model, x, 4, lambda out: out[:, 4], watch)
    assert trace.logits
    _check(model, x, lambda p: ops.log(p[:, 3]), lambda out: torch.log(torch.softmax(out, -1)[:, 3]), ["s0_out"])
    # the output layer watched with logits: its logits and the gradient w.r.t. them (one-hot)
    head = gradient_trace(model, x, 4, layers=["head"])
    np.testing.assert_allclose(head.values["head"], torch_model(model, x, True)[0].detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(head.grads["head"], np.eye(5, dtype=np.float32)[[4, 4, 4]])
    # the public entry point: input, one layer (by name or object), a list
    grad = cs.gradients(model, x, 4)
    np.testing.assert_array_equal(grad, trace.input_grads[0])
    np.testing.assert_array_equal(cs.gradients(model, x, 4, wrt=model.get_layer("s2_conv2")),
                                  trace.grads["s2_conv2"])
    both = cs.gradients(model, x, 4, wrt=["image", "gap"])
    np.testing.assert_array_equal(both[0], trace.input_grads[0])
    np.testing.assert_array_equal(both[1], trace.grads["gap"])


def test_two_inputs_two_outputs_and_a_shared_layer():
    """A callable on both outputs; gradients w.r.t. both inputs and a shared layer's first call,
    against float64 finite differences of the model's own predict."""
    rng = np.random.default_rng(5)
    a, b = cs.Input((4,), name="a"), cs.Input((4,), name="b")
    shared = L.Dense(3, activation="tanh", name="shared")
    ya, yb = shared(a), shared(b)
    out1 = L.Dense(2, name="out1")(L.Add(name="sum")([ya, yb]))
    out2 = L.Dense(1, name="out2")(yb)
    model = cs.Model([a, b], [out1, out2])
    for variable in model.weights:
        variable.assign(variable.value.astype(np.float64))
    xa, xb = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))

    def score(outs):
        return ops.sum(outs[0], axis=1) * 0.5 + outs[1][:, 0] ** 2

    grads = cs.gradients(model, [xa, xb], score)

    def total(pa, pb):
        o1, o2 = model.predict([pa, pb], verbose=0)
        return (o1.sum(axis=1) * 0.5 + o2[:, 0] ** 2).astype(np.float64).sum()

    for which, grad in enumerate(grads):
        base = [xa.astype(np.float32), xb.astype(np.float32)]
        numeric = np.zeros_like(base[which], dtype=np.float64)
        for index in np.ndindex(base[which].shape):
            step = [p.copy() for p in base]
            step[which][index] += 1e-2
            up = total(*step)
            step[which][index] -= 2e-2
            numeric[index] = (up - total(*step)) / 2e-2
        assert _rel(grad, numeric) < 1e-3
    with pytest.raises(ValueError, match=r"gradients: argument `target`: the model has 2 outputs"):
        cs.gradients(model, [xa, xb], 0)
    first = cs.gradients(model, [xa, xb], score, wrt="shared")
    assert first.shape == (2, 3)


def test_threads_share_one_model():
    rng = np.random.default_rng(11)
    model = resnet_style()
    _randomize(model, rng)
    xs = [rng.normal(size=(2, 12, 12, 3)).astype("float32") for _ in range(4)]
    expected = [cs.gradients(model, x, 1, wrt=["image", "s1_add"]) for x in xs]
    results = [None] * len(xs)

    def work(i):
        for _ in range(3):
            results[i] = cs.gradients(model, xs[i], 1, wrt=["image", "s1_add"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, expected):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_argument_errors_name_the_argument():
    model = seed002_model()
    x = np.zeros((2, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match=r"gradients: argument `wrt`: Sequential '.*' has no layer named 'nope'; "
                                         r"its layers are \['conv2d', 'max_pooling2d'"):
        cs.gradients(model, x, 0, wrt="nope")
    with pytest.raises(ValueError, match=r"gradients: argument `wrt`: layer 'other' \(Dense\) is not a layer"):
        cs.gradients(model, x, 0, wrt=L.Dense(2, name="other"))
    with pytest.raises(TypeError, match=r"gradients: argument `wrt`: expected a layer name \(str\) or a layer "
                                        r"of the model, got 3"):
        cs.gradients(model, x, 0, wrt=3)
    with pytest.raises(TypeError, match=r"gradients: argument `target` must be a class index .* got 'cat'"):
        cs.gradients(model, x, "cat")
    with pytest.raises(TypeError, match=r"gradients: argument `target` must be .* got True"):
        cs.gradients(model, x, True)
    with pytest.raises(ValueError, match=r"gradients: argument `target`: class 3 is out of range for 3 classes"):
        cs.gradients(model, x, 3)
    with pytest.raises(ValueError, match=r"gradients: argument `target` gives 3 classes for a batch of 2"):
        cs.gradients(model, x, [0, 1, 2])
    with pytest.raises(ValueError, match=r"gradients: argument `target`: unit \(0, 1\) is not an index of the "
                                         r"outputs' shape \(3,\)"):
        cs.gradients(model, x, (0, 1))
    with pytest.raises(TypeError, match=r"gradients: argument `target`: the callable returned ndarray, not a "
                                        r"value computed .* with convscope.ops"):
        cs.gradients(model, x, lambda p: np.asarray(p)[:, 0])
    with pytest.raises(ValueError, match=r"gradients: argument `target`: the callable must return one score per "
                                         r"sample, shape \(2,\), got shape \(\)"):
        cs.gradients(model, x, lambda p: ops.sum(p))
    with pytest.raises(TypeError, match=r"gradients: argument `logits` must be True, False or None, got 1"):
        cs.gradients(model, x, 0, logits=1)
    with pytest.raises(TypeError, match=r"gradients: argument `model` must be a convscope model .* got Dense"):
        cs.gradients(L.Dense(2), x, 0)
    with pytest.raises(ValueError, match=r"expected input of shape \(None, 8, 8, 1\)"):
        cs.gradients(model, np.zeros((2, 9, 9, 1), "float32"), 0)
