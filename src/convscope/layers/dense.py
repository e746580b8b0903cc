"""`Dense`: Keras' fully connected layer, applied to the last axis of N-D input."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import initializers, ops
from .base import Shape, check_positive_int
from .kernel_bias import KernelBiasLayer


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
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                                      True, self.kernel_regularizer, self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer, True,
                                        self.bias_regularizer, self.bias_constraint)
        self.built = True

    def call(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        fused = self._fused_activation()
        if fused is not None:     # bias and ReLU in one pass over the product
            y = ops.bias_activation_forward(ops.dense_forward(inputs, self.kernel.value), self._bias_value(), fused)
            self._x, self._z, self._y = inputs, (None if fused == "relu" else y), y
            return y
        z = ops.dense_forward(inputs, self.kernel.value, self._bias_value())
        y = self.activation.forward(z)
        self._x, self._z, self._y = inputs, z, y
        return y

    def backward(self, grad_output: np.ndarray, need_input_grad: bool = True,
                 from_preactivation: bool = False):
        """Set the kernel/bias gradients; return the input gradient (None when not `need_input_grad`)."""
        grad_z, grad_bias = self._activation_backward(grad_output, from_preactivation)
        grad_x, grad_kernel, dense_grad_bias = ops.dense_backward(grad_z, self._x, self.kernel.value,
                                                                  need_input_grad=need_input_grad,
                                                                  need_bias_grad=grad_bias is None)
        self.kernel.grad = grad_kernel
        if self.bias is not None:
            self.bias.grad = grad_bias if grad_bias is not None else dense_grad_bias
        return grad_x

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "units": self.units,
            **self._kernel_bias_config(),
        })
        return config
