"""Xception (Chollet, arXiv:1610.02357) as Keras 3 builds it: the same layers, names and weights."""

from __future__ import annotations

from .. import layers
from . import _common

_MD5 = ("0a58e3b7378bc2990ea3b43d5981f1f6", "b0042744bf5b25fce3cb969f33bebb97")     # with the top, without


def _bn(x, name=None):
    return layers.BatchNormalization(axis=-1, name=name)(x)


def _separable(x, filters: int, name: str, relu_first: bool = True):
    """(ReLU,) SeparableConv2D 3x3 (same), BN."""
    if relu_first:
        x = layers.Activation("relu", name=f"{name}_act")(x)
    return _bn(layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name)(x), f"{name}_bn")


def _shortcut(x, filters: int):
    """The residual of an entry- or exit-flow block: 1x1 of stride 2, BN (both unnamed in Keras)."""
    return _bn(layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x))


def _downsampling_block(x, filters, block: int, first_relu: bool = True):
    residual = _shortcut(x, filters[1])
    x = _separable(x, filters[0], f"block{block}_sepconv1", first_relu)
    x = _separable(x, filters[1], f"block{block}_sepconv2")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"block{block}_pool")(x)
    return layers.add([x, residual])


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="xception"):
    """Keras' `applications.Xception`: 22.9 M parameters with the top; inputs from `preprocess_input` (scaled to
    [-1, 1]), at least 71x71, 299x299 by default."""
    where = "Xception"
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    inputs = layers.Input(shape=_common.input_shape_for(where, input_shape, 299, 71, include_top, weights))
    x = layers.Conv2D(32, 3, strides=2, use_bias=False, name="block1_conv1")(inputs)
    x = layers.Activation("relu", name="block1_conv1_act")(_bn(x, "block1_conv1_bn"))
    x = layers.Conv2D(64, 3, use_bias=False, name="block1_conv2")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(_bn(x, "block1_conv2_bn"))
    residual = _shortcut(x, 128)
    x = _separable(x, 128, "block2_sepconv1", relu_first=False)
    x = _separable(x, 128, "block2_sepconv2")
    x = layers.add([layers.MaxPooling2D(3, strides=2, padding="same", name="block2_pool")(x), residual])
    x = _downsampling_block(x, (256, 256), 3)
    x = _downsampling_block(x, (728, 728), 4)
    for i in range(5, 13):
        residual = x
        for j in (1, 2, 3):
            x = _separable(x, 728, f"block{i}_sepconv{j}")
        x = layers.add([x, residual])
    x = _downsampling_block(x, (728, 1024), 13)
    for j, filters in ((1, 1536), (2, 2048)):
        x = _separable(x, filters, f"block14_sepconv{j}", relu_first=False)
        x = layers.Activation("relu", name=f"block14_sepconv{j}_act")(x)
    x = _common.top(x, include_top, pooling, classes, classifier_activation,     # without the top: unnamed
                    ("avg_pool" if include_top else None, None))
    url, md5 = _common.tf_kernels_file(weights, "xception", include_top, _MD5)
    return _common.finish(inputs, x, name, weights, url, md5)


preprocess_input = _common.preprocessor("tf", "xception.preprocess_input")
decode_predictions = _common.decoder()
