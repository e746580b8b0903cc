"""Learning-rate schedules, as `keras.optimizers.schedules`: `schedule(step)` -> learning rate.

`step` is the optimizer's `iterations` before the update (0 for the first step).
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "serialize", "deserialize"]


def _check_number(owner: str, arg: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: argument `{arg}` must be a number, got {value!r}")
    if not np.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{owner}: argument `{arg}` must be a {'positive' if positive else 'finite'} "
                         f"number, got {value!r}")
    return float(value)


class LearningRateSchedule:
    """Base: a function of the step count."""

    def __call__(self, step) -> float:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "LearningRateSchedule":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`; with `staircase` the exponent is floored."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str = "ExponentialDecay"):
        self.initial_learning_rate = _check_number("ExponentialDecay", "initial_learning_rate",
                                                   initial_learning_rate)
        if isinstance(decay_steps, bool) or not isinstance(decay_steps, (int, np.integer)) or decay_steps <= 0:
            raise ValueError(f"ExponentialDecay: argument `decay_steps` must be a positive int, got {decay_steps!r}")
        self.decay_steps = int(decay_steps)
        self.decay_rate = _check_number("ExponentialDecay", "decay_rate", decay_rate, positive=True)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step) -> float:
        exponent = float(step) / self.decay_steps
        if self.staircase:
            exponent = float(np.floor(exponent))
        return self.initial_learning_rate * self.decay_rate ** exponent

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` while step <= boundaries[0], `values[i]` while step <= boundaries[i], then `values[-1]`."""

    def __init__(self, boundaries, values, name: str = "PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantDecay: argument `values` must have one more element than "
                             f"`boundaries`, got {len(boundaries)} boundaries and {len(values)} values")
        if any(b2 < b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: argument `boundaries` must be increasing, got {boundaries}")
        self.boundaries = [_check_number("PiecewiseConstantDecay", "boundaries", b) for b in boundaries]
        self.values = [_check_number("PiecewiseConstantDecay", "values", v) for v in values]
        self.name = name

    def __call__(self, step) -> float:
        index = int(np.searchsorted(self.boundaries, float(step), side="left"))
        return self.values[index]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


_CLASSES = {"ExponentialDecay": ExponentialDecay, "PiecewiseConstantDecay": PiecewiseConstantDecay}


def serialize(schedule: LearningRateSchedule) -> Dict[str, Any]:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: Dict[str, Any]) -> LearningRateSchedule:
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"schedules.deserialize: expected {{'class_name': one of {sorted(_CLASSES)}, "
                         f"'config': {{...}}}}, got {config!r}")
    return _CLASSES[config["class_name"]].from_config(config.get("config", {}))
