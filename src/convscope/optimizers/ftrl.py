"""Ftrl, Keras 3's form: Follow The Regularized Leader with L1, L2 and shrinkage-L2 strengths."""

from __future__ import annotations

import numpy as np

from .base import Optimizer, check_number


class Ftrl(Optimizer):
    """`n' = n + g²; z += g + 2·l2_shrinkage·w − (n'^(−p) − n^(−p)) / lr · w;
    w = (clip(z, ±l1) − z) / (n'^(−p) / lr + 2·(l2 + beta / (2·lr))); n = n'` (p: learning_rate_power)."""

    _slot_names = ("accumulator", "linear")
    _fused = False

    def __init__(self, learning_rate=0.001, learning_rate_power: float = -0.5, initial_accumulator_value: float = 0.1,
                 l1_regularization_strength: float = 0.0, l2_regularization_strength: float = 0.0,
                 l2_shrinkage_regularization_strength: float = 0.0, beta: float = 0.0, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "ftrl"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.learning_rate_power = check_number("Ftrl", "learning_rate_power", learning_rate_power, -np.inf, 0.0)
        self.initial_accumulator_value = check_number("Ftrl", "initial_accumulator_value", initial_accumulator_value)
        self.l1_regularization_strength = check_number("Ftrl", "l1_regularization_strength",
                                                       l1_regularization_strength)
        self.l2_regularization_strength = check_number("Ftrl", "l2_regularization_strength",
                                                       l2_regularization_strength)
        self.l2_shrinkage_regularization_strength = check_number(
            "Ftrl", "l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength)
        self.beta = check_number("Ftrl", "beta", beta)

    def _initial_slot(self, slot: str, value: np.ndarray) -> np.ndarray:
        if slot == "accumulator":
            return np.full_like(value, self.initial_accumulator_value)
        return np.zeros_like(value)

    def _update(self, value, grad, position, lr):
        n, z = self._slot("accumulator", position), self._slot("linear", position)
        power = -self.learning_rate_power
        l2 = self.l2_regularization_strength + self.beta / (2.0 * lr)
        new_n = n + np.square(grad)
        new_root = np.power(new_n, power)
        z += grad + 2 * self.l2_shrinkage_regularization_strength * value - (new_root - np.power(n, power)) / lr * value
        quadratic = new_root / lr + 2 * l2
        l1 = self.l1_regularization_strength
        value[...] = (np.clip(z, -l1, l1) - z) / quadratic
        n[...] = new_n

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta}

