"""Keras' import path `keras.applications.vgg16`."""

from .vgg import VGG16, decode_predictions, preprocess_input

__all__ = ["VGG16", "preprocess_input", "decode_predictions"]
