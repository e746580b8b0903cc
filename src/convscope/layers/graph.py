"""Symbolic tensors and the nodes that connect layers, as Keras' functional API records them.

Calling a layer on a `KerasTensor` (from `Input(...)` or another layer's call) computes
no numbers: it builds the layer for the input shape, checks it, and records a `Node`
(the layer, its input tensors, its output tensors).  `models.Functional` reads these
nodes to order the layers; each tensor knows where it came from through
`keras_history = (layer, node_index, tensor_index)`, as in Keras.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

Shape = Tuple[Optional[int], ...]


class KerasTensor:
    """A symbolic tensor: a shape (batch axis first, None = any), a dtype and its history.

    `x.shape`, `x.dtype`, `x.ndim`, `x.name`; arithmetic on it (`x * 0.5 + y`) records
    operation layers, as Keras 3 does.
    """

    def __init__(self, shape: Sequence[Optional[int]], dtype: str = "float32", name: Optional[str] = None,
                 history: Optional[Tuple[Any, int, int]] = None):
        self.shape: Shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtype
        self.name = name
        self.keras_history = history

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def _keras_history(self):
        return self.keras_history

    def __repr__(self) -> str:
        layer = self.keras_history[0].name if self.keras_history else None
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name or layer}>"

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self!r} is symbolic: it has a shape but no values. Use it to build a model "
                        "(keras.Model(inputs, outputs)), then call the model on arrays")

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic: it has no truth value")

    def __len__(self):
        raise TypeError(f"{self!r} is symbolic: len() is not defined; use `.shape`")

    __hash__ = object.__hash__
    __array_ufunc__ = None          # `np.ones(3) - x` reaches x.__rsub__ (an operation), as Keras

    # Arithmetic records operation layers (convscope.layers.operations), as Keras 3's ops do.
    def _op(self, name, *args):
        from .operations import symbolic_op
        return symbolic_op(name, *args)

    def __add__(self, other): return self._op("add", self, other)
    def __radd__(self, other): return self._op("add", other, self)
    def __sub__(self, other): return self._op("subtract", self, other)
    def __rsub__(self, other): return self._op("subtract", other, self)
    def __mul__(self, other): return self._op("multiply", self, other)
    def __rmul__(self, other): return self._op("multiply", other, self)
    def __truediv__(self, other): return self._op("divide", self, other)
    def __rtruediv__(self, other): return self._op("divide", other, self)
    def __pow__(self, other): return self._op("power", self, other)
    def __rpow__(self, other): return self._op("power", other, self)
    def __matmul__(self, other): return self._op("matmul", self, other)
    def __rmatmul__(self, other): return self._op("matmul", other, self)
    def __neg__(self): return self._op("negative", self)
    def __abs__(self): return self._op("absolute", self)
    def __getitem__(self, key): return self._op("get_item", self, key)
    # comparisons and boolean logic, as Keras' KerasTensor records them (`==` and `!=` stay identity here)
    def __lt__(self, other): return self._op("less", self, other)
    def __le__(self, other): return self._op("less_equal", self, other)
    def __gt__(self, other): return self._op("greater", self, other)
    def __ge__(self, other): return self._op("greater_equal", self, other)
    def __and__(self, other): return self._op("logical_and", self, other)
    def __rand__(self, other): return self._op("logical_and", other, self)
    def __or__(self, other): return self._op("logical_or", self, other)
    def __ror__(self, other): return self._op("logical_or", other, self)
    def __invert__(self): return self._op("logical_not", self)


class Node:
    """One call of a layer on symbolic tensors: `layer(*args)` -> outputs.

    `args` keeps the call's structure (a tensor, or a list of tensors for merge layers,
    plus constants for operations); `input_tensors` and `outputs` are flat lists.
    """

    def __init__(self, layer, args: Sequence[Any], outputs: List[KerasTensor], kwargs=None):
        self.layer = layer
        self.args = list(args)
        self.kwargs = dict(kwargs or {})
        # the tensors of the positional arguments, then of the keyword ones (a layer such as MultiHeadAttention
        # takes `key=` and `attention_mask=` tensors)
        self.input_tensors: List[KerasTensor] = [t for t in flatten([self.args, list(self.kwargs.values())])
                                                 if isinstance(t, KerasTensor)]
        self.outputs = list(outputs)
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        for i, tensor in enumerate(self.outputs):
            tensor.keras_history = (layer, self.index, i)

    @property
    def is_input(self) -> bool:
        return not self.input_tensors

    @property
    def parent_nodes(self) -> List["Node"]:
        parents = []
        for tensor in self.input_tensors:
            layer, node_index, _ = tensor.keras_history
            parents.append(layer._inbound_nodes[node_index])
        return parents

    def __repr__(self) -> str:
        return f"<Node {self.layer.name}[{self.index}]>"


def flatten(structure) -> List[Any]:
    """The leaves of nested lists/tuples/dicts (dicts by sorted key, as Keras' tree.flatten)."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    return [structure]


def is_symbolic(value) -> bool:
    """True when `value` (or any leaf of a list/tuple/dict) is a KerasTensor."""
    return any(isinstance(leaf, KerasTensor) for leaf in flatten(value))
