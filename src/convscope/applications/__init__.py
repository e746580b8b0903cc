"""Keras' `applications` for the CNNs people bring: ResNet50/101/152 (and V2), MobileNet, MobileNetV2,
MobileNetV3Small/Large, DenseNet121/169/201, EfficientNetB0-B7, EfficientNetV2, ConvNeXt, InceptionV3, Xception,
InceptionResNetV2, NASNetMobile/Large, VGG16/19, built as Keras 3 builds them (the same layers, names and weight
layouts; Keras' ImageNet files load into them)."""

from . import (convnext, densenet, efficientnet, efficientnet_v2, inception_resnet_v2, inception_v3, mobilenet,
               mobilenet_v2, mobilenet_v3, nasnet, resnet, resnet50, resnet_v2, vgg16, vgg19, xception)
from .convnext import ConvNeXtBase, ConvNeXtLarge, ConvNeXtSmall, ConvNeXtTiny, ConvNeXtXLarge
from .densenet import DenseNet121, DenseNet169, DenseNet201
from .efficientnet import (EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3, EfficientNetB4,
                           EfficientNetB5, EfficientNetB6, EfficientNetB7)
from .efficientnet_v2 import (EfficientNetV2B0, EfficientNetV2B1, EfficientNetV2B2, EfficientNetV2B3, EfficientNetV2L,
                              EfficientNetV2M, EfficientNetV2S)
from .inception_resnet_v2 import InceptionResNetV2
from .inception_v3 import InceptionV3
from .mobilenet import MobileNet
from .mobilenet_v2 import MobileNetV2
from .mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from .nasnet import NASNetLarge, NASNetMobile
from .resnet import ResNet50, ResNet101, ResNet152
from .resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from .vgg import VGG16, VGG19
from .xception import Xception

__all__ = [
    "ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2", "MobileNet", "MobileNetV2",
    "DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1", "EfficientNetB2",
    "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "InceptionV3",
    "Xception", "VGG16", "VGG19", "MobileNetV3Small", "MobileNetV3Large", "ConvNeXtTiny", "ConvNeXtSmall",
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge", "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2",
    "EfficientNetV2B3", "EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L", "InceptionResNetV2", "NASNetMobile",
    "NASNetLarge",
    "resnet", "resnet50", "resnet_v2", "mobilenet", "mobilenet_v2", "densenet", "efficientnet", "inception_v3",
    "xception", "vgg16", "vgg19", "mobilenet_v3", "convnext", "efficientnet_v2", "inception_resnet_v2", "nasnet",
]
