"""Learning-rate schedules, as `keras.optimizers.schedules`: `schedule(step)` -> learning rate.

`step` is the optimizer's `iterations` before the update (0 for the first step).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
           "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize"]


def _check_number(owner: str, arg: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: argument `{arg}` must be a number, got {value!r}")
    if not np.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{owner}: argument `{arg}` must be a {'positive' if positive else 'finite'} "
                         f"number, got {value!r}")
    return float(value)


def _check_range(owner: str, arg: str, value, low: float, high: Optional[float] = None,
                 low_inclusive: bool = True) -> float:
    """A finite number >= low (> low unless `low_inclusive`) and <= high, else TypeError/ValueError."""
    number = _check_number(owner, arg, value)
    if number < low or (number == low and not low_inclusive) or (high is not None and number > high):
        bounds = f"{'[' if low_inclusive else '('}{low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"{owner}: argument `{arg}` must be in {bounds}, got {value!r}")
    return number


def _check_steps(owner: str, arg: str, value, allow_zero: bool = False) -> int:
    """A positive int (or >= 0 with `allow_zero`), else TypeError/ValueError naming the schedule."""
    kind = "non-negative" if allow_zero else "positive"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: argument `{arg}` must be a {kind} int, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{owner}: argument `{arg}` must be a {kind} int, got {value!r}")
    return int(value)


def _check_name(owner: str, name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{owner}: argument `name` must be a str, got {name!r}")
    return name


def _step(owner: str, step) -> float:
    """The optimizer's step count as a float, else TypeError/ValueError naming the schedule."""
    if isinstance(step, np.ndarray) and step.ndim == 0:
        step = step.item()
    if isinstance(step, bool) or not isinstance(step, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: the step must be a number (the optimizer's iterations), got {step!r}")
    if not np.isfinite(step) or step < 0:
        raise ValueError(f"{owner}: the step must be a finite number >= 0, got {step!r}")
    return float(step)


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
        exponent = _step("ExponentialDecay", step) / self.decay_steps
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
        index = int(np.searchsorted(self.boundaries, _step("PiecewiseConstantDecay", step), side="left"))
        return self.values[index]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """`(initial - end) * (1 - step / decay_steps) ** power + end`, the step capped at `decay_steps`;
    with `cycle`, decay_steps grows to the first multiple of itself >= step (1x at step 0)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,
                 power: float = 1.0, cycle: bool = False, name: str = "PolynomialDecay"):
        owner = "PolynomialDecay"
        self.initial_learning_rate = _check_number(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _check_steps(owner, "decay_steps", decay_steps)
        self.end_learning_rate = _check_number(owner, "end_learning_rate", end_learning_rate)
        self.power = _check_range(owner, "power", power, 0.0)
        if not isinstance(cycle, bool):
            raise TypeError(f"{owner}: argument `cycle` must be True or False, got {cycle!r}")
        self.cycle = cycle
        self.name = _check_name(owner, name)

    def __call__(self, step) -> float:
        step = _step("PolynomialDecay", step)
        decay_steps = float(self.decay_steps)
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / self.decay_steps)
        else:
            step = min(step, decay_steps)
        fraction = step / decay_steps
        start, end = self.initial_learning_rate, self.end_learning_rate
        return (start - end) * (1 - fraction) ** self.power + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)`; with `staircase` the ratio is floored."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str = "InverseTimeDecay"):
        owner = "InverseTimeDecay"
        self.initial_learning_rate = _check_number(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _check_steps(owner, "decay_steps", decay_steps)
        self.decay_rate = _check_range(owner, "decay_rate", decay_rate, 0.0)
        if not isinstance(staircase, bool):
            raise TypeError(f"{owner}: argument `staircase` must be True or False, got {staircase!r}")
        self.staircase = staircase
        self.name = _check_name(owner, name)

    def __call__(self, step) -> float:
        ratio = _step("InverseTimeDecay", step) / self.decay_steps
        if self.staircase:
            ratio = math.floor(ratio)
        return self.initial_learning_rate / (1.0 + self.decay_rate * ratio)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


def _cosine(fraction: float, alpha: float) -> float:
    """(1 - alpha) * 0.5 * (1 + cos(pi * fraction)) + alpha."""
    return (1 - alpha) * (0.5 * (1.0 + math.cos(math.pi * fraction))) + alpha


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup from `initial_learning_rate` to `warmup_target` over `warmup_steps`, then a
    cosine from the warmup target (or the initial rate) to `alpha` times it over `decay_steps`, then flat."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 name: str = "CosineDecay", warmup_target: Optional[float] = None, warmup_steps: int = 0):
        owner = "CosineDecay"
        self.initial_learning_rate = _check_number(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _check_steps(owner, "decay_steps", decay_steps)
        self.alpha = _check_number(owner, "alpha", alpha)
        self.name = _check_name(owner, name)
        self.warmup_target = None if warmup_target is None else \
            _check_number(owner, "warmup_target", warmup_target)
        self.warmup_steps = _check_steps(owner, "warmup_steps", warmup_steps, allow_zero=True)

    def __call__(self, step) -> float:
        step = _step("CosineDecay", step)
        if self.warmup_target is None:
            fraction = min(step, self.decay_steps) / self.decay_steps
            return self.initial_learning_rate * _cosine(fraction, self.alpha)
        step = min(step, float(self.decay_steps + self.warmup_steps))
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * (step / self.warmup_steps) + self.initial_learning_rate
        fraction = (step - self.warmup_steps) / self.decay_steps
        return self.warmup_target * _cosine(fraction, self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """SGDR: cosine periods of `first_decay_steps * t_mul^i` steps, period i starting at `m_mul^i` times the
    initial rate and ending at `alpha` times that."""

    def __init__(self, initial_learning_rate: float, first_decay_steps: int, t_mul: float = 2.0,
                 m_mul: float = 1.0, alpha: float = 0.0, name: str = "SGDRDecay"):
        owner = "CosineDecayRestarts"
        self.initial_learning_rate = _check_number(owner, "initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _check_steps(owner, "first_decay_steps", first_decay_steps)
        self.t_mul = _check_range(owner, "t_mul", t_mul, 0.0, low_inclusive=False)
        self.m_mul = _check_range(owner, "m_mul", m_mul, 0.0)
        self.alpha = _check_number(owner, "alpha", alpha)
        self.name = _check_name(owner, name)

    def _start(self, index: int) -> float:
        """Where period `index` starts, in first periods: (1 - t_mul^index) / (1 - t_mul)."""
        return (1.0 - self.t_mul ** index) / (1.0 - self.t_mul)

    def _period(self, fraction: float):
        """(restart index i, fraction of period i done) at `fraction` first periods since step 0."""
        t_mul = self.t_mul
        if t_mul == 1.0:
            index = math.floor(fraction)
            return index, fraction - index
        argument = 1.0 - fraction * (1.0 - t_mul)
        if argument <= 0:              # t_mul < 1: the periods shrink and end (Keras gives NaN)
            raise ValueError(f"CosineDecayRestarts: with t_mul={t_mul} < 1 the periods end after "
                             f"first_decay_steps / (1 - t_mul) = {self.first_decay_steps / (1 - t_mul):g} steps; "
                             f"the step {fraction * self.first_decay_steps:g} is past them")
        index = math.floor(math.log(argument) / math.log(t_mul))
        # the logarithms can land an ulp below a restart (log(243) / log(3) = 4.999...): step over it
        for _ in range(2):
            if self._start(index + 1) <= fraction:
                index += 1
            elif index > 0 and self._start(index) > fraction:
                index -= 1
        return index, (fraction - self._start(index)) / t_mul ** index

    def __call__(self, step) -> float:
        fraction = _step("CosineDecayRestarts", step) / self.first_decay_steps
        index, fraction = self._period(fraction)
        cosine = 0.5 * self.m_mul ** index * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self.t_mul, "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                          InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule: LearningRateSchedule) -> Dict[str, Any]:
    """Keras 3's dict `{"module", "class_name", "config", "registered_name"}`, which Keras reads too."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"schedules.serialize: expected a LearningRateSchedule, got {schedule!r}")
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config: Dict[str, Any]) -> LearningRateSchedule:
    """A schedule from `serialize`'s dict or Keras' (its `module` and `registered_name` are not needed)."""
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"schedules.deserialize: expected {{'class_name': one of {sorted(_CLASSES)}, "
                         f"'config': {{...}}}}, got {config!r}")
    return _CLASSES[config["class_name"]].from_config(config.get("config", {}))
