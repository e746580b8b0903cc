"""GroupNormalization: each sample's channels normalized in groups, gamma and beta per channel.

Oracles: Keras 3.15.1 on the torch backend (outputs, configs, parameter counts, a training step, a Keras-written
file), PyTorch's `group_norm` for forward and backward (gradients of the input, gamma and beta), float64 finite
differences on a channel axis that is not the last.
"""

import numpy as np
import pytest

import convscope as cs
from convscope import layers as L
from convscope import ops

CASES = [  # (input shape, keyword arguments)
    ((2, 5, 5, 8), dict(groups=4)),
    ((2, 5, 5, 6), dict(groups=-1)),                   # one group per channel: instance normalization
    ((3, 7, 6), dict(groups=1, epsilon=1e-5)),
    ((2, 6, 4, 3), dict(groups=3, axis=1, center=False)),
    ((4, 12), dict(groups=4, scale=False)),
]


def weights_for(layer, rng):
    return [rng.normal(1.0, 0.5, w.shape).astype("float32") for w in layer.get_weights()]


@pytest.mark.parametrize("shape,kwargs", CASES)
def test_outputs_weights_and_configs_equal_keras(keras, shape, kwargs):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    ours, theirs = L.GroupNormalization(**kwargs), keras.layers.GroupNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert [w.name.split("/")[-1] for w in ours.weights] == [w.name for w in theirs.weights]
    weights = weights_for(theirs, rng)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    np.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-5)
    ours_config, keras_config = ours.get_config(), theirs.get_config()
    for key in set(keras_config) - {"name", "dtype"}:
        expected = keras_config[key]
        if isinstance(expected, dict):
            expected = {k: expected[k] for k in ("class_name", "config")}
        assert ours_config[key] == expected, key                     # groups=-1 is the channel count once built
    rebuilt = cs.layers.deserialize(keras.layers.serialize(theirs))
    assert isinstance(rebuilt, L.GroupNormalization) and rebuilt.get_config()["groups"] == theirs.groups


@pytest.mark.parametrize("channels_last", [True, False])
def test_gradients_equal_pytorch(channels_last):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6, 5, 5)).astype("float32")                      # NCHW, PyTorch's layout
    gamma, beta = rng.normal(size=6).astype("float32"), rng.normal(size=6).astype("float32")
    grad = rng.normal(size=x.shape).astype("float32")
    tx = torch.tensor(x, requires_grad=True)
    tg, tb = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    ty = torch.nn.functional.group_norm(tx, 3, tg, tb, eps=1e-3)
    ty.backward(torch.tensor(grad))
    to_ours = (lambda a: a.transpose(0, 2, 3, 1)) if channels_last else (lambda a: a)
    y, ctx = ops.group_norm_forward(to_ours(x), gamma, beta, 3, -1 if channels_last else 1, 1e-3)
    grad_x, grad_gamma, grad_beta = ops.group_norm_backward(to_ours(grad), ctx)
    np.testing.assert_allclose(y, to_ours(ty.detach().numpy()), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_x, to_ours(tx.grad.numpy()), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad_gamma, tg.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad_beta, tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_input_gradient_equals_finite_differences_in_float64():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 3, 2))                                        # channels on axis 1
    gamma, beta, weights = rng.normal(size=4), rng.normal(size=4), rng.normal(size=x.shape)

    def loss(values):
        return float(np.sum(ops.group_norm_forward(values, gamma, beta, 2, 1, 1e-3)[0] * weights))
    _, ctx = ops.group_norm_forward(x, gamma, beta, 2, 1, 1e-3)
    grad_x, grad_gamma, _ = ops.group_norm_backward(weights, ctx)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6
        numeric[index] = (loss(x + step) - loss(x - step)) / 2e-6
    np.testing.assert_allclose(grad_x, numeric, rtol=1e-6, atol=1e-7)
    normalized = (ops.group_norm_forward(x, None, None, 2, 1, 1e-3)[0] * weights).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(grad_gamma, normalized, rtol=1e-10)


def unet_block(module, layers):
    return module.Sequential([
        module.Input((8, 8, 3)),
        layers.Conv2D(8, 3, padding="same"), layers.GroupNormalization(groups=4), layers.Activation("relu"),
        layers.Conv2D(4, 3), layers.GroupNormalization(groups=-1, center=False), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3, activation="softmax"),
    ])


def test_a_cnn_predicts_trains_and_loads_as_keras(keras, tmp_path):
    ours, theirs = unet_block(cs, L), unet_block(keras, keras.layers)
    assert ours.count_params() == theirs.count_params()
    rng = np.random.default_rng(5)
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x, y = rng.normal(size=(4, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 4)
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "gn.keras")
    loaded = cs.models.load_model(tmp_path / "gn.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    for model, module in ((ours, cs), (theirs, keras)):
        model.compile(optimizer=module.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b, v in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)
    ours.save(tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back.predict(x, verbose=0)), ours.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_analysis_and_explanations_show_the_groups():
    model = unet_block(cs, L)
    first, second = (row for row in cs.models.analysis.analyze(model).layers
                     if row.class_name == "GroupNormalization")
    assert (first.kind, first.params, first.groups, first.in_channels) == ("group_norm", 16, 4, 8)
    assert (second.params, second.groups, second.norm_ops) == (4, 4, 7 * 6 * 6 * 4)  # gamma only; -1: per channel
    assert first.receptive_field is None                                      # statistics over the whole image
    assert second.receptive_field is None
    unbuilt = cs.models.analysis.analyze_layer(L.GroupNormalization(groups=-1, scale=False), (None, 4, 4, 6))
    assert (unbuilt.kind, unbuilt.groups, unbuilt.params) == ("group_norm", 6, 6)
    english = str(cs.explain(model))
    assert "cuts the 8 channels on axis 3 into 4 groups of 2" in english
    assert "2 × 8 = 16: gamma and beta, one each per channel" in english
    assert "채널 8개를 2개씩 4개의 그룹으로" in str(cs.explain(model, lang="ko"))


def test_arguments_and_inputs_are_checked_by_name():
    with pytest.raises(ValueError, match="GroupNormalization 'group_normalization.*': argument `groups` must be a "
                                         "positive int \\(or -1 .*\\), got 0"):
        L.GroupNormalization(groups=0)
    with pytest.raises(TypeError, match="argument `axis` must be an int \\(the channel axis\\), got \\[1, 2\\]"):
        L.GroupNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match="GroupNormalization 'gn': argument `groups`=3 must divide the 8 channels "
                                         "on axis 3 \\(input shape \\(None, 4, 4, 8\\)\\)"):
        cs.Sequential([cs.Input((4, 4, 8)), L.GroupNormalization(groups=3, name="gn")])
    with pytest.raises(ValueError, match="argument `axis`=0 must name a feature axis"):
        L.GroupNormalization(axis=0, groups=1).build((None, 4))
    layer = L.GroupNormalization(groups=2, name="built")
    layer.build((None, 4, 4, 8))
    with pytest.raises(ValueError, match="GroupNormalization 'built': expected 8 channels on axis -1"):
        layer.compute_output_shape((None, 4, 4, 6))
