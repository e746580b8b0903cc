"""ConvNeXt's two helper layers, as `keras.src.applications.convnext` defines them, so that
Keras' ConvNeXt files load: `LayerScale` (a learned per-channel scale) and `StochasticDepth`
(a residual branch dropped per sample in training).

Keras writes both with module `keras.src.applications.convnext` and their class name as
`registered_name`; `layers.serialize` writes the same, so Keras opens convscope's files too.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import _rng, backend, initializers
from .base import Layer, Shape, check_float, check_kept_for_backward, check_positive_int
from .spec import LayerSpec

_MODULE = "keras.src.applications.convnext"


class LayerScale(Layer):
    """y = x * gamma, gamma of shape (projection_dim,) on the last axis, starting at `init_values`.

    `projection_dim` trainable parameters; the same in training and inference (arXiv:2103.17239).
    """

    keras_module = _MODULE
    keras_registered_name = "LayerScale"

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.init_values = check_float(init_values, "init_values", where)
        self.projection_dim = check_positive_int(projection_dim, "projection_dim", where)
        self.gamma = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] != self.projection_dim:
            raise ValueError(f"{self._describe()}: expected an input whose last axis has projection_dim="
                             f"{self.projection_dim} entries, got an input of shape {input_shape}")
        return input_shape

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)
        self.gamma = self.add_weight((self.projection_dim,), initializers.Constant(self.init_values),
                                     name="gamma")
        self.built = True

    def describe(self):
        return LayerSpec(kind="other", weights={"gamma": self.gamma})

    def forward(self, inputs: np.ndarray, training: bool = False):
        gamma = self.gamma.value
        y = inputs * gamma.astype(inputs.dtype, copy=False)
        return y, (inputs if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """(grad * gamma, [(gamma, sum of grad * x over every axis but the last)])."""
        check_kept_for_backward(self, ctx)
        gamma = self.gamma.value
        grad_x = grad_output * gamma.astype(grad_output.dtype, copy=False) if need_input_grad else None
        pairs = []
        if self.trainable:
            flat = (grad_output * ctx).reshape(-1, self.projection_dim)
            pairs = [(self.gamma, flat.sum(axis=0).astype(gamma.dtype, copy=False))]
        return grad_x, pairs

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"init_values": self.init_values, "projection_dim": self.projection_dim})
        return config


class StochasticDepth(Layer):
    """In training each sample's branch is kept with probability 1 - drop_path_rate (and scaled by
    its inverse) or zeroed whole; the identity at inference.  No weights.  The draws come from
    convscope's generator (they cannot match Keras' random stream)."""

    keras_module = _MODULE
    keras_registered_name = "StochasticDepth"

    def __init__(self, drop_path_rate, **kwargs):
        super().__init__(**kwargs)
        self.drop_path_rate = check_float(drop_path_rate, "drop_path_rate", self._describe(), 0.0, 1.0,
                                          high_open=True)

    def describe(self):
        return LayerSpec(kind="dropout")

    def forward(self, inputs: np.ndarray, training: bool = False):
        """(output, the per-sample factor 0 or 1 / keep; None when nothing was dropped)."""
        if not training or self.drop_path_rate == 0.0:
            return inputs, None
        keep = 1.0 - self.drop_path_rate
        shape = (inputs.shape[0],) + (1,) * (inputs.ndim - 1)
        draws = _rng.generator().uniform(0.0, 1.0, size=shape)
        factor = (np.floor(keep + draws) / keep).astype(inputs.dtype)
        return inputs * factor, factor

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return (grad_output if ctx is None else grad_output * ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"drop_path_rate": self.drop_path_rate})
        return config
