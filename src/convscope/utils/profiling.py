"""Where a model's time goes: each layer's forward and backward, timed from the outside.

`profile(model, x, y)` runs the layers one by one, as the training step does
(forward in training mode, the loss and its gradient, then each layer's
`backward` in reverse, the first one without the input gradient where it can
skip it, a max pooling's gradient through the ReLU of the Conv2D before it as
training takes it), times every call, and returns a `ProfileResult`: one
row per layer, the time per layer type and phase ("Conv2D backward"), the top
hotspots and a printed table.  Each figure is the median over `repeats`
passes after `warmup` untimed ones.  Layers are timed through their public
`__call__`/`backward` only, so the profile sees exactly what training runs.
On a compiled model the optimizer's update is timed too, applied to copies of
the variables by a copy of the optimizer.  (The training loop fuses a softmax
output with a crossentropy; the profile runs the loss gradient through the
softmax instead, which costs the same to within a few microseconds.)

The model is left as it was: weights (BatchNormalization's moving statistics
included) and gradients are restored after profiling.  Dropout draws from the
global generator, so random streams advance.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from statistics import median
from typing import Dict, List, Optional, Tuple

import numpy as np

from .. import backend
from ..models.plan import INFERENCE, TRAINING, build_plan

__all__ = ["profile", "ProfileResult", "LayerTiming"]


@dataclass
class LayerTiming:
    """Median seconds of one layer's forward and backward (None when backward was not run)."""

    index: int
    name: str
    class_name: str
    output_shape: Tuple[int, ...]
    forward_s: float
    backward_s: Optional[float]
    flops: int = 0  # forward GEMM FLOPs of the batch (2 per multiply-add; 0 without a GEMM)
    fused_into: Optional[str] = None  # the layer whose op ran this one's forward pass (its time is there)

    @property
    def total_s(self) -> float:
        return self.forward_s + (self.backward_s or 0.0)


