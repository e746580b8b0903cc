"""`PReLU`: a leaky ReLU whose slope is learned, one per value of the input (shared along `shared_axes`)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers
from .base import Layer, Shape, check_kept_for_backward, resolve_optional, serialize_optional
from .spec import LayerSpec


class PReLU(Layer):
    """y = x where x > 0, else alpha * x (Keras' PReLU; He et al., arXiv:1502.01852).

    `alpha` has the input's shape without the batch axis, 1 along each of `shared_axes` (counted from 1,
    the batch axis 0: `shared_axes=[1, 2]` learns one slope per channel of an image).

    Shape: (N, *) -> (N, *).  Parameters: the product of `alpha`'s shape."""

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.alpha_initializer = initializers.get(alpha_initializer, where, "alpha_initializer")
        self.alpha_regularizer = resolve_optional("regularizers", alpha_regularizer, where, "alpha_regularizer")
        self.alpha_constraint = resolve_optional("constraints", alpha_constraint, where, "alpha_constraint")
        if shared_axes is None:
            axes = ()
        else:
            axes = tuple(shared_axes) if isinstance(shared_axes, (list, tuple)) else (shared_axes,)
            if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1 for a in axes):
                raise ValueError(f"{where}: argument `shared_axes` must be axes counted from 1 (the batch axis is "
                                 f"0), got {shared_axes!r}")
        self.shared_axes = None if shared_axes is None else [int(a) for a in axes]
        self.alpha = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if any(axis >= len(input_shape) for axis in self.shared_axes or ()):
            raise ValueError(f"{self._describe()}: argument `shared_axes`={self.shared_axes} names an axis an input "
                             f"of shape {input_shape} does not have")
        if self.alpha is not None and len(input_shape) != self.alpha.value.ndim + 1:
            raise ValueError(f"{self._describe()}: expected an input of rank {self.alpha.value.ndim + 1}, got shape "
                             f"{input_shape}")
        return input_shape

    def build(self, input_shape: Shape) -> None:
        input_shape = self.compute_output_shape(input_shape)
        shape = [1 if axis in (self.shared_axes or ()) else d for axis, d in enumerate(input_shape)][1:]
        if any(d is None for d in shape):
            raise ValueError(f"{self._describe()}: every axis of the input but the batch axis and shared_axes must "
                             f"be known to build alpha, got input shape {input_shape}")
        self.alpha = self.add_weight(tuple(shape), self.alpha_initializer, regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint, name="alpha")
        self.built = True

    def describe(self):
        return LayerSpec(kind="activation", activation="prelu", weights={"alpha": self.alpha})   # value by value

    def forward(self, inputs: np.ndarray, training: bool = False):
        alpha = self.alpha.value.astype(inputs.dtype, copy=False)
        y = np.where(inputs > 0, inputs, alpha * inputs)
        return y, (inputs if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """(grad where x > 0, else grad * alpha; [(alpha, the sum of grad * min(x, 0) over the batch and
        shared axes)])."""
        check_kept_for_backward(self, ctx)
        alpha = self.alpha.value
        negative = ctx <= 0
        grad_x = np.where(negative, grad_output * alpha.astype(grad_output.dtype, copy=False), grad_output) \
            if need_input_grad else None
        pairs = []
        if self.trainable:
            summed = np.where(negative, grad_output * ctx, 0).sum(axis=0)
            for axis in self.shared_axes or ():
                summed = summed.sum(axis=axis - 1, keepdims=True)
            pairs = [(self.alpha, summed.astype(alpha.dtype, copy=False))]
        return grad_x, pairs

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"alpha_initializer": serialize_optional("initializers", self.alpha_initializer),
                       "alpha_regularizer": serialize_optional("regularizers", self.alpha_regularizer),
                       "alpha_constraint": serialize_optional("constraints", self.alpha_constraint),
                       "shared_axes": self.shared_axes})
        return config
