"""Keras 3 itself (torch backend, when installed) as the oracle of defaults, configs and numbers.

Skipped where Keras or torch is missing.  Keras' torch backend pads an asymmetric SAME
average pool by replicating edge values (TensorFlow does not), so those cases are left
to the PyTorch tests in test_layers_pooling.py.
"""

import numpy as np
import pytest

from _oracle import comparable_config
from convscope import layers as L
from convscope.models import Sequential, model_from_json


def keras_seed001_plus(keras):
    """Seed 001's model plus the other layers, written in Keras."""
    K = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        K.Conv2D(75, (3, 3), strides=1, padding="same", activation="relu"),
        K.BatchNormalization(),
        K.MaxPool2D((2, 2), strides=2, padding="same"),
        K.Conv2D(50, (3, 3), strides=1, padding="same", activation="relu"),
        K.Dropout(0.2),
        K.BatchNormalization(),
        K.MaxPool2D((2, 2), strides=2, padding="same"),
        K.Conv2D(24, (3, 3), dilation_rate=2, groups=2, padding="same", activation="tanh"),
        K.AveragePooling2D(3, strides=1, padding="same"),
        K.ZeroPadding2D(((1, 0), (2, 1))),
        K.ReLU(max_value=0.5),
        K.MaxPool2D((2, 2), strides=2, padding="same"),
        K.Flatten(),
        K.Dense(units=64, activation="relu"),
        K.Reshape((8, 8)),
        K.Softmax(axis=1),
        K.Dropout(0.3),
        K.Dense(units=25, activation="softmax"),
    ])


def test_keras_json_rebuilds_the_same_model_and_numbers(keras):
    twin = keras_seed001_plus(keras)
    rng = np.random.default_rng(0)
    twin.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(w.dtype) for w in twin.get_weights()])
    model = model_from_json(twin.to_json())
    assert [layer.name for layer in model.layers] == [layer.name for layer in twin.layers]
    assert [layer.output_shape for layer in model.layers] == [tuple(layer.output.shape) for layer in twin.layers]
    assert [layer.count_params() for layer in model.layers] == [layer.count_params() for layer in twin.layers]
    model.set_weights(twin.get_weights())
    x = rng.random((4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_keras_reads_our_json(keras):
    model = Sequential([L.Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 2)),
                        L.BatchNormalization(momentum=0.9), L.MaxPool2D(), L.Flatten(), L.Dropout(0.2),
                        L.Dense(3, activation="softmax", kernel_regularizer="l2", kernel_initializer="he_normal")])
    twin = keras.models.model_from_json(model.to_json())
    assert [layer.name for layer in twin.layers] == [layer.name for layer in model.layers]
    assert twin.layers[1].momentum == 0.9
    assert type(twin.layers[-1].kernel_initializer).__name__ == "HeNormal"
    twin.set_weights(model.get_weights())
    x = np.random.default_rng(1).random((3, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(twin.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)




KERAS_ONLY = {"synchronized", "renorm", "renorm_clipping", "renorm_momentum", "quantization_config"}


@pytest.mark.parametrize("class_name,args", [
    ("Conv2D", (8, 3)), ("Dense", (5,)), ("BatchNormalization", ()), ("MaxPooling2D", ()),
    ("AveragePooling2D", ((2, 2),)), ("GlobalMaxPooling2D", ()), ("GlobalAveragePooling2D", ()),
    ("Flatten", ()), ("Reshape", ((2, 3),)), ("ZeroPadding2D", ()), ("Dropout", (0.5,)),
    ("Activation", ("relu",)), ("ReLU", ()), ("Softmax", ()),
])
def test_default_configs_match_keras(keras, class_name, args):
    ours = comparable_config(getattr(L, class_name)(*args).get_config())
    theirs = comparable_config(getattr(keras.layers, class_name)(*args).get_config())
    for key in KERAS_ONLY:
        theirs.pop(key, None)
    missing_in_keras = set(ours) - set(theirs) - {"activity_regularizer"}  # Keras 3's Dense omits it
    assert not missing_in_keras and set(theirs) <= set(ours)
    assert {k: ours[k] for k in theirs} == theirs


@pytest.mark.parametrize("axis,shape", [(-1, (6, 5)), (-1, (4, 3, 3, 5)), (1, (4, 5, 3, 3))])
def test_batch_normalization_training_step_matches_keras(keras, axis, shape):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    ours = L.BatchNormalization(axis=axis, momentum=0.8)
    theirs = keras.layers.BatchNormalization(axis=axis, momentum=0.8)
    theirs.build(shape)
    ours.build_from_shape((None,) + shape[1:])
    weights = [w + rng.uniform(0.1, 0.5, w.shape).astype(np.float32) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    expected = keras.ops.convert_to_numpy(theirs(x, training=True))
    np.testing.assert_allclose(ours(x, training=True), expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x, training=False)), rtol=1e-5, atol=1e-5)


def test_channels_first_model_matches_keras(keras):
    K = keras.layers
    twin = keras.Sequential([
        keras.Input((3, 9, 8)),
        K.Conv2D(6, 3, strides=2, padding="same", data_format="channels_first", activation="relu"),
        K.BatchNormalization(axis=1),
        K.ZeroPadding2D(((1, 2), (0, 1)), data_format="channels_first"),
        K.MaxPooling2D(3, strides=2, padding="same", data_format="channels_first"),
        K.Conv2D(4, (2, 1), groups=2, data_format="channels_first"),
        K.Flatten(data_format="channels_first"),
        K.Dense(5),
    ])
    rng = np.random.default_rng(5)
    twin.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(w.dtype) for w in twin.get_weights()])
    model = model_from_json(twin.to_json())
    assert [layer.output_shape for layer in model.layers] == [tuple(layer.output.shape) for layer in twin.layers]
    model.set_weights(twin.get_weights())
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