@dataclass
class ProfileResult:
    """A profile: per-layer timings, the loss's time, and summaries of where time goes."""

    model_name: str
    batch_size: int
    training: bool
    repeats: int
    layers: List[LayerTiming]
    loss_name: Optional[str] = None
    loss_s: Optional[float] = None  # loss value and its gradient w.r.t. the output
    update_name: Optional[str] = None
    update_s: Optional[float] = None  # the optimizer's update of every trainable variable
    notes: List[str] = field(default_factory=list)

    @property
    def forward_s(self) -> float:
        return sum(row.forward_s for row in self.layers)

    @property
    def backward_s(self) -> float:
        return sum(row.backward_s or 0.0 for row in self.layers)

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s + (self.loss_s or 0.0) + (self.update_s or 0.0)

    def by_op(self) -> Dict[str, Dict[str, float]]:
        """Seconds per layer type and phase: {"Conv2D": {"forward": ..., "backward": ...}, ...}."""
        totals: Dict[str, Dict[str, float]] = {}
        for row in self.layers:
            phases = totals.setdefault(row.class_name, {"forward": 0.0, "backward": 0.0})
            phases["forward"] += row.forward_s
            phases["backward"] += row.backward_s or 0.0
        return totals

    def hotspots(self, count: int = 5) -> List[Tuple[str, str, float, float]]:
        """The `count` slowest (layer, phase) pairs as (label, phase, seconds, fraction of total)."""
        entries = [(f"{row.name} ({row.class_name})", "forward", row.forward_s) for row in self.layers]
        entries += [(f"{row.name} ({row.class_name})", "backward", row.backward_s)
                    for row in self.layers if row.backward_s is not None]
        if self.loss_s is not None:
            entries.append((f"loss ({self.loss_name})", "forward+gradient", self.loss_s))
        if self.update_s is not None:
            entries.append((f"update ({self.update_name})", "optimizer", self.update_s))
        entries.sort(key=lambda entry: entry[2], reverse=True)
        total = self.total_s or 1.0
        return [(label, phase, seconds, seconds / total) for label, phase, seconds in entries[:count]]

    def to_dict(self) -> Dict:
        """JSON-ready: the rows, the loss, the totals and the per-op summary."""
        return {"model": self.model_name, "batch_size": self.batch_size, "training": self.training,
                "repeats": self.repeats, "total_s": self.total_s, "loss": self.loss_name,
                "loss_s": self.loss_s, "update": self.update_name, "update_s": self.update_s,
                "by_op": self.by_op(),
                "layers": [{"index": r.index, "name": r.name, "class_name": r.class_name,
                            "output_shape": list(r.output_shape), "forward_s": r.forward_s,
                            "backward_s": r.backward_s, "flops": r.flops, "fused_into": r.fused_into}
                           for r in self.layers]}

    def table(self) -> str:
        """The profile as a text table: per layer, then per op, then the hotspots."""
        total = self.total_s or 1.0
        mode = "training step (forward in training mode, loss, backward)" if self.training else "inference"
        lines = [f"Profile of '{self.model_name}': batch {self.batch_size}, {mode}; "
                 f"median of {self.repeats} repeats"]
        header = (f"{'#':>3}  {'layer (type)':40} {'output shape':20} {'fwd ms':>9} {'bwd ms':>9} "
                  f"{'total ms':>9} {'%':>6} {'fwd GFLOP/s':>11}")
        lines += [header, "-" * len(header)]
        for row in self.layers:
            backward = "-" if row.backward_s is None else f"{row.backward_s * 1e3:.3f}"
            rate = f"{row.flops / row.forward_s / 1e9:.1f}" if row.flops and row.forward_s > 0 else ""
            label = (row.name + ' (' + row.class_name + ')')[:40]
            forward = "fused" if row.fused_into is not None else f"{row.forward_s * 1e3:.3f}"
            lines.append(f"{row.index:>3}  {label:40} "
                         f"{str(row.output_shape):20} {forward:>9} {backward:>9} "
                         f"{row.total_s * 1e3:>9.3f} {100 * row.total_s / total:>5.1f}% {rate:>11}")
        if self.loss_s is not None:
            lines.append(f"{'':>3}  {('loss (' + str(self.loss_name) + ')')[:40]:40} {'':20} "
                         f"{self.loss_s * 1e3:>9.3f} {'':>9} {self.loss_s * 1e3:>9.3f} "
                         f"{100 * self.loss_s / total:>5.1f}%")
        if self.update_s is not None:
            lines.append(f"{'':>3}  {('update (' + str(self.update_name) + ')')[:40]:40} {'':20} "
                         f"{'':>9} {'':>9} {self.update_s * 1e3:>9.3f} {100 * self.update_s / total:>5.1f}%")
        lines.append("-" * len(header))
        lines.append(f"{'':>3}  {'total':40} {'':20} {self.forward_s * 1e3:>9.3f} "
                     f"{(self.backward_s * 1e3 if self.training else 0):>9.3f} {self.total_s * 1e3:>9.3f}")
        lines.append("By op: " + "; ".join(
            f"{op} {phase} {seconds * 1e3:.2f} ms ({100 * seconds / total:.0f}%)"
            for op, phases in sorted(self.by_op().items(), key=lambda item: -sum(item[1].values()))
            for phase, seconds in phases.items() if seconds > 0))
        lines.append("Hotspots: " + "; ".join(
            f"{rank}. {label} {phase} {seconds * 1e3:.2f} ms ({100 * fraction:.0f}%)"
            for rank, (label, phase, seconds, fraction) in enumerate(self.hotspots(), start=1)))
        lines.extend(self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def profile(model, x, y=None, loss=None, repeats: int = 5, warmup: int = 1, training: bool = True,
            print_table: bool = True) -> ProfileResult:
    """Time each layer of a Sequential `model` on the batch `x`, forward and (if `training`) backward.

    `y` and `loss` (a name or loss object; by default the compiled loss) give
    the backward pass its starting gradient; without `y` the gradient of the
    mean of the outputs is used, which costs the layers the same.  With
    `training=False` only the inference forward pass is timed.  The forward pass
    runs stage by stage as `fit` or `predict` runs it: a layer fused into a Conv2D's
    op shows "fused" and no forward time of its own.
    """
    if hasattr(model, "_steps"):            # a graph model: its own plan's steps
        return _profile_graph(model, x, y, loss, repeats, warmup, training, print_table)
    layers = _check_model(model)
    x = _check_input(x)
    repeats = _check_count(repeats, "repeats", 1)
    warmup = _check_count(warmup, "warmup", 0)
    for arg, value in (("training", training), ("print_table", print_table)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"profile: argument `{arg}` must be True or False, got {value!r}")
    if not training and (y is not None or loss is not None):
        raise ValueError("profile: arguments `y` and `loss` are only used with training=True (they seed "
                         "the backward pass); drop them or set training=True")
    loss_object = _resolve_loss(model, y, loss) if training else None
    if loss_object is not None:
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"profile: argument `y` must hold one target per sample of `x` "
                             f"({x.shape[0]}), got shape {y.shape}")

    if not getattr(model, "built", True) and hasattr(model, "build"):
        model.build((None,) + tuple(x.shape[1:]))
    # Layers built by this first call have no earlier weights to restore (None).
    saved_weights = [layer.get_weights() if layer.built else None for layer in layers]
    saved_grads = [[v.grad for v in layer.trainable_weights] for layer in layers]
    forward_times: List[List[float]] = [[] for _ in layers]
    backward_times: List[List[float]] = [[] for _ in layers]
    loss_times: List[float] = []
    update_times: List[float] = []
    optimizer = getattr(model, "optimizer", None) if training else None
    shadow_optimizer = copy.deepcopy(optimizer) if hasattr(optimizer, "apply") else None
    shapes: List[Tuple[int, ...]] = []
    # As `fit` and `predict` run them: the model's plan (models/plan.py).
    stages = model._plan(TRAINING if training else INFERENCE) if hasattr(model, "_plan") else \
        build_plan(layers, TRAINING if training else INFERENCE)
    owners = [_owner(stage.layers) for stage in stages]
    fused_into = {id(layer): owner.name for stage, owner in zip(stages, owners)
                  for layer in stage.layers if layer is not owner}
    heads = [layers.index(stage.layers[0]) for stage in stages]
    rows_of_time = [layers.index(owner) for owner in owners]
    try:
        for run in range(warmup + repeats):
            timed = run >= warmup
            out = x
            shapes, contexts = [], []
            # in inference nothing is kept for backward
            with contextlib.nullcontext() if training else backend.no_backward():
                for stage, head, owner in zip(stages, heads, rows_of_time):
                    start = time.perf_counter()
                    out, ctx = stage.forward(out, training=training)
                    elapsed = time.perf_counter() - start
                    contexts.append(ctx)
                    for layer in stage.layers:
                        shapes.append(tuple(layer.compute_output_shape(shapes[-1] if shapes else x.shape)))
                    if timed:
                        for offset in range(len(stage.layers)):
                            forward_times[head + offset].append(elapsed if head + offset == owner else 0.0)
            if not training:
                continue
            start = time.perf_counter()
            if loss_object is None:
                grad = np.full(out.shape, 1.0 / out.size, dtype=out.dtype)
            else:
                if run == 0:
                    loss_object.check_targets(y, out.shape, "profile")
                loss_object(y, out)
                grad = loss_object.gradient(y, out)
            if timed:
                loss_times.append(time.perf_counter() - start)
            found = {}
            for index in range(len(stages) - 1, -1, -1):      # as the training step
                start = time.perf_counter()
                grad, pairs = stages[index].backward(contexts[index], grad, need_input_grad=index > 0)
                found.update((id(variable), value) for variable, value in pairs)
                if timed:
                    backward_times[heads[index]].append(time.perf_counter() - start)
                    for offset in range(1, len(stages[index].layers)):
                        backward_times[heads[index] + offset].append(0.0)
            if shadow_optimizer is not None:
                variables = _variable_copies(layers, found)
                start = time.perf_counter()
                shadow_optimizer.apply(variables)
                if timed:
                    update_times.append(time.perf_counter() - start)
    finally:
        for layer, weights, grads in zip(layers, saved_weights, saved_grads):
            if weights is None:
                continue
            layer.set_weights(weights)
            for variable, grad in zip(layer.trainable_weights, grads):
                variable.grad = grad

    flops = _forward_flops(layers, x.shape)
    rows = [LayerTiming(index, layer.name, type(layer).__name__, shape, median(forward_times[index]),
                        median(backward_times[index]) if training else None, flops[index],
                        fused_into.get(id(layer)))
            for index, (layer, shape) in enumerate(zip(layers, shapes))]
    result = ProfileResult(model_name=getattr(model, "name", "model"), batch_size=int(x.shape[0]),
                           training=training, repeats=repeats, layers=rows,
                           loss_name=_loss_name(loss_object) if training else None,
                           loss_s=median(loss_times) if training else None,
                           update_name=type(optimizer).__name__ if update_times else None,
                           update_s=median(update_times) if update_times else None)
    if training and loss_object is None:
        result.notes.append("Backward seeded with the gradient of the mean output (no y given).")
    for stage, owner in zip(stages, owners):
        if len(stage.layers) > 1:
            rest = [layer for layer in stage.layers if layer is not owner]
            result.notes.append(f"Fused: {', '.join(layer.name for layer in rest)} ran inside "
                                f"{owner.name}'s op, as in {'fit' if training else 'predict'}; the forward "
                                f"time is on {owner.name}'s row.")
    if print_table:
        print(result.table())
    return result


