"""Flatten, Reshape, ZeroPadding2D, Activation, ReLU, Softmax, Dropout, Input: numbers, shapes, configs."""

import json

import numpy as np
import pytest

import convscope.utils
from _calls import backward, forward
from convscope import layers as L


def test_flatten_orders_like_keras_for_both_data_formats():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(L.Flatten()(x), x.reshape(2, -1))
    # channels_first input is flattened in channels-last order, as Keras does
    np.testing.assert_array_equal(L.Flatten(data_format="channels_first")(x), x.transpose(0, 2, 3, 1).reshape(2, -1))
    assert L.Flatten().compute_output_shape((None, 4, 4, 25)) == (None, 400)
    assert L.Flatten().compute_output_shape((None, None, 4)) == (None, None)


def test_reshape_with_inferred_axis():
    layer = L.Reshape((3, -1))
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    np.testing.assert_array_equal(layer(x), x.reshape(2, 3, 4))
    assert layer.compute_output_shape((None, 12)) == (None, 3, 4)
    assert L.Reshape((2, 6)).compute_output_shape((None, 3, 4)) == (None, 2, 6)


@pytest.mark.parametrize("padding,expected", [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))),
                                              (((1, 2), (3, 0)), ((1, 2), (3, 0)))])
def test_zero_padding_matches_numpy_pad(padding, expected):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 2)).astype(np.float32)
    layer = L.ZeroPadding2D(padding)
    assert layer.padding == expected
    np.testing.assert_array_equal(layer(x), np.pad(x, ((0, 0),) + expected + ((0, 0),)))
    first = L.ZeroPadding2D(padding, data_format="channels_first")
    np.testing.assert_array_equal(first(x), np.pad(x, ((0, 0), (0, 0)) + expected))


def test_seed003_explicit_padding_then_valid_conv_keeps_4():
    # seed 003: (4 + 2*1 - 3) / 1 + 1 = 4
    pad = L.ZeroPadding2D(1)
    conv = L.Conv2D(1, 3)
    assert conv.compute_output_shape(pad.compute_output_shape((None, 4, 4, 1))) == (None, 4, 4, 1)


