"""Session-wide settings, as in `keras.backend`: float type and automatic layer names.

Thread safety: `unique_name` and `clear_session` hold a lock, so layers created in several
threads at once still get distinct names; `no_backward()` is per thread (and per asyncio
task: a `contextvars.ContextVar`, as PyTorch's `no_grad` is per thread), so `predict` in one
thread never turns off what `fit` in another keeps for its backward pass.  `set_floatx` is a
process-wide setting, as in Keras: set it before creating layers, not while other threads do.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
from collections import defaultdict

_FLOATX = {"value": "float32"}
_NAME_COUNTS: defaultdict = defaultdict(int)
_NAMES_LOCK = threading.Lock()            # a read-then-increment of _NAME_COUNTS is not atomic
# Per thread and per asyncio task; a new thread starts with the default (True).  The ops' own
# pool threads run each block of work in a copy of the caller's context (`parallel.run_in_parallel`).
_KEEP_FOR_BACKWARD = contextvars.ContextVar("convscope_keep_for_backward", default=True)


def floatx() -> str:
    """The default float type of new layers ("float32", as Keras)."""
    return _FLOATX["value"]


def set_floatx(value: str) -> None:
    if value not in ("float32", "float64"):
        raise ValueError(f"set_floatx: argument `value` must be 'float32' or 'float64', got {value!r}")
    _FLOATX["value"] = value


def unique_name(base: str) -> str:
    """Keras' automatic names: the first `conv2d`, then `conv2d_1`, `conv2d_2`, ..."""
    with _NAMES_LOCK:
        count = _NAME_COUNTS[base]
        _NAME_COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def clear_session() -> None:
    """Restart automatic naming, so the next Conv2D is called `conv2d` again."""
    with _NAMES_LOCK:
        _NAME_COUNTS.clear()


def snake_case(class_name: str) -> str:
    """`MaxPooling2D` -> `max_pooling2d`, `Conv2D` -> `conv2d`, as Keras names layers."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


@contextlib.contextmanager
def no_backward():
    """Inside this block layers keep nothing for a backward pass: `predict` and `evaluate`
    use it so that inference holds no padded inputs, windows or pre-activations.

    Per thread (and per asyncio task): other threads keep what their forward passes need."""
    previous = _KEEP_FOR_BACKWARD.get()
    _KEEP_FOR_BACKWARD.set(False)
    try:
        yield
    finally:
        _KEEP_FOR_BACKWARD.set(previous)


@contextlib.contextmanager
def keep_for_backward():
    """The opposite of `no_backward()`: inside it, forward passes keep what backward needs (in this
    thread) — e.g. the pre-activation a fused loss reads during evaluation."""
    token = _KEEP_FOR_BACKWARD.set(True)
    try:
        yield
    finally:
        _KEEP_FOR_BACKWARD.reset(token)


def keeps_for_backward() -> bool:
    """False inside `no_backward()` in this thread (or asyncio task)."""
    return _KEEP_FOR_BACKWARD.get()
