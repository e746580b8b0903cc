"""The Keras ops of `convscope.ops` against `keras.ops` (torch backend): values, result dtypes
(Python scalars included), signatures, errors; and Variable arithmetic."""

import inspect
import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from _oracle import TOLERANCE  # noqa: E402
from convscope import ops  # noqa: E402
from convscope.variables import Variable  # noqa: E402

keras = pytest.importorskip("keras")

# Keras on torch runs these through `result_type`, which makes 64-bit types 32-bit (JAX's
# default); convscope keeps float64 (its ops contract).  The tests check Keras still does so.
KERAS_TORCH_FLOAT32 = {"maximum", "minimum", "matmul", "dot", "tensordot", "var", "prod", "floor_divide", "floor",
                       "ceil", "cumsum", "average", "divide_no_nan", "logaddexp", "arctan2", "norm", "hypot",
                       "quantile", "percentile", "median"}
# ... and these keep float64 but compute in float32 (mean, the norm of normalize) or cast the bounds to float32 (clip).
KERAS_TORCH_FLOAT32_MATH = {"mean", "clip", "normalize"}

KERAS_FUNCTIONS = [
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "negative", "power", "square",
    "sqrt", "exp", "log", "log1p", "abs", "absolute", "sign", "tanh", "maximum", "minimum", "clip", "where",
    "matmul", "dot", "tensordot", "einsum", "sum", "mean", "max", "min", "prod", "var", "std", "argmax",
    "argmin", "reshape", "transpose", "expand_dims", "squeeze", "concatenate", "stack", "split", "tile",
    "repeat", "broadcast_to", "take", "pad", "cast", "zeros_like", "ones_like", "less", "less_equal",
    "greater", "greater_equal", "equal", "not_equal", "stop_gradient",
    "relu", "relu6", "sigmoid", "hard_sigmoid", "silu", "swish", "hard_silu", "hard_swish", "gelu",
    "softplus", "softsign", "elu", "selu", "leaky_relu", "softmax", "log_softmax",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "expm1",
    "exp2", "log2", "log10", "reciprocal", "rsqrt", "cbrt", "floor", "ceil", "round", "trunc", "isnan", "isinf",
    "isfinite", "logical_and", "logical_or", "logical_not", "arange", "zeros", "ones", "full", "full_like", "eye",
    "identity", "linspace", "swapaxes", "moveaxis", "flip", "roll", "ravel", "triu", "tril", "cumsum",
    "logsumexp", "sort", "argsort", "any", "all", "count_nonzero",
    "amax", "amin", "average", "divide_no_nan", "logaddexp", "arctan2", "mod", "outer", "nan_to_num", "norm",
    "normalize", "moments", "depth_to_space", "space_to_depth", "one_hot", "take_along_axis", "top_k", "unstack",
    "slice", "hstack", "vstack", "glu", "threshold", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "erf", "max_pool", "average_pool", "depthwise_conv", "separable_conv",
    "conv_transpose", "copy", "array", "isclose", "allclose", "logical_xor", "deg2rad", "rad2deg", "hypot", "append",
    "diagonal", "trace", "quantile", "percentile", "median",
]


class Draw:
    """Random inputs of one float dtype: n (normal), pos (0.5 .. 2), away (|x| >= 0.3)."""

    def __init__(self, dtype, seed=0):
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype

    def n(self, *shape):
        return self.rng.normal(size=shape).astype(self.dtype)

    def pos(self, *shape):
        return self.rng.uniform(0.5, 2.0, size=shape).astype(self.dtype)

    def away(self, *shape):
        x = self.rng.normal(size=shape)
        return (np.sign(x) * (0.3 + np.abs(x))).astype(self.dtype)


_NUMBER = itertools.count()


def case(name, build, **kwargs):
    return pytest.param(name, build, kwargs, id=f"{name}-{next(_NUMBER)}")


CASES = []
for _name in ("add", "subtract", "multiply", "maximum", "minimum", "less", "less_equal", "greater",
              "greater_equal", "equal", "not_equal"):
    CASES += [case(_name, lambda d: (d.n(3, 4), d.n(4))),
              case(_name, lambda d: (d.n(2, 1, 4), d.n(3, 1))),
              case(_name, lambda d: (d.n(3, 4), 0.25)),
              case(_name, lambda d: (2, d.n(3, 4)))]
for _name in ("divide", "true_divide", "floor_divide"):
    CASES += [case(_name, lambda d: (d.n(3, 4), d.away(4))), case(_name, lambda d: (d.n(3, 4), 2.5)),
              case(_name, lambda d: (3, d.away(2, 3)))]
CASES += [
    case("power", lambda d: (d.pos(3, 4), d.n(4))), case("power", lambda d: (d.n(3, 4), 3)),
    case("power", lambda d: (2.0, d.n(3))), case("power", lambda d: (d.pos(2, 3), 0.5)),
]
for _name in ("negative", "square", "exp", "abs", "absolute", "sign", "tanh"):
    CASES.append(case(_name, lambda d: (d.n(3, 4),)))
