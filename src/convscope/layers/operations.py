"""Operations on symbolic tensors, recorded as Keras 3 records them (`keras.src.ops.numpy` / `.nn`).

`x * 0.5 + y` on KerasTensors, `x[:, 0]`, `-x`, and `convscope.ops.<function>(...)` called on
KerasTensors (`ops.relu(x)`, `ops.concatenate([a, b], axis=-1)`, `ops.mean(x, axis=1)`) each
make one operation layer and a graph node, nothing computed.  Each function has its own class,
named as Keras names it (`Multiply`, `TrueDivide`, `GetItem`, `Relu`, ...), with the same config
(`{"name", <the function's non-tensor arguments>}`) and the same node arguments (the tensors and
the constants the call took, e.g. `[x, 0.5]`), so configs go both ways between Keras and convscope.
An operation has no weights; its forward pass runs the `convscope.ops` function on a tape.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Dict, List, Tuple

import numpy as np

from .. import backend
from ..ops.tape import Tape, Traced
from . import graph
from .autodiff import TapeContext, plain
from .base import Layer
from .spec import LayerSpec

__all__ = ["Operation", "symbolic_op", "symbolic_call", "operation_class", "deserialize", "OPERATION_CLASSES"]

# Parameters that are node arguments (tensors, or constants in a tensor's place); the others are config.
_TENSOR_PARAMS = frozenset({"x", "x1", "x2", "condition", "xs", "indices", "key", "fill_value",  # full_like's too
                            "weights", "target", "output", "inputs", "start_indices", "images", "kernel",
                            "depthwise_kernel", "pointwise_kernel", "q"})
_CONFIG_OF = {"resize": frozenset({"fill_value"})}          # a name above that is config in that function
_KWARG_PARAMS = frozenset({"constant_values"})        # Keras writes these in the node's kwargs
_ALIASES = {"abs": "absolute", "swish": "silu", "hard_swish": "hard_silu"}
_OPERATORS = {"divide": "true_divide"}                # KerasTensor's `/` is ops.true_divide in Keras
_ELEMENTWISE = frozenset({"add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "power",
                          "maximum", "minimum", "where", "less", "less_equal", "greater", "greater_equal",
                          "equal", "not_equal", "logical_and", "logical_or"})
_NN_FUNCTIONS = frozenset({"relu", "relu6", "sigmoid", "hard_sigmoid", "silu", "hard_silu", "gelu", "softplus",
                           "softsign", "elu", "selu", "leaky_relu", "softmax", "log_softmax", "celu", "hard_tanh",
                           "hard_shrink", "soft_shrink", "tanh_shrink", "log_sigmoid", "squareplus", "sparse_plus",
                           "sparse_sigmoid"})
# keras.src.ops.nn's too, not applied value by value
_NN_OTHER_FUNCTIONS = frozenset({"normalize", "moments", "depth_to_space", "space_to_depth", "one_hot", "glu",
                                 "threshold", "binary_crossentropy", "categorical_crossentropy",
                                 "sparse_categorical_crossentropy", "max_pool", "average_pool", "depthwise_conv",
                                 "separable_conv", "conv_transpose"})
_CORE_FUNCTIONS = frozenset({"cast", "unstack", "slice"})
_MATH_FUNCTIONS = frozenset({"logsumexp", "rsqrt", "top_k", "erf"})
_LINALG_FUNCTIONS = frozenset({"norm"})
_IMAGE_FUNCTIONS = frozenset({"extract_patches", "resize"})
_UNARY_ELEMENTWISE = frozenset({"sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh",
                                "arccosh", "arctanh", "expm1", "exp2", "log2", "log10", "reciprocal", "rsqrt", "cbrt",
                                "floor", "ceil", "round", "trunc", "isnan", "isinf", "isfinite", "logical_not",
                                "logical_and", "logical_or"})

# (Keras module, class name) -> class
OPERATION_CLASSES: Dict[Tuple[str, str], type] = {}


@functools.lru_cache(maxsize=None)
def _signature(name: str) -> inspect.Signature:
    return inspect.signature(_function(name))


def _function(name: str):
    """The `convscope.ops` function of that Keras name (unwrapped from the symbolic dispatch)."""
    from ..ops import composed, image, nn_api, numpy_api, numpy_more
    modules = (numpy_api, nn_api, numpy_more, composed, image)
    if name == "get_item":
        fn = numpy_api._getitem
    elif any(name in module.__all__ for module in modules):
        fn = next(getattr(module, name) for module in modules if name in module.__all__)
    else:
        raise ValueError(f"operations: {name!r} is not one of the Keras functions of convscope.ops")
    return getattr(fn, "__wrapped__", fn)


class Operation(Layer):
    """A `convscope.ops` function as a node of a functional model (no weights).

    Subclasses set `function` (the ops function's name); `keras_module` and
    `keras_registered_name` are what `layers.serialize` writes for Keras.
    """

    function = ""
    keras_module = "keras.src.ops.numpy"
    keras_registered_name = None

    def __init__(self, name=None, **config):
        Layer.__init__(self, name=name)
        params = _config_params(self.function)
        unknown = sorted(set(config) - set(params))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {unknown}; ops.{self.function} "
                            f"takes {list(params) or 'no other arguments'}")
        self.config = {key: config.get(key, default) for key, default in params.items()}
        self.built = True
        self._arity = None           # how many node arguments, and which leaves are tensors (set per node)
        self._mask = None
        self._call_kwargs: Dict[str, Any] = {}

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, **{key: _jsonable(value) for key, value in self.config.items()}}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Operation":
        return cls(**config)

    def count_params(self) -> int:
        return 0

    # -- calls ------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        kwargs.pop("training", None)
        if graph.is_symbolic(list(args) + list(kwargs.values())):
            return self._record(list(args), kwargs)
        return plain(self._compute(list(args), kwargs))

    def _compute(self, args: List[Any], kwargs: Dict[str, Any]):
        fn = _function(self.function)
        positional, keywords = [], dict(kwargs)
        remaining = iter(args)
        for param in _signature(self.function).parameters.values():
            if param.kind is param.VAR_POSITIONAL:
                positional.extend(remaining)
            elif param.kind is param.VAR_KEYWORD:
                continue
            elif param.name in self.config:
                positional.append(self.config[param.name])
            elif param.name in _KWARG_PARAMS:
                keywords.setdefault(param.name, self._call_kwargs.get(param.name, param.default))
            else:
                positional.append(next(remaining, param.default))
        if self.function == "get_item" and isinstance(positional[1], list):
            positional[1] = tuple(positional[1])       # a key read back from JSON (as Keras' GetItem)
        return fn(*positional, **keywords)

    def _record(self, args: List[Any], kwargs: Dict[str, Any]):
        """The node of this call on symbolic tensors; returns the output KerasTensor(s)."""
        leaves = graph.flatten(args)
        mask = tuple(isinstance(leaf, graph.KerasTensor) for leaf in leaves)
        if self._mask is not None and (self._arity, self._mask) != (len(args), mask):
            raise ValueError(f"{self._describe()}: an operation is called on one arrangement of tensors; "
                             "create a new one for other arguments")
        if self.function == "get_item" and len(args) > 1 and graph.is_symbolic(args[1]):
            raise TypeError(f"{self._describe()}: indexing with a symbolic tensor is not supported; index "
                            "with ints, slices, None and Ellipsis")
        self._arity, self._mask, self._call_kwargs = len(args), mask, dict(kwargs)
        specs = self._output_specs(args, kwargs)
        multiple = isinstance(specs, list)
        outputs = [graph.KerasTensor(shape, dtype) for shape, dtype in (specs if multiple else [specs])]
        graph.Node(self, args, outputs, kwargs)
        return outputs if multiple else outputs[0]

    def _output_specs(self, args, kwargs):
        """(shape, dtype) of the output (a list for several), as Keras infers it: broadcasting for
        element-wise functions; otherwise the function run on zero-stride placeholders twice, with
        2 and then 3 for each unknown axis (axes that follow them are unknown)."""
        tensors = [leaf for leaf in graph.flatten(args) if isinstance(leaf, graph.KerasTensor)]
        try:
            if self.function in _ELEMENTWISE:
                out = self._compute(_placeholders(args, 1), kwargs)
                shape = _broadcast([t.shape for t in tensors] + _constant_shapes(args), self)
                return tuple(shape), _dtype_name(out)
            small, large = (self._compute(_placeholders(args, n), kwargs) for n in (2, 3))
        except (ValueError, TypeError, IndexError) as error:
            shapes = ", ".join(str(t.shape) for t in tensors)
            message = str(error)
            raise type(error)(f"{self._describe()}: cannot take inputs of shape {shapes}: {message}") from None
        if isinstance(small, (list, tuple)):
            return [_merge_probe(a, b) for a, b in zip(small, large)]
        return _merge_probe(small, large)

    def describe(self):
        """kind "operation", op the `convscope.ops` function's name ("multiply", "get_item", ...); elementwise
        for arithmetic, comparisons and activations applied value by value (not softmax)."""
        elementwise = self.function in _ELEMENTWISE | _UNARY_ELEMENTWISE or (
            self.function in _NN_FUNCTIONS and self.function not in ("softmax", "log_softmax"))
        return LayerSpec(kind="operation", op=self.function, elementwise=elementwise)

    def compute_output_shape(self, input_shape):
        """The output shape for the node's tensors of `input_shape` (one shape, or a list)."""
        if self._mask is None:
            raise ValueError(f"{self._describe()}: compute_output_shape needs the operation to have been "
                             "called on symbolic tensors")
        node = self._inbound_nodes[0]
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        replaced = iter(graph.KerasTensor(s, t.dtype) for s, t in zip(shapes, node.input_tensors))
        args = _map_leaves(node.args, lambda leaf: next(replaced) if isinstance(leaf, graph.KerasTensor) else leaf)
        specs = self._output_specs(args, self._call_kwargs)
        return [s for s, _ in specs] if isinstance(specs, list) else specs[0]

    def _node_args(self, inputs) -> List[Any]:
        """The node's arguments from what `Functional.run` passes (the only one, or the list of them)."""
        if self._arity is None:
            raise RuntimeError(f"{self._describe()}: an operation runs as a node of a functional model; it has "
                               "not been called on symbolic tensors")
        return [inputs] if self._arity == 1 else list(inputs)

    def call(self, inputs, training: bool = False):
        return plain(self._compute(self._node_args(inputs), self._call_kwargs))

    def forward(self, inputs, training: bool = False):
        """(outputs, TapeContext): the function run on a tape with its float tensor arguments watched."""
        args = self._node_args(inputs)
        if not backend.keeps_for_backward():
            return plain(self._compute(args, self._call_kwargs)), None
        tape = Tape(persistent=False, watch_accessed_variables=False)
        sources, leaves = [], []

        def watch(leaf, is_tensor):
            if not is_tensor:
                return leaf
            array = np.asarray(leaf)
            traced = tape.watch(leaf) if array.dtype.kind == "f" else None
            sources.append(traced)
            leaves.append((array.shape, array.dtype, traced is not None))
            return leaf if traced is None else traced
        mask = iter(self._mask)
        with tape:
            watched = _map_leaves(args, lambda leaf: watch(leaf, next(mask)))
            outputs = self._compute(watched, self._call_kwargs)
        traced = ([o if isinstance(o, Traced) else None for o in outputs] if isinstance(outputs, (list, tuple))
                  else (outputs if isinstance(outputs, Traced) else None))
        ctx = TapeContext(tape, sources, leaves, len(leaves) == 1, [], traced)
        return plain(outputs), ctx

    def backward(self, ctx, grad_output, need_input_grad: bool = True):
        """(gradients of the node's tensors — one array, or a list for several —, [])."""
        from .autodiff import backward_on_tape
        return backward_on_tape(self, ctx, grad_output, need_input_grad)


# -- building and recording ---------------------------------------------------------------------
def _class_name(function: str) -> str:
    return "".join(part.capitalize() for part in function.split("_"))


def _module_of(function: str) -> str:
    if function in _NN_FUNCTIONS or function in _NN_OTHER_FUNCTIONS:
        return "keras.src.ops.nn"
    if function in _CORE_FUNCTIONS:
        return "keras.src.ops.core"
    if function in _MATH_FUNCTIONS:
        return "keras.src.ops.math"
    if function in _LINALG_FUNCTIONS:
        return "keras.src.ops.linalg"
    if function in _IMAGE_FUNCTIONS:
        return "keras.src.ops.image"
    return "keras.src.ops.numpy"


def operation_class(function: str) -> type:
    """The Operation subclass of a `convscope.ops` function (`"multiply"` -> `Multiply`)."""
    function = _ALIASES.get(function, function)
    module, name = _module_of(function), _class_name(function)
    cls = OPERATION_CLASSES.get((module, name))
    if cls is None:
        _function(function)                 # raises for an unknown function
        cls = type(name, (Operation,), {"function": function, "keras_module": module,
                                        "keras_registered_name": name, "__module__": __name__,
                                        "__doc__": f"`ops.{function}` as a graph node (Keras' `{name}`)."})
        OPERATION_CLASSES[(module, name)] = cls
    return cls


def _config_params(function: str) -> Dict[str, Any]:
    """The function's config arguments (not tensors, not node kwargs) with their defaults."""
    params = {}
    for param in _signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if _is_tensor_param(function, param.name) or param.name in _KWARG_PARAMS:
            continue
        params[param.name] = None if param.default is param.empty else param.default
    return params


def _is_tensor_param(function: str, param: str) -> bool:
    return param in _TENSOR_PARAMS and param not in _CONFIG_OF.get(function, ())


def symbolic_call(function, args, kwargs):
    """`convscope.ops.<function>(*args, **kwargs)` with KerasTensor arguments: an operation node."""
    name = function if isinstance(function, str) else function.__name__
    name = "get_item" if name == "_getitem" else _ALIASES.get(name, name)
    signature = _signature(name)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"ops.{name}: {error}") from None
    bound.apply_defaults()
    config, node_args, node_kwargs = {}, [], {}
    for param in signature.parameters.values():
        value = bound.arguments.get(param.name)
        if param.kind is param.VAR_POSITIONAL:
            node_args.extend(value or ())
        elif param.kind is param.VAR_KEYWORD:
            if value:
                raise TypeError(f"ops.{name}: keyword argument(s) {sorted(value)} are not recorded on "
                                "symbolic tensors")
        elif param.name in _KWARG_PARAMS:
            node_kwargs[param.name] = value
        elif _is_tensor_param(name, param.name):
            node_args.append(value)
        else:
            if graph.is_symbolic(value):
                raise TypeError(f"ops.{name}: argument `{param.name}` must be a constant in a functional "
                                "model, got a symbolic tensor")
            config[param.name] = value
    return operation_class(name)(**config)._record(node_args, node_kwargs)


