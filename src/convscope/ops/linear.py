"""Dense (fully connected) forward and backward on the last axis of an N-D input.

As Keras' Dense, `x @ kernel + bias` acts on the last axis only, so (64, 10, 20)
through a (20, 30) kernel gives (64, 10, 30).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import activations, compiled, dense_tiles, few_columns, few_rows, softmax_rows
from .epilogue import _epilogue_kernel, bias_activation_forward, check_epilogue
from .padding import check_numeric_array, float_dtype
from .parallel import SMALL_PRODUCT, STREAMED_BYTES, few_columns_product, few_rows_parts, matmul, tiles_product

__all__ = ["dense_forward", "dense_backward", "prepare_dense_inference", "PREPARED_ACTIVATIONS"]

PREPARED_ACTIVATIONS = ("linear", "relu", "softmax")     # a prepared Dense's own activations


def _check_dense(x, kernel, op: str):
    x = check_numeric_array(x, op, "x")
    kernel = check_numeric_array(kernel, op, "kernel", ndim=2)
    if x.ndim < 1:
        raise ValueError(f"{op}: argument `x` must have at least one axis, got a scalar")
    if x.shape[-1] != kernel.shape[0]:
        raise ValueError(f"{op}: argument `kernel` must have {x.shape[-1]} rows (the last axis of x, "
                         f"shape {x.shape}), got kernel of shape {kernel.shape}")
    dtype = float_dtype(x, kernel)
    return x.astype(dtype, copy=False), kernel.astype(dtype, copy=False)


def dense_forward(x, kernel, bias=None) -> np.ndarray:
    """`x @ kernel (+ bias)` on the last axis of `x` (`parallel.matmul`, which skips the rows of `kernel` only
    zeros multiply where it can: 0 times an infinite weight adds nothing there, as in the reference BLAS)."""
    x, kernel = _check_dense(x, kernel, "dense_forward")
    y = matmul(x.reshape(-1, kernel.shape[0]), kernel, skip_zeros=True).reshape(x.shape[:-1] + (kernel.shape[1],))
    if bias is not None:
        bias = check_numeric_array(bias, "dense_forward", "bias", ndim=1)
        if bias.shape[0] != kernel.shape[1]:
            raise ValueError(f"dense_forward: argument `bias` must have shape ({kernel.shape[1]},), "
                             f"got {bias.shape}")
        y += bias.astype(y.dtype, copy=False)
    return y


def _few_columns_run(rows_shape, out_shape, dtype):
    """`few_columns`' product with the bias and the ReLU in its registers: one compiled call on the calling thread
    (`few_columns.kernel_for`), split by rows among the threads from `SMALL_PRODUCT` multiply-adds (as
    `parallel.matmul`); the bits of `parallel.matmul` then `bias_activation_forward`'s pass, which an input or
    kernel of another layout takes (`parallel.matmul` leaves them to BLAS)."""
    other_layout = _product_then_epilogue_run(rows_shape, out_shape, dtype)
    alone = few_columns.multiply_adds(*rows_shape, out_shape[-1]) < SMALL_PRODUCT
    compute, zeros = few_columns.kernel_for(out_shape[-1]), np.zeros(out_shape[-1], dtype=dtype)

    def run(x, kernel, bias, relu):
        rows = x.reshape(rows_shape)
        if not (rows.flags.c_contiguous and kernel.flags.c_contiguous):
            return other_layout(x, kernel, bias, relu)
        if not alone:
            return few_columns_product(rows, kernel, bias, relu).reshape(out_shape)
        out = np.empty(out_shape, dtype=dtype)
        compute(rows, kernel, out.reshape(rows_shape[0], out_shape[-1]),
                zeros if bias is None else np.ascontiguousarray(bias), relu, bias is not None or relu)
        return out
    return run


def _finished_rows_applies(rows: np.ndarray, kernel: np.ndarray) -> bool:
    """A few rows (`few_rows`) by a matrix one call streams (under `STREAMED_BYTES`; a larger one is split
    among the threads by `parallel.matmul`)."""
    return few_rows.applies(rows, kernel) and kernel.nbytes < STREAMED_BYTES


def _finished_rows_run(rows_shape, out_shape, dtype):
    """`few_rows`' sums and the epilogue (bias, ReLU) in one compiled call on the calling thread."""
    zeros = np.zeros(out_shape[-1], dtype=dtype)

    def run(x, kernel, bias, relu):
        out = np.empty((rows_shape[0], out_shape[-1]), dtype=dtype)
        _finished_rows(np.ascontiguousarray(x.reshape(rows_shape)), kernel, out, zeros if bias is None else bias,
                       relu, zeros)     # contiguous rows, as `few_rows.partial` takes them: one compiled form
        return out.reshape(out_shape)
    return run


