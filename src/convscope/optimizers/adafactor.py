"""Adafactor, Keras 3's form: second moments kept factored (a row and a column average) for weights of two
or more axes, a step relative to the weight's RMS and clipped by its own RMS."""

from __future__ import annotations

import numpy as np

from .base import Optimizer, check_number


class Adafactor(Optimizer):
    """At step t: `beta = 1 − t^beta_2_decay`, `s = g² + epsilon_1`; a weight of ≥ 2 axes keeps
    `r = beta·r + (1 − beta)·mean(s, -1)`, `c = beta·c + (1 − beta)·mean(s, -2)` and `v = r / mean(r) ⊗ c`,
    a smaller one `v = beta·v + (1 − beta)·s`; `u = g / sqrt(v)`, `w -= max(epsilon_2, rms(w)) · rho ·
    u / max(1, rms(u) / clip_threshold)` with `rho = min(lr, 1 / sqrt(t))`.  `relative_step` is kept for
    the config: Keras caps lr at 1 / sqrt(t) with it, which rho does in any case."""

    _slot_names = ("r", "c", "v")
    _fused = False

    def __init__(self, learning_rate=0.001, beta_2_decay: float = -0.8, epsilon_1: float = 1e-30,
                 epsilon_2: float = 1e-3, clip_threshold: float = 1.0, relative_step: bool = True, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "adafactor"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_2_decay = check_number("Adafactor", "beta_2_decay", beta_2_decay, -np.inf, 0.0)
        self.epsilon_1 = check_number("Adafactor", "epsilon_1", epsilon_1)
        self.epsilon_2 = check_number("Adafactor", "epsilon_2", epsilon_2)
        self.clip_threshold = check_number("Adafactor", "clip_threshold", clip_threshold, 0.0, low_inclusive=False)
        if not isinstance(relative_step, (bool, np.bool_)):
            raise TypeError(f"Adafactor: argument `relative_step` must be True or False, got {relative_step!r}")
        self.relative_step = bool(relative_step)

    def _initial_slot(self, slot: str, value: np.ndarray) -> np.ndarray:
        """r: the weight's shape without its last axis, c: without its second last (for a weight of fewer than 2
        axes, which keeps v alone, Keras' unused int32 scalar 0)."""
        if slot == "v":
            return np.zeros_like(value)
        if value.ndim < 2:
            return np.zeros((), np.int32)
        return np.zeros(value.shape[:-1] if slot == "r" else value.shape[:-2] + value.shape[-1:], value.dtype)

    def _update(self, value, grad, position, lr):
        step = self.iterations + 1
        dtype = value.dtype.type
        rho = dtype(min(lr, 1 / np.sqrt(step)))
        alpha = max(dtype(self.epsilon_2), _rms(value)) * rho
        squares = np.square(grad) + dtype(self.epsilon_1)
        beta = dtype(1 - step ** self.beta_2_decay)
        r, c, v = (self._slot(name, position) for name in ("r", "c", "v"))
        if value.ndim >= 2:
            r[...] = beta * r + (1 - beta) * squares.mean(axis=-1)
            c[...] = beta * c + (1 - beta) * squares.mean(axis=-2)
            v[...] = (r / r.mean(axis=-1, keepdims=True))[..., None] * c[..., None, :]
        else:
            v[...] = beta * v + (1 - beta) * squares
        u = grad / np.sqrt(v)
        value -= alpha * (u / max(dtype(1), _rms(u) / dtype(self.clip_threshold)))

    def get_config(self):
        return {**super().get_config(), "beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step}


def _rms(x: np.ndarray):
    return np.sqrt(np.mean(np.square(x)))