def _profile_graph(model, x, y, loss, repeats, warmup, training, print_table) -> ProfileResult:
    """`profile` of a graph model (one input, one output): one row per node, timed through the
    model's plan (`Functional.run`/`backward_graph` with `on_step`); a fused chain's time is on its
    first node's row, or where that is a zero padding folded into what follows, on that one's (`_owner`)."""
    from ..models.analysis_graph import analyze_graph, model_nodes
    if len(model.inputs) != 1 or len(model.outputs) != 1:          # before `x`, which would then be a list
        raise ValueError(f"profile: graph models with one input and one output only, got "
                         f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
    x = _check_input(x)
    repeats, warmup = _check_count(repeats, "repeats", 1), _check_count(warmup, "warmup", 0)
    loss_object = _resolve_loss(model, y, loss) if training else None
    arrays = model._flat_inputs(x, "profile")
    steps = model._steps(training, keep=training)
    nodes = model_nodes(model)
    row_of = {id(node): index for index, node in enumerate(nodes)}
    fused_into = {id(n): _owner_node(step).layer.name for step in steps for n in step.nodes
                  if n is not _owner_node(step)}
    forward = [[] for _ in nodes]
    backward = [[] for _ in nodes]
    loss_times: List[float] = []
    saved = [v.numpy() for v in model.weights]
    try:
        for run in range(warmup + repeats):
            timed = run >= warmup

            def record(times):
                return (lambda step, seconds: times[row_of[id(_owner_node(step))]].append(seconds)) if timed else None
            with contextlib.nullcontext() if training else backend.no_backward():
                outputs, execution = model.run(arrays, training=training, keep=training, on_step=record(forward))
            if training:
                start = time.perf_counter()
                out = outputs[0]
                grad = (np.full(out.shape, 1.0 / out.size, dtype=out.dtype) if loss_object is None
                        else loss_object.gradient(np.asarray(y), out))
                if timed:
                    loss_times.append(time.perf_counter() - start)
                model.backward_graph(execution, [grad], need_input_grads=False, on_step=record(backward))
    finally:
        for variable, value in zip(model.weights, saved):
            variable.assign(value)
    numbers = analyze_graph(model, batch_size=len(x)).layers
    rows = [LayerTiming(index, node.layer.name, type(node.layer).__name__,
                        (len(x),) + tuple(node.outputs[0].shape[1:]),
                        median(forward[index]) if forward[index] else 0.0,
                        (median(backward[index]) if backward[index] else 0.0) if training else None,
                        2 * int(getattr(numbers[index], "macs", 0) or 0) * len(x), fused_into.get(id(node)))
            for index, node in enumerate(nodes)]
    result = ProfileResult(model_name=model.name, batch_size=len(x), training=training, repeats=repeats,
                           layers=rows, loss_name=_loss_name(loss_object) if training else None,
                           loss_s=median(loss_times) if training else None)
    if print_table:
        print(result.table())
    return result


def _owner(stage_layers):
    """The layer whose row a fused stage's time goes on: its first that is not a zero padding (a padding
    folded into the convolution or pooling after it is not where the time goes)."""
    return next((layer for layer in stage_layers if layer.describe().kind != "zero_pad2d"), stage_layers[0])


def _owner_node(step):
    """The node of a graph step whose row its time goes on (`_owner`)."""
    owner = _owner([node.layer for node in step.nodes])
    return next(node for node in step.nodes if node.layer is owner)


# --- argument checks --------------------------------------------------------------------------

def _check_model(model) -> List:
    layers = getattr(model, "layers", None)
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"profile: argument `model` must be a Sequential model (with a list of layers), "
                        f"got {type(model).__name__}")
    if not layers:
        raise ValueError("profile: argument `model` has no layers; add layers before profiling it")
    for layer in layers:
        if not (callable(layer) and hasattr(layer, "backward") and hasattr(layer, "get_weights")):
            raise TypeError(f"profile: every layer of `model` must be a convscope Layer, "
                            f"got {type(layer).__name__}")
    return list(layers)


