"""ReduceLROnPlateau: lower the optimizer's learning rate when a metric stops improving (Keras 3's rules)."""

from __future__ import annotations

import warnings

import numpy as np

from .core import Callback, _check_monitor, _monitor_op

__all__ = ["ReduceLROnPlateau"]


def _number(arg: str, value, low: float, high: float = np.inf, high_open: bool = False) -> float:
    """A finite number in [low, high] (or [low, high)), else TypeError/ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"ReduceLROnPlateau: argument `{arg}` must be a number, got {value!r}")
    too_high = value >= high if high_open else value > high
    if not np.isfinite(value) or value < low or too_high:
        bound = f"[{low}, {high}{')' if high_open else ']'}" if np.isfinite(high) else f">= {low}"
        raise ValueError(f"ReduceLROnPlateau: argument `{arg}` must be a number {bound}, got {value!r}")
    return float(value)


def _count(arg: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"ReduceLROnPlateau: argument `{arg}` must be a non-negative int, got {value!r}")
    return int(value)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` after `patience` epochs without an improvement of
    `monitor` by more than `min_delta`, never below `min_lr`; then wait `cooldown` epochs.

    As Keras, each epoch's logs get `learning_rate` (the rate that epoch used).  An optimizer built
    on a schedule cannot be given a number: the optimizer raises TypeError, as Keras' does.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        super().__init__()
        self.monitor = _check_monitor("ReduceLROnPlateau", monitor)
        self.factor = _number("factor", factor, 0.0, 1.0, high_open=True)
        self.patience = _count("patience", patience)
        self.cooldown = _count("cooldown", cooldown)
        self.min_lr = _number("min_lr", min_lr, 0.0)
        self.mode = mode
        self.monitor_op = _monitor_op("ReduceLROnPlateau", mode, self.monitor)
        delta = abs(_number("min_delta", min_delta, -np.inf))
        self.min_delta = -delta if self.monitor_op is np.less else delta
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_improvement(self, current: float, reference) -> bool:
        return reference is None or bool(self.monitor_op(current - self.min_delta, reference))

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def _reduce(self, epoch: int) -> bool:
        """lr * factor (at least min_lr) when lr is above min_lr (compared in float32, as Keras)."""
        optimizer = self.model.optimizer
        old_lr = float(optimizer.learning_rate)
        if not old_lr > np.float32(self.min_lr):
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        optimizer.learning_rate = new_lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        return True
