"""Pure array functions, forward and backward, with `tf.nn` semantics (see docs/ARCHITECTURE.md).

float32 in -> float32 out, float64 in -> float64 out.  All shape arithmetic
comes from `ops/shapes.py`.
"""

from . import augment, image, shapes
from .augment import affine_transform, affine_transform_backward, affine_transform_forward
from .activations import ACTIVATION_NAMES, Activation, get_activation
from .conv import conv2d, conv2d_backward, conv2d_forward
from .transposed_conv import conv2d_transpose, conv2d_transpose_backward, conv2d_transpose_forward
from .depthwise import (depthwise_conv2d, depthwise_conv2d_backward, depthwise_conv2d_forward, separable_conv2d,
                        separable_conv2d_backward, separable_conv2d_forward)
from .epilogue import FUSED_ACTIVATIONS, bias_activation_backward, bias_activation_forward, bias_add
from .fused import conv2d_inference, conv2d_max_pool_forward
from .dropout import (alpha_dropout_forward, dropout_backward, dropout_forward, gaussian_dropout_forward,
                      gaussian_noise)
from .linear import dense_backward, dense_forward
from .batch_norm_act import batch_norm_relu_backward, batch_norm_relu_train
from .normalization import (batch_norm_affine, batch_norm_backward, batch_norm_infer, batch_norm_infer_backward,
                            batch_norm_infer_backward_all, batch_norm_train, moving_average_update)
from .padding import zero_pad2d, zero_pad2d_backward
from .group_norm import group_norm_backward, group_norm_forward
from .layer_norm import layer_norm_backward, layer_norm_forward
from .unit_norm import unit_norm_backward, unit_norm_forward
from .rms_norm import rms_norm_backward, rms_norm_forward
from .spectral_norm import spectral_normalize
from .preprocessing import rescale, rescale_backward, standardize, standardize_backward
from .resize import center_crop_backward, center_crop_forward, resize2d, resize2d_backward, resize2d_forward
from .adaptive_pool import (adaptive_pool2d_backward, adaptive_pool2d_forward, adaptive_pool3d_backward,
                            adaptive_pool3d_forward)
from .volume import (conv_nd_backward, conv_nd_forward, conv_nd_transpose_backward, conv_nd_transpose_forward,
                     pool_nd_backward, pool_nd_forward)
from .pooling import (avg_pool2d, avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d, max_pool2d,
                      max_pool2d_backward, max_pool2d_forward, max_pool2d_zero_padded)
from .tape import Tape, Traced, record, stop_gradient
from .numpy_api import (abs, absolute, add, argmax, argmin, broadcast_to, cast, clip, concatenate, convert_to_numpy,
                        convert_to_tensor, divide, dot, erf, erfc,
                        einsum, equal, exp, expand_dims, floor_divide, greater, greater_equal, less, less_equal,
                        log, log1p, matmul, max, maximum, mean, min, minimum, multiply, negative, not_equal,
                        ones_like, pad, power, prod, repeat, reshape, sign, split, sqrt, square, squeeze, stack,
                        std, subtract, sum, take, tanh, tensordot, tile, transpose, true_divide, var, where,
                        zeros_like)
from .nn_api import (celu, elu, gelu, hard_shrink, hard_sigmoid, hard_silu, hard_swish, hard_tanh, leaky_relu,
                     log_sigmoid, log_softmax, relu, relu6, selu, sigmoid, silu, soft_shrink, softmax, softplus,
                     softsign, sparse_plus, sparse_sigmoid, squareplus, swish, tanh_shrink)
from .composed import (amax, amin, arctan2, average, average_pool, binary_crossentropy, categorical_crossentropy,
                       conv_transpose, depth_to_space, depthwise_conv, divide_no_nan, glu, hstack, logaddexp, max_pool,
                       mod, moments, nan_to_num, norm, normalize, one_hot, outer, separable_conv, slice, space_to_depth,
                       sparse_categorical_crossentropy, take_along_axis, threshold, top_k, unstack, vstack)
from .composed import (allclose, append, array, copy, deg2rad, diagonal, hypot, isclose, logical_xor, median,
                       percentile, quantile, rad2deg, trace)
from .numpy_more import (all, any, arange, arccos, arccosh, arcsin, arcsinh, arctan, arctanh, argsort, cbrt, ceil,
                         cos, cosh, count_nonzero, cumsum, exp2, expm1, eye, flip, floor, full, full_like, identity,
                         isfinite, isinf, isnan, linspace, log2, log10, logical_and, logical_not, logical_or,
                         logsumexp, moveaxis, ndim, ones, ravel, reciprocal, roll, round, rsqrt, shape, sin, sinh, size,
                         sort, swapaxes, tan, tril, triu, trunc, zeros)

