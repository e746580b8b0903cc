"""Graph models (the functional API) against PyTorch built with the same weights, and their errors.

The ResNet-style model has a stem, three residual stages (the second and third with a
strided 1x1 projection shortcut), BatchNormalization, global average pooling and a Dense
head; PyTorch runs the same graph with `torch.nn.functional` on the same weights.
"""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope import losses, optimizers

from _oracle import tf_same_split

torch = pytest.importorskip("torch")
F = torch.nn.functional


def resnet_style(classes=5):
    inputs = cs.Input((12, 12, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    for stage, (filters, stride) in enumerate([(8, 1), (12, 2), (16, 2)]):
        shortcut = x
        y = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"s{stage}_conv1")(x)
        y = L.BatchNormalization(name=f"s{stage}_bn1")(y)
        y = L.Activation("relu", name=f"s{stage}_relu1")(y)
        y = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"s{stage}_conv2")(y)
        y = L.BatchNormalization(name=f"s{stage}_bn2")(y)
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = L.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"s{stage}_proj")(shortcut)
            shortcut = L.BatchNormalization(name=f"s{stage}_proj_bn")(shortcut)
        x = L.Add(name=f"s{stage}_add")([y, shortcut])
        x = L.ReLU(name=f"s{stage}_out")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(classes, activation="softmax", name="head")(x)
    return cs.Model(inputs, outputs, name="resnet_style")


def _randomize(model, rng, scale=0.3):
    """Weights away from their initial values, BN moving statistics away from 0/1."""
    for variable in model.weights:
        if variable.name.endswith("moving_variance"):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape))
        elif variable.name.endswith("moving_mean"):
            variable.assign(rng.normal(0, 0.2, variable.shape))
        else:
            variable.assign(rng.normal(0, scale, variable.shape))


def _t(array, grad=False):
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=grad)


def torch_resnet(model, params, x_nhwc, training):
    """The same graph in PyTorch (NCHW, float64), read layer by layer from `model`'s nodes."""
    values = {}
    x = _t(x_nhwc).permute(0, 3, 1, 2)
    for node in model._nodes:
        layer = node.layer
        if node.is_input:
            values[id(node.outputs[0])] = x
            continue
        args = [values[id(t)] for t in node.input_tensors]
        kind = type(layer).__name__
        if kind == "Conv2D":
            kernel = params[layer.kernel.name].permute(3, 2, 0, 1)
            inp = args[0]
            if layer.padding == "same":
                top, bottom = tf_same_split(inp.shape[2], layer.kernel_size[0], layer.strides[0])
                left, right = tf_same_split(inp.shape[3], layer.kernel_size[1], layer.strides[1])
                inp = F.pad(inp, (left, right, top, bottom))
            bias = params[layer.bias.name] if layer.use_bias else None
            out = F.conv2d(inp, kernel, bias, stride=layer.strides)
        elif kind == "BatchNormalization":
            name = layer.name
            out = F.batch_norm(args[0], params[f"{name}/moving_mean"].detach().clone(),
                               params[f"{name}/moving_variance"].detach().clone(), params[f"{name}/gamma"],
                               params[f"{name}/beta"], training=training, momentum=0.01, eps=layer.epsilon)
        elif kind in ("ReLU", "Activation"):
            out = torch.relu(args[0])
        elif kind == "Add":
            out = args[0] + args[1]
        elif kind == "GlobalAveragePooling2D":
            out = args[0].mean(dim=(2, 3))
        elif kind == "Dense":
            out = torch.softmax(args[0] @ params[layer.kernel.name] + params[layer.bias.name], dim=-1)
        else:
            raise AssertionError(kind)
        values[id(node.outputs[0])] = out
    return values[id(model.outputs[0])]


def _rel(ours, theirs, floor=1e-3):
    """Largest difference relative to the reference's scale (at least `floor`: a bias before
    BatchNormalization has a gradient of exactly 0, which float32 gives as ~1e-9)."""
    theirs = np.asarray(theirs)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), floor))


