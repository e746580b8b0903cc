"""Every layer's `backward` against central finite differences in float64, in training and inference mode."""

import numpy as np
import pytest

from _calls import backward, forward
from _gradcheck import assert_gradients_close, numerical_gradient
from convscope import _rng
from convscope import layers as L


def check_layer_gradients(layer, x, training, reseed=False):
    """Compare d(sum(w * layer(x))) / d(x and every trainable variable) with finite differences.

    `reseed` re-seeds the library generator before each forward pass so Dropout draws one mask.
    """
    rng = np.random.default_rng(7)

    def call():
        if reseed:
            _rng.set_seed(1234)
        return layer(x, training=training)

    y = call()
    w = rng.standard_normal(y.shape)
    if reseed:
        _rng.set_seed(1234)
    y_kept, ctx = forward(layer, x, training=training)
    np.testing.assert_array_equal(y_kept, call())
    grad_x, analytic = backward(layer, ctx, w.copy())

    def loss():
        return float(np.sum(call() * w))

    assert_gradients_close(grad_x, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for variable in layer.trainable_weights:
        numeric = numerical_gradient(loss, variable.value)
        assert_gradients_close(analytic[variable.name], numeric, rtol=1e-6, atol=1e-8)
    return grad_x


def image(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


MODES = [False, True]


@pytest.mark.parametrize("training", MODES)
@pytest.mark.parametrize("kwargs,shape", [
    (dict(filters=4, kernel_size=(3, 2), padding="same", activation="tanh"), (2, 5, 4, 2)),
    (dict(filters=4, kernel_size=3, strides=2, padding="same", groups=2), (1, 6, 5, 4)),
    (dict(filters=3, kernel_size=2, dilation_rate=2, activation="relu"), (2, 5, 5, 2)),
    (dict(filters=2, kernel_size=(2, 3), strides=(2, 1), data_format="channels_first", activation="sigmoid"),
     (2, 3, 5, 4)),
    (dict(filters=2, kernel_size=2, use_bias=False, activation="softmax"), (1, 3, 3, 2)),
])
def test_conv2d_gradients(kwargs, shape, training, kernel_path):
    layer = L.Conv2D(dtype="float64", **kwargs)
    check_layer_gradients(layer, image(shape), training)


@pytest.mark.parametrize("training", MODES)
@pytest.mark.parametrize("shape,activation", [((3, 4), "relu"), ((2, 3, 4), "softmax"), ((2, 2, 2, 3), "gelu")])
def test_dense_gradients(shape, activation, training, kernel_path):
    check_layer_gradients(L.Dense(3, activation=activation, dtype="float64"), image(shape), training)


@pytest.mark.parametrize("training", MODES)
@pytest.mark.parametrize("cls,kwargs", [
    (L.MaxPooling2D, dict()),
    (L.MaxPooling2D, dict(pool_size=3, strides=2, padding="same")),
    (L.AveragePooling2D, dict(pool_size=(2, 3), padding="same")),
    (L.AveragePooling2D, dict(pool_size=2, strides=1, data_format="channels_first")),
    (L.GlobalMaxPooling2D, dict()),
    (L.GlobalAveragePooling2D, dict(keepdims=True)),
    (L.GlobalAveragePooling2D, dict(data_format="channels_first")),
])
def test_pooling_gradients(cls, kwargs, training):
    check_layer_gradients(cls(dtype="float64", **kwargs), image((2, 5, 5, 3)), training)


@pytest.mark.parametrize("training", MODES)
@pytest.mark.parametrize("kwargs,shape", [
    (dict(), (4, 3)),
    (dict(), (3, 3, 2, 2)),
    (dict(axis=1, center=False), (3, 2, 2, 3)),
    (dict(scale=False), (5, 2)),
])
def test_batch_normalization_gradients(kwargs, shape, training):
    layer = L.BatchNormalization(dtype="float64", **kwargs)
    layer.build_from_shape((None,) + shape[1:])
    rng = np.random.default_rng(3)
    for variable in layer.weights:  # non-trivial statistics and affine parameters
        variable.assign(rng.uniform(0.5, 1.5, variable.shape))
    check_layer_gradients(layer, image(shape), training)


def test_frozen_batch_normalization_uses_inference_gradient_in_training():
    layer = L.BatchNormalization(dtype="float64", trainable=False)
    layer.build_from_shape((None, 3))
    layer.moving_variance.assign(np.array([0.5, 2.0, 4.0]))
    x = image((4, 3))
    grad = check_layer_gradients(layer, x, training=True)
    upstream = np.random.default_rng(7).standard_normal(x.shape)  # the w drawn in check_layer_gradients
    np.testing.assert_allclose(grad, upstream / np.sqrt(np.array([0.5, 2.0, 4.0]) + 1e-3), rtol=1e-12)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(3))  # frozen: statistics stay put


@pytest.mark.parametrize("training", MODES)
@pytest.mark.parametrize("layer_factory,shape", [
    (lambda: L.Flatten(dtype="float64"), (2, 3, 2, 2)),
    (lambda: L.Flatten(data_format="channels_first", dtype="float64"), (2, 3, 2, 2)),
    (lambda: L.Reshape((4, -1), dtype="float64"), (2, 2, 6)),
    (lambda: L.ZeroPadding2D(((1, 0), (2, 1)), dtype="float64"), (2, 3, 3, 2)),
    (lambda: L.ZeroPadding2D(1, data_format="channels_first", dtype="float64"), (1, 2, 3, 3)),
    (lambda: L.Activation("elu", dtype="float64"), (3, 4)),
    (lambda: L.Activation("softmax", dtype="float64"), (3, 4)),
    (lambda: L.ReLU(max_value=0.8, negative_slope=0.1, threshold=0.2, dtype="float64"), (4, 5)),
    (lambda: L.Softmax(axis=1, dtype="float64"), (2, 4, 3)),
    (lambda: L.Dropout(0.4, dtype="float64"), (4, 5)),
    (lambda: L.Dropout(0.5, noise_shape=(None, 1, 3), dtype="float64"), (2, 4, 3)),
    (lambda: L.InputLayer(shape=(4,), dtype="float64"), (3, 4)),
])
def test_shape_and_activation_layer_gradients(layer_factory, shape, training):
    check_layer_gradients(layer_factory(), image(shape), training, reseed=True)


@pytest.mark.parametrize("layer,shape", [(lambda: L.Conv2D(3, 2, dtype="float64"), (2, 4, 4, 2)),
                                         (lambda: L.Dense(3, dtype="float64"), (2, 5))])
def test_backward_can_skip_the_input_gradient(layer, shape):
    """A first layer needs only its weight gradients: the same ones, and no input gradient."""
    layer = layer()
    x = image(shape)
    upstream = np.random.default_rng(1).standard_normal(layer(x).shape)
    _, ctx = forward(layer, x)
    grad_x, expected = backward(layer, ctx, upstream)
    assert grad_x is not None and len(expected) == len(layer.trainable_weights) > 0
    _, ctx = forward(layer, x)
    grad_x, grads = backward(layer, ctx, upstream, need_input_grad=False)
    assert grad_x is None
    assert grads.keys() == expected.keys()
    for name, grad in expected.items():
        np.testing.assert_array_equal(grads[name], grad)
