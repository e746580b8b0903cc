"""A graph model's execution plan: its nodes, with chains of them fused as `models/plan.py` fuses a
Sequential's layers.

A chain is a run of one-input, one-output nodes whose intermediate tensors feed only the next
node and are not model outputs (conv -> BN -> ReLU inside a residual block, say).  Each chain
goes through `plan.build_plan` for the mode; the stages it makes become `Step`s that read the
chain's input tensor and write their last node's output.  Every other node is a step of its own.
Steps run in the order of their last node, so every input is computed before it is read.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from .plan import LAYERS, build_plan


class Step:
    """One unit of a graph's execution: `nodes` (one, or a fused chain) and their plan `stage`
    (None: the node runs through its layer, with its full arguments)."""

    __slots__ = ("nodes", "stage", "input", "output")

    def __init__(self, nodes: Sequence, stage=None):
        self.nodes = list(nodes)
        self.stage = stage
        self.input = self.nodes[0].input_tensors[0] if stage is not None else None
        self.output = self.nodes[-1].outputs[0] if stage is not None else None


def graph_steps(nodes: Sequence, outputs: Sequence, mode: str) -> List[Step]:
    """The steps of `nodes` (the model's compute nodes, in execution order) for `mode`."""
    if mode == LAYERS:
        return [Step([node]) for node in nodes]
    consumers: Dict[int, List] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    model_outputs = {id(t) for t in outputs}

    def next_in_chain(node) -> Optional[object]:
        tensor = node.outputs[0]
        readers = consumers.get(id(tensor), [])
        if id(tensor) in model_outputs or len(readers) != 1 or not _simple(readers[0]):
            return None
        return readers[0]

    followers = {id(n): next_in_chain(n) for n in nodes if _simple(n)}
    has_leader = {id(f) for f in followers.values() if f is not None}
    position = {id(node): index for index, node in enumerate(nodes)}
    steps = []
    for node in nodes:
        if not _simple(node):
            steps.append(Step([node]))
        elif id(node) not in has_leader:            # the head of a chain (maybe of one node)
            chain = [node]
            while followers.get(id(chain[-1])) is not None:
                chain.append(followers[id(chain[-1])])
            steps.extend(_chain_steps(chain, mode))
    steps.sort(key=lambda step: position[id(step.nodes[-1])])
    return steps


def _chain_steps(chain: List, mode: str) -> List[Step]:
    stages = build_plan([node.layer for node in chain], mode)
    steps, start = [], 0
    for stage in stages:
        size = len(stage.layers)
        covered = chain[start:start + size]
        steps.append(Step(covered, stage) if size > 1 else Step(covered))
        start += size
    return steps


def _simple(node) -> bool:
    """One tensor in (as the call's only argument), one tensor out."""
    return (len(node.input_tensors) == 1 and len(node.outputs) == 1 and len(node.args) == 1
            and node.args[0] is node.input_tensors[0] and not node.kwargs)