for _name in ("sqrt", "log", "log1p"):
    CASES.append(case(_name, lambda d: (d.pos(3, 4),)))
CASES += [
    case("clip", lambda d: (d.n(3, 4), -0.5, 0.7)),
    case("where", lambda d: (d.n(3, 4) > 0, d.n(3, 4), d.n(4))),
    case("where", lambda d: (d.n(3, 4) > 0, d.n(3, 4), 0.5)),
    case("matmul", lambda d: (d.n(3, 4), d.n(4, 5))), case("matmul", lambda d: (d.n(2, 3, 4), d.n(4))),
    case("matmul", lambda d: (d.n(4), d.n(2, 4, 5))), case("matmul", lambda d: (d.n(2, 1, 3, 4), d.n(5, 4, 2))),
    case("matmul", lambda d: (d.n(4), d.n(4))),
    case("dot", lambda d: (d.n(3, 4), d.n(4, 5))), case("dot", lambda d: (d.n(4), d.n(4))),
    case("dot", lambda d: (d.n(2, 3, 4), d.n(4, 5))), case("dot", lambda d: (d.n(3, 4), d.n(4))),
    case("dot", lambda d: (d.n(), d.n(3))),
    case("tensordot", lambda d: (d.n(3, 4, 5), d.n(4, 5, 2))),
    case("tensordot", lambda d: (d.n(3, 4), d.n(4, 5)), axes=1),
    case("tensordot", lambda d: (d.n(3, 4, 2), d.n(4, 3)), axes=([1, 0], [0, 1])),
    case("tensordot", lambda d: (d.n(2), d.n(3)), axes=0),
    case("einsum", lambda d: ("ij,jk->ik", d.n(3, 4), d.n(4, 5))),
    case("einsum", lambda d: ("...ij,...jk->...ik", d.n(2, 3, 4), d.n(4, 5))),
    case("einsum", lambda d: ("bij,bjk", d.n(2, 3, 4), d.n(2, 4, 5))),
    case("einsum", lambda d: ("ij->", d.n(3, 4))),
    case("einsum", lambda d: ("i,j->ij", d.n(3), d.n(4))),
]
for _name in ("sum", "mean", "max", "min", "prod", "var", "std"):
    CASES += [case(_name, lambda d: (d.n(2, 3, 4),)), case(_name, lambda d: (d.n(2, 3, 4),), axis=1),
              case(_name, lambda d: (d.n(2, 3, 4),), axis=-1, keepdims=True)]
    if _name != "prod":      # torch.prod reduces one axis at a time
        CASES.append(case(_name, lambda d: (d.n(2, 3, 4),), axis=(0, 2)))
for _name in ("argmax", "argmin"):
    CASES += [case(_name, lambda d: (d.n(3, 4),)), case(_name, lambda d: (d.n(3, 4),), axis=1),
              case(_name, lambda d: (d.n(3, 4),), axis=0, keepdims=True)]
CASES += [
    case("max", lambda d: (d.n(3, 4),), axis=1, initial=0.5),
    case("reshape", lambda d: (d.n(3, 4), (2, 6))), case("reshape", lambda d: (d.n(3, 4), (-1,))),
    case("transpose", lambda d: (d.n(2, 3, 4),)), case("transpose", lambda d: (d.n(2, 3, 4), (1, 0, 2))),
    case("expand_dims", lambda d: (d.n(3, 4), 1)), case("expand_dims", lambda d: (d.n(3, 4), -1)),
    case("squeeze", lambda d: (d.n(3, 1, 4),)), case("squeeze", lambda d: (d.n(1, 3, 1),), axis=2),
    case("concatenate", lambda d: ([d.n(2, 3), d.n(4, 3)],)),
    case("concatenate", lambda d: ([d.n(2, 3), d.n(2, 1)],), axis=-1),
    case("stack", lambda d: ([d.n(2, 3), d.n(2, 3)],), axis=1),
    case("split", lambda d: (d.n(6, 4), 3)), case("split", lambda d: (d.n(6, 4), [1, 4])),
    case("split", lambda d: (d.n(3, 6), 2), axis=1),
    case("tile", lambda d: (d.n(2, 3), (2, 1))), case("tile", lambda d: (d.n(2, 3), 3)),
    case("tile", lambda d: (d.n(3), (2, 2))),
    case("repeat", lambda d: (d.n(2, 3), 2)), case("repeat", lambda d: (d.n(2, 3), 2), axis=1),
    case("repeat", lambda d: (d.n(2, 3), np.array([1, 3])), axis=0),
    case("broadcast_to", lambda d: (d.n(3, 1), (2, 3, 4))),
    case("take", lambda d: (d.n(3, 4), [0, 2, 2]), axis=1), case("take", lambda d: (d.n(3, 4), [[0, 5], [11, 1]])),
    case("take", lambda d: (d.n(3, 4), [2, 0]), axis=0),
    case("pad", lambda d: (d.n(2, 3), ((1, 1), (2, 1)))),
    case("pad", lambda d: (d.n(2, 3), ((1, 0), (0, 2))), constant_values=1.5),
    case("pad", lambda d: (d.n(3, 4), ((1, 2), (2, 1))), mode="reflect"),
    case("cast", lambda d: (d.n(3, 4), "float64")), case("cast", lambda d: (d.n(3, 4), "float32")),
    case("cast", lambda d: (d.n(3, 4) * 5, "int32")),
    case("zeros_like", lambda d: (d.n(3, 4),)), case("ones_like", lambda d: (d.n(3, 4),)),
    case("ones_like", lambda d: (d.n(3, 4), "int32")),
    case("stop_gradient", lambda d: (d.n(3, 4),)),
]
for _name in ("relu", "relu6", "sigmoid", "hard_sigmoid", "silu", "swish", "hard_silu", "hard_swish", "gelu",
              "softplus", "softsign", "elu", "selu", "leaky_relu", "softmax", "log_softmax"):
    CASES.append(case(_name, lambda d: (d.n(3, 5) * 4,)))
