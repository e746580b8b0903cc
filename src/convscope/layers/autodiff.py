"""Layers that only write `call` (custom layers, as Keras users write them), differentiated on a tape.

`forward_on_tape(layer, inputs, training)` runs `layer.call` inside an `ops.Tape` with the inputs
watched (each array of a list input) and the layer's trainable Variables as leaves, and returns
the outputs as plain arrays plus a `TapeContext`; `backward_on_tape(layer, ctx, grad)` asks the
tape for the gradients of the inputs and the variables.  Everything of a call lives in its
context, never on the layer, so a custom layer may be called twice in a graph and from threads.
Under `backend.no_backward()` the call runs untraced and the context is None.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from typing import Any, List, Optional

import numpy as np

from .. import backend
from ..ops.tape import Tape, Traced, record, recording
from ..variables import Variable
from . import step_losses

__all__ = ["forward_on_tape", "backward_on_tape", "call_layer", "call_traced", "call_training", "inside_call",
           "resolve_training", "training_default", "call_context", "NOT_GIVEN",
           "infer_output_shape", "recording", "TapeContext", "run_on_tape"]

PROBE_SIZES = (64, 65)     # an unknown axis other than the batch when `call` is run to learn its output shape
_TAKES_TRAINING: dict = {}          # class -> whether its `call` has a `training` argument
class _NotGiven:
    """`training` not passed (Keras tells it from `training=None`, which a call may pass on purpose)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN = _NotGiven()
_OUTSIDE = object()       # no layer's `call` is running
# The `training` of the `call` running in this thread (or task), which the layers it calls without one inherit
# (Keras' call context): True, False, None (that call's own value was None: each layer then takes its own
# default), or _OUTSIDE.
_CALL_TRAINING: contextvars.ContextVar = contextvars.ContextVar("convscope_call_training", default=_OUTSIDE)


def resolve_training(training, default=None):
    """Keras' rule (`Layer._resolve_and_populate_arg`): `training` as passed (None too), else the enclosing
    call's where it is True or False, else `default` (the layer's `call` signature's: True for the augmentation
    layers, False for the dropouts, None for a `call(x, training=None)`)."""
    if training is not NOT_GIVEN:
        return None if training is None else bool(training)
    outer = _CALL_TRAINING.get()
    return default if outer is _OUTSIDE or outer is None else outer


def call_training(training) -> bool:
    """A model's (or a merge's) own mode: as given, else the enclosing call's, else False (None as not given)."""
    return bool(resolve_training(NOT_GIVEN if training is None else training, False))


@contextlib.contextmanager
def call_context(training):
    """A block run as the `call` of a layer given `training` (None: each layer its own default)."""
    token = _CALL_TRAINING.set(training)
    try:
        yield
    finally:
        _CALL_TRAINING.reset(token)


def inside_call() -> bool:
    """True while a layer's `call` runs in this thread (or task)."""
    return _CALL_TRAINING.get() is not _OUTSIDE


def training_default(layer):
    """The `training` a layer's `call` takes when none is passed or inherited: its signature's default (None
    without one), a built-in layer's `TRAINING_DEFAULT` (False; the augmentation layers True)."""
    cls = type(layer)
    if cls not in _TRAINING_DEFAULTS:
        default = getattr(cls, "TRAINING_DEFAULT", False)
        if cls.forward is _layer_forward():         # a layer that writes `call`: its signature says
            try:
                parameter = inspect.signature(cls.call).parameters.get("training")
            except (TypeError, ValueError):
                parameter = None
            default = None if parameter is None or parameter.default is inspect.Parameter.empty \
                else parameter.default
        _TRAINING_DEFAULTS[cls] = default
    return _TRAINING_DEFAULTS[cls]


_TRAINING_DEFAULTS: dict = {}


def _layer_forward():
    from .base import Layer
    return Layer.forward


def call_layer(layer, inputs, training=False, explicit: bool = True):
    """`layer.call(inputs, training=training)`, passing `training` only when `call` takes it (as Keras), and a
    None only where it was passed (`explicit`; else `call`'s own default); the layers that `call` calls without
    a `training` of their own inherit this one (None: their own defaults)."""
    cls = type(layer)
    takes = _TAKES_TRAINING.get(cls)
    if takes is None:
        try:
            takes = "training" in inspect.signature(cls.call).parameters
        except (TypeError, ValueError):
            takes = True
        _TAKES_TRAINING[cls] = takes
    value = None if training is None else bool(training)
    token = _CALL_TRAINING.set(value)
    try:
        if not takes or (value is None and not explicit):
            return layer.call(inputs)
        return layer.call(inputs, training=value)
    finally:
        _CALL_TRAINING.reset(token)


