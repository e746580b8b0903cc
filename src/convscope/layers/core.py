"""Keras 2's import path `keras.layers.core`: re-exports only."""

from .activation import Activation
from .dense import Dense
from .dropout import Dropout
from .lambda_layer import Lambda
from .reshaping import Flatten, Reshape

__all__ = ["Dense", "Dropout", "Flatten", "Reshape", "Activation", "Lambda"]