CASES += [
    case("gelu", lambda d: (d.n(3, 5) * 3,), approximate=False),
    case("elu", lambda d: (d.n(3, 5) * 3,), alpha=0.5),
    case("leaky_relu", lambda d: (d.n(3, 5) * 3,), negative_slope=0.1),
    case("softmax", lambda d: (d.n(3, 5),), axis=0), case("softmax", lambda d: (d.n(2, 3, 5),), axis=(1, 2)),
    case("log_softmax", lambda d: (d.n(3, 5),), axis=0),
]

for _name in ("sin", "cos", "tan", "arctan", "sinh", "cosh", "arcsinh", "expm1", "exp2", "cbrt", "floor", "ceil",
              "trunc", "isnan", "isinf", "isfinite", "logical_not", "ravel", "sort", "argsort"):
    CASES.append(case(_name, lambda d: (d.n(3, 4),)))
for _name in ("log2", "log10", "reciprocal", "rsqrt"):
    CASES.append(case(_name, lambda d: (d.pos(3, 4),)))
CASES += [
    case("arcsin", lambda d: (d.n(3, 4) * 0.3,)), case("arccos", lambda d: (d.n(3, 4) * 0.3,)),
    case("arctanh", lambda d: (d.n(3, 4) * 0.3,)), case("arccosh", lambda d: (d.pos(3, 4) + 1,)),
    case("round", lambda d: (d.n(3, 4) * 10,)), case("round", lambda d: (d.n(3, 4) * 10, 1)),
    case("logical_and", lambda d: (d.n(3, 4) > 0, d.n(4) > 0)), case("logical_or", lambda d: (d.n(3, 4) > 0, 0)),
    case("arange", lambda d: (5,)), case("arange", lambda d: (1, 7, 2)), case("arange", lambda d: (0.0, 1, 0.25)),
    case("arange", lambda d: (5,), dtype="float32"),
    case("zeros", lambda d: ((2, 3),)), case("ones", lambda d: ((2,),), dtype="int32"),
    case("full", lambda d: ((2, 2), 3)), case("full", lambda d: ((2, 2), 3.5)),
    case("full_like", lambda d: (d.n(3, 4), 2)), case("full_like", lambda d: (np.ones(3, "int32"), 2.5)),
    case("eye", lambda d: (3,)), case("eye", lambda d: (3, 4, 1)), case("identity", lambda d: (3,)),
    case("linspace", lambda d: (0, 1, 5)), case("linspace", lambda d: (0, 1, 5, False)),
    case("swapaxes", lambda d: (d.n(2, 3, 4), 0, 2)), case("moveaxis", lambda d: (d.n(2, 3, 4), 0, -1)),
    case("flip", lambda d: (d.n(2, 3, 4),)), case("flip", lambda d: (d.n(2, 3, 4), 1)),
    case("roll", lambda d: (d.n(3, 4), 2)), case("roll", lambda d: (d.n(3, 4), 1, 1)),
    case("roll", lambda d: (d.n(3, 4), (1, 2), (0, 1))),
    case("triu", lambda d: (d.n(2, 3, 4),)), case("tril", lambda d: (d.n(3, 4), -1)),
    case("cumsum", lambda d: (d.n(3, 4),)), case("cumsum", lambda d: (d.n(3, 4), 1)),
    case("cumsum", lambda d: (np.arange(12, dtype="int32").reshape(3, 4), 0)),
    case("logsumexp", lambda d: (d.n(3, 4),)), case("logsumexp", lambda d: (d.n(3, 4), 1, True)),
    case("sort", lambda d: (d.n(3, 4), 0)), case("argsort", lambda d: (d.n(3, 4), 0)),
    case("any", lambda d: (d.n(3, 4) > 0.5, 1)), case("all", lambda d: (d.n(3, 4) > -2,)),
    case("any", lambda d: (d.n(2, 3, 4) > 0.5, [0, 2])), case("all", lambda d: (d.n(2, 3, 4) > -1, (1, 2))),
    case("count_nonzero", lambda d: (d.n(2, 3, 4) > 0, (0, 2))), case("sort", lambda d: (d.n(3, 4), None)),
    case("argsort", lambda d: (d.n(3, 4), None)),
    case("count_nonzero", lambda d: (d.n(3, 4) > 0, 0)), case("count_nonzero", lambda d: (d.n(3, 4) > 0,)),
]


