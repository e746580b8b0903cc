"""ResNet50V2, ResNet101V2 and ResNet152V2 (pre-activation ResNets) as Keras 3 builds them
(`keras.applications.resnet_v2`); inputs scaled to [-1, 1] by `preprocess_input`."""

from __future__ import annotations

from . import _common
from .resnet import _resnet


def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="resnet50v2"):
    """Keras' `applications.ResNet50V2`: 25.6 M parameters with the top."""
    return _resnet("resnet50v2", include_top, weights, input_tensor, input_shape, pooling, classes,
                   classifier_activation, name)


def ResNet101V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet101v2"):
    """Keras' `applications.ResNet101V2`."""
    return _resnet("resnet101v2", include_top, weights, input_tensor, input_shape, pooling, classes,
                   classifier_activation, name)


def ResNet152V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet152v2"):
    """Keras' `applications.ResNet152V2`."""
    return _resnet("resnet152v2", include_top, weights, input_tensor, input_shape, pooling, classes,
                   classifier_activation, name)


def preprocess_input(x, data_format=None):
    """ResNet V2's inputs: RGB images of 0-255 scaled to [-1, 1] (Keras' "tf" mode), a new array."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"resnet_v2.preprocess_input: argument `data_format` must be 'channels_last' (or None), "
                         f"got {data_format!r}")
    return _common.preprocess_input(x, "tf", "resnet_v2.preprocess_input")


def decode_predictions(preds, top=5):
    """Each row's `top` ImageNet classes as (WordNet id, name, score), best first (Keras')."""
    return _common.decode_predictions(preds, top)
