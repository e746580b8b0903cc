"""ConvNeXt Tiny/Small/Base/Large/XLarge (Liu et al., arXiv:2201.03545) as Keras 3 builds them: the same layers
(the stem and downsampling steps as nested Sequential models), names and weights.  Inputs are pixels in [0, 255]:
the model normalizes them itself (`include_preprocessing=True`), so `preprocess_input` passes its input through."""

from __future__ import annotations

import numpy as np

from .. import layers
from ..layers.convnext import LayerScale, StochasticDepth
from ..models import Sequential
from . import _common

_BASE = _common.KERAS_BASE + "convnext/"
_CONFIGS = {  # variant -> (depths, projection dims)
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)), "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)), "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
    "xlarge": ((3, 3, 27, 3), (256, 512, 1024, 2048)),
}
_SHA256 = {  # weights -> (with the top, without)
    "convnext_tiny": ("8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
                      "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    "convnext_small": ("ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
                       "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    "convnext_base": ("52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
                      "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    "convnext_large": ("070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
                       "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    "convnext_xlarge": ("c1f5ccab661354fc3a79a10fa99af82f0fbf10ec65cb894a3ae0815f17a889ee",
                        "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
}
_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
_VARIANCE = [(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2]


def convnext_block(x, projection_dim: int, drop_path_rate: float, layer_scale_init_value, name: str):
    """Depthwise 7x7 (a grouped Conv2D), LayerNorm, Dense ×4, GELU, Dense back, layer scale, stochastic depth
    (or a linear Activation), added to the input."""
    y = layers.Conv2D(projection_dim, 7, padding="same", groups=projection_dim, name=f"{name}_depthwise_conv")(x)
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_layernorm")(y)
    y = layers.Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(y)
    y = layers.Dense(projection_dim, name=f"{name}_pointwise_conv_2")(layers.Activation("gelu", name=f"{name}_gelu")(y))
    if layer_scale_init_value is not None:
        y = LayerScale(layer_scale_init_value, projection_dim, name=f"{name}_layer_scale")(y)
    if drop_path_rate:
        y = StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")(y)
    else:
        y = layers.Activation("linear", name=f"{name}_identity")(y)
    return x + y


def ConvNeXt(depths, projection_dims, drop_path_rate=0.0, layer_scale_init_value=1e-6, default_size=224,
             name="convnext", include_preprocessing=True, include_top=True, weights=None, input_tensor=None,
             input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", weights_name=None):
    """Keras' `applications.convnext.ConvNeXt`: four stages of `depths` blocks of `projection_dims` channels."""
    where = ("ConvNeXt" + {"xlarge": "XLarge"}.get(str(weights_name)[9:], str(weights_name)[9:].title())
             if weights_name in _SHA256 else "ConvNeXt")
    _common.check_arguments(where, weights, include_top, classes, input_tensor, pooling, classifier_activation)
    depths, projection_dims = list(depths), list(projection_dims)
    if len(depths) != 4 or len(projection_dims) != 4:
        raise ValueError(f"{where}: arguments `depths` and `projection_dims` must have 4 entries (the stages), got "
                         f"{depths} and {projection_dims}")
    if weights == "imagenet":
        variant = _CONFIGS.get(str(weights_name).split("convnext_")[-1])
        if variant is None or (tuple(depths), tuple(projection_dims)) != variant or weights_name not in name:
            raise ValueError(f"{where}: ImageNet weights need a ConvNeXt variant's depths, widths and a name holding "
                             f"it (e.g. 'convnext_tiny'), got depths {depths}, widths {projection_dims}, name {name!r}")
    shape = _common.input_shape_for(where, input_shape, default_size, 32, include_top, weights)
    inputs = x = layers.Input(shape=shape)
    if include_preprocessing and shape[-1] == 3:
        x = layers.Normalization(mean=_MEAN, variance=_VARIANCE, name=f"{name}_prestem_normalization")(x)
    steps = [Sequential([layers.Conv2D(projection_dims[0], 4, strides=4, name=f"{name}_stem_conv"),
                         layers.LayerNormalization(epsilon=1e-6, name=f"{name}_stem_layernorm")], name=f"{name}_stem")]
    steps += [Sequential([layers.LayerNormalization(epsilon=1e-6, name=f"{name}_downsampling_layernorm_{i}"),
                          layers.Conv2D(projection_dims[i + 1], 2, strides=2, name=f"{name}_downsampling_conv_{i}")],
                         name=f"{name}_downsampling_block_{i}") for i in range(3)]
    rates = [float(r) for r in np.linspace(0.0, drop_path_rate, sum(depths))]
    done = 0
    for stage, (step, depth, dim) in enumerate(zip(steps, depths, projection_dims)):
        x = step(x)
        for j in range(depth):
            x = convnext_block(x, dim, rates[done + j], layer_scale_init_value, f"{name}_stage_{stage}_block_{j}")
        done += depth
    if include_top:
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
        x = layers.Dense(classes, activation=classifier_activation, name=f"{name}_head_dense")(x)
    else:
        x = layers.LayerNormalization(epsilon=1e-6)(_common.top(x, False, pooling, classes, None, (None, None)))
    url = digest = None
    if weights == "imagenet":
        url = f"{_BASE}{name}{'.h5' if include_top else '_notop.h5'}"
        digest = _SHA256[weights_name][0 if include_top else 1]
    return _common.finish(inputs, x, name, weights, url, digest)


def _variant(key: str):
    default_name = f"convnext_{key}"

    def build(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name=default_name):
        depths, dims = _CONFIGS[key]
        return ConvNeXt(depths, dims, 0.0, 1e-6, 224, name, include_preprocessing, include_top, weights, input_tensor,
                        input_shape, pooling, classes, classifier_activation, weights_name=default_name)
    build.__name__ = build.__qualname__ = "ConvNeXt" + {"xlarge": "XLarge"}.get(key, key.title())
    build.__doc__ = (f"Keras' `applications.{build.__name__}`: pixels in [0, 255] (the model normalizes them), "
                     "224x224 by default.")
    return build


ConvNeXtTiny = _variant("tiny")
ConvNeXtSmall = _variant("small")
ConvNeXtBase = _variant("base")
ConvNeXtLarge = _variant("large")
ConvNeXtXLarge = _variant("xlarge")


def preprocess_input(x, data_format=None):
    """The input itself, as Keras' (a ConvNeXt normalizes its input inside the model)."""
    return x


decode_predictions = _common.decoder()