def _probabilities(d, *shape):
    return d.rng.uniform(0.05, 0.95, size=shape).astype(d.dtype)


def _with_bad_numbers(d):
    x = d.n(3, 4)
    x[0, 1], x[1, 2], x[2, 3] = np.nan, np.inf, -np.inf
    return x


CASES += [
    case("amax", lambda d: (d.n(3, 4),), axis=1), case("amin", lambda d: (d.n(2, 3, 4),), axis=(0, 2), keepdims=True),
    case("average", lambda d: (d.n(3, 4),)), case("average", lambda d: (d.n(3, 4),), axis=1),
    case("average", lambda d: (d.n(3, 4),), axis=-1, weights=np.array([0.5, 1.0, 2.0, 0.25])),
    case("divide_no_nan", lambda d: (d.n(3, 4), d.away(4) * np.array([1, 0, 1, 0], d.dtype))),
    case("logaddexp", lambda d: (d.n(3, 4) * 30, d.n(4))), case("arctan2", lambda d: (d.n(3, 4), d.n(4))),
    case("mod", lambda d: (d.n(3, 4) * 3, d.away(4))), case("mod", lambda d: (np.arange(-6, 6).reshape(3, 4), 4)),
    case("outer", lambda d: (d.n(3), d.n(4))), case("outer", lambda d: (d.n(2, 2), d.n(3))),
    case("nan_to_num", lambda d: (_with_bad_numbers(d),)),
    case("nan_to_num", lambda d: (_with_bad_numbers(d),), nan=0.5, posinf=2.0, neginf=-3.0),
    case("norm", lambda d: (d.n(3, 4),)), case("norm", lambda d: (d.n(3, 4),), axis=1),
    case("norm", lambda d: (d.n(3, 4),), ord=1, axis=0), case("norm", lambda d: (d.n(3, 4),), ord=np.inf, axis=-1),
    case("norm", lambda d: (d.n(3, 4),), ord=3, axis=1, keepdims=True),
    case("norm", lambda d: (d.n(3, 4),), ord=0, axis=1), case("norm", lambda d: (d.n(3, 4),), ord="fro"),
    case("norm", lambda d: (d.n(3, 4),), ord=1), case("norm", lambda d: (d.n(2, 3, 4),), ord=-np.inf, axis=(1, 2)),
    case("norm", lambda d: (d.n(2, 3, 4),), ord=np.inf, axis=(2, 0), keepdims=True),
    case("normalize", lambda d: (d.n(3, 4),)), case("normalize", lambda d: (d.n(3, 4),), axis=0, order=1),
    case("moments", lambda d: (d.n(2, 3, 4), [0, 1])), case("moments", lambda d: (d.n(2, 3, 4), 2), keepdims=True),
    case("depth_to_space", lambda d: (d.n(2, 3, 3, 8), 2)),
    case("depth_to_space", lambda d: (d.n(2, 8, 3, 2), 2), data_format="channels_first"),
    case("space_to_depth", lambda d: (d.n(2, 4, 6, 3), 2)),
    case("space_to_depth", lambda d: (d.n(2, 3, 4, 6), 2), data_format="channels_first"),
    case("one_hot", lambda d: (np.array([0, 2, -1, 1]), 3)),
    case("one_hot", lambda d: (np.array([[0, 2], [1, 1]]), 3), axis=0, dtype="int32"),
    case("take_along_axis", lambda d: (d.n(3, 4), np.array([[0, 3], [1, -1], [2, 0]])), axis=1),
    case("take_along_axis", lambda d: (d.n(3, 4), np.array([5, 0, 11]))),
    case("top_k", lambda d: (d.n(3, 5), 2)), case("unstack", lambda d: (d.n(3, 4),)),
    case("unstack", lambda d: (d.n(3, 4),), axis=1), case("slice", lambda d: (d.n(4, 5), (1, 2), (2, 3))),
    case("hstack", lambda d: ([d.n(2, 3), d.n(2, 1)],)), case("vstack", lambda d: ([d.n(2, 3), d.n(3)],)),
    case("glu", lambda d: (d.n(3, 4),)), case("threshold", lambda d: (d.n(3, 4), 0.2, -1.0)),
    case("binary_crossentropy", lambda d: (_probabilities(d, 3, 4), _probabilities(d, 3, 4))),
    case("binary_crossentropy", lambda d: (_probabilities(d, 3, 4), d.n(3, 4) * 3), from_logits=True),
    case("categorical_crossentropy", lambda d: (_probabilities(d, 3, 4), _probabilities(d, 3, 4))),
    case("categorical_crossentropy", lambda d: (_probabilities(d, 4, 3), d.n(4, 3)), from_logits=True, axis=0),
    case("sparse_categorical_crossentropy", lambda d: (np.array([0, 2, 1]), _probabilities(d, 3, 3))),
    case("sparse_categorical_crossentropy", lambda d: (np.array([3, 0]), d.n(2, 4)), from_logits=True),
    case("erf", lambda d: (d.n(3, 4),)),
    case("max_pool", lambda d: (d.n(2, 6, 6, 3), 2)), case("max_pool", lambda d: (d.n(2, 6, 6, 3), 3, 2, "same")),
    case("max_pool", lambda d: (d.n(2, 7, 3), 3, 1, "same")),
    # Keras on torch counts the zeros it pads itself (asymmetric "same" padding) in an average; convscope, as
    # TensorFlow and Keras' documentation, averages the real cells only: the cases below pad symmetrically
    case("average_pool", lambda d: (d.n(2, 6, 6, 3), 2)), case("average_pool", lambda d: (d.n(2, 7, 3), 3, 1, "same")),
    case("depthwise_conv", lambda d: (d.n(2, 6, 6, 3), d.n(3, 3, 3, 2)), strides=2, padding="same"),
    case("depthwise_conv", lambda d: (d.n(2, 7, 3), d.n(3, 3, 2))),
    case("depthwise_conv", lambda d: (d.n(2, 6, 6, 3), d.n(3, 3, 3, 1)), dilation_rate=2),
    case("separable_conv", lambda d: (d.n(2, 6, 6, 3), d.n(3, 3, 3, 2), d.n(1, 1, 6, 4)), padding="same"),
    case("conv_transpose", lambda d: (d.n(2, 5, 5, 3), d.n(3, 3, 4, 3), 2, "same")),
    case("conv_transpose", lambda d: (d.n(2, 5, 5, 3), d.n(3, 3, 4, 3), 2, "valid"), output_padding=1),
    case("conv_transpose", lambda d: (d.n(2, 7, 3), d.n(3, 4, 3), 2, "same")),
    case("copy", lambda d: (d.n(3, 4),)), case("array", lambda d: (d.n(3, 4),)),
    case("array", lambda d: ([1, 2, 3],), dtype="float32"),
    case("isclose", lambda d: (d.n(3, 4), d.n(4))), case("allclose", lambda d: (d.n(3, 4), d.n(3, 4))),
    case("logical_xor", lambda d: (d.n(3, 4) > 0, d.n(4) > 0)),
    case("deg2rad", lambda d: (d.n(3, 4) * 90,)), case("rad2deg", lambda d: (d.n(3, 4),)),
    case("hypot", lambda d: (d.n(3, 4), d.n(4))), case("append", lambda d: (d.n(3, 4), d.n(2, 2))),
    case("append", lambda d: (d.n(3, 4), d.n(2, 4)), axis=0),
    case("diagonal", lambda d: (d.n(3, 4, 5),)), case("diagonal", lambda d: (d.n(3, 4, 5), -1, 2, 1)),
    case("trace", lambda d: (d.n(4, 5),)), case("trace", lambda d: (d.n(3, 4, 5), 1, 1, 2)),
    case("quantile", lambda d: (d.n(3, 4, 5), [0.1, 0.5, 0.93]), axis=(0, 2)),
    case("quantile", lambda d: (d.n(3, 4, 5), 0.3), axis=1, method="lower"),
    case("quantile", lambda d: (d.n(3, 4, 5), 0.3), axis=1, method="higher"),
    case("quantile", lambda d: (d.n(3, 4, 5), 0.25), axis=2, method="midpoint"),
    case("quantile", lambda d: (d.n(3, 4, 5), [0.35, 0.5]), axis=2, method="nearest", keepdims=True),
    case("percentile", lambda d: (d.n(3, 4, 5), [10, 90]), axis=0), case("median", lambda d: (d.n(3, 4, 5),)),
    case("median", lambda d: (d.n(3, 4, 5), 1), keepdims=True),
    case("median", lambda d: (np.arange(12).reshape(3, 4),), axis=1),
]


