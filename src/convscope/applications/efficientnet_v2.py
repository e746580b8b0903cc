"""EfficientNetV2 B0-B3, S, M, L (Tan & Le, arXiv:2104.00298) as Keras 3 builds them: the same layers, names
and weights.  Inputs are pixels in [0, 255]: the model rescales (and for B0-B3 normalizes) them itself
(`include_preprocessing=True`), so `preprocess_input` passes its input through, as Keras'."""

from __future__ import annotations

import math

from .. import layers
from . import _common
from .efficientnet import _CONV_INIT, head

_BASE = _common.KERAS_BASE + "efficientnet_v2/"
# (kernel, repeats, filters in, filters out, expansion, squeeze-excite ratio, stride, fused) per stage
_B = ((3, 1, 32, 16, 1, 0, 1, True), (3, 2, 16, 32, 4, 0, 2, True), (3, 2, 32, 48, 4, 0, 2, True),
      (3, 3, 48, 96, 4, 0.25, 2, False), (3, 5, 96, 112, 6, 0.25, 1, False), (3, 8, 112, 192, 6, 0.25, 2, False))
_STAGES = {
    "b": _B,
    "s": ((3, 2, 24, 24, 1, 0, 1, True), (3, 4, 24, 48, 4, 0, 2, True), (3, 4, 48, 64, 4, 0, 2, True),
          (3, 6, 64, 128, 4, 0.25, 2, False), (3, 9, 128, 160, 6, 0.25, 1, False),
          (3, 15, 160, 256, 6, 0.25, 2, False)),
    "m": ((3, 3, 24, 24, 1, 0, 1, True), (3, 5, 24, 48, 4, 0, 2, True), (3, 5, 48, 80, 4, 0, 2, True),
          (3, 7, 80, 160, 4, 0.25, 2, False), (3, 14, 160, 176, 6, 0.25, 1, False),
          (3, 18, 176, 304, 6, 0.25, 2, False), (3, 5, 304, 512, 6, 0.25, 1, False)),
    "l": ((3, 4, 32, 32, 1, 0, 1, True), (3, 7, 32, 64, 4, 0, 2, True), (3, 7, 64, 96, 4, 0, 2, True),
          (3, 10, 96, 192, 4, 0.25, 2, False), (3, 19, 192, 224, 6, 0.25, 1, False),
          (3, 25, 224, 384, 6, 0.25, 2, False), (3, 7, 384, 640, 6, 0.25, 1, False)),
}
_MD5 = {  # weights -> (with the top, without)
    "b0": ("21ecbf6da12460d5c40bb2f29ceb2188", "893217f2bb855e2983157299931e43ff"),
    "b1": ("069f0534ff22adf035c89e2d9547a9dc", "0e80663031ca32d657f9caa404b6ec37"),
    "b2": ("424e49f28180edbde1e94797771950a7", "1dfe2e7a5d45b6632553a8961ea609eb"),
    "b3": ("1f1fc43bd98a6e4fd8fdfd551e02c7a0", "f6abf7b5849ac99a89b50dd3fd532856"),
    "-s": ("e1d88a8495beba45748fedd0cecbe016", "af0682fb74e8c54910f2d4393339c070"),
    "-m": ("a3bf6aa3276309f4fc6a34aa114c95cd", "1b8dc055df72dde80d614482840fe342"),
    "-l": ("27e6d408b53c7ebc868fefa357689935", "b0b66b5c863aef5b46e8608fe1711615"),
}


def _bn(name: str, momentum: float):
    return layers.BatchNormalization(axis=3, momentum=momentum, name=name)


def _squeeze_excite(x, filters_in: int, filters: int, ratio: float, activation: str, name: str):
    se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(layers.GlobalAveragePooling2D(
        name=f"{name}se_squeeze")(x))
    se = layers.Conv2D(max(1, int(filters_in * ratio)), 1, padding="same", activation=activation,
                       kernel_initializer=_CONV_INIT, name=f"{name}se_reduce")(se)
    se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid", kernel_initializer=_CONV_INIT,
                       name=f"{name}se_expand")(se)
    return layers.multiply([x, se], name=f"{name}se_excite")


