"""What Conv2D and Dense share: the activation, the bias switch, and the kernel/bias
initializers, regularizers and constraints (validated, stored and written to the config)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import activations, initializers, ops
from ..ops.activations import Activation, get_activation
from .base import Layer, check_bool, resolve_optional, serialize_optional
from .spec import LayerSpec


class Preactivation:
    """The ctx of a Conv2D/Dense call: the op's context (Dense: its input), the pre-activation z
    (None after a fused ReLU, which does not need it) and the output y."""

    __slots__ = ("inputs", "z", "y")

    def __init__(self, inputs, z, y):
        self.inputs, self.z, self.y = inputs, z, y

    @property
    def preactivation(self):
        return self.z


def resolve_activation(identifier, where: str):
    """An ops Activation from a name, None, a Keras config dict or a `convscope.activations` function.

    Errors name the layer and the argument.
    """
    if isinstance(identifier, dict) or (callable(identifier) and not isinstance(identifier, Activation)):
        try:
            identifier = activations.serialize(activations.deserialize(identifier, where, "activation")
                                               if isinstance(identifier, dict) else identifier)
        except ValueError as error:
            raise ValueError(f"{where}: argument `activation` must be an activation name or one of "
                             f"convscope.activations' functions: {error}") from None
    try:
        return get_activation(identifier)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{where}: argument `activation`: {error}") from None


def set_weight_options(layer, where: str, kernel_initializer, bias_initializer, kernel_regularizer,
                       bias_regularizer, kernel_constraint, bias_constraint) -> None:
    """The kernel/bias initializers, regularizers and constraints, validated and stored on `layer` (errors
    name the layer and the argument)."""
    layer.kernel_initializer = initializers.get(kernel_initializer, where, "kernel_initializer")
    layer.bias_initializer = initializers.get(bias_initializer, where, "bias_initializer")
    layer.kernel_regularizer = resolve_optional("regularizers", kernel_regularizer, where, "kernel_regularizer")
    layer.bias_regularizer = resolve_optional("regularizers", bias_regularizer, where, "bias_regularizer")
    layer.kernel_constraint = resolve_optional("constraints", kernel_constraint, where, "kernel_constraint")
    layer.bias_constraint = resolve_optional("constraints", bias_constraint, where, "bias_constraint")


def weight_options_config(layer, activity_regularizer) -> Dict[str, Any]:
    """The config entries of `set_weight_options`' six, and the activity regularizer, in Keras' order."""
    return {
        "kernel_initializer": serialize_optional("initializers", layer.kernel_initializer),
        "bias_initializer": serialize_optional("initializers", layer.bias_initializer),
        "kernel_regularizer": serialize_optional("regularizers", layer.kernel_regularizer),
        "bias_regularizer": serialize_optional("regularizers", layer.bias_regularizer),
        "activity_regularizer": serialize_optional("regularizers", activity_regularizer),
        "kernel_constraint": serialize_optional("constraints", layer.kernel_constraint),
        "bias_constraint": serialize_optional("constraints", layer.bias_constraint),
    }


class KernelBiasLayer(Layer):
    """A layer computing y = activation(z) with z from a kernel and an optional bias."""

    def _init_kernel_bias(self, where: str, activation, use_bias, kernel_initializer, bias_initializer,
                          kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
                          bias_constraint) -> None:
        self.activation = resolve_activation(activation, where)
        self.use_bias = check_bool(use_bias, "use_bias", where)
        set_weight_options(self, where, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                           kernel_constraint, bias_constraint)
        self.activity_regularizer = resolve_optional("regularizers", activity_regularizer, where,
                                                     "activity_regularizer")
        self.kernel = None
        self.bias = None

    def _kernel_bias_config(self) -> Dict[str, Any]:
        return {"activation": self.activation.name, "use_bias": self.use_bias,
                **weight_options_config(self, self.activity_regularizer)}

    @property
    def output_activation(self):
        return self.activation

    def _build_kernel_bias(self, kernel_shape, units: int) -> None:
        """The kernel of `kernel_shape`, then (with use_bias) a bias of `units`, as Keras names and orders them."""
        self.kernel = self.add_weight(tuple(kernel_shape), self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        if self.use_bias:
            self.bias = self.add_weight((units,), self.bias_initializer, regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint, name="bias")
        self.built = True

    def _bias_value(self):
        return self.bias.value if self.bias is not None else None

    def _fused_activation(self, channels_last: bool = True):
        """"linear" or "relu" when the bias and activation run as one fused op on the output, else None."""
        if not channels_last or self.activation.params or self.activation.name not in ops.FUSED_ACTIVATIONS:
            return None
        return self.activation.name

    def _activation_backward(self, ctx: Preactivation, grad_output: np.ndarray, from_preactivation: bool,
                             channels_last: bool = True):
        """(gradient w.r.t. the pre-activation, bias gradient or None) of the call that made `ctx`."""
        fused = self._fused_activation(channels_last)
        if fused is not None:
            return ops.bias_activation_backward(grad_output, ctx.y, "linear" if from_preactivation else fused,
                                                with_bias=self.bias is not None)
        grad_z = grad_output if from_preactivation else self.activation.backward(grad_output, ctx.z, ctx.y)
        return grad_z, None

    def _weight_grads(self, grad_kernel, grad_bias):
        if not self.trainable:
            return []
        pairs = [(self.kernel, grad_kernel)]
        if self.bias is not None:
            pairs.append((self.bias, grad_bias))
        return pairs

    def _spec(self, kind: str, **details) -> LayerSpec:
        weights = {"kernel": self.kernel, "bias": self.bias}
        return LayerSpec(kind=kind, activation=self.activation.name, activation_params=dict(self.activation.params),
                         weights=weights, use_bias=self.use_bias, **details)


def check_grouped_conv(where: str, filters: int, groups: int, strides, dilation_rate) -> None:
    """Keras' constructor rules of a grouped convolution (Conv1D, Conv2D)."""
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(f"{where}: `strides > 1` is not supported together with `dilation_rate > 1`; "
                         f"got strides={strides} and dilation_rate={dilation_rate}")
    if filters % groups:
        raise ValueError(f"{where}: argument `filters` must be divisible by `groups`; "
                         f"got filters={filters} and groups={groups}")


def check_conv_channels(layer, channels, built_in_channels, input_shape) -> None:
    """The input's channels: known, those the layer was built for (`built_in_channels`, None before
    build), and divisible by its groups."""
    where = layer._describe()
    if channels is None:
        raise ValueError(f"{where}: the channel axis of the input must be known, got shape {input_shape}")
    if built_in_channels is not None and channels != built_in_channels:
        raise ValueError(f"{where}: expected an input with {built_in_channels} "
                         f"channels (the layer is built for them), got shape {input_shape}")
    if channels % layer.groups:
        raise ValueError(f"{where}: the input's {channels} channels must be divisible by "
                         f"groups={layer.groups} (input shape {input_shape})")
