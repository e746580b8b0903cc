"""`Optimizer`: the shared part of every update rule (Keras 3's `BaseOptimizer`).

`apply(variables)` updates each variable in place from its `.grad`:
clip the gradients (`clipnorm`, `clipvalue` or `global_clipnorm`), apply
decoupled weight decay (`w -= w * weight_decay * lr`), run the rule's
`_update`, count the step, then project each variable with its constraint.
With the compiled kernels on, `_update_fused` does the decay and the rule in one
pass (`ops.updates`, the same operations in the same order); `_update` is the
NumPy reference and the fallback.

Slots (moments, accumulators) are created on the first `apply` and are tied to
the variables' positions in the list it receives; `get_state()` returns them as
`{"iterations": ..., "<slot>/<position>": array}` so that saving and loading
continues training exactly.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..ops import compiled, updates
from . import schedules

__all__ = ["Optimizer"]


def _check_optional_positive(owner: str, arg: str, value) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: argument `{arg}` must be a positive number or None, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}: argument `{arg}` must be a positive number or None, got {value!r}")
    return float(value)


def check_number(owner: str, arg: str, value, low: float = 0.0, high: Optional[float] = None,
                 low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """A finite number within bounds, else TypeError/ValueError naming the optimizer and argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: argument `{arg}` must be a number, got {value!r}")
    below = value < low if low_inclusive else value <= low
    above = high is not None and (value > high if high_inclusive else value >= high)
    if not np.isfinite(value) or below or above:
        lo = "[" if low_inclusive else "("
        hi = "]" if high_inclusive else ")"
        raise ValueError(f"{owner}: argument `{arg}` must be in {lo}{low}, "
                         f"{'inf' if high is None else high}{hi}, got {value!r}")
    return float(value)


# Keras 3 optimizer arguments convscope does not implement, with the values that leave them off
# (`ema_momentum` only matters with `use_ema`: any value).
_KERAS_ONLY_KEYS = {"use_ema": (False,), "ema_momentum": (), "ema_overwrite_frequency": (None,),
                    "loss_scale_factor": (None,), "gradient_accumulation_steps": (None, 1)}


