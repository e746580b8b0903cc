"""Adam and AdamW in Keras' form: alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), w -= alpha * m / (sqrt(v) + eps).

PyTorch divides sqrt(v) by sqrt(1 - beta_2^t) before adding eps, so its eps
is Keras' eps / sqrt(1 - beta_2^t); the tests compare the two that way.
"""

from __future__ import annotations

import math

import numpy as np

from ..ops import updates
from .base import Optimizer, check_number


class Adam(Optimizer):
    """Adaptive moments; `amsgrad` keeps the running maximum of v."""

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name: str = "adam"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        owner = type(self).__name__
        self.beta_1 = check_number(owner, "beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = check_number(owner, "beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = check_number(owner, "epsilon", epsilon, 0.0)
        if not isinstance(amsgrad, bool):
            raise TypeError(f"{owner}: argument `amsgrad` must be True or False, got {amsgrad!r}")
        self.amsgrad = amsgrad
        self._slot_names = ("m", "v", "vhat") if amsgrad else ("m", "v")

    def _alpha(self, lr) -> float:
        """The step size of this step: lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)."""
        step = self.iterations + 1
        return float(lr) * math.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)

    def _update(self, value, grad, position, lr):
        # A Python float stays "weak" under NumPy 2's promotion rules, so float32 stays float32.
        alpha = self._alpha(lr)
        m = self._slot("m", position)
        v = self._slot("v", position)
        scratch = self._scratch(position, value)
        np.subtract(grad, m, out=scratch)
        scratch *= 1 - self.beta_1
        m += scratch
        np.square(grad, out=scratch)
        scratch -= v
        scratch *= 1 - self.beta_2
        v += scratch
        if self.amsgrad:
            vhat = self._slot("vhat", position)
            np.maximum(vhat, v, out=vhat)
            v = vhat
        np.sqrt(v, out=scratch)
        scratch += self.epsilon
        np.divide(m, scratch, out=scratch)
        scratch *= alpha
        value -= scratch

    def _update_fused(self, value, grad, position, lr, decay):
        vhat = self._slot("vhat", position) if self.amsgrad else None
        updates.adam(value, grad, self._slot("m", position), self._slot("v", position), vhat, decay,
                     self.beta_1, self.beta_2, self.epsilon, self._alpha(lr))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (`w -= w * weight_decay * lr` before each step)."""

    def __init__(self, learning_rate=0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name: str = "adamw"):
        if weight_decay is None:
            raise ValueError("AdamW: argument `weight_decay` must be a number (Keras' default is 0.004), got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, name)
