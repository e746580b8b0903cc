"""`analyze` for graph (functional) models: one row of numbers per call of a layer (per node).

Rows follow `model.operations` (Keras' order, InputLayers first; the operations too), a shared layer's calls
side by side; the receptive fields are computed in execution order (`model._nodes`),
each node from its parents' fields.  A merge (Add, Concatenate, ...) sees the union of
its inputs' fields: on each axis the smallest extent covering every branch.  Only the
nodes' public attributes are read (`layer`, `input_tensors`, `outputs`, `is_input`,
`keras_history`), never the model's execution machinery.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from ..ops.batch_dot import batch_dot_axes
from . import analysis
from .analysis import LayerNumbers, ModelNumbers


def model_nodes(model) -> List:
    """The model's nodes in row order: `model.layers` order, each layer's calls in this model in turn."""
    own = set(model._nodes)
    return [node for layer in model.operations for node in layer._inbound_nodes if node in own]


def source_label(model, tensor) -> str:
    """Where a tensor comes from: the layer's name, "(call k)" for a shared layer, "[i]" for a second output."""
    layer, node_index, tensor_index = tensor.keras_history
    own = set(model._nodes)
    calls = [n for n in layer._inbound_nodes if n in own]
    node = layer._inbound_nodes[node_index]
    label = layer.name if len(calls) == 1 or node not in calls else f"{layer.name} (call {calls.index(node) + 1})"
    return label + (f"[{tensor_index}]" if len(node.outputs) > 1 else "")


def analyze_graph(model, batch_size: Optional[int] = None) -> ModelNumbers:
    """Numbers for every call of every layer of a built functional `model` (see the module docstring)."""
    nodes = model_nodes(model)
    if not nodes:
        raise ValueError("analyze: argument `model` has no layers; build it from Input(...) to outputs")
    inputs = [tuple(t.shape) for t in model.inputs]
    outputs = [tuple(t.shape) for t in model.outputs]
    batch = analysis._batch_size(batch_size, inputs[0], "analyze")
    position = {node: i for i, node in enumerate(nodes)}
    rows = [_node_row(model, node, i, position, batch) for i, node in enumerate(nodes)]
    fields: Dict[int, Optional[dict]] = {}
    for node in model._nodes:        # execution order: every parent before its children
        row = rows[position[node]]
        result = _node_fields(row, node, fields, rows, position)
        if result is None and any(not rows[position[p]].field_known for p in node.parent_nodes):
            row.field_known = False          # an input's field is not followed, so neither is this one
        row.receptive_field = analysis._spatial_fields(row, result)
        for tensor in node.outputs:
            fields[id(tensor)] = result
    optimizer = getattr(model, "optimizer", None)
    name = getattr(model, "name", "functional")
    return ModelNumbers(name=name, input_shape=inputs[0], output_shape=outputs[0], layers=rows, batch_size=batch,
                        optimizer=type(optimizer).__name__ if optimizer is not None else None,
                        optimizer_slots=analysis.optimizer_slots(optimizer) if optimizer is not None else None,
                        input_shapes=inputs, output_shapes=outputs)


def _node_row(model, node, index: int, position, batch: int) -> LayerNumbers:
    """The numbers of one call: the layer's formulas on this call's input and output shapes."""
    layer = node.layer
    output_shape = tuple(node.outputs[0].shape)
    own = set(model._nodes)
    calls = [n for n in layer._inbound_nodes if n in own]
    if node.is_input:
        row = LayerNumbers(index=index, name=layer.name, class_name=type(layer).__name__, kind="input",
                           input_shape=output_shape, output_shape=output_shape, batch_size=batch,
                           itemsize=np.dtype(node.outputs[0].dtype or "float32").itemsize)
    else:
        shapes = [tuple(t.shape) for t in node.input_tensors]
        spec = layer.describe()
        if spec.kind == "merge":            # Add … Concatenate (an operation such as `ops.add` is not one)
            row = _merge_row(layer, spec, index, shapes, output_shape, batch)
        elif spec.kind == "attention":
            listed = node.args[0] if len(node.args) == 1 and isinstance(node.args[0], list) else []
            row = _attention_row(layer, spec, index, shapes, output_shape, batch,
                                 "key" in node.kwargs or len(listed) == 3)    # Attention([query, value, key])
        else:
            row = analysis._analyze_one(layer, index, shapes[0], batch, known_output=output_shape)
        row.input_shapes = shapes
    row.call, row.calls = calls.index(node) + 1, len(calls)
    row.inbound = [source_label(model, t) for t in node.input_tensors]
    row.parents = [position[p] for p in node.parent_nodes]
    return row


def _merge_row(layer, spec, index: int, shapes, output_shape, batch: int) -> LayerNumbers:
    """A merge layer: no parameters; (n − 1) element-wise ops per output (Average: n, its divide included),
    none for Concatenate (it only copies)."""
    row = LayerNumbers(index=index, name=layer.name, class_name=type(layer).__name__, kind="merge",
                       input_shape=shapes[0], output_shape=output_shape, batch_size=batch,
                       itemsize=np.dtype(getattr(layer, "dtype", None) or "float32").itemsize, op=spec.op)
    count = len(shapes)
    if spec.op == "dot":
        return _dot_row(row, spec, shapes)
    if spec.op == "concatenate":
        row.concat_axis = int(spec.axis if spec.axis is not None else -1) % len(output_shape)
    if spec.op in ("average", "custom_scale"):      # n − 1 adds and a divide; x + scale · r: an add and a multiply
        row.merge_ops = count * row.output_elements
    elif spec.op != "concatenate":
        row.merge_ops = (count - 1) * row.output_elements
    return row


