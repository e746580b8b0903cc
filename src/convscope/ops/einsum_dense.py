"""Keras' EinsumDense arithmetic: the weights' shapes from an equation, and y = einsum(x, kernel) + bias, backward.

The equation is Keras' "[X],[Y]->[Z]", "...[X],[Y]->...[Z]" or "[X]...,[Y]->[Z]..." (X the input's axes, Y the
kernel's, Z the output's; "..." axes kept as they are).  The kernel takes each of its axes' sizes from the output
(where Z has the letter: an output axis) or else from the input (an input axis); the bias spans Z from the first of
`bias_axes` to the end, 1 where Z's letter is not a bias axis (Keras' `_analyze_split_string`).

Backward, with g the output gradient: grad_x = einsum(Z, Y -> X) (broadcast over any axis of X that neither Z nor
Y has: summed in the forward pass), grad_kernel = einsum(X, Z -> Y), grad_bias = g summed to the bias' shape.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple, Optional, Tuple

import numpy as np

__all__ = ["EinsumGeometry", "einsum_dense_geometry", "einsum_dense_forward", "einsum_dense_backward",
           "einsum_subscripts", "multiply_adds"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FORMS = (("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", None), ("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)", "left"),
          ("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0", "right"))


class EinsumGeometry(NamedTuple):
    """kernel_shape, bias_shape (None: no bias), output_shape (batch axis included), and the kernel's input and
    output axes (for its initializer's fans)."""

    kernel_shape: Tuple[int, ...]
    bias_shape: Optional[Tuple[int, ...]]
    output_shape: Tuple[Optional[int], ...]
    input_axes: Tuple[int, ...]
    output_axes: Tuple[int, ...]


def _split(equation: str, where: str):
    """(X, Y, Z, elided side: None, "left" or "right"), or a ValueError naming the forms Keras takes."""
    if isinstance(equation, str):
        replaced = equation.replace("...", "0")
        for pattern, side in _FORMS:
            match = re.fullmatch(pattern, replaced)
            if match:
                specs = match.groups()
                if any(len(set(spec)) != len(spec) for spec in specs):
                    raise ValueError(f"{where}: argument `equation` must name each axis of an operand once, got "
                                     f"{equation!r}")
                return specs + (side,)
    raise ValueError(f"{where}: argument `equation` must be of the form '[X],[Y]->[Z]', '...[X],[Y]->...[Z]' or "
                     f"'[X]...,[Y]->[Z]...', got {equation!r}")


def einsum_dense_geometry(equation: str, bias_axes: Optional[str], input_shape, output_shape,
                          where: str = "einsum_dense") -> EinsumGeometry:
    """Keras' `_analyze_einsum_string`: the kernel's and the bias' shapes and the full output shape, checked."""
    x_spec, w_spec, z_spec, side = _split(equation, where)
    input_shape = tuple(input_shape)
    elided = len(input_shape) - len(x_spec)
    if elided < 0 or (side is None and elided) or (side is not None and elided < (1 if side == "left" else 0)):
        raise ValueError(f"{where}: an input of shape {input_shape} does not fit the equation {equation!r}")
    out = [input_shape[0]] + list(output_shape)
    if side == "left":          # the input's own order (Keras 3.15.1's shape reverses these axes; its einsum does not)
        out[1:1] = list(input_shape[1:elided])
    elif side == "right":
        out += list(input_shape[len(input_shape) - elided:])
    x_at = {d: (i + elided if side == "left" else i) for i, d in enumerate(x_spec)}
    z_at = {d: (i + elided if side == "left" else i) for i, d in enumerate(z_spec)}
    if len(out) != len(z_spec) + (elided if side else 0):
        raise ValueError(f"{where}: argument `output_shape`={tuple(output_shape)} does not fit the equation "
                         f"{equation!r} (an input of shape {input_shape})")
    given = list(out)                           # the weights take their sizes from these, as Keras' do
    for d in x_spec:
        if d in z_at and out[z_at[d]] is not None and out[z_at[d]] != input_shape[x_at[d]]:
            raise ValueError(f"{where}: the input and output shapes differ on their shared axis '{d}': "
                             f"{input_shape[x_at[d]]} against {out[z_at[d]]} (input shape {input_shape}, "
                             f"output_shape {tuple(output_shape)})")
        if d in z_at and out[z_at[d]] is None:
            out[z_at[d]] = input_shape[x_at[d]]     # the input's size (Keras' symbolic shape keeps None there)
    for d in z_spec:
        if d not in x_spec and d not in w_spec:
            raise ValueError(f"{where}: the output axis '{d}' of {equation!r} is in neither the input nor the kernel")
    kernel, input_axes, output_axes = [], [], []
    for i, d in enumerate(w_spec):
        if d in z_at:
            kernel.append(given[z_at[d]])
            output_axes.append(i)
        elif d in x_at:
            kernel.append(input_shape[x_at[d]])
            input_axes.append(i)
        else:
            raise ValueError(f"{where}: the kernel axis '{d}' of {equation!r} is in neither the input nor the output")
    if any(k is None for k in kernel):
        raise ValueError(f"{where}: the kernel's sizes must be known, got {tuple(kernel)} from the input shape "
                         f"{input_shape} and output_shape {tuple(output_shape)} (a kernel axis on the output takes "
                         f"its size from `output_shape`, as in Keras)")
    return EinsumGeometry(tuple(kernel), _bias_shape(bias_axes, z_spec, given, elided, side, equation, where),
                          tuple(out), tuple(input_axes), tuple(output_axes))


def _bias_shape(bias_axes, z_spec: str, out, elided: int, side, equation: str, where: str):
    if bias_axes is None:
        return None
    missing = [c for c in bias_axes if c not in z_spec]
    if missing or not bias_axes:
        raise ValueError(f"{where}: argument `bias_axes`={bias_axes!r} must name axes of the output spec "
                         f"{z_spec!r} of {equation!r}")
    offset = elided if side == "left" else 0
    sizes = {c: out[i + offset] for i, c in enumerate(z_spec)}
    tail = z_spec[min(z_spec.find(c) for c in bias_axes):]
    shape = [sizes[c] if c in bias_axes else 1 for c in tail] + ([1] * elided if side != "left" else [])
    if any(s is None for s in shape):
        raise ValueError(f"{where}: the bias' sizes must be known, got {tuple(shape)} (bias_axes {bias_axes!r})")
    return tuple(shape)


def einsum_subscripts(equation: str, ndim: int, where: str = "einsum_dense") -> Tuple[str, str, str]:
    """(X, Y, Z) with "..." written out as letters the equation does not use, for an input of rank `ndim`."""
    x_spec, w_spec, z_spec, side = _split(equation, where)
    if side is None:
        return x_spec, w_spec, z_spec
    free = "".join(c for c in _LETTERS if c not in x_spec + w_spec + z_spec)[:ndim - len(x_spec)]
    return (free + x_spec, w_spec, free + z_spec) if side == "left" else (x_spec + free, w_spec, z_spec + free)


def einsum_dense_forward(x: np.ndarray, kernel: np.ndarray, bias, subscripts: Tuple[str, str, str]) -> np.ndarray:
    """einsum(x, kernel) (+ bias): the pre-activation, in the operands' float type."""
    x_sub, w_sub, z_sub = subscripts
    z = np.einsum(f"{x_sub},{w_sub}->{z_sub}", x, kernel, optimize=True)
    return z if bias is None else z + bias


def einsum_dense_backward(grad_z: np.ndarray, x: np.ndarray, kernel: np.ndarray, bias_shape,
                          subscripts: Tuple[str, str, str], need_input_grad: bool = True):
    """(grad_x | None, grad_kernel, grad_bias | None) from the pre-activation's gradient."""
    x_sub, w_sub, z_sub = subscripts
    grad_kernel = np.einsum(f"{x_sub},{z_sub}->{w_sub}", x, grad_z, optimize=True)
    grad_bias = None if bias_shape is None else _sum_to(grad_z, bias_shape)
    grad_x = None
    if need_input_grad:
        kept = "".join(c for c in x_sub if c in z_sub or c in w_sub)
        grad_x = np.einsum(f"{z_sub},{w_sub}->{kept}", grad_z, kernel, optimize=True)
        if kept != x_sub:           # an axis the forward pass summed alone: the same gradient all along it
            shape = [x.shape[i] if c in kept else 1 for i, c in enumerate(x_sub)]
            grad_x = np.broadcast_to(grad_x.reshape(shape), x.shape).copy()
    return grad_x, grad_kernel, grad_bias


def _sum_to(grad: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """`grad` summed to `shape` (aligned on the trailing axes, as the bias broadcast)."""
    lead = grad.ndim - len(shape)
    summed = grad.sum(axis=tuple(range(lead))) if lead else grad
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and summed.shape[i] != 1)
    return (summed.sum(axis=axes, keepdims=True) if axes else summed).reshape(shape)


def multiply_adds(subscripts: Tuple[str, str, str], input_shape, kernel_shape) -> int:
    """The multiply-adds of one sample: the product of every axis' size but the batch axis'."""
    x_sub, w_sub, _ = subscripts
    sizes = dict(zip(x_sub, input_shape))
    sizes.update(zip(w_sub, kernel_shape))
    sizes.pop(x_sub[0], None)
    return math.prod(int(s) for s in sizes.values() if s is not None)
