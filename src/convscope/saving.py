"""Keras 3's `keras.saving` namespace: the custom-object registry and whole-model files."""

from ._custom_objects import (CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name,
                              get_registered_object, register_keras_serializable)
from .models import load_model


def save_model(model, filepath, overwrite: bool = True, **kwargs):
    """`model.save(filepath)` (Keras' `saving.save_model`); Keras' other arguments (`zipped`, ...) are not taken."""
    if kwargs:
        raise TypeError(f"save_model: unexpected arguments {sorted(kwargs)}")
    return model.save(filepath, overwrite=overwrite)


__all__ = ["register_keras_serializable", "get_custom_objects", "custom_object_scope", "CustomObjectScope",
           "get_registered_name", "get_registered_object", "load_model", "save_model"]
