"""`clone_model`: Keras' `models.clone_model`, the same structure with new layers (weights made afresh)."""

from __future__ import annotations

from .. import layers as layers_module
from ..layers import InputLayer, Lambda, Layer
from ..layers.base import runs_own_call
from .functional import Functional
from .functional_config import functional_from_config
from .sequential import Sequential
from .training import Model

_WHERE = "clone_model"


def clone_layer(layer: Layer) -> Layer:
    """Keras' default `clone_function`: a new layer of the same config (new weights); a Lambda takes the
    same function (its config names it only)."""
    if isinstance(layer, Lambda):
        return Lambda(layer.function, output_shape=layer.output_shape_argument, arguments=dict(layer.arguments),
                      name=layer.name, trainable=layer.trainable, dtype=layer.dtype)
    if isinstance(layer, (Sequential, Functional)):
        return clone_model(layer)
    return type(layer).from_config(layer.get_config())


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive: bool = False):
    """A Sequential or functional model with the same structure and names, each layer made by
    `clone_function(layer)` (default: a new layer of the same config, its weights initialized afresh, as
    Keras'); `recursive` clones the layers of nested models with it too.  `input_tensors` and `call_function`
    are not supported yet (given, they are refused by name)."""
    if not isinstance(model, Model):
        raise TypeError(f"{_WHERE}: argument `model` must be a Sequential or functional model, got "
                        f"{type(model).__name__}")
    if runs_own_call(model):
        raise TypeError(f"{_WHERE}: {type(model).__name__} '{model.name}' is a subclassed model (its own `call`), "
                        "whose structure is code: build a new instance of its class instead")
    for name, value in (("input_tensors", input_tensors), ("call_function", call_function)):
        if value is not None:
            raise ValueError(f"{_WHERE}: argument `{name}` is not supported yet, got {value!r}")
    if clone_function is not None and not callable(clone_function):
        raise TypeError(f"{_WHERE}: argument `clone_function` must be callable (a layer -> a new layer), got "
                        f"{type(clone_function).__name__}")
    make = _maker(clone_function or clone_layer, bool(recursive))
    if isinstance(model, Sequential):
        return _clone_sequential(model, make)
    originals = {layer.name: layer for layer in model.operations}
    config = dict(model.get_config(), trainable=True)     # Keras' clone is trainable, its layers keep their flags
    return functional_from_config(type(model), config, make_layer=lambda entry, name: (
        None if isinstance(originals.get(name), InputLayer) else make(originals[name])))


def _maker(clone_function, recursive: bool):
    """`clone_function` checked to return a layer; with `recursive`, a nested model cloned layer by layer."""
    def make(layer: Layer) -> Layer:
        if recursive and isinstance(layer, (Sequential, Functional)):
            return clone_model(layer, clone_function=clone_function, recursive=True)
        clone = clone_function(layer)
        if not isinstance(clone, Layer):
            raise TypeError(f"{_WHERE}: `clone_function` must return a layer, got {type(clone).__name__} for layer "
                            f"'{layer.name}'")
        return clone
    return make


def _clone_sequential(model: Sequential, make) -> Sequential:
    clone = Sequential(name=model.name)
    if model._input_layer is not None:
        clone.add(layers_module.deserialize(layers_module.serialize(model._input_layer)))
    for layer in model.layers:
        clone.add(make(layer))
    if model._input_layer is None and model.built and not clone.built:
        clone.build(model.input_shape)
    if not model.trainable:         # Keras' Sequential clone takes the model's flag
        clone.trainable = False
    return clone
