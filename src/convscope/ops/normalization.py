"""Batch normalization forward and backward over every axis except `axis`.

Training normalizes with the batch's mean and biased variance (as Keras);
inference uses the given moving statistics.  `gamma` or `beta` may be None
(Keras' scale=False / center=False); their gradients are then None.

Two paths compute the same values (to rounding), chosen through one ordered
list, `_PATHS`.  With `compiled.active()` (float32 and float64 inputs) each step
is one pass of a numba kernel over x viewed as rows x columns (column = one
channel at one position after `axis`; rows of fewer than `MIN_COLUMNS` values
taken several at a time, so the inner loop is long enough to vectorize): the
training forward pass reads x once for the statistics and once more to write y,
the backward pass reads (grad_y, x) once for the two per-channel sums and once
more to write grad_x.  The kernels accumulate sums in float64, around each
channel's first value (so the variance loses nothing to cancellation), take
x - mean in two parts (x - the mean rounded to x's dtype, exact near the mean,
then the rest per channel).  The rows go in blocks of about `CLAIM_BYTES` that the threads claim in
compiled code (`parallel.run_claimed`: no pool thread waits for the GIL); each block's sums are its
own row of partial sums, added in block order after, so the statistics have the same bits on any
number of threads.

The NumPy path is the reference and the fallback: per-channel sums are `einsum`
reductions (no temporary product array), and each chain of element-wise steps
runs over blocks of the leading axis of about `BLOCK_BYTES`, so a block's
intermediate values stay in the CPU cache between steps; the blocks are shared
among threads too (NumPy releases the GIL in element-wise loops).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import compiled
from .parallel import block_bounds, run_claimed, run_in_parallel
from .padding import check_numeric_array

if compiled.available():
    from .claims import claim_rows

BLOCK_BYTES = 2 ** 20  # NumPy chains run over blocks of the leading axis of about this size; the kernels
                       # leave arrays under this size on the calling thread
CLAIM_BYTES = 2 ** 18  # the kernels' blocks of rows, claimed by the threads
MIN_COLUMNS = 64       # the kernels take rows of fewer values (few channels, channels last) several at a time

__all__ = ["batch_norm_train", "batch_norm_infer", "batch_norm_affine", "batch_norm_backward",
           "batch_norm_infer_backward"]


def _channel_axis(x: np.ndarray, axis, op: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: argument `axis` must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: argument `axis` must be in [{-x.ndim}, {x.ndim - 1}] for x of shape "
                         f"{x.shape}, got {axis}")
    return int(axis) % x.ndim


def _check_epsilon(epsilon, op: str) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not epsilon > 0:
        raise ValueError(f"{op}: argument `epsilon` must be a positive float, got {epsilon!r}")
    return float(epsilon)


def _per_channel(value, name: str, x: np.ndarray, axis: int, op: str) -> Optional[np.ndarray]:
    """A (C,) parameter reshaped to broadcast against x (None stays None)."""
    if value is None:
        return None
    value = check_numeric_array(value, op, name, ndim=1)
    if value.shape[0] != x.shape[axis]:
        raise ValueError(f"{op}: argument `{name}` must have shape ({x.shape[axis]},) (the size of axis "
                         f"{axis} of x, shape {x.shape}), got {value.shape}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return value.astype(x.dtype, copy=False).reshape(shape)


def _prepare(x, axis, epsilon, op):
    x = check_numeric_array(x, op, "x")
    if x.ndim < 1:
        raise ValueError(f"{op}: argument `x` must have at least one axis, got a scalar")
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    axis = _channel_axis(x, axis, op)
    return x, axis, _check_epsilon(epsilon, op)


def _einsum_subscripts(ndim: int, axis: int) -> Tuple[str, str]:
    """einsum subscripts reducing every axis but `axis`: ("abcd->d", "abcd,abcd->d") for ndim 4, axis 3."""
    letters = "abcdefghijklmnopqrstuvwxyz"[:ndim]
    return f"{letters}->{letters[axis]}", f"{letters},{letters}->{letters[axis]}"


def _blocks(x: np.ndarray, axis: int) -> list:
    """Index tuples splitting axis 0 into blocks of about `BLOCK_BYTES` (one block if axis 0 is the channel axis)."""
    if axis == 0 or x.ndim == 0 or x.shape[0] == 0:
        return [(slice(None),)]
    row_bytes = max(x.nbytes // x.shape[0], 1)
    step = max(1, BLOCK_BYTES // row_bytes)
    return [(slice(start, start + step),) for start in range(0, x.shape[0], step)]


# -- compiled kernels on x as C-contiguous rows x columns, with per-column parameters ---------------------
# Each takes the blocks of rows bounds[k]..bounds[k + 1] it claims from `counter` (`claims.claim_rows`); a sums
# kernel adds a block up in arrays of its own (not in rows of a shared array, whose lines two threads would
# write at every row: measurements, benchmarks/README.md, 'Measurements behind the code's choices') and writes
# them to row k of its (blocks, columns) outputs.
@compiled.kernel
def _shifted_sums(x, shift, sums, squares, counter, bounds):
    """Each block's per-column sum(x - shift) into `sums` and sum((x - shift)**2) into `squares` (float64).

    `shift` (float64) holds a value of each column's channel: the variance taken from these
    sums keeps the digits that a large mean would cancel.
    """
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        total, square = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        for row in range(start, stop):
            for column in range(x.shape[1]):
                value = x[row, column] - shift[column]
                total[column] += value
                square[column] += value * value
        sums[block] = total
        squares[block] = square


@compiled.kernel
def _affine(x, shift, scale, offset, out, counter, bounds):
    """out = (x - shift) * scale + offset, in x's dtype: normalization, inference and its gradient."""
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        for row in range(start, stop):
            for column in range(x.shape[1]):
                out[row, column] = (x[row, column] - shift[column]) * scale[column] + offset[column]


