"""`EinsumDense`: a dense layer of any shape, y = activation(einsum(equation, x, kernel) + bias) (Keras' layer).

Examples (Keras'): "ab,bc->ac" is Dense; "abc,cd->abd" a Dense on the last axis of a sequence; "abc,cde->abde"
splits the features into heads (`output_shape=(None, heads, dim)`: None takes the input's size).  The weights'
shapes come from the equation, `output_shape` and the input (`ops.einsum_dense`).  Keras' quantization and LoRA
arguments are refused by name.
"""

from __future__ import annotations

import functools
from typing import Any, Dict

import numpy as np

from .. import backend, initializers
from ..ops import einsum_dense as ops_einsum
from .base import Shape, check_kept_for_backward
from .kernel_bias import KernelBiasLayer, Preactivation


class EinsumDense(KernelBiasLayer):
    """activation(einsum(equation, x, kernel) + bias); weights kernel (from the equation), bias (`bias_axes`)."""

    _CONFIG_DEFAULTS = {"kernel_initializer": initializers.serialize(initializers.GlorotUniform()),
                        "bias_initializer": initializers.serialize(initializers.Zeros())}

    def __init__(self, equation, output_shape, activation=None, bias_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None, gptq_unpacked_column_size=None,
                 quantization_config=None, activity_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        ops_einsum.einsum_subscripts(equation, 0, where)       # the equation's form, checked now
        self.equation = equation
        items = (output_shape,) if isinstance(output_shape, (int, np.integer)) else output_shape
        if not isinstance(items, (list, tuple)) or any(d is not None and (
                isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1) for d in items):
            raise ValueError(f"{where}: argument `output_shape` must be an int or a tuple of positive ints or None, "
                             f"got {output_shape!r}")
        self.partial_output_shape = tuple(None if d is None else int(d) for d in items)
        if bias_axes is not None and not isinstance(bias_axes, str):
            raise TypeError(f"{where}: argument `bias_axes` must be a string of output axes or None, got "
                            f"{bias_axes!r}")
        self.bias_axes = bias_axes
        for arg, value in (("lora_rank", lora_rank), ("lora_alpha", lora_alpha),
                           ("gptq_unpacked_column_size", gptq_unpacked_column_size),
                           ("quantization_config", quantization_config)):
            if value is not None:
                raise ValueError(f"{where}: argument `{arg}` is not supported (Keras' LoRA and quantization), got "
                                 f"{value!r}")
        self._init_kernel_bias(where, activation, bias_axes is not None, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
                               bias_constraint)

    def _geometry(self, input_shape: Shape):
        return ops_einsum.einsum_dense_geometry(self.equation, self.bias_axes, tuple(input_shape),
                                                self.partial_output_shape, self._describe())

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        geometry = self._geometry(input_shape)
        if self.kernel is not None and geometry.kernel_shape != self.kernel.shape:
            raise ValueError(f"{self._describe()}: expected an input giving the kernel shape {self.kernel.shape} (the "
                             f"layer is built for it), got input shape {tuple(input_shape)}")
        return geometry.output_shape

    def build(self, input_shape: Shape) -> None:
        geometry = self._geometry(input_shape)
        initializer = self.kernel_initializer
        if isinstance(initializer, initializers.VarianceScaling):      # Keras' fans from the equation's axes
            initializer = functools.partial(initializer, input_axes=geometry.input_axes,
                                            output_axes=geometry.output_axes)
        self.kernel = self.add_weight(geometry.kernel_shape, initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        if geometry.bias_shape is not None:
            self.bias = self.add_weight(geometry.bias_shape, self.bias_initializer, regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint, name="bias")
        self.built = True

    def describe(self):
        """kind "einsum_dense", op the equation, size the `output_shape` given (None where the input gives it)."""
        return self._spec("einsum_dense", op=self.equation, size=self.partial_output_shape)

    def forward(self, inputs: np.ndarray, training: bool = False):
        x = np.asarray(inputs)
        self.compute_output_shape((None,) + x.shape[1:])
        subscripts = ops_einsum.einsum_subscripts(self.equation, x.ndim, self._describe())
        z = ops_einsum.einsum_dense_forward(x, self.kernel.value, self._bias_value(), subscripts)
        y = self.activation.forward(z)
        return y, (Preactivation((x, subscripts), z, y) if backend.keeps_for_backward() else None)

    def backward(self, ctx: Preactivation, grad_output: np.ndarray, need_input_grad: bool = True):
        """(input gradient or None, [(kernel, grad), (bias, grad)])."""
        check_kept_for_backward(self, ctx)
        x, subscripts = ctx.inputs
        grad_z = self.activation.backward(np.asarray(grad_output), ctx.z, ctx.y)
        bias_shape = None if self.bias is None else self.bias.shape
        grad_x, grad_kernel, grad_bias = ops_einsum.einsum_dense_backward(grad_z, x, self.kernel.value, bias_shape,
                                                                         subscripts, need_input_grad)
        return grad_x, self._weight_grads(grad_kernel, grad_bias)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(self._kernel_bias_config())
        del config["use_bias"]
        config.update({"output_shape": list(self.partial_output_shape), "equation": self.equation,
                       "bias_axes": self.bias_axes, "quantization_config": None})
        return config