class Optimizer:
    """Base of SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl, Lamb, Adafactor."""

    #: slot names the rule keeps per variable (created as zeros unless `_initial_slot` says otherwise)
    _slot_names: Sequence[str] = ()
    #: whether `_update_fused` exists (`ops.updates` kernels); without it `_update` always runs
    _fused = True

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name: Optional[str] = None):
        owner = type(self).__name__
        self.name = name or owner.lower()
        self._learning_rate = self._check_learning_rate(learning_rate)
        self._scratch_buffers: Dict[tuple, np.ndarray] = {}
        # 0 means no decay, as None does
        self.weight_decay = None if weight_decay is None or weight_decay == 0 else \
            _check_optional_positive(owner, "weight_decay", weight_decay)
        self.clipnorm = _check_optional_positive(owner, "clipnorm", clipnorm)
        self.clipvalue = _check_optional_positive(owner, "clipvalue", clipvalue)
        self.global_clipnorm = _check_optional_positive(owner, "global_clipnorm", global_clipnorm)
        given = [n for n in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"{owner}: give at most one of clipnorm, clipvalue and global_clipnorm, got {given}")
        self.iterations = 0
        self._slots: Optional[Dict[str, List[np.ndarray]]] = None
        self._pending_state: Optional[Dict[str, np.ndarray]] = None

    # -- learning rate ---------------------------------------------------------------------
    def _check_learning_rate(self, value):
        if isinstance(value, schedules.LearningRateSchedule):
            return value
        return check_number(type(self).__name__, "learning_rate", value, low=0.0)

    @property
    def learning_rate(self) -> float:
        """The rate the next step uses (a schedule is evaluated at `iterations`)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(self._learning_rate, schedules.LearningRateSchedule) and \
                not isinstance(value, schedules.LearningRateSchedule):
            raise TypeError(f"{type(self).__name__}: this optimizer was created with the schedule "
                            f"{self._learning_rate!r}; the learning rate cannot be set to the number {value!r}")
        self._learning_rate = self._check_learning_rate(value)

    # -- the update --------------------------------------------------------------------------
    def apply(self, variables: Sequence) -> None:
        """One update of every variable from its `.grad`, then its constraint; `iterations += 1`."""
        variables = list(variables)
        self._ensure_slots(variables)
        grads = [self._checked_grad(v) for v in variables]
        grads = self._clip(grads)
        lr = float(self.learning_rate)
        decay = None if self.weight_decay is None else self.weight_decay * lr
        for position, (variable, grad) in enumerate(zip(variables, grads)):
            value = variable.value
            slots = [arrays[position] for arrays in self._slots.values()]
            if self._fused and compiled.active() and updates.supports(value, grad, *slots):
                self._update_fused(value, grad, position, lr, decay)
            else:
                if decay is not None:
                    value -= value * decay
                self._update(value, grad, position, lr)
        self.iterations += 1
        for variable in variables:
            if variable.constraint is not None:
                variable.value[...] = variable.constraint(variable.value)

    def _update(self, value: np.ndarray, grad: np.ndarray, position: int, lr: float) -> None:
        """Update `value` in place with NumPy (the reference); subclasses implement the rule."""
        raise NotImplementedError

    def _update_fused(self, value: np.ndarray, grad: np.ndarray, position: int, lr: float,
                      decay: Optional[float]) -> None:
        """`value -= value * decay` (None: no decay) then `_update`'s rule, in one pass by `ops.updates`."""
        raise NotImplementedError

    def _scratch(self, position: int, value: np.ndarray, index: int = 0) -> np.ndarray:
        """Work buffer `index` shaped like variable `position`, reused across steps (not state)."""
        buffers = self._scratch_buffers
        buffer = buffers.get((position, index))
        if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
            buffer = buffers[(position, index)] = np.empty_like(value)
        return buffer

    def _checked_grad(self, variable) -> np.ndarray:
        grad = variable.grad
        if grad is None:
            raise ValueError(f"{type(self).__name__}.apply: variable '{variable.name}' has no gradient "
                             "(run a backward pass first)")
        grad = np.asarray(grad)
        if grad.shape != variable.value.shape:
            raise ValueError(f"{type(self).__name__}.apply: gradient of '{variable.name}' has shape "
                             f"{grad.shape}, expected {variable.value.shape}")
        return grad.astype(variable.value.dtype, copy=False)

    def _clip(self, grads: List[np.ndarray]) -> List[np.ndarray]:
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            return [g * (self.clipnorm / max(float(np.linalg.norm(g)), self.clipnorm)) for g in grads]
        if self.global_clipnorm is not None:
            total = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads)))
            scale = self.global_clipnorm / max(total, self.global_clipnorm)
            return [g * scale for g in grads]
        return grads

    # -- slots and state ---------------------------------------------------------------------
    def _initial_slot(self, slot: str, value: np.ndarray) -> np.ndarray:
        return np.zeros_like(value)

    def _ensure_slots(self, variables: List) -> None:
        if self._slots is None:
            self._slots = {slot: [self._initial_slot(slot, v.value) for v in variables]
                           for slot in self._slot_names}
            if self._pending_state is not None:
                state, self._pending_state = self._pending_state, None
                self._load_slots(state)
            return
        count = len(next(iter(self._slots.values()))) if self._slots else len(variables)
        if self._slot_names and count != len(variables):
            raise ValueError(f"{type(self).__name__}.apply: this optimizer was built for {count} variables, "
                             f"got {len(variables)}; use a new optimizer for another model")

    def _slot(self, slot: str, position: int) -> np.ndarray:
        return self._slots[slot][position]

    def get_state(self) -> Dict[str, np.ndarray]:
        """Every slot (copies) keyed `"<slot>/<position>"`, plus `"iterations"`."""
        state = {"iterations": np.asarray(self.iterations, dtype=np.int64)}
        if self._slots is not None:
            for slot, arrays in self._slots.items():
                for position, array in enumerate(arrays):
                    state[f"{slot}/{position}"] = array.copy()
        elif self._pending_state is not None:
            state.update({k: v.copy() for k, v in self._pending_state.items() if k != "iterations"})
        return state

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        """Restore `get_state()`'s output; slots wait for the first `apply` if not built yet."""
        if not isinstance(state, dict) or "iterations" not in state:
            raise ValueError(f"{type(self).__name__}.set_state: expected the dict from get_state() with an "
                             f"'iterations' entry, got {type(state).__name__} with keys "
                             f"{sorted(state) if isinstance(state, dict) else None}")
        unknown = [k for k in state if k != "iterations" and k.split("/")[0] not in self._slot_names]
        if unknown:
            raise ValueError(f"{type(self).__name__}.set_state: unknown slots {unknown}; "
                             f"this optimizer keeps {list(self._slot_names)}")
        self.iterations = int(np.asarray(state["iterations"]))
        slots = {k: np.array(v) for k, v in state.items() if k != "iterations"}
        if self._slots is None:
            self._pending_state = slots
        else:
            self._load_slots(slots)

    def _load_slots(self, state: Dict[str, np.ndarray]) -> None:
        for key, array in state.items():
            slot, _, position = key.partition("/")
            arrays = self._slots[slot]
            index = int(position)
            if index >= len(arrays) or arrays[index].shape != array.shape:
                expected = arrays[index].shape if index < len(arrays) else "no such variable"
                raise ValueError(f"{type(self).__name__}.set_state: slot '{key}' has shape {array.shape}, "
                                 f"expected {expected}")
            arrays[index][...] = array

    # -- config ------------------------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": schedules.serialize(lr) if isinstance(lr, schedules.LearningRateSchedule) else lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Optimizer":
        """Rebuild from `get_config()`'s dict or Keras' (its EMA, loss-scale and accumulation keys when off)."""
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: expected a dict, got {config!r}")
        config = dict(config)
        for key, off in _KERAS_ONLY_KEYS.items():
            value = config.pop(key, off[0] if off else None)
            if off and value not in off:
                raise ValueError(f"{cls.__name__}.from_config: Keras' `{key}` is not supported here; expected "
                                 f"{' or '.join(map(repr, off))} (off), got {value!r}")
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} learning_rate={self.learning_rate:g} iterations={self.iterations}>"
