"""Keras' `Bidirectional(layer, merge_mode="concat", backward_layer=None)`: a recurrent layer run forwards and a copy
of it run backwards (`go_backwards`) over the same sequences, their outputs merged ("concat", "sum", "ave", "mul",
or None for both).  The backward sequence is flipped back in time before merging, as Keras does; with
`return_state` the forward states come before the backward ones.  Keras' files keep the two layers' weights under
`forward_layer` and `backward_layer`.
"""

from __future__ import annotations

from typing import Any, Dict, List

from .. import ops
from .autodiff import NOT_GIVEN
from .base import Layer
from .recurrent import RNN, refuse_state_and_mask
from .spec import LayerSpec

_MERGE_MODES = ("sum", "mul", "ave", "concat", None)


def _renamed(layer, prefix: str, **changes):
    """A fresh copy of `layer` from its config, named `prefix` + its name (without that prefix already)."""
    from . import deserialize, serialize
    entry = serialize(layer)
    name = layer.name[len(prefix):] if layer.name.startswith(prefix) else layer.name
    entry["config"].update(name=prefix + name, **changes)
    return deserialize(entry)


class Bidirectional(Layer):
    """Keras' Bidirectional wrapper of a recurrent layer (see the module)."""

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        for arg, value in (("layer", layer), ("backward_layer", backward_layer)):
            if value is not None and not isinstance(value, RNN):
                raise TypeError(f"{where}: argument `{arg}` must be a recurrent layer (SimpleRNN, LSTM, GRU, RNN), "
                                f"got {type(value).__name__}")
        if layer is None:
            raise TypeError(f"{where}: argument `layer` must be a recurrent layer, got None")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"{where}: argument `merge_mode` must be one of {_MERGE_MODES}, got {merge_mode!r}")
        if weights is not None:
            raise ValueError(f"{where}: argument `weights` is not supported; call set_weights() once it is built")
        self.merge_mode = merge_mode
        self.forward_layer = _renamed(layer, "forward_", zero_output_for_mask=layer.return_sequences)
        self.backward_layer = (_renamed(layer, "backward_", go_backwards=not layer.go_backwards,
                                        zero_output_for_mask=layer.return_sequences)
                               if backward_layer is None else backward_layer)
        if (self.forward_layer.return_sequences, self.forward_layer.return_state) != (
                self.backward_layer.return_sequences, self.backward_layer.return_state):
            raise ValueError(f"{where}: `layer` and `backward_layer` must have the same return_sequences and "
                             "return_state")
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(f"{where}: `layer` and `backward_layer` must have different go_backwards, got "
                             f"{self.forward_layer.go_backwards} for both")
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state

    def __call__(self, inputs, initial_state=None, training=NOT_GIVEN, mask=None):
        """Keras' call; `initial_state` and Keras' `mask` are refused by name (not supported yet)."""
        refuse_state_and_mask(self, initial_state, mask)
        return super().__call__(inputs, training)

    def keras_sublayers(self) -> List[tuple]:
        """The two layers, where Keras' files keep their weights."""
        return [("forward_layer", self.forward_layer), ("backward_layer", self.backward_layer)]

    def describe(self):
        """The forward layer's description, op "bidirectional" and `inner` that layer: twice its numbers."""
        inner = self.forward_layer.describe()
        if inner.kind != "recurrent":
            return super().describe()
        return LayerSpec(kind="recurrent", op="Bidirectional", filters=inner.filters, size=inner.size,
                         use_bias=inner.use_bias, inner=self.forward_layer)

    def build(self, input_shape) -> None:
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.build_from_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = shape[1:] if self.return_state else []
        output = shape[0] if self.return_state else shape
        if self.merge_mode == "concat":
            output = tuple(output[:-1]) + (None if output[-1] is None else 2 * output[-1],)
        outputs = [output, output] if self.merge_mode is None else [output]
        if self.return_state:
            return outputs + list(states) + list(states)
        return outputs if self.merge_mode is None else output

    def call(self, inputs, training=False):
        y = self.forward_layer(inputs, training=training)
        y_rev = self.backward_layer(inputs, training=training)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = ops.flip(y_rev, axis=1)
        if self.merge_mode == "concat":
            outputs = [ops.concatenate([y, y_rev], axis=-1)]
        elif self.merge_mode == "sum":
            outputs = [ops.add(y, y_rev)]
        elif self.merge_mode == "ave":
            outputs = [ops.divide(ops.add(y, y_rev), 2.0)]
        elif self.merge_mode == "mul":
            outputs = [ops.multiply(y, y_rev)]
        else:
            outputs = [y, y_rev]
        if len(outputs) == 1 and not states:
            return outputs[0]
        return outputs + states

    def get_config(self) -> Dict[str, Any]:
        from . import serialize
        config = super().get_config()
        config.update({"merge_mode": self.merge_mode, "layer": serialize(self.forward_layer),
                       "backward_layer": serialize(self.backward_layer)})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from . import deserialize
        config = dict(config)
        config["layer"] = deserialize(config["layer"], custom_objects)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"], custom_objects)
        return cls(**config)
