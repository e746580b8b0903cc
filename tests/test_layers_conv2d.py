"""Conv2D: PyTorch oracle (groups, dilation, strides, both data formats), weight layout, config, repr."""

import json

import numpy as np
import pytest

from _calls import backward, forward
from convscope import initializers
from convscope.layers import Conv2D, Convolution2D, deserialize, serialize

torch = pytest.importorskip("torch")
F = torch.nn.functional


def tf_same_split(length, kernel, stride, dilation):
    """TensorFlow's SAME padding (before, after), written out here independently of ops/shapes.py."""
    out = -(-length // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - length, 0)
    return total // 2, total - total // 2


CASES = [
    dict(filters=6, kernel_size=(3, 3), padding="same"),
    dict(filters=4, kernel_size=(2, 2), padding="same", strides=2),        # TF's asymmetric SAME
    dict(filters=6, kernel_size=(3, 1), strides=(2, 3), padding="valid"),
    dict(filters=6, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=6, kernel_size=(2, 3), dilation_rate=(3, 1), groups=3),
    dict(filters=4, kernel_size=5, strides=3, groups=2, padding="same"),
    dict(filters=3, kernel_size=1, use_bias=False),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_conv2d_forward_and_backward_match_torch(case, dtype, data_format, kernel_path):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 9, 8, 6)).astype(dtype)
    layer = Conv2D(activation="relu", data_format=data_format, dtype=dtype,
                   bias_initializer="random_normal", **case)
    x_in = x if data_format == "channels_last" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    y = layer(x_in)
    y_kept, ctx = forward(layer, x_in)      # the same call, keeping its context for backward
    np.testing.assert_array_equal(y_kept, y)
    y_nhwc = y if data_format == "channels_last" else y.transpose(0, 2, 3, 1)

    x_t = torch.from_numpy(x).requires_grad_(True)
    kernel_t = torch.from_numpy(layer.kernel.numpy()).requires_grad_(True)
    bias_t = torch.from_numpy(layer.bias.numpy()).requires_grad_(True) if layer.bias is not None else None
    xp = x_t.permute(0, 3, 1, 2)
    if layer.padding == "same":
        top, bottom = tf_same_split(9, layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0])
        left, right = tf_same_split(8, layer.kernel_size[1], layer.strides[1], layer.dilation_rate[1])
        xp = F.pad(xp, (left, right, top, bottom))
    y_t = F.relu(F.conv2d(xp, kernel_t.permute(3, 2, 0, 1), bias_t, stride=layer.strides,
                          dilation=layer.dilation_rate, groups=layer.groups)).permute(0, 2, 3, 1)
    tol = 1e-5 if dtype == "float32" else 1e-10
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y_nhwc, y_t.detach().numpy(), rtol=tol, atol=tol)

    upstream = rng.standard_normal(y_t.shape).astype(dtype)
    y_t.backward(torch.from_numpy(upstream))
    grad_in, grads = backward(layer, ctx, upstream if data_format == "channels_last"
                              else np.ascontiguousarray(upstream.transpose(0, 3, 1, 2)))
    if data_format == "channels_first":
        grad_in = grad_in.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(grad_in, x_t.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grads[layer.kernel.name], kernel_t.grad.numpy(), rtol=tol, atol=tol * 10)
    if bias_t is not None:
        np.testing.assert_allclose(grads[layer.bias.name], bias_t.grad.numpy(), rtol=tol, atol=tol * 10)


def test_weight_layout_and_parameter_count():
    layer = Conv2D(64, (2, 2), groups=2)
    layer.build_from_shape((None, 14, 14, 32))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (2, 2, 16, 64) and bias.shape == (64,)
    assert layer.count_params() == 2 * 2 * 16 * 64 + 64
    assert [v.name for v in layer.weights] == ["conv2d/kernel", "conv2d/bias"]


