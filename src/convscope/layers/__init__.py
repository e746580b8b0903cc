"""Keras-compatible layers, plus `serialize`/`deserialize` and the class-name registry `LAYER_CLASSES`."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .._custom_objects import custom_object_scope, get_registered_name, lookup

from . import convolutional, core  # Keras 2 import paths
from .activation import ELU, Activation, LeakyReLU, ReLU, Softmax
from .activity_regularization import ActivityRegularization
from .adaptive_pooling import (AdaptiveAveragePooling1D, AdaptiveAveragePooling2D, AdaptiveAveragePooling3D,
                               AdaptiveMaxPooling1D, AdaptiveMaxPooling2D, AdaptiveMaxPooling3D)
from .augmentation import RandomBrightness, RandomContrast, RandomCrop, RandomFlip
from .augmentation_affine import (RandomElasticTransform, RandomPerspective, RandomRotation, RandomShear,
                                  RandomTranslation, RandomZoom)
from .augmentation_color import (AutoContrast, ContrastLimitedAdaptiveHistogramEqualization, Equalization,
                                 RandomColorDegeneration, RandomColorJitter, RandomErasing, RandomGaussianBlur,
                                 RandomGrayscale, RandomHue, RandomInvert, RandomPosterization, RandomSaturation,
                                 RandomSharpness, Solarization)
from .augmentation_composite import AugMix, RandAugment
from .augmentation_mix import CutMix, MixUp
from .pipeline import Pipeline
from .base import Layer, Variable
from .conv1d import Conv1D, Convolution1D
from .conv1d_family import (Conv1DTranspose, Convolution1DTranspose, DepthwiseConv1D, SeparableConv1D,
                            SeparableConvolution1D)
from .conv2d import Conv2D, Convolution2D
from .conv2d_transpose import Conv2DTranspose, Convolution2DTranspose
from .conv3d import Conv3D, Conv3DTranspose, Convolution3D, Convolution3DTranspose
from .convnext import LayerScale, StochasticDepth
from .cropping import Cropping1D, Cropping2D
from .dense import Dense
from .depthwise_conv2d import DepthwiseConv2D
from .dropout import Dropout
from .embedding import Embedding
from .inception_resnet import CustomScaleLayer
from .input_layer import Input, InputLayer
from .input_spec import InputSpec
from .lambda_layer import Lambda
from .group_normalization import GroupNormalization
from .layer_normalization import LayerNormalization
from .dot import Dot, dot
from .einsum_dense import EinsumDense
from .multi_head_attention import MultiHeadAttention
from .attention import AdditiveAttention, Attention
from .recurrent import GRU, GRUCell, LSTM, LSTMCell, RNN, SimpleRNN, SimpleRNNCell
from .bidirectional import Bidirectional
from .merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average,
                      concatenate, maximum, minimum, multiply, subtract)
from .noise import AlphaDropout, GaussianDropout, GaussianNoise
from .normalization import BatchNormalization
from .permute import Identity, Permute
from .prelu import PReLU
from .preprocessing import CenterCrop, Normalization, Rescaling, Resizing
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                      GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from .pooling3d import (AveragePooling3D, AvgPool3D, GlobalAveragePooling3D, GlobalAvgPool3D, GlobalMaxPool3D,
                        GlobalMaxPooling3D, MaxPool3D, MaxPooling3D)
from .pooling1d import (AveragePooling1D, AvgPool1D, GlobalAveragePooling1D, GlobalAvgPool1D, GlobalMaxPool1D,
                        GlobalMaxPooling1D, MaxPool1D, MaxPooling1D)
from .reshaping import Flatten, Reshape, ZeroPadding2D
from .reshaping1d import RepeatVector, UpSampling1D, ZeroPadding1D
from .reshaping3d import Cropping3D, UpSampling3D, ZeroPadding3D
from .separable_conv2d import SeparableConv2D, SeparableConvolution2D
from .spatial_dropout import SpatialDropout1D, SpatialDropout2D, SpatialDropout3D
from .unit_normalization import UnitNormalization
from .rms_normalization import RMSNormalization
from .time_distributed import TimeDistributed
from .spectral_normalization import SpectralNormalization
from .wrapper import Wrapper
from .upsampling import UpSampling2D

__all__ = [
    "Layer", "Variable", "Input", "InputSpec", "UpSampling2D", "InputLayer", "Conv2D", "Convolution2D", "Dense",
    "MaxPooling2D",
    "MaxPool2D", "AveragePooling2D", "AvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D",
    "GlobalAveragePooling2D", "GlobalAvgPool2D", "Flatten", "Reshape", "ZeroPadding2D", "Dropout",
    "BatchNormalization", "Activation", "ReLU", "Softmax", "LAYER_CLASSES", "serialize", "deserialize",
    "convolutional", "core",
    "DepthwiseConv2D", "SeparableConv2D", "SeparableConvolution2D", "Conv2DTranspose", "Convolution2DTranspose",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "Dot", "dot",
    "Rescaling", "Normalization", "Resizing", "LayerNormalization", "Permute", "Identity",
    "Conv1D", "Convolution1D", "MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D", "GlobalMaxPooling1D",
    "GlobalMaxPool1D", "GlobalAveragePooling1D", "GlobalAvgPool1D", "UpSampling1D", "ZeroPadding1D", "Cropping1D",
    "Cropping2D", "SpatialDropout2D", "LayerScale", "StochasticDepth",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop", "RandomContrast",
    "RandomBrightness", "Lambda", "LeakyReLU", "ELU", "PReLU", "GaussianNoise", "GaussianDropout",
    "SpatialDropout1D", "GroupNormalization", "CenterCrop", "UnitNormalization", "RMSNormalization", "TimeDistributed",
    "SpectralNormalization", "Wrapper", "RepeatVector", "EinsumDense",
    "MultiHeadAttention", "Attention", "AdditiveAttention", "RNN", "SimpleRNN", "LSTM", "GRU", "SimpleRNNCell",
    "LSTMCell", "GRUCell", "Bidirectional",
    "ActivityRegularization",
    "AlphaDropout", "DepthwiseConv1D", "SeparableConv1D", "SeparableConvolution1D", "Conv1DTranspose",
    "Convolution1DTranspose", "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveMaxPooling1D",
    "AdaptiveMaxPooling2D", "CustomScaleLayer", "Conv3D", "Convolution3D", "Conv3DTranspose",
    "Convolution3DTranspose", "MaxPooling3D", "MaxPool3D", "AveragePooling3D", "AvgPool3D", "GlobalMaxPooling3D",
    "GlobalMaxPool3D", "GlobalAveragePooling3D", "GlobalAvgPool3D", "UpSampling3D", "ZeroPadding3D", "Cropping3D",
    "SpatialDropout3D", "Embedding", "RandomGrayscale", "RandomInvert", "Solarization", "RandomPosterization",
    "RandomColorDegeneration", "RandomSharpness", "RandomSaturation", "RandomHue", "RandomColorJitter",
    "Equalization", "AutoContrast", "ContrastLimitedAdaptiveHistogramEqualization", "RandomShear",
    "RandomPerspective", "RandomGaussianBlur", "RandomErasing",
    "MixUp", "CutMix", "RandAugment", "AugMix", "Pipeline", "RandomElasticTransform", "AdaptiveAveragePooling3D",
    "AdaptiveMaxPooling3D",
]

# Class name (as Keras writes it in configs, aliases included) -> class.
LAYER_CLASSES: Dict[str, type] = {
    cls.__name__: cls for cls in (
        InputLayer, Conv2D, Dense, MaxPooling2D, AveragePooling2D, GlobalMaxPooling2D,
        GlobalAveragePooling2D, Flatten, Reshape, ZeroPadding2D, Dropout, BatchNormalization,
        Activation, ReLU, Softmax, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate,
        UpSampling2D, Conv1D, MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D, GlobalAveragePooling1D,
        UpSampling1D, ZeroPadding1D, Cropping1D, Cropping2D, SpatialDropout2D)
}
LAYER_CLASSES.update({cls.__name__: cls for cls in (DepthwiseConv2D, SeparableConv2D, Conv2DTranspose)})
LAYER_CLASSES.update({"SeparableConvolution2D": SeparableConv2D, "Convolution2DTranspose": Conv2DTranspose})
LAYER_CLASSES.update({cls.__name__: cls for cls in (Rescaling, Normalization, Resizing, LayerNormalization,
                                                     Permute, Identity)})
LAYER_CLASSES.update({cls.__name__: cls for cls in (LayerScale, StochasticDepth)})   # ConvNeXt's helpers
LAYER_CLASSES["Embedding"] = Embedding
LAYER_CLASSES["CustomScaleLayer"] = CustomScaleLayer                                  # InceptionResNetV2's
LAYER_CLASSES.update({cls.__name__: cls for cls in (Conv3D, Conv3DTranspose, MaxPooling3D, AveragePooling3D,
                                                     GlobalMaxPooling3D, GlobalAveragePooling3D, UpSampling3D,
                                                     ZeroPadding3D, Cropping3D, SpatialDropout3D)})
LAYER_CLASSES.update({"Convolution3D": Conv3D, "Convolution3DTranspose": Conv3DTranspose, "MaxPool3D": MaxPooling3D,
                      "AvgPool3D": AveragePooling3D, "GlobalMaxPool3D": GlobalMaxPooling3D,
                      "GlobalAvgPool3D": GlobalAveragePooling3D})
LAYER_CLASSES.update({cls.__name__: cls for cls in (LeakyReLU, ELU, PReLU, GaussianNoise, GaussianDropout,
                                                     SpatialDropout1D, GroupNormalization, CenterCrop,
                                                     UnitNormalization, ActivityRegularization, AlphaDropout,
                                                     DepthwiseConv1D, SeparableConv1D, Conv1DTranspose,
                                                     AdaptiveAveragePooling1D, AdaptiveAveragePooling2D,
                                                     AdaptiveMaxPooling1D, AdaptiveMaxPooling2D,
                                                     AdaptiveAveragePooling3D, AdaptiveMaxPooling3D)})
LAYER_CLASSES.update({"SeparableConvolution1D": SeparableConv1D, "Convolution1DTranspose": Conv1DTranspose})
LAYER_CLASSES["Dot"] = Dot
LAYER_CLASSES["RMSNormalization"] = RMSNormalization
LAYER_CLASSES["TimeDistributed"] = TimeDistributed
LAYER_CLASSES["SpectralNormalization"] = SpectralNormalization
LAYER_CLASSES["RepeatVector"] = RepeatVector
LAYER_CLASSES["EinsumDense"] = EinsumDense
LAYER_CLASSES["MultiHeadAttention"] = MultiHeadAttention
LAYER_CLASSES["Attention"] = Attention
LAYER_CLASSES["AdditiveAttention"] = AdditiveAttention
LAYER_CLASSES.update({cls.__name__: cls for cls in (RNN, SimpleRNN, LSTM, GRU, SimpleRNNCell, LSTMCell, GRUCell,
                                                     Bidirectional)})
LAYER_CLASSES["Lambda"] = Lambda        # known, so that a file holding one is refused by name (code: `from_config`)
LAYER_CLASSES.update({cls.__name__: cls for cls in (RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
                                                     RandomCrop, RandomContrast, RandomBrightness, RandomGrayscale,
                                                     RandomInvert, Solarization, RandomPosterization,
                                                     RandomColorDegeneration, RandomSharpness, RandomSaturation,
                                                     RandomHue, RandomColorJitter, Equalization, AutoContrast,
                                                     ContrastLimitedAdaptiveHistogramEqualization,
                                                     RandomShear, RandomPerspective, RandomGaussianBlur,
                                                     RandomErasing, MixUp, CutMix, RandAugment, AugMix,
                                                     Pipeline, RandomElasticTransform)})
LAYER_CLASSES.update({"Convolution2D": Conv2D, "MaxPool2D": MaxPooling2D, "AvgPool2D": AveragePooling2D,
                      "GlobalMaxPool2D": GlobalMaxPooling2D, "GlobalAvgPool2D": GlobalAveragePooling2D})
LAYER_CLASSES.update({"Convolution1D": Conv1D, "MaxPool1D": MaxPooling1D, "AvgPool1D": AveragePooling1D,
                      "GlobalMaxPool1D": GlobalMaxPooling1D, "GlobalAvgPool1D": GlobalAveragePooling1D})

# Keys Keras 2/3 write into layer configs for features convscope does not have, with the
# values that mean "feature off" (None: any value, the key only tunes a feature that is off).
_IGNORED_KEYS = {
    "sparse": (None, False), "ragged": (None, False), "optional": (None, False), "input_tensor": (None,),
    "synchronized": None,  # one device: synchronized BN is plain BN
    "renorm": (None, False), "renorm_clipping": (None,), "renorm_momentum": None,
    "lora_rank": (None, 0), "lora_alpha": (None,), "quantization_config": (None,), "autocast": None,
}


# A model held as a layer, as Keras writes it: (module, registered_name)
_KERAS_MODEL_MODULES = {"Sequential": ("keras", None), "Functional": ("keras.src.models.functional", "Functional")}


def serialize(layer: Layer) -> Dict[str, Any]:
    """Keras' layer dict {"module", "class_name", "config", "registered_name"}, which Keras 3 reads too."""
    if not isinstance(layer, Layer):
        raise TypeError(f"layers.serialize: argument `layer` must be a Layer, got {layer!r}")
    cls = type(layer)
    if hasattr(cls, "keras_module"):            # an operation (`x * 0.5`, layers/operations.py)
        module, registered = cls.keras_module, cls.keras_registered_name
    elif cls.__module__.startswith("convscope.models.") and cls.__name__ in _KERAS_MODEL_MODULES:   # nested model
        module, registered = _KERAS_MODEL_MODULES[cls.__name__]
    elif cls.__module__.startswith("convscope."):
        module, registered = "keras.layers", None
    else:                                       # a custom layer, as Keras writes it (registered: "package>name")
        module, registered = (None if cls.__module__ == "__main__" else cls.__module__), get_registered_name(cls)
    return {"module": module, "class_name": cls.__name__, "config": layer.get_config(),
            "registered_name": registered}


