"""`TimeDistributed`: one layer applied to every time step of a sequence (Keras' `layers.TimeDistributed`).

Shape: (batch, time, *rest) -> (batch, time, *the layer's output for (batch, *rest)).  The layer runs once per
step on that step's (batch, *rest) slice, as Keras' does (`layer.call(inputs[:, t])`): a BatchNormalization in
training takes each step's own batch statistics and updates its moving statistics once per step, a Dropout
draws each step's mask; the same weights serve every step, and their gradients are the sum over the steps.
The wrapped layer's weights are the wrapper's (Keras stores them under `<wrapper>/layer/vars`); its activity
regularizer is not applied, as in Keras (which calls the layer's `call`).
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .. import backend
from .base import Shape, check_kept_for_backward, runs_own_call
from .spec import LayerSpec
from .wrapper import Wrapper


class TimeDistributed(Wrapper):
    """`layer` on each step of axis 1 (Keras' wrapper); inputs of rank 3 or more."""

    # -- shapes --------------------------------------------------------------------------------------
    def _step_shape(self, input_shape: Shape) -> Shape:
        """The shape of one step's slice, (batch, *rest), of an input of rank 3 or more."""
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3 or \
                not all(isinstance(d, (int, np.integer)) or d is None for d in input_shape):
            raise ValueError(f"{self._describe()}: expected one input of rank 3 or more (batch, time, ...), got "
                             f"input shape {input_shape!r}")
        return (input_shape[0],) + tuple(input_shape[2:])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        step = self.layer.compute_output_shape(self._step_shape(input_shape))
        return (step[0], input_shape[1]) + tuple(step[1:])

    def build(self, input_shape: Shape) -> None:
        if not self.layer.built:
            self.layer.build_from_shape(self._step_shape(input_shape))
        self.built = True

    def describe(self):
        """kind "time_distributed", inner the wrapped layer (the analysis reads its numbers per step)."""
        return LayerSpec(kind="time_distributed", inner=self.layer)

    # -- computing -----------------------------------------------------------------------------------
    def _merges_steps(self, training: bool) -> bool:
        """At inference a built-in layer computes sample by sample: the steps run as one batch of batch·time
        samples (the same numbers, one call instead of one per step).  In training each step runs alone, as
        Keras runs it (a BatchNormalization's statistics, a Dropout's masks per step); a custom layer too."""
        return not training and not runs_own_call(self.layer)

    def forward(self, inputs, training: bool = False):
        """(output, ctx): the layer's forward pass on each step in turn (or on all steps as one batch at
        inference), stacked on axis 1; ctx what the backward pass needs (None where nothing is kept)."""
        x = np.asarray(inputs)
        self.compute_output_shape((None,) + x.shape[1:])
        keep = backend.keeps_for_backward()
        if self._merges_steps(training) and x.shape[1] and x.shape[0]:
            y, inner = self.layer.forward(x.reshape((-1,) + x.shape[2:]), training=training)
            output = y.reshape(x.shape[:2] + y.shape[1:])
            return output, ({"merged": inner, "shape": x.shape, "dtype": x.dtype} if keep else None)
        steps = [self.layer.forward(x[:, t], training=training) for t in range(x.shape[1])]
        if not steps:           # no time steps: the layer's output shape with an empty time axis
            shape = self.compute_output_shape(x.shape)
            return np.zeros((x.shape[0], 0) + tuple(shape[2:]), dtype=self.dtype), None
        output = np.stack([y for y, _ in steps], axis=1)
        return output, ({"steps": [ctx for _, ctx in steps], "shape": x.shape, "dtype": x.dtype} if keep else None)

    def backward(self, ctx, grad_output, need_input_grad: bool = True):
        """(input gradient, [(variable, gradient summed over the steps)])."""
        check_kept_for_backward(self, ctx)
        grad = np.asarray(grad_output)
        if "merged" in ctx:
            merged = grad.reshape((-1,) + grad.shape[2:])
            grad_x, pairs = self.layer.backward(ctx["merged"], merged, need_input_grad=need_input_grad)
            return (None if grad_x is None else grad_x.reshape(ctx["shape"]).astype(ctx["dtype"], copy=False)), pairs
        sums: Dict[int, Any] = {}
        order: List[Any] = []
        grads_x = []
        for t, step_ctx in enumerate(ctx["steps"]):
            grad_x, pairs = self.layer.backward(step_ctx, grad[:, t], need_input_grad=need_input_grad)
            grads_x.append(grad_x)
            for variable, gradient in pairs:
                if id(variable) not in sums:
                    order.append(variable)
                    sums[id(variable)] = np.array(gradient, copy=True)
                else:
                    sums[id(variable)] += gradient
        grad_x = np.stack(grads_x, axis=1).astype(ctx["dtype"], copy=False) if need_input_grad else None
        return grad_x, [(v, sums[id(v)]) for v in order]          # none where the wrapped layer is frozen
