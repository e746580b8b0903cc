"""Stochastic gradient descent with optional (Nesterov) momentum, Keras' form."""

from __future__ import annotations

from ..ops import updates
from .base import Optimizer, check_number


class SGD(Optimizer):
    """`v = momentum * v - lr * g; w += v` (Nesterov: `w += momentum * v - lr * g`); plain `w -= lr * g`."""

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "SGD"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = check_number("SGD", "momentum", momentum, 0.0, 1.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"SGD: argument `nesterov` must be True or False, got {nesterov!r}")
        self.nesterov = nesterov
        self._slot_names = ("momentum",) if self.momentum else ()

    def _update(self, value, grad, position, lr):
        if not self.momentum:
            value -= lr * grad
            return
        velocity = self._slot("momentum", position)
        velocity *= self.momentum
        velocity -= lr * grad
        if self.nesterov:
            value += self.momentum * velocity - lr * grad
        else:
            value += velocity

    def _update_fused(self, value, grad, position, lr, decay):
        velocity = self._slot("momentum", position) if self.momentum else None
        updates.sgd(value, grad, velocity, decay, lr, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
