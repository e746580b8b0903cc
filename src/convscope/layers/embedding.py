"""`Embedding`: Keras' lookup of one learned vector per integer index (a text CNN's first layer, a conditional
GAN's label input).  Shape: (N, ...) integer indices -> (N, ..., output_dim); weights: embeddings (input_dim,
output_dim)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers
from .base import Layer, Shape, check_bool, check_kept_for_backward, check_positive_int, resolve_optional, \
    serialize_optional
from .spec import LayerSpec


class Embedding(Layer):
    """Row `i` of `embeddings` for each index `i` (0 ≤ i < input_dim); its gradient is each row's summed
    output gradients; none reaches the indices.  Float indices are truncated to int, as Keras' cast."""

    _CONFIG_DEFAULTS = {"embeddings_initializer": initializers.serialize(initializers.RandomUniform())}

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, **kwargs):
        kwargs.pop("input_length", None)                   # Keras 2's; Keras 3 ignores it with a warning
        super().__init__(**kwargs)
        where = self._describe()
        self.input_dim = check_positive_int(input_dim, "input_dim", where)
        self.output_dim = check_positive_int(output_dim, "output_dim", where)
        self.embeddings_initializer = initializers.get(embeddings_initializer, where, "embeddings_initializer")
        self.embeddings_regularizer = resolve_optional("regularizers", embeddings_regularizer, where,
                                                       "embeddings_regularizer")
        self.embeddings_constraint = resolve_optional("constraints", embeddings_constraint, where,
                                                      "embeddings_constraint")
        if check_bool(mask_zero, "mask_zero", where):
            raise ValueError(f"{where}: argument `mask_zero` is True, but convscope does not propagate Keras' masks "
                             f"(the layers after it would count the padding index 0); expected False")
        self.mask_zero = False
        self.embeddings = None
        if weights is not None:
            self.build(None)
            self.set_weights(weights if isinstance(weights, list) and len(weights) == 1 else [weights])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"{self._describe()}: expected an input with a batch axis, got shape {input_shape}")
        return input_shape + (self.output_dim,)

    def build(self, input_shape: Shape) -> None:
        self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint, name="embeddings")
        self.built = True

    def _as_input_array(self, inputs) -> np.ndarray:
        """The indices as they are (Keras' Embedding does not autocast them to its dtype)."""
        x = np.asarray(inputs)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{self._describe()}: expected integer indices, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{self._describe()}: expected an array with a batch axis, got a scalar")
        return x

    def _indices(self, inputs) -> np.ndarray:
        indices = np.asarray(inputs)
        indices = indices.astype(np.int64) if indices.dtype.kind != "i" else indices
        if indices.size and (indices.min() < 0 or indices.max() >= self.input_dim):
            bad = indices[(indices < 0) | (indices >= self.input_dim)].ravel()[0]
            raise ValueError(f"{self._describe()}: index {int(bad)} is out of range; expected indices 0 to "
                             f"{self.input_dim - 1} (input_dim={self.input_dim})")
        return indices

    def describe(self):
        return LayerSpec(kind="embedding", weights={"embeddings": self.embeddings}, filters=self.output_dim,
                         size=(self.input_dim, self.output_dim))

    def forward(self, inputs, training: bool = False):
        indices = self._indices(inputs)
        output = np.take(self.embeddings.value, indices, axis=0)
        return output, (indices if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """(None: indices have no gradient, [(embeddings, the output gradients summed per index)])."""
        check_kept_for_backward(self, ctx)
        if not self.trainable:
            return None, []
        grad = np.zeros_like(self.embeddings.value)
        np.add.at(grad, ctx.ravel(), np.asarray(grad_output).reshape(-1, self.output_dim).astype(grad.dtype))
        return None, [(self.embeddings, grad)]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"input_dim": self.input_dim, "output_dim": self.output_dim,
                       "embeddings_initializer": serialize_optional("initializers", self.embeddings_initializer),
                       "embeddings_regularizer": serialize_optional("regularizers", self.embeddings_regularizer),
                       "activity_regularizer": serialize_optional("regularizers", self.activity_regularizer),
                       "embeddings_constraint": serialize_optional("constraints", self.embeddings_constraint),
                       "mask_zero": self.mask_zero})
        return config
