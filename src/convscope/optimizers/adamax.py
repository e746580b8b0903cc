"""Adamax, Keras 3's form: Adam with the infinity norm `u = max(beta_2 * u, |g|)`."""

from __future__ import annotations

import numpy as np

from ..ops import updates
from .base import Optimizer, check_number


class Adamax(Optimizer):
    """`m += (g - m) * (1 - beta_1); u = max(beta_2 * u, |g|); w -= lr * m / ((1 - beta_1^t) * (u + eps))`."""

    _slot_names = ("momentum", "norm")

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "adamax"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = check_number("Adamax", "beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = check_number("Adamax", "beta_2", beta_2, 0.0, 1.0)
        self.epsilon = check_number("Adamax", "epsilon", epsilon, 0.0)

    def _correction(self) -> float:
        """1 - beta_1^t for this step t."""
        return 1 - self.beta_1 ** (self.iterations + 1)

    def _update(self, value, grad, position, lr):
        m = self._slot("momentum", position)
        u = self._slot("norm", position)
        work = self._scratch(position, value)
        step = self._scratch(position, value, 1)
        np.subtract(grad, m, out=work)
        work *= 1 - self.beta_1
        m += work
        u *= self.beta_2
        np.abs(grad, out=work)
        np.maximum(u, work, out=u)
        np.add(u, self.epsilon, out=work)
        work *= self._correction()
        np.multiply(m, lr, out=step)
        step /= work
        value -= step

    def _update_fused(self, value, grad, position, lr, decay):
        updates.adamax(value, grad, self._slot("momentum", position), self._slot("norm", position), decay, lr,
                       self.beta_1, self.beta_2, self.epsilon, self._correction())

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
