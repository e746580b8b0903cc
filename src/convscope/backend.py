"""Session-wide settings, as in `keras.backend`: float type and automatic layer names.

Thread safety: `unique_name` and `clear_session` hold a lock, so layers created in several
threads at once still get distinct names; `no_backward()` is per thread (and per asyncio
task: a `contextvars.ContextVar`, as PyTorch's `no_grad` is per thread), so `predict` in one
thread never turns off what `fit` in another keeps for its backward pass.  `set_floatx` is a
process-wide setting, as in Keras: set it before creating layers, not while other threads do.

Session settings, as `keras.backend` / `keras.config` (process-wide module state, as Keras'
own; `clear_session` resets names, not these): `floatx`, `epsilon` (1e-7) and
`image_data_format` ("channels_last"; layers built with `data_format=None` and the CIFAR
loaders follow it at the time they are created or called).  Keras 2's `image_dim_ordering`
is gone from Keras 3 and so is not here.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import math
import numbers
import re
import threading
from collections import defaultdict

_FLOATX = {"value": "float32"}
_SETTINGS = {"epsilon": 1e-7, "image_data_format": "channels_last"}
_DATA_FORMATS = ("channels_last", "channels_first")
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


def clear_session(free_memory=True) -> None:
    """Restart automatic naming (and `get_uid`), so the next Conv2D is called `conv2d` again.

    As Keras 3: floatx, epsilon and image_data_format stay; `free_memory` runs `gc.collect()`."""
    if not isinstance(free_memory, bool):
        raise TypeError(f"clear_session: argument `free_memory` must be True or False, "
                        f"got {free_memory!r}")
    with _NAMES_LOCK:
        _NAME_COUNTS.clear()
    if free_memory:
        gc.collect()


def get_uid(prefix: str = "") -> int:
    """Keras' `get_uid`: 1, 2, 3, ... per prefix, sharing the counters of automatic names."""
    if not isinstance(prefix, str):
        raise TypeError(f"get_uid: argument `prefix` must be a str, got {prefix!r}")
    with _NAMES_LOCK:
        _NAME_COUNTS[prefix] += 1
        return _NAME_COUNTS[prefix]


def backend() -> str:
    """The name of the array backend: "numpy" (Keras 3 has a backend of that name)."""
    return "numpy"


def epsilon() -> float:
    """The fuzz factor of numeric expressions (1e-7, as Keras)."""
    return _SETTINGS["epsilon"]


def set_epsilon(value) -> None:
    """Set `epsilon()`: a finite float > 0 (Keras stores any value; convscope checks it).

    Unlike Keras, convscope's crossentropy clipping, norm constraints and Normalization still use
    the default 1e-7 (their own constants), whatever is set here."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"set_epsilon: argument `value` must be a float, got {value!r}")
    if not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"set_epsilon: argument `value` must be a finite float > 0, got {value!r}")
    _SETTINGS["epsilon"] = float(value)


def image_data_format() -> str:
    """The default image layout, "channels_last" (as Keras) or "channels_first"."""
    return _SETTINGS["image_data_format"]


def set_image_data_format(data_format) -> None:
    """Set `image_data_format()`; layers created later with `data_format=None` follow it."""
    if not isinstance(data_format, str) or data_format.lower() not in _DATA_FORMATS:
        raise ValueError(f"set_image_data_format: argument `data_format` must be one of "
                         f"{_DATA_FORMATS}, got {data_format!r}")
    _SETTINGS["image_data_format"] = data_format.lower()


def standardize_data_format(data_format, where: str = "standardize_data_format") -> str:
    """Keras' rule: None means `image_data_format()`; else one of the two names, any case."""
    if data_format is None:
        return image_data_format()
    if not isinstance(data_format, str) or data_format.lower() not in _DATA_FORMATS:
        raise ValueError(f"{where}: argument `data_format` must be one of {_DATA_FORMATS} or "
                         f"None, got {data_format!r}")
    return data_format.lower()


def snake_case(class_name: str) -> str:
    """`MaxPooling2D` -> `max_pooling2d`, `Conv2D` -> `conv2d`, as Keras names layers."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def no_backward() -> "_NoBackward":
    """Inside this block layers keep nothing for a backward pass: `predict` and `evaluate`
    use it so that inference holds no padded inputs, windows or pre-activations.

    Per thread (and per asyncio task): other threads keep what their forward passes need.  A plain
    class, not a generator: entered at every inference call (a generator's context costs several
    times as much to enter and leave)."""
    return _NoBackward()


class _NoBackward:
    __slots__ = ("previous",)

    def __enter__(self) -> None:
        self.previous = _KEEP_FOR_BACKWARD.get()
        _KEEP_FOR_BACKWARD.set(False)

    def __exit__(self, *error) -> None:
        _KEEP_FOR_BACKWARD.set(self.previous)


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
