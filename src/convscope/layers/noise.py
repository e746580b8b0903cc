"""`GaussianNoise`, `GaussianDropout` and `AlphaDropout`: noise in training, the identity at inference (Keras')."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import ops
from .base import Layer, check_float
from .spec import LayerSpec


class _Noise(Layer):
    """Noise drawn from the library's generator, or from the layer's own where `seed` is set (as Dropout)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{self._describe()}: argument `seed` must be None or a non-negative int, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._generator = None if seed is None else np.random.default_rng(self.seed)

    def describe(self):
        return LayerSpec(kind="noise")      # the identity at inference; not a dropout (no mask drawn for it)


class GaussianNoise(_Noise):
    """x + N(0, stddev) in training (additive, zero-centred noise: a regularizer); the identity at inference.

    Shape: unchanged."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.stddev = check_float(stddev, "stddev", self._describe(), 0.0, 1.0)      # Keras' range

    def forward(self, inputs: np.ndarray, training: bool = False):
        if not training or self.stddev == 0.0:
            return inputs, ()
        return ops.gaussian_noise(inputs, self.stddev, self._generator), ()

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return grad_output, []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"stddev": self.stddev, "seed": self.seed})
        return config


class GaussianDropout(_Noise):
    """x * N(1, sqrt(rate / (1 - rate))) in training (multiplicative noise of dropout's variance); the identity
    at inference.

    Shape: unchanged."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.rate = check_float(rate, "rate", self._describe(), 0.0, 1.0, high_open=True)

    def forward(self, inputs: np.ndarray, training: bool = False):
        """(output, the noise it was multiplied by; None at inference or rate 0)."""
        if not training or self.rate == 0.0:
            return inputs, None
        return ops.gaussian_dropout_forward(inputs, self.rate, self._generator)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return (grad_output if ctx is None else grad_output * ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


class AlphaDropout(_Noise):
    """Dropout for SELU networks: in training a value is dropped with probability `rate` to SELU's negative
    saturation, then all are scaled and shifted so that the mean and variance SELU keeps stay (Keras'
    AlphaDropout); the identity at inference.

    Shape: unchanged."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        where = self._describe()
        self.rate = check_float(rate, "rate", where, 0.0, 1.0)
        if noise_shape is not None:
            try:
                noise_shape = tuple(None if n is None else int(n) for n in noise_shape)
            except (TypeError, ValueError):
                raise TypeError(f"{where}: argument `noise_shape` must be None or a tuple of ints (None for the "
                                f"input's size), got {noise_shape!r}") from None
        self.noise_shape = noise_shape

    def forward(self, inputs: np.ndarray, training: bool = False):
        """(output, the gradient's factor per value; None at inference or outside 0 < rate < 1)."""
        if not training or not 0.0 < self.rate < 1.0:
            return inputs, None
        try:
            return ops.alpha_dropout_forward(inputs, self.rate, self._generator, self.noise_shape)
        except ValueError as error:
            raise ValueError(f"{self._describe()}: {error}") from None

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        return (grad_output if ctx is None else grad_output * ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape})   # a tuple (Keras')
        return config
