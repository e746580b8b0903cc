"""Activation layers: `Activation(name)`, `ReLU(max_value, negative_slope, threshold)`, `Softmax(axis)`."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..ops.activations import get_activation
from .base import Layer, Shape, check_float
from .kernel_bias import resolve_activation


class _ElementwiseActivation(Layer):
    """Applies `self._activation` (an ops Activation) and its derivative; shape unchanged."""

    def call(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        y = self._activation.forward(inputs)
        self._x, self._y = inputs, y
        return y                   # not self._y: another thread's predict may have replaced it

    def inference_relu(self) -> bool:
        """True when this layer is a plain ReLU (max(x, 0)), which a fused inference op can apply."""
        plain = {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}
        return self._activation.name == "relu" and all(
            name in plain and value == plain[name] for name, value in self._activation.params.items())

    @property
    def output_activation(self):
        return self._activation

    @property
    def preactivation(self) -> np.ndarray:
        return self._x

    def backward(self, grad_output: np.ndarray, from_preactivation: bool = False) -> np.ndarray:
        if from_preactivation:
            return grad_output
        return self._activation.backward(grad_output, self._x, self._y)


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
