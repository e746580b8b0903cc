"""ONNX export: `model.export("model.onnx", format="onnx")` (Keras 3's method) and `convscope export`.

The model's inference graph is built with the `onnx` package's helpers (`onnx_graph.GraphBuilder`),
one emitter per layer kind (`onnx_layers.EMITTERS`, `onnx_operations` for arithmetic on symbolic
tensors), nested models inlined.  The graph takes and returns tensors in the model's own layout,
named after its input and output layers, float32, with a dynamic batch axis ("batch").  A
channels_last model is transposed to NCHW once where a convolution first needs it and kept there
(`onnx_graph` explains the layouts).  A BatchNormalization right after a convolution with a linear
activation (read by nothing else) is folded into the convolution's weights unless
`fold_batch_norm=False`; any other one is an ONNX BatchNormalization.  The finished model passes
`onnx.checker.check_model(full_check=True)` before the file is written, atomically (a failure leaves
no file and keeps an existing one).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np

from ._atomic import atomic_write
from .onnx_graph import GraphBuilder, Value
from .onnx_layers import EMITTERS, Call, CannotExport

__all__ = ["export_model", "export_onnx", "to_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 18        # ONNX Runtime 1.14 and later run it (1.2x and 1.3x included)
MIN_OPSET = 13            # Softmax on one axis, Resize with sizes, Squeeze/Unsqueeze/Pad axes as inputs
KERAS_FORMATS = ("tf_saved_model", "onnx", "openvino", "litert", "torch")
_FOLDS_INTO = ("Conv2D", "Conv1D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "DepthwiseConv1D",
               "SeparableConv1D", "Conv1DTranspose", "Conv3D", "Conv3DTranspose")


def export_model(model, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs) -> None:
    """Keras 3's `Model.export`: `format="onnx"` (with `opset_version=`, and convscope's
    `fold_batch_norm=True`) writes an ONNX file; Keras' other formats need TensorFlow, OpenVINO, ... ."""
    where = "Model.export"
    if format not in KERAS_FORMATS:
        raise ValueError(f"{where}: argument `format` must be one of {list(KERAS_FORMATS)}, got {format!r}")
    if format != "onnx":
        raise ValueError(f"{where}: format={format!r} is not supported by convscope; it exports format='onnx' only")
    unknown = sorted(set(kwargs) - {"opset_version", "fold_batch_norm"})
    if unknown:
        raise TypeError(f"{where}: unexpected keyword argument(s) {unknown} for format='onnx'; expected "
                        "opset_version= and fold_batch_norm=")
    export_onnx(model, filepath, verbose=verbose, input_signature=input_signature, **kwargs)


def export_onnx(model, filepath, verbose=None, input_signature=None, opset_version: Optional[int] = None,
                fold_batch_norm: bool = True) -> None:
    """Write `model`'s inference graph to the ONNX file `filepath` (atomically)."""
    where = "export_onnx"
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"{where}: argument `filepath` must be a str or a path, got {filepath!r}")
    if verbose not in (None, True, False, 0, 1):
        raise TypeError(f"{where}: argument `verbose` must be a bool or None, got {verbose!r}")
    if input_signature is not None:
        raise ValueError(f"{where}: argument `input_signature` must be None (the file takes the model's own "
                         f"input shapes with a dynamic batch axis), got {input_signature!r}")
    data = to_onnx(model, opset_version, fold_batch_norm).SerializeToString()
    with atomic_write(os.fspath(filepath)) as handle:
        handle.write(data)
    if verbose:
        print(f"Saved artifact at '{os.fspath(filepath)}'.")


