"""GaussianNoise, GaussianDropout and AlphaDropout: noise in training, the identity at inference.

Oracles: Keras 3.15.1 on the torch backend (configs, inference outputs, a Keras-written file); the noise's
moments on a large sample (its draws cannot match Keras' random stream); the backward pass against the
noise the forward pass drew."""

import numpy as np
import pytest

import convscope as cs
from convscope import backend
from convscope import layers as L


def net(module):
    layers = module.layers
    return module.Sequential([module.Input((6, 6, 2)), layers.Conv2D(3, 3), layers.GaussianNoise(0.3, seed=1),
                              layers.Flatten(), layers.GaussianDropout(0.25, seed=2),
                              layers.AlphaDropout(0.1, noise_shape=(None, 1), seed=3), layers.Dense(2)])


def test_the_identity_at_inference_configs_and_files_as_keras(keras, tmp_path):
    ours, theirs = net(cs), net(keras)
    ours.set_weights(theirs.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    for layer, k_layer in zip(ours.layers, theirs.layers):
        if type(layer).__name__.startswith(("Gaussian", "Alpha")):
            k_config = k_layer.get_config()
            assert {k: v for k, v in layer.get_config().items() if k not in ("name", "dtype")} == \
                {k: v for k, v in k_config.items() if k not in ("name", "dtype")}
    theirs.save(tmp_path / "noise.keras")
    loaded = cs.models.load_model(tmp_path / "noise.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in theirs.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_training_noise_has_the_moments_keras_draws_from():
    x = np.zeros((200, 500), np.float32)
    y, _ = L.GaussianNoise(0.3).forward(x, training=True)
    assert y.dtype == np.float32 and abs(y.mean()) < 0.005 and abs(y.std() - 0.3) < 0.005
    with backend.keep_for_backward():
        z, noise = L.GaussianDropout(0.2).forward(x + 2.0, training=True)
    assert abs((z / 2.0).mean() - 1.0) < 0.005 and abs((z / 2.0).std() - np.sqrt(0.2 / 0.8)) < 0.005
    np.testing.assert_array_equal(z, (x + 2.0) * noise)
    grad = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    np.testing.assert_array_equal(L.GaussianDropout(0.2).backward(noise, grad)[0], grad * noise)
    assert L.GaussianNoise(0.3).backward((), grad)[0] is grad


def test_training_with_noise_is_repeatable_with_a_seed():
    def trained():
        cs.utils.set_random_seed(7)
        model = cs.Sequential([cs.Input((5,)), L.GaussianNoise(0.5), L.Dense(4), L.GaussianDropout(0.3), L.Dense(1)])
        model.compile("sgd", "mse")
        x = np.random.default_rng(2).normal(size=(16, 5)).astype("float32")
        model.fit(x, np.ones((16, 1), "float32"), epochs=2, batch_size=8, verbose=0)
        return model.get_weights()
    first, second = trained(), trained()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="GaussianDropout 'gaussian_dropout.*': argument `rate` must be a finite "
                                         "number in \\[0.0, 1.0\\), got 1.0"):
        L.GaussianDropout(1.0)
    for stddev in (-0.1, 2.0):                  # Keras' range: [0, 1]
        with pytest.raises(ValueError, match="GaussianNoise 'gaussian_noise.*': argument `stddev` must be a finite "
                                             f"number in \\[0.0, 1.0\\], got {stddev}"):
            L.GaussianNoise(stddev)
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="gaussian_noise: argument `stddev` must be a finite number in \\[0, inf\\)"):
        cs.ops.gaussian_noise(x, float("nan"))
    with pytest.raises(ValueError, match="gaussian_dropout_forward: argument `rate` must be .* got 'a'"):
        cs.ops.gaussian_dropout_forward(x, "a")
    with pytest.raises(TypeError, match="gaussian_noise: argument `rng` must be None or a numpy.random.Generator"):
        cs.ops.gaussian_noise(x, 0.1, rng=5)
    with pytest.raises(ValueError, match="argument `seed` must be None or a non-negative int, got 'a'"):
        L.GaussianNoise(0.1, seed="a")


def test_explain_follows_the_receptive_field_through_noise_and_prelu():
    """Both are value by value: the receptive field passes through them; PReLU counts one evaluation per value,
    the noise layers none at inference, with their note in English and Korean."""
    model = cs.Sequential([cs.Input((8, 8, 3)), L.Conv2D(4, 3), L.PReLU(shared_axes=[1, 2]), L.GaussianNoise(0.1),
                           L.GaussianDropout(0.2), L.Conv2D(2, 3)])
    rows = cs.explain(model).to_dict()["layers"]
    assert [row["kind"] for row in rows] == ["conv", "activation", "noise", "noise", "conv"]
    assert rows[1]["activation_ops"] == 6 * 6 * 4
    assert [axis["size"] for axis in rows[-1]["receptive_field"]] == [5, 5]
    assert "Gaussian noise has no parameters" in str(cs.explain(model))
    assert "가우시안 잡음 층에는 파라미터가 없습니다" in str(cs.explain(model, lang="ko"))


def test_alpha_dropout_keeps_selu_statistics_and_its_gradient():
    """Keras' AlphaDropout: dropped values at a·α' + b, kept ones a·x + b (a, b from Keras' formula), the mean 0
    and variance 1 of standard normal inputs kept, the gradient a where kept and 0 where dropped."""
    rate, alpha_p = 0.2, -1.6732632423543772 * 1.0507009873554805
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * rate
    x = np.random.default_rng(5).normal(size=(400, 500))
    y, factor = L.AlphaDropout(rate, seed=4).forward(x, training=True)
    dropped = np.isclose(y, a * alpha_p + b) & ~np.isclose(x, alpha_p)
    assert abs(dropped.mean() - rate) < 0.005
    np.testing.assert_allclose(y[~dropped], a * x[~dropped] + b, rtol=1e-12)
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.01
    grad = L.AlphaDropout(rate).backward(factor, np.ones_like(x))[0]
    np.testing.assert_allclose(grad, np.where(dropped, 0.0, a), atol=1e-12)
    rows, _ = L.AlphaDropout(0.5, noise_shape=(None, 1), seed=5).forward(x[:20], training=True)
    assert all(np.allclose(r, a * alpha_p + b) or not np.any(np.isclose(r, a * alpha_p + b)) for r in rows)
    with pytest.raises(ValueError, match="AlphaDropout 'alpha_dropout.*': argument `rate` must be a finite number"):
        L.AlphaDropout(1.5)
