"""Adagrad, Keras' form: the accumulator starts at `initial_accumulator_value`."""

from __future__ import annotations

import numpy as np

from ..ops import updates
from .base import Optimizer, check_number


class Adagrad(Optimizer):
    """`acc += g^2; w -= lr * g / sqrt(acc + eps)`."""

    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "adagrad"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.initial_accumulator_value = check_number("Adagrad", "initial_accumulator_value",
                                                      initial_accumulator_value, 0.0)
        self.epsilon = check_number("Adagrad", "epsilon", epsilon, 0.0)

    def _initial_slot(self, slot, value):
        return np.full_like(value, self.initial_accumulator_value)

    def _update(self, value, grad, position, lr):
        accumulator = self._slot("accumulator", position)
        accumulator += np.square(grad)
        value -= lr * grad / np.sqrt(accumulator + self.epsilon)

    def _update_fused(self, value, grad, position, lr, decay):
        updates.adagrad(value, grad, self._slot("accumulator", position), decay, lr, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
