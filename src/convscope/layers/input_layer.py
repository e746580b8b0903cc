"""`Input` and `InputLayer`: declare the shape a model takes (batch axis first, None = any)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .. import backend
from . import graph
from .base import Layer, Shape, _shape_tuple
from .spec import LayerSpec


_INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")


def _integer_dtype(dtype):
    """The name of an integer (or bool) `dtype`, else None (float dtypes are the base Layer's to check)."""
    try:
        name = np.dtype(dtype).name if dtype is not None and not isinstance(dtype, str) else dtype
    except TypeError:
        return None
    return name if name in _INTEGER_DTYPES else None


class InputLayer(Layer):
    """The entry point of a model: passes its input through unchanged and remembers its shape.

    Takes Keras 3's `shape`/`batch_shape` and Keras 2's `input_shape`/`batch_input_shape`.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 input_shape=None, batch_input_shape=None, sparse=None, ragged=None, **kwargs):
        cls = type(self).__name__
        if sparse or ragged:
            raise ValueError(f"{cls}: sparse and ragged inputs are not supported (sparse={sparse!r}, "
                             f"ragged={ragged!r})")
        if isinstance(dtype, dict):  # Keras 3 DTypePolicy config
            dtype = dtype.get("config", {}).get("name")
        given = [n for n, v in (("shape", shape), ("input_shape", input_shape), ("batch_shape", batch_shape),
                                ("batch_input_shape", batch_input_shape)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"{cls}: give exactly one of shape, batch_shape (or Keras 2's input_shape, "
                             f"batch_input_shape); got {given or 'none'}")
        if shape is not None:
            input_shape = _shape_tuple(shape, "shape", cls)
        if batch_shape is not None:
            batch_input_shape = _shape_tuple(batch_shape, "batch_shape", cls)
        integer = _integer_dtype(dtype)           # indices for an Embedding, or uint8 pixels (cast by the layers)
        super().__init__(name=name or backend.unique_name("input_layer"), dtype=None if integer else dtype,
                         input_shape=input_shape, batch_input_shape=batch_input_shape,
                         batch_size=batch_size if input_shape is not None else None, **kwargs)
        if integer:
            self.dtype = integer
        if len(self._batch_input_shape) < 2 and input_shape is None:
            raise ValueError(f"{cls}: argument `batch_shape` must include the batch axis and at least one "
                             f"more, got {batch_input_shape!r}")
        self.built = True
        self._build_input_shape = self._batch_input_shape
        graph.Node(self, [], [graph.KerasTensor(self._batch_input_shape, self.dtype, name=self.name)])

    @property
    def shape(self) -> Shape:
        """The declared shape with the batch axis, like a Keras tensor's `.shape`."""
        return self._batch_input_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        declared = self._batch_input_shape
        if len(input_shape) != len(declared) or any(
                d is not None and s is not None and d != s for d, s in zip(declared[1:], input_shape[1:])):
            raise ValueError(f"{self._describe()}: expected input of shape {declared}, got {input_shape}")
        return declared

    def describe(self):
        return LayerSpec(kind="input")

    def forward(self, inputs: np.ndarray, training: bool = False):
        return inputs, ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return grad_output, []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.pop("trainable", None)
        config["batch_shape"] = list(config.pop("batch_input_shape"))
        return config


def Input(shape=None, batch_size=None, name: Optional[str] = None, dtype=None, batch_shape=None,
          sparse=None, **kwargs) -> graph.KerasTensor:
    """Keras 3's `Input(shape=...)`: the symbolic tensor of a new `InputLayer` (`.shape` has the batch
    axis), to call layers on (functional API) or to start a `Sequential`."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name,
                       sparse=sparse, **kwargs)
    return layer.output