def test_shape_ndim_and_size_are_keras():
    x = np.zeros((2, 3, 4), np.float32)
    assert ops.shape(x) == tuple(keras.ops.shape(x)) == (2, 3, 4)
    assert ops.ndim(x) == keras.ops.ndim(x) == 3 and ops.size(x) == int(keras.ops.size(x)) == 24


def as_numpy(value):
    if isinstance(value, (list, tuple)):
        return [as_numpy(v) for v in value]
    return np.asarray(keras.ops.convert_to_numpy(value))


def expected_dtype(name, theirs, args):
    """Keras' dtype, except float64 kept where Keras on torch makes it float32 (asserted)."""
    float64_in = any(getattr(a, "dtype", None) == np.float64 for a in _flat(args))
    if name in KERAS_TORCH_FLOAT32 and float64_in:
        assert theirs == np.float32, f"keras.ops.{name} now keeps float64: drop it from KERAS_TORCH_FLOAT32"
        return np.dtype(np.float64)
    return theirs


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a


def assert_same(ours, theirs, dtype, loose=False):
    assert type(ours) is np.ndarray
    assert ours.dtype == dtype, f"dtype {ours.dtype}, expected {dtype}"
    assert ours.shape == theirs.shape
    if ours.dtype.kind == "f":
        rtol = TOLERANCE["float32" if theirs.dtype == np.float32 or loose else "float64"]
        scale = max(1.0, float(np.nanmax(np.abs(theirs), initial=0.0)))
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)
    else:
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, build, kwargs", CASES)
def test_forward_matches_keras(name, build, kwargs, dtype):
    args = build(Draw(dtype))
    ours = getattr(ops, name)(*args, **kwargs)
    if name in ("stop_gradient", "unstack"):     # Keras' take tensors only
        args = [keras.ops.convert_to_tensor(a) for a in args]
    theirs = as_numpy(getattr(keras.ops, name)(*args, **kwargs))
    if isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs)
        for mine, reference in zip(ours, theirs):
            assert_same(mine, reference, expected_dtype(name, reference.dtype, args))
    else:
        assert_same(ours, theirs, expected_dtype(name, theirs.dtype, args), loose=name in KERAS_TORCH_FLOAT32_MATH)