def _attention_row(layer, spec, index: int, shapes, output_shape, batch: int, has_key: bool) -> LayerNumbers:
    """MultiHeadAttention: its projections (each position times its kernel), then per head the T × S scores of
    key_dim products and the T × S weighted sums of value_dim; a softmax's 3 operations per score.  Attention and
    AdditiveAttention: one head, no projections (the key the value's when not given: `has_key`)."""
    row = LayerNumbers(index=index, name=layer.name, class_name=type(layer).__name__, kind="attention",
                       input_shape=shapes[0], output_shape=output_shape, batch_size=batch,
                       itemsize=np.dtype(getattr(layer, "dtype", None) or "float32").itemsize)
    query, value = shapes[0], shapes[1]
    key = shapes[2] if has_key else value           # the node's tensors: query, value, then key= and the mask
    def count(shape):           # positions: the values per sample over the last axis
        return analysis._elements(shape) // (shape[-1] or 1)
    positions = {"query": count(query), "gate": count(query), "key": count(key), "value": count(value),
                 "attention_output": count(query)}
    projections = sum(positions[name] * int(np.prod(kernel.shape)) for name, kernel in spec.weights.items()
                      if kernel is not None) if spec.weights else None      # None: Attention's, none at all
    targets = int(np.prod([query[a] or 0 for a in spec.axis])) if spec.axis else 0
    sources = int(np.prod([value[a] or 0 for a in spec.axis])) if spec.axis else 0
    batch_positions = positions["query"] // max(targets, 1)
    key_dim, value_dim = spec.size
    scores = spec.filters * batch_positions * targets * sources
    row.filters, row.macs = spec.filters, (projections or 0) + scores * ((key_dim or 0) + (value_dim or 0))
    row.attention = (projections, batch_positions * targets, sources, key_dim, value_dim)
    row.norm_ops = 3 * scores
    row.field_known = False
    analysis._weights(row, layer)
    return row


def _dot_row(row: LayerNumbers, spec, shapes) -> LayerNumbers:
    """Dot: one multiply-add per output and summed pair (`in_channels`, the summed axes' size); with
    `normalize`, 3 operations per input value (square, sum, multiply by 1 / norm)."""
    row.dot_axes = batch_dot_axes(spec.axis, [len(s) for s in shapes], row.name)
    row.in_channels = shapes[0][row.dot_axes[0]]
    row.macs = row.output_elements * (row.in_channels or 0)
    row.field_known = False
    if spec.normalize:
        row.norm_ops = 3 * sum(analysis._elements(s) for s in shapes)
    return row


def _node_fields(row: LayerNumbers, node, fields, rows, position) -> Optional[dict]:
    """The fields of a node's output from its parents' (see `analysis._propagate_fields`)."""
    if node.is_input:
        return analysis._initial_fields(row.output_shape)
    parents = [fields.get(id(t)) for t in node.input_tensors]
    if not row.field_known:
        return None              # Dot: its summed axes and the inputs' other axes do not line up as a union
    if row.kind == "merge" or (row.kind == "operation" and row.elementwise and len(parents) > 1):
        return _merge_fields(row, node, parents, rows, position)
    if len(parents) != 1:
        return None              # several inputs but not a merge: no single window to follow
    row.data_format = row.data_format or rows[position[node.parent_nodes[0]]].data_format
    return analysis._propagate_fields(row, parents[0])


def _merge_fields(row: LayerNumbers, node, parents, rows, position) -> Optional[dict]:
    """The union of the inputs' fields, axis by axis; the branches are kept for the explanations."""
    parent_rows = [rows[position[p]] for p in node.parent_nodes]
    row.data_format = next((r.data_format for r in parent_rows if r.data_format), None)
    row.branches = [(label, r.receptive_field) for label, r in zip(row.inbound, parent_rows)]
    if any(p is None for p in parents):
        return None
    out = {}
    for axis in range(1, len(row.output_shape)):
        same = all(len(s) == len(row.output_shape) and s[axis] == row.output_shape[axis] for s in row.input_shapes)
        parts = [p.get(axis) for p in parents]
        if axis == row.concat_axis or not same or any(part is None for part in parts):
            out[axis] = None     # concatenated or broadcast along it: no one window per unit
        else:
            out[axis] = union_axis(parts, row.output_shape[axis])
    return out


def union_axis(parts: List[Tuple[int, int, int]], length: Optional[int]) -> Tuple[int, int, int]:
    """(size, jump, start) covering every branch's (size, jump, start) on one axis.

    Equal jumps (the usual case: the branches' outputs line up): start = the smallest
    start, size = the largest end − start + 1, exact for every unit.  Unequal jumps
    (e.g. a stride-2 conv added to a 9-wide valid one): the smallest jump and start,
    and the size that makes each of the `length` units' rectangle cover all its branches.
    """
    start = min(st for _, _, st in parts)
    jump = min(j for _, j, _ in parts)
    units = range(length) if length and len({j for _, j, _ in parts}) > 1 else range(1)
    size = max(max(st + i * j + s - 1 for s, j, st in parts) - (start + i * jump) + 1 for i in units)
    return size, jump, start


