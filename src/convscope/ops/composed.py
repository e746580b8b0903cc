"""More `keras.ops` functions custom layers reach for (Keras 3 names, arguments and defaults): norms and
normalizing, moments, pixel shuffles (depth_to_space, space_to_depth), one-hot, top-k and take_along_axis,
unstack and slice, stacking, the crossentropies of `keras.ops.nn`, and a few element-wise functions.

Most are written with the other ops, so an active `ops.Tape` differentiates them through those; the few with
a rule of their own (take_along_axis, mod, arctan2, nan_to_num, the 2-norm) record it as `numpy_api`'s do.  The
numbers and dtypes are Keras' on torch (its backend's formulas: the crossentropies clip to [1e-7, 1 - 1e-7]).
"""

from __future__ import annotations

import builtins

import numpy as np

from .. import backend
from . import nn_api, numpy_api as np_api, numpy_more
from .transposed_conv import conv2d_transpose
from .depthwise import depthwise_conv2d, separable_conv2d
from .pooling import avg_pool2d, max_pool2d
from .numpy_api import _axes, _elementwise, _one, _symbolic_dispatch, _unary
from .tape import Traced, record_node, stop_gradient
from ..variables import Variable

__all__ = [
    "amax", "amin", "average", "divide_no_nan", "logaddexp", "arctan2", "mod", "outer", "nan_to_num", "norm",
    "normalize", "moments", "depth_to_space", "space_to_depth", "one_hot", "take_along_axis", "top_k", "unstack",
    "slice", "hstack", "vstack", "glu", "threshold", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "max_pool", "average_pool", "depthwise_conv", "separable_conv",
    "conv_transpose", "copy", "array", "isclose", "allclose", "logical_xor", "deg2rad", "rad2deg", "hypot", "append",
    "diagonal", "trace", "quantile", "percentile", "median",
]

EPSILON = 1e-7          # Keras' backend.epsilon()


def _value(x) -> np.ndarray:
    return np.asarray(getattr(x, "value", x))


# -- reductions and element-wise ---------------------------------------------------------------------
def amax(x, axis=None, keepdims=False):
    """The largest value (Keras' alias of `max`)."""
    return np_api.max(x, axis=axis, keepdims=keepdims)


def amin(x, axis=None, keepdims=False):
    """The smallest value (Keras' alias of `min`)."""
    return np_api.min(x, axis=axis, keepdims=keepdims)


def average(x, axis=None, weights=None):
    """The mean, or with `weights` (x's shape, or 1-D along `axis`) sum(x · w) / sum(w) along `axis`."""
    x = x if isinstance(x, Traced) else np_api.cast(x, np.result_type(_value(x).dtype, np.float32))
    if weights is None:
        return np_api.mean(x, axis=axis)
    weights = weights if isinstance(weights, (Traced, Variable)) else np.asarray(weights, dtype=_value(x).dtype)
    shape, ndim = _value(x).shape, _value(x).ndim
    if np.ndim(_value(weights)) == 1 and ndim > 1:
        if axis is None or isinstance(axis, (list, tuple)):
            raise ValueError(f"ops.average: 1-D `weights` need one int `axis`, got axis={axis!r}")
        along = axis % ndim
        if np.shape(_value(weights))[0] != shape[along]:
            raise ValueError(f"ops.average: `weights` of length {np.shape(_value(weights))[0]} do not fit axis "
                             f"{axis} of x, shape {shape}")
        weights = np_api.reshape(weights, [shape[along] if i == along else 1 for i in range(ndim)])
        weights = np_api.broadcast_to(weights, shape)
    return np_api.divide(np_api.sum(np_api.multiply(x, weights), axis=axis), np_api.sum(weights, axis=axis))


def divide_no_nan(x1, x2):
    """x1 / x2, 0 where x2 is 0 (and no gradient through those)."""
    zero = np.equal(_value(x2), 0)
    safe = np_api.where(zero, np.ones((), _value(x2).dtype if _value(x2).dtype.kind == "f" else np.float32), x2)
    quotient = np_api.divide(x1, safe)
    return np_api.where(zero, np.zeros((), np.asarray(_value(quotient)).dtype), quotient)


