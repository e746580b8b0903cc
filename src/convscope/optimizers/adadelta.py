"""Adadelta, Keras 3's form (epsilon inside both square roots, the step scaled by `learning_rate`)."""

from __future__ import annotations

import numpy as np

from ..ops import updates
from .base import Optimizer, check_number


class Adadelta(Optimizer):
    """`a = rho * a + (1 - rho) * g^2; d = sqrt(ad + eps) * g / sqrt(a + eps);
    ad = rho * ad + (1 - rho) * d^2; w -= lr * d`."""

    _slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho: float = 0.95, epsilon: float = 1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "adadelta"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = check_number("Adadelta", "rho", rho, 0.0, 1.0)
        self.epsilon = check_number("Adadelta", "epsilon", epsilon, 0.0)

    def _update(self, value, grad, position, lr):
        accumulated = self._slot("accumulated_grad", position)
        delta_accumulated = self._slot("accumulated_delta_var", position)
        delta = self._scratch(position, value)
        work = self._scratch(position, value, 1)
        accumulated *= self.rho
        np.square(grad, out=work)
        work *= 1 - self.rho
        accumulated += work
        np.add(delta_accumulated, self.epsilon, out=delta)
        np.sqrt(delta, out=delta)
        delta *= grad
        np.add(accumulated, self.epsilon, out=work)
        np.sqrt(work, out=work)
        delta /= work                                   # Keras' delta_var is -delta
        delta_accumulated *= self.rho
        np.square(delta, out=work)
        work *= 1 - self.rho
        delta_accumulated += work
        delta *= lr
        value -= delta

    def _update_fused(self, value, grad, position, lr, decay):
        updates.adadelta(value, grad, self._slot("accumulated_grad", position),
                         self._slot("accumulated_delta_var", position), decay, lr, self.rho, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
