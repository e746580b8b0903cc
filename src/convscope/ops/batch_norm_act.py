"""BatchNormalization in training with the ReLU after it (capped or not: a MobileNet's ReLU(6.)), and a
residual Add between them (a ResNet block's end), as one op forward and backward.

    y = relu(batch_norm(x) [+ residual], max_value)

Run layer by layer, the batch norm writes its output, the Add reads it with the residual and writes
the sum, the ReLU reads that and writes y; backward, the ReLU writes its gradient and the batch norm
reads it twice.  Here the forward pass reads x once for the statistics and once more, with the
residual, to write y; the backward pass reads the output gradient and x once for the two per-channel sums
and once more to write the input gradient, the ReLU's mask recomputed from x as the forward pass computed
its input z (0 < z < max_value exactly where 0 < y < max_value; reading y instead cost a third more
memory traffic, and the context need not keep y).  With a residual the masked gradient is the residual's
gradient: the sums pass writes it (its mask read from y) and the input gradient's pass reads it with x.

The numbers are those of the layers one by one (`batch_norm_relu_reference`,
`batch_norm_relu_backward_reference`): the same operations in the same order, the output and the batch
statistics to the bit, the input gradient to its last bit (the compiler may contract the masked
product differently).  Paths, the first that applies runs: "compiled" (`normalization`'s kernels'
conditions), "reference".
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import compiled, normalization as bn
from .activations import get_activation
from .padding import check_numeric_array

if compiled.available():
    from .claims import claim_rows


__all__ = ["batch_norm_relu_train", "batch_norm_relu_backward", "batch_norm_relu_reference",
           "batch_norm_relu_backward_reference"]


@compiled.kernel(inline=True)
def _relu_of(value, cap, capped, zero):
    """`elementwise_fast`'s ReLU of one value: plain (NaN kept), or capped at `cap` (NaN: 0), as the layers'."""
    if not capped:
        return zero if value < zero else value
    value = value if value > zero else zero
    return cap if value > cap else value


@compiled.kernel(inline=True)
def _gate(y, cap, capped, zero, one):
    """1 where the ReLU passes its gradient, read from its output y, or recomputed from its input z (0 < z
    [< cap] exactly where 0 < relu(z) [< cap]; NaN closed), else 0."""
    if not capped:
        return one if y > zero else zero
    return one if y > zero and y < cap else zero


@compiled.kernel
def _affine_relu(x, residual, shift, scale, offset, has_residual, cap, capped, out, counter, bounds):
    """out = relu((x - shift) * scale + offset [+ residual]): `normalization._affine`, the Add and the
    ReLU in their order."""
    zero = out.dtype.type(0)
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        for row in range(start, stop):
            for column in range(x.shape[1]):
                value = (x[row, column] - shift[column]) * scale[column] + offset[column]
                if has_residual:
                    value = value + residual[row, column]
                out[row, column] = _relu_of(value, cap, capped, zero)


@compiled.kernel
def _masked_sums_written(grad, x, y, out, mean, cap, capped, sums, dots, counter, bounds):
    """`normalization._gradient_sums` of the masked gradient grad * gate (`_gate` of y), written to `out` as
    it is summed (the residual's gradient, which the grad_x pass reads)."""
    zero = grad.dtype.type(0)
    one = grad.dtype.type(1)
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        total, dot = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        for row in range(start, stop):
            for column in range(x.shape[1]):
                g = grad[row, column] * _gate(y[row, column], cap, capped, zero, one)
                out[row, column] = g
                value = np.float64(g)
                total[column] += value
                dot[column] += value * (x[row, column] - mean[column])
        sums[block] = total
        dots[block] = dot


@compiled.kernel
def _masked_gradient_sums(grad, x, mean, scale_f, offset_f, cap, capped, sums, dots, counter, bounds):
    """`normalization._gradient_sums` of the masked gradient grad * gate, the gate from x and the forward
    pass's columns (mean, scale_f, offset_f) without a residual."""
    zero = grad.dtype.type(0)
    one = grad.dtype.type(1)
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        total, dot = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        for row in range(start, stop):
            for column in range(x.shape[1]):
                shifted = x[row, column] - mean[column]
                gate = _gate(shifted * scale_f[column] + offset_f[column], cap, capped, zero, one)   # from z
                value = np.float64(grad[row, column] * gate)
                total[column] += value
                dot[column] += value * shifted
        sums[block] = total
        dots[block] = dot


@compiled.kernel
def _masked_input_gradient(grad, x, mean, scale, slope, offset, scale_f, offset_f, cap, capped, out, counter,
                           bounds):
    """`normalization._input_gradient` of the masked gradient grad * gate (`_masked_gradient_sums`' gate)."""
    zero = grad.dtype.type(0)
    one = out.dtype.type(1)
    while True:
        block, start, stop = claim_rows(counter, bounds)
        if block < 0:
            return
        for row in range(start, stop):
            for column in range(x.shape[1]):
                shifted = x[row, column] - mean[column]
                gate = _gate(shifted * scale_f[column] + offset_f[column], cap, capped, zero, one)
                out[row, column] = (grad[row, column] * gate * scale[column] - shifted * slope[column]
                                    - offset[column])


def _relu_activation(max_value):
    """The ReLU layer's activation (`ops.activations`): plain, or capped at `max_value`."""
    return get_activation("relu") if max_value is None else get_activation("relu", max_value=max_value)


def _cap(max_value, dtype) -> tuple:
    """(cap, capped) as the kernels take them."""
    return dtype.type(np.inf if max_value is None else max_value), max_value is not None


# -- the reference: the ops one after another ----------------------------------------------------------
def batch_norm_relu_reference(x, gamma, beta, axis, epsilon, residual=None, max_value=None):
    """(y, ctx, batch_mean, batch_var) by `batch_norm_train`, the Add and the ReLU one after another."""
    z, norm_ctx, mean, var = bn.batch_norm_train(x, gamma, beta, axis, epsilon)
    if residual is not None:
        z = z + np.asarray(residual).astype(z.dtype, copy=False)
    y = _relu_activation(max_value).forward(z)
    return y, {"norm": norm_ctx, "y": y, "residual": residual is not None, "path": "reference",
               "max_value": max_value}, mean, var


def batch_norm_relu_backward_reference(grad_y, ctx):
    """(grad_x, grad_gamma, grad_beta, grad_residual | None): the ReLU's, then the batch norm's backward."""
    grad_z = _relu_activation(ctx["max_value"]).backward(grad_y, ctx["y"], ctx["y"])
    grad_x, grad_gamma, grad_beta = bn.batch_norm_backward(grad_z, ctx["norm"])
    return grad_x, grad_gamma, grad_beta, grad_z if ctx["residual"] else None


# -- the compiled path: normalization's two passes with these kernels ---------------------------------
def _compiled_forward(x, gamma, beta, axis, epsilon, residual, max_value):
    """`normalization._train_compiled` with the Add and the ReLU in its second pass (`_affine_relu`)."""
    gamma_b = bn._per_channel(gamma, "gamma", x, axis, "batch_norm_relu_train")
    beta_b = bn._per_channel(beta, "beta", x, axis, "batch_norm_relu_train")
    others = (x if residual is None else residual.astype(x.dtype, copy=False),)    # x: a placeholder
    y, mean, var, inv_std, kept = bn._train_compiled(
        x, axis, gamma_b, beta_b, epsilon, (_affine_relu, others, (residual is not None,) + _cap(max_value, x.dtype)))
    kept_y = y if residual is not None else None      # only the residual's mask is read from y backward
    return y, {"norm": bn._train_context(x, axis, mean, inv_std, gamma_b, beta_b, kept), "y": kept_y,
               "residual": residual is not None, "path": "compiled", "max_value": max_value}, mean, var


def _compiled_backward(grad_y, ctx):
    """`normalization._backward_compiled` with the ReLU's mask applied in both passes; with a residual the
    masked gradient is written once (it is the residual's gradient) and goes through the plain passes."""
    norm, y = ctx["norm"], ctx["y"]
    x, axis = norm["x"], norm["axis"]
    cap, count = _cap(ctx["max_value"], x.dtype), bn._count(x, axis)
    if ctx["residual"]:
        grad_z = np.empty(x.shape, x.dtype)
        kernels = (_masked_sums_written, bn._input_gradient)
        return (*bn._backward_compiled(grad_y, norm, count, kernels, (y, grad_z), cap, written=grad_z), grad_z)
    layout = bn._as_rows(x, axis)[1]
    forward = tuple(bn._columns(value, layout, x.dtype) for value in norm["affine"])
    kernels = (_masked_gradient_sums, _masked_input_gradient)
    return (*bn._backward_compiled(grad_y, norm, count, kernels, (), forward + cap), None)


# The paths, in order: the first whose test takes x runs.  (name, applies(x), forward, backward)
_PATHS = (
    ("compiled", bn._use_kernels, _compiled_forward, _compiled_backward),
    ("reference", lambda x: True, batch_norm_relu_reference, batch_norm_relu_backward_reference),
)


# -- the ops -------------------------------------------------------------------------------------------
def batch_norm_relu_train(x, gamma, beta, axis, epsilon, residual=None, max_value=None
                          ) -> Tuple[np.ndarray, Dict[str, Any], np.ndarray, np.ndarray]:
    """(y, ctx, batch_mean, batch_var): y = relu(batch_norm_train(x) [+ residual], max_value), the batch norm
    with the batch statistics (biased variance), as `batch_norm_train`; the ReLU as Keras' ReLU layer's
    (max_value None: max(z, 0), NaN kept; else min(z if z > 0 else 0, max_value))."""
    op = "batch_norm_relu_train"
    x, axis, epsilon = bn._prepare(x, axis, epsilon, op)
    if max_value is not None and (isinstance(max_value, bool) or not isinstance(max_value, (int, float, np.number))
                                  or not max_value >= 0):
        raise ValueError(f"{op}: argument `max_value` must be None or a number >= 0, got {max_value!r}")
    if residual is not None:
        residual = check_numeric_array(residual, op, "residual")
        if residual.shape != x.shape:
            raise ValueError(f"{op}: argument `residual` must have the input's shape {x.shape}, got "
                             f"{residual.shape}")
    forward = next(path[2] for path in _PATHS if path[1](x))
    return forward(x, gamma, beta, axis, epsilon, residual, None if max_value is None else float(max_value))


def batch_norm_relu_backward(grad_y, ctx: Dict[str, Any]
                             ) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """(grad_x, grad_gamma | None, grad_beta | None, grad_residual | None) of `batch_norm_relu_train`."""
    op = "batch_norm_relu_backward"
    x = ctx["norm"]["x"]                     # y's shape and dtype (the context keeps y only where it reads it)
    grad_y = check_numeric_array(grad_y, op, "grad_y")
    if grad_y.shape != x.shape:
        raise ValueError(f"{op}: argument `grad_y` must have the output's shape {x.shape}, got {grad_y.shape}")
    grad_y = grad_y.astype(x.dtype, copy=False)
    backward = next(path[3] for path in _PATHS if path[0] == ctx["path"])
    grad_x, grad_gamma, grad_beta, grad_residual = backward(grad_y, ctx)
    norm = ctx["norm"]
    return (grad_x, None if norm["gamma"] is None else grad_gamma, grad_beta if norm["has_beta"] else None,
            grad_residual)
