"""`RMSNormalization`: each sample divided by its root mean square over `axis`, then scaled (Keras 3's layer)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers, ops
from .base import Layer, Shape, check_float, check_kept_for_backward
from .layer_normalization import axis_argument, feature_axes, normalized_input_shape
from .spec import LayerSpec

KERAS_EPSILON = 1e-7        # Keras' backend.epsilon(): `ops.rms_normalization`'s epsilon where it is None


class RMSNormalization(Layer):
    """y = x / √(mean(x²) + epsilon) · scale, the mean over `axis` per sample (Zhang & Sennrich, arXiv:1910.07467).

    One weight, `scale` (ones at first, trainable), of the shape of the normalized axes: ∏(axis sizes)
    parameters.  Same in training and inference.  As Keras, `axis` becomes a sorted list when the layer is built.
    Keras 3.15.1 computes it right for trailing axes only (its torch backend normalizes the last axes whatever
    `axis` says, and its scale lines up with the last axes); convscope normalizes and scales the axes named.
    """

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        """`epsilon` None: Keras' `backend.epsilon()`, 1e-7 (kept as None in the config, as Keras keeps it)."""
        super().__init__(**kwargs)
        where = self._describe()
        self.axis = axis_argument(axis, where)
        self.epsilon = None if epsilon is None else check_float(epsilon, "epsilon", where, 0.0)
        self.scale = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return normalized_input_shape(self, input_shape, self.scale)

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape[a] for a in feature_axes(self, input_shape))
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]   # as Keras' build
        self.scale = self.add_weight(shape, initializers.get("ones"), name="scale")
        self.built = True

    def describe(self):
        return LayerSpec(kind="rms_norm", axis=self.axis, weights={"scale": self.scale})

    def forward(self, inputs: np.ndarray, training: bool = False):
        epsilon = KERAS_EPSILON if self.epsilon is None else self.epsilon
        y, ctx = ops.rms_norm_forward(inputs, self.scale.value, self.axis, epsilon)
        return y, (ctx if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """(input gradient, [(scale, grad)])."""
        check_kept_for_backward(self, ctx)
        grad_x, grad_scale = ops.rms_norm_backward(grad_output, ctx, need_input_grad)
        return grad_x, ([(self.scale, grad_scale)] if self.trainable else [])

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config
