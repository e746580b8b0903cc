"""Keras-level activation functions: `convscope.activations.relu(x)`, `get`, `serialize`, `deserialize`.

Each function wraps `ops.activations.get_activation(name).forward`, so the numbers
are the ops' numbers; layers use the ops objects directly for the backward pass.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from .ops.activations import ACTIVATION_NAMES, get_activation

__all__ = list(ACTIVATION_NAMES) + ["get", "serialize", "deserialize"]


def linear(x) -> np.ndarray:
    return get_activation("linear").forward(x)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0) -> np.ndarray:
    return get_activation("relu", negative_slope=negative_slope, max_value=max_value,
                          threshold=threshold).forward(x)


def sigmoid(x) -> np.ndarray:
    return get_activation("sigmoid").forward(x)


def tanh(x) -> np.ndarray:
    return get_activation("tanh").forward(x)


def softmax(x, axis=-1) -> np.ndarray:
    return get_activation("softmax", axis=axis).forward(x)


def elu(x, alpha=1.0) -> np.ndarray:
    return get_activation("elu", alpha=alpha).forward(x)


def selu(x) -> np.ndarray:
    return get_activation("selu").forward(x)


def softplus(x) -> np.ndarray:
    return get_activation("softplus").forward(x)


def softsign(x) -> np.ndarray:
    return get_activation("softsign").forward(x)


def silu(x) -> np.ndarray:
    return get_activation("silu").forward(x)


swish = silu    # Keras 3: the same function, serialized as "silu"


def gelu(x, approximate=False) -> np.ndarray:
    return get_activation("gelu", approximate=approximate).forward(x)


def leaky_relu(x, negative_slope=0.2) -> np.ndarray:
    return get_activation("leaky_relu", negative_slope=negative_slope).forward(x)


def hard_sigmoid(x) -> np.ndarray:
    """Keras 3's relu6(x + 3) / 6 (Keras 2's was clip(0.2 x + 0.5, 0, 1))."""
    return get_activation("hard_sigmoid").forward(x)


def relu6(x) -> np.ndarray:
    return get_activation("relu6").forward(x)


def hard_silu(x) -> np.ndarray:
    """x * relu6(x + 3) / 6."""
    return get_activation("hard_silu").forward(x)


hard_swish = hard_silu    # Keras 3: the same function, serialized as "hard_silu"


def mish(x) -> np.ndarray:
    """x * tanh(softplus(x))."""
    return get_activation("mish").forward(x)


def log_softmax(x, axis=-1) -> np.ndarray:
    return get_activation("log_softmax", axis=axis).forward(x)


def celu(x, alpha=1.0) -> np.ndarray:
    """max(x, 0) + min(0, alpha (exp(x / alpha) - 1))."""
    return get_activation("celu", alpha=alpha).forward(x)


def hard_tanh(x) -> np.ndarray:
    """clip(x, -1, 1)."""
    return get_activation("hard_tanh").forward(x)


def hard_shrink(x, threshold=0.5) -> np.ndarray:
    """x where |x| > threshold, else 0."""
    return get_activation("hard_shrink", threshold=threshold).forward(x)


def soft_shrink(x, threshold=0.5) -> np.ndarray:
    """x moved `threshold` towards 0, 0 within it."""
    return get_activation("soft_shrink", threshold=threshold).forward(x)


def tanh_shrink(x) -> np.ndarray:
    """x - tanh(x)."""
    return get_activation("tanh_shrink").forward(x)


def log_sigmoid(x) -> np.ndarray:
    """log(sigmoid(x)) = -softplus(-x)."""
    return get_activation("log_sigmoid").forward(x)


def squareplus(x, b=4) -> np.ndarray:
    """(x + sqrt(x² + b)) / 2."""
    return get_activation("squareplus", b=b).forward(x)


def sparse_plus(x) -> np.ndarray:
    """0 up to -1, (x + 1)² / 4 on (-1, 1), x from 1."""
    return get_activation("sparse_plus").forward(x)


def sparse_sigmoid(x) -> np.ndarray:
    """0 up to -1, (x + 1) / 2 on (-1, 1), 1 from 1."""
    return get_activation("sparse_sigmoid").forward(x)


def exponential(x) -> np.ndarray:
    return get_activation("exponential").forward(x)


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
