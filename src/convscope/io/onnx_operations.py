"""ONNX emitters of operations: arithmetic and `convscope.ops` functions recorded on symbolic tensors
(`layers/operations.py`: `x * 0.5 + y`, `ops.relu(x)`, `ops.mean(x, axis=1)`, `x[:, 0]`).

An operation's arguments are bound as the layer binds them when it runs (`_arguments`); tensors are
Values, everything else constants (float32 in the file).  Element-wise functions keep their input's
layout; the others work in the Keras layout.  A function without an ONNX form here is refused,
naming it."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..ops.activations import get_activation
from .onnx_graph import GraphBuilder, Value
from .onnx_layers import Call, CannotExport, common_layout, emit_activation

__all__ = ["emit_operation"]

_BINARY = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "true_divide": "Div",
           "power": "Pow", "maximum": "Max", "minimum": "Min", "matmul": "MatMul"}
_UNARY = {"negative": "Neg", "absolute": "Abs", "abs": "Abs", "sqrt": "Sqrt", "exp": "Exp", "log": "Log",
          "tanh": "Tanh", "sign": "Sign", "sin": "Sin", "cos": "Cos", "tan": "Tan", "arcsin": "Asin", "arccos": "Acos",
          "arctan": "Atan", "sinh": "Sinh", "cosh": "Cosh", "arcsinh": "Asinh", "arccosh": "Acosh",
          "arctanh": "Atanh", "floor": "Floor", "ceil": "Ceil", "reciprocal": "Reciprocal"}
_ACTIVATIONS = {"relu", "relu6", "sigmoid", "hard_sigmoid", "silu", "hard_silu", "gelu", "softplus", "softsign",
                "elu", "selu", "leaky_relu", "softmax", "log_softmax", "celu", "hard_tanh", "hard_shrink",
                "soft_shrink", "tanh_shrink", "log_sigmoid", "squareplus", "sparse_plus", "sparse_sigmoid"}
_ACTIVATION_PARAMS = {"elu": ("alpha",), "leaky_relu": ("negative_slope",), "softmax": ("axis",),
                      "log_softmax": ("axis",), "gelu": ("approximate",), "celu": ("alpha",),
                      "hard_shrink": ("threshold",), "soft_shrink": ("threshold",), "squareplus": ("b",)}
_REDUCE = {"mean": "ReduceMean", "sum": "ReduceSum", "max": "ReduceMax", "min": "ReduceMin"}


def emit_operation(b: GraphBuilder, call: Call):
    """The operation's output Value."""
    function = call.layer.function
    args = _arguments(call)
    if function in _BINARY:
        return _binary(b, call, _BINARY[function], args)
    if function in _UNARY:
        return b.value(_UNARY[function], [args["x"].name], args["x"], call.out_shapes[0], hint=call.hint)
    if function == "square":
        x = args["x"]
        return b.value("Mul", [x.name, x.name], x, hint=call.hint)
    if function in _ACTIVATIONS:
        params = {k: args[k] for k in _ACTIVATION_PARAMS.get(function, ()) if k in args}
        return emit_activation(b, args["x"], get_activation(function, **params), call.hint)
    if function == "clip":
        x = args["x"]
        return b.value("Clip", [x.name, b.scalar(args["x_min"]), b.scalar(args["x_max"])], x, hint=call.hint)
    if function in _REDUCE:
        return _reduce(b, call, args)
    handler = _SHAPE_FUNCTIONS.get(function)
    if handler is None:
        raise CannotExport(f"ops.{function} has no ONNX form here")
    return handler(b, call, args)


def _arguments(call: Call) -> Dict[str, Any]:
    """{parameter: value} as the operation binds its node arguments and config when it runs."""
    from ..layers.operations import _KWARG_PARAMS, _signature
    layer = call.layer
    remaining = iter(call.args)
    bound: Dict[str, Any] = {}
    for param in _signature(layer.function).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            bound[param.name] = list(remaining)
        elif param.kind is param.VAR_KEYWORD:
            continue
        elif param.name in layer.config:
            bound[param.name] = layer.config[param.name]
        elif param.name in _KWARG_PARAMS:
            bound[param.name] = call.kwargs.get(param.name, param.default)
        else:
            bound[param.name] = next(remaining, param.default)
    return bound


def _binary(b: GraphBuilder, call: Call, op: str, args: Dict[str, Any]) -> Value:
    """A binary function of tensors and constants; constants arranged for the tensor's layout."""
    left, right = (args.get(k) for k in (("x1", "x2") if "x1" in args else ("x", "y")))
    tensors = [v for v in (left, right) if isinstance(v, Value)]
    if op == "MatMul" or any(np.ndim(v) > tensors[0].rank for v in (left, right) if not isinstance(v, Value)):
        tensors = [b.as_layout(t, "keras") for t in tensors]
    elif len(tensors) == 2:
        tensors = common_layout(b, tensors)
    like = tensors[0]
    it = iter(tensors)
    names = [next(it).name if isinstance(v, Value) else b.const(like.align(v) if op != "MatMul" else v, call.hint)
             for v in (left, right)]
    return b.value(op, names, like, call.out_shapes[0], hint=call.hint)


