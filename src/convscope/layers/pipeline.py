"""Keras 3's `Pipeline`: a list of layers applied in turn, as one layer (a preprocessing or augmentation chain
that a model or a data pipeline uses whole).

Called alone it runs in training mode (Keras' `call(inputs, training=True)`: its augmentation layers augment);
in a model, or inside another layer's call, it takes that call's `training`.  It writes `call`, so a model
differentiates it on the tape, with its layers' weights as its own.  Its config is Keras': the serialized
layers and the name, nothing else.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..ops.tape import is_traced
from . import graph
from .augmentation import augmenting
from .autodiff import NOT_GIVEN
from .base import Layer, Shape


class Pipeline(Layer):
    """`layers` applied in order to the inputs (`training` passed to each)."""

    def __init__(self, layers, name=None):
        super().__init__(name=name)
        where = self._describe()
        if not isinstance(layers, (list, tuple)) or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError(f"{where}: argument `layers` must be a list of layers, got {layers!r}")
        self._pipeline_layers = list(layers)

    @property
    def layers(self):
        return self._pipeline_layers

    TRAINING_DEFAULT = True         # Keras' `call(inputs, training=True)`

    def __call__(self, inputs, training=NOT_GIVEN):
        """Keras' rule for `training` (as passed, else the enclosing call's, else True).  One image (rank 3) or
        Keras' dict `{"images", "labels"}` goes through each layer as it is (augmentation layers take them)."""
        if graph.is_symbolic(inputs):
            return super().__call__(inputs)
        if isinstance(inputs, dict) or (not is_traced(inputs) and np.ndim(inputs) == 3):
            return self.call(inputs, training=augmenting(training))
        return super().__call__(inputs, training=training)

    def call(self, inputs, training=True):
        """Each layer in turn, given `training` unless it is None (then each takes its own default, as Keras')."""
        for layer in self._pipeline_layers:
            inputs = layer(inputs) if training is None else layer(inputs, training=training)
        return inputs

    def build(self, input_shape: Shape) -> None:
        """Builds its layers in turn, each for the shape the one before it gives (their weights exist before a
        file's are read into them, as Keras builds them)."""
        for layer in self._pipeline_layers:
            input_shape = layer.build_from_shape(input_shape) if not layer.built else \
                layer.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        for layer in self._pipeline_layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def get_config(self) -> Dict[str, Any]:
        from . import serialize
        return {"layers": [serialize(layer) for layer in self._pipeline_layers], "name": self.name}

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> "Pipeline":
        from . import deserialize
        layers = config.get("layers") if isinstance(config, dict) else None
        if not isinstance(layers, (list, tuple)):
            raise ValueError(f"Pipeline.from_config: the config must hold 'layers', a list of serialized layers, got "
                             f"{layers!r}")
        return cls([deserialize(layer, custom_objects) for layer in layers], name=config.get("name"))