def block(x, filters_in: int, filters_out: int, expansion: int, kernel: int, stride: int, se_ratio: float,
          fused: bool, momentum: float, activation: str, drop_rate: float, name: str):
    """MBConv (1x1 expand, depthwise, squeeze-excite, 1x1 project) or, `fused`, one full convolution in place of
    the expansion and the depthwise step; the input added back (after Keras' `Dropout(drop_rate)` on whole
    samples) where the shapes allow."""
    inputs, filters = x, filters_in * expansion
    if expansion != 1:
        x = layers.Conv2D(filters, kernel if fused else 1, strides=stride if fused else 1, padding="same",
                          use_bias=False, kernel_initializer=_CONV_INIT, name=f"{name}expand_conv")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(_bn(f"{name}expand_bn", momentum)(x))
    if not fused:
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                   depthwise_initializer=_CONV_INIT, name=f"{name}dwconv2")(x)
        x = layers.Activation(activation, name=f"{name}activation")(_bn(f"{name}bn", momentum)(x))
    if 0 < se_ratio <= 1:
        x = _squeeze_excite(x, filters_in, filters, se_ratio, activation, name)
    whole = fused and expansion == 1            # a fused block without expansion: the projection is the conv
    x = layers.Conv2D(filters_out, kernel if whole else 1, strides=stride if whole else 1, padding="same",
                      use_bias=False, kernel_initializer=_CONV_INIT, name=f"{name}project_conv")(x)
    x = _bn(f"{name}project_bn", momentum)(x)
    if whole:
        x = layers.Activation(activation, name=f"{name}project_activation")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def EfficientNetV2(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2, drop_connect_rate=0.2,
                   depth_divisor=8, min_depth=8, bn_momentum=0.9, activation="swish", blocks_args="default",
                   name="efficientnetv2", include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax", include_preprocessing=True,
                   weights_name=None):
    """Keras' `applications.efficientnet_v2.EfficientNetV2` with the stages of the variant in `name`."""
    where = f"EfficientNetV2{str(weights_name).lstrip('-').upper()}" if weights_name in _MD5 else "EfficientNetV2"
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    if blocks_args != "default":
        raise ValueError(f"{where}: argument `blocks_args` must be 'default' (the variant's stages), got "
                         f"{blocks_args!r}")
    variant = str(name).split("-")[-1]
    stages = _STAGES.get("b" if variant.startswith("b") else variant)
    if stages is None:
        raise ValueError(f"{where}: argument `name` must name a variant ('efficientnetv2-b0' ... '-b3', '-s', '-m', "
                         f"'-l') for its default stages, got {name!r}")
    shape = _common.input_shape_for(where, input_shape, default_size, 32, include_top, weights)

    def round_filters(filters):
        scaled = filters * width_coefficient
        return int(max(min_depth or depth_divisor, int(scaled + depth_divisor / 2) // depth_divisor * depth_divisor))

    inputs = x = layers.Input(shape=shape)
    if include_preprocessing:
        if variant.startswith("b") and shape[-1] == 3:
            x = layers.Rescaling(scale=1.0 / 255)(x)
            x = layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.229 ** 2, 0.224 ** 2, 0.225 ** 2],
                                     axis=3)(x)
        else:
            x = layers.Rescaling(scale=1.0 / 128.0, offset=-1)(x)
    x = layers.Conv2D(round_filters(stages[0][2]), 3, strides=2, padding="same", use_bias=False,
                      kernel_initializer=_CONV_INIT, name="stem_conv")(x)
    x = layers.Activation(activation, name="stem_activation")(_bn("stem_bn", bn_momentum)(x))
    done, total = 0, float(sum(stage[1] for stage in stages))
    for i, (kernel, repeats, filters_in, filters_out, expansion, se_ratio, stride, fused) in enumerate(stages):
        filters_in, filters_out = round_filters(filters_in), round_filters(filters_out)
        for j in range(int(math.ceil(depth_coefficient * repeats))):
            x = block(x, filters_in if j == 0 else filters_out, filters_out, expansion, kernel, stride if j == 0 else 1,
                      se_ratio, fused, bn_momentum, activation, drop_connect_rate * done / total,
                      f"block{i + 1}{chr(j + 97)}_")
            done += 1
    x = layers.Conv2D(round_filters(1280), 1, padding="same", use_bias=False, kernel_initializer=_CONV_INIT,
                      name="top_conv")(x)
    x = layers.Activation(activation, name="top_activation")(_bn("top_bn", bn_momentum)(x))
    x = head(x, include_top, pooling, classes, classifier_activation, dropout_rate)
    url = md5 = None
    if weights == "imagenet":
        if weights_name not in _MD5:
            raise ValueError(f"{where}: ImageNet weights exist for the variants B0-B3, S, M and L only")
        url = f"{_BASE}{name}{'.h5' if include_top else '_notop.h5'}"
        md5 = _MD5[weights_name][0 if include_top else 1]
    return _common.finish(inputs, x, name, weights, url, md5)


def _variant(key: str, width: float, depth: float, size: int):
    default_name = f"efficientnetv2-{key.lstrip('-')}"

    def build(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", include_preprocessing=True, name=default_name):
        return EfficientNetV2(width, depth, size, name=name, include_top=include_top, weights=weights,
                              input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                              classifier_activation=classifier_activation,
                              include_preprocessing=include_preprocessing, weights_name=key)
    build.__name__ = build.__qualname__ = f"EfficientNetV2{key.lstrip('-').upper()}"
    build.__doc__ = (f"Keras' `applications.{build.__name__}`: {size}x{size} images of pixels in [0, 255] (the "
                     "model rescales them).")
    return build


EfficientNetV2B0 = _variant("b0", 1.0, 1.0, 224)
EfficientNetV2B1 = _variant("b1", 1.0, 1.1, 240)
EfficientNetV2B2 = _variant("b2", 1.1, 1.2, 260)
EfficientNetV2B3 = _variant("b3", 1.2, 1.4, 300)
EfficientNetV2S = _variant("-s", 1.0, 1.0, 384)
EfficientNetV2M = _variant("-m", 1.0, 1.0, 480)
EfficientNetV2L = _variant("-l", 1.0, 1.0, 480)


def preprocess_input(x, data_format=None):
    """The input itself, as Keras' (an EfficientNetV2 rescales its input inside the model)."""
    return x


decode_predictions = _common.decoder()