@compiled.kernel
def _gradient_sums(grad, x, mean, sums, dots, counter, bounds):
    """Each block's per-column sum(grad) into `sums` and sum(grad * (x - mean)) into `dots` (float64)."""
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        total, dot = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        for row in range(start, stop):
            for column in range(x.shape[1]):
                value = np.float64(grad[row, column])
                total[column] += value
                dot[column] += value * (x[row, column] - mean[column])
        sums[block] = total
        dots[block] = dot


@compiled.kernel
def _input_gradient(grad, x, mean, scale, slope, offset, out, counter, bounds):
    """out = grad * scale - (x - mean) * slope - offset, in x's dtype: the training gradient of x."""
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        for row in range(start, stop):
            for column in range(x.shape[1]):
                out[row, column] = (grad[row, column] * scale[column] - (x[row, column] - mean[column])
                                    * slope[column] - offset[column])


def _use_kernels(x: np.ndarray) -> bool:
    """Whether x goes through the compiled kernels (float16, float128 and empty arrays stay on NumPy)."""
    return compiled.active() and x.dtype in (np.float32, np.float64) and x.size > 0


def _row_groups(count: int, width: int) -> int:
    """How many consecutive rows of `width` values the kernels take as one row: the most, dividing `count`,
    that keep it under `MIN_COLUMNS` (a short inner loop runs in the compiler's scalar remainder)."""
    if width >= MIN_COLUMNS:
        return 1
    return next(groups for groups in range(MIN_COLUMNS // width, 0, -1) if count % groups == 0)


def _as_rows(x: np.ndarray, axis: int) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """x as a C-contiguous 2-D array of rows and its layout (groups, channels, inner): a row holds `groups`
    of x's rows (over the axes before `axis`) side by side, and column k holds channel (k // inner) % channels."""
    channels = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    groups = _row_groups(x.size // (channels * inner), channels * inner)
    return np.ascontiguousarray(x).reshape(-1, groups * channels * inner), (groups, channels, inner)


def _columns(values: np.ndarray, layout: tuple, dtype) -> np.ndarray:
    """Per-channel values laid out as the columns of `_as_rows`' view."""
    groups, _, inner = layout
    return np.tile(np.repeat(np.asarray(values, dtype=dtype).reshape(-1), inner), groups)


def _row_blocks(rows: np.ndarray) -> np.ndarray:
    """The bounds of `rows`' blocks of about `CLAIM_BYTES`: from its shape alone, so the sums have the same
    bits on any number of threads."""
    return block_bounds(len(rows), rows.nbytes, CLAIM_BYTES)


def _claimed(work, rows: np.ndarray, bounds: np.ndarray) -> None:
    """`work(counter)` on every thread (`run_claimed`); arrays under `BLOCK_BYTES` on the calling thread alone."""
    run_claimed(len(bounds) - 1, work, alone=rows.nbytes < BLOCK_BYTES)


def _column_sums(kernel, arrays: tuple, parameters: tuple, layout: tuple) -> Tuple[np.ndarray, np.ndarray]:
    """The two float64 sums that `kernel(*arrays, *parameters, sums, other, counter, bounds)` adds up per
    column, per channel: the blocks' sums added in block order.  `arrays` share rows."""
    bounds = _row_blocks(arrays[0])
    sums, other = np.empty((2, len(bounds) - 1, arrays[0].shape[1]))
    _claimed(lambda counter: kernel(*arrays, *parameters, sums, other, counter, bounds), arrays[0], bounds)
    return tuple(part.sum(axis=0).reshape(layout).sum(axis=(0, 2)) for part in (sums, other))


def _elementwise(kernel, arrays: tuple, parameters: tuple) -> np.ndarray:
    """`kernel(*arrays, *parameters, out, counter, bounds)` with `out` new, like arrays[0]."""
    out = np.empty_like(arrays[0])
    bounds = _row_blocks(out)
    _claimed(lambda counter: kernel(*arrays, *parameters, out, counter, bounds), out, bounds)
    return out


def _kernel_statistics(x: np.ndarray, axis: int) -> Tuple[np.ndarray, np.ndarray]:
    """The batch mean and biased variance per channel (float64) from one compiled pass over x."""
    rows, layout = _as_rows(x, axis)
    _, channels, inner = layout
    origin = rows[0, :channels * inner:inner].astype(np.float64)
    sums, squares = _column_sums(_shifted_sums, (rows,), (_columns(origin, layout, np.float64),), layout)
    count = x.size // channels
    offset = sums / count
    return origin + offset, np.maximum(squares / count - offset * offset, 0.0)


def _kernel_affine(x: np.ndarray, axis: int, shift, scale, offset, kernel=_affine, arrays=(), parameters=()
                   ) -> np.ndarray:
    """(x - shift) * scale + offset with per-channel parameters (None: 0) by the compiled kernel; or
    `kernel(x, *arrays, shift, scale, offset, *parameters, out, counter, bounds)`, `arrays` laid out as x (a fused op's
    second pass: `batch_norm_act`)."""
    rows, layout = _as_rows(x, axis)
    zeros = np.zeros(x.shape[axis], x.dtype)
    columns = tuple(_columns(zeros if value is None else value, layout, x.dtype) for value in (shift, scale, offset))
    others = tuple(_as_rows(array, axis)[0] for array in arrays)
    return _elementwise(kernel, (rows,) + others, columns + tuple(parameters)).reshape(x.shape)


def _numpy_statistics(x: np.ndarray, axis: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, biased variance, x - mean): einsum sums, x - mean written in blocks shared among threads."""
    count = _count(x, axis)
    total, dot = _einsum_subscripts(x.ndim, axis)
    mean = np.einsum(total, x) / count
    mean_b = mean.reshape(_broadcast(x, axis))
    centered = np.empty_like(x)

    def center(chunk):
        squares = np.zeros(x.shape[axis], dtype=x.dtype)
        for index in chunk:
            block = np.subtract(x[index], mean_b, out=centered[index])
            squares += np.einsum(dot, block, block)
        return squares

    return mean, sum(run_in_parallel(_blocks(x, axis), center)) / count, centered


def _numpy_normalize(centered: np.ndarray, scale: np.ndarray, beta_b: Optional[np.ndarray], axis: int) -> np.ndarray:
    """centered * scale (+ beta) in blocks shared among threads."""
    y = np.empty_like(centered)

    def normalize(chunk):
        for index in chunk:
            block = np.multiply(centered[index], scale, out=y[index])
            if beta_b is not None:
                block += beta_b

    run_in_parallel(_blocks(centered, axis), normalize)
    return y


def _broadcast(x: np.ndarray, axis: int) -> list:
    """The shape of a per-channel array broadcasting against x."""
    shape = [1] * x.ndim
    shape[axis] = -1
    return shape


# -- the two paths: each trains forward, backward, and applies a per-channel affine map -----------------
def _train_scale(x, axis, mean, var, gamma_b, epsilon):
    """(inv_std, inv_std * gamma), broadcasting against x."""
    inv_std = 1.0 / np.sqrt(var.reshape(_broadcast(x, axis)) + x.dtype.type(epsilon))
    return inv_std, (inv_std if gamma_b is None else inv_std * gamma_b)


def _train_compiled(x, axis, gamma_b, beta_b, epsilon, second_pass=()):
    """(y, mean, var, inv_std, kept): one pass of a kernel for the statistics, one for y (`second_pass`:
    `_kernel_affine`'s kernel, arrays and parameters in place of the plain affine map).

    The kernels subtract the mean rounded to x's dtype, exactly for x near it, and the per-channel
    terms take the rest, `mean_low` (float64, kept): a float32 mean near 1000 is 3e-5 off.  `affine` (kept):
    the second pass's scale and offset, from which a fused backward pass recomputes its output."""
    mean64, var64 = _kernel_statistics(x, axis)
    mean, var = mean64.astype(x.dtype), var64.astype(x.dtype)
    low = mean64 - mean
    inv_std, scale = _train_scale(x, axis, mean, var, gamma_b, epsilon)
    offset = (0.0 if beta_b is None else beta_b.reshape(-1)) - low * scale.reshape(-1)
    return (_kernel_affine(x, axis, mean, scale, offset, *second_pass), mean, var, inv_std,
            {"mean_low": low, "affine": (scale, offset)})


def _train_reference(x, axis, gamma_b, beta_b, epsilon):
    """`_train_compiled` in NumPy; keeps x - mean for the backward pass."""
    mean, var, centered = _numpy_statistics(x, axis)
    inv_std, scale = _train_scale(x, axis, mean, var, gamma_b, epsilon)
    return _numpy_normalize(centered, scale, beta_b, axis), mean, var, inv_std, {"centered": centered}


def _gradient_coefficients(ctx, grad_gamma, grad_beta, count):
    """(a, b, c) of grad_x = a * grad_y - b * centered - c (see `batch_norm_backward`), broadcasting."""
    inv_std, gamma = ctx["inv_std"], ctx["gamma"]
    scale = inv_std if gamma is None else inv_std * gamma
    return (scale, scale * inv_std * (grad_gamma.reshape(inv_std.shape) / count),
            scale * (grad_beta.reshape(inv_std.shape) / count))


def _backward_compiled(grad_y, ctx, count, kernels=(_gradient_sums, _input_gradient), arrays=(), parameters=(),
                       written=None):
    """(grad_x, grad_gamma, grad_beta): one kernel pass for the two sums, one for grad_x.  A fused op's
    `kernels` take `arrays` (laid out as x) after (grad, x), and `parameters` after the per-channel columns
    (`batch_norm_act`: the forward pass's columns and the ReLU's cap, its mask applied in both passes).
    `written`: one of `arrays` that the sums kernel fills with the gradient it summed (`batch_norm_act`: the
    masked gradient); the grad_x pass is then `kernels[1]` on it and x alone."""
    x, axis = ctx["x"], ctx["axis"]
    rows, layout = _as_rows(x, axis)
    low = ctx.get("mean_low", 0.0)  # none after the reference forward
    grad_rows, mean_columns = _as_rows(grad_y, axis)[0], _columns(ctx["mean"], layout, x.dtype)
    inputs = (grad_rows, rows) + tuple(_as_rows(array, axis)[0] for array in arrays)
    sums, dots = _column_sums(kernels[0], inputs, (mean_columns,) + tuple(parameters), layout)
    dots -= low * sums  # sum(grad * (x - mean - low))
    grad_beta, grad_gamma = sums.astype(x.dtype), dots.astype(x.dtype) * ctx["inv_std"].reshape(-1)
    scale, slope, offset = _gradient_coefficients(ctx, grad_gamma, grad_beta, count)
    offset = offset.reshape(-1) - low * slope.reshape(-1)  # slope * (x - mean - low): low's part joins offset
    columns = (mean_columns, *(_columns(value, layout, x.dtype) for value in (scale, slope, offset)))
    if written is not None:
        inputs, parameters = (_as_rows(written, axis)[0], rows), ()
    return (_elementwise(kernels[1], inputs, columns + tuple(parameters)).reshape(x.shape), grad_gamma,
            grad_beta)


def _backward_reference(grad_y, ctx, count):
    """`_backward_compiled` in NumPy: einsum sums, grad_x in blocks shared among threads."""
    x, axis = ctx["x"], ctx["axis"]
    centered = ctx["centered"] if "centered" in ctx else x - ctx["mean"]  # none after the compiled forward
    total, dot = _einsum_subscripts(x.ndim, axis)
    grad_beta = np.einsum(total, grad_y)
    grad_gamma = np.einsum(dot, grad_y, centered) * ctx["inv_std"].reshape(-1)
    scale, slope, offset = _gradient_coefficients(ctx, grad_gamma, grad_beta, count)
    grad_x = np.empty_like(centered)

    def combine(chunk):
        for index in chunk:
            block = np.multiply(grad_y[index], scale, out=grad_x[index])
            block -= centered[index] * slope
            block -= offset

    run_in_parallel(_blocks(centered, axis), combine)
    return grad_x, grad_gamma, grad_beta


def _affine_compiled(x, axis, scale, offset):
    """x * scale (+ offset) per channel in one kernel pass."""
    return _kernel_affine(x, axis, None, scale, offset)


def _affine_reference(x, axis, scale, offset):
    """x * scale (+ offset) per channel in NumPy, block by block."""
    y = np.empty_like(x)
    for index in _blocks(x, axis):
        block = np.multiply(x[index], scale, out=y[index])
        if offset is not None:
            block += offset
    return y


# The paths of the batch-norm ops, in order: the first whose test takes x runs.
# (name, applies(x), train, backward, affine)
_PATHS = (
    ("compiled", _use_kernels, _train_compiled, _backward_compiled, _affine_compiled),
    ("reference", lambda x: True, _train_reference, _backward_reference, _affine_reference),
)


def _path(x: np.ndarray) -> tuple:
    return next(path for path in _PATHS if path[1](x))


# -- the ops -------------------------------------------------------------------------------------------
def batch_norm_train(x, gamma, beta, axis, epsilon) -> Tuple[np.ndarray, Dict[str, Any], np.ndarray, np.ndarray]:
    """(y, ctx, batch_mean, batch_var): normalize with the batch statistics (biased variance)."""
    op = "batch_norm_train"
    x, axis, epsilon = _prepare(x, axis, epsilon, op)
    gamma_b = _per_channel(gamma, "gamma", x, axis, op)
    beta_b = _per_channel(beta, "beta", x, axis, op)
    y, mean, var, inv_std, kept = _path(x)[2](x, axis, gamma_b, beta_b, epsilon)
    return y, _train_context(x, axis, mean, inv_std, gamma_b, beta_b, kept), mean, var


def _train_context(x, axis, mean, inv_std, gamma_b, beta_b, kept) -> Dict[str, Any]:
    """What `batch_norm_backward` reads of a training call."""
    return {"x": x, "mean": mean.reshape(_broadcast(x, axis)), "inv_std": inv_std, "gamma": gamma_b, "axis": axis,
            "has_beta": beta_b is not None, **kept}


def _count(x: np.ndarray, axis: int):
    """The values each channel's statistics are taken over, in x's dtype."""
    return x.dtype.type(max(x.size // max(x.shape[axis], 1), 1))


def _inference_affine(x, gamma_b, beta_b, mean_b, var_b, epsilon):
    """Per-channel (scale, shift) with gamma * (x - mean) / sqrt(var + epsilon) + beta = x * scale + shift."""
    scale = 1.0 / np.sqrt(var_b + x.dtype.type(epsilon))
    if gamma_b is not None:
        scale = scale * gamma_b
    shift = -mean_b * scale
    if beta_b is not None:
        shift = shift + beta_b
    return scale, shift


def batch_norm_affine(gamma, beta, mean, var, epsilon, dtype=np.float32) -> Tuple[np.ndarray, np.ndarray]:
    """(scale, shift), one per channel, with which `batch_norm_infer` computes x * scale + shift: the map
    a fused inference op applies in place of the normalization (`conv2d_inference`)."""
    op = "batch_norm_affine"
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{op}: argument `dtype` must be a float dtype, got {dtype}")
    mean = check_numeric_array(mean, op, "mean", ndim=1)
    probe = np.empty((1, mean.shape[0]), dtype=dtype)
    _, axis, epsilon = _prepare(probe, 1, epsilon, op)
    parameters = [_per_channel(value, name, probe, axis, op)
                  for name, value in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var))]
    scale, shift = _inference_affine(probe, *parameters, epsilon)
    return scale.reshape(-1), shift.reshape(-1)


def layer_affine(gamma, beta, mean, var, epsilon: float, dtype) -> Tuple[np.ndarray, np.ndarray]:
    """`batch_norm_affine` without its argument checks, the same numbers: for a BatchNormalization
    layer's own (C,) variables, checked when the layer was built, read at every inference step of
    the plan (52 batch norms per MobileNetV2 call).  Compiled where the variables have the dtype: one
    call instead of six NumPy operations, the same operations in the same order."""
    dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
    if not (mean.dtype == dtype and var.dtype == dtype and (gamma is None or gamma.dtype == dtype)
            and (beta is None or beta.dtype == dtype)):
        gamma, beta, mean, var = (None if value is None else value.astype(dtype)
                                  for value in (gamma, beta, mean, var))
    if compiled.active() and dtype in _AFFINE_DTYPES:
        scale, shift = np.empty(mean.shape, dtype), np.empty(mean.shape, dtype)
        epsilon, one = _affine_scalars(dtype, epsilon)
        _affine_kernel(mean if gamma is None else gamma, mean if beta is None else beta, gamma is not None,
                       beta is not None, mean, var, epsilon, one, scale, shift)
        return scale, shift
    return _inference_affine(np.empty(0, dtype), gamma, beta, mean, var, epsilon)


_AFFINE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@functools.lru_cache(maxsize=64)
def _affine_scalars(dtype: np.dtype, epsilon: float) -> tuple:
    """(epsilon, 1) in `dtype`, as `_affine_kernel` takes them (a layer's epsilon rarely changes)."""
    return dtype.type(epsilon), dtype.type(1)


@compiled.kernel
def _affine_kernel(gamma, beta, has_gamma, has_beta, mean, var, epsilon, one, scale, shift):
    """`_inference_affine` channel by channel (`one` and `epsilon` in the arrays' dtype, so that every
    operation rounds as NumPy's on the arrays does)."""
    for c in range(mean.shape[0]):
        s = one / np.sqrt(var[c] + epsilon)
        if has_gamma:
            s = s * gamma[c]
        t = -mean[c] * s
        if has_beta:
            t = t + beta[c]
        scale[c] = s
        shift[c] = t


def batch_norm_infer(x, gamma, beta, mean, var, axis, epsilon) -> np.ndarray:
    """Normalize with given (moving) statistics: gamma * (x - mean) / sqrt(var + epsilon) + beta.

    Computed as x * scale + shift with per-channel scale and shift (`batch_norm_affine`): one
    compiled pass over x, or two NumPy passes.
    """
    op = "batch_norm_infer"
    x, axis, epsilon = _prepare(x, axis, epsilon, op)
    parameters = [_per_channel(value, name, x, axis, op)
                  for name, value in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var))]
    scale, shift = _inference_affine(x, *parameters, epsilon)
    return _path(x)[4](x, axis, scale, shift)


def batch_norm_backward(grad_y, ctx: Dict[str, Any]) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of `batch_norm_train` w.r.t. x, gamma and beta (through the batch statistics).

    grad_x = a * grad_y - b * centered - c per channel, with centered = x - mean,
    x_hat = centered * inv_std, a = gamma * inv_std, b = a * inv_std * mean(grad_y * x_hat)
    and c = a * mean(grad_y).
    """
    op = "batch_norm_backward"
    x, axis = ctx["x"], ctx["axis"]
    grad_y = check_numeric_array(grad_y, op, "grad_y")
    if grad_y.shape != x.shape:
        raise ValueError(f"{op}: argument `grad_y` must have the input's shape {x.shape}, got {grad_y.shape}")
    grad_y = grad_y.astype(x.dtype, copy=False)
    grad_x, grad_gamma, grad_beta = _path(x)[3](grad_y, ctx, _count(x, axis))
    return grad_x, None if ctx["gamma"] is None else grad_gamma, grad_beta if ctx["has_beta"] else None


def batch_norm_infer_backward(grad_y, gamma, var, axis, epsilon) -> np.ndarray:
    """Gradient of `batch_norm_infer` w.r.t. x: grad_y * gamma / sqrt(var + epsilon)."""
    op = "batch_norm_infer_backward"
    grad_y, axis, epsilon = _prepare(grad_y, axis, epsilon, op)
    var_b = _per_channel(var, "var", grad_y, axis, op)
    gamma_b = _per_channel(gamma, "gamma", grad_y, axis, op)
    scale = 1.0 / np.sqrt(var_b + grad_y.dtype.type(epsilon))
    if gamma_b is not None:
        scale = scale * gamma_b
    return _path(grad_y)[4](grad_y, axis, scale, None)


def batch_norm_infer_backward_all(grad_y, x, gamma, mean, var, axis, epsilon, need_beta=True):
    """(grad_x, grad_gamma | None, grad_beta | None) of `batch_norm_infer` (constant statistics):
    grad_gamma = sum(grad_y * x_hat), grad_beta = sum(grad_y) over every axis but `axis`."""
    grad_x = batch_norm_infer_backward(grad_y, gamma, var, axis, epsilon)
    axis = axis % grad_y.ndim
    # einsum sums over every axis but `axis` with no temporary product (much faster than .sum; measurements:
    # benchmarks/README.md, 'Measurements behind the code's choices')
    letters = "abcdefghijklmnopqrstuvwxyz"[:grad_y.ndim]
    grad_gamma = grad_beta = None
    if gamma is not None:
        x_hat = batch_norm_infer(x, None, None, mean, var, axis, epsilon)
        grad_gamma = np.einsum(f"{letters},{letters}->{letters[axis]}", grad_y, x_hat)
    if need_beta:
        grad_beta = np.einsum(f"{letters}->{letters[axis]}", grad_y)
    return grad_x, grad_gamma, grad_beta


def moving_average_update(moving: np.ndarray, batch: np.ndarray, momentum: float) -> None:
    """moving = moving * momentum + batch * (1 - momentum), in place (Keras' moving statistics)."""
    moving[...] = moving * momentum + batch * (1.0 - momentum)