__all__ = [
    "shapes", "augment", "image", "affine_transform", "affine_transform_forward", "affine_transform_backward",
    "Activation", "ACTIVATION_NAMES", "get_activation", "erf", "erfc",
    "amax", "amin", "average", "divide_no_nan", "logaddexp", "arctan2", "mod", "outer", "nan_to_num", "norm",
    "normalize", "moments", "depth_to_space", "space_to_depth", "one_hot", "take_along_axis", "top_k", "unstack",
    "slice", "hstack", "vstack", "glu", "threshold", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "max_pool", "average_pool", "depthwise_conv", "separable_conv", "conv_transpose",
    "copy", "array", "isclose", "allclose", "logical_xor", "deg2rad", "rad2deg", "hypot", "append", "diagonal", "trace",
    "quantile", "percentile", "median",
    "conv2d", "conv2d_forward", "conv2d_backward", "conv2d_inference", "conv2d_max_pool_forward",
    "conv2d_transpose", "conv2d_transpose_forward", "conv2d_transpose_backward",
    "depthwise_conv2d", "depthwise_conv2d_forward", "depthwise_conv2d_backward",
    "separable_conv2d", "separable_conv2d_forward", "separable_conv2d_backward",
    "max_pool2d", "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_zero_padded",
    "avg_pool2d", "avg_pool2d_forward", "avg_pool2d_backward", "global_avg_pool2d",
    "adaptive_pool2d_forward", "adaptive_pool2d_backward", "adaptive_pool3d_forward", "adaptive_pool3d_backward",
    "conv_nd_forward", "conv_nd_backward",
    "conv_nd_transpose_forward", "conv_nd_transpose_backward", "pool_nd_forward", "pool_nd_backward",
    "dense_forward", "dense_backward",
    "FUSED_ACTIVATIONS", "bias_activation_forward", "bias_activation_backward", "bias_add",
    "batch_norm_train", "batch_norm_infer", "batch_norm_affine", "batch_norm_backward", "batch_norm_infer_backward",
    "batch_norm_infer_backward_all", "moving_average_update", "batch_norm_relu_train", "batch_norm_relu_backward",
    "zero_pad2d", "zero_pad2d_backward",
    "layer_norm_forward", "layer_norm_backward", "group_norm_forward", "group_norm_backward",
    "unit_norm_forward", "unit_norm_backward", "rms_norm_forward", "rms_norm_backward", "spectral_normalize",
    "resize2d", "resize2d_forward", "resize2d_backward", "center_crop_forward", "center_crop_backward",
    "rescale", "rescale_backward", "standardize", "standardize_backward",
    "dropout_forward", "dropout_backward", "gaussian_noise", "gaussian_dropout_forward", "alpha_dropout_forward",
    # Keras 3 `keras.ops` functions, differentiable on a Tape (ops/tape.py, numpy_api.py, nn_api.py)
    "Tape", "Traced", "record", "stop_gradient",
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "negative", "power", "square",
    "sqrt", "exp", "log", "log1p", "abs", "absolute", "sign", "tanh", "maximum", "minimum", "clip", "where",
    "matmul", "dot", "tensordot", "einsum", "sum", "mean", "max", "min", "prod", "var", "std", "argmax",
    "argmin", "reshape", "transpose", "expand_dims", "squeeze", "concatenate", "stack", "split", "tile",
    "repeat", "broadcast_to", "take", "pad", "cast", "zeros_like", "ones_like", "convert_to_tensor",
    "convert_to_numpy", "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "relu", "relu6", "sigmoid", "hard_sigmoid", "silu", "swish", "hard_silu", "hard_swish", "gelu",
    "softplus", "softsign", "elu", "selu", "leaky_relu", "softmax", "log_softmax", "celu", "hard_tanh",
    "hard_shrink", "soft_shrink", "tanh_shrink", "log_sigmoid", "squareplus", "sparse_plus", "sparse_sigmoid",
    # more of `keras.ops` (numpy_more.py)
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "expm1",
    "exp2", "log2", "log10", "reciprocal", "rsqrt", "cbrt", "floor", "ceil", "round", "trunc", "isnan", "isinf",
    "isfinite", "logical_and", "logical_or", "logical_not", "arange", "zeros", "ones", "full", "full_like", "eye",
    "identity", "linspace", "swapaxes", "moveaxis", "flip", "roll", "ravel", "triu", "tril", "cumsum",
    "logsumexp", "sort", "argsort", "any", "all", "count_nonzero", "shape", "ndim", "size",
]
