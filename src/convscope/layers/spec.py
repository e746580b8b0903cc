"""`LayerSpec`: what a layer says of itself, for the execution plan, the analysis and the explanations.

One small, documented record per layer — its kind, the activation it ends with, its
window, data format and the few numbers its formulas need — so that the plan's fusion
rules (`models/plan.py`) and the per-layer numbers (`models/analysis.py`) read data,
not class names or method names spread over the layer classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

# The kinds a layer can describe itself as (anything else reads as "other": no formulas, the
# layer's own compute_output_shape and weights).
KINDS = (
    "input", "conv2d", "conv1d", "depthwise_conv2d", "separable_conv2d", "conv2d_transpose",
    "depthwise_conv1d", "separable_conv1d", "conv1d_transpose", "conv3d", "conv3d_transpose", "pool3d",
    "global_pool3d", "upsample3d", "zero_pad3d", "crop3d", "dense", "embedding",
    "pool", "pool1d", "global_pool", "global_pool1d", "adaptive_pool", "batch_norm", "layer_norm", "group_norm",
    "unit_norm", "rms_norm",
    "normalization", "rescaling", "activation", "dropout", "zero_pad2d", "pad1d", "crop2d", "crop1d",
    "upsample2d", "upsample1d", "resizing", "center_crop", "flatten", "reshape", "repeat", "permute", "einsum_dense",
    "identity", "augment",
    "noise", "merge", "operation", "time_distributed", "spectral_norm", "model", "attention", "recurrent",
    "other",
)


@dataclass(frozen=True)
class Window:
    """A sliding window: size, strides, padding ("valid"/"same"/"causal") and dilation, per spatial axis."""

    size: Tuple[int, ...]
    strides: Tuple[int, ...]
    padding: str
    dilation: Tuple[int, ...] = (1, 1)


@dataclass(frozen=True)
class LayerSpec:
    """kind: one of `KINDS`; activation: the name of the activation the layer applies last, with
    `activation_params` (None: none); pool: "max" or "avg" for pooling layers; axis: the axis (or
    axes) BatchNormalization, LayerNormalization or Normalization acts on; weights: the layer's
    variables by role ("kernel", "bias", "gamma", ...).

    The numbers the analysis needs beyond the window (None where they do not apply):
    filters — output channels of a convolution (SeparableConv2D: of its pointwise step) or a
    Dense's units; depth_multiplier — kernels per input channel of a depthwise step;
    use_bias; output_padding — Conv2DTranspose's (None: Keras' default rule); size — the
    upsampling factors per spatial axis, or Resizing's target (height, width), or EinsumDense's output_shape;
    pads — cells added (zero padding) or cut (cropping) per spatial axis as (before, after); interpolation;
    aspect — Resizing's "crop" or "pad" to the target's aspect ratio first (None: neither);
    rate — a dropout's; keepdims — a global pooling's; op — a merge's or an operation's name
    ("add", "concatenate", "multiply", ...), "spatial" for SpatialDropout2D; dims — Permute's
    order of the axes after the batch; center, scale — BatchNormalization's and LayerNormalization's
    beta and gamma (known before the weights exist); adapted — Normalization's mean and variance
    are weights set by adapt() (False: constants given to the constructor, no weights); elementwise —
    an operation computed value by value (arithmetic, comparisons, activations but softmax); normalize — Dot's
    inputs scaled to unit length before the product; inner — a wrapper's wrapped layer (TimeDistributed,
    SpectralNormalization), or a model itself (kind "model": a model inside another)."""

    kind: str = "other"
    data_format: str = "channels_last"
    activation: Optional[str] = None
    activation_params: Dict[str, Any] = field(default_factory=dict)
    window: Optional[Window] = None
    groups: int = 1
    pool: Optional[str] = None
    axis: Any = None
    weights: Dict[str, Any] = field(default_factory=dict)
    filters: Optional[int] = None
    depth_multiplier: Optional[int] = None
    use_bias: bool = False
    output_padding: Optional[Tuple[int, ...]] = None
    size: Optional[Tuple[int, ...]] = None
    pads: Optional[Tuple[Tuple[int, int], ...]] = None
    interpolation: Optional[str] = None
    aspect: Optional[str] = None
    rate: Optional[float] = None
    keepdims: bool = False
    op: Optional[str] = None
    dims: Optional[Tuple[int, ...]] = None
    center: bool = True
    scale: bool = True
    adapted: bool = False
    elementwise: bool = False
    normalize: bool = False
    inner: Any = None

    @property
    def plain_relu(self) -> bool:
        """True for max(x, 0) with no slope, cap or threshold (what fused ops apply)."""
        plain = {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}
        return self.activation == "relu" and all(plain.get(k, object()) == v for k, v in self.activation_params.items())
