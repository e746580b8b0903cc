"""`GroupNormalization`: each sample's channels normalized in groups (U-Nets and diffusion models use it
where batches are small), then scaled and shifted per channel."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers, ops
from .base import Layer, Shape, check_bool, check_float, check_kept_for_backward
from .layer_normalization import gamma_beta_config, gamma_beta_pairs, set_gamma_beta_arguments
from .spec import LayerSpec


def _serialized(name: str):
    return initializers.serialize(initializers.get(name))


class GroupNormalization(Layer):
    """y = (x - mean) / sqrt(var + epsilon) * gamma + beta, mean and variance per sample and group of channels.

    The C channels on `axis` form `groups` groups of C / groups consecutive channels (groups=-1: one per
    channel, instance normalization; groups=1: one for all).  Weights [gamma, beta], both trainable, one
    per channel: 2·C parameters (fewer with scale=False or center=False).  Same in training and inference.

    Shape: input (N, ..., C) (or C on `axis`), C a multiple of `groups`; output the input's shape.
    As Keras, groups=-1 becomes C when the layer is built (and so in its config).
    """

    _CONFIG_DEFAULTS = {"beta_initializer": _serialized("zeros"), "gamma_initializer": _serialized("ones")}

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or (groups < 1 and groups != -1):
            raise ValueError(f"{where}: argument `groups` must be a positive int (or -1 for one group per "
                             f"channel, instance normalization), got {groups!r}")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{where}: argument `axis` must be an int (the channel axis), got {axis!r}")
        self.groups, self.axis = int(groups), int(axis)
        self.epsilon = check_float(epsilon, "epsilon", where, 0.0, low_open=True)
        self.center = check_bool(center, "center", where)
        self.scale = check_bool(scale, "scale", where)
        set_gamma_beta_arguments(self, where, beta_initializer, gamma_initializer, beta_regularizer,
                                 gamma_regularizer, beta_constraint, gamma_constraint)

    def _channels(self, input_shape: Shape) -> int:
        """The size of the channel axis of `input_shape`, checked against `groups` and the built weights."""
        input_shape, where = tuple(input_shape), self._describe()
        groups = self.groups if self.groups != -1 else 1
        axis = ops.group_norm.group_norm_axis(self.axis, groups, input_shape, where)
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(f"{where}: axis {self.axis} (the channels) must have a known size, got an input "
                             f"of shape {input_shape}")
        weight = self.gamma if self.gamma is not None else self.beta
        if weight is not None and weight.shape != (channels,):
            raise ValueError(f"{where}: expected {weight.shape[0]} channels on axis {self.axis} (the layer is "
                             f"built for them), got an input of shape {input_shape}")
        return channels

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._channels(input_shape)
        return tuple(input_shape)

    def build(self, input_shape: Shape) -> None:
        channels = self._channels(input_shape)
        if self.groups == -1:
            self.groups = channels
        if self.scale:
            self.gamma = self.add_weight((channels,), self.gamma_initializer, regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint, name="gamma")
        if self.center:
            self.beta = self.add_weight((channels,), self.beta_initializer, regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint, name="beta")
        self.built = True

    def describe(self):
        return LayerSpec(kind="group_norm", axis=self.axis, groups=self.groups, center=self.center,
                         scale=self.scale, weights={"gamma": self.gamma, "beta": self.beta})

    def forward(self, inputs: np.ndarray, training: bool = False):
        gamma = None if self.gamma is None else self.gamma.value
        beta = None if self.beta is None else self.beta.value
        try:
            y, ctx = ops.group_norm_forward(inputs, gamma, beta, self.groups, self.axis, self.epsilon)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{self._describe()}: {error}") from None
        return y, (ctx if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """(input gradient, [(gamma, grad), (beta, grad)])."""
        check_kept_for_backward(self, ctx)
        grad_x, grad_gamma, grad_beta = ops.group_norm_backward(grad_output, ctx, need_input_grad)
        return grad_x, gamma_beta_pairs(self, grad_gamma, grad_beta)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale, **gamma_beta_config(self),
        })
        return config
