"""A subclassed model (a `Model` subclass that writes `call`) seen through one call of it.

A Sequential model is a chain of its layers; a subclassed model is code, and which of its layers its `call`
runs, on what, is known only by running it.  `layer_calls` runs it once in inference mode with every eager layer
call noted (`layers.base.noting_calls`); analysis reads each layer's input shape from its call (not from the
layer before it in `layers`), the drawings each layer's output.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np

from .. import backend
from ..layers.autodiff import call_layer
from ..layers.base import Layer, noting_calls, runs_own_call

__all__ = ["is_subclassed", "layer_calls", "is_chain", "zero_sample"]


def is_subclassed(model) -> bool:
    """True for a model that runs its own `call` (not Sequential's chain or a functional graph)."""
    from .training import Model
    return isinstance(model, Model) and runs_own_call(model)


def zero_sample(model) -> np.ndarray:
    """One sample of zeros of the model's input shape (it must be built)."""
    return np.zeros((1,) + tuple(model.input_shape[1:]), dtype=model.dtype)


def layer_calls(model, sample: np.ndarray, where: str) -> List[Tuple[Layer, Any, Any]]:
    """(layer, its input, its output) for each of `model.layers`, in that order, from one inference call of
    the model on `sample` (a batch).  A ValueError names a layer the call runs twice, or not at all: the
    explanations and drawings give each layer one row."""
    own = {id(layer) for layer in model.layers}
    with backend.no_backward(), noting_calls() as calls:
        call_layer(model, sample, False)
    found = {}
    for layer, inputs, outputs in calls:
        if id(layer) not in own:
            continue                # a layer inside one of the model's layers, or one it does not hold
        if id(layer) in found:
            raise ValueError(f"{where}: {model._describe()}'s call runs its layer '{layer.name}' more than once; "
                             "layer-by-layer explanations and drawings of a subclassed model need one call per "
                             "layer (a functional model lists each call)")
        found[id(layer)] = (layer, inputs, outputs)
    missing = [layer.name for layer in model.layers if id(layer) not in found]
    if missing:
        raise ValueError(f"{where}: {model._describe()}'s call does not run its layer(s) {missing} on arrays "
                         "(layer-by-layer explanations and drawings see only the layers its call runs)")
    return [found[id(layer)] for layer in model.layers]


def is_chain(calls, sample) -> bool:
    """Whether the calls ran one after another in `layers` order, each on the output of the one before (the
    first on the model's input), as a Sequential model's layers run."""
    previous = sample
    for _, inputs, outputs in calls:
        if inputs is not previous:
            return False
        previous = outputs
    return True