def _axes(x: Value, axis) -> List[int]:
    if axis is None:
        return list(range(x.rank))
    return [x.axis(a) for a in (axis if isinstance(axis, (list, tuple)) else [axis])]


def _reduce(b: GraphBuilder, call: Call, args: Dict[str, Any]) -> Value:
    """mean/sum/max/min over axes; kept axes keep the layout, dropped ones need the Keras layout."""
    x, keepdims = args["x"], bool(args.get("keepdims"))
    if not keepdims:
        x = b.as_layout(x, "keras")
    name = b.reduce(_REDUCE[call.layer.function], x.name, _axes(x, args.get("axis")), keepdims, call.hint)
    return Value(name, call.out_shapes[0], x.layout if keepdims else "keras")


def _reshape(b: GraphBuilder, call: Call, args) -> Value:
    x = b.as_layout(args["x"], "keras")
    shape = [int(d) for d in args["newshape"]]
    return Value(b.op("Reshape", [x.name, b.ints(shape, "shape")], call.hint), call.out_shapes[0])


def _transpose(b: GraphBuilder, call: Call, args) -> Value:
    x = b.as_layout(args["x"], "keras")
    axes = args.get("axes")
    perm = list(reversed(range(x.rank))) if axes is None else [int(a) % x.rank for a in axes]
    return Value(b.op("Transpose", [x.name], call.hint, perm=perm), call.out_shapes[0])


def _expand_dims(b: GraphBuilder, call: Call, args) -> Value:
    x = b.as_layout(args["x"], "keras")
    rank = len(call.out_shapes[0])
    axes = [int(a) % rank for a in (args["axis"] if isinstance(args["axis"], (list, tuple)) else [args["axis"]])]
    return Value(b.op("Unsqueeze", [x.name, b.ints(axes, "axes")], call.hint), call.out_shapes[0])


def _squeeze(b: GraphBuilder, call: Call, args) -> Value:
    x = b.as_layout(args["x"], "keras")
    axis = args.get("axis")
    if axis is None:
        axis = [i for i, d in enumerate(x.shape) if d == 1]
    axes = [int(a) % x.rank for a in (axis if isinstance(axis, (list, tuple)) else [axis])]
    return Value(b.op("Squeeze", [x.name, b.ints(axes, "axes")], call.hint), call.out_shapes[0])


def _concatenate(b: GraphBuilder, call: Call, args) -> Value:
    values = common_layout(b, list(args["xs"]))
    axis = values[0].axis(args.get("axis", 0))
    return b.value("Concat", [v.name for v in values], values[0], call.out_shapes[0], hint=call.hint, axis=axis)


def _cast(b: GraphBuilder, call: Call, args) -> Value:
    if np.dtype(args["dtype"]) != np.float32:
        raise CannotExport(f"ops.cast to {args['dtype']!r}: the exported graph computes in float32 only")
    return args["x"]


def _get_item(b: GraphBuilder, call: Call, args) -> Value:
    """x[key] for ints, slices with positive steps, None and Ellipsis: Slice, then Squeeze and Unsqueeze."""
    x = b.as_layout(args["x"], "keras")
    key = args["key"]
    key = list(key) if isinstance(key, (tuple, list)) else [key]
    if any(k is Ellipsis for k in key):
        at = key.index(Ellipsis)
        used = sum(1 for k in key if k is not None and k is not Ellipsis)
        key = key[:at] + [slice(None)] * (x.rank - used) + key[at + 1:]
    starts, ends, axes, steps, squeeze, inserted = [], [], [], [], [], []
    axis = out_axis = 0
    big = np.iinfo(np.int64).max
    for k in key:
        if k is None:
            inserted.append(out_axis)
            out_axis += 1
            continue
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            k = int(k)
            starts.append(k)
            ends.append(k + 1 if k != -1 else big)
            steps.append(1)
            squeeze.append(axis)
        elif isinstance(k, slice) and (k.step is None or k.step > 0):
            starts.append(0 if k.start is None else int(k.start))
            ends.append(big if k.stop is None else int(k.stop))
            steps.append(1 if k.step is None else int(k.step))
            out_axis += 1
        else:
            raise CannotExport(f"indexing with {k!r} is not exported (ints, slices with positive steps, None and "
                               "Ellipsis are)")
        axes.append(axis)
        axis += 1
    name = x.name
    if axes:
        name = b.op("Slice", [name, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)], call.hint)
    if squeeze:
        name = b.op("Squeeze", [name, b.ints(squeeze, "axes")], call.hint)
    if inserted:
        name = b.op("Unsqueeze", [name, b.ints(inserted, "axes")], call.hint)
    return Value(name, call.out_shapes[0])


_SHAPE_FUNCTIONS = {"reshape": _reshape, "transpose": _transpose, "expand_dims": _expand_dims,
                    "squeeze": _squeeze, "concatenate": _concatenate, "cast": _cast, "get_item": _get_item}