def test_every_function_has_a_forward_case():
    assert {p.values[0] for p in CASES} == set(KERAS_FUNCTIONS)


A = {name: np.ones((2, 3), dtype=name) for name in ("bool", "int8", "uint8", "int32", "int64", "float32", "float64")}

DTYPE_CASES = [
    ("add", A["float32"], 2.5), ("add", A["float32"], 2), ("add", A["int32"], 2.5), ("add", A["int64"], 2),
    ("add", A["float64"], np.float32(2)), ("add", A["float32"], np.float64(2.0)), ("add", 2, 3), ("add", 2.0, 3),
    ("add", [1.0, 2.0], 3), ("add", [1, 2], 3), ("add", A["bool"], 2), ("add", A["bool"], True),
    ("add", A["int32"], A["float32"]), ("add", A["int8"], A["uint8"]), ("add", A["int64"], A["float32"]),
    ("add", A["float32"], A["float64"]), ("multiply", A["int32"], A["int64"]), ("subtract", A["float32"], 1),
    ("divide", A["int32"], A["int32"]), ("divide", A["int64"], 2), ("divide", A["float32"], 2),
    ("power", A["int32"], 2), ("power", A["int32"], 2.0), ("power", 2, A["int32"]), ("power", A["float32"], 2),
    ("maximum", A["int32"], 2.5), ("minimum", A["float32"], 2), ("maximum", A["float32"], A["float64"]),
    ("clip", A["bool"], 0, 1), ("clip", A["int32"], 0.0, 1.5), ("clip", A["float32"], 0, 1),
    ("where", A["bool"], A["int32"], 0.5), ("where", A["bool"], 1, 2.5), ("where", A["bool"], 1, 2),
    ("where", A["bool"], A["float32"], A["float64"]),
    ("sqrt", A["int32"]), ("exp", A["int64"]), ("mean", A["int64"]), ("sum", A["int8"]), ("sum", A["bool"]),
    ("sum", A["int64"]), ("prod", A["int8"]), ("square", A["bool"]), ("abs", A["int32"]),
    ("negative", A["int8"]), ("argmax", A["float32"]), ("relu", A["int8"]), ("sigmoid", A["int32"]),
    ("softsign", A["int32"]), ("tanh", A["int32"]), ("max", A["int32"]), ("sqrt", 4), ("exp", 1.0),
    ("zeros_like", [1.0]), ("ones_like", A["int64"]), ("concatenate", [A["int32"], A["float32"]]),
    ("concatenate", [A["float32"], A["float64"]]), ("stack", [A["int64"], A["float32"]]),
    ("matmul", A["float32"], A["float32"].T), ("tensordot", A["float32"], A["float64"]),
]


