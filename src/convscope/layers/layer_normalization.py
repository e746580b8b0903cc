"""`LayerNormalization`: each sample normalized over `axis` (not over the batch), then scaled and shifted."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, initializers, ops
from .base import (Layer, Shape, check_bool, check_float, check_kept_for_backward, resolve_optional,
                   serialize_optional)
from .spec import LayerSpec


def _serialized(name: str):
    return initializers.serialize(initializers.get(name))


def set_gamma_beta_arguments(layer: Layer, where: str, beta_initializer, gamma_initializer, beta_regularizer,
                             gamma_regularizer, beta_constraint, gamma_constraint) -> None:
    """The initializers, regularizers and constraints of a normalization's gamma and beta, checked by name."""
    layer.beta_initializer = initializers.get(beta_initializer, where, "beta_initializer")
    layer.gamma_initializer = initializers.get(gamma_initializer, where, "gamma_initializer")
    layer.beta_regularizer = resolve_optional("regularizers", beta_regularizer, where, "beta_regularizer")
    layer.gamma_regularizer = resolve_optional("regularizers", gamma_regularizer, where, "gamma_regularizer")
    layer.beta_constraint = resolve_optional("constraints", beta_constraint, where, "beta_constraint")
    layer.gamma_constraint = resolve_optional("constraints", gamma_constraint, where, "gamma_constraint")
    layer.gamma = layer.beta = None


def gamma_beta_pairs(layer: Layer, grad_gamma, grad_beta) -> list:
    """[(gamma, grad), (beta, grad)] of the weights a trainable layer has."""
    if not layer.trainable:
        return []
    return [(v, g) for v, g in ((layer.gamma, grad_gamma), (layer.beta, grad_beta)) if v is not None]


def gamma_beta_config(layer: Layer) -> Dict[str, Any]:
    """The config entries of gamma's and beta's initializers, regularizers and constraints, as Keras writes them."""
    return {
        "beta_initializer": serialize_optional("initializers", layer.beta_initializer),
        "gamma_initializer": serialize_optional("initializers", layer.gamma_initializer),
        "beta_regularizer": serialize_optional("regularizers", layer.beta_regularizer),
        "gamma_regularizer": serialize_optional("regularizers", layer.gamma_regularizer),
        "beta_constraint": serialize_optional("constraints", layer.beta_constraint),
        "gamma_constraint": serialize_optional("constraints", layer.gamma_constraint),
    }


def axis_argument(axis, where: str):
    """A normalization's `axis` checked: an int, or a non-empty list/tuple of ints (kept a list, as Keras)."""
    items = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not items or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in items):
        raise TypeError(f"{where}: argument `axis` must be an int or a list/tuple of ints, got {axis!r}")
    return [int(a) for a in items] if isinstance(axis, (list, tuple)) else int(axis)


def feature_axes(layer: Layer, input_shape: Shape):
    """`layer.axis` as sorted non-negative axes, checked against `input_shape`: feature axes of known size."""
    try:
        axes = ops.layer_norm.layer_norm_axes(layer.axis, len(input_shape), layer._describe())
    except (TypeError, ValueError) as error:
        raise ValueError(f"{error} (input shape {tuple(input_shape)})") from None
    if 0 in axes or any(input_shape[a] is None for a in axes):
        raise ValueError(f"{layer._describe()}: argument `axis`={layer.axis} must name feature axes of known "
                         f"size (not the batch axis), got an input of shape {tuple(input_shape)}")
    return axes


def normalized_input_shape(layer: Layer, input_shape: Shape, weight) -> Shape:
    """The input shape, checked: `feature_axes`, and the sizes `weight` (None: not built) was made for."""
    input_shape = tuple(input_shape)
    shape = tuple(input_shape[a] for a in feature_axes(layer, input_shape))
    if weight is not None and weight.shape != shape:
        raise ValueError(f"{layer._describe()}: expected sizes {weight.shape} on axes {layer.axis} (the layer "
                         f"is built for them), got an input of shape {input_shape}")
    return input_shape


class LayerNormalization(Layer):
    """y = (x - mean) / sqrt(var + epsilon) * gamma + beta, mean and variance over `axis` per sample.

    Weights [gamma, beta], both trainable, of the shape of the normalized axes: 2·∏(axis sizes)
    parameters (fewer with scale=False or center=False).  Same in training and inference.
    As Keras, `axis` becomes a sorted list when the layer is built (and so in its config).
    """

    _CONFIG_DEFAULTS = {"beta_initializer": _serialized("zeros"), "gamma_initializer": _serialized("ones")}

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.axis = axis_argument(axis, where)
        self.epsilon = check_float(epsilon, "epsilon", where, 0.0, low_open=True)
        self.center = check_bool(center, "center", where)
        self.scale = check_bool(scale, "scale", where)
        if check_bool(rms_scaling, "rms_scaling", where):
            raise ValueError(f"{where}: argument `rms_scaling` must be False (deprecated in Keras 3, which "
                             "scales by the variance there; RMSNormalization is the layer for it), got True")
        self.rms_scaling = False
        set_gamma_beta_arguments(self, where, beta_initializer, gamma_initializer, beta_regularizer,
                                 gamma_regularizer, beta_constraint, gamma_constraint)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return normalized_input_shape(self, input_shape, self.gamma if self.gamma is not None else self.beta)

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape[a] for a in feature_axes(self, input_shape))
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]   # as Keras' build
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint, name="gamma")
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint, name="beta")
        self.built = True

    def describe(self):
        return LayerSpec(kind="layer_norm", axis=self.axis, center=self.center, scale=self.scale,
                         weights={"gamma": self.gamma, "beta": self.beta})

    def forward(self, inputs: np.ndarray, training: bool = False):
        gamma = None if self.gamma is None else self.gamma.value
        beta = None if self.beta is None else self.beta.value
        y, ctx = ops.layer_norm_forward(inputs, gamma, beta, self.axis, self.epsilon)
        return y, (ctx if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """(input gradient, [(gamma, grad), (beta, grad)])."""
        check_kept_for_backward(self, ctx)
        grad_x, grad_gamma, grad_beta = ops.layer_norm_backward(grad_output, ctx, need_input_grad)
        return grad_x, gamma_beta_pairs(self, grad_gamma, grad_beta)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            "rms_scaling": self.rms_scaling, **gamma_beta_config(self),
        })
        return config