def logaddexp(x1, x2):
    """log(exp(x1) + exp(x2)), without overflow."""
    x1, x2 = (np_api.cast(x, np.result_type(_value(x).dtype, np.float32)) if _value(x).dtype.kind != "f" else x
              for x in (x1, x2))
    top = stop_gradient(np_api.maximum(x1, x2))
    return np_api.add(top, np_api.log(np_api.add(np_api.exp(np_api.subtract(x1, top)),
                                                    np_api.exp(np_api.subtract(x2, top)))))


def arctan2(x1, x2):
    """The angle of (x2, x1); d/dx1 = x2 / r², d/dx2 = -x1 / r²."""
    return _elementwise("arctan2", (x1, x2), np.arctan2,
                        lambda a, b, y: lambda g, need: (g * b / (a * a + b * b), -g * a / (a * a + b * b)),
                        floating=True)


def mod(x1, x2):
    """The remainder with the divisor's sign (Python's, torch's remainder); d/dx1 = 1, d/dx2 = -floor(x1 / x2)."""
    return _elementwise("mod", (x1, x2), np.remainder,
                        lambda a, b, y: lambda g, need: (g, -g * np.floor(a / b)))


def outer(x1, x2):
    """The outer product of the flattened x1 and x2."""
    return np_api.multiply(np_api.reshape(x1, (-1, 1)), np_api.reshape(x2, (1, -1)))


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN -> `nan`, infinities -> `posinf`/`neginf` (the dtype's largest by default); no gradient through them."""
    return _unary("nan_to_num", x, lambda v: np.nan_to_num(v, nan=nan, posinf=posinf, neginf=neginf),
                  lambda v, y: lambda g, need: (np.where(np.isfinite(v), g, 0).astype(g.dtype),), floating=False)


# -- norms ---------------------------------------------------------------------------------------------
def norm(x, ord=None, axis=None, keepdims=False):
    """torch.linalg.norm's vector norms (an int `axis`, or None: the flattened x) of any `ord`, and matrix norms (a
    2-tuple `axis`) "fro", 1, -1, inf and -inf; the SVD ones (2, -2, "nuc") are refused by name."""
    value = _one(x, "norm", floating=True)
    if axis is None:
        if ord is not None and value.ndim == 2 and ord in ("fro", 1, -1, np.inf, -np.inf, 2, -2, "nuc"):
            return norm(x, ord, (0, 1), keepdims)
        result = _vector_norm(np_api.reshape(x, (-1,)) if value.ndim != 1 else x, ord, 0, False)
        return np_api.reshape(result, (1,) * value.ndim) if keepdims else result
    axes = _axes(axis, value.ndim, "norm")
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) != 2:
        raise ValueError(f"ops.norm: argument `axis` must be an int or a pair of ints, got {axis!r}")
    return _matrix_norm(x, ord, axis if isinstance(axis, (list, tuple)) else axes, keepdims)


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return _two_norm(x, axis, keepdims)
    size = np_api.abs(x)
    if ord == np.inf:
        return np_api.max(size, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return np_api.min(size, axis=axis, keepdims=keepdims)
    if ord == 0:
        return np_api.sum(np_api.cast(np.not_equal(_value(x), 0), _value(size).dtype), axis=axis, keepdims=keepdims)
    if isinstance(ord, str) or isinstance(ord, bool) or not isinstance(ord, (int, float, np.integer, np.floating)):
        raise ValueError(f"ops.norm: argument `ord` must be a number or inf for a vector norm, got {ord!r}")
    if ord == 1:
        return np_api.sum(size, axis=axis, keepdims=keepdims)
    return np_api.power(np_api.sum(np_api.power(size, float(ord)), axis=axis, keepdims=keepdims), 1.0 / ord)


def _two_norm(x, axis, keepdims):
    """sqrt(sum(x²)); its gradient x / norm, 0 where the norm is 0 (torch's subgradient)."""
    value = _one(x, "norm", floating=True)
    out = np.sqrt(np.sum(np.square(value), axis=axis, keepdims=keepdims))

    def rule(g, need):
        kept = out if keepdims else np.expand_dims(out, axis)
        grad = g if keepdims else np.expand_dims(g, axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.where(kept > 0, grad * value / kept, 0).astype(value.dtype),)
    return record_node("norm", (x,), np.asarray(out), rule)


def _matrix_norm(x, ord, axis, keepdims):
    rows, columns = (a % _value(x).ndim for a in axis)
    size = np_api.abs(x)
    if ord is None or ord == "fro":
        return np_api.sqrt(np_api.sum(np_api.square(x), axis=(rows, columns), keepdims=keepdims))
    if ord in (1, -1, np.inf, -np.inf):
        summed, over = (rows, columns) if ord in (1, -1) else (columns, rows)
        sums = np_api.sum(size, axis=summed, keepdims=True)
        pick = np_api.max if ord in (1, np.inf) else np_api.min
        result = pick(sums, axis=over, keepdims=True)
        return result if keepdims else np_api.squeeze(result, axis=(rows, columns))
    raise ValueError(f"ops.norm: matrix norm ord={ord!r} is not supported (it needs an SVD); use 'fro', 1, -1, "
                     "inf or -inf")


def normalize(x, axis=-1, order=2, epsilon=None):
    """x / max(norm(x, order, axis), epsilon) (epsilon: Keras' 1e-7 by default)."""
    denominator = np_api.maximum(norm(x, ord=order, axis=axis, keepdims=True), EPSILON if epsilon is None else epsilon)
    return np_api.divide(x, denominator)


def moments(x, axes, keepdims=False, synchronized=False):
    """(mean, variance) over `axes`, variance as Keras computes it: mean(x²) - mean²; `synchronized` (across
    devices) changes nothing on one process."""
    mean = np_api.mean(x, axis=axes, keepdims=True)
    variance = np_api.subtract(np_api.mean(np_api.square(x), axis=axes, keepdims=True), np_api.square(mean))
    if not keepdims:
        mean, variance = np_api.squeeze(mean, axis=axes), np_api.squeeze(variance, axis=axes)
    return mean, variance


# -- rearranging ---------------------------------------------------------------------------------------------
def _blocks(x, block_size, data_format, fn):
    value = _value(x)
    if value.ndim != 4:
        raise ValueError(f"ops.{fn}: argument `x` must be 4-D (batch, two spatial axes, channels), got shape "
                         f"{value.shape}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 2:
        raise ValueError(f"ops.{fn}: argument `block_size` must be an int of at least 2, got {block_size!r}")
    return value.shape, int(block_size), backend.standardize_data_format(data_format, f"ops.{fn}")


def depth_to_space(x, block_size, data_format="channels_last"):
    """Channels into blocks of pixels (a pixel shuffle): (N, H, W, C) -> (N, H·b, W·b, C / b²)."""
    (n, a, b, c), size, data_format = _blocks(x, block_size, data_format, "depth_to_space")
    if data_format == "channels_last":
        if c % (size * size):
            raise ValueError(f"ops.depth_to_space: the {c} channels are not a multiple of block_size² = {size * size}")
        new = c // (size * size)
        x = np_api.transpose(np_api.reshape(x, (n, a, b, size, size, new)), (0, 1, 3, 2, 4, 5))
        return np_api.reshape(x, (n, a * size, b * size, new))
    if a % (size * size):
        raise ValueError(f"ops.depth_to_space: the {a} channels are not a multiple of block_size² = {size * size}")
    new = a // (size * size)
    x = np_api.transpose(np_api.reshape(x, (n, new, size, size, b, c)), (0, 1, 4, 2, 5, 3))
    return np_api.reshape(x, (n, new, b * size, c * size))


def space_to_depth(x, block_size, data_format="channels_last"):
    """Blocks of pixels into channels, `depth_to_space` undone: (N, H, W, C) -> (N, H / b, W / b, C · b²)."""
    (n, a, b, c), size, data_format = _blocks(x, block_size, data_format, "space_to_depth")
    height, width = (a, b) if data_format == "channels_last" else (b, c)
    if height % size or width % size:
        raise ValueError(f"ops.space_to_depth: the spatial size {height}x{width} is not a multiple of block_size "
                         f"{size}")
    if data_format == "channels_last":
        x = np_api.transpose(np_api.reshape(x, (n, a // size, size, b // size, size, c)), (0, 1, 3, 2, 4, 5))
        return np_api.reshape(x, (n, a // size, b // size, c * size * size))
    x = np_api.transpose(np_api.reshape(x, (n, a, b // size, size, c // size, size)), (0, 1, 3, 5, 2, 4))
    return np_api.reshape(x, (n, a * size * size, b // size, c // size))


def unstack(x, num=None, axis=0):
    """The slices of x along `axis`, as a list."""
    length = _value(x).shape[axis]
    if num is not None and num != length:
        raise ValueError(f"ops.unstack: argument `num` is {num} but axis {axis} of x has length {length}")
    return [np_api.take(x, i, axis=axis) for i in range(length)]


def slice(inputs, start_indices, shape):
    """inputs[start : start + shape] on every axis (Keras' `ops.slice`)."""
    value = _value(inputs)
    if len(start_indices) != value.ndim or len(shape) != value.ndim:
        raise ValueError(f"ops.slice: `start_indices` and `shape` need one entry per axis of inputs ({value.ndim}), "
                         f"got {len(start_indices)} and {len(shape)}")
    index = tuple(builtins.slice(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))
    return inputs[index]


def hstack(xs):
    """Concatenated along axis 1 (axis 0 for 1-D arrays), as numpy's hstack."""
    return np_api.concatenate(list(xs), axis=0 if np.ndim(_value(xs[0])) == 1 else 1)


def vstack(xs):
    """Concatenated along axis 0, 1-D arrays as rows, as numpy's vstack."""
    return np_api.concatenate([np_api.reshape(x, (1, -1)) if np.ndim(_value(x)) == 1 else x for x in xs], axis=0)


def take_along_axis(x, indices, axis=None):
    """x's values at `indices` along `axis` (None: the flattened x), negative indices from the end; the gradient
    adds each picked value's gradient back where it came from."""
    value = _one(x, "take_along_axis")
    index = np.asarray(_value(indices)).astype(np.int64)
    source = value.reshape(-1) if axis is None else value
    along = 0 if axis is None else axis % value.ndim
    index = np.where(index < 0, index + source.shape[along], index)
    out = np.take_along_axis(source, index, axis=along)
    index = np.broadcast_to(index, out.shape)         # the other axes broadcast against x's

    def rule(g, need):
        grad = np.zeros(source.shape, dtype=g.dtype)
        grid = list(np.indices(index.shape, sparse=True))
        grid[along] = index
        np.add.at(grad, tuple(np.broadcast_arrays(*grid)), g)
        return (grad.reshape(value.shape),)
    return record_node("take_along_axis", (x,), out, rule)


def top_k(x, k, sorted=True):
    """(the k largest values along the last axis, their indices), the largest first (ties: the first index)."""
    value = _value(x)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k <= value.shape[-1]:
        raise ValueError(f"ops.top_k: argument `k` must be an int in [1, {value.shape[-1]}], got {k!r}")
    indices = np.argsort(-value, axis=-1, kind="stable")[..., :k]
    return take_along_axis(x, indices, axis=-1), indices.astype(np.int64)


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Class indices as one-hot vectors along a new `axis`; a negative index gives a row of zeros."""
    if sparse:
        raise ValueError("ops.one_hot: argument `sparse=True` is not supported (convscope has no sparse arrays)")
    labels = np.asarray(_value(x)).astype(np.int64)
    out = (labels[..., None] == np.arange(int(num_classes))).astype(backend.floatx() if dtype is None else dtype)
    return np.moveaxis(out, -1, axis) if axis not in (-1, labels.ndim) else out


# -- more of numpy's: copies, comparisons, angles, diagonals, quantiles ------------------------------------
def copy(x):
    """A copy of x (the identity on a tape)."""
    return _unary("copy", x, lambda v: v.copy(), lambda v, y: lambda g, need: (g,), floating=False)


def array(x, dtype=None):
    """x as an array (of `dtype`), as Keras' `ops.array`."""
    return np_api.convert_to_tensor(x, dtype)


def isclose(x1, x2, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|x1 - x2| <= atol + rtol · |x2|, element by element (no gradient)."""
    return np.isclose(_value(x1), _value(x2), rtol=rtol, atol=atol, equal_nan=equal_nan)


def allclose(x1, x2, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether `isclose` holds everywhere."""
    return np.asarray(np.allclose(_value(x1), _value(x2), rtol=rtol, atol=atol, equal_nan=equal_nan))


def logical_xor(x1, x2):
    """x1 xor x2, as booleans."""
    return np.logical_xor(_value(x1), _value(x2))


def deg2rad(x):
    """Degrees as radians: x · π / 180."""
    return _unary("deg2rad", x, np.deg2rad, lambda v, y: lambda g, need: (g * (np.pi / 180),))


def rad2deg(x):
    """Radians as degrees: x · 180 / π."""
    return _unary("rad2deg", x, np.rad2deg, lambda v, y: lambda g, need: (g * (180 / np.pi),))


def hypot(x1, x2):
    """sqrt(x1² + x2²), without overflow; d/dx1 = x1 / hypot."""
    return _elementwise("hypot", (x1, x2), np.hypot, lambda a, b, y: lambda g, need: (g * a / y, g * b / y),
                        floating=True)


def append(x1, x2, axis=None):
    """x2 after x1 along `axis` (None: both flattened)."""
    if axis is None:
        return np_api.concatenate([np_api.reshape(x1, (-1,)), np_api.reshape(x2, (-1,))], axis=0)
    return np_api.concatenate([x1, x2], axis=axis)


def diagonal(x, offset=0, axis1=0, axis2=1):
    """The diagonal of the (axis1, axis2) planes, `offset` above the main one, as the last axis (numpy's)."""
    value = _one(x, "diagonal")
    out = np.diagonal(value, offset, axis1, axis2).copy()

    def rule(g, need):
        moved = np.zeros(np.moveaxis(value, (axis1, axis2), (-2, -1)).shape, g.dtype)
        count = out.shape[-1]
        moved[..., np.arange(count) + max(-offset, 0), np.arange(count) + max(offset, 0)] = g
        return (np.moveaxis(moved, (-2, -1), (axis1, axis2)),)
    return record_node("diagonal", (x,), out, rule)


def trace(x, offset=0, axis1=0, axis2=1):
    """The sum of `diagonal`."""
    return np_api.sum(diagonal(x, offset, axis1, axis2), axis=-1)


_QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def quantile(x, q, axis=None, method="linear", keepdims=False):
    """The q-th quantiles (q in [0, 1], a number or 1-D) along `axis` (None: all), numpy's methods; q's axis
    first.  On a tape through a sort and a pick (numpy's, torch's gradients)."""
    if method not in _QUANTILE_METHODS:
        raise ValueError(f"ops.quantile: argument `method` must be one of {_QUANTILE_METHODS}, got {method!r}")
    value = _one(x, "quantile", floating=True)
    qs = np.asarray(q, dtype=np.float64)
    if qs.ndim > 1 or np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"ops.quantile: argument `q` must be a number or a 1-D array in [0, 1], got {q!r}")
    axes = tuple(range(value.ndim)) if axis is None else _axes(axis, value.ndim, "quantile")
    kept = [a for a in range(value.ndim) if a not in axes]
    x = x if isinstance(x, (Traced, Variable)) else value
    moved = np_api.transpose(np_api.cast(x, value.dtype), kept + list(axes))
    flat = np_api.reshape(moved, tuple(value.shape[a] for a in kept) + (-1,))
    ordered = numpy_more.sort(flat, axis=-1)
    position = qs.reshape(-1) * (int(np.prod([value.shape[a] for a in axes])) - 1)
    low, high = np.floor(position).astype(np.int64), np.ceil(position).astype(np.int64)
    if method == "lower":
        result = np_api.take(ordered, low, axis=-1)
    elif method == "higher":
        result = np_api.take(ordered, high, axis=-1)
    elif method == "nearest":
        result = np_api.take(ordered, np.around(position).astype(np.int64), axis=-1)
    else:
        weight = (position - low if method == "linear" else np.full(position.shape, 0.5)).astype(value.dtype)
        result = np_api.add(np_api.multiply(np_api.take(ordered, low, axis=-1), 1 - weight),
                            np_api.multiply(np_api.take(ordered, high, axis=-1), weight))
    if keepdims:
        shape = [1 if a in axes else value.shape[a] for a in range(value.ndim)]
        result = np_api.reshape(numpy_more.moveaxis(result, -1, 0), (len(position),) + tuple(shape))
    else:
        result = numpy_more.moveaxis(result, -1, 0)
    return np_api.squeeze(result, axis=0) if qs.ndim == 0 else result


def percentile(x, q, axis=None, method="linear", keepdims=False):
    """`quantile` with q in percent."""
    return quantile(x, np.asarray(q, dtype=np.float64) / 100.0, axis, method, keepdims)


def median(x, axis=None, keepdims=False):
    """The 0.5 quantile."""
    return quantile(x, 0.5, axis, "linear", keepdims)


# -- keras.ops.nn's poolings and convolutions (1-D and 2-D), on the tf.nn-style ops ---------------------
def _window_args(inputs, pool_or_kernel, strides, padding, data_format, fn):
    """(inputs as 2-D images, window, strides, padding, tf.nn data format, whether the inputs were 1-D)."""
    value = _value(inputs)
    if value.ndim not in (3, 4):
        raise ValueError(f"ops.{fn}: argument `inputs` must be 3-D (1-D signals) or 4-D (images), got shape "
                         f"{value.shape}; 3-D volumes are not supported here")
    if padding not in ("valid", "same"):
        raise ValueError(f"ops.{fn}: argument `padding` must be 'valid' or 'same', got {padding!r}")
    last = backend.standardize_data_format(backend.image_data_format() if data_format is None else data_format,
                                           f"ops.{fn}") == "channels_last"
    one_d = value.ndim == 3
    if one_d:                                   # (N, L, C) as (N, 1, L, C): a row of one pixel's height
        inputs = np_api.expand_dims(inputs, 1 if last else 2)
    window = None if pool_or_kernel is None else _per_axis(pool_or_kernel, one_d, "pool_size", fn)
    stride = _per_axis(strides if strides is not None else pool_or_kernel, one_d, "strides", fn)
    return inputs, window, stride, padding.upper(), "NHWC" if last else "NCHW", one_d, last


def _per_axis(value, one_d: bool, arg: str, fn: str, lead: int = 1):
    """An int or one int per spatial axis as the 2-D ops take it: a 1-D op's led by `lead` (its row axis)."""
    spatial = 1 if one_d else 2
    items = (value,) * spatial if isinstance(value, (int, np.integer)) else tuple(value)
    if len(items) != spatial:
        raise ValueError(f"ops.{fn}: argument `{arg}` must be an int or {spatial} ints, got {value!r}")
    return ((lead,) + items) if one_d else items


def _unrow(out, one_d, last):
    return np_api.squeeze(out, axis=1 if last else 2) if one_d else out


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Keras' `ops.max_pool` of 1-D or 2-D inputs: the largest value of each window."""
    x, window, stride, pad, fmt, one_d, last = _window_args(inputs, pool_size, strides, padding, data_format,
                                                            "max_pool")
    return _unrow(max_pool2d(x, window, stride, pad, fmt), one_d, last)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Keras' `ops.average_pool` of 1-D or 2-D inputs: the mean of each window's real (unpadded) cells."""
    x, window, stride, pad, fmt, one_d, last = _window_args(inputs, pool_size, strides, padding, data_format,
                                                            "average_pool")
    return _unrow(avg_pool2d(x, window, stride, pad, fmt), one_d, last)


def _as_2d_kernel(kernel, one_d):
    return np_api.expand_dims(kernel, 0) if one_d else kernel


def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Keras' `ops.depthwise_conv` of 1-D or 2-D inputs: kernel (spatial..., in, multiplier)."""
    x, _, stride, pad, fmt, one_d, last = _window_args(inputs, None, strides, padding, data_format, "depthwise_conv")
    out = depthwise_conv2d(x, _as_2d_kernel(kernel, one_d), stride, pad, fmt,
                           _per_axis(dilation_rate, one_d, "dilation_rate", "depthwise_conv"))
    return _unrow(out, one_d, last)


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """Keras' `ops.separable_conv`: `depthwise_conv`, then a 1×1 convolution by `pointwise_kernel`."""
    x, _, stride, pad, fmt, one_d, last = _window_args(inputs, None, strides, padding, data_format, "separable_conv")
    out = separable_conv2d(x, _as_2d_kernel(depthwise_kernel, one_d), _as_2d_kernel(pointwise_kernel, one_d), stride,
                           pad, fmt, _per_axis(dilation_rate, one_d, "dilation_rate", "separable_conv"))
    return _unrow(out, one_d, last)


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """Keras' `ops.conv_transpose` of 1-D or 2-D inputs: kernel (spatial..., out, in); the output's size by Keras'
    Conv2DTranspose rule (with `output_padding`)."""
    x, _, stride, pad, fmt, one_d, last = _window_args(inputs, None, strides, padding, data_format, "conv_transpose")
    extra = None if output_padding is None else _per_axis(output_padding, one_d, "output_padding", "conv_transpose",
                                                          lead=0)
    out = conv2d_transpose(x, _as_2d_kernel(kernel, one_d), None, stride, pad, fmt,
                           _per_axis(dilation_rate, one_d, "dilation_rate", "conv_transpose"), extra)
    return _unrow(out, one_d, last)


# -- activations and losses of keras.ops.nn -------------------------------------------------------------
def glu(x, axis=-1):
    """a · sigmoid(b), a and b the halves of x along `axis`."""
    a, b = np_api.split(x, 2, axis=axis)
    return np_api.multiply(a, nn_api.sigmoid(b))


def threshold(x, threshold, default_value):
    """x where x > threshold, else `default_value`."""
    return np_api.where(np.greater(_value(x), threshold), x, np.asarray(default_value, _value(x).dtype))


def binary_crossentropy(target, output, from_logits=False):
    """Element by element: -(t log p + (1 - t) log(1 - p)), p clipped to [1e-7, 1 - 1e-7]; from logits z:
    max(z, 0) - z t + log(1 + exp(-|z|))."""
    if from_logits:
        return np_api.add(np_api.subtract(np_api.maximum(output, 0.0), np_api.multiply(output, target)),
                          np_api.log1p(np_api.exp(np_api.negative(np_api.abs(output)))))
    p = np_api.clip(output, EPSILON, 1.0 - EPSILON)
    miss = np_api.multiply(np_api.subtract(1.0, target), np_api.log(np_api.subtract(1.0, p)))
    return np_api.negative(np_api.add(np_api.multiply(target, np_api.log(p)), miss))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """-sum(t · log p) along `axis`; probabilities are divided by their sum and clipped to [1e-7, 1 - 1e-7]."""
    if from_logits:
        log_prob = nn_api.log_softmax(output, axis=axis)
    else:
        p = np_api.divide(output, np_api.sum(output, axis=axis, keepdims=True))
        log_prob = np_api.log(np_api.clip(p, EPSILON, 1.0 - EPSILON))
    return np_api.negative(np_api.sum(np_api.multiply(target, log_prob), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """`categorical_crossentropy` of the one-hot integer labels `target`."""
    classes = _value(output).shape[axis]
    return categorical_crossentropy(one_hot(target, classes, axis=axis, dtype=_value(output).dtype), output,
                                    from_logits, axis)


_symbolic_dispatch(globals(), __all__)
