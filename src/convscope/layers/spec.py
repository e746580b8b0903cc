"""`LayerSpec`: what a layer says of itself, for the execution plan (and, in time, analysis and explain).

One small, documented record per layer — its kind, the activation it ends with, its
window and data format — so that the plan's fusion rules (`models/plan.py`) read data,
not method names spread over the layer classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple


@dataclass(frozen=True)
class Window:
    """A sliding window: size, strides, padding ("valid"/"same") and dilation, per spatial axis."""

    size: Tuple[int, ...]
    strides: Tuple[int, ...]
    padding: str
    dilation: Tuple[int, ...] = (1, 1)


@dataclass(frozen=True)
class LayerSpec:
    """kind: "conv2d", "dense", "batch_norm", "activation", "pool", "dropout", "input" or "other";
    activation: the name of the activation the layer applies last, with `activation_params`
    (None: none); pool: "max" or "avg" for pooling layers; axis: BatchNormalization's axis;
    weights: the layer's variables by role ("kernel", "bias", "gamma", ...)."""

    kind: str = "other"
    data_format: str = "channels_last"
    activation: Optional[str] = None
    activation_params: Dict[str, Any] = field(default_factory=dict)
    window: Optional[Window] = None
    groups: int = 1
    pool: Optional[str] = None
    axis: Optional[int] = None
    weights: Dict[str, Any] = field(default_factory=dict)

    @property
    def plain_relu(self) -> bool:
        """True for max(x, 0) with no slope, cap or threshold (what fused ops apply)."""
        plain = {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}
        return self.activation == "relu" and all(plain.get(k, object()) == v for k, v in self.activation_params.items())
