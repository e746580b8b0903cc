"""`Dense`: Keras' fully connected layer, applied to the last axis of N-D input."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers, ops
from .base import Shape, check_kept_for_backward, check_positive_int
from .kernel_bias import KernelBiasLayer, Preactivation


class Dense(KernelBiasLayer):
    """y = activation(x @ kernel + bias) on the last axis; weights kernel (in, units), bias (units,)."""

    _CONFIG_DEFAULTS = {
        "activation": "linear",
        "kernel_initializer": initializers.serialize(initializers.GlorotUniform()),
        "bias_initializer": initializers.serialize(initializers.Zeros()),
    }

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.units = check_positive_int(units, "units", where)
        self._init_kernel_bias(where, activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, activity_regularizer,
                               kernel_constraint, bias_constraint)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"{self._describe()}: expected an input of rank >= 2 (batch, ..., features), "
                             f"got shape {input_shape}")
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{self._describe()}: the last axis of the input must be known, "
                             f"got shape {input_shape}")
        if self.kernel is not None and features != self.kernel.shape[0]:
            raise ValueError(f"{self._describe()}: expected an input with {self.kernel.shape[0]} features on "
                             f"the last axis (the layer is built for them), got shape {input_shape}")
        return input_shape[:-1] + (self.units,)

    def build(self, input_shape: Shape) -> None:
        self._build_kernel_bias((input_shape[-1], self.units), self.units)

    def describe(self):
        return self._spec("dense", filters=self.units)

    def forward(self, inputs: np.ndarray, training: bool = False):
        keep = backend.keeps_for_backward()
        fused = self._fused_activation()
        if fused is not None:     # bias and ReLU in one pass over the product
            y = ops.bias_activation_forward(ops.dense_forward(inputs, self.kernel.value), self._bias_value(), fused)
            return y, (Preactivation(inputs, None if fused == "relu" else y, y) if keep else None)
        z = ops.dense_forward(inputs, self.kernel.value, self._bias_value())
        y = self.activation.forward(z)
        return y, (Preactivation(inputs, z, y) if keep else None)

    def backward(self, ctx: Preactivation, grad_output: np.ndarray, need_input_grad: bool = True,
                 from_preactivation: bool = False):
        """(input gradient or None when not `need_input_grad`, [(kernel, grad), (bias, grad)])."""
        check_kept_for_backward(self, ctx)
        grad_z, grad_bias = self._activation_backward(ctx, grad_output, from_preactivation)
        grad_x, grad_kernel, dense_grad_bias = ops.dense_backward(grad_z, ctx.inputs, self.kernel.value,
                                                                  need_input_grad=need_input_grad,
                                                                  need_bias_grad=grad_bias is None)
        return grad_x, self._weight_grads(grad_kernel, grad_bias if grad_bias is not None else dense_grad_bias)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "units": self.units,
            **self._kernel_bias_config(),
        })
        return config
