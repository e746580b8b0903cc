"""`Dropout`: inverted dropout in training, the identity at inference (Keras' behaviour)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import ops
from .base import Layer, Shape, check_float
from .spec import LayerSpec


class Dropout(Layer):
    """Zeroes each unit with probability `rate` in training and scales the rest by 1 / (1 - rate).

    `rate=1.0` zeroes every unit in training (Keras 3 accepts it too); inference is the identity.

    `noise_shape` shares one mask along axes given as 1 (None entries follow the input).
    Masks come from the library generator, or from the layer's own generator when `seed` is set.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.rate = check_float(rate, "rate", where, 0.0, 1.0)       # 1.0 drops everything, as in Keras 3
        if noise_shape is not None:
            try:
                noise_shape = tuple(noise_shape)
            except TypeError:
                raise TypeError(f"{where}: argument `noise_shape` must be None or a tuple of ints/None, "
                                f"got {noise_shape!r}") from None
            if any(d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0)
                   for d in noise_shape):
                raise ValueError(f"{where}: argument `noise_shape` must hold positive ints or None, "
                                 f"got {noise_shape!r}")
        self.noise_shape = noise_shape
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{where}: argument `seed` must be None or a non-negative int, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._generator = None if seed is None else np.random.default_rng(self.seed)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if self.noise_shape is not None and len(self.noise_shape) != len(input_shape):
            raise ValueError(f"{self._describe()}: argument `noise_shape` {self.noise_shape} needs one entry per "
                             f"axis of the input, got input shape {input_shape}")
        return input_shape

    def describe(self):
        return LayerSpec(kind="dropout", rate=self.rate)

    def forward(self, inputs: np.ndarray, training: bool = False):
        """(output, the mask; None when nothing was dropped: inference, or rate 0)."""
        if not training or self.rate == 0.0:
            return inputs, None
        return ops.dropout_forward(inputs, self.rate, self.noise_shape, self._generator)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        if ctx is None:
            return grad_output, []
        return ops.dropout_backward(grad_output, ctx), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"rate": self.rate,
                       "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                       "seed": self.seed})
        return config