def to_onnx(model, opset_version: Optional[int] = None, fold_batch_norm: bool = True):
    """The checked `onnx.ModelProto` of `model`'s inference graph (nothing written)."""
    onnx = _import_onnx()
    opset = _check_arguments(model, opset_version, fold_batch_norm, onnx)
    builder = GraphBuilder(opset, fold_batch_norm)
    tensors_in, names_in, names_out = _model_io(model)
    inputs = [Value(builder.reserve(name), tensor.shape) for tensor, name in zip(tensors_in, names_in)]
    names_out = [builder.fresh(name) for name in names_out]     # before the layers' values take them
    dtypes = [np.dtype(getattr(tensor, "dtype", None) or "float32") for tensor in tensors_in]
    builder.integers.update({v.name: None for v, dtype in zip(inputs, dtypes) if dtype.kind != "f"})
    outputs = emit_model(builder, model, inputs)
    graph_inputs = [_value_info(onnx, v.name, v.shape, dtype) for v, dtype in zip(inputs, dtypes)]
    graph_outputs = []
    for value, name in zip(outputs, names_out):
        value = builder.as_layout(value, "keras")
        builder.nodes.append(onnx.helper.make_node("Identity", [value.name], [name], name=builder.fresh(f"{name}/out")))
        graph_outputs.append(_value_info(onnx, name, value.shape))
    graph = onnx.helper.make_graph(builder.nodes, model.name, graph_inputs, graph_outputs, builder.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="convscope",
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as error:       # the checker's own error classes; a bug here, not the user's
        raise ValueError(f"export_onnx: the ONNX graph of model '{model.name}' fails onnx.checker: {error}") from None
    return proto


def _import_onnx():
    try:
        import onnx
        import onnx.checker
        import onnx.helper
    except ImportError:
        raise ImportError("export_onnx: ONNX export needs the `onnx` package (pip install onnx)") from None
    return onnx


def _check_arguments(model, opset_version, fold_batch_norm, onnx) -> int:
    from ..models.training import Model
    where = "export_onnx"
    if not isinstance(model, Model):
        raise TypeError(f"{where}: argument `model` must be a convscope model (Sequential or Model(inputs, "
                        f"outputs)), got {type(model).__name__}")
    highest = onnx.defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= highest:
        raise ValueError(f"{where}: argument `opset_version` must be an int from {MIN_OPSET} to {highest} (the "
                         f"installed onnx package's newest), got {opset_version!r}")
    if not isinstance(fold_batch_norm, bool):
        raise TypeError(f"{where}: argument `fold_batch_norm` must be a bool, got {fold_batch_norm!r}")
    if not model.layers:
        raise ValueError(f"{where}: model '{model.name}' has no layers to export")
    if getattr(model, "_input_layer", True) is None or not model.built:
        raise ValueError(f"{where}: model '{model.name}' is not built: give its first layer `input_shape=` "
                         "(or start it with keras.Input) or call it on data before exporting")
    return opset


def _model_io(model):
    """(input tensors, input names, output names): the input and output layers' names."""
    if hasattr(model, "_compute_nodes"):
        return model.inputs, [t.keras_history[0].name for t in model.inputs], list(model.output_names)
    return [model._input_layer.output], [model._input_layer.name], [model.layers[-1].name]


def _value_info(onnx, name: str, shape, dtype=np.dtype("float32")):
    dims = ["batch"] + [f"{name}_dim{i}" if d is None else int(d) for i, d in enumerate(shape[1:], 1)]
    elem = onnx.TensorProto.FLOAT if dtype.kind == "f" else onnx.helper.np_dtype_to_tensor_dtype(dtype)
    return onnx.helper.make_tensor_value_info(name, elem, dims)


def _layer_value(b: GraphBuilder, layer, value: Value) -> Value:
    """`value` as `layer` takes it: an integer model input as it is for an Embedding (indices), else cast to
    float32 once (uint8 pixels into a Rescaling); integer arithmetic (an operation, a Lambda) is not exported."""
    if value.name not in b.integers or type(layer).__name__ == "Embedding":
        return value
    from ..layers.operations import Operation
    if isinstance(layer, Operation) or type(layer).__name__ == "Lambda":
        raise CannotExport("it computes on an integer model input; only an Embedding or a layer that casts it "
                           "to floats (Rescaling, a convolution, ...) may take one in an ONNX export")
    if b.integers[value.name] is None:
        b.integers[value.name] = Value(b.op("Cast", [value.name], f"{value.name}/float", to=1), value.shape,
                                       value.layout)                                 # TensorProto.FLOAT
    return b.integers[value.name]


# -- the walk ----------------------------------------------------------------------------------------
class _Tensor:
    """A Sequential model's tensor between two layers (a graph model has KerasTensors)."""

    def __init__(self, shape):
        self.shape = tuple(shape)


class _Step:
    """One layer call: the layer, its argument structure, input and output tensors, node kwargs."""

    def __init__(self, layer, args, inputs, outputs, kwargs=None):
        self.layer, self.args, self.inputs, self.outputs = layer, args, list(inputs), list(outputs)
        self.kwargs = kwargs or {}


def _steps(model):
    """(steps in execution order, input tensors, output tensors) of a Sequential or graph model."""
    if hasattr(model, "_compute_nodes"):
        steps = [_Step(n.layer, n.args, n.input_tensors, n.outputs, n.kwargs) for n in model._compute_nodes]
        return steps, model.inputs, model.outputs
    x = _Tensor(model._input_layer.shape)
    first, steps = x, []
    for layer, shape in zip(model.layers, model._output_shapes):
        y = _Tensor(shape)
        steps.append(_Step(layer, [x], [x], [y]))
        x = y
    return steps, [first], [x]


def emit_model(b: GraphBuilder, model, inputs: List[Value]) -> List[Value]:
    """Emit `model`'s layers on the input Values; returns its output Values (nested models inline)."""
    steps, tensors_in, tensors_out = _steps(model)
    values: Dict[int, Value] = {id(t): v for t, v in zip(tensors_in, inputs)}
    folds = _fold_pairs(steps, tensors_out) if b.fold_batch_norm else {}
    folded = {id(step) for step in folds.values()}
    for step in steps:
        if id(step) in folded:
            continue
        bn = folds.get(id(step))
        outputs = _emit_step(b, step, [values[id(t)] for t in step.inputs], bn.layer if bn else None)
        for tensor, value in zip(bn.outputs if bn else step.outputs, outputs):
            values[id(tensor)] = value
    return [values[id(t)] for t in tensors_out]


def _emit_step(b: GraphBuilder, step: _Step, inputs: List[Value], fold) -> List[Value]:
    from ..layers.operations import Operation
    from ..models.training import Model
    from ..layers.pipeline import Pipeline
    layer = step.layer
    if isinstance(layer, Model):
        return emit_model(b, layer, inputs)
    if type(layer).__name__ == "TimeDistributed" and _is_convscope(layer):
        return [_time_distributed(b, step, inputs[0])]
    if type(layer).__name__ == "SpectralNormalization" and _is_convscope(layer):     # at inference, its layer
        return _emit_step(b, _Step(layer.layer, step.args, step.inputs, step.outputs, step.kwargs), inputs, fold)
    if isinstance(layer, Pipeline):         # its layers, one step each
        tensor, values = step.inputs[0], inputs
        for inner in layer.layers:
            out = _Tensor(inner.compute_output_shape(tensor.shape))
            values = _emit_step(b, _Step(inner, [tensor], [tensor], [out]), values, None)
            tensor = out
        return values
    shapes = [t.shape for t in step.outputs]
    try:
        inputs = [_layer_value(b, layer, value) for value in inputs]
        if isinstance(layer, Operation):
            from .onnx_operations import emit_operation
            out = emit_operation(b, Call(layer, inputs, shapes, _substitute(step.args, step.inputs, inputs),
                                         step.kwargs))
        else:
            emitter = EMITTERS.get(type(layer).__name__) if _is_convscope(layer) else None
            if emitter is None:
                raise CannotExport("there is no ONNX form of this class (a custom layer, or one the exporter "
                                   "does not know); export a model of convscope's layers")
            out = emitter(b, Call(layer, inputs, shapes, fold=fold))
    except CannotExport as error:
        raise ValueError(f"export_onnx: layer '{layer.name}' ({type(layer).__name__}) cannot be exported to "
                         f"ONNX: {error}") from None
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _time_distributed(b: GraphBuilder, step: _Step, value: Value) -> Value:
    """TimeDistributed at inference: the steps as samples, (batch · time, *rest), through its layer's own form,
    then (batch, time, *out) again (at inference every layer it may wrap computes sample by sample)."""
    layer, hint = step.layer, step.layer.name
    x = b.as_layout(value, "keras")
    time, rest = x.shape[1], tuple(x.shape[2:])
    if time is None or None in rest:
        raise ValueError(f"export_onnx: layer '{hint}' (TimeDistributed) cannot be exported to ONNX: every axis but "
                         f"the batch must be known, got input shape {x.shape}")
    merged = Value(b.op("Reshape", [x.name, b.ints([-1, *rest], "shape")], hint), (None, *rest), "keras")
    inner_in = _Tensor((None, *rest))
    inner_out = _Tensor(layer.layer.compute_output_shape(inner_in.shape))
    y = b.as_layout(_emit_step(b, _Step(layer.layer, [inner_in], [inner_in], [inner_out]), [merged], None)[0],
                    "keras")
    shape = b.ints([-1, time, *inner_out.shape[1:]], "shape")
    return Value(b.op("Reshape", [y.name, shape], hint), step.outputs[0].shape, "keras")


def _is_convscope(layer) -> bool:
    return type(layer).__module__.startswith("convscope.layers.")


def _substitute(structure, tensors, values):
    """The node's argument structure with each input tensor replaced by its Value."""
    by_id = {id(t): v for t, v in zip(tensors, values)}

    def walk(item):
        if isinstance(item, list):
            return [walk(i) for i in item]
        if isinstance(item, tuple):
            return tuple(walk(i) for i in item)
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        return by_id.get(id(item), item)
    return walk(structure)


def _fold_pairs(steps: List[_Step], outputs) -> Dict[int, _Step]:
    """{id(conv step): BatchNormalization step} for each BN on the channel axis right after a
    convolution with a linear activation whose output nothing else reads (and is no model output)."""
    readers: Dict[int, int] = {}
    for step in steps:
        for tensor in step.inputs:
            readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    for tensor in outputs:
        readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    producers = {id(t): step for step in steps for t in step.outputs}
    pairs: Dict[int, _Step] = {}
    for step in steps:
        layer = step.layer
        if type(layer).__name__ != "BatchNormalization" or not _is_convscope(layer) or len(step.inputs) != 1:
            continue
        tensor = step.inputs[0]
        conv = producers.get(id(tensor))
        if conv is None or readers.get(id(tensor)) != 1 or not _foldable(conv.layer, layer, len(tensor.shape)):
            continue
        pairs[id(conv)] = step
    return pairs


def _foldable(conv, bn, rank: int) -> bool:
    if type(conv).__name__ not in _FOLDS_INTO or not _is_convscope(conv) or conv.activation.name != "linear":
        return False
    channel = 1 if conv.data_format == "channels_first" else rank - 1
    return bn.axis % rank == channel
