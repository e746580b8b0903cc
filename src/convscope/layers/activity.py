"""Activity regularization, as Keras 3's `Layer.__call__`: each output of a layer called with an
`activity_regularizer` adds `activity_regularizer(output) / batch size` to the loss of the training or
evaluation step it runs in, and that penalty's gradient to the output's gradient.

A step opens `collecting()`; whoever runs a layer (a model's loop, a graph's step, a sublayer on a
tape, an eager call) calls `penalize(layer, outputs)`, which adds to the step's total and says whether
the output's gradient needs `with_gradient` in the backward pass.  The total lives in a context
variable (one per thread and step), never on the layer; outside a step (predict, a saliency map, a
user's own forward/backward) nothing is added, as in Keras, where the penalty is a loss of the model,
not part of its outputs' gradients.
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from .graph import flatten

_STEP: contextvars.ContextVar = contextvars.ContextVar("convscope_activity_penalty", default=None)


class Penalty:
    """The activity penalty of one step so far (`total`)."""

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


def _batched(outputs):
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
    for out in _batched(outputs):
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
