"""Session-wide settings, as in `keras.backend`: float type and automatic layer names."""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict

_FLOATX = {"value": "float32"}
_NAME_COUNTS: defaultdict = defaultdict(int)
_KEEP_FOR_BACKWARD = {"value": True}


def floatx() -> str:
    """The default float type of new layers ("float32", as Keras)."""
    return _FLOATX["value"]


def set_floatx(value: str) -> None:
    if value not in ("float32", "float64"):
        raise ValueError(f"set_floatx: argument `value` must be 'float32' or 'float64', got {value!r}")
    _FLOATX["value"] = value


def unique_name(base: str) -> str:
    """Keras' automatic names: the first `conv2d`, then `conv2d_1`, `conv2d_2`, ..."""
    count = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def clear_session() -> None:
    """Restart automatic naming, so the next Conv2D is called `conv2d` again."""
    _NAME_COUNTS.clear()


def snake_case(class_name: str) -> str:
    """`MaxPooling2D` -> `max_pooling2d`, `Conv2D` -> `conv2d`, as Keras names layers."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


@contextlib.contextmanager
def no_backward():
    """Inside this block layers keep nothing for a backward pass: `predict` and `evaluate`
    use it so that inference holds no padded inputs, windows or pre-activations."""
    previous = _KEEP_FOR_BACKWARD["value"]
    _KEEP_FOR_BACKWARD["value"] = False
    try:
        yield
    finally:
        _KEEP_FOR_BACKWARD["value"] = previous


def keeps_for_backward() -> bool:
    """False inside `no_backward()`."""
    return _KEEP_FOR_BACKWARD["value"]
