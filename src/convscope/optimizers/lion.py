"""Lion, Keras 3's form: the sign of an interpolated momentum is the step."""

from __future__ import annotations

import numpy as np

from ..ops import updates
from .base import Optimizer, check_number


class Lion(Optimizer):
    """`w -= lr * sign(m * beta_1 + g * (1 - beta_1)); m = m * beta_2 + g * (1 - beta_2)`."""

    _slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.99, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "lion"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        # Keras: beta_1 = 0 degenerates to signSGD and is refused
        self.beta_1 = check_number("Lion", "beta_1", beta_1, 0.0, 1.0, low_inclusive=False)
        self.beta_2 = check_number("Lion", "beta_2", beta_2, 0.0, 1.0)

    def _update(self, value, grad, position, lr):
        m = self._slot("momentum", position)
        step = self._scratch(position, value)
        work = self._scratch(position, value, 1)
        np.multiply(m, self.beta_1, out=step)
        np.multiply(grad, 1 - self.beta_1, out=work)
        step += work
        np.sign(step, out=step)
        step *= lr
        value -= step
        m *= self.beta_2
        np.multiply(grad, 1 - self.beta_2, out=work)
        m += work

    def _update_fused(self, value, grad, position, lr, decay):
        updates.lion(value, grad, self._slot("momentum", position), decay, lr, self.beta_1, self.beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
