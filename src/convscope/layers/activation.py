"""Activation layers: `Activation(name)`, `ReLU(max_value, negative_slope, threshold)`, `Softmax(axis)`,
`LeakyReLU(negative_slope)`, `ELU(alpha)`; `PReLU` (a learned slope per value) is in layers/prelu.py."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..ops.activations import get_activation
from .. import backend
from .base import Layer, Shape, check_float, check_kept_for_backward
from .spec import LayerSpec
from .kernel_bias import resolve_activation


# The activations whose input `fit` reads as logits when it is the model's last layer (the crossentropies'
# `fused_activation`, losses.py).
_LOGITS_READ = ("sigmoid", "softmax")


class _ElementwiseActivation(Layer):
    """Applies `self._activation` (an ops Activation) and its derivative; shape unchanged."""

    def describe(self):
        return LayerSpec(kind="activation", activation=self._activation.name,
                         activation_params=dict(self._activation.params))

    def forward(self, inputs: np.ndarray, training: bool = False):
        y = self._activation.forward(inputs)
        if not backend.keeps_for_backward():
            return y, None
        # A training call keeps the input only where the derivative needs it, or where fit's fused
        # crossentropy reads it as the logits (explanations, which call with training=False, read it too).
        drop = training and self._activation.output_suffices and self._activation.name not in _LOGITS_READ
        return y, _ActivationContext(None if drop else inputs, y)

    @property
    def output_activation(self):
        return self._activation

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True,
                 from_preactivation: bool = False):
        check_kept_for_backward(self, ctx)
        if from_preactivation:
            return grad_output, []
        return self._activation.backward(grad_output, ctx.y if ctx.z is None else ctx.z, ctx.y), []


class _ActivationContext:
    """An activation layer's call: its input (the pre-activation z; None when the derivative reads
    only y) and output y."""

    __slots__ = ("z", "y")

    def __init__(self, z, y):
        self.z, self.y = z, y

    @property
    def preactivation(self):
        return self.z


class Activation(_ElementwiseActivation):
    """Applies a named activation ("relu", "softmax", ...) to its input."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._activation = resolve_activation(activation, self._describe())
        self.activation = self._activation.name

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["activation"] = self.activation
        return config


class ReLU(_ElementwiseActivation):
    """max(x, 0), optionally capped at `max_value`, with `negative_slope` below `threshold` (Keras' ReLU)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.max_value = None if max_value is None else check_float(max_value, "max_value", where, 0.0)
        self.negative_slope = check_float(negative_slope, "negative_slope", where, 0.0)
        self.threshold = check_float(threshold, "threshold", where)
        self._activation = get_activation("relu", negative_slope=self.negative_slope,
                                          max_value=self.max_value, threshold=self.threshold)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


class Softmax(_ElementwiseActivation):
    """exp(x) / sum(exp(x)) along `axis` (numerically stable)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{self._describe()}: argument `axis` must be an int, got {axis!r}")
        self.axis = int(axis)
        self._activation = get_activation("softmax", axis=self.axis)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if not -len(input_shape) <= self.axis < len(input_shape) or self.axis % len(input_shape) == 0:
            raise ValueError(f"{self._describe()}: argument `axis`={self.axis} does not name a feature axis of "
                             f"an input of shape {input_shape}")
        return input_shape

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["axis"] = self.axis
        return config


class LeakyReLU(_ElementwiseActivation):
    """x where x > 0, else `negative_slope` * x (Keras 3's default slope 0.3; Keras 2's argument `alpha` taken as
    the slope)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:                   # Keras 2's name, which Keras 3 still takes
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = check_float(negative_slope, "negative_slope", self._describe(), 0.0)
        self._activation = get_activation("leaky_relu", negative_slope=self.negative_slope)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


class ELU(_ElementwiseActivation):
    """x where x > 0, else `alpha` * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = check_float(alpha, "alpha", self._describe())
        self._activation = get_activation("elu", alpha=self.alpha)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["alpha"] = self.alpha
        return config