def _normalize_config(class_name: str, config: Dict[str, Any]) -> Dict[str, Any]:
    """Keras 2/3 spellings -> convscope constructor arguments."""
    config = dict(config)
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # Keras 3: {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        config["dtype"] = (dtype.get("config") or {}).get("name")
    for key, harmless in _IGNORED_KEYS.items():
        if key in config and (class_name != "InputLayer" or key not in ("sparse", "ragged")):
            value = config.pop(key)
            if harmless is not None and value not in harmless:
                raise ValueError(f"layers.deserialize: {class_name} config has {key}={value!r}, "
                                 f"which convscope does not support")
    if class_name != "InputLayer" and "batch_shape" in config:
        config["batch_input_shape"] = config.pop("batch_shape")
    return config


def deserialize(config: Dict[str, Any], custom_objects: Optional[Dict[str, type]] = None) -> Layer:
    """A layer from Keras' dict (as `serialize` or Keras' `to_json()` write it)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise TypeError(f"layers.deserialize: argument `config` must be a dict with 'class_name' and "
                        f"'config', got {config!r}")
    class_name = config["class_name"]
    if not isinstance(class_name, str):
        raise ValueError(f"layers.deserialize: 'class_name' must be a string naming a layer class, got {class_name!r}")
    if str(config.get("module") or "").startswith("keras.src.ops."):   # `x * 0.5`: an operation, not a layer
        from .operations import deserialize as deserialize_operation
        return deserialize_operation(config)
    cls = lookup(class_name, config.get("registered_name"), custom_objects) or LAYER_CLASSES.get(class_name)
    if cls is None:
        classes = dict(LAYER_CLASSES, **(custom_objects or {}))
        raise ValueError(f"layers.deserialize: unknown layer class {class_name!r}; expected one of "
                         f"{sorted(classes)}")
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"layers.deserialize: the custom object for layer class {class_name!r} is {cls!r}, not a "
                         "Layer subclass")
    arguments = _normalize_config(class_name, config.get("config") or {})
    if not custom_objects:
        return cls.from_config(arguments)
    with custom_object_scope(custom_objects):       # the layers a layer's config holds (a Pipeline's) find them
        return cls.from_config(arguments)
