"""Lamb, Keras 3's form: Adam's bias-corrected step scaled per variable by ‖w‖ / ‖step‖ (layer-wise trust)."""

from __future__ import annotations

import numpy as np

from .base import Optimizer, check_number


class Lamb(Optimizer):
    """`m += (g − m)(1 − beta_1); v += (g² − v)(1 − beta_2); u = m̂ / (sqrt(v̂) + eps)`,
    `w -= lr · (‖w‖ / ‖u‖ if both are positive, else 1) · u` (m̂, v̂: bias-corrected at step t)."""

    _slot_names = ("momentum", "velocity")
    _fused = False

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "lamb"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = check_number("Lamb", "beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = check_number("Lamb", "beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = check_number("Lamb", "epsilon", epsilon, 0.0)

    def _update(self, value, grad, position, lr):
        m, v = self._slot("momentum", position), self._slot("velocity", position)
        step = self.iterations + 1
        dtype = value.dtype.type
        m += (grad - m) * dtype(1 - self.beta_1)
        v += (np.square(grad) - v) * dtype(1 - self.beta_2)
        update = (m / dtype(1 - self.beta_1 ** step)) / (np.sqrt(v / dtype(1 - self.beta_2 ** step))
                                                         + dtype(self.epsilon))
        w_norm, u_norm = np.sqrt(np.sum(np.square(value))), np.sqrt(np.sum(np.square(update)))
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        value -= dtype(ratio * lr) * update

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
