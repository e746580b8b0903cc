"""Keras 2's import path `keras.layers.convolutional` (as seed 000 uses): re-exports only."""

from .conv2d import Conv2D, Convolution2D
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                      GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from .reshaping import ZeroPadding2D

__all__ = ["Conv2D", "Convolution2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "GlobalMaxPooling2D", "GlobalMaxPool2D", "GlobalAveragePooling2D", "GlobalAvgPool2D",
           "ZeroPadding2D"]