def test_activation_layers_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((3, 4, 5)) * 3
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(L.Activation("relu", dtype="float64")(x), torch.relu(xt).numpy())
    np.testing.assert_allclose(L.Activation("softmax", dtype="float64")(x), torch.softmax(xt, -1).numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(L.Softmax(axis=1, dtype="float64")(x), torch.softmax(xt, 1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(L.ReLU(max_value=1.5, dtype="float64")(x), torch.clamp(xt, 0, 1.5).numpy())
    np.testing.assert_allclose(L.ReLU(negative_slope=0.1, dtype="float64")(x),
                               torch.nn.functional.leaky_relu(xt, 0.1).numpy())
    thresholded = L.ReLU(threshold=1.0, dtype="float64")(x)
    np.testing.assert_allclose(thresholded, np.where(x > 1.0, x, 0.0))


@pytest.mark.parametrize("make, keeps_input", [
    (lambda: L.ReLU(), False), (lambda: L.ReLU(max_value=6.0), False), (lambda: L.Activation("tanh"), False),
    (lambda: L.ReLU(negative_slope=0.1), True), (lambda: L.Activation("swish"), True),
    (lambda: L.Activation("sigmoid"), True), (lambda: L.Softmax(), True)])     # fit reads their logits
def test_a_training_call_keeps_the_input_only_where_the_derivative_reads_it(make, keeps_input):
    """A ReLU after BatchNormalization would otherwise hold both tensors until the backward pass (92 MB of
    ResNet-20's step at batch 128); the gradient is the same, a float64 finite-difference oracle.  A last
    sigmoid or softmax keeps its input: fit's fused crossentropy reads it as the logits."""
    layer = make()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4)) * 3
    x[0, 0, :2] = [0.0, 6.0]
    y, ctx = forward(layer, x, training=True)
    assert (ctx.z is not None) == keeps_input
    grad_y = rng.standard_normal(x.shape)
    grad_x, _ = backward(layer, ctx, grad_y)
    inference_y, inference_ctx = forward(layer, x, training=False)
    assert inference_ctx.z is x            # explanations read the preactivation of an inference call
    np.testing.assert_array_equal(grad_x, backward(layer, inference_ctx, grad_y)[0])
    h = 1e-6
    away = np.abs(x[..., None] - np.array([0.0, 6.0])).min(-1) > 1e-3    # not at a kink
    numeric = (layer.forward(x + h, training=False)[0] - layer.forward(x - h, training=False)[0]) / (2 * h)
    if layer.output_activation.name != "softmax":
        np.testing.assert_allclose(grad_x[away], (grad_y * numeric)[away], rtol=1e-6, atol=1e-8)


def test_activation_accepts_convscope_activation_functions():
    from convscope import activations
    layer = L.Dense(2, activation=activations.tanh)
    assert layer.activation.name == "tanh" and layer.get_config()["activation"] == "tanh"
    assert L.Activation(activations.softmax).activation == "softmax"


def test_dropout_is_identity_at_inference_and_inverted_in_training(kernel_path):
    x = np.ones((200, 500), dtype=np.float32)
    layer = L.Dropout(0.3)
    np.testing.assert_array_equal(layer(x), x)
    y, ctx = forward(layer, x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02
    np.testing.assert_array_equal(backward(layer, ctx, np.ones_like(x))[0], y)


def test_dropout_masks_follow_set_random_seed_and_noise_shape(kernel_path):
    x = np.ones((4, 6, 3), dtype=np.float32)
    layer = L.Dropout(0.5, noise_shape=(None, 1, 3))
    convscope.utils.set_random_seed(5)
    first = layer(x, training=True)
    convscope.utils.set_random_seed(5)
    np.testing.assert_array_equal(layer(x, training=True), first)
    assert (first == first[:, :1, :]).all()  # one mask shared along axis 1
    seeded_a, seeded_b = L.Dropout(0.5, seed=3), L.Dropout(0.5, seed=3)
    np.testing.assert_array_equal(seeded_a(x, training=True), seeded_b(x, training=True))


def test_input_and_input_layer():
    inp = L.Input(shape=(28, 28, 1))       # Keras 3: the symbolic tensor of a new InputLayer
    layer = inp.keras_history[0]
    assert isinstance(layer, L.InputLayer) and inp.shape == layer.shape == (None, 28, 28, 1)
    assert layer.output is inp and inp.dtype == "float32"
    assert L.Input(batch_shape=(8, 5)).shape == (8, 5)
    assert L.InputLayer(input_shape=(3,), batch_size=4).shape == (4, 3)
    assert L.InputLayer(batch_input_shape=[None, 7]).shape == (None, 7)
    x = np.ones((2, 28, 28, 1))
    np.testing.assert_array_equal(layer(x), x)
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(inp)


ALL_LAYERS = [
    lambda: L.Conv2D(3, 2, input_shape=(5, 5, 2)),
    lambda: L.Dense(4, activation="relu", bias_regularizer="l1"),
    lambda: L.MaxPooling2D(3, 1, "same"),
    lambda: L.AveragePooling2D(),
    lambda: L.GlobalMaxPooling2D(keepdims=True),
    lambda: L.GlobalAveragePooling2D(data_format="channels_first"),
    lambda: L.Flatten(),
    lambda: L.Reshape((2, -1)),
    lambda: L.ZeroPadding2D(((1, 0), (0, 2))),
    lambda: L.Dropout(0.25, noise_shape=[None, 1], seed=2),
    lambda: L.BatchNormalization(momentum=0.9, center=False),
    lambda: L.Activation("gelu"),
    lambda: L.ReLU(6.0),
    lambda: L.Softmax(axis=1),
    lambda: L.InputLayer(shape=(4, 4)),
]


@pytest.mark.parametrize("factory", ALL_LAYERS)
def test_every_layer_config_is_json_and_round_trips(factory):
    layer = factory()
    text = json.dumps(L.serialize(layer))
    clone = L.deserialize(json.loads(text))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_automatic_names_follow_keras():
    names = [L.Conv2D(1, 1).name, L.Conv2D(1, 1).name, L.MaxPooling2D().name, L.Dense(1).name,
             L.Dense(1).name, L.BatchNormalization().name, L.GlobalAveragePooling2D().name,
             L.ZeroPadding2D().name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "dense", "dense_1", "batch_normalization",
                     "global_average_pooling2d", "zero_padding2d"]


def test_keras2_import_paths():
    from convscope.layers.convolutional import Conv2D, MaxPooling2D
    from convscope.layers.core import Dense, Dropout, Flatten
    from convscope.utils.np_utils import to_categorical
    assert Conv2D is L.Conv2D and MaxPooling2D is L.MaxPooling2D and Dense is L.Dense
    assert Dropout is L.Dropout and Flatten is L.Flatten
    assert to_categorical is convscope.utils.to_categorical


def test_keras_level_activation_functions():
    from convscope import activations
    x = np.array([[-2.0, 0.5, 3.0]])
    np.testing.assert_allclose(activations.relu(x, max_value=2.0), [[0.0, 0.5, 2.0]])
    np.testing.assert_allclose(activations.softmax(x).sum(), 1.0)
    np.testing.assert_allclose(activations.leaky_relu(x), [[-0.4, 0.5, 3.0]])
    assert activations.get("tanh") is activations.tanh and activations.get(None) is activations.linear
    assert activations.serialize(activations.gelu) == "gelu"
    assert activations.deserialize({"class_name": "function", "config": "selu"}) is activations.selu
    with pytest.raises(ValueError, match=r"activations.get: argument `identifier` is an unknown activation 'relu7'"):
        activations.get("relu7")


def test_to_categorical_like_keras():
    from convscope.utils import to_categorical
    np.testing.assert_array_equal(to_categorical(np.array([[1], [0], [2]])), np.eye(3)[[1, 0, 2]])
    grid = to_categorical(np.array([[0, 3], [2, 1]]), num_classes=4)
    assert grid.shape == (2, 2, 4) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid.argmax(-1), [[0, 3], [2, 1]])
    assert to_categorical(np.array([1.0, 0.0]), dtype="int64").dtype == np.int64
    with pytest.raises(ValueError, match=r"to_categorical: label 5 is out of range for num_classes=3"):
        to_categorical([0, 5], 3)
    with pytest.raises(ValueError, match=r"to_categorical: argument `y` must hold non-negative class labels, got -1"):
        to_categorical([-1, 2])
    with pytest.raises(ValueError, match=r"to_categorical: argument `y` must hold integer class labels, got non-integer"):
        to_categorical([0.5])
    with pytest.raises(ValueError, match=r"to_categorical: argument `y` must hold finite integer class labels"):
        to_categorical([np.nan])
    with pytest.raises(ValueError, match=r"to_categorical: argument `num_classes` must be a positive int, got 0"):
        to_categorical([0], 0)
