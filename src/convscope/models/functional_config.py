"""A functional model's config in Keras 3's format, both ways.

`{"name", "trainable", "layers": [{"module", "class_name", "config", "registered_name",
"build_config", "name", "inbound_nodes": [{"args": [...], "kwargs": {}}]}], "input_layers",
"output_layers"}`: each node's arguments name the tensors they take as
`{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history":
[layer name, node index, tensor index]}}`, node indices counted among the model's own
nodes of that layer, as Keras writes them.  Rebuilding calls each layer again on the
tensors its nodes name, deferring a node until its inputs exist (shared layers).
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .. import layers as layers_module
from ..layers import Input, InputLayer
from ..layers.graph import KerasTensor
from ..layers.operations import Operation

_TENSOR = "__keras_tensor__"


def functional_config(model) -> Dict[str, Any]:
    """Keras 3's `Functional.get_config()`."""
    own = {id(node) for node in model._nodes}
    index_of = {}                      # id(node) -> its index among the model's nodes of its layer
    for layer in model._layers:
        for position, node in enumerate(n for n in layer._inbound_nodes if id(n) in own):
            index_of[id(node)] = position
    entries = []
    for layer in model._layers:
        entry = layers_module.serialize(layer)          # a nested model as Keras writes it too
        if hasattr(layer, "keras_build_config") and layer.built:     # MultiHeadAttention's named shapes
            entry["build_config"] = layer.keras_build_config()
        elif not isinstance(layer, InputLayer) and layer._build_input_shape is not None:
            entry["build_config"] = {"input_shape": _jsonable_shape(layer._build_input_shape)}
        entry["name"] = layer.name
        entry["inbound_nodes"] = [
            {"args": _serialize_args(node.args, index_of), "kwargs": _serialize_args(dict(node.kwargs), index_of)}
            for node in layer._inbound_nodes if id(node) in own and not node.is_input]
        entries.append(entry)
    return {"name": model.name, "trainable": model.trainable, "layers": entries,
            "input_layers": _io_config(model._input_structure, index_of),
            "output_layers": _io_config(model._output_structure, index_of)}


def _jsonable_shape(shape):
    if isinstance(shape, list):
        return [_jsonable_shape(s) for s in shape]
    return list(shape)


def _history(tensor: KerasTensor, index_of) -> List[Any]:
    layer, node_index, tensor_index = tensor.keras_history
    return [layer.name, index_of[id(layer._inbound_nodes[node_index])], tensor_index]


def _serialize_args(value, index_of):
    if isinstance(value, KerasTensor):
        return {"class_name": _TENSOR, "config": {"shape": list(value.shape), "dtype": value.dtype,
                                                   "keras_history": _history(value, index_of)}}
    if isinstance(value, (list, tuple)):
        return [_serialize_args(item, index_of) for item in value]
    if isinstance(value, dict):
        return {key: _serialize_args(item, index_of) for key, item in value.items()}
    return _serialize_constant(value)


def _serialize_constant(value):
    """An operation's constant argument as Keras writes it (`x[1:, ...]`, a NumPy array)."""
    if isinstance(value, slice):
        return {"class_name": "__slice__", "config": {"start": value.start, "stop": value.stop, "step": value.step}}
    if value is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _io_config(structure, index_of):
    if isinstance(structure, dict):
        return {key: _history(tensor, index_of) for key, tensor in structure.items()}
    if isinstance(structure, list):
        return [_history(tensor, index_of) for tensor in structure]
    return _history(structure, index_of)


# -- from a config ---------------------------------------------------------------------------------

