"""Saving and loading: whole models in convscope's `.convscope` zip or Keras' `.keras` / legacy `.h5`
files (`keras_files`), weights in `.weights.npz` or Keras' `.weights.h5` (`h5`); ONNX export of the
inference graph (`onnx_export`, the `onnx` package imported when used)."""

from .onnx_export import export_onnx, to_onnx
from .saving import InvalidFileError, load_model, load_weights, save_model, save_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "InvalidFileError", "export_onnx", "to_onnx"]
