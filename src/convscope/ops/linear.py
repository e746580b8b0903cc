"""Dense (fully connected) forward and backward on the last axis of an N-D input.

As Keras' Dense, `x @ kernel + bias` acts on the last axis only, so (64, 10, 20)
through a (20, 30) kernel gives (64, 10, 30).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .padding import check_numeric_array, float_dtype
from .parallel import matmul

__all__ = ["dense_forward", "dense_backward"]


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
    """`x @ kernel (+ bias)` on the last axis of `x`."""
    x, kernel = _check_dense(x, kernel, "dense_forward")
    y = matmul(x.reshape(-1, kernel.shape[0]), kernel).reshape(x.shape[:-1] + (kernel.shape[1],))
    if bias is not None:
        bias = check_numeric_array(bias, "dense_forward", "bias", ndim=1)
        if bias.shape[0] != kernel.shape[1]:
            raise ValueError(f"dense_forward: argument `bias` must have shape ({kernel.shape[1]},), "
                             f"got {bias.shape}")
        y += bias.astype(y.dtype, copy=False)
    return y


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