def _streamed_rows_applies(rows: np.ndarray, kernel: np.ndarray) -> bool:
    """A few rows (`few_rows`) by a matrix from `STREAMED_BYTES` (`parallel.matmul` splits it by blocks of its
    rows among the threads)."""
    return few_rows.applies(rows, kernel) and kernel.nbytes >= STREAMED_BYTES


def _streamed_rows_run(rows_shape, out_shape, dtype):
    """`parallel.few_rows_parts` on the threads, then their sum in block order, the bias and the ReLU in one
    compiled call (the same bits as `parallel.matmul`'s sum then `bias_activation_forward`'s pass)."""
    zeros = np.zeros(out_shape[-1], dtype=dtype)

    def run(x, kernel, bias, relu):
        parts = few_rows_parts(np.ascontiguousarray(x.reshape(rows_shape)), kernel)
        out = np.empty((rows_shape[0], out_shape[-1]), dtype=dtype)
        _finished_parts(parts, out, zeros if bias is None else bias, relu, zeros)
        return out.reshape(out_shape)
    return run


def _finished_tiles_applies(rows: np.ndarray, kernel: np.ndarray) -> bool:
    """5 to `dense_tiles.max_rows()` float32 rows by a matrix of at least 1 MiB (`dense_tiles.applies`)."""
    return dense_tiles.applies(rows, kernel)


def _finished_tiles_run(rows_shape, out_shape, dtype):
    """`parallel.tiles_product` with the bias and the ReLU (each thread finishing its columns while they are in
    its cache), skipping the matrix rows only zeros multiply (units a ReLU zeroed for every sample:
    `dense_tiles.kept_depth`): the values of `parallel.matmul` then `bias_activation_forward`'s pass (their bits
    for finite weights, but the sign of a zero an underflow left)."""
    def run(x, kernel, bias, relu):
        return tiles_product(x.reshape(rows_shape), kernel, bias, relu, skip_zeros=True).reshape(out_shape)
    return run


def _product_then_epilogue_run(rows_shape, out_shape, dtype):
    """`parallel.matmul`, then `bias_activation_forward`'s pass."""
    def run(x, kernel, bias, relu):
        z = matmul(x.reshape(rows_shape), kernel, skip_zeros=True)
        return bias_activation_forward(z, bias, "relu" if relu else "linear").reshape(out_shape)
    return run


# The paths of a prepared Dense inference, in order: the first that applies runs.
_DENSE_PATHS = (
    ("finished_rows", _finished_rows_applies, _finished_rows_run),
    ("streamed_rows", _streamed_rows_applies, _streamed_rows_run),
    ("finished_tiles", _finished_tiles_applies, _finished_tiles_run),
    ("few_columns", few_columns.applies, _few_columns_run),
    ("product_then_epilogue", lambda rows, kernel: True, _product_then_epilogue_run),
)


def _then_softmax(compute, out_shape, dtype):
    """`compute`, then the softmax on the last axis as a Dense layer's "softmax" activation takes it
    (`activations._softmax`, the same bits): where `softmax_rows` takes rows of this length (a classifier's head),
    in place, with no new array and none of the activation's dispatch."""
    if not softmax_rows.applies(np.empty((1, out_shape[-1]), dtype=dtype), -1):
        return lambda x, kernel, bias, relu: activations._softmax(compute(x, kernel, bias, relu))

    def run(x, kernel, bias, relu):
        y = compute(x, kernel, bias, relu)
        return softmax_rows.softmax(y, out=y)
    return run


