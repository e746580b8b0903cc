"""Keras' custom-object registry: `register_keras_serializable`, `get_custom_objects`, `custom_object_scope`.

A config names a class; only classes the user's code registered (or passes as `custom_objects`) are found
by name, so a file can choose among them but never brings code of its own.  The registry is process-wide,
as Keras' is (registration is configuration, done at import time); a scope is per thread (a context
variable).
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any, Dict, Optional

_REGISTERED: Dict[str, Any] = {}        # "package>name" (or a name the user set) -> class or function
_NAMES: Dict[Any, str] = {}             # object -> its registered name
_LOCK = threading.Lock()
_SCOPES: contextvars.ContextVar = contextvars.ContextVar("convscope_custom_object_scopes", default=())


def register_keras_serializable(package: str = "Custom", name: Optional[str] = None):
    """Decorator registering a class (or function) as `package>name` (name: its own), as Keras'."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"register_keras_serializable: argument `package` must be a string without '>', got "
                         f"{package!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"register_keras_serializable: argument `name` must be a string or None, got {name!r}")

    def decorator(obj):
        if not callable(obj):
            raise TypeError(f"register_keras_serializable: expected a class or a function, got {obj!r}")
        key = f"{package}>{name or obj.__name__}"
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise TypeError(f"register_keras_serializable: class '{obj.__name__}' has no get_config(), so it "
                            "cannot be written into a config")
        with _LOCK:
            _REGISTERED[key] = obj
            _NAMES[obj] = key
        return obj
    return decorator


def get_custom_objects() -> Dict[str, Any]:
    """The registry itself (Keras': `get_custom_objects().update({"MyLayer": MyLayer})` registers too)."""
    return _REGISTERED


def get_registered_name(obj) -> str:
    """The name `obj` was registered under, else its own name."""
    try:
        name = _NAMES.get(obj)
    except TypeError:                   # an object that cannot be a dict key was never registered
        name = None
    return name or getattr(obj, "__name__", type(obj).__name__)


def get_registered_object(name: str, custom_objects: Optional[Dict[str, Any]] = None, module_objects=None):
    """The object registered (or given, or in a scope) as `name`, else None."""
    return lookup(name, None, custom_objects) or (module_objects or {}).get(name)


class CustomObjectScope:
    """`with custom_object_scope({"MyLayer": MyLayer}):` — these names are found while the block runs, in this
    thread (Keras' scope)."""

    def __init__(self, custom_objects=None, *more):
        objects = {}
        for mapping in (custom_objects,) + more:
            if mapping is None:
                continue
            if not isinstance(mapping, dict):
                raise TypeError(f"custom_object_scope: expected dicts of name -> class or function, got "
                                f"{type(mapping).__name__}")
            objects.update(mapping)
        self._objects = objects

    def __enter__(self):
        _SCOPES.set(_SCOPES.get() + (self._objects,))      # this thread's (context's) scopes only
        return self

    def __exit__(self, *error):
        _SCOPES.set(_SCOPES.get()[:-1])


custom_object_scope = CustomObjectScope


def lookup(class_name: Optional[str], registered_name: Optional[str], custom_objects=None):
    """The class a config names: from `custom_objects` by its class name, then the innermost scope, then the
    registry by its registered name (Keras writes "package>name") or its class name; None if none has it."""
    keys = [key for key in (class_name, registered_name) if isinstance(key, str)]    # a file's other values: none
    for mapping in ((custom_objects or {}),) + tuple(reversed(_SCOPES.get())):
        for key in keys:
            if key in mapping:
                return mapping[key]
    for key in reversed(keys):
        if key in _REGISTERED:
            return _REGISTERED[key]
    return None
