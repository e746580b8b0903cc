"""`convscope.gradients(model, x, target, wrt=None)`: d target / d input, or / d a layer's output.

What Keras users write with `tf.GradientTape` (saliency, Grad-CAM, attribution), computed by
the model's own backward pass: a Sequential runs its layers one by one (`forward` ->
`backward`), a graph model its nodes (`Functional.backward_graph`), in inference mode
(BatchNormalization's moving statistics, no dropout), keeping nothing on the layers — so
one model may be used from several threads at once.

The target, a scalar per sample:

* an int `k`: the score of class `k` (outputs of shape (N, classes));
* a list or 1-D array of N ints: one class per sample;
* a tuple of ints: one output unit, indexed without the batch axis (`(row, col, channel)`);
* a callable `f(outputs) -> (N,)`, written with `convscope.ops` (`keras.ops`) functions,
  which the tape (`ops.Tape`) differentiates; `outputs` is the model's output (a list for
  several outputs).

The score is taken **before the last layer's activation** for class and unit targets (as
keras.io's Grad-CAM example, which sets `model.layers[-1].activation = None`): the logit of
a softmax classifier, not its probability, whose gradient other classes would mix in.
Callables get the outputs as the model gives them.  `logits=True/False` overrides both
defaults; it has no effect when the last layer applies no activation (or is a nested model).
Watching the last layer then gives its logits and the gradient w.r.t. them.

`gradient_trace` returns the whole computation (scores, outputs, the watched layers' outputs
and gradients), which Grad-CAM reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import backend, ops
from ..ops.tape import Traced
from ..layers.base import Layer
from ..models.functional import Execution, Functional, _substitute
from ..models.graph_plan import Step
from ..models.sequential import Sequential

__all__ = ["gradients", "gradient_trace", "GradientTrace"]

WHERE = "gradients"


@dataclass
class GradientTrace:
    """One forward and backward pass: `scores` (N,), `outputs` (the model's flat outputs),
    `input_grads` (one per model input), and per watched layer (by name) its output in
    `values` and d score / d output in `grads`; `logits` says whether the score was taken
    before the last layer's activation."""

    scores: np.ndarray
    outputs: List[np.ndarray]
    input_grads: List[np.ndarray]
    values: Dict[str, np.ndarray] = field(default_factory=dict)
    grads: Dict[str, np.ndarray] = field(default_factory=dict)
    logits: bool = False


def gradients(model, x, target, wrt=None, *, logits: Optional[bool] = None):
    """d target / d `wrt` for each sample of the batch `x`.

    `model`: a built Sequential or graph model; `x`: a batch (as for `model.predict`; a list
    or dict for several inputs); `target`: an int class, a list of per-sample classes, a
    tuple output unit or a callable on the outputs (see the module docstring); `wrt`: None
    (the input; a list for several inputs), a layer or layer name (its output; a shared
    layer's first call, as Keras' `layer.output`), or a list of those (a list back).
    Each gradient has the shape and dtype of what it is taken with respect to.
    """
    many = isinstance(wrt, (list, tuple))
    keys = list(wrt) if many else ([] if wrt is None else [wrt])
    names = [resolve_layer(model, key, f"{WHERE}: argument `wrt`") for key in keys] if _is_model(model) else []
    trace = gradient_trace(model, x, target, layers=names, logits=logits)
    if wrt is None:
        return trace.input_grads[0] if len(trace.input_grads) == 1 else trace.input_grads
    found = [trace.grads[name] for name in names]
    return found if many else found[0]


def _subclassed_note(model) -> str:
    from ..models.subclassed import is_subclassed
    return (", a subclassed model (its own `call`), whose gradients by layer are not traced yet"
            if is_subclassed(model) else "")


def gradient_trace(model, x, target, layers: Sequence = (), *, logits: Optional[bool] = None,
                   where: str = WHERE) -> GradientTrace:
    """The forward and backward pass of `gradients`, watching `layers` (names or layers): their
    outputs and gradients, by name, in the returned `GradientTrace`."""
    if not _is_model(model):
        raise TypeError(f"{where}: argument `model` must be a convscope model (Sequential or "
                        f"keras.Model(inputs, outputs)), got {type(model).__name__}{_subclassed_note(model)}")
    kind = _target_kind(target, where)
    if logits is not None and not isinstance(logits, (bool, np.bool_)):
        raise TypeError(f"{where}: argument `logits` must be True, False or None, got {logits!r}")
    use_logits = (kind != "callable") if logits is None else bool(logits)
    names = [resolve_layer(model, layer, f"{where}: argument `layers`") for layer in layers]
    runner = _SequentialRun if isinstance(model, Sequential) else _GraphRun
    with backend.keep_for_backward():
        run = runner(model, x, names, use_logits, where)
        scored = run.scored_outputs()
        scores, output_grads = _score(kind, target, scored, len(run.outputs) > 1, where)
        input_grads, grads = run.backward(output_grads)
    return GradientTrace(scores=scores, outputs=run.outputs, input_grads=input_grads, values=run.values,
                         grads={name: grads.get(name, np.zeros_like(run.values[name])) for name in names},
                         logits=run.logits)


# -- arguments ------------------------------------------------------------------------------------

def _is_model(model) -> bool:
    return isinstance(model, (Sequential, Functional))


def resolve_layer(model, key, what: str) -> str:
    """The name of the layer `key` (a name or a layer object) of `model`, or a ValueError listing them."""
    layers = model.operations
    if isinstance(key, Layer) and not isinstance(key, str):
        if any(layer is key for layer in layers):
            return key.name
        raise ValueError(f"{what}: layer '{key.name}' ({type(key).__name__}) is not a layer of "
                         f"{model._describe()}; its layers are {[layer.name for layer in layers]}")
    if not isinstance(key, str):
        raise TypeError(f"{what}: expected a layer name (str) or a layer of the model, got {key!r}")
    if not any(layer.name == key for layer in layers):
        raise ValueError(f"{what}: {model._describe()} has no layer named {key!r}; its layers are "
                         f"{[layer.name for layer in layers]}")
    return key


def _target_kind(target, where: str) -> str:
    if callable(target) and not isinstance(target, (np.ndarray, Layer)):
        return "callable"
    if _is_int(target):
        return "class"
    if isinstance(target, tuple) and target and all(_is_int(i) for i in target):
        return "unit"
    if isinstance(target, (list, np.ndarray)):
        array = np.asarray(target)
        if array.ndim == 1 and array.size and array.dtype.kind in "iu":
            return "classes"
    raise TypeError(f"{where}: argument `target` must be a class index (int), a list of one class per "
                    "sample, an output unit (a tuple of ints, without the batch axis) or a callable on the "
                    f"outputs returning one score per sample, got {target!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _score(kind: str, target, outputs: List[np.ndarray], several: bool, where: str):
    """(scores (N,), the gradient of their sum w.r.t. each output) for `target`."""
    if kind == "callable":
        return _callable_score(target, outputs, several, where)
    if several:
        raise ValueError(f"{where}: argument `target`: the model has {len(outputs)} outputs, so a class or "
                         "unit index is ambiguous; pass a callable on the list of outputs")
    out = outputs[0]
    batch = len(out)
    if kind in ("class", "classes"):
        if out.ndim != 2:
            raise ValueError(f"{where}: argument `target`: a class index needs outputs of shape (N, classes), "
                             f"the model gives {out.shape}; pass an output unit (a tuple) or a callable")
        classes = np.broadcast_to(np.asarray(target), (batch,)) if kind == "class" else np.asarray(target)
        if kind == "classes" and len(classes) != batch:
            raise ValueError(f"{where}: argument `target` gives {len(classes)} classes for a batch of {batch} "
                             "samples; give one per sample")
        bad = classes[(classes < 0) | (classes >= out.shape[1])]
        if bad.size:
            raise ValueError(f"{where}: argument `target`: class {int(bad[0])} is out of range for "
                             f"{out.shape[1]} classes (0 to {out.shape[1] - 1})")
        index = (np.arange(batch), classes.astype(np.intp))
    else:
        if len(target) != out.ndim - 1 or any(not -s <= i < s for i, s in zip(target, out.shape[1:])):
            raise ValueError(f"{where}: argument `target`: unit {target} is not an index of the outputs' "
                             f"shape {out.shape[1:]} (without the batch axis)")
        index = (slice(None),) + tuple(int(i) for i in target)
    grad = np.zeros_like(out)
    grad[index] = 1
    return np.array(out[index], dtype=out.dtype).reshape(batch), [grad]


def _callable_score(function, outputs: List[np.ndarray], several: bool, where: str):
    with ops.Tape(watch_accessed_variables=False) as tape:
        traced = [tape.watch(out) for out in outputs]
        result = function(traced if several else traced[0])
    if not isinstance(result, Traced):
        raise TypeError(f"{where}: argument `target`: the callable returned {type(result).__name__}, not a "
                        "value computed from the outputs with convscope.ops (keras.ops) functions, so it "
                        "cannot be differentiated; use ops.take, ops.sum, ops.log ... instead of NumPy")
    batch = len(outputs[0])
    if tuple(result.shape) not in ((batch,), (batch, 1)):
        raise ValueError(f"{where}: argument `target`: the callable must return one score per sample, "
                         f"shape ({batch},), got shape {tuple(result.shape)}")
    grads = tape.gradient(result, traced, unconnected_gradients="zero")
    return np.asarray(result).reshape(batch).copy(), [np.asarray(g) for g in grads]


def _last_activation(layer, ctx) -> bool:
    """Whether `layer`'s call (with `ctx`) applied an activation whose input a score can start from."""
    activation = getattr(layer, "output_activation", None)
    return (activation is not None and getattr(activation, "name", "linear") != "linear"
            and getattr(ctx, "preactivation", None) is not None)


# -- one pass through a Sequential ----------------------------------------------------------------

class _SequentialRun:
    """The layers forward one by one, each call's ctx kept, watched outputs kept by name."""

    def __init__(self, model: Sequential, x, names: List[str], use_logits: bool, where: str):
        x = model._check_input(x, where)
        model._build_for(x)
        x = x if x.dtype.kind == "f" else x.astype(model.dtype)     # as predict: floats as given
        self.layers, self.contexts, self.values = model.layers, [], {}
        self.watched = set(names)
        for layer in self.layers:
            x, ctx = layer.forward(x, training=False)
            self.contexts.append(ctx)
            if layer.name in self.watched:
                self.values[layer.name] = x
        self.outputs = [x]
        self.logits = use_logits and _last_activation(self.layers[-1], self.contexts[-1])
        if self.logits and self.layers[-1].name in self.watched:        # its output is the logits then
            self.values[self.layers[-1].name] = self.contexts[-1].preactivation

    def scored_outputs(self) -> List[np.ndarray]:
        return [self.contexts[-1].preactivation] if self.logits else self.outputs

    def backward(self, output_grads):
        grad, grads = output_grads[0], {}
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            if layer.name in self.watched:
                grads[layer.name] = grad
            options = {"from_preactivation": True} if self.logits and index == len(self.layers) - 1 else {}
            grad, _ = layer.backward(self.contexts[index], grad, **options)
        return [grad], grads


# -- one pass through a graph model ---------------------------------------------------------------

class _GraphRun:
    """The nodes forward one by one (the graph's LAYERS plan), recorded in an `Execution` that
    `backward_graph` walks; after each watched tensor's node a probe step hears its gradient."""

    def __init__(self, model: Functional, x, names: List[str], use_logits: bool, where: str):
        self.model = model
        self.arrays = arrays = model._flat_inputs(x, where)
        values = {id(t): a for t, a in zip(model._inputs, arrays)}
        remaining = dict(model._consumers)
        first_output = {}              # layer name -> its first call's output tensor
        for node in model._nodes:
            first_output.setdefault(node.layer.name, node.outputs[0])
        watched = {id(first_output[name]): name for name in names}
        self.values, self.grads, self.execution = {}, {}, Execution()
        for name in names:
            tensor = first_output[name]
            if any(tensor is t for t in model._inputs):
                self.values[name] = values[id(tensor)]
        for step in model._steps(training=False, keep=True):
            node = step.nodes[0]
            args = _substitute(node.args, values)
            result, ctx = node.layer.forward(args[0] if len(args) == 1 else args, training=False)
            self.execution.records.append((step, ctx))
            results = result if isinstance(result, (list, tuple)) else [result]
            for tensor, value in zip(node.outputs, results):
                values[id(tensor)] = value
                if id(tensor) in watched:
                    self.values[watched[id(tensor)]] = value
                    self._probe(node, tensor, watched[id(tensor)])
            for tensor in node.input_tensors:
                remaining[id(tensor)] -= 1
                if remaining[id(tensor)] == 0 and id(tensor) not in watched:
                    values.pop(id(tensor), None)
        self.outputs = [values[id(t)] for t in model._outputs]
        self.watched_inputs = {name: i for i, t in enumerate(model._inputs)
                               for name in names if first_output[name] is t}
        self._logits_value = None
        self.logits = use_logits and len(self.outputs) == 1 and self._preactivation_step()

    def _probe(self, node, tensor, name: str) -> None:
        step = Step([node], _Probe(self.grads, name))
        step.input = step.output = tensor
        self.execution.records.append((step, None))

    def _preactivation_step(self) -> bool:
        """Replace the output node's record by one whose backward starts from the pre-activation."""
        output = self.model._outputs[0]
        for position, (step, ctx) in enumerate(self.execution.records):
            if step.stage is None and any(t is output for t in step.nodes[0].outputs):
                node = step.nodes[0]
                if len(node.outputs) != 1 or len(node.input_tensors) != 1 or not _last_activation(node.layer, ctx):
                    return False
                self.execution.records[position] = (Step([node], _FromPreactivation(node.layer)), ctx)
                self._logits_value = ctx.preactivation
                if node.layer.name in self.values:          # a watched output layer: its logits
                    self.values[node.layer.name] = ctx.preactivation
                return True
        return False

    def scored_outputs(self) -> List[np.ndarray]:
        return [self._logits_value] if self.logits else self.outputs

    def backward(self, output_grads):
        input_grads, _ = self.model.backward_graph(self.execution, output_grads)
        input_grads = [np.zeros_like(a) if g is None else g for a, g in zip(self.arrays, input_grads)]
        for name, index in self.watched_inputs.items():
            self.grads[name] = input_grads[index]
        return input_grads, self.grads


class _Probe:
    """A backward stage that passes the gradient through and keeps it under `name`."""

    layers: list = []

    def __init__(self, store: Dict[str, np.ndarray], name: str):
        self.store, self.name = store, name

    def forward(self, x, training: bool = False):       # never run: only the backward walk sees it
        return x, None

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        self.store[self.name] = grad.copy()      # the caller's own: an Add's inputs share one array
        return grad, []


class _FromPreactivation:
    """The output layer's backward from the gradient w.r.t. its pre-activation (the logits)."""

    def __init__(self, layer):
        self.layers = [layer]
        self.layer = layer

    def forward(self, x, training: bool = False):
        return self.layer.forward(x, training=training)

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        return self.layer.backward(ctx, grad, need_input_grad=need_input_grad, from_preactivation=True)