def test_resnet_style_forward_loss_gradients_and_adam_step_match_torch():
    rng = np.random.default_rng(0)
    model = resnet_style()
    _randomize(model, rng)
    x = rng.normal(size=(6, 12, 12, 3)).astype("float32")
    y = rng.integers(0, 5, size=6)
    loss = losses.SparseCategoricalCrossentropy()

    # inference: moving statistics
    params = {v.name: _t(v.value, grad=v.trainable) for v in model.weights}
    expected = torch_resnet(model, params, x, training=False).detach().numpy()
    assert _rel(model.predict(x, verbose=0), expected) < 1e-5

    # training: batch statistics, the loss and every gradient
    outputs, execution = model.run([x], training=True, keep=True)
    probabilities = torch_resnet(model, params, x, training=True)
    torch_loss = F.nll_loss(torch.log(probabilities), torch.tensor(y))
    torch_loss.backward()
    assert _rel(outputs[0], probabilities.detach().numpy()) < 1e-5
    assert abs(loss(y, outputs[0]) - torch_loss.item()) < 1e-5 * abs(torch_loss.item())
    _, pairs = model.backward_graph(execution, [loss.gradient(y, outputs[0])], need_input_grads=False)
    grads = {variable.name: grad for variable, grad in pairs}
    assert sorted(grads) == sorted(v.name for v in model.trainable_weights)
    for variable in model.trainable_weights:
        reference = params[variable.name].grad.numpy()
        assert _rel(grads[variable.name], reference) < 1e-4, variable.name

    # one Adam step through train_on_batch, against Keras' first Adam step written out on PyTorch's
    # gradients (epsilon added to sqrt(v) before bias correction, as Keras does)
    before = {v.name: v.value.astype(np.float64) for v in model.trainable_weights}
    model.compile(optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-7
    for variable in model.trainable_weights:
        g = params[variable.name].grad.numpy()
        m, v = (1 - beta1) * g, (1 - beta2) * g * g
        step = lr * np.sqrt(1 - beta2) / (1 - beta1) * m / (np.sqrt(v) + eps)
        assert _rel(variable.value - before[variable.name], -step) < 1e-3, variable.name


def two_input_merges():
    a = cs.Input((6, 6, 2), name="left")
    b = cs.Input((6, 6, 2), name="right")
    shared = L.Conv2D(3, 3, padding="same", activation="tanh", name="shared")
    p, q = shared(a), shared(b)
    merged = L.Concatenate(name="cat")([L.Add()([p, q]), L.Subtract()([p, q]), L.Multiply()([p, q]),
                                        L.Maximum()([p, q]), L.Minimum()([p, q]), L.Average()([p, q])])
    out = L.Dense(2, name="out")(L.Flatten()(merged))
    return cs.Model([a, b], out)


def test_two_inputs_shared_conv_and_merges_match_torch():
    rng = np.random.default_rng(1)
    model = two_input_merges()
    _randomize(model, rng)
    xa, xb = rng.normal(size=(2, 4, 6, 6, 2))
    conv, dense = model.get_layer("shared"), model.get_layer("out")
    kernel = _t(conv.kernel.value, True)
    bias = _t(conv.bias.value, True)
    dkernel, dbias = _t(dense.kernel.value, True), _t(dense.bias.value, True)

    def branch(x):
        return torch.tanh(F.conv2d(_t(x).permute(0, 3, 1, 2), kernel.permute(3, 2, 0, 1), bias, padding=1))

    p, q = branch(xa), branch(xb)
    merged = torch.cat([p + q, p - q, p * q, torch.maximum(p, q), torch.minimum(p, q), (p + q) / 2], dim=1)
    reference = merged.permute(0, 2, 3, 1).reshape(4, -1) @ dkernel + dbias
    upstream = rng.normal(size=(4, 2))
    reference.backward(_t(upstream))

    arrays = [xa.astype("float32"), xb.astype("float32")]
    outputs, execution = model.run(arrays, training=True, keep=True)
    assert _rel(outputs[0], reference.detach().numpy()) < 1e-5
    input_grads, pairs = model.backward_graph(execution, [upstream.astype("float32")])
    grads = {variable.name: grad for variable, grad in pairs}
    # the shared kernel's gradient is the sum over both of its calls
    assert _rel(grads["shared/kernel"], kernel.grad.numpy()) < 1e-4
    assert _rel(grads["shared/bias"], bias.grad.numpy()) < 1e-4
    assert _rel(grads["out/kernel"], dkernel.grad.numpy()) < 1e-4
    assert [v.name for v in model.weights] == ["shared/kernel", "shared/bias", "out/kernel", "out/bias"]
    assert len(input_grads) == 2 and input_grads[0].shape == xa.shape


def test_two_outputs_with_dict_losses_and_loss_weights():
    """The total loss is the weighted sum, each output's gradient scaled by its weight (checked by
    comparing one SGD step with two models each trained on one output)."""
    rng = np.random.default_rng(2)

    def build():
        cs.backend.clear_session(free_memory=False)
        inp = cs.Input((5,), name="x")
        hidden = L.Dense(4, activation="relu", name="hidden")(inp)
        return cs.Model(inp, {"cls": L.Dense(3, activation="softmax", name="cls")(hidden),
                              "reg": L.Dense(1, name="reg")(hidden)})

    model = build()
    start = [rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(start)
    x = rng.normal(size=(8, 5)).astype("float32")
    targets = {"cls": rng.integers(0, 3, 8), "reg": rng.normal(size=(8, 1)).astype("float32")}
    model.compile(optimizers.SGD(0.1), loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]})
    history = model.fit(x, targets, epochs=1, batch_size=8, shuffle=False, verbose=0,
                        validation_data=(x, targets))
    assert sorted(history.history) == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "val_cls_accuracy",
                                       "val_cls_loss", "val_loss", "val_reg_loss"]
    h = history.history
    assert abs(h["loss"][0] - (h["cls_loss"][0] + 0.5 * h["reg_loss"][0])) < 1e-6
    # the same step, by hand: gradients of each output's loss through the graph
    reference = build()
    reference.set_weights(start)
    outputs, execution = reference.run([x], training=True, keep=True)
    out = dict(zip(reference.output_names, outputs))
    grads = [losses.SparseCategoricalCrossentropy().gradient(targets["cls"], out["cls"]),
             0.5 * losses.MeanSquaredError().gradient(targets["reg"], out["reg"])]
    _, pairs = reference.backward_graph(execution, grads)
    found = {v.name: g for v, g in pairs}
    for variable, before in zip(reference.weights, start):
        np.testing.assert_allclose(model.get_layer(variable.name.split("/")[0]).weights[
            [w.name for w in reference.get_layer(variable.name.split("/")[0]).weights].index(variable.name)].value,
            before - 0.1 * found[variable.name], rtol=1e-5, atol=1e-6)


