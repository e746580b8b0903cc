"""Keras' `Wrapper`: a layer that holds another (`layer`) and adds to what it does (TimeDistributed,
SpectralNormalization).  The wrapped layer's weights are the wrapper's; Keras' files keep them under
`<wrapper>/layer/vars` and the wrapper's own tracked variables (`wrapper_variables`) under `<wrapper>/vars`."""

from __future__ import annotations

from typing import Any, Dict, List

from .base import Layer, unique_variables


class Wrapper(Layer):
    """The base of the wrappers: the wrapped layer checked, its weights and `trainable` shared, its config nested."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(f"{self._describe()}: argument `layer` must be a layer instance, got "
                            f"{type(layer).__name__}")
        self.layer = layer

    def _children(self) -> List[Layer]:
        """The wrapped layer, whose `trainable` follows the wrapper's once it is set (not the constructor's
        `trainable`, as in Keras: the wrapped layer's own config keeps its own)."""
        return [self.layer] if "layer" in vars(self) else []

    def build(self, input_shape) -> None:
        """The wrapped layer built for `input_shape` (Keras' Wrapper.build); a subclass adds its own weights."""
        if not self.layer.built:
            self.layer.build_from_shape(input_shape)
        self.built = True

    @property
    def wrapper_variables(self) -> list:
        """The variables Keras tracks on the wrapper itself, trainable first (stored under `<wrapper>/vars`): its
        own weights (a subclass' `add_weight`)."""
        own = list(self._variables)
        return [v for v in own if v.trainable] + [v for v in own if not v.trainable]

    @property
    def weights(self):
        """Keras' order: the wrapper's tracked variables, trainable first, then the wrapped layer's others."""
        own = self.wrapper_variables
        return unique_variables([v for v in own if v.trainable] + [v for v in own if not v.trainable]
                                + list(self.layer.weights))

    @property
    def trainable_weights(self):
        """The wrapped layer's trainable weights and the wrapper's own, whatever the wrapper's constructor was
        given for `trainable` (Keras trains them so: a `trainable` set later reaches the wrapped layer)."""
        trainable = {id(v) for v in self.layer.trainable_weights}
        trainable.update(id(v) for v in self._variables if v.trainable and self.trainable)
        return [v for v in self.weights if id(v) in trainable]

    def get_config(self) -> Dict[str, Any]:
        from . import serialize
        config = super().get_config()
        config["layer"] = serialize(self.layer)
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None):
        from . import deserialize
        config = dict(config)
        layer = config.pop("layer", None)
        if not isinstance(layer, dict):
            raise ValueError(f"{cls.__name__}.from_config: the config must hold 'layer', a serialized layer, got "
                             f"{layer!r}")
        return cls(deserialize(layer, custom_objects), **config)
