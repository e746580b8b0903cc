"""`ActivityRegularization`: its input unchanged, with an L1/L2 penalty on it added to the training loss."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import regularizers
from .base import Layer, check_float
from .spec import LayerSpec


class ActivityRegularization(Layer):
    """y = x; in training the loss gains (l1·Σ|x| + l2·Σx²) / batch size, Keras 3's activity regularizer
    (`regularizers.L1L2(l1, l2)`), whose gradient flows back into x.  No weights."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        where = f"{type(self).__name__} '{kwargs.get('name') or type(self).__name__}'"
        l1, l2 = (check_float(v, arg, where, 0.0) for v, arg in ((l1, "l1"), (l2, "l2")))
        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = l1, l2
        self.built = True

    def describe(self):
        return LayerSpec(kind="identity")

    def forward(self, inputs: np.ndarray, training: bool = False):
        return inputs, ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return grad_output, []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"l1": self.l1, "l2": self.l2})
        return config