def functional_from_config(cls, config: Dict[str, Any], custom_objects=None, make_layer=None):
    """Rebuild the model that `functional_config` (or Keras 3) described; `make_layer(entry, name)`, where given,
    makes each layer in place of its entry (None: the entry's own, `clone_model`'s input layers)."""
    where = f"{cls.__name__}.from_config"
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        given = f"a dict with keys {sorted(config)}" if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{where}: expected a dict with a 'layers' list, got {given}")
    created: Dict[str, Any] = {}
    outputs: Dict[str, List[List[Any]]] = {}        # layer name -> output tensors per node
    pending = []
    for entry in config["layers"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ValueError(f"{where}: each entry of 'layers' must be a dict with a 'config' dict, got {entry!r}")
        _refuse_keras_masks(entry, where)
    for entry in config["layers"]:
        name = entry.get("name") or entry["config"].get("name")
        layer = None if make_layer is None else make_layer(entry, name)
        layer = deserialize_layer(entry, custom_objects) if layer is None else layer
        if name in created:
            raise ValueError(f"{where}: the layer name '{name}' appears twice in the config")
        created[name] = layer
        outputs[name] = []
        if isinstance(layer, InputLayer):
            outputs[name].append([layer.output])
        nodes = entry.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise ValueError(f"{where}: 'inbound_nodes' of layer '{name}' must be a list, got {nodes!r}")
        pending.extend((name, node) for node in nodes)
    _replay(pending, created, outputs, where)
    inputs = _io_tensors(config.get("input_layers"), outputs, where, "input_layers")
    model_outputs = _io_tensors(config.get("output_layers"), outputs, where, "output_layers")
    return cls(inputs, model_outputs, name=config.get("name"), trainable=config.get("trainable", True))


def _refuse_keras_masks(entry, where: str) -> None:
    """A node of a layer that does not take `mask` as an argument of its own, called with one: Keras' implicit
    masking (from Masking, Embedding(mask_zero=True) or an attention layer's query mask) carried a mask to it,
    which convscope does not propagate; refused by name before the mask's own operations are met."""
    cls = layers_module.LAYER_CLASSES.get(entry.get("class_name"))
    if cls is not None and "mask" in getattr(cls, "CALL_KWARGS", ()):
        return
    for node in entry.get("inbound_nodes") or []:
        kwargs = node.get("kwargs") if isinstance(node, dict) else None
        if isinstance(kwargs, dict) and kwargs.get("mask") is not None:
            name = entry.get("name") or entry["config"].get("name")
            raise ValueError(f"{where}: layer '{name}' ({entry.get('class_name')}) is called with a Keras mask "
                             "(from Masking, Embedding(mask_zero=True) or an attention layer's query mask); "
                             "convscope does not propagate Keras' masks, so it cannot compute this model as Keras does")


def deserialize_layer(entry, custom_objects):
    """A layer, or a nested Sequential/Functional model, from its entry."""
    if entry.get("class_name") in ("Sequential", "Functional", "Model"):
        from .sequential import model_from_config
        return model_from_config(entry, custom_objects)
    return layers_module.deserialize(entry, custom_objects)


def _replay(pending, created, outputs, where: str) -> None:
    """Call each layer on the tensors its nodes name, in the order they become available."""
    while pending:
        progress, waiting = False, []
        for name, node in pending:
            if not isinstance(node, dict) or not isinstance(node.get("args"), list):
                raise ValueError(f"{where}: a node of layer '{name}' must be a dict with an 'args' list, got {node!r}")
            layer = created[name]
            accepted = getattr(layer, "CALL_KWARGS", frozenset())
            try:
                args = _deserialize_args(node["args"], outputs)
                given = {k: v for k, v in (node.get("kwargs") or {}).items() if k in accepted}
                call_kwargs = _deserialize_args(given, outputs)
            except LookupError:
                waiting.append((name, node))
                continue
            if isinstance(layer, Operation):        # `x * 0.5`: the node's arguments as they were
                result = layer(*args, **(node.get("kwargs") or {}))
                outputs[name].append(result if isinstance(result, list) else [result])
                progress = True
                continue
            kwargs = {k: v for k, v in (node.get("kwargs") or {}).items()
                      if v is not None and k != "training" and k not in accepted}
            if kwargs:          # Keras writes mask=None; anything else is a call argument we lack
                raise ValueError(f"{where}: a node of layer '{name}' passes {sorted(kwargs)}, which "
                                 "convscope's layers do not take")
            if accepted:        # a layer taking several tensors and keyword ones (MultiHeadAttention)
                result = layer(*args, **call_kwargs)
                outputs[name].append(result if isinstance(result, list) else [result])
                progress = True
                continue
            if len(args) != 1:
                raise ValueError(f"{where}: a node of layer '{name}' passes {len(args)} positional arguments; "
                                 "expected one (a tensor or a list of tensors)")
            result = layer(args[0])
            outputs[name].append(result if isinstance(result, list) else [result])
            progress = True
        if not progress:
            names = sorted({name for name, _ in waiting})
            raise ValueError(f"{where}: the nodes of layers {names} take tensors that no layer of the config "
                             "produces (a disconnected or cyclic graph)")
        pending = waiting


def _deserialize_args(value, outputs):
    if isinstance(value, dict) and value.get("class_name") == _TENSOR:
        history = (value.get("config") or {}).get("keras_history")
        return _lookup(history, outputs)
    if isinstance(value, dict) and value.get("class_name") in ("__slice__", "__ellipsis__", "__numpy__"):
        config = value.get("config") or {}
        if value["class_name"] == "__slice__":
            return slice(config.get("start"), config.get("stop"), config.get("step"))
        if value["class_name"] == "__numpy__":
            return np.asarray(config.get("value"), dtype=config.get("dtype"))
        return Ellipsis
    if isinstance(value, list):
        return [_deserialize_args(item, outputs) for item in value]
    if isinstance(value, dict):
        return {key: _deserialize_args(item, outputs) for key, item in value.items()}
    return value


def _lookup(history, outputs) -> KerasTensor:
    if not isinstance(history, (list, tuple)) or len(history) != 3:
        raise ValueError(f"a tensor's keras_history must be [layer name, node index, tensor index], got {history!r}")
    name, node_index, tensor_index = history
    if name not in outputs:
        raise ValueError(f"a node takes a tensor of layer {name!r}, which the config does not define")
    if not isinstance(node_index, int) or node_index >= len(outputs[name]):
        raise LookupError(name)
    return outputs[name][node_index][tensor_index]


def _io_tensors(spec, outputs, where: str, key: str):
    try:
        if isinstance(spec, dict):
            return {k: _lookup(v, outputs) for k, v in spec.items()}
        if isinstance(spec, list) and spec and isinstance(spec[0], str):
            return _lookup(spec, outputs)
        if isinstance(spec, list) and spec:
            return [_lookup(item, outputs) for item in spec]
    except (LookupError, IndexError, TypeError) as error:
        raise ValueError(f"{where}: '{key}' names a tensor the layers do not produce: {error}") from None
    raise ValueError(f"{where}: '{key}' must name the model's tensors as [layer, node, index] or a list/dict of "
                     f"them, got {spec!r}")