class TapeContext:
    """One traced call: the tape, the watched inputs (None for a leaf that gets no gradient), the
    shapes and dtypes of every input leaf, the variables, the traced outputs and the traced losses its `add_loss`
    gave a step (differentiated with the outputs)."""

    __slots__ = ("tape", "sources", "leaves", "single", "variables", "outputs", "losses")

    def __init__(self, tape: Tape, sources: List[Optional[Traced]], leaves, single: bool,
                 variables: List[Variable], outputs, losses=None):
        self.tape, self.sources, self.leaves, self.single = tape, sources, leaves, single
        self.variables, self.outputs, self.losses = variables, outputs, losses or []

    def zero_output_gradients(self) -> list:
        """Zeros shaped as each output: what a call whose outputs nothing read gives its backward (its add_loss
        terms still need it)."""
        outputs = self.outputs if isinstance(self.outputs, (list, tuple)) else [self.outputs]
        return [np.zeros_like(np.asarray(getattr(o, "value", o))) for o in outputs]

    def gradients(self, grad_output, need_input_grad: bool, where: str):
        """(input gradients: one array, or a list for a list input; [(variable, gradient), ...])."""
        if self.tape is None:
            raise RuntimeError(f"{where}: this forward pass was already differentiated; a context serves "
                               "one backward pass (run the forward pass again)")
        outputs, grads = self.outputs, grad_output
        if isinstance(outputs, (list, tuple)):
            outputs = list(outputs)
            if not isinstance(grads, (list, tuple)) or len(grads) != len(outputs):
                raise ValueError(f"{where}: expected one output gradient per output ({len(outputs)}), "
                                 f"got {type(grads).__name__}")
            grads = list(grads)
        if self.losses:                      # d(sum(loss)) / d(loss) = 1
            several = isinstance(outputs, list)
            outputs = (outputs if several else [outputs]) + self.losses
            grads = (grads if several else [grads]) + [np.ones(np.shape(loss.value), loss.value.dtype)
                                                       for loss in self.losses]
        wanted = [s for s in self.sources if s is not None] if need_input_grad else []
        sources = wanted + list(self.variables)
        results = self.tape.gradient(outputs, sources, output_gradient=grads) if sources else []
        self.tape = self.outputs = self.sources = self.losses = None           # free the recorded graph
        input_grads = None
        if need_input_grad:
            found = iter(results[:len(wanted)])
            input_grads = []
            for (shape, dtype, watched) in self.leaves:
                grad = next(found) if watched else None
                if grad is None and np.dtype(dtype).kind == "f":
                    grad = np.zeros(shape, dtype)
                input_grads.append(grad)
            if self.single:
                input_grads = input_grads[0]
        pairs = [(v, g) for v, g in zip(self.variables, results[len(wanted):]) if g is not None]
        return input_grads, pairs


def forward_on_tape(layer, inputs, training: bool = False):
    """(outputs as plain arrays, TapeContext): `layer.call` traced; (outputs, None) under no_backward()."""
    if not backend.keeps_for_backward():
        return plain(call_layer(layer, inputs, training)), None
    single = not isinstance(inputs, (list, tuple))
    return run_on_tape(layer, [inputs] if single else list(inputs),
                       lambda watched: call_layer(layer, watched[0] if single else watched, training), single)


def run_on_tape(layer, items, compute, single: bool = False):
    """(outputs as plain arrays, TapeContext): `compute(watched items)` on a fresh tape that watches the float
    items and `layer`'s trainable variables (the context's gradients: one per item, then the variables')."""
    tape = Tape(persistent=False, watch_accessed_variables=False)
    variables = [v for v in layer.trainable_weights if np.dtype(v.value.dtype).kind == "f"]
    for variable in variables:
        tape.watch(variable)
    watched, sources, leaves = [], [], []
    with tape, step_losses.on_tape(tape) as losses:
        for item in items:
            traced = _watch(tape, item)
            watched.append(traced)
            sources.append(traced if isinstance(traced, Traced) else None)
            array = np.asarray(item)
            leaves.append((array.shape, array.dtype, isinstance(traced, Traced)))
        outputs = compute(watched)
    return plain(outputs), TapeContext(tape, sources, leaves, single, variables, _traced_structure(outputs),
                                       losses)


def backward_on_tape(layer, ctx, grad_output, need_input_grad: bool = True):
    """(gradient w.r.t. the inputs of the call that made `ctx` — zeros where the outputs do not
    depend on an input, None for integer inputs or when not `need_input_grad` —,
    [(variable, gradient), ...] for the trainable variables the outputs depend on)."""
    where = f"{layer._describe()}.backward"
    if ctx is None:
        raise RuntimeError(f"{where}: needs the context of a forward pass that kept what backward needs; "
                           "this one ran under predict/evaluate (backend.no_backward())")
    if not isinstance(ctx, TapeContext):
        raise TypeError(f"{where}: argument `ctx` must be the context `forward` returned, got "
                        f"{type(ctx).__name__}")
    return ctx.gradients(grad_output, need_input_grad, where)


