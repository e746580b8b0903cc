"""`BatchNormalization`: batch statistics in training, moving statistics at inference (Keras' rules)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers, ops
from .spec import LayerSpec
from .base import (Layer, Shape, check_bool, check_float, check_kept_for_backward, resolve_optional,
                   serialize_optional)


def _serialized(name: str):
    return initializers.serialize(initializers.get(name))


class BatchNormalization(Layer):
    """Normalizes each channel along `axis`; weights [gamma, beta, moving_mean, moving_variance].

    gamma and beta are trainable, the moving statistics are not (so 4*C params, 2*C of them
    non-trainable).  In training the batch's mean and biased variance are used and the
    moving statistics move as `moving = moving * momentum + batch * (1 - momentum)`.  A layer
    with `trainable=False` always runs in inference mode, as in Keras 2.
    """

    _CONFIG_DEFAULTS = {
        "beta_initializer": _serialized("zeros"),
        "gamma_initializer": _serialized("ones"),
        "moving_mean_initializer": _serialized("zeros"),
        "moving_variance_initializer": _serialized("ones"),
    }

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        if isinstance(axis, (list, tuple)) and len(axis) == 1:  # Keras 2 writes [3] in configs
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{where}: argument `axis` must be an int, got {axis!r}")
        self.axis = int(axis)
        self.momentum = check_float(momentum, "momentum", where, 0.0, 1.0)
        self.epsilon = check_float(epsilon, "epsilon", where, 0.0, low_open=True)
        self.center = check_bool(center, "center", where)
        self.scale = check_bool(scale, "scale", where)
        self.beta_initializer = initializers.get(beta_initializer, where, "beta_initializer")
        self.gamma_initializer = initializers.get(gamma_initializer, where, "gamma_initializer")
        self.moving_mean_initializer = initializers.get(moving_mean_initializer, where,
                                                        "moving_mean_initializer")
        self.moving_variance_initializer = initializers.get(moving_variance_initializer, where,
                                                            "moving_variance_initializer")
        self.beta_regularizer = resolve_optional("regularizers", beta_regularizer, where, "beta_regularizer")
        self.gamma_regularizer = resolve_optional("regularizers", gamma_regularizer, where, "gamma_regularizer")
        self.beta_constraint = resolve_optional("constraints", beta_constraint, where, "beta_constraint")
        self.gamma_constraint = resolve_optional("constraints", gamma_constraint, where, "gamma_constraint")
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def _channel_axis(self, input_shape: Shape) -> int:
        rank = len(input_shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"{self._describe()}: argument `axis`={self.axis} does not name a feature axis "
                             f"of an input of shape {tuple(input_shape)}")
        return self.axis % rank

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"{self._describe()}: expected an input of rank >= 2, got shape {input_shape}")
        channels = input_shape[self._channel_axis(input_shape)]
        if channels is None:
            raise ValueError(f"{self._describe()}: axis {self.axis} of the input must be known, "
                             f"got shape {input_shape}")
        if self.moving_mean is not None and channels != self.moving_mean.shape[0]:
            raise ValueError(f"{self._describe()}: expected {self.moving_mean.shape[0]} channels on axis "
                             f"{self.axis} (the layer is built for them), got shape {input_shape}")
        return input_shape

    def build(self, input_shape: Shape) -> None:
        shape = (input_shape[self._channel_axis(input_shape)],)
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint, name="gamma")
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint, name="beta")
        self.moving_mean = self.add_weight(shape, self.moving_mean_initializer, trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape, self.moving_variance_initializer, trainable=False,
                                               name="moving_variance")
        self.built = True

    @staticmethod
    def _value(variable):
        return None if variable is None else variable.value

    def describe(self):
        return LayerSpec(kind="batch_norm", axis=self.axis, center=self.center, scale=self.scale, weights={
            "gamma": self.gamma, "beta": self.beta, "moving_mean": self.moving_mean,
            "moving_variance": self.moving_variance})

    def forward(self, inputs: np.ndarray, training: bool = False):
        """Batch statistics in training (the moving statistics updated), the moving ones otherwise."""
        axis = self.axis % inputs.ndim
        gamma, beta = self._value(self.gamma), self._value(self.beta)
        keep = backend.keeps_for_backward()
        if not (training and self.trainable):
            y = ops.batch_norm_infer(inputs, gamma, beta, self.moving_mean.value, self.moving_variance.value,
                                     axis, self.epsilon)
            return y, (_NormContext(False, inputs, axis) if keep else None)
        y, op_ctx, batch_mean, batch_var = ops.batch_norm_train(inputs, gamma, beta, axis, self.epsilon)
        ops.moving_average_update(self.moving_mean.value, batch_mean, self.momentum)
        ops.moving_average_update(self.moving_variance.value, batch_var, self.momentum)
        return y, (_NormContext(True, op_ctx, axis) if keep else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """(input gradient, [(gamma, grad), (beta, grad)]) for a call in training (batch statistics) or
        in inference (the moving statistics, constants)."""
        check_kept_for_backward(self, ctx)
        if ctx.training:
            grad_x, grad_gamma, grad_beta = ops.batch_norm_backward(grad_output, ctx.saved)
        else:
            grad_x, grad_gamma, grad_beta = ops.batch_norm_infer_backward_all(
                grad_output, ctx.saved, self._value(self.gamma), self.moving_mean.value,
                self.moving_variance.value, ctx.axis, self.epsilon, need_beta=self.beta is not None)
        pairs = []
        if self.gamma is not None and self.trainable:
            pairs.append((self.gamma, grad_gamma))
        if self.beta is not None and self.trainable:
            pairs.append((self.beta, grad_beta))
        return grad_x, pairs

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": serialize_optional("initializers", self.beta_initializer),
            "gamma_initializer": serialize_optional("initializers", self.gamma_initializer),
            "moving_mean_initializer": serialize_optional("initializers", self.moving_mean_initializer),
            "moving_variance_initializer": serialize_optional("initializers", self.moving_variance_initializer),
            "beta_regularizer": serialize_optional("regularizers", self.beta_regularizer),
            "gamma_regularizer": serialize_optional("regularizers", self.gamma_regularizer),
            "beta_constraint": serialize_optional("constraints", self.beta_constraint),
            "gamma_constraint": serialize_optional("constraints", self.gamma_constraint),
        })
        return config


class _NormContext:
    """A BatchNormalization call: in training, the op's context; in inference, the input."""

    __slots__ = ("training", "saved", "axis")

    def __init__(self, training: bool, saved, axis: int):
        self.training, self.saved, self.axis = training, saved, axis
