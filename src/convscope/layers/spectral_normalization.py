"""`SpectralNormalization`: a layer's kernel kept at spectral norm 1 in training (Keras' wrapper; Miyato et al.,
arXiv:1802.05957), which steadies a GAN's discriminator.

At each training call, before the layer runs, its kernel (an Embedding's embeddings) is replaced by kernel / sigma,
sigma its largest singular value estimated by `power_iterations` steps of power iteration from the running vector
`vector_u` (a non-trainable weight of the wrapper, updated too); an all-zero kernel is left as it is.  As in Keras,
the replacement is an assignment: the gradients are the layer's own at the normalized kernel (each call's own
kernel, where a step runs the layer several times: in a TimeDistributed, or shared).  At inference the layer runs as
it is.  Shape: the wrapped layer's.  Keras 3.15.1 casts the output to the input's dtype (an Embedding's to integers);
convscope keeps the layer's.
"""

from __future__ import annotations

import numpy as np

from .. import initializers, ops
from ..variables import Variable
from . import step_losses
from .base import Shape, check_positive_int
from .spec import LayerSpec
from .wrapper import Wrapper


class SpectralNormalization(Wrapper):
    """`layer` (with a `kernel`, or an Embedding's `embeddings`) with its kernel normalized in training."""

    def __init__(self, layer, power_iterations: int = 1, **kwargs):
        super().__init__(layer, **kwargs)
        self.power_iterations = check_positive_int(power_iterations, "power_iterations", self._describe())
        self.vector_u = None

    def _kernel(self):
        """The wrapped layer's kernel variable (an Embedding's embeddings)."""
        kernel = getattr(self.layer, "kernel", None)
        kernel = kernel if kernel is not None else getattr(self.layer, "embeddings", None)
        if kernel is None or not hasattr(kernel, "value"):
            raise ValueError(f"{self._describe()}: argument `layer` must have a `kernel` or `embeddings` weight, got "
                             f"{type(self.layer).__name__} '{self.layer.name}'")
        return kernel

    @property
    def wrapper_variables(self) -> list:
        """The kernel (Keras tracks it as the wrapper's) and `vector_u`."""
        return [self._kernel(), self.vector_u] if self.vector_u is not None else []

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return self.layer.compute_output_shape(input_shape)

    def build(self, input_shape: Shape) -> None:
        if not self.layer.built:
            self.layer.build_from_shape(input_shape)
        kernel = self._kernel()
        shape, dtype = (1, kernel.shape[-1]), kernel.value.dtype       # the kernel's dtype, as Keras'
        if dtype == self.dtype:
            self.vector_u = self.add_weight(shape, initializers.TruncatedNormal(stddev=0.02), trainable=False,
                                            name="vector_u")
        else:
            value = initializers.TruncatedNormal(stddev=0.02)(shape, dtype=dtype)
            self.vector_u = Variable(np.asarray(value, dtype=dtype), f"{self.name}/vector_u", trainable=False)
            self._variables.append(self.vector_u)
        self.built = True

    def describe(self):
        """kind "spectral_norm", inner the wrapped layer (the analysis reads its numbers)."""
        return LayerSpec(kind="spectral_norm", inner=self.layer)

    def normalized_weights(self):
        """(the new `vector_u`, the kernel / sigma) from the current values (Keras' method)."""
        return ops.spectral_normalize(np.asarray(self._kernel().value), self.vector_u.value, self.power_iterations)

    def forward(self, inputs, training: bool = False):
        """In training, the kernel and `vector_u` replaced first (unless the kernel is all zeros: a new array,
        so an earlier call's backward still finds the kernel it used); then the layer, its activity penalty
        counted as Keras' call of it does.  ctx: the layer's, that kernel and the penalized output (or None)."""
        kernel = self._kernel()
        if training and np.any(kernel.value != 0):
            u, kernel.value = self.normalized_weights()
            self.vector_u.value[...] = u
        y, ctx = self.layer.forward(inputs, training=training)
        penalized = step_losses.penalize(self.layer, y)
        return y, (None if ctx is None else (ctx, kernel.value, y if penalized else None))

    def backward(self, ctx, grad_output, need_input_grad: bool = True):
        """The wrapped layer's (input gradient, [(variable, gradient)]) with the kernel its call used (put back
        for the layer's backward where a later call replaced it); `vector_u` has none."""
        inner, used, penalized = ctx
        if penalized is not None:
            grad_output = step_losses.with_gradient(self.layer, penalized, grad_output)
        kernel = self._kernel()
        if kernel.value is used:
            return self.layer.backward(inner, grad_output, need_input_grad=need_input_grad)
        current, kernel.value = kernel.value, used
        try:
            return self.layer.backward(inner, grad_output, need_input_grad=need_input_grad)
        finally:
            kernel.value = current

    def get_config(self):
        config = super().get_config()
        config["power_iterations"] = self.power_iterations
        return config
