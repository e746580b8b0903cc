"""MobileNetV3Small and MobileNetV3Large (Howard et al., arXiv:1905.02244) as Keras 3 builds them: the same
layers, names and weights.  Inputs are pixels in [0, 255]: the model rescales them itself (a `Rescaling` layer,
`include_preprocessing=True`), so `preprocess_input` passes its input through, as Keras'."""

from __future__ import annotations

import numbers
import warnings

from .. import layers
from . import _common

_BASE = _common.KERAS_BASE + "mobilenet_v3/"
_MD5 = {  # model -> (with the top, without)
    "large_224_0.75_float": ("765b44a33ad4005b3ac83185abf1d0eb", "40af19a13ebea4e2ee0c676887f69a2e"),
    "large_224_1.0_float": ("59e551e166be033d707958cf9e29a6a7", "07fb09a5933dd0c8eaafa16978110389"),
    "large_minimalistic_224_1.0_float": ("675e7b876c45c57e9e63e6d90a36599c", "ec5221f64a2f6d1ef965a614bdae7973"),
    "small_224_0.75_float": ("cb65d4e5be93758266aa0a7f2c6708b7", "ebdb5cc8e0b497cd13a7c275d475c819"),
    "small_224_1.0_float": ("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "small_minimalistic_224_1.0_float": ("99cd97fb2fcdad2bf028eb838de69e37", "cde8136e733e811080d9fcd8a252f7e4"),
}
# (expansion, filters, kernel ("k": 5, or 3 when minimalistic), stride, squeeze-excite, activation ("a": hard swish,
# or ReLU when minimalistic)) per block
_SMALL = ((1, 16, 3, 2, True, "relu"), (72 / 16, 24, 3, 2, False, "relu"), (88 / 24, 24, 3, 1, False, "relu"),
          (4, 40, "k", 2, True, "a"), (6, 40, "k", 1, True, "a"), (6, 40, "k", 1, True, "a"),
          (3, 48, "k", 1, True, "a"), (3, 48, "k", 1, True, "a"), (6, 96, "k", 2, True, "a"),
          (6, 96, "k", 1, True, "a"), (6, 96, "k", 1, True, "a"))
_LARGE = ((1, 16, 3, 1, False, "relu"), (4, 24, 3, 2, False, "relu"), (3, 24, 3, 1, False, "relu"),
          (3, 40, "k", 2, True, "relu"), (3, 40, "k", 1, True, "relu"), (3, 40, "k", 1, True, "relu"),
          (6, 80, 3, 2, False, "a"), (2.5, 80, 3, 1, False, "a"), (2.3, 80, 3, 1, False, "a"),
          (2.3, 80, 3, 1, False, "a"), (6, 112, 3, 1, True, "a"), (6, 112, 3, 1, True, "a"),
          (6, 160, "k", 2, True, "a"), (6, 160, "k", 1, True, "a"), (6, 160, "k", 1, True, "a"))


def _depth(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _activate(x, kind: str):
    return layers.ReLU()(x) if kind == "relu" else layers.Activation("hard_swish")(x)


def _norm(name: str):
    return layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=name)


def _squeeze_excite(inputs, filters: int, prefix: str):
    """Average over the image, 1x1 down to a quarter (ReLU), 1x1 back, hard sigmoid: the channels' weights."""
    x = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(inputs)
    x = layers.Conv2D(_depth(filters * 0.25), 1, padding="same", name=f"{prefix}squeeze_excite_conv")(x)
    x = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", name=f"{prefix}squeeze_excite_conv_1")(x)
    x = layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, x])


