"""InceptionResNetV2 (Szegedy et al., arXiv:1602.07261) as Keras 3 builds it: the same layers, names and weights."""

from __future__ import annotations

from .. import layers
from . import _common

_MD5 = ("e693bd0210a403b3192acc6073ad2e96", "d19885ff4a710c122648d3b5c3b684e4")     # with the top, without

# Each residual block's branches: [(filters, kernel), ...] per branch, then concatenated (Keras' block types).
_BRANCHES = {
    "block35": [[(32, 1)], [(32, 1), (32, 3)], [(32, 1), (48, 3), (64, 3)]],
    "block17": [[(192, 1)], [(128, 1), (160, (1, 7)), (192, (7, 1))]],
    "block8": [[(192, 1)], [(192, 1), (224, (1, 3)), (256, (3, 1))]],
}


def conv2d_bn(x, filters: int, kernel_size, strides=1, padding: str = "same", activation="relu",
              use_bias: bool = False, name=None):
    """Conv2D, then (without a bias) BatchNormalization without gamma, then the activation (Keras' `conv2d_bn`:
    `<name>_bn`, `<name>_ac`)."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, name=name)(x)
    if not use_bias:
        x = layers.BatchNormalization(axis=3, scale=False, name=None if name is None else f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=None if name is None else f"{name}_ac")(x)
    return x


def _chain(x, convs):
    for filters, kernel in convs:
        x = conv2d_bn(x, filters, kernel)
    return x


def inception_resnet_block(x, scale: float, block_type: str, block_idx: int, activation="relu"):
    """x + scale · (1x1 conv of the concatenated branches), then the activation (`<block>_<idx>_...`)."""
    name = f"{block_type}_{block_idx}"
    mixed = layers.Concatenate(axis=3, name=f"{name}_mixed")([_chain(x, convs) for convs in _BRANCHES[block_type]])
    up = conv2d_bn(mixed, x.shape[3], 1, activation=None, use_bias=True, name=f"{name}_conv")
    x = layers.CustomScaleLayer(scale)([x, up])
    return x if activation is None else layers.Activation(activation, name=f"{name}_ac")(x)


def _reduction(x, branches, name: str):
    """Branches of convolutions (the last of each strided, 'valid') and a 3x3 max pooling, concatenated."""
    outputs = []
    for convs in branches:
        y = _chain(x, convs[:-1])
        filters, kernel = convs[-1]
        outputs.append(conv2d_bn(y, filters, kernel, strides=2, padding="valid"))
    outputs.append(layers.MaxPooling2D(3, strides=2, padding="valid")(x))
    return layers.Concatenate(axis=3, name=name)(outputs)


def InceptionResNetV2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name="inception_resnet_v2"):
    """Keras' `applications.InceptionResNetV2`: 55.9 M parameters with the top; inputs from `preprocess_input`
    (scaled to [-1, 1]), at least 75x75, 299x299 by default."""
    where = "InceptionResNetV2"
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    inputs = layers.Input(shape=_common.input_shape_for(where, input_shape, 299, 75, include_top, weights))
    x = conv2d_bn(conv2d_bn(conv2d_bn(inputs, 32, 3, strides=2, padding="valid"), 32, 3, padding="valid"), 64, 3)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = conv2d_bn(conv2d_bn(x, 80, 1, padding="valid"), 192, 3, padding="valid")
    x = layers.MaxPooling2D(3, strides=2)(x)
    branches = [_chain(x, [(96, 1)]), _chain(x, [(48, 1), (64, 5)]), _chain(x, [(64, 1), (96, 3), (96, 3)])]
    pooled = conv2d_bn(layers.AveragePooling2D(3, strides=1, padding="same")(x), 64, 1)    # made last, as Keras
    x = layers.Concatenate(axis=3, name="mixed_5b")(branches + [pooled])
    for index in range(1, 11):
        x = inception_resnet_block(x, 0.17, "block35", index)
    x = _reduction(x, [[(384, 3)], [(256, 1), (256, 3), (384, 3)]], "mixed_6a")
    for index in range(1, 21):
        x = inception_resnet_block(x, 0.1, "block17", index)
    x = _reduction(x, [[(256, 1), (384, 3)], [(256, 1), (288, 3)], [(256, 1), (288, 3), (320, 3)]], "mixed_7a")
    for index in range(1, 10):
        x = inception_resnet_block(x, 0.2, "block8", index)
    x = inception_resnet_block(x, 1.0, "block8", 10, activation=None)
    x = conv2d_bn(x, 1536, 1, name="conv_7b")
    x = _common.top(x, include_top, pooling, classes, classifier_activation, ("avg_pool" if include_top else None,
                                                                              None))
    url, md5 = _common.tf_kernels_file(weights, "inception_resnet_v2", include_top, _MD5)
    return _common.finish(inputs, x, name, weights, url, md5)


preprocess_input = _common.preprocessor("tf", "inception_resnet_v2.preprocess_input")
decode_predictions = _common.decoder()
