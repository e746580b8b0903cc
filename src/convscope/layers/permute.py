"""`Permute` (reorders the non-batch axes) and `Identity` (returns its input): layers that compute nothing."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .base import Layer, Shape
from .spec import LayerSpec


class Permute(Layer):
    """Reorders the axes after the batch axis: `dims` is a permutation of 1..n (e.g. (2, 1) swaps two)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        try:
            items = tuple(dims)
        except TypeError:
            raise TypeError(f"{where}: argument `dims` must be a tuple of ints, got {dims!r}") from None
        if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in items):
            raise TypeError(f"{where}: argument `dims` must be a tuple of ints, got {dims!r}")
        if sorted(items) != list(range(1, len(items) + 1)):
            raise ValueError(f"{where}: argument `dims` must be a permutation of 1..{len(items)} (the axes after "
                             f"the batch axis, counted from 1), got {dims!r}")
        self.dims = tuple(int(d) for d in items)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"{self._describe()}: expected an input of rank {len(self.dims) + 1} (dims={self.dims} "
                             f"and the batch axis), got shape {input_shape}")
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def describe(self):
        return LayerSpec(kind="permute", dims=self.dims)

    def forward(self, inputs: np.ndarray, training: bool = False):
        return np.ascontiguousarray(inputs.transpose((0,) + self.dims)), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        inverse = np.argsort((0,) + self.dims)
        return np.ascontiguousarray(grad_output.transpose(inverse)), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["dims"] = self.dims
        return config


class Identity(Layer):
    """Returns its input unchanged (a placeholder, as Keras' Identity); built from the start."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True

    def describe(self):
        return LayerSpec(kind="identity")

    def forward(self, inputs: np.ndarray, training: bool = False):
        return inputs, ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return grad_output, []