def test_a_flat_metrics_list_follows_keras_3_on_two_outputs(keras):
    """Keras 3: one list entry per output (names "a_accuracy", "b_accuracy"); a list of another
    length is refused rather than applied to every output."""
    x = np.random.default_rng(3).random((8, 4)).astype("float32")
    y = [np.eye(3, dtype="float32")[np.arange(8) % 3], np.eye(2, dtype="float32")[np.arange(8) % 2]]
    names = {}
    for lib in (cs, keras):
        inp = lib.Input((4,))
        model = lib.Model(inp, [lib.layers.Dense(3, activation="softmax", name="a")(inp),
                                lib.layers.Dense(2, activation="softmax", name="b")(inp)])
        model.compile("sgd", ["categorical_crossentropy"] * 2, metrics=["accuracy", "accuracy"])
        names[lib] = sorted(model.fit(x, y, verbose=0).history)
        with pytest.raises(ValueError, match="metrics"):  # Keras refuses when fitting, convscope in compile
            model.compile("sgd", ["categorical_crossentropy"] * 2, metrics=["accuracy"])
            model.fit(x, y, verbose=0)
    assert names[cs] == names[keras] == ["a_accuracy", "a_loss", "b_accuracy", "b_loss", "loss"]
    inp = cs.Input((4,))
    model = cs.Model(inp, [L.Dense(3, name="a")(inp), L.Dense(2, name="b")(inp)])
    with pytest.raises(ValueError, match=r"compile: argument `metrics` .* one entry .* per output "
                                         r"\['a', 'b'\], got \['accuracy'\] for 2 outputs"):
        model.compile("sgd", "mse", metrics=["accuracy"])


