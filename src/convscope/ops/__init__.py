"""Pure array functions, forward and backward, with `tf.nn` semantics (see docs/ARCHITECTURE.md).

float32 in -> float32 out, float64 in -> float64 out.  All shape arithmetic
comes from `ops/shapes.py`.
"""

from . import shapes
from .activations import ACTIVATION_NAMES, Activation, erf, erfc, get_activation
from .conv import conv2d, conv2d_backward, conv2d_forward
from .epilogue import FUSED_ACTIVATIONS, bias_activation_backward, bias_activation_forward
from .fused import conv2d_inference, conv2d_max_pool_forward
from .dropout import dropout_backward, dropout_forward
from .linear import dense_backward, dense_forward
from .normalization import batch_norm_affine, batch_norm_backward, batch_norm_infer, batch_norm_infer_backward, batch_norm_train
from .padding import zero_pad2d, zero_pad2d_backward
from .pooling import (avg_pool2d, avg_pool2d_backward, avg_pool2d_forward, max_pool2d, max_pool2d_backward,
                      max_pool2d_forward)

__all__ = [
    "shapes",
    "Activation", "ACTIVATION_NAMES", "get_activation", "erf", "erfc",
    "conv2d", "conv2d_forward", "conv2d_backward", "conv2d_inference", "conv2d_max_pool_forward",
    "max_pool2d", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_forward", "avg_pool2d_backward",
    "dense_forward", "dense_backward",
    "FUSED_ACTIVATIONS", "bias_activation_forward", "bias_activation_backward",
    "batch_norm_train", "batch_norm_infer", "batch_norm_affine", "batch_norm_backward", "batch_norm_infer_backward",
    "zero_pad2d", "zero_pad2d_backward",
    "dropout_forward", "dropout_backward",
]
