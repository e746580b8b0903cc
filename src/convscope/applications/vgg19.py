"""Keras' import path `keras.applications.vgg19`."""

from .vgg import VGG19, decode_predictions, preprocess_input

__all__ = ["VGG19", "preprocess_input", "decode_predictions"]