# -- errors ------------------------------------------------------------------------------------------

def test_bad_graphs_name_the_layer():
    a = cs.Input((4,), name="a")
    b = cs.Input((4,), name="b")
    hidden = L.Dense(3, name="hidden")(b)
    with pytest.raises(ValueError, match=r"graph disconnected: the output depends on the input 'b'"):
        cs.Model(a, hidden)
    with pytest.raises(ValueError, match=r"Add 'add': .*\(None, 4\).*\(None, 3\)"):
        L.Add(name="add")([a, hidden])
    with pytest.raises(TypeError, match=r"Concatenate 'cat': inputs mix symbolic tensors"):
        L.Concatenate(name="cat")([a, np.ones((1, 4), "float32")])
    with pytest.raises(TypeError, match=r"argument `outputs` must be a KerasTensor"):
        cs.Model(a, np.ones((1, 3)))
    first = L.Dense(2, name="same")(a)
    second = L.Dense(2, name="same")(first)
    with pytest.raises(ValueError, match=r"the name 'same' is used by two layers"):
        cs.Model(a, second)


def test_config_with_a_cycle_is_refused():
    a = cs.Input((4,), name="a")
    model = cs.Model(a, L.Dense(2, name="d2")(L.Dense(3, name="d1")(a)))
    config = model.get_config()
    d1 = next(entry for entry in config["layers"] if entry["name"] == "d1")
    d1["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["d2", 0, 0]
    with pytest.raises(ValueError, match=r"disconnected or cyclic"):
        cs.Model.from_config(config)


def test_feature_extractor_idiom_and_layer_io():
    model = resnet_style()
    extractor = cs.Model(model.input, model.get_layer("s1_conv1").output)
    x = np.random.default_rng(3).normal(size=(2, 12, 12, 3)).astype("float32")
    features = extractor.predict(x, verbose=0)
    assert features.shape == (2, 6, 6, 12)
    assert model.get_layer("s1_add").input[1] is model.get_layer("s1_proj_bn").output
    assert [w.name for w in extractor.weights][0] == "stem/kernel"


# -- Keras 3.15.1 (torch backend) as the oracle of structure, configs and numbers ----------------

@pytest.mark.parametrize("build", ["resnet_style", "two_input_merges", "small_unet"])
def test_same_model_in_keras_both_ways(keras, build):
    """Our config rebuilt by Keras and Keras' config rebuilt by us: the same layers in the same order,
    the same params per layer, weights in the same order and shapes, the same outputs."""
    import json
    rng = np.random.default_rng(4)
    ours = globals()[build]()
    _randomize(ours, rng)
    theirs = keras.Model.from_config(json.loads(json.dumps(ours.get_config())))
    assert [l.name for l in theirs.layers] == [l.name for l in ours.layers]
    assert [l.count_params() for l in theirs.layers] == [l.count_params() for l in ours.layers]
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    assert [w.path for w in theirs.weights] == [v.name for v in ours.weights]
    theirs.set_weights(ours.get_weights())
    inputs = [rng.normal(size=(3,) + t.shape[1:]).astype("float32") for t in ours.inputs]
    expected = np.asarray(theirs.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0))
    assert _rel(ours.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0), expected) < 1e-5
    # and back: Keras' own config
    again = cs.Model.from_config(json.loads(theirs.to_json())["config"])
    assert [l.name for l in again.layers] == [l.name for l in theirs.layers]
    again.set_weights(theirs.get_weights())
    assert _rel(again.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0), expected) < 1e-5
    lines = []
    again.summary(print_fn=lines.append)
    assert any("Connected to" in line for line in lines)


# -- a small U-Net: two down, two up, Concatenate skips -------------------------------------------