def symbolic_op(name: str, *args):
    """An operator on KerasTensors (`x * 0.5`, `-x`, `x[:, 0]`): the node of Keras' operation."""
    name = _OPERATORS.get(name, name)
    return symbolic_call(name, args, {})


def deserialize(entry: Dict[str, Any]) -> Operation:
    """An operation from its Keras entry (`{"module": "keras.src.ops.numpy", "class_name": ...}`)."""
    module, class_name = entry.get("module"), entry.get("class_name")
    cls = OPERATION_CLASSES.get((module, class_name))
    if cls is None:
        function = backend.snake_case(class_name or "")
        try:
            cls = operation_class(function)
        except ValueError:
            cls = None
        if cls is None or cls.keras_module != module or cls.__name__ != class_name:
            raise ValueError(f"layers.deserialize: unknown operation {class_name!r} of module {module!r}; "
                             "convscope records the functions of convscope.ops")
    return cls.from_config(dict(entry.get("config") or {}))


# -- helpers ------------------------------------------------------------------------------------
def _map_leaves(structure, fn):
    if isinstance(structure, list):
        return [_map_leaves(item, fn) for item in structure]
    if isinstance(structure, tuple):
        return tuple(_map_leaves(item, fn) for item in structure)
    if isinstance(structure, dict):
        return {key: _map_leaves(structure[key], fn) for key in sorted(structure)}
    return fn(structure)


