"""MobileNet (Howard et al., arXiv:1704.04861) as Keras 3 builds it: the same layers, names and weights."""

from __future__ import annotations

import numbers
import warnings

from .. import layers
from . import _common

_SIZES = (128, 160, 192, 224)
_ALPHAS = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
# (pointwise filters, stride) of the depthwise separable blocks 1-13
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
           (512, 1), (1024, 2), (1024, 1))


def _bn_relu6(x, name: str):
    return layers.ReLU(6.0, name=f"{name}_relu")(layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x))


def depthwise_conv_block(x, filters: int, alpha: float, depth_multiplier: int, stride: int, block_id: int):
    """Depthwise 3x3 (stride 2: padded on the bottom and right first), BN, ReLU6, then 1x1 to `filters`·alpha."""
    if stride == 2:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D(3, padding="same" if stride == 1 else "valid", depth_multiplier=depth_multiplier,
                               strides=stride, use_bias=False, name=f"conv_dw_{block_id}")(x)
    x = _bn_relu6(x, f"conv_dw_{block_id}")
    x = layers.Conv2D(int(filters * alpha), 1, padding="same", use_bias=False, name=f"conv_pw_{block_id}")(x)
    return _bn_relu6(x, f"conv_pw_{block_id}")


def MobileNet(input_shape=None, alpha=1.0, depth_multiplier=1, dropout=1e-3, include_top=True, weights="imagenet",
              input_tensor=None, pooling=None, classes=1000, classifier_activation="softmax", name=None):
    """Keras' `applications.MobileNet`: 4.3 M parameters with the top at alpha 1; inputs from `preprocess_input`
    (scaled to [-1, 1]).  `weights="imagenet"` takes Keras' file for this alpha and size (128, 160, 192 or
    224; other sizes take 224's, as Keras, with a warning)."""
    where = "MobileNet"
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    for arg, value in (("alpha", alpha), ("dropout", dropout)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0 or \
                (arg == "alpha" and not value > 0):
            raise ValueError(f"{where}: argument `{arg}` must be a {'positive' if arg == 'alpha' else 'non-negative'} "
                             f"number, got {value!r}")
    if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int) or depth_multiplier < 1:
        raise ValueError(f"{where}: argument `depth_multiplier` must be a positive int, got {depth_multiplier!r}")
    given = _common.input_shape_for(where, input_shape, 224, 32, False, None) if input_shape is not None else None
    default = given[0] if given and given[0] == given[1] and given[0] in _SIZES else 224
    shape = _common.input_shape_for(where, input_shape, default, 32, include_top, weights)
    rows = shape[0]
    if weights == "imagenet":
        if depth_multiplier != 1 or alpha not in _ALPHAS:
            raise ValueError(f"{where}: ImageNet weights exist for depth_multiplier 1 and alpha in {sorted(_ALPHAS)}, "
                             f"got depth_multiplier={depth_multiplier}, alpha={alpha}")
        if rows != shape[1] or rows not in _SIZES:
            rows = 224
            warnings.warn(f"{where}: the input shape {shape} is not square of a size in {_SIZES}: the weights for "
                          "224x224 are loaded, as Keras does", stacklevel=2)
    inputs = layers.Input(shape=shape)
    x = layers.Conv2D(int(32 * alpha), 3, padding="same", use_bias=False, strides=2, name="conv1")(inputs)
    x = _bn_relu6(x, "conv1")
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = depthwise_conv_block(x, filters, alpha, depth_multiplier, stride, block_id)
    if include_top:
        x = layers.Dropout(dropout, name="dropout")(layers.GlobalAveragePooling2D(keepdims=True)(x))
        x = layers.Conv2D(classes, 1, padding="same", name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape_2")(x)
        x = layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = _common.top(x, False, pooling, classes, classifier_activation, (None, None))
    file = None
    if weights == "imagenet":
        suffix = "" if include_top else "_no_top"
        file = f"{_common.KERAS_BASE}mobilenet/mobilenet_{_ALPHAS[alpha]}_{rows}_tf{suffix}.h5"
    return _common.finish(inputs, x, name or f"mobilenet_{alpha:0.2f}_{rows}", weights, file, None)


preprocess_input = _common.preprocessor("tf", "mobilenet.preprocess_input")
decode_predictions = _common.decoder()
