"""ResNet50V2, ResNet101V2 and ResNet152V2 (pre-activation ResNets) as Keras 3 builds them
(`keras.applications.resnet_v2`); inputs scaled to [-1, 1] by `preprocess_input`."""

from __future__ import annotations

from . import _common
from .resnet import variant


ResNet50V2 = variant("resnet50v2", "Keras' `applications.ResNet50V2`: 25.6 M parameters with the top.")
ResNet101V2 = variant("resnet101v2", "Keras' `applications.ResNet101V2`.")
ResNet152V2 = variant("resnet152v2", "Keras' `applications.ResNet152V2`.")

preprocess_input = _common.preprocessor("tf", "resnet_v2.preprocess_input")
decode_predictions = _common.decoder()
