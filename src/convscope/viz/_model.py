"""What the pictures need to know about a model and its layers, read through the public Layer API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional

import numpy as np


def check_model(model, where: str) -> List[Any]:
    """The model's layers, or a TypeError naming `where` when `model` is not a built model."""
    layers = getattr(model, "layers", None)
    if layers is None or isinstance(model, type):
        raise TypeError(f"{where}: argument `model` must be a Sequential model (an object with .layers), "
                        f"got {type(model).__name__}")
    layers = list(layers)
    if not layers:
        raise ValueError(f"{where}: the model has no layers; add layers before drawing it")
    if shape_of(layers[0], "input_shape") is None:
        raise ValueError(f"{where}: the model is not built; give its first layer an input_shape "
                         "(or call the model on data) so every shape is known")
    return layers


def is_model(layer) -> bool:
    """True for a nested model (a layer that has its own `.layers`)."""
    return isinstance(getattr(layer, "layers", None), (list, tuple))


def shape_of(layer, which: str) -> Optional[tuple]:
    """`layer.input_shape` or `layer.output_shape` (batch axis None), or None when unknown."""
    if is_model(layer):
        try:
            shape = getattr(layer, which)
        except (AttributeError, ValueError):
            shape = None
        if isinstance(shape, tuple) and all(d is None or isinstance(d, int) for d in shape):
            return shape                    # the model's own (its last operation may not be a layer)
        inner = list(getattr(layer, "operations", layer.layers))
        if not inner:
            return None
        return shape_of(inner[0] if which == "input_shape" else inner[-1], which)
    try:
        shape = getattr(layer, which)
    except (AttributeError, ValueError):
        return None
    return tuple(shape) if shape is not None else None


def format_shape(shape) -> str:
    """`(None, 28, 28, 1)` as Keras prints it; `?` when unknown."""
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def activation_name(layer) -> Optional[str]:
    """The name of the layer's activation ('relu', ...) or None when it has none."""
    try:
        config = layer.get_config()
    except Exception:  # a nested model without a config has no activation to show
        return None
    activation = config.get("activation")
    if isinstance(activation, dict):
        activation = activation.get("config", {}).get("name") or activation.get("class_name")
    return None if activation is None else str(activation)


def count_params(layer) -> int:
    try:
        return int(layer.count_params())
    except (ValueError, AttributeError):
        return 0


def check_flag(value, arg: str, where: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: argument `{arg}` must be True or False, got {value!r}")
    return bool(value)


def check_path(to_file, where: str, suffixes=(".svg", ".png"), allow_none: bool = True) -> Optional[Path]:
    """`to_file` as a Path with one of `suffixes`, or None when allowed."""
    if to_file is None and allow_none:
        return None
    if not isinstance(to_file, (str, os.PathLike)):
        raise TypeError(f"{where}: argument `to_file` must be a file path (str or Path), got {to_file!r}")
    path = Path(to_file)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{where}: argument `to_file` must end in {' or '.join(suffixes)}, got {str(to_file)!r}")
    return path


MAX_DPI = 1200   # a 4-inch picture is then 4,800 pixels wide; beyond, PNGs grow by gigabytes


def check_dpi(dpi, where: str) -> float:
    """`dpi` as a float in (0, MAX_DPI], or a ValueError naming `where` and the argument."""
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float, np.integer, np.floating)) or not dpi > 0:
        raise ValueError(f"{where}: argument `dpi` must be a positive number, got {dpi!r}")
    if not dpi <= MAX_DPI:
        raise ValueError(f"{where}: argument `dpi` must be at most {MAX_DPI} (the picture's pixels grow with "
                         f"its square), got {dpi!r}")
    return float(dpi)
