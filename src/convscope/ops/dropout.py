"""Inverted dropout: drop each unit with probability `rate`, scale the survivors by 1/(1-rate).

The mask already holds the scale, so the backward pass is one multiplication,
and inference needs no rescaling (Keras' behaviour).

Each unit draws 32 raw bits from the generator's bit generator and is dropped when
they are below round(rate * 2^32): P(drop) = rate to 2^-32, and the draw costs ~60%
of float32 uniforms' (the draw is most of the forward pass).  NumPy always draws
the bits, so a seed gives the same masks on both paths; when the mask has x's shape
the compiled kernel fuses the comparison, the mask and the product into one pass.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .. import _rng
from . import compiled
from .padding import check_numeric_array

__all__ = ["dropout_forward", "dropout_backward"]


def _random_bits(rng: np.random.Generator, shape: Tuple[int, ...]) -> np.ndarray:
    """Uniform uint32 words of `shape`, the next ones of `rng`'s stream."""
    size = int(np.prod(shape))
    return rng.bit_generator.random_raw((size + 1) // 2).view(np.uint32)[:size].reshape(shape)


@compiled.kernel
def _dropout(x, bits, threshold, scale, zero, y, mask):
    """`mask = scale if bits >= threshold else 0` and `y = x * mask`, in one pass."""
    for i in range(x.size):
        m = scale if bits[i] >= threshold else zero
        mask[i] = m
        y[i] = x[i] * m


def dropout_forward(x, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None,
                    rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(y, mask) with y = x * mask; `noise_shape` (None entries follow x) shares the mask across axes."""
    op = "dropout_forward"
    x = check_numeric_array(x, op, "x")
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: argument `rate` must be a float in [0, 1), got {rate!r}")
    if not 0 <= rate < 1:
        raise ValueError(f"{op}: argument `rate` must be in [0, 1), got {rate!r}")
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    if noise_shape is None:
        shape = x.shape
    else:
        shape = tuple(noise_shape)
        if len(shape) != x.ndim:
            raise ValueError(f"{op}: argument `noise_shape` must have {x.ndim} entries (one per axis of x, "
                             f"shape {x.shape}), got {noise_shape!r}")
        shape = tuple(x.shape[i] if d is None else int(d) for i, d in enumerate(shape))
        if any(d not in (1, x.shape[i]) for i, d in enumerate(shape)):
            raise ValueError(f"{op}: argument `noise_shape` entries must be 1 or the size of x's axis "
                             f"(x shape {x.shape}), got {noise_shape!r}")
    rng = _rng.generator() if rng is None else rng
    bits = _random_bits(rng, shape)
    threshold = np.uint32(min(round(rate * 2.0 ** 32), 2 ** 32 - 1))
    scale = dtype.type(1.0 / (1.0 - rate))
    if compiled.active() and shape == x.shape and x.dtype in (np.float32, np.float64):
        x = np.ascontiguousarray(x)
        y, mask = np.empty_like(x), np.empty_like(x)
        _dropout(x.reshape(-1), bits.reshape(-1), threshold, scale, dtype.type(0), y.reshape(-1), mask.reshape(-1))
        return y, mask
    mask = (bits >= threshold).astype(dtype) * scale
    return (x * mask).astype(dtype, copy=False), mask


def dropout_backward(grad_y, mask) -> np.ndarray:
    """Gradient of dropout: the same scaled mask."""
    grad_y = check_numeric_array(grad_y, "dropout_backward", "grad_y")
    return (grad_y * mask).astype(np.asarray(mask).dtype, copy=False)
