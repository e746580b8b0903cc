"""`serialize`, `deserialize` and `get` for a family of Keras objects (regularizers, constraints)."""

from __future__ import annotations

from typing import Any, Dict


class Registry:
    """Names and classes of one family; `module` ("regularizers") prefixes the error messages."""

    def __init__(self, module: str, base: type, classes: Dict[str, type], aliases: Dict[str, type]):
        self.module = module
        self.base = base
        self.classes = classes
        self.names = {**aliases, **classes}

    def serialize(self, obj) -> Any:
        """`{"class_name": ..., "config": {...}}`, or None for None."""
        if obj is None:
            return None
        if not isinstance(obj, self.base):
            raise TypeError(f"{self.module}.serialize: expected a {self.base.__name__}, got {obj!r}")
        return {"class_name": type(obj).__name__, "config": obj.get_config()}

    def deserialize(self, config: Dict[str, Any]):
        if not isinstance(config, dict) or config.get("class_name") not in self.classes:
            raise ValueError(f"{self.module}.deserialize: expected {{'class_name': one of "
                             f"{sorted(self.classes)}, 'config': {{...}}}}, got {config!r}")
        return self.classes[config["class_name"]].from_config(config.get("config", {}))

    def get(self, identifier):
        """None, a name, a serialized dict or an instance."""
        if identifier is None or isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        kind = self.base.__name__
        if isinstance(identifier, str):
            if identifier in self.names:
                return self.names[identifier]()
            raise ValueError(f"{self.module}.get: unknown {kind.lower()} {identifier!r}; "
                             f"known: {', '.join(sorted(self.names))}")
        raise TypeError(f"{self.module}.get: expected None, a name, a config dict or a {kind}, "
                        f"got {identifier!r}")
