"""Keras-level activation functions: `convscope.activations.relu(x)`, `get`, `serialize`, `deserialize`.

Each function is `ops.activations.get_activation(name)` applied by `ops.nn_api.apply_activation`: the ops'
numbers, recorded with their backward on an active tape (a custom layer's `call` that writes
`keras.activations.relu(x)` differentiates through it); layers use the ops objects directly.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from .ops.activations import ACTIVATION_NAMES
from .ops.nn_api import apply_activation

__all__ = list(ACTIVATION_NAMES) + ["get", "serialize", "deserialize"]


def linear(x) -> np.ndarray:
    return apply_activation("linear", x, "linear")


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0) -> np.ndarray:
    return apply_activation("relu", x, "relu", negative_slope=negative_slope, max_value=max_value,
                            threshold=threshold)


def sigmoid(x) -> np.ndarray:
    return apply_activation("sigmoid", x, "sigmoid")


def tanh(x) -> np.ndarray:
    return apply_activation("tanh", x, "tanh")


def softmax(x, axis=-1) -> np.ndarray:
    return apply_activation("softmax", x, "softmax", axis=axis)


def elu(x, alpha=1.0) -> np.ndarray:
    return apply_activation("elu", x, "elu", alpha=alpha)


def selu(x) -> np.ndarray:
    return apply_activation("selu", x, "selu")


def softplus(x) -> np.ndarray:
    return apply_activation("softplus", x, "softplus")


def softsign(x) -> np.ndarray:
    return apply_activation("softsign", x, "softsign")


def silu(x) -> np.ndarray:
    return apply_activation("silu", x, "silu")


swish = silu    # Keras 3: the same function, serialized as "silu"


def gelu(x, approximate=False) -> np.ndarray:
    return apply_activation("gelu", x, "gelu", approximate=approximate)


def leaky_relu(x, negative_slope=0.2) -> np.ndarray:
    return apply_activation("leaky_relu", x, "leaky_relu", negative_slope=negative_slope)


def hard_sigmoid(x) -> np.ndarray:
    """Keras 3's relu6(x + 3) / 6 (Keras 2's was clip(0.2 x + 0.5, 0, 1))."""
    return apply_activation("hard_sigmoid", x, "hard_sigmoid")


def relu6(x) -> np.ndarray:
    return apply_activation("relu6", x, "relu6")


def hard_silu(x) -> np.ndarray:
    """x * relu6(x + 3) / 6."""
    return apply_activation("hard_silu", x, "hard_silu")


hard_swish = hard_silu    # Keras 3: the same function, serialized as "hard_silu"


def mish(x) -> np.ndarray:
    """x * tanh(softplus(x))."""
    return apply_activation("mish", x, "mish")


def log_softmax(x, axis=-1) -> np.ndarray:
    return apply_activation("log_softmax", x, "log_softmax", axis=axis)


def celu(x, alpha=1.0) -> np.ndarray:
    """max(x, 0) + min(0, alpha (exp(x / alpha) - 1))."""
    return apply_activation("celu", x, "celu", alpha=alpha)


def hard_tanh(x) -> np.ndarray:
    """clip(x, -1, 1)."""
    return apply_activation("hard_tanh", x, "hard_tanh")


def hard_shrink(x, threshold=0.5) -> np.ndarray:
    """x where |x| > threshold, else 0."""
    return apply_activation("hard_shrink", x, "hard_shrink", threshold=threshold)


def soft_shrink(x, threshold=0.5) -> np.ndarray:
    """x moved `threshold` towards 0, 0 within it."""
    return apply_activation("soft_shrink", x, "soft_shrink", threshold=threshold)


def tanh_shrink(x) -> np.ndarray:
    """x - tanh(x)."""
    return apply_activation("tanh_shrink", x, "tanh_shrink")


def log_sigmoid(x) -> np.ndarray:
    """log(sigmoid(x)) = -softplus(-x)."""
    return apply_activation("log_sigmoid", x, "log_sigmoid")


def squareplus(x, b=4) -> np.ndarray:
    """(x + sqrt(x² + b)) / 2."""
    return apply_activation("squareplus", x, "squareplus", b=b)


def sparse_plus(x) -> np.ndarray:
    """0 up to -1, (x + 1)² / 4 on (-1, 1), x from 1."""
    return apply_activation("sparse_plus", x, "sparse_plus")


def sparse_sigmoid(x) -> np.ndarray:
    """0 up to -1, (x + 1) / 2 on (-1, 1), 1 from 1."""
    return apply_activation("sparse_sigmoid", x, "sparse_sigmoid")


def exponential(x) -> np.ndarray:
    return apply_activation("exponential", x, "exponential")


_BY_NAME: Dict[str, Callable] = {name: globals()[name] for name in ACTIVATION_NAMES}


def serialize(activation) -> str:
    """The Keras name of an activation function (or of an ops Activation)."""
    name = getattr(activation, "name", None) or getattr(activation, "__name__", None)
    if name not in _BY_NAME:
        raise ValueError(f"activations.serialize: argument `activation` must be one of convscope's "
                         f"activations {list(_BY_NAME)}, got {activation!r}")
    return name


def deserialize(name, where: str = "activations.deserialize", arg: str = "name") -> Callable:
    """The function for a Keras name, or a Keras 3 dict {"class_name": "function", "config": "relu"}."""
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    if not isinstance(name, str) or name.lower() not in _BY_NAME:
        raise ValueError(f"{where}: argument `{arg}` is an unknown activation {name!r}; expected one of "
                         f"{list(_BY_NAME)}")
    return _BY_NAME[name.lower()]


def get(identifier) -> Callable:
    """Keras' `activations.get`: None -> linear, a name -> its function, a function stays itself."""
    if identifier is None:
        return linear
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier, "activations.get", "identifier")
    if callable(identifier):
        return identifier
    raise TypeError(f"activations.get: argument `identifier` must be a name or a function, got {identifier!r}")
