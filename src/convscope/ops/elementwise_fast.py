"""Compiled one-pass element-wise kernels for training: ReLU (with Keras' parameters) and its gradient,
and the sum of two gradients (a tensor read twice in a graph: a residual block's input).

Each kernel reads its inputs once and writes one new array, where the NumPy reference
(`ops/activations.py`) makes several passes and temporaries.  The kernels work on 1-D
C-contiguous views; `relu_forward` / `relu_backward` split the elements among threads
(`parallel.on_slices`) above `MIN_PARALLEL_BYTES`.  Parameters are given in the array's
dtype, so every comparison and product is done in that dtype, as NumPy does with Python
scalars (NEP 50): the numbers equal the reference's bit for bit.  The loops have no
vector intrinsics: LLVM vectorizes them for the width numba targets (AVX2 or AVX-512).
"""

from __future__ import annotations

import numpy as np

from . import compiled
from .parallel import on_slices

__all__ = ["relu_applies", "relu_forward", "relu_backward", "add"]

MIN_PARALLEL_BYTES = 1 << 20  # arrays under this size stay on the calling thread
PLAIN_MIN_ELEMENTS = 8192     # a plain relu of fewer elements stays on NumPy: its call costs less than the kernel's


@compiled.kernel
def _plain_relu(x, zero, out):
    """out = max(x, 0), NaN kept (np.maximum's)."""
    for i in range(x.size):
        value = x[i]
        out[i] = zero if value < zero else value


@compiled.kernel
def _plain_relu_grad(grad, x, zero, out):
    """out = grad * (x > 0) (so a NaN or infinite grad times 0 gives NaN, as NumPy)."""
    one = out.dtype.type(1)
    for i in range(x.size):
        out[i] = grad[i] * (one if x[i] > zero else zero)


@compiled.kernel
def _relu(x, negative_slope, max_value, threshold, zero, out):
    """Keras' relu: x above `threshold`, else negative_slope * (x - threshold) (0 when the slope is 0,
    also for NaN and -inf), then capped at `max_value` (NaN: no cap; a NaN result stays NaN)."""
    leaky = negative_slope != zero
    for i in range(x.size):
        value = x[i]
        if value > threshold:
            y = value
        elif leaky:
            y = negative_slope * (value - threshold)
        else:
            y = zero
        out[i] = max_value if y > max_value else y


@compiled.kernel
def _relu_grad(grad, x, negative_slope, max_value, threshold, zero, out):
    """grad * slope, slope 1 above `threshold`, `negative_slope` at or below it, 0 from `max_value` on
    (NaN max_value: never; NaN x: `negative_slope`)."""
    one = out.dtype.type(1)
    for i in range(x.size):
        value = x[i]
        slope = one if value > threshold else negative_slope
        out[i] = grad[i] * (zero if value >= max_value else slope)


def _plain(negative_slope, max_value, threshold) -> bool:
    return not negative_slope and max_value is None and not threshold


def relu_applies(params: tuple, *arrays) -> bool:
    """Whether the kernels take these arrays for relu(*params) (negative_slope, max_value, threshold):
    compiled path on, one float32/float64 dtype, C-contiguous, same shape, not empty (a plain relu: at
    least `PLAIN_MIN_ELEMENTS`)."""
    first = arrays[0]
    return (compiled.active() and first.dtype in (np.float32, np.float64)
            and first.size >= (PLAIN_MIN_ELEMENTS if _plain(*params) else 1)
            and all(a.dtype == first.dtype and a.shape == first.shape and a.flags.c_contiguous for a in arrays))


def _run(kernel, arrays: tuple, parameters: tuple) -> np.ndarray:
    """`kernel(*flat arrays, *parameters, out)` on a new array like arrays[0], a slice of elements per thread."""
    out = np.empty_like(arrays[0], order="C")
    flats = tuple(a.reshape(-1) for a in arrays)
    flat_out = out.reshape(-1)
    on_slices(flat_out.size, out.nbytes,
              lambda part: kernel(*(f[part] for f in flats), *parameters, flat_out[part]), MIN_PARALLEL_BYTES)
    return out


def _parameters(dtype, negative_slope, max_value, threshold) -> tuple:
    cast = np.dtype(dtype).type
    return (cast(negative_slope), cast(np.nan if max_value is None else max_value), cast(threshold), cast(0))


def relu_forward(x: np.ndarray, negative_slope=0.0, max_value=None, threshold=0.0) -> np.ndarray:
    """Keras' relu of a C-contiguous float32/float64 array (`relu_applies`) in one pass."""
    if _plain(negative_slope, max_value, threshold):
        return _run(_plain_relu, (x,), (x.dtype.type(0),))
    return _run(_relu, (x,), _parameters(x.dtype, negative_slope, max_value, threshold))


def relu_backward(grad: np.ndarray, x: np.ndarray, negative_slope=0.0, max_value=None, threshold=0.0) -> np.ndarray:
    """The gradient of `relu_forward` w.r.t. x, given the output's gradient, in one pass."""
    if _plain(negative_slope, max_value, threshold):
        return _run(_plain_relu_grad, (grad, x), (x.dtype.type(0),))
    return _run(_relu_grad, (grad, x), _parameters(x.dtype, negative_slope, max_value, threshold))


@compiled.kernel
def _add(a, b, out):
    """out = a + b."""
    for i in range(a.size):
        out[i] = a[i] + b[i]


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b as a new array: the kernel, a slice of elements per thread, where both are C-contiguous of one
    float dtype and shape and large enough to share (NumPy adds on one thread); else NumPy."""
    if not (compiled.active() and isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
            and a.dtype in (np.float32, np.float64) and a.shape == b.shape and a.flags.c_contiguous
            and b.flags.c_contiguous and a.nbytes >= MIN_PARALLEL_BYTES):
        return a + b
    return _run(_add, (a, b), ())
