"""Keras' `keras.utils`: `to_categorical`, `normalize`, `set_random_seed` (and `plot_model`, `model_to_dot`);
`PyDataset`/`Sequence`, `image_dataset_from_directory`, `load_img`, `img_to_array`, `array_to_img`, `save_img`;
the custom-object registry (`register_keras_serializable`, `get_custom_objects`, `custom_object_scope`);
`get_file` (a download cached, checked and extracted safely), `clear_session` and `Progbar`; `pad_sequences`,
`pack_x_y_sample_weight`/`unpack_x_y_sample_weight`, `is_keras_tensor`, `get_source_inputs`, `standardize_dtype`."""

from __future__ import annotations

from .. import _rng
from .._custom_objects import (CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name,
                               get_registered_object, register_keras_serializable)
from .data_utils import (get_source_inputs, is_keras_tensor, pack_x_y_sample_weight, pad_sequences,
                         standardize_dtype, unpack_x_y_sample_weight)
from .np_utils import normalize, to_categorical
from .progbar import Progbar
from .py_dataset import PyDataset, Sequence

__all__ = ["to_categorical", "normalize", "set_random_seed", "plot_model", "model_to_dot", "profile",
           "PyDataset", "Sequence", "image_dataset_from_directory", "load_img", "img_to_array", "array_to_img",
           "save_img", "register_keras_serializable", "get_custom_objects", "custom_object_scope",
           "CustomObjectScope", "get_registered_name", "get_registered_object", "get_file", "clear_session", "Progbar",
           "pad_sequences", "pack_x_y_sample_weight", "unpack_x_y_sample_weight", "is_keras_tensor",
           "get_source_inputs", "standardize_dtype"]


def set_random_seed(seed: int) -> None:
    """Seed every random draw in convscope (initializers, dropout, shuffling), NumPy's and Python's."""
    _rng.set_seed(seed)


def __getattr__(name: str):
    """`plot_model`/`model_to_dot` and `profile` load their code only when asked for."""
    if name in ("plot_model", "model_to_dot"):
        from . import vis_utils
        return getattr(vis_utils, name)
    if name in ("load_img", "img_to_array", "array_to_img", "save_img"):
        from . import image_utils
        return getattr(image_utils, name)
    if name == "image_dataset_from_directory":
        from .image_dataset import image_dataset_from_directory
        return image_dataset_from_directory
    if name in ("get_file", "extract_archive", "validate_file"):
        from . import file_utils
        return getattr(file_utils, name)
    if name == "clear_session":
        from ..backend import clear_session
        return clear_session
    if name in ("profile", "ProfileResult", "LayerTiming"):
        from . import profiling
        return getattr(profiling, name)
    raise AttributeError(f"module 'convscope.utils' has no attribute {name!r}")