def call_traced(layer, inputs, training: bool = False, forward=None, backward=None, penalize: bool = True):
    """A layer called inside another layer's traced `call` (a sublayer, `self.dense(x)`): its own
    `forward` on the values, recorded on the active tape as one node whose backward is the layer's
    `backward` — gradients reach the inputs and the sublayer's trainable variables.  `forward` and
    `backward` (functions of the layer) replace the layer's methods: a built-in layer's own pair when
    a subclass's `call` calls `super().call`.  Returns Traced outputs (plain arrays when no tape sees
    the inputs or the weights)."""
    forward = forward or type(layer).forward
    layer_backward = backward or type(layer).backward
    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    values = [item.value if isinstance(item, (Traced, Variable)) else np.asarray(item) for item in items]
    outputs, ctx = forward(layer, values[0] if single else values, training=training)
    penalized = penalize and step_losses.penalize(layer, outputs)
    if ctx is None:     # nothing kept: an identity (a dropout at inference or rate 0) passes the traced input on
        return items[0] if single and outputs is values[0] else outputs
    variables = list(layer.trainable_weights)
    several = isinstance(outputs, (list, tuple))
    recorded = list(outputs) if several else [outputs]
    anchored = step_losses.holds_losses(ctx)       # an extra zero output the enclosing tape seeds: our backward runs
    if anchored:
        recorded.append(np.zeros((), np.float32))

    def backward(grads):
        grads = list(grads) if len(recorded) > 1 else [grads]
        grads = grads[:len(grads) - anchored] if several else grads[0]
        if penalized:
            grads = step_losses.with_gradient(layer, outputs, grads)
        grad_in, pairs = layer_backward(layer, ctx, grads, need_input_grad=True)
        found = {id(variable): grad for variable, grad in pairs}
        return ([grad_in] if single else list(grad_in)) + [found.get(id(v)) for v in variables]
    result = record(items + variables, tuple(recorded) if len(recorded) > 1 else recorded[0], backward, name=layer.name)
    result = list(result) if len(recorded) > 1 else [result]
    if anchored:
        step_losses.keep_for_backward(result.pop())
    return result if several else result[0]


def infer_output_shape(layer, input_shape, dtype=None):
    """The output shape(s) of a built layer's `call` for `input_shape` (one shape, or a list for a list
    input), found as Keras' symbolic call finds it for a custom layer without `compute_output_shape`:
    `call` run (untraced) on placeholders that allocate nothing, twice: an unknown batch axis 2 then 3, any
    other unknown axis (an image's height, say) `PROBE_SIZES`; an output axis that differs between the two is
    unknown (None).  An error in `call` is raised again naming the layer and the placeholders' shapes."""
    dtype = dtype or layer.dtype
    single = not isinstance(input_shape, list)
    shapes = [input_shape] if single else list(input_shape)

    def run(batch: int, size: int):
        concrete = [tuple((batch if axis == 0 else size) if d is None else int(d) for axis, d in enumerate(shape))
                    for shape in shapes]
        arrays = [np.broadcast_to(np.zeros((), dtype), shape) for shape in concrete]
        try:
            with backend.no_backward():
                return plain(call_layer(layer, arrays[0] if single else arrays, False))
        except NotImplementedError:
            raise                       # no `call` at all: its own message says so
        except Exception as error:
            raise ValueError(f"{layer._describe()}: its call failed on placeholder inputs of shape "
                             f"{concrete[0] if single else concrete} (run to learn its output shape for "
                             f"{input_shape}): {type(error).__name__}: {error}") from error
    small, large = run(2, PROBE_SIZES[0]), run(3, PROBE_SIZES[1])

    def merge(a, b):
        return tuple(x if x == y else None for x, y in zip(np.shape(a), np.shape(b)))
    if isinstance(small, list):
        return [merge(a, b) for a, b in zip(small, large)]
    return merge(small, large)


def _watch(tape: Tape, item):
    """A float array (or Traced) watched on `tape`; anything else (ints, None) passed as it is."""
    if isinstance(item, Traced):
        return tape.watch(item)
    if isinstance(item, np.ndarray) and item.dtype.kind == "f":
        return tape.watch(item)
    return item


def _traced_structure(outputs):
    if isinstance(outputs, (list, tuple)):
        return [_traced_structure(o) for o in outputs]
    return outputs if isinstance(outputs, Traced) else None


def plain(outputs) -> Any:
    """Outputs with every Traced value (and Variable) replaced by a plain ndarray; lists stay lists."""
    if isinstance(outputs, (list, tuple)):
        return [plain(o) for o in outputs]
    if isinstance(outputs, Traced):
        return outputs.value
    if isinstance(outputs, Variable):
        return outputs.value.copy()
    return np.asarray(outputs)
