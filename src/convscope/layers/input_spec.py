"""`InputSpec`: Keras' statement of the rank, dtype and shape a layer takes (`self.input_spec = InputSpec(ndim=4)` in
a custom layer), checked on the first argument of every call of the layer (arrays, symbolic tensors or values on a
tape) as Keras' `assert_input_compatibility` checks it; a mismatch is a ValueError naming the layer and the input."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .graph import KerasTensor, flatten


def _optional_int(value, arg: str, minimum: int = 0) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise TypeError(f"InputSpec: argument `{arg}` must be None or an int >= {minimum}, got {value!r}")
    return int(value)


class InputSpec:
    """Keras' `InputSpec(dtype, shape, ndim, max_ndim, min_ndim, axes, allow_last_axis_squeeze, name, optional)`;
    `shape` includes the batch axis, None matches any length; `axes` maps axes to their lengths."""

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None, axes=None,
                 allow_last_axis_squeeze=False, name=None, optional=False):
        self.dtype = None if dtype is None else np.dtype(dtype).name
        if shape is not None:
            if not isinstance(shape, (list, tuple)):
                raise TypeError(f"InputSpec: argument `shape` must be a tuple of ints and None, got {shape!r}")
            self.shape = tuple(_optional_int(d, "shape") for d in shape)
            self.ndim = len(self.shape)
        else:
            self.shape, self.ndim = None, _optional_int(ndim, "ndim")
        self.max_ndim, self.min_ndim = _optional_int(max_ndim, "max_ndim"), _optional_int(min_ndim, "min_ndim")
        self.name, self.optional = name, bool(optional)
        self.allow_last_axis_squeeze = bool(allow_last_axis_squeeze)
        try:
            self.axes = {int(k): v for k, v in (axes or {}).items()}
        except (AttributeError, TypeError, ValueError):
            raise TypeError(f"InputSpec: argument `axes` must be a dict with integer keys, got {axes!r}") from None
        rank = self.ndim or self.max_ndim
        if self.axes and rank is not None and max(self.axes) > rank - 1:
            raise ValueError(f"InputSpec: axis {max(self.axes)} in `axes` is greater than the largest allowed, "
                             f"{rank - 1}")

    def __repr__(self) -> str:
        parts = [f"{key}={value}" for key, value in (("dtype", self.dtype), ("shape", self.shape), ("ndim", self.ndim),
                                                      ("max_ndim", self.max_ndim), ("min_ndim", self.min_ndim),
                                                      ("axes", self.axes)) if value]
        return f"InputSpec({', '.join(parts)})"

    def get_config(self) -> Dict[str, Any]:
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim, "max_ndim": self.max_ndim,
                "min_ndim": self.min_ndim, "axes": self.axes, "optional": self.optional}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _shape_and_dtype(x):
    if isinstance(x, KerasTensor):
        return tuple(x.shape), np.dtype(x.dtype).name
    value = getattr(x, "value", x)                     # a value on a tape, or a Variable
    array = value if hasattr(value, "shape") and hasattr(value, "dtype") else np.asarray(value)
    return tuple(array.shape), np.dtype(array.dtype).name


def check_input_spec(layer, inputs) -> None:
    """Keras' `assert_input_compatibility(layer.input_spec, inputs)`: each input against its spec."""
    specs = flatten(layer.input_spec)
    if isinstance(inputs, dict) and all(spec is not None and spec.name for spec in specs):
        missing = [spec.name for spec in specs if spec.name not in inputs]
        if missing:
            raise ValueError(f"{layer._describe()}: the inputs dict lacks {missing}; expected the keys "
                             f"{[spec.name for spec in specs]}")
        inputs = [inputs[spec.name] for spec in specs]
    items = flatten(inputs)
    if len(items) != len(specs):
        raise ValueError(f"{layer._describe()}: expects {len(specs)} input(s) (its input_spec), got {len(items)}")
    for index, (x, spec) in enumerate(zip(items, specs)):
        if spec is None or (x is None and spec.optional):
            continue
        shape, dtype = _shape_and_dtype(x)
        if np.dtype(dtype).kind == "f" and np.dtype(layer.dtype).kind == "f":
            dtype = np.dtype(layer.dtype).name          # float inputs reach the call in the layer's dtype (Keras)
        problem = _mismatch(spec, shape, dtype)
        if problem:
            raise ValueError(f"{layer._describe()}: input {index}{f' ({spec.name!r})' if spec.name else ''} is "
                             f"incompatible with the layer: {problem}")


def _mismatch(spec: InputSpec, shape, dtype) -> Optional[str]:
    """What about (shape, dtype) `spec` does not allow, or None."""
    ndim = len(shape)
    if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
        return f"expected ndim={spec.ndim}, found ndim={ndim} (shape {shape})"
    if spec.max_ndim is not None and ndim > spec.max_ndim:
        return f"expected max_ndim={spec.max_ndim}, found ndim={ndim} (shape {shape})"
    if spec.min_ndim is not None and ndim < spec.min_ndim:
        return f"expected min_ndim={spec.min_ndim}, found ndim={ndim} (shape {shape})"
    if spec.dtype is not None and dtype != spec.dtype:
        return f"expected dtype={spec.dtype}, found dtype={dtype}"
    for axis, length in spec.axes.items():
        if length is not None and -ndim <= axis < ndim and shape[axis] not in (length, None):
            return f"expected axis {axis} of the input shape to have length {length}, got shape {shape}"
    if spec.shape is not None:
        expected, found = spec.shape, shape
        if spec.allow_last_axis_squeeze:
            found = found[:-1] if found and found[-1] == 1 else found
            expected = expected[:-1] if expected and expected[-1] == 1 else expected
        if any(e is not None and f is not None and e != f for e, f in zip(expected, found)):
            return f"expected shape={spec.shape}, found shape={shape}"
    return None
