"""`SpectralNormalization`: a layer's kernel kept at spectral norm 1 in training (Keras' wrapper; Miyato et al.,
arXiv:1802.05957), which steadies a GAN's discriminator.

At each training call, before the layer runs, its kernel (an Embedding's embeddings) is replaced by kernel / sigma,
sigma its largest singular value estimated by `power_iterations` steps of power iteration from the running vector
`vector_u` (a non-trainable weight of the wrapper, updated too); an all-zero kernel is left as it is.  As in Keras,
the replacement is an assignment: the gradients are the layer's own at the normalized kernel.  At inference the
layer runs as it is.  Shape: the wrapped layer's.
"""

from __future__ import annotations

import numpy as np

from .. import initializers, ops
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
        return [self._kernel(), self.vector_u] if self.vector_u is not None else []

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return self.layer.compute_output_shape(input_shape)

    def build(self, input_shape: Shape) -> None:
        if not self.layer.built:
            self.layer.build_from_shape(input_shape)
        kernel = self._kernel()
        self.vector_u = self.add_weight((1, kernel.shape[-1]), initializers.TruncatedNormal(stddev=0.02),
                                        dtype=kernel.value.dtype, trainable=False, name="vector_u")
        self.built = True

    def describe(self):
        """kind "spectral_norm", inner the wrapped layer (the analysis reads its numbers)."""
        return LayerSpec(kind="spectral_norm", inner=self.layer)

    def normalized_weights(self):
        """(the new `vector_u`, the kernel / sigma) from the current values (Keras' method)."""
        return ops.spectral_normalize(np.asarray(self._kernel().value), self.vector_u.value, self.power_iterations)

    def forward(self, inputs, training: bool = False):
        """In training, the kernel and `vector_u` replaced first (unless the kernel is all zeros); then the layer."""
        if training:
            kernel = self._kernel()
            if np.any(kernel.value != 0):
                self.vector_u.value[...], kernel.value[...] = self.normalized_weights()
        return self.layer.forward(inputs, training=training)

    def backward(self, ctx, grad_output, need_input_grad: bool = True):
        """The wrapped layer's (input gradient, [(variable, gradient)]); `vector_u` has none."""
        grad_x, pairs = self.layer.backward(ctx, grad_output, need_input_grad=need_input_grad)
        return grad_x, (pairs if self.trainable else [])

    def get_config(self):
        config = super().get_config()
        config["power_iterations"] = self.power_iterations
        return config
