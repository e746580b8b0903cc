"""Models: `Sequential` (structure, summary, weights, config) on `Model` (training)."""

from .cloning import clone_model
from .sequential import Sequential, model_from_config, model_from_json
from .training import Model

__all__ = ["Model", "Sequential", "clone_model", "model_from_config", "model_from_json", "load_model"]


def _register_model_classes() -> None:
    """A model is a layer in configs too (a Pipeline's, `layers.deserialize`'s): its class names known there."""
    from .. import layers as layers_module
    from .functional import Functional
    layers_module.LAYER_CLASSES.setdefault("Sequential", Sequential)
    layers_module.LAYER_CLASSES.setdefault("Functional", Functional)


_register_model_classes()


def load_model(filepath, custom_objects=None, compile=True):
    """Keras' `models.load_model`: restore a model saved by `model.save` (see `convscope.io`)."""
    from ..io.saving import load_model as _load_model  # io sits above models; imported when used

    return _load_model(filepath, custom_objects=custom_objects, compile=compile)
