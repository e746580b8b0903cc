"""MobileNetV2 (Sandler et al., arXiv:1801.04381) as Keras 3 builds it: the same layers, names and weights."""

from __future__ import annotations

import numbers
import warnings

from .. import layers
from . import _common

_SIZES = (96, 128, 160, 192, 224)
_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# (filters, stride, expansion) of blocks 0-16
_BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
           (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
           (320, 1, 6))


def make_divisible(value: float, divisor: int = 8) -> int:
    """`value` rounded to a multiple of `divisor`, never below 90% of it (the paper's channel counts)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _norm(name: str):
    return layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=name)


def inverted_residual_block(inputs, expansion: int, stride: int, alpha: float, filters: int, block_id: int):
    """Expand (1x1, ReLU6; not in block 0), depthwise 3x3 (ReLU6), project (1x1, linear), added to the input
    where the shapes allow."""
    channels = inputs.shape[-1]
    pointwise = make_divisible(int(filters * alpha))
    prefix, x = f"block_{block_id}_", inputs
    if block_id:
        x = layers.Conv2D(expansion * channels, 1, padding="same", use_bias=False, name=prefix + "expand")(x)
        x = layers.ReLU(6.0, name=prefix + "expand_relu")(_norm(prefix + "expand_BN")(x))
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=_common.correct_pad(x.shape[1:3], 3), name=prefix + "pad")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, use_bias=False, padding="same" if stride == 1 else "valid",
                               name=prefix + "depthwise")(x)
    x = layers.ReLU(6.0, name=prefix + "depthwise_relu")(_norm(prefix + "depthwise_BN")(x))
    x = layers.Conv2D(pointwise, 1, padding="same", use_bias=False, name=prefix + "project")(x)
    x = _norm(prefix + "project_BN")(x)
    if channels == pointwise and stride == 1:
        return layers.Add(name=prefix + "add")([inputs, x])
    return x


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet", input_tensor=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    """Keras' `applications.MobileNetV2`: 3.5 M parameters with the top at alpha 1; inputs from
    `preprocess_input` (scaled to [-1, 1]).  `weights="imagenet"` downloads Keras' file for this alpha and
    size (96, 128, 160, 192 or 224; other sizes take 224's, as Keras, with a warning) or takes it from
    Keras' cache."""
    where = "MobileNetV2"
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{where}: argument `alpha` must be a number, got {alpha!r}")
    if not alpha > 0:
        raise ValueError(f"{where}: argument `alpha` must be positive, got {alpha!r}")
    alpha = float(alpha)
    given = _common.input_shape_for(where, input_shape, 224, 32, False, None) if input_shape is not None else None
    default = given[0] if given and given[0] == given[1] and given[0] in _SIZES else 224
    shape = _common.input_shape_for(where, input_shape, default, 32, include_top, weights)
    rows = shape[0]
    if weights == "imagenet":
        if alpha not in _ALPHAS:
            raise ValueError(f"{where}: ImageNet weights exist for alpha in {_ALPHAS}, got alpha={alpha!r}")
        if rows != shape[1] or rows not in _SIZES:
            rows = 224
            warnings.warn(f"{where}: the input shape {shape} is not square of a size in {_SIZES}: the weights for "
                          "224x224 are loaded, as Keras does", stacklevel=2)
    inputs = layers.Input(shape=shape)
    x = layers.Conv2D(make_divisible(32 * alpha), 3, strides=(2, 2), padding="same", use_bias=False,
                      name="Conv1")(inputs)
    x = layers.ReLU(6.0, name="Conv1_relu")(_norm("bn_Conv1")(x))
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = inverted_residual_block(x, expansion, stride, alpha, filters, block_id)
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = layers.Conv2D(last, 1, use_bias=False, name="Conv_1")(x)
    x = layers.ReLU(6.0, name="out_relu")(_norm("Conv_1_bn")(x))
    x = _common.top(x, include_top, pooling, classes, classifier_activation, (None, None))
    file = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{'' if include_top else '_no_top'}.h5"
    return _common.finish(inputs, x, name or f"mobilenetv2_{alpha:0.2f}_{rows}", weights,
                          _common.KERAS_BASE + "mobilenet_v2/" + file, None)


preprocess_input = _common.preprocessor("tf", "mobilenet_v2.preprocess_input")
decode_predictions = _common.decoder()