def _placeholders(args, unknown: int):
    """The arguments with each KerasTensor replaced by an array of its shape (`unknown` for None) that
    allocates nothing (a zero-stride view of one 1)."""
    def replace(leaf):
        if not isinstance(leaf, graph.KerasTensor):
            return leaf
        shape = tuple(unknown if d is None else d for d in leaf.shape)
        return np.broadcast_to(np.ones((), dtype=leaf.dtype), shape)
    return _map_leaves(args, replace)


def _merge_probe(small, large):
    small, large = np.asarray(plain(small)), np.asarray(plain(large))
    shape = tuple(a if a == b else None for a, b in zip(small.shape, large.shape))
    return shape, _dtype_name(small)


def _dtype_name(value) -> str:
    return np.asarray(plain(value)).dtype.name


def _constant_shapes(args) -> List[Tuple[int, ...]]:
    return [np.shape(leaf) for leaf in graph.flatten(args)
            if isinstance(leaf, np.ndarray) and not isinstance(leaf, graph.KerasTensor)]


def _broadcast(shapes, op: Operation):
    """Keras' `broadcast_shapes` over several shapes (None broadcasts with 1 to None, with n to n)."""
    out: List[Any] = []
    for shape in shapes:
        shape = list(shape)
        width = max(len(out), len(shape))
        a, b = [1] * (width - len(out)) + out, [1] * (width - len(shape)) + shape
        merged = []
        for x, y in zip(a, b):
            if x == 1:
                merged.append(y)
            elif x is None:
                merged.append(None if y == 1 else y)
            elif y == 1 or y is None or y == x:
                merged.append(x)
            else:
                raise ValueError(f"cannot broadcast shapes {[tuple(s) for s in shapes]} together")
        out = merged
    return out


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    return value