def prepare_dense_inference(x, kernel, bias=None, activation: str = "linear"):
    """`activation(x @ kernel + bias)` on the last axis of `x` (`PREPARED_ACTIVATIONS`: "linear", "relu" or
    "softmax"), checked and its path (`_DENSE_PATHS`) chosen once for inputs of x's shape and dtype: returns
    `run(x, kernel, bias)`, which takes arrays of the shapes and dtypes given here unchecked (the weights are read
    per call: they may change).  The same bits as `bias_activation_forward(dense_forward(x, kernel), bias,
    activation)` (for "softmax": its "linear", then the softmax activation's)."""
    op = "prepare_dense_inference"
    if activation not in PREPARED_ACTIVATIONS:
        raise ValueError(f"{op}: argument `activation` must be one of {PREPARED_ACTIVATIONS}, got {activation!r}")
    given = [np.asarray(x).dtype, np.asarray(kernel).dtype, None if bias is None else np.asarray(bias).dtype]
    x, kernel = _check_dense(x, kernel, op)
    check_epilogue(bias, "relu" if activation == "relu" else "linear", kernel.shape[1], op,
                   f"the columns of kernel, shape {kernel.shape}")
    dtype, relu = x.dtype, activation == "relu"
    rows_shape = (int(np.prod(x.shape[:-1], dtype=np.int64)), kernel.shape[0])
    out_shape = x.shape[:-1] + (kernel.shape[1],)
    compute = next(make for _, applies, make in _DENSE_PATHS if applies(x.reshape(rows_shape), kernel))(
        rows_shape, out_shape, dtype)
    if activation == "softmax":
        compute = _then_softmax(compute, out_shape, dtype)
    if all(value in (None, dtype) for value in given):
        return lambda x, kernel, bias: compute(x, kernel, bias, relu)

    def run(x, kernel, bias):
        return compute(x.astype(dtype, copy=False), kernel.astype(dtype, copy=False),
                       None if bias is None else bias.astype(dtype, copy=False), relu)
    return run


@compiled.kernel
def _finished_rows(rows, kernel, out, bias, relu, zeros):
    """out = rows @ kernel as `few_rows` sums it, then + bias and the ReLU (`relu`) as `_epilogue_kernel`."""
    few_rows._rows_times_matrix(rows, kernel, out, 0, rows.shape[1])
    _epilogue_kernel(out, bias, relu, zeros, zeros, False, False)


@compiled.kernel
def _finished_parts(parts, out, bias, relu, zeros):
    """out = parts[0] + parts[1] + ... (in that order, as `parallel._few_rows_by_depth` adds them), then + bias
    and the ReLU (`relu`) as `_epilogue_kernel`."""
    first = parts[0]
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = first[i, j]
    for p in range(1, len(parts)):
        part = parts[p]
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] += part[i, j]
    _epilogue_kernel(out, bias, relu, zeros, zeros, False, False)


def dense_backward(grad_y, x, kernel, need_input_grad: bool = True,
                   need_bias_grad: bool = True) -> Tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """Gradients of `dense_forward` w.r.t. x, the kernel and the bias (x's and the bias' None unless needed)."""
    op = "dense_backward"
    x, kernel = _check_dense(x, kernel, op)
    grad_y = check_numeric_array(grad_y, op, "grad_y")
    expected = x.shape[:-1] + (kernel.shape[1],)
    if grad_y.shape != expected:
        raise ValueError(f"{op}: argument `grad_y` must have the output's shape {expected}, got {grad_y.shape}")
    grad_y = grad_y.astype(x.dtype, copy=False)
    grad_2d = grad_y.reshape(-1, kernel.shape[1])
    grad_kernel = matmul(x.reshape(-1, kernel.shape[0]).T, grad_2d)
    grad_bias = grad_2d.sum(axis=0) if need_bias_grad else None
    grad_x = matmul(grad_2d, kernel.T).reshape(x.shape) if need_input_grad else None
    return grad_x, grad_kernel, grad_bias
