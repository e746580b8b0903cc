"""A graph model's execution plan: its nodes, with chains of them fused as `models/plan.py` fuses a
Sequential's layers.

A chain is a run of one-input, one-output nodes whose intermediate tensors feed only the next
node and are not model outputs (conv -> BN -> ReLU inside a residual block, say).  In inference,
a two-input `Add` of same-shaped tensors joins the chain of one of its operands (the first whose
tensor only the Add reads), so the plan can fuse it into the producing convolution's epilogue
(`plan.EpilogueStage`); the other operand is the step's `residual`.  Each chain goes through
`plan.build_plan` for the mode; the stages it makes become `Step`s that read the chain's input
tensor (and the residual) and write their last node's output.  Every other node is a step of its
own.  Steps run in the order of their last node, so every input is computed before it is read.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from .plan import LAYERS, LayerStage, build_plan


class Step:
    """One unit of a graph's execution: `nodes` (one, or a fused chain) and their plan `stage`
    (None: the node runs through its layer, with its full arguments); `residual`: the tensor a
    fused Add adds (None without one)."""

    __slots__ = ("nodes", "stage", "input", "output", "residual")

    def __init__(self, nodes: Sequence, stage=None, residual=None):
        self.nodes = list(nodes)
        self.stage = stage
        self.input = self.nodes[0].input_tensors[0] if stage is not None else None
        self.output = self.nodes[-1].outputs[0] if stage is not None else None
        self.residual = residual


def graph_steps(nodes: Sequence, outputs: Sequence, mode: str) -> List[Step]:
    """The steps of `nodes` (the model's compute nodes, in execution order) for `mode`."""
    if mode == LAYERS:
        return [Step([node]) for node in nodes]
    consumers: Dict[int, List] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    model_outputs = {id(t) for t in outputs}
    # an Add joins the chain of the operand `main[id(add)]` (inference and training; the stages that fuse
    # it: `plan.EpilogueStage`, `plan.BatchNormReluStage`)
    main = _residual_adds(nodes, consumers, model_outputs)

    def linked(node) -> bool:
        return _simple(node) or id(node) in main

    def next_in_chain(node) -> Optional[object]:
        tensor = node.outputs[0]
        readers = consumers.get(id(tensor), [])
        if id(tensor) in model_outputs or len(readers) != 1 or not linked(readers[0]):
            return None
        reader = readers[0]
        if not _simple(reader) and main[id(reader)] is not tensor:
            return None
        return reader

    followers = {id(n): next_in_chain(n) for n in nodes if linked(n)}
    has_leader = {id(f) for f in followers.values() if f is not None}
    position = {id(node): index for index, node in enumerate(nodes)}
    steps = []
    for node in nodes:
        if not linked(node):
            steps.append(Step([node]))
        elif id(node) not in has_leader:            # the head of a chain (maybe of one node)
            chain = [node]
            while followers.get(id(chain[-1])) is not None:
                chain.append(followers[id(chain[-1])])
            steps.extend(_chain_steps(chain, mode, main))
    steps.sort(key=lambda step: position[id(step.nodes[-1])])
    return steps


def _residual_adds(nodes, consumers, model_outputs) -> Dict[int, object]:
    """{id(add node): the operand tensor whose chain it joins} for each two-input Add of same-shaped,
    same-typed tensors where one operand is read by the Add only and is not a model output."""
    main = {}
    for node in nodes:
        spec = node.layer.describe()
        tensors = node.input_tensors
        if (spec.kind != "merge" or spec.op != "add" or len(tensors) != 2 or len(node.outputs) != 1
                or node.kwargs or tensors[0] is tensors[1] or tuple(tensors[0].shape) != tuple(tensors[1].shape)
                or tensors[0].dtype != tensors[1].dtype or tuple(node.outputs[0].shape) != tuple(tensors[0].shape)):
            continue
        for tensor in tensors:
            if id(tensor) not in model_outputs and len(consumers.get(id(tensor), [])) == 1:
                main[id(node)] = tensor
                break
    return main


def _chain_steps(chain: List, mode: str, main: Dict[int, object]) -> List[Step]:
    stages = build_plan([node.layer for node in chain], mode)
    steps, start = [], 0
    for stage in stages:
        size = len(stage.layers)
        covered = chain[start:start + size]
        adds = [node for node in covered if not _simple(node)]
        if size > 1 or not isinstance(stage, LayerStage):
            residual = None
            if adds:          # the operand that is not the chain's
                residual = next(t for t in adds[0].input_tensors if t is not main[id(adds[0])])
            steps.append(Step(covered, stage, residual))
        else:
            steps.append(Step(covered))
        start += size
    return steps


def _simple(node) -> bool:
    """One tensor in (as the call's only argument), one tensor out."""
    return (len(node.input_tensors) == 1 and len(node.outputs) == 1 and len(node.args) == 1
            and node.args[0] is node.input_tensors[0] and not node.kwargs)
