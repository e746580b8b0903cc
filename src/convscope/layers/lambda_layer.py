"""`Lambda`: a function as a layer (Keras' `layers.Lambda`), differentiated on the tape as a custom layer.

Its function is code, and a file is data: a model holding one saves its weights, not its file, and a
Lambda read from a file (Keras writes a lambda's bytecode, or a function's name) is refused by name.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict

import numpy as np

from .base import Layer, Shape


class Lambda(Layer):
    """`function(inputs, **arguments)` as a layer: Keras' `Lambda(function, output_shape=None, mask=None,
    arguments=None)`.  Write `function` with `convscope.ops` (or array arithmetic) and it trains as any
    custom layer; `training` reaches it where its signature takes it.  The output shape is `output_shape`
    (without the batch axis, or a function of the input shape), else that of a call on placeholders.

    Shape: (N, *) -> whatever `function` returns."""

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        if not callable(function):
            raise TypeError(f"{where}: argument `function` must be callable, got {type(function).__name__}")
        if mask is not None:
            raise ValueError(f"{where}: argument `mask` is not supported (convscope has no masking), got {mask!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"{where}: argument `arguments` must be a dict of keyword arguments for the function, "
                            f"got {type(arguments).__name__}")
        if output_shape is not None and not callable(output_shape):
            try:
                output_shape = tuple(None if d is None else int(d) for d in output_shape)
            except (TypeError, ValueError):
                raise TypeError(f"{where}: argument `output_shape` must be a shape without the batch axis (a tuple "
                                f"of ints or None) or a function of the input shape, got {output_shape!r}") from None
        self.function = function
        self.arguments = dict(arguments or {})
        self.output_shape_argument = output_shape
        try:
            self._passes_training = "training" in inspect.signature(function).parameters
        except (TypeError, ValueError):
            self._passes_training = False
        self.built = True

    def call(self, inputs, training=None):
        if self._passes_training:
            return self.function(inputs, training=training, **self.arguments)
        return self.function(inputs, **self.arguments)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        given = self.output_shape_argument
        if given is None:
            return super().compute_output_shape(input_shape)
        if callable(given):
            return tuple(given(input_shape))
        return (tuple(input_shape)[0],) + given

    def get_config(self) -> Dict[str, Any]:
        """Keras' keys, the function named, not written: its code never goes into a config (`from_config`
        refuses such a config by name)."""
        config = super().get_config()
        config["function"] = {"module": "builtins", "class_name": "function",
                              "config": getattr(self.function, "__name__", type(self.function).__name__),
                              "registered_name": "function"}
        config["arguments"] = {key: value.tolist() if isinstance(value, np.ndarray) else value
                               for key, value in self.arguments.items()}      # JSON, as Keras writes an array
        return config

    @classmethod
    def from_config(cls, config):
        """Refused: a Lambda's function is code, which convscope never reads from a file or a config."""
        function = config.get("function") if isinstance(config, dict) else None
        what = "a Python lambda's bytecode" if isinstance(function, dict) and \
            function.get("class_name") == "__lambda__" else "a function's code (by name)"
        name = config.get("name") if isinstance(config, dict) else None
        raise ValueError(f"Lambda '{name}': its config holds {what}; convscope never runs code from a file or a "
                         "config (Keras refuses a lambda too unless safe_mode=False). Build the model in your code "
                         "(the Lambda with its function), then `load_weights`")
