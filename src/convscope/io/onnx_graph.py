"""The ONNX graph under construction: named values, constants, nodes and the tensor layouts.

A `Value` stands for one Keras tensor: its ONNX name, its Keras shape (batch axis first, None
where unknown) and its layout — "keras" (the ONNX tensor has the Keras tensor's axis order) or
"cf" (a channels_last Keras tensor stored channels first: N, C, then the spatial axes, the
order of ONNX's Conv, pooling, BatchNormalization and Resize).  A channels_last model is moved
to "cf" once, where its first convolution (or pooling, ...) needs it, stays there, and goes back
to "keras" only where the order matters (Flatten, Reshape, Dense, the outputs).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Value", "GraphBuilder", "perm_to_physical"]


class Value:
    """One Keras tensor in the ONNX graph: `name`, Keras `shape`, `layout` ("keras" or "cf")."""

    __slots__ = ("name", "shape", "layout")

    def __init__(self, name: str, shape: Sequence[Optional[int]], layout: str = "keras"):
        self.name, self.shape, self.layout = name, tuple(shape), layout

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def perm(self) -> List[int]:
        """Physical axis i holds Keras axis perm[i]."""
        return perm_to_physical(self.rank, self.layout)

    def axis(self, keras_axis: int) -> int:
        """The physical axis of a Keras axis (negative counts from the end)."""
        return self.perm.index(keras_axis % self.rank)

    def physical_shape(self) -> List[Optional[int]]:
        return [self.shape[p] for p in self.perm]

    def align(self, array) -> np.ndarray:
        """A constant that broadcasts against the Keras tensor (NumPy's rule), arranged to broadcast
        against this value's physical layout."""
        array = np.asarray(array, dtype=np.float32)
        if array.ndim > self.rank:
            raise ValueError(f"a constant of shape {array.shape} has more axes than the tensor {self.shape}")
        array = array.reshape((1,) * (self.rank - array.ndim) + array.shape)
        return array.transpose(self.perm) if self.layout == "cf" else array


def perm_to_physical(rank: int, layout: str) -> List[int]:
    """The Keras axes in physical order: identity for "keras", (0, last, 1, ..., last - 1) for "cf"."""
    if layout == "cf" and rank >= 3:
        return [0, rank - 1] + list(range(1, rank - 1))
    return list(range(rank))


class GraphBuilder:
    """Collects nodes and initializers; names every value uniquely; caches constants and layout
    changes so that a weight or a Transpose is emitted once however often it is used.
    `fold_batch_norm`: whether a BatchNormalization after a linear conv goes into its weights."""

    def __init__(self, opset: int, fold_batch_norm: bool = True):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.opset, self.fold_batch_norm = opset, fold_batch_norm
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self._names: set = set()
        self._constants: Dict[Any, str] = {}
        self._layouts: Dict[Tuple[str, str], Value] = {}
        self.integers: Dict[str, Optional[Value]] = {}      # integer model inputs -> their float cast, once made

    def reserve(self, name: str) -> str:
        """Claim `name` exactly (graph inputs and outputs); refused if taken."""
        if name in self._names:
            raise ValueError(f"the ONNX name {name!r} is used twice")
        self._names.add(name)
        return name

    def fresh(self, hint: str) -> str:
        """A new unique name starting with `hint`."""
        name, n = hint, 1
        while name in self._names:
            name, n = f"{hint}_{n}", n + 1
        self._names.add(name)
        return name

    # -- constants ----------------------------------------------------------------------
    def const(self, array, hint: str, key=None, dtype=np.float32) -> str:
        """An initializer holding `array` (float32 unless `dtype`); `key` shares it between uses."""
        cache = None if key is None else (key, np.dtype(dtype).str)
        if cache is not None and cache in self._constants:
            return self._constants[cache]
        name = self.fresh(hint)
        tensor = self.numpy_helper.from_array(np.ascontiguousarray(np.asarray(array, dtype=dtype)), name)
        self.initializers.append(tensor)
        if cache is not None:
            self._constants[cache] = name
        return name

    def ints(self, values, hint: str = "const") -> str:
        """An int64 constant (shapes, axes, pads), shared by value."""
        values = [int(v) for v in values]
        return self.const(values, hint, key=("ints", tuple(values)), dtype=np.int64)

    def scalar(self, value: float, hint: str = "const") -> str:
        """A float32 scalar constant, shared by value."""
        value = float(np.float32(value))
        return self.const(np.float32(value), hint, key=("scalar", value))

    # -- nodes --------------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[str], hint: str, outputs: int = 1, **attrs):
        """Append a node; returns its output name (a list when `outputs` > 1)."""
        names = [self.fresh(hint if outputs == 1 else f"{hint}_{i}") for i in range(outputs)]
        node = self.helper.make_node(op_type, list(inputs), names, name=self.fresh(f"{hint}/{op_type}"),
                                     **{k: v for k, v in attrs.items() if v is not None})
        self.nodes.append(node)
        return names[0] if outputs == 1 else names

    def value(self, op_type: str, inputs: Sequence[str], like: Value, shape=None, hint: str = "", **attrs) -> Value:
        """A node whose output is laid out as `like` (and has `like`'s Keras shape unless `shape`)."""
        name = self.op(op_type, inputs, hint or like.name, **attrs)
        return Value(name, like.shape if shape is None else shape, like.layout)

    def as_layout(self, value: Value, layout: str) -> Value:
        """`value` in `layout`: itself, or one (cached) Transpose."""
        if value.layout == layout or value.rank < 3:
            return value if value.layout == layout else Value(value.name, value.shape, layout)
        key = (value.name, layout)
        if key not in self._layouts:
            target = Value(value.name, value.shape, layout)
            if all(d == 1 for d in value.shape[1:-1]) and value.shape[-1] is not None:   # (N, 1, .., C): same order
                shape = self.ints([0] + target.physical_shape()[1:], "shape")
                name = self.op("Reshape", [value.name, shape], f"{value.name}_{layout}")
            else:
                perm = [value.perm.index(axis) for axis in target.perm]
                name = self.op("Transpose", [value.name], f"{value.name}_{layout}", perm=perm)
            self._layouts[key] = Value(name, value.shape, layout)
        return self._layouts[key]

    def channels_first(self, value: Value, data_format: str) -> Value:
        """`value` with its channels on physical axis 1 (what Conv, pooling and Resize read)."""
        return self.as_layout(value, "cf" if data_format == "channels_last" else "keras")

    # -- ops whose form changed between opsets ------------------------------------------
    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool, hint: str) -> str:
        """ReduceMean/Max/Min/Sum over `axes` (an input from opset 18 — 13 for ReduceSum — before that
        an attribute)."""
        as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if as_input:
            return self.op(op_type, [x, self.ints(axes, "axes")], hint, keepdims=int(keepdims))
        return self.op(op_type, [x], hint, axes=[int(a) for a in axes], keepdims=int(keepdims))
