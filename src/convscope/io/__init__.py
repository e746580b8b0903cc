"""Saving and loading: whole models in one `.convscope` zip, weights in `.weights.npz`."""

from .saving import InvalidFileError, load_model, load_weights, save_model, save_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "InvalidFileError"]