def small_unet():
    inputs = cs.Input((16, 16, 2), name="image")
    d1 = L.Conv2D(4, 3, padding="same", activation="relu", name="down1")(inputs)
    p1 = L.MaxPooling2D(name="pool1")(d1)
    d2 = L.Conv2D(8, 3, padding="same", activation="relu", name="down2")(p1)
    p2 = L.MaxPooling2D(name="pool2")(d2)
    bottom = L.Conv2D(8, 3, padding="same", activation="relu", name="bottom")(p2)
    u2 = L.Concatenate(name="skip2")([L.UpSampling2D(name="up2")(bottom), d2])
    u2 = L.Conv2D(8, 3, padding="same", activation="relu", name="conv_up2")(u2)
    u1 = L.Concatenate(name="skip1")([L.UpSampling2D(name="up1")(u2), d1])
    u1 = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_up1")(u1)
    outputs = L.Conv2D(1, 1, activation="sigmoid", name="mask")(u1)
    return cs.Model(inputs, outputs, name="unet")


def torch_unet(model, params, x_nhwc):
    def conv(name, x, act):
        layer = model.get_layer(name)
        pad = layer.kernel_size[0] // 2
        y = F.conv2d(x, params[f"{name}/kernel"].permute(3, 2, 0, 1), params[f"{name}/bias"], padding=pad)
        return act(y)

    x = _t(x_nhwc).permute(0, 3, 1, 2)
    d1 = conv("down1", x, torch.relu)
    d2 = conv("down2", F.max_pool2d(d1, 2), torch.relu)
    bottom = conv("bottom", F.max_pool2d(d2, 2), torch.relu)
    u2 = conv("conv_up2", torch.cat([F.interpolate(bottom, scale_factor=2, mode="nearest"), d2], 1), torch.relu)
    u1 = conv("conv_up1", torch.cat([F.interpolate(u2, scale_factor=2, mode="nearest"), d1], 1), torch.relu)
    return conv("mask", u1, torch.sigmoid).permute(0, 2, 3, 1)


def test_small_unet_forward_loss_and_gradients_match_torch():
    rng = np.random.default_rng(5)
    model = small_unet()
    _randomize(model, rng, scale=0.1)        # no probability near 0 or 1, where crossentropy clips
    x = rng.normal(size=(3, 16, 16, 2)).astype("float32")
    target = (rng.random((3, 16, 16, 1)) > 0.5).astype("float32")
    params = {v.name: _t(v.value, grad=True) for v in model.weights}
    reference = torch_unet(model, params, x)
    torch_loss = F.binary_cross_entropy(reference, _t(target))
    torch_loss.backward()
    outputs, execution = model.run([x], training=True, keep=True)
    assert _rel(outputs[0], reference.detach().numpy()) < 1e-5
    loss = losses.BinaryCrossentropy()
    assert abs(loss(target, outputs[0]) - torch_loss.item()) < 1e-5 * torch_loss.item()
    _, pairs = model.backward_graph(execution, [loss.gradient(target, outputs[0])])
    for variable, grad in pairs:
        assert _rel(grad, params[variable.name].grad.numpy()) < 1e-4, variable.name
    assert len(pairs) == len(model.trainable_weights)


