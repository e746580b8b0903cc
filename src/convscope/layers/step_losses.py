"""The losses a layer's call adds to the fit or evaluate step it runs in, as Keras 3 collects them in
`model.losses`: each output's `activity_regularizer(output) / batch size` (Keras' `Layer.__call__`), and what a
custom `call` passes to `self.add_loss(...)` (summed).

A step opens `collecting()`; whoever runs a layer (a model's loop, a graph's step, a sublayer on a tape, an eager
call) calls `penalize(layer, outputs)`, which adds to the step's total and says whether the output's gradient
needs `with_gradient` in the backward pass.  `add_loss` on values traced by a training call's tape is also kept
on that tape (`on_tape()`), whose backward pass then differentiates it; a sublayer holding such terms leaves an
anchor on its caller's tape (`keep_for_backward`), so its backward runs even where nothing reads its outputs.
The total lives in a context variable (one per thread and step), never on the layer; outside a step (predict,
a saliency map, a user's own forward/backward) nothing is added, as in Keras, where these are losses of the
model, not part of its outputs' gradients.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import List

import numpy as np

from ..ops.tape import Traced
from .graph import flatten

_STEP: contextvars.ContextVar = contextvars.ContextVar("convscope_step_losses", default=None)
_TAPE: contextvars.ContextVar = contextvars.ContextVar("convscope_tape_losses", default=None)


class Penalty:
    """The losses of one step so far (`total`)."""

    __slots__ = ("total",)

    def __init__(self):
        self.total = 0.0


@contextlib.contextmanager
def collecting():
    """A training or evaluation step: yields its `Penalty`, which the layers run inside add to."""
    penalty = Penalty()
    token = _STEP.set(penalty)
    try:
        yield penalty
    finally:
        _STEP.reset(token)


@contextlib.contextmanager
def on_tape(tape):
    """A call traced on its own `tape` (`autodiff.run_on_tape`): yields the list of the traced values of that tape
    its backward pass must also differentiate (seed 1): what `add_loss` gets inside it while a step collects, and
    `keep_for_backward`'s anchors."""
    traced: List[Traced] = []
    token = _TAPE.set((tape, traced))
    try:
        yield traced
    finally:
        _TAPE.reset(token)


def keep_for_backward(value) -> bool:
    """Adds a traced value of the open call's tape to what its backward pass differentiates (a sublayer's anchor:
    its own add_loss terms need its backward even where nothing reads its outputs); False where none is open."""
    open_call = _TAPE.get()
    if open_call is None or not isinstance(value, Traced) or open_call[0] not in value._node.tapes:
        return False
    open_call[1].append(value)
    return True


def holds_losses(ctx) -> bool:
    """Whether a call's context holds traced add_loss terms (its backward must run, outputs' gradients or not)."""
    return bool(getattr(ctx, "losses", None))


def add_loss(layer, loss) -> None:
    """Keras' `layer.add_loss(loss)`: the sum of `loss` (a number, an array or a traced value, or a list of them)
    added to the open step's loss, its gradient to the step's backward pass when a tape traced it."""
    items = flatten(loss)
    for item in items:
        value = item.value if isinstance(item, Traced) else item
        if not isinstance(value, (int, float, np.ndarray, np.generic)) or isinstance(value, bool) \
                or np.asarray(value).dtype.kind not in "iuf":
            raise TypeError(f"{layer._describe()}.add_loss: argument `loss` must be a number or an array of numbers "
                            f"(or a list of them), got {type(item).__name__}")
    penalty = _STEP.get()
    if penalty is None:
        return
    for item in items:
        value = item.value if isinstance(item, Traced) else item
        penalty.total += float(np.sum(value, dtype=np.float64))
        keep_for_backward(item)


def _floats(outputs):
    return [out for out in flatten(outputs) if isinstance(out, np.ndarray) and out.dtype.kind == "f"]


def _batch(out: np.ndarray) -> int:
    return len(out) if out.ndim and len(out) else 1       # Keras: divide_no_nan by the batch; a scalar as it is


def penalize(layer, outputs) -> bool:
    """Adds `layer`'s activity penalty on `outputs` (an array or a structure of them) to the open step; True
    when it did (the caller then keeps `outputs` and adds `with_gradient` in backward)."""
    regularizer = getattr(layer, "activity_regularizer", None)
    if regularizer is None:
        return False
    penalty = _STEP.get()
    if penalty is None:
        return False
    for out in _floats(outputs):
        penalty.total += float(regularizer(out)) / _batch(out)
    return True


def with_gradient(layer, outputs, grads):
    """`grads` (one per output, in the structure of `outputs`; None for an output nothing else reads) plus the
    gradient of `layer`'s activity penalty on each output."""
    regularizer = layer.activity_regularizer
    if not isinstance(outputs, (list, tuple)):
        return _plus(regularizer, outputs, grads)
    grads = [None] * len(outputs) if grads is None else grads
    return [_plus(regularizer, out, grad) for out, grad in zip(outputs, grads)]


def _plus(regularizer, out, grad):
    if not (isinstance(out, np.ndarray) and out.dtype.kind == "f"):
        return grad
    extra = (regularizer.gradient(out) / _batch(out)).astype(out.dtype, copy=False)
    return extra if grad is None else grad + extra
