"""convscope: a Keras-compatible convolutional-network library on NumPy that shows its work."""

from . import backend, ops

__version__ = "0.1.0"