def test_glorot_uniform_kernel_respects_keras_fan_rule():
    layer = Conv2D(64, (5, 5))
    layer.build_from_shape((None, 20, 20, 48))
    limit = np.sqrt(6.0 / (5 * 5 * 48 + 5 * 5 * 64))  # fan_in = kh*kw*in, fan_out = kh*kw*filters
    kernel = layer.kernel.numpy()
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.95 * limit
    np.testing.assert_allclose(kernel.var(), limit ** 2 / 3, rtol=0.05)
    np.testing.assert_array_equal(layer.bias.numpy(), 0)


def test_keras_defaults_names_and_repr():
    first, second = Conv2D(8, 3), Convolution2D(4, (2, 2), padding="SAME", activation="relu")
    assert (first.name, second.name) == ("conv2d", "conv2d_1")
    assert first.strides == (1, 1) and first.padding == "valid" and first.data_format == "channels_last"
    assert first.dilation_rate == (1, 1) and first.groups == 1 and first.use_bias
    assert isinstance(first.kernel_initializer, initializers.GlorotUniform)
    assert isinstance(first.bias_initializer, initializers.Zeros)
    assert repr(first) == "Conv2D(filters=8, kernel_size=(3, 3), name='conv2d')"
    assert repr(second) == ("Conv2D(filters=4, kernel_size=(2, 2), padding='same', activation='relu', "
                            "name='conv2d_1')")


def test_config_round_trip_is_json_and_rebuilds_the_same_layer():
    layer = Conv2D(6, (3, 2), strides=(1, 1), padding="same", dilation_rate=2, groups=3,
                   activation="tanh", kernel_initializer="he_normal", kernel_regularizer="l2",
                   bias_constraint="non_neg", input_shape=(10, 10, 3), name="c")
    config = json.loads(json.dumps(serialize(layer)))
    clone = deserialize(config)
    assert clone.get_config() == layer.get_config()
    assert isinstance(clone.kernel_initializer, initializers.HeNormal)
    assert clone._batch_input_shape == (None, 10, 10, 3)


def test_keras_json_layer_config_is_accepted():
    keras2 = {"class_name": "Conv2D", "config": {
        "name": "conv2d", "trainable": True, "batch_input_shape": [None, 28, 28, 1], "dtype": "float32",
        "filters": 32, "kernel_size": [5, 5], "strides": [1, 1], "padding": "same",
        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "relu",
        "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
        "bias_constraint": None}}
    layer = deserialize(keras2)
    assert layer.filters == 32 and layer.kernel_size == (5, 5) and layer.activation.name == "relu"
    keras3 = {"module": "keras.layers", "class_name": "Conv2D", "registered_name": None, "config": {
        "name": "conv2d_9", "trainable": True,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"},
                  "registered_name": None},
        "filters": 2, "kernel_size": [3, 3], "strides": [2, 2], "padding": "valid",
        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "linear",
        "use_bias": False,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "HeUniform",
                               "config": {"seed": 3}, "registered_name": None},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                             "registered_name": None},
        "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
        "kernel_constraint": None, "bias_constraint": None},
        "build_config": {"input_shape": [None, 7, 7, 4]}}
    layer = deserialize(keras3)
    assert layer.dtype == "float64" and not layer.use_bias and layer.strides == (2, 2)
    assert layer.kernel_initializer.seed == 3


def test_regularizers_and_constraints_are_stored_on_layer_and_variables():
    from convscope import constraints, regularizers
    layer = Conv2D(2, 3, kernel_regularizer=regularizers.L2(0.01), bias_regularizer="l1",
                   kernel_constraint="max_norm", bias_constraint=constraints.NonNeg(),
                   activity_regularizer="l2")
    layer.build_from_shape((None, 5, 5, 1))
    assert isinstance(layer.kernel.regularizer, regularizers.L2) and layer.kernel.regularizer is layer.kernel_regularizer
    assert isinstance(layer.bias.regularizer, regularizers.L1)
    assert isinstance(layer.kernel.constraint, constraints.MaxNorm)
    assert isinstance(layer.bias.constraint, constraints.NonNeg)
    config = layer.get_config()
    assert config["kernel_regularizer"]["class_name"] == "L2"
    assert config["activity_regularizer"]["class_name"] == "L2"
    assert config["bias_constraint"] == {"class_name": "NonNeg", "config": {}}
