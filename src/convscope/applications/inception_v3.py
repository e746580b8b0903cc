"""InceptionV3 (Szegedy et al., arXiv:1512.00567) as Keras 3 builds it: the same layers, names and weights."""

from __future__ import annotations

from .. import layers
from . import _common

_MD5 = ("9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63")     # with the top, without


def conv2d_bn(x, filters: int, rows: int, cols: int, padding: str = "same", strides=1, name=None):
    """Conv2D without bias, BatchNormalization without gamma, ReLU (Keras' `conv2d_bn`)."""
    x = layers.Conv2D(filters, (rows, cols), strides=strides, padding=padding, use_bias=False,
                      name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=3, scale=False, name=None if name is None else f"{name}_bn")(x)
    return layers.Activation("relu", name=name)(x)


def _pool_branch(x, filters: int):
    return conv2d_bn(layers.AveragePooling2D(3, strides=1, padding="same")(x), filters, 1, 1)


def _block_35(x, pool_filters: int, name: str):
    """1x1; 1x1 → 5x5; 1x1 → 3x3 → 3x3; average pool → 1x1: concatenated (mixed 0-2)."""
    branch1 = conv2d_bn(x, 64, 1, 1)
    branch5 = conv2d_bn(conv2d_bn(x, 48, 1, 1), 64, 5, 5)
    branch3 = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
    return layers.concatenate([branch1, branch5, branch3, _pool_branch(x, pool_filters)], axis=3, name=name)


def _block_17(x, width: int, name: str):
    """1x1; 1x1 → 1x7 → 7x1; 1x1 → (7x1 → 1x7) twice; average pool → 1x1: concatenated (mixed 4-7)."""
    branch1 = conv2d_bn(x, 192, 1, 1)
    branch7 = conv2d_bn(conv2d_bn(conv2d_bn(x, width, 1, 1), width, 1, 7), 192, 7, 1)
    double = conv2d_bn(x, width, 1, 1)
    for filters, (rows, cols) in ((width, (7, 1)), (width, (1, 7)), (width, (7, 1)), (192, (1, 7))):
        double = conv2d_bn(double, filters, rows, cols)
    return layers.concatenate([branch1, branch7, double, _pool_branch(x, 192)], axis=3, name=name)


def _block_8(x, index: int):
    """1x1; 1x1 → (1x3 | 3x1); 1x1 → 3x3 → (1x3 | 3x1); average pool → 1x1: concatenated (mixed 9-10)."""
    branch1 = conv2d_bn(x, 320, 1, 1)
    branch3 = conv2d_bn(x, 384, 1, 1)
    branch3 = layers.concatenate([conv2d_bn(branch3, 384, 1, 3), conv2d_bn(branch3, 384, 3, 1)], axis=3,
                                 name=f"mixed9_{index}")
    double = conv2d_bn(conv2d_bn(x, 448, 1, 1), 384, 3, 3)
    double = layers.concatenate([conv2d_bn(double, 384, 1, 3), conv2d_bn(double, 384, 3, 1)], axis=3)
    return layers.concatenate([branch1, branch3, double, _pool_branch(x, 192)], axis=3, name=f"mixed{9 + index}")


def InceptionV3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="inception_v3"):
    """Keras' `applications.InceptionV3`: 23.9 M parameters with the top; inputs from `preprocess_input` (scaled
    to [-1, 1]), at least 75x75, 299x299 by default."""
    where = "InceptionV3"
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    inputs = layers.Input(shape=_common.input_shape_for(where, input_shape, 299, 75, include_top, weights))
    x = conv2d_bn(inputs, 32, 3, 3, strides=2, padding="valid")
    x = conv2d_bn(conv2d_bn(x, 32, 3, 3, padding="valid"), 64, 3, 3)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = conv2d_bn(conv2d_bn(x, 80, 1, 1, padding="valid"), 192, 3, 3, padding="valid")
    x = layers.MaxPooling2D(3, strides=2)(x)
    for index, pool_filters in enumerate((32, 64, 64)):
        x = _block_35(x, pool_filters, f"mixed{index}")
    branch3 = conv2d_bn(x, 384, 3, 3, strides=2, padding="valid")
    double = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, strides=2, padding="valid")
    x = layers.concatenate([branch3, double, layers.MaxPooling2D(3, strides=2)(x)], axis=3, name="mixed3")
    for index, width in enumerate((128, 160, 160, 192)):
        x = _block_17(x, width, f"mixed{4 + index}")
    branch3 = conv2d_bn(conv2d_bn(x, 192, 1, 1), 320, 3, 3, strides=2, padding="valid")
    branch7 = conv2d_bn(conv2d_bn(conv2d_bn(x, 192, 1, 1), 192, 1, 7), 192, 7, 1)
    branch7 = conv2d_bn(branch7, 192, 3, 3, strides=2, padding="valid")
    x = layers.concatenate([branch3, branch7, layers.MaxPooling2D(3, strides=2)(x)], axis=3, name="mixed8")
    for index in range(2):
        x = _block_8(x, index)
    x = _common.top(x, include_top, pooling, classes, classifier_activation,     # without the top: unnamed
                    ("avg_pool" if include_top else None, None))
    url, md5 = _common.tf_kernels_file(weights, "inception_v3", include_top, _MD5)
    return _common.finish(inputs, x, name, weights, url, md5)


preprocess_input = _common.preprocessor("tf", "inception_v3.preprocess_input")
decode_predictions = _common.decoder()