def _check_input(x) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"profile: argument `x` must be a numeric array, got dtype {array.dtype}")
    if array.ndim < 2 or array.shape[0] < 1:
        raise ValueError(f"profile: argument `x` must be a batch (first axis: samples, at least one), "
                         f"got shape {array.shape}")
    return array


def _check_count(value, arg: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"profile: argument `{arg}` must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"profile: argument `{arg}` must be at least {low}, got {value!r}")
    return int(value)


def _resolve_loss(model, y, loss):
    """The loss object seeding the backward pass, or None for the mean-output gradient."""
    if y is None:
        if loss is not None:
            raise ValueError("profile: argument `loss` needs targets `y` as well; got loss without y")
        return None
    from .. import losses
    identifier = loss if loss is not None else getattr(model, "loss", None)
    if identifier is None:
        raise ValueError("profile: targets `y` were given but no loss: pass loss='categorical_crossentropy' "
                         "(or another loss) or compile the model first")
    return losses.as_loss_object(identifier, "profile")


def _variable_copies(layers, grads) -> List:
    """Copies of the trainable variables with the step's gradients (`grads` by id), for a shadow update."""
    from ..layers.base import Variable

    copies = []
    for layer in layers:
        for variable in layer.trainable_weights:
            twin = Variable(variable.value.copy(), variable.name, variable.trainable,
                            variable.regularizer, variable.constraint)
            twin.grad = grads.get(id(variable), np.zeros_like(variable.value))
            copies.append(twin)
    return copies


def _loss_name(loss_object) -> str:
    return "mean output" if loss_object is None else loss_object.name


def _forward_flops(layers, input_shape) -> List[int]:
    """2 x multiply-adds of each layer's forward on the whole batch (analysis' count; 0 if unknown)."""
    from ..models.analysis import analyze_layer

    batch = int(input_shape[0])
    flops = []
    shape = (None,) + tuple(input_shape[1:])
    for layer in layers:
        row = analyze_layer(layer, shape, batch_size=batch)
        flops.append(2 * row.macs * batch)
        shape = row.output_shape
    return flops
