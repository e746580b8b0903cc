"""The activations of `keras.ops` (Keras 3 names and defaults), each recording its gradient on an
active `ops.Tape`.  The math is `ops.activations`' (`get_activation(name).forward/backward`);
ints become floatx first, except in relu, relu6 and hard_tanh, which keep them (as Keras).
"""

from __future__ import annotations

import numpy as np

from .activations import get_activation
from .numpy_api import _axes, _one, _symbolic_dispatch
from .tape import record_node

__all__ = ["relu", "relu6", "sigmoid", "hard_sigmoid", "silu", "swish", "hard_silu", "hard_swish",
           "gelu", "softplus", "softsign", "elu", "selu", "leaky_relu", "softmax", "log_softmax", "celu", "hard_tanh",
           "hard_shrink", "soft_shrink", "tanh_shrink", "log_sigmoid", "squareplus", "sparse_plus", "sparse_sigmoid"]


def apply_activation(fn: str, x, name: str, **params):
    """y = activation(x), recorded with the activation's own backward (on an active tape: a custom layer's call)."""
    value = _one(x, fn, floating=True)
    activation = get_activation(name, **params)
    out = activation.forward(value)
    return record_node(fn, (x,), out, lambda g, need: (activation.backward(g, value, out),))


def relu(x):
    """max(x, 0)."""
    value = _one(x, "relu")
    if value.dtype.kind != "f":
        return np.maximum(value, 0).astype(value.dtype)
    return apply_activation("relu", x, "relu")


def relu6(x):
    """min(max(x, 0), 6)."""
    value = _one(x, "relu6")
    if value.dtype.kind != "f":
        return np.clip(value, 0, 6).astype(value.dtype)
    return apply_activation("relu6", x, "relu", max_value=6.0)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return apply_activation("sigmoid", x, "sigmoid")


def hard_sigmoid(x):
    """Keras 3's hard sigmoid: relu6(x + 3) / 6."""
    return apply_activation("hard_sigmoid", x, "hard_sigmoid")


def silu(x):
    """x * sigmoid(x)."""
    return apply_activation("silu", x, "silu")


swish = silu


def hard_silu(x):
    """x * relu6(x + 3) / 6 (Keras 3's hard_silu, torch's hardswish)."""
    return apply_activation("hard_silu", x, "hard_silu")


hard_swish = hard_silu


def gelu(x, approximate=True):
    """x * Phi(x), or its tanh approximation (the default of keras.ops.gelu)."""
    return apply_activation("gelu", x, "gelu", approximate=bool(approximate))


def softplus(x):
    """log(1 + exp(x))."""
    return apply_activation("softplus", x, "softplus")


def softsign(x):
    """x / (1 + |x|)."""
    return apply_activation("softsign", x, "softsign")


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return apply_activation("elu", x, "elu", alpha=alpha)


def selu(x):
    """scale * elu(x, alpha) with the self-normalizing constants."""
    return apply_activation("selu", x, "selu")


def leaky_relu(x, negative_slope=0.2):
    """x for x > 0, negative_slope * x otherwise."""
    return apply_activation("leaky_relu", x, "leaky_relu", negative_slope=negative_slope)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) over `axis` (an int, a list of ints, or None for all)."""
    value = _one(x, "softmax", floating=True)
    return apply_activation("softmax", x, "softmax", axis=_axes(axis, value.ndim, "softmax"))


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) over `axis`; the gradient is g - softmax(x) * sum(g)."""
    value = _one(x, "log_softmax", floating=True)
    return apply_activation("log_softmax", x, "log_softmax", axis=_axes(axis, value.ndim, "log_softmax"))


def celu(x, alpha=1.0):
    """max(x, 0) + min(0, alpha (exp(x / alpha) - 1))."""
    return apply_activation("celu", x, "celu", alpha=alpha)


def hard_tanh(x):
    """clip(x, -1, 1); ints stay ints (as Keras on torch)."""
    value = _one(x, "hard_tanh")
    if value.dtype.kind != "f":
        return np.clip(value, -1, 1).astype(value.dtype)
    return apply_activation("hard_tanh", x, "hard_tanh")


def hard_shrink(x, threshold=0.5):
    """x where |x| > threshold, else 0."""
    return apply_activation("hard_shrink", x, "hard_shrink", threshold=threshold)


def soft_shrink(x, threshold=0.5):
    """x moved `threshold` towards 0, 0 within it."""
    return apply_activation("soft_shrink", x, "soft_shrink", threshold=threshold)


def tanh_shrink(x):
    """x - tanh(x)."""
    return apply_activation("tanh_shrink", x, "tanh_shrink")


def log_sigmoid(x):
    """log(sigmoid(x))."""
    return apply_activation("log_sigmoid", x, "log_sigmoid")


def squareplus(x, b=4):
    """(x + sqrt(x² + b)) / 2."""
    return apply_activation("squareplus", x, "squareplus", b=b)


def sparse_plus(x):
    """0 up to -1, (x + 1)² / 4 on (-1, 1), x from 1."""
    return apply_activation("sparse_plus", x, "sparse_plus")


def sparse_sigmoid(x):
    """0 up to -1, (x + 1) / 2 on (-1, 1), 1 from 1."""
    return apply_activation("sparse_sigmoid", x, "sparse_sigmoid")


_symbolic_dispatch(globals(), __all__)
