"""Keras' legacy `keras.preprocessing` path: `convscope.preprocessing.image` (ImageDataGenerator and the
image file functions)."""

from . import image

__all__ = ["image"]
