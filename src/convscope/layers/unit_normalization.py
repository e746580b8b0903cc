"""`UnitNormalization`: each sample's vectors along `axis` scaled to unit L2 norm (no weights)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, ops
from .base import Layer, Shape, check_kept_for_backward
from .layer_normalization import axis_argument
from .spec import LayerSpec


class UnitNormalization(Layer):
    """y = x / √Σx² over `axis` per sample (Keras' `ops.normalize`: the norm at least 1e-12).

    No weights; the same in training and inference.  Shape: the input's, any rank; `axis` an int or a
    list of ints (feature axes, not the batch axis).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis_argument(axis, self._describe())

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        try:
            axes = ops.layer_norm.layer_norm_axes(self.axis, len(input_shape), self._describe())
        except (TypeError, ValueError) as error:
            raise ValueError(f"{error} (input shape {input_shape})") from None
        if 0 in axes:
            raise ValueError(f"{self._describe()}: argument `axis`={self.axis} must name feature axes (not the "
                             f"batch axis), got an input of shape {input_shape}")
        return input_shape

    def describe(self):
        return LayerSpec(kind="unit_norm", axis=self.axis)

    def forward(self, inputs: np.ndarray, training: bool = False):
        self.compute_output_shape(inputs.shape)
        y, ctx = ops.unit_norm_forward(inputs, self.axis)
        return y, (ctx if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        check_kept_for_backward(self, ctx)
        return ops.unit_norm_backward(grad_output, ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["axis"] = self.axis
        return config