@pytest.mark.parametrize("name, args", [pytest.param(c[0], c[1:], id=f"{c[0]}-{i}") for i, c in enumerate(DTYPE_CASES)])
def test_result_dtypes_follow_keras(name, args):
    if name in ("concatenate", "stack"):
        args = [args]
    ours = getattr(ops, name)(*args)
    theirs = as_numpy(getattr(keras.ops, name)(*args))
    assert_same(ours, theirs, expected_dtype(name, theirs.dtype, args))


@pytest.mark.parametrize("name", KERAS_FUNCTIONS)
def test_signatures_match_keras(name):
    ours = inspect.signature(getattr(ops, name)).parameters
    theirs = inspect.signature(getattr(keras.ops, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == \
           [(p.name, p.kind, p.default) for p in theirs.values()]


def test_where_with_a_condition_only_gives_the_indices():
    x = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    rows, cols = ops.where(x > 0)
    np.testing.assert_array_equal(rows, [0, 1, 1])
    np.testing.assert_array_equal(cols, [1, 0, 2])


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric", "wrap"])
@pytest.mark.parametrize("pad_width", [((2, 1), (3, 2)), 1, (1, 2)])
def test_pad_follows_numpy_where_keras_on_torch_differs(mode, pad_width):
    # keras.ops.pad on torch raises for edge/wrap, pads `symmetric` unlike np.pad, and takes an
    # int pad_width for the last axis only; Keras documents np.pad's meaning
    x = Draw("float64").n(3, 4)
    np.testing.assert_array_equal(ops.pad(x, pad_width, mode=mode), np.pad(x, pad_width, mode=mode))


@pytest.mark.parametrize("call, error, message", [
    (lambda: ops.reshape(np.zeros((2, 3)), (4, 2)), ValueError,
     r"ops.reshape: cannot reshape an array of shape \(2, 3\) into \(4, 2\)"),
    (lambda: ops.add(np.zeros((2, 3)), np.zeros(4)), ValueError,
     r"ops.add: cannot broadcast `x1` of shape \(2, 3\), `x2` of shape \(4,\) together"),
    (lambda: ops.matmul(np.zeros((2, 3)), np.zeros((4, 2))), ValueError,
     r"ops.matmul: cannot multiply `x1` of shape \(2, 3\) by `x2` of shape \(4, 2\)"),
    (lambda: ops.sum(np.zeros((2, 3)), axis=2), ValueError,
     r"ops.sum: axis 2 is out of range for an array of 2 dimension"),
    (lambda: ops.mean(np.zeros(3), axis=1.5), TypeError, r"ops.mean: argument `axis` must hold ints, got 1.5"),
    (lambda: ops.multiply("a", 2), TypeError, r"ops.multiply: argument `x1` must be an array, a number"),
    (lambda: ops.exp(np.array(["a"])), TypeError, r"ops.exp: argument `x` must be numeric, got dtype <U1"),
    (lambda: ops.squeeze(np.zeros((2, 3)), axis=1), ValueError, r"ops.squeeze: cannot squeeze axis 1 of an array"),
    (lambda: ops.transpose(np.zeros((2, 3)), (0, 0)), ValueError,
     r"ops.transpose: argument `axes` must be a permutation"),
    (lambda: ops.concatenate([np.zeros((2, 3)), np.zeros((2, 4))]), ValueError,
     r"ops.concatenate: cannot join shapes \[\(2, 3\), \(2, 4\)\] along axis 0"),
    (lambda: ops.stack([np.zeros(2), np.zeros(3)]), ValueError, r"ops.stack: all arrays must have one shape"),
    (lambda: ops.split(np.zeros(5), 2), ValueError, r"ops.split: cannot split length 5"),
    (lambda: ops.tensordot(np.zeros((2, 3)), np.zeros((2, 3)), axes=1), ValueError,
     r"ops.tensordot: cannot contract axes \[1\] of `x1` \(shape \(2, 3\)\) with axes \[0\]"),
    (lambda: ops.pad(np.zeros(3), 1, mode="linear_ramp"), ValueError, r"ops.pad: argument `mode` must be one of"),
    (lambda: ops.pad(np.zeros(3), 1, mode="reflect", constant_values=1), ValueError,
     r"ops.pad: argument `constant_values` needs mode='constant'"),
    (lambda: ops.where(np.ones(2, bool), np.zeros(2)), ValueError, r"ops.where: give both `x1` and `x2`, or neither"),
    (lambda: ops.flip(np.zeros((2, 3)), 5), ValueError, r"ops.flip: axis 5 is out of range for an array of 2"),
    (lambda: ops.roll(np.zeros(3), 1.5), TypeError, r"ops.roll: argument `shift` must be an int, got 1.5"),
    (lambda: ops.moveaxis(np.zeros((2, 3)), [0, 1], 0), ValueError,
     r"ops.moveaxis: arguments `source` and `destination` must name as many axes"),
    (lambda: ops.triu(np.zeros(3)), ValueError, r"ops.triu: argument `x` must have 2 or more axes, got shape \(3,\)"),
    (lambda: ops.tril(np.zeros((2, 2)), 1.5), TypeError, r"ops.tril: argument `k` must be an int, got 1.5"),
    (lambda: ops.logsumexp(np.zeros((2, 3)), (1, -1)), ValueError, r"ops.logsumexp: argument `axis` repeats an axis"),
    (lambda: ops.any(np.zeros((2, 3)), 4), ValueError, r"ops.any: axis 4 is out of range"),
    (lambda: ops.arange(0, 5, 0), ValueError, r"ops.arange: argument `step` must not be 0"),
    (lambda: ops.linspace(0, 1, -1), ValueError, r"ops.linspace: argument `num` must be >= 0, got -1"),
    (lambda: ops.round(np.zeros(2), 1.5), TypeError, r"ops.round: argument `decimals` must be an int, got 1.5"),
    (lambda: ops.take(np.zeros(3), [5]), ValueError, r"ops.take: index 5 is out of bounds"),
    (lambda: ops.max(np.zeros((0, 2))), ValueError, r"ops.max: an empty array \(shape \(0, 2\)\) has no max"),
    (lambda: ops.einsum("ij,jk", np.zeros((2, 3))), ValueError, r"ops.einsum: 'ij,jk' names 2 operand\(s\), got 1"),
    (lambda: ops.add([Variable(np.ones(2), "v"), 1.0], 1.0), TypeError, r"ops.add: argument `x1` is a list holding"),
])
def test_errors_name_the_function_and_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- Variable arithmetic (outside a tape: arrays, as keras.Variable) ---------------------------
def test_variable_operators_return_arrays_as_keras():
    draw = Draw("float32")
    value, other = draw.pos(3, 4), draw.pos(3, 4)
    v = Variable(value.copy(), "w")
    kv = keras.Variable(value.copy())
    pairs = [
        (v + other, kv + other), (other + v, other + kv), (v - 1.5, kv - 1.5), (2 - v, 2 - kv),
        (v * other, kv * other), (other * v, other * kv), (v / 2, kv / 2), (1 / v, 1 / kv),
        (v // 0.3, kv // 0.3), (v ** 2, kv ** 2), (2 ** v, 2 ** kv), (v @ other.T, kv @ other.T),
        (other.T @ v, other.T @ kv), (-v, -kv), (abs(-v), abs(-kv)), (v < 1, kv < 1), (v >= other, kv >= other),
        (v[1:, ::2], kv[1:, ::2]), (v[[0, 0, 2]], kv[[0, 0, 2]]),
    ]
    for ours, theirs in pairs:
        assert_same(ours, as_numpy(theirs), as_numpy(theirs).dtype)


def test_variables_stay_hashable_and_compare_by_identity():
    a, b = Variable(np.ones(2), "a"), Variable(np.ones(2), "b")
    assert a == a and a != b and b in [a, b] and {a: 1}[a] == 1
    np.testing.assert_array_equal(np.asarray(a), np.ones(2))
    with pytest.raises(TypeError):
        np.exp(a)         # __array_ufunc__ = None: ufuncs must go through ops (or np.asarray)


def test_new_names_do_not_replace_the_tf_nn_style_ops():
    from convscope.ops import conv, linear, padding, pooling
    assert ops.conv2d is conv.conv2d and ops.max_pool2d is pooling.max_pool2d
    assert ops.dense_forward is linear.dense_forward and ops.zero_pad2d is padding.zero_pad2d
    assert ops.erf is not ops.activations.erf     # Keras' ops.erf (on the tape, x's float type) over the helper


@pytest.mark.parametrize("name", ["erf", "erfc"])
def test_erf_and_erfc_keep_the_float_type_and_differentiate_as_torch(name):
    """Keras' ops.erf (and erfc beside it): float32 in, float32 out; on a tape its gradient, 2/√π · exp(-x²) (negated
    for erfc), as torch's autograd gives it (once a plain array that cut the gradient)."""
    torch = pytest.importorskip("torch")
    x = np.linspace(-3, 3, 13, dtype=np.float32)
    variable = Variable(x, "x")
    with ops.Tape() as tape:
        tape.watch(variable)
        y = getattr(ops, name)(variable)
        total = ops.sum(ops.multiply(y, np.arange(13, dtype=np.float32)))
    grad = tape.gradient(total, variable)
    t = torch.tensor(x, requires_grad=True)
    expected = getattr(torch, name)(t)
    (expected * torch.arange(13, dtype=torch.float32)).sum().backward()
    assert y.value.dtype == np.float32
    np.testing.assert_allclose(y.value, expected.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-5, atol=1e-6)
