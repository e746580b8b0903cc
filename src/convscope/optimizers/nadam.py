"""Nadam, Keras 3's form: Adam with Nesterov momentum and Dozat's momentum schedule
`u_t = beta_1 * (1 - 0.5 * 0.96^t)`.

Keras keeps the running product of the u_t as an optimizer variable; here it is a
function of `iterations` (the same products in the same order), so the state is the
slots and the iteration count only.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..ops import updates
from .base import Optimizer, check_number


class Nadam(Optimizer):
    """`m_hat = u_{t+1} m / (1 - prod u_1..u_{t+1}) + (1 - u_t) g / (1 - prod u_1..u_t)`,
    `w -= m_hat * lr / (sqrt(v / (1 - beta_2^t)) + eps)`."""

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "nadam"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = check_number("Nadam", "beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = check_number("Nadam", "beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = check_number("Nadam", "epsilon", epsilon, 0.0)
        self._product = (0, 1.0)            # (t, u_1 * ... * u_t), the empty product first

    def _u(self, step: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** step)

    def _u_product(self, step: int) -> float:
        """u_1 * ... * u_step, multiplied in order (cached: one product per training step)."""
        known, product = self._product
        if step < known:
            known, product = 0, 1.0
        while known < step and product != 0.0:
            known += 1
            product *= self._u(known)
        self._product = (step, product)
        return product

    def _factors(self) -> Tuple[float, float, float, float, float]:
        """(u_{t+1}, 1 - prod to t+1, 1 - u_t, 1 - prod to t, 1 - beta_2^t) for this step t."""
        step = self.iterations + 1
        product = self._u_product(step)
        u_next = self._u(step + 1)
        return u_next, 1 - product * u_next, 1 - self._u(step), 1 - product, 1 - self.beta_2 ** step

    def _update(self, value, grad, position, lr):
        u_next, next_denominator, grad_weight, denominator, correction = self._factors()
        m = self._slot("momentum", position)
        v = self._slot("velocity", position)
        step = self._scratch(position, value)
        work = self._scratch(position, value, 1)
        np.subtract(grad, m, out=work)
        work *= 1 - self.beta_1
        m += work
        np.square(grad, out=work)
        work -= v
        work *= 1 - self.beta_2
        v += work
        np.multiply(m, u_next, out=step)
        step /= next_denominator
        np.multiply(grad, grad_weight, out=work)
        work /= denominator
        step += work                                    # m_hat
        np.divide(v, correction, out=work)
        np.sqrt(work, out=work)
        work += self.epsilon
        step *= lr
        step /= work
        value -= step

    def _update_fused(self, value, grad, position, lr, decay):
        updates.nadam(value, grad, self._slot("momentum", position), self._slot("velocity", position), decay, lr,
                      self.beta_1, self.beta_2, self.epsilon, *self._factors())

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
