"""Order the nodes of a functional graph, as Keras' `map_graph` does, and check it.

A depth-first walk from the outputs finds every node that leads to them (and a cycle
if there is one); each node's depth is its distance from the outputs; layers are listed
deepest first (the inputs), ties in the order the walk met them.  That order is Keras'
`model.layers` order, and so the order of `model.weights` and `get_weights()`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

from ..layers.graph import KerasTensor, Node


def map_graph(inputs: Sequence[KerasTensor], outputs: Sequence[KerasTensor],
              where: str) -> Tuple[List[Node], List]:
    """(nodes in execution order, layers in Keras' order) for the graph from `inputs` to `outputs`.

    Raises ValueError naming the layer for a cycle, an output not computable from the
    inputs (a disconnected graph) and duplicate layer names.
    """
    ordered, first_seen = _walk(inputs, outputs, where)
    node_depth: Dict[Node, int] = {}
    layer_depth: Dict[object, int] = {}
    for node in reversed(ordered):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = depth
        node_depth[node] = depth
        for parent in node.parent_nodes:
            node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    for tensor in inputs:            # inputs that lead nowhere are still the model's inputs
        layer = tensor.keras_history[0]
        if layer not in layer_depth:
            layer_depth[layer] = 0
            first_seen[layer] = -1
            node_depth[layer._inbound_nodes[0]] = 0
    by_depth = defaultdict(list)
    for layer, depth in layer_depth.items():
        by_depth[depth].append(layer)
    layers = [layer for depth in sorted(by_depth, reverse=True)
              for layer in sorted(by_depth[depth], key=lambda lay: first_seen[lay])]
    nodes = sorted(node_depth, key=lambda n: -node_depth[n])
    _check_computable(inputs, nodes, where)
    _check_unique_names(layers, where)
    return nodes, layers


def _walk(inputs, outputs, where: str):
    """Depth-first from each output: nodes from the inputs to the outputs, and each layer's first visit."""
    finished, in_progress = set(), set()
    ordered: List[Node] = []
    first_seen: Dict[object, int] = {}
    input_ids = {id(t) for t in inputs}

    def visit(tensor: KerasTensor) -> None:
        layer, node_index, _ = tensor.keras_history
        node = layer._inbound_nodes[node_index]
        if node in finished:
            return
        if node in in_progress:
            raise ValueError(f"{where}: the graph has a cycle through layer '{layer.name}' "
                             f"({type(layer).__name__}); a functional model must be acyclic")
        first_seen.setdefault(layer, len(first_seen))
        in_progress.add(node)
        if not node.is_input and id(tensor) not in input_ids:
            for parent in node.input_tensors:
                visit(parent)
        finished.add(node)
        in_progress.discard(node)
        ordered.append(node)

    for output in outputs:
        visit(output)
    return ordered, first_seen


def _check_computable(inputs, nodes: List[Node], where: str) -> None:
    """Every node's inputs must come from the model's inputs (else the graph is disconnected)."""
    known = {id(t) for t in inputs}
    for node in nodes:
        for tensor in node.input_tensors:
            if id(tensor) not in known:
                source = tensor.keras_history[0]
                raise ValueError(
                    f"{where}: graph disconnected: layer '{node.layer.name}' ({type(node.layer).__name__}) "
                    f"takes a tensor from '{source.name}' ({type(source).__name__}) that cannot be computed "
                    f"from the model's inputs {[t.keras_history[0].name for t in inputs]}; pass that "
                    "layer's Input to the model too")
        if node.is_input and not any(id(t) in known for t in node.outputs):
            raise ValueError(
                f"{where}: graph disconnected: the output depends on the input '{node.layer.name}', "
                f"which is not among the model's inputs {[t.keras_history[0].name for t in inputs]}")
        known.update(id(t) for t in node.outputs)


def _check_unique_names(layers, where: str) -> None:
    seen: Dict[str, object] = {}
    for layer in layers:
        other = seen.get(layer.name)
        if other is not None and other is not layer:
            raise ValueError(f"{where}: the name '{layer.name}' is used by two layers "
                             f"({type(other).__name__} and {type(layer).__name__}); every layer in a model "
                             "needs a unique name")
        seen[layer.name] = layer
