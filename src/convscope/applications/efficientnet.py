"""EfficientNetB0-B7 (Tan & Le, arXiv:1905.11946) as Keras 3 builds them: the same layers, names and weights.

The input is pixels in [0, 255]: the model rescales them and normalizes them itself (a `Normalization` layer whose
mean and variance come with the weights), so `preprocess_input` passes its input through, as Keras'.
"""

from __future__ import annotations

import math

from .. import layers
from . import _common

# (kernel, repeats, filters in, filters out, expansion, stride) of the seven stages, squeeze-excite ratio 0.25
_STAGES = ((3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
           (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1))
_CONV_INIT = {"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_out",
                                                          "distribution": "truncated_normal"}}
_DENSE_INIT = {"class_name": "VarianceScaling", "config": {"scale": 1.0 / 3.0, "mode": "fan_out",
                                                           "distribution": "uniform"}}
_IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
_BASE = "https://storage.googleapis.com/keras-applications/"
_MD5 = {  # variant -> (with the top, without)
    "b0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    "b4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}


def block(inputs, activation: str, drop_rate: float, name: str, filters_in: int, filters_out: int, kernel: int,
          stride: int, expansion: int, se_ratio: float = 0.25):
    """MBConv: expand (1x1), depthwise (`kernel`, `stride`), squeeze-excite, project (1x1); added to the input
    (after dropping whole samples' residual with `drop_rate`) where the shapes allow."""
    filters = filters_in * expansion
    x = inputs
    if expansion != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer=_CONV_INIT,
                          name=f"{name}expand_conv")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(
            layers.BatchNormalization(axis=3, name=f"{name}expand_bn")(x))
    if stride == 2:
        x = layers.ZeroPadding2D(padding=_common.correct_pad(x.shape[1:3], kernel), name=f"{name}dwconv_pad")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False,
                               depthwise_initializer=_CONV_INIT, name=f"{name}dwconv")(x)
    x = layers.Activation(activation, name=f"{name}activation")(layers.BatchNormalization(axis=3, name=f"{name}bn")(x))
    se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
    se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
    se = layers.Conv2D(max(1, int(filters_in * se_ratio)), 1, padding="same", activation=activation,
                       kernel_initializer=_CONV_INIT, name=f"{name}se_reduce")(se)
    se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid", kernel_initializer=_CONV_INIT,
                       name=f"{name}se_expand")(se)
    x = layers.multiply([x, se], name=f"{name}se_excite")
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, kernel_initializer=_CONV_INIT,
                      name=f"{name}project_conv")(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def head(x, include_top: bool, pooling, classes: int, classifier_activation, dropout_rate: float):
    """EfficientNet's (and V2's) classifier: average pooling, dropout, Dense "predictions"; or the pooling."""
    if not include_top:
        return _common.top(x, False, pooling, classes, classifier_activation, ("avg_pool", "max_pool"))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="top_dropout")(x)
    return layers.Dense(classes, activation=classifier_activation, kernel_initializer=_DENSE_INIT,
                        name="predictions")(x)


def EfficientNet(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2, drop_connect_rate=0.2,
                 depth_divisor=8, activation="swish", name="efficientnet", include_top=True, weights="imagenet",
                 input_tensor=None, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                 weights_name=None):
    """Keras' `applications.efficientnet.EfficientNet` with the default stages, scaled in width and depth."""
    where = f"EfficientNet{weights_name.upper()}" if weights_name in _MD5 else "EfficientNet"
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    if weights == "imagenet" and weights_name not in _MD5:
        raise ValueError(f"{where}: ImageNet weights exist for EfficientNetB0-B7 only")
    inputs = layers.Input(shape=_common.input_shape_for(where, input_shape, default_size, 32, include_top, weights))

    def round_filters(filters):
        scaled = filters * width_coefficient
        rounded = max(depth_divisor, int(scaled + depth_divisor / 2) // depth_divisor * depth_divisor)
        return int(rounded + depth_divisor if rounded < 0.9 * scaled else rounded)

    x = layers.Normalization(axis=3)(layers.Rescaling(1.0 / 255.0)(inputs))
    if weights == "imagenet":
        x = layers.Rescaling([1.0 / math.sqrt(stddev) for stddev in _IMAGENET_STDDEV_RGB])(x)
    x = layers.ZeroPadding2D(padding=_common.correct_pad(x.shape[1:3], 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(round_filters(32), 3, strides=2, padding="valid", use_bias=False, kernel_initializer=_CONV_INIT,
                      name="stem_conv")(x)
    x = layers.Activation(activation, name="stem_activation")(layers.BatchNormalization(axis=3, name="stem_bn")(x))
    repeats = [int(math.ceil(depth_coefficient * stage[1])) for stage in _STAGES]
    done, total = 0, float(sum(repeats))
    for i, ((kernel, _, filters_in, filters_out, expansion, stride), count) in enumerate(zip(_STAGES, repeats)):
        filters_in, filters_out = round_filters(filters_in), round_filters(filters_out)
        for j in range(count):
            x = block(x, activation, drop_connect_rate * done / total, f"block{i + 1}{chr(j + 97)}_",
                      filters_in if j == 0 else filters_out, filters_out, kernel, stride if j == 0 else 1, expansion)
            done += 1
    x = layers.Conv2D(round_filters(1280), 1, padding="same", use_bias=False, kernel_initializer=_CONV_INIT,
                      name="top_conv")(x)
    x = layers.Activation(activation, name="top_activation")(layers.BatchNormalization(axis=3, name="top_bn")(x))
    x = head(x, include_top, pooling, classes, classifier_activation, dropout_rate)
    url = md5 = None
    if weights == "imagenet":
        url = f"{_BASE}{name}{'.h5' if include_top else '_notop.h5'}"
        md5 = _MD5[weights_name][0 if include_top else 1]
    return _common.finish(inputs, x, name, weights, url, md5)


def _variant(width: float, depth: float, size: int, dropout: float, key: str):
    def build(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name=f"efficientnet{key}"):
        return EfficientNet(width, depth, size, dropout, name=name, include_top=include_top, weights=weights,
                            input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                            classifier_activation=classifier_activation, weights_name=key)
    build.__name__ = build.__qualname__ = f"EfficientNet{key.upper()}"
    build.__doc__ = (f"Keras' `applications.{build.__name__}`: width ×{width}, depth ×{depth}, {size}x{size} "
                     "images of pixels in [0, 255] (the model normalizes them).")
    return build


EfficientNetB0 = _variant(1.0, 1.0, 224, 0.2, "b0")
EfficientNetB1 = _variant(1.0, 1.1, 240, 0.2, "b1")
EfficientNetB2 = _variant(1.1, 1.2, 260, 0.3, "b2")
EfficientNetB3 = _variant(1.2, 1.4, 300, 0.3, "b3")
EfficientNetB4 = _variant(1.4, 1.8, 380, 0.4, "b4")
EfficientNetB5 = _variant(1.6, 2.2, 456, 0.4, "b5")
EfficientNetB6 = _variant(1.8, 2.6, 528, 0.5, "b6")
EfficientNetB7 = _variant(2.0, 3.1, 600, 0.5, "b7")


def preprocess_input(x, data_format=None):
    """The input itself, as Keras' (an EfficientNet rescales and normalizes inside the model)."""
    return x


decode_predictions = _common.decoder()