def inverted_res_block(x, expansion: float, filters: int, kernel: int, stride: int, squeeze: bool, activation: str,
                       block_id: int):
    """Expand (1x1; not in block 0), depthwise, squeeze-excite, project (1x1); added to the input where the shapes
    allow."""
    shortcut, channels = x, x.shape[-1]
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
        x = layers.Conv2D(_depth(channels * expansion), 1, padding="same", use_bias=False, name=f"{prefix}expand")(x)
        x = _activate(_norm(f"{prefix}expand_bn")(x), activation)
    if stride == 2:
        x = layers.ZeroPadding2D(padding=_common.correct_pad(x.shape[1:3], kernel), name=f"{prefix}depthwise_pad")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False,
                               name=f"{prefix}depthwise")(x)
    x = _activate(_norm(f"{prefix}depthwise_bn")(x), activation)
    if squeeze:
        x = _squeeze_excite(x, _depth(channels * expansion), prefix)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = _norm(f"{prefix}project_bn")(x)
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def MobileNetV3(blocks, last_point_channels: int, input_shape=None, alpha=1.0, model_type="large",
                minimalistic=False, include_top=True, weights="imagenet", input_tensor=None, classes=1000,
                pooling=None, dropout_rate=0.2, classifier_activation="softmax", include_preprocessing=True, name=None):
    """Keras' `applications.mobilenet_v3.MobileNetV3` over `blocks` (this module's tables)."""
    where = {"small": "MobileNetV3Small", "large": "MobileNetV3Large"}.get(model_type, "MobileNetV3")
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{where}: argument `alpha` must be a number, got {alpha!r}")
    if not alpha > 0:
        raise ValueError(f"{where}: argument `alpha` must be positive, got {alpha!r}")
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, numbers.Real) or not 0 <= dropout_rate < 1:
        raise ValueError(f"{where}: argument `dropout_rate` must be a number in [0, 1), got {dropout_rate!r}")
    shape = (None, None, 3) if input_shape is None else _common.input_shape_for(where, input_shape, 224, 32, False,
                                                                                 None)
    if weights == "imagenet":
        if alpha not in ((1.0,) if minimalistic else (0.75, 1.0)):
            raise ValueError(f"{where}: ImageNet weights exist for alpha 0.75 and 1.0 (1.0 when minimalistic), got "
                             f"alpha={alpha}")
        if shape[0] != shape[1] or shape[0] != 224:
            warnings.warn(f"{where}: the input shape {shape} is not 224x224: the weights for 224x224 are loaded, "
                          "as Keras does", stacklevel=3)
    kernel, activation = (3, "relu") if minimalistic else (5, "a")
    inputs = layers.Input(shape=shape)
    x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0)(inputs) if include_preprocessing else inputs
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="conv")(x)
    x = _activate(_norm("conv_bn")(x), activation)
    for block_id, (expansion, filters, size, stride, squeeze, kind) in enumerate(blocks):
        x = inverted_res_block(x, expansion, _depth(filters * alpha), kernel if size == "k" else size, stride,
                               squeeze and not minimalistic, activation if kind == "a" else "relu", block_id)
    last_conv = _depth(x.shape[-1] * 6)
    last_point = _depth(last_point_channels * alpha) if alpha > 1.0 else last_point_channels
    x = layers.Conv2D(last_conv, 1, padding="same", use_bias=False, name="conv_1")(x)
    x = _activate(_norm("conv_1_bn")(x), activation)
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = _activate(layers.Conv2D(last_point, 1, padding="same", use_bias=True, name="conv_2")(x), activation)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate)(x)
        x = layers.Flatten()(layers.Conv2D(classes, 1, padding="same", name="logits")(x))
        x = layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = _common.top(x, False, pooling, classes, classifier_activation, ("avg_pool", "max_pool"))
    url = md5 = None
    if weights == "imagenet":
        model = f"{model_type}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
        url = f"{_BASE}weights_mobilenet_v3_{model}{'.h5' if include_top else '_no_top_v2.h5'}"
        md5 = _MD5[model][0 if include_top else 1]
    return _common.finish(inputs, x, name, weights, url, md5)


def _variant(blocks, last_point_channels: int, model_type: str, default_name: str):
    def build(input_shape=None, alpha=1.0, minimalistic=False, include_top=True, weights="imagenet",
              input_tensor=None, classes=1000, pooling=None, dropout_rate=0.2, classifier_activation="softmax",
              include_preprocessing=True, name=default_name):
        return MobileNetV3(blocks, last_point_channels, input_shape, alpha, model_type, minimalistic, include_top,
                           weights, input_tensor, classes, pooling, dropout_rate, classifier_activation,
                           include_preprocessing, name)
    build.__name__ = build.__qualname__ = default_name
    build.__doc__ = (f"Keras' `applications.{default_name}`: pixels in [0, 255] (the model rescales them); "
                     "`minimalistic` drops squeeze-excite and hard swish for 3x3 kernels and ReLU.")
    return build


MobileNetV3Small = _variant(_SMALL, 1024, "small", "MobileNetV3Small")
MobileNetV3Large = _variant(_LARGE, 1280, "large", "MobileNetV3Large")


def preprocess_input(x, data_format=None):
    """The input itself, as Keras' (a MobileNetV3 rescales its input inside the model)."""
    return x


decode_predictions = _common.decoder()