def test_graph_models_save_and_load_with_their_training_state(tmp_path):
    """convscope's own file for a graph model: the same structure, outputs, and training goes on
    exactly where it stopped (optimizer state included)."""
    rng = np.random.default_rng(6)
    model = resnet_style()
    _randomize(model, rng)
    x = rng.normal(size=(4, 12, 12, 3)).astype("float32")
    y = rng.integers(0, 5, size=4)
    model.compile(optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(x, y)
    path = tmp_path / "resnet.convscope"
    model.save(path)
    loaded = cs.models.load_model(path)
    assert type(loaded).__name__ == "Functional" and [l.name for l in loaded.layers] == [l.name for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    again = cs.models.model_from_json(model.to_json())
    assert again.get_config() == model.get_config()


def test_a_sequential_inside_a_functional_model_trains_like_its_layers_inline():
    rng = np.random.default_rng(8)
    block = cs.Sequential([L.Conv2D(3, 3, padding="same", activation="relu"), L.MaxPooling2D()], name="block")
    inputs = cs.Input((8, 8, 2), name="x")
    outputs = L.Dense(2, name="head")(L.Flatten()(block(inputs)))
    nested = cs.Model(inputs, outputs)
    flat = cs.Sequential([cs.Input((8, 8, 2)), L.Conv2D(3, 3, padding="same", activation="relu"),
                          L.MaxPooling2D(), L.Flatten(), L.Dense(2)])
    flat.set_weights(nested.get_weights())
    x = rng.normal(size=(5, 8, 8, 2)).astype("float32")
    y = rng.normal(size=(5, 2)).astype("float32")
    for model in (nested, flat):
        model.compile(optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, y)
    for ours, theirs in zip(nested.get_weights(), flat.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert [l.name for l in nested.layers][1] == "block" and nested.count_params() == flat.count_params()


def test_two_outputs_with_dict_losses_and_loss_weights_match_torch():
    """One SGD step of a two-headed model compiled with a dict of losses and loss_weights, against the
    same model and the weighted sum of the two losses in PyTorch."""
    rng = np.random.default_rng(9)
    inp = cs.Input((6,), name="x")
    hidden = L.Dense(5, activation="tanh", name="trunk")(inp)
    model = cs.Model(inp, {"label": L.Dense(3, activation="softmax", name="label")(hidden),
                           "value": L.Dense(2, name="value")(hidden)})
    _randomize(model, rng)
    x = rng.normal(size=(7, 6)).astype("float32")
    targets = {"label": rng.integers(0, 3, 7), "value": rng.normal(size=(7, 2)).astype("float32")}
    params = {v.name: _t(v.value, grad=True) for v in model.weights}
    trunk = torch.tanh(_t(x) @ params["trunk/kernel"] + params["trunk/bias"])
    logits = trunk @ params["label/kernel"] + params["label/bias"]
    value = trunk @ params["value/kernel"] + params["value/bias"]
    total = F.cross_entropy(logits, torch.tensor(targets["label"])) + 0.25 * F.mse_loss(value, _t(targets["value"]))
    total.backward()
    model.compile(optimizers.SGD(0.05), loss={"label": "sparse_categorical_crossentropy", "value": "mse"},
                  loss_weights={"label": 1.0, "value": 0.25})
    before = {v.name: v.value.astype(np.float64) for v in model.trainable_weights}
    logs = model.train_on_batch(x, targets, return_dict=True)
    assert abs(logs["loss"] - total.item()) < 1e-5 * total.item()
    for variable in model.trainable_weights:
        step = before[variable.name] - variable.value
        assert _rel(step, 0.05 * params[variable.name].grad.numpy()) < 1e-4, variable.name


def test_feature_extractor_of_a_sequential_seed_model():
    """Keras users look at a Sequential's feature maps with keras.Model(model.input, layer.output)."""
    from seed_models import seed000_model
    model = seed000_model(dropout=False)
    extractor = cs.Model(model.input, model.get_layer(index=2).output)
    x = np.random.default_rng(10).random((2, 28, 28, 1), dtype=np.float32)
    expected = x
    for layer in model.layers[:3]:
        expected = layer(expected)
    np.testing.assert_allclose(extractor.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    assert model.inputs == [model.input] and model.outputs[0].shape == (None, 10)
    assert [w.name for w in extractor.weights] == [w.name for w in model.weights[:4]]


def test_graph_plans_fuse_chains_and_give_the_numbers_of_the_nodes_one_by_one():
    """Inference fuses conv -> BN -> ReLU chains inside the residual blocks, training fuses a U-Net's
    conv('relu') -> max pooling; a node whose output is also read elsewhere (a skip) ends its chain."""
    from convscope.models.plan import ConvInferenceStage, ConvReluMaxPoolStage
    rng = np.random.default_rng(11)
    resnet = resnet_style()
    _randomize(resnet, rng)
    fused = [[n.layer.name for n in step.nodes] for step in resnet._steps(training=False, keep=False)
             if isinstance(step.stage, ConvInferenceStage)]
    assert ["stem", "stem_bn", "stem_relu"] in fused and ["s0_conv1", "s0_bn1", "s0_relu1"] in fused
    assert all("s0_add" not in chain for chain in fused)
    x = rng.normal(size=(5, 12, 12, 3)).astype("float32")
    one_by_one = resnet.run([x], training=False, keep=True)[0][0]        # every node through its layer
    np.testing.assert_allclose(resnet.predict(x, verbose=0), one_by_one, rtol=1e-5, atol=1e-6)

    unet = small_unet()
    steps = unet._steps(training=True, keep=True)
    pooled = [[n.layer.name for n in step.nodes] for step in steps if isinstance(step.stage, ConvReluMaxPoolStage)]
    assert pooled == []            # down1 and down2 also feed the skips: their outputs must exist
    assert [n.layer.name for n in steps[0].nodes] == ["down1"]


def test_a_functional_model_used_as_a_layer_twice_shares_its_weights():
    rng = np.random.default_rng(12)
    inner_in = cs.Input((4,), name="inner_in")
    inner = cs.Model(inner_in, L.Dense(3, activation="tanh", name="inner_dense")(inner_in), name="encoder")
    a, b = cs.Input((4,), name="a"), cs.Input((4,), name="b")
    out = L.Dense(1, name="score")(L.Concatenate(name="pair")([inner(a), inner(b)]))
    siamese = cs.Model([a, b], out, name="siamese")
    assert [layer.name for layer in siamese.layers] == ["a", "b", "encoder", "pair", "score"]
    assert siamese.count_params() == 4 * 3 + 3 + 6 + 1
    xa, xb = rng.normal(size=(2, 5, 4)).astype("float32")
    kernel, bias = inner.get_layer("inner_dense").get_weights()
    expected = np.concatenate([np.tanh(xa @ kernel + bias), np.tanh(xb @ kernel + bias)], 1) \
        @ siamese.get_layer("score").get_weights()[0] + siamese.get_layer("score").get_weights()[1]
    np.testing.assert_allclose(siamese.predict([xa, xb], verbose=0), expected, rtol=1e-5, atol=1e-6)
    outputs, execution = siamese.run([xa, xb], training=True, keep=True)
    _, pairs = siamese.backward_graph(execution, [np.ones_like(outputs[0])])
    grads = {v.name: g for v, g in pairs}
    w = siamese.get_layer("score").get_weights()[0][:, 0]
    expected_kernel = xa.T @ ((1 - np.tanh(xa @ kernel + bias) ** 2) * w[:3]) + \
        xb.T @ ((1 - np.tanh(xb @ kernel + bias) ** 2) * w[3:])
    np.testing.assert_allclose(grads["inner_dense/kernel"], expected_kernel, rtol=1e-4, atol=1e-5)


def test_nested_functional_and_sequential_models_go_both_ways_with_keras(keras):
    import json
    rng = np.random.default_rng(13)
    inner_in = cs.Input((4,), name="inner_in")
    inner = cs.Model(inner_in, L.Dense(3, activation="tanh", name="inner_dense")(inner_in), name="encoder")
    block = cs.Sequential([cs.Input((3,)), L.Dense(2, name="block_dense")], name="block")
    a, b = cs.Input((4,), name="a"), cs.Input((4,), name="b")
    out = L.Dense(1, name="score")(L.Concatenate(name="pair")([block(inner(a)), block(inner(b))]))
    ours = cs.Model([a, b], out, name="siamese")
    theirs = keras.Model.from_config(json.loads(json.dumps(ours.get_config())))
    assert [l.name for l in theirs.layers] == [l.name for l in ours.layers]
    theirs.set_weights(ours.get_weights())
    x = [rng.normal(size=(3, 4)).astype("float32") for _ in range(2)]
    expected = np.asarray(theirs.predict(x, verbose=0))
    assert _rel(ours.predict(x, verbose=0), expected) < 1e-5
    again = cs.Model.from_config(json.loads(theirs.to_json())["config"])
    again.set_weights(theirs.get_weights())
    assert _rel(again.predict(x, verbose=0), expected) < 1e-5


def test_graph_predict_checks_verbose_as_sequential_does():
    """One check of predict's arguments for every model kind (a graph model took verbose=7 silently)."""
    inp = cs.Input((3,))
    model = cs.Model(inp, L.Dense(2)(inp))
    with pytest.raises(ValueError, match=r"predict: argument `verbose` must be 'auto', 0, 1 or 2, got 7"):
        model.predict(np.ones((2, 3), "float32"), verbose=7)
    with pytest.raises(ValueError, match=r"predict: argument `batch_size` must be a positive int, got 0"):
        model.predict(np.ones((2, 3), "float32"), batch_size=0)
