"""RMSprop, Keras' form (epsilon inside the square root)."""

from __future__ import annotations

import numpy as np

from ..ops import updates
from .base import Optimizer, check_number


class RMSprop(Optimizer):
    """`v = rho * v + (1 - rho) * g^2; w -= lr * g / sqrt(v + eps)` (centered: v - mean(g)^2)."""

    def __init__(self, learning_rate=0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name: str = "rmsprop"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = check_number("RMSprop", "rho", rho, 0.0, 1.0, high_inclusive=False)
        self.momentum = check_number("RMSprop", "momentum", momentum, 0.0, 1.0)
        self.epsilon = check_number("RMSprop", "epsilon", epsilon, 0.0)
        if not isinstance(centered, bool):
            raise TypeError(f"RMSprop: argument `centered` must be True or False, got {centered!r}")
        self.centered = centered
        self._slot_names = ("velocity",) + (("momentum",) if self.momentum else ()) + \
            (("average_gradient",) if centered else ())

    def _update(self, value, grad, position, lr):
        velocity = self._slot("velocity", position)
        velocity *= self.rho
        velocity += (1 - self.rho) * np.square(grad)
        if self.centered:
            average = self._slot("average_gradient", position)
            average *= self.rho
            average += (1 - self.rho) * grad
            denominator = velocity - np.square(average) + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = lr * grad / np.sqrt(denominator)
        if self.momentum:
            buffer = self._slot("momentum", position)
            buffer *= self.momentum
            buffer += increment
            value -= buffer
        else:
            value -= increment

    def _update_fused(self, value, grad, position, lr, decay):
        average = self._slot("average_gradient", position) if self.centered else None
        buffer = self._slot("momentum", position) if self.momentum else None
        updates.rmsprop(value, grad, self._slot("velocity", position), average, buffer, decay, lr, self.rho,
                        self.momentum, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}
