"""Optimizers with Keras' update rules and defaults; `get("adam")` as `keras.optimizers.get`."""

from __future__ import annotations

from typing import Any, Dict

from . import schedules
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .base import Optimizer
from .ftrl import Ftrl
from .lamb import Lamb
from .lion import Lion
from .nadam import Nadam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Lion",
           "Ftrl", "Lamb", "Adafactor", "schedules", "get", "serialize", "deserialize"]

_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl,
                                          Lamb, Adafactor)}
_NAMES = {name.lower(): cls for name, cls in _CLASSES.items()}


def get(identifier) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "Adam", ...), a serialized dict, or an Optimizer itself."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier) or _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"optimizers.get: unknown optimizer {identifier!r}; known: "
                             f"{', '.join(sorted(_NAMES))}")
        return cls()
    raise TypeError(f"optimizers.get: expected an optimizer name, a config dict or an Optimizer, "
                    f"got {identifier!r}")


def serialize(optimizer: Optimizer) -> Dict[str, Any]:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizers.serialize: expected an Optimizer, got {optimizer!r}")
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: Dict[str, Any]) -> Optimizer:
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"optimizers.deserialize: expected {{'class_name': one of {sorted(_CLASSES)}, "
                         f"'config': {{...}}}}, got {config!r}")
    return _CLASSES[config["class_name"]].from_config(config.get("config", {}))
