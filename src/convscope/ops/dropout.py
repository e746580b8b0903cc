"""Inverted dropout: drop each unit with probability `rate`, scale the survivors by 1/(1-rate).

`rate=1` drops every unit: the output and the mask are zeros (Keras 3 accepts it too).

The mask already holds the scale, so the backward pass is one multiplication,
and inference needs no rescaling (Keras' behaviour).

Each unit gets 32 random bits and is dropped when they are below round(rate * 2^32):
P(drop) = rate to 2^-32.  The bits are counter-based: one 64-bit key is drawn from
the generator per call, and unit pair j takes the SplitMix64 output of key + (j + 1)
* golden gamma (its low half for unit 2j, its high half for unit 2j + 1), the
SplitMix64 sequence seeded with the key.  The compiled kernel draws, compares and
multiplies in one pass, vectorized; NumPy computes the same bits
with uint64 arithmetic, so a seed gives the same masks on both paths.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .. import _rng
from . import compiled
from .padding import check_numeric_array

__all__ = ["dropout_forward", "dropout_backward"]


_GAMMA, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _random_bits(key: np.uint64, shape: Tuple[int, ...]) -> np.ndarray:
    """Uniform uint32 words of `shape`: the SplitMix64 sequence of `key`, two words per output."""
    size = int(np.prod(shape))
    with np.errstate(over="ignore"):
        z = key + (np.arange(1, (size + 1) // 2 + 1, dtype=np.uint64) * _GAMMA)
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z ^= z >> np.uint64(31)
    return z.view(np.uint32)[:size].reshape(shape)   # little-endian: the low half first


@compiled.kernel(inline=True)
def _pair_bits(key, pair):
    """The SplitMix64 output of unit pair `pair` (its low half for unit 2 * pair, its high half for the next)."""
    z = key + np.uint64(pair + 1) * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@compiled.kernel
def _dropout(x, key, threshold, scale, zero, y, mask):
    """`mask = scale if bits >= threshold else 0` and `y = x * mask`, with the bits of `_random_bits`
    computed on the way: whole pairs in a loop without branches, which the compiler vectorizes (a test for
    the last odd unit inside the loop kept it scalar), then the odd unit."""
    low, stop = np.uint64(0xFFFFFFFF), x.size
    half = stop // 2
    for pair in range(half):
        z = _pair_bits(key, pair)
        m0 = scale if (z & low) >= threshold else zero
        m1 = scale if (z >> np.uint64(32)) >= threshold else zero
        mask[2 * pair] = m0
        mask[2 * pair + 1] = m1
        y[2 * pair] = x[2 * pair] * m0
        y[2 * pair + 1] = x[2 * pair + 1] * m1
    if stop % 2:
        m = scale if (_pair_bits(key, half) & low) >= threshold else zero
        mask[stop - 1] = m
        y[stop - 1] = x[stop - 1] * m


def dropout_forward(x, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None,
                    rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(y, mask) with y = x * mask; `noise_shape` (None entries follow x) shares the mask across axes."""
    op = "dropout_forward"
    x = check_numeric_array(x, op, "x")
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: argument `rate` must be a float in [0, 1], got {rate!r}")
    if not 0 <= rate <= 1:
        raise ValueError(f"{op}: argument `rate` must be in [0, 1], got {rate!r}")
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
    key = np.uint64(rng.bit_generator.random_raw())
    if rate == 1:        # everything dropped (Keras 3 returns zeros): no 1 / (1 - rate) scale
        return np.zeros(x.shape, dtype), np.zeros(shape, dtype)
    threshold = np.uint32(min(round(rate * 2.0 ** 32), 2 ** 32 - 1))
    scale = dtype.type(1.0 / (1.0 - rate))
    if compiled.active() and shape == x.shape and x.dtype in (np.float32, np.float64):
        x = np.ascontiguousarray(x)
        y, mask = np.empty_like(x), np.empty_like(x)
        _dropout(x.reshape(-1), key, np.uint64(threshold), scale, dtype.type(0), y.reshape(-1), mask.reshape(-1))
        return y, mask
    mask = (_random_bits(key, shape) >= threshold).astype(dtype) * scale
    return (x * mask).astype(dtype, copy=False), mask


def dropout_backward(grad_y, mask) -> np.ndarray:
    """Gradient of dropout: the same scaled mask."""
    grad_y = check_numeric_array(grad_y, "dropout_backward", "grad_y")
    return (grad_y * mask).astype(np.asarray(mask).dtype, copy=False)


def gaussian_noise(x, stddev: float, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """x + N(0, stddev), in x's float dtype (GaussianNoise in training)."""
    x = check_numeric_array(x, "gaussian_noise", "x")
    _check_noise_arguments("gaussian_noise", "stddev", stddev, np.inf, rng)
    noise = _standard_normal(x, rng)
    noise *= stddev
    noise += x
    return noise


def gaussian_dropout_forward(x, rate: float, rng: Optional[np.random.Generator] = None):
    """(x * noise, noise), noise ~ N(1, sqrt(rate / (1 - rate))) per value (GaussianDropout in training); the
    backward pass multiplies the gradient by the same noise."""
    x = check_numeric_array(x, "gaussian_dropout_forward", "x")
    _check_noise_arguments("gaussian_dropout_forward", "rate", rate, 1.0, rng)
    noise = _standard_normal(x, rng)
    noise *= np.sqrt(rate / (1.0 - rate))
    noise += 1.0
    return x * noise, noise


SELU_ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946   # SELU's negative limit


def alpha_dropout_forward(x, rate: float, rng: Optional[np.random.Generator] = None, noise_shape=None):
    """(a · where(kept, x, α') + b, a · kept): Keras' AlphaDropout in training.  A value is dropped with
    probability `rate` (per slice where `noise_shape` has 1s) and set to SELU's negative saturation α' =
    -λα; a and b restore the mean and variance of SELU's self-normalizing activations:
    a = ((1 - rate)(1 + rate α'²))^-1/2, b = -a α' rate."""
    op = "alpha_dropout_forward"
    x = check_numeric_array(x, op, "x")
    _check_noise_arguments(op, "rate", rate, 1.0, rng)
    shape = x.shape if noise_shape is None else tuple(s if n is None else int(n) for s, n in zip(x.shape, noise_shape))
    if noise_shape is not None and (len(tuple(noise_shape)) != x.ndim or
                                    any(m not in (1, s) for m, s in zip(shape, x.shape))):
        raise ValueError(f"{op}: argument `noise_shape` {tuple(noise_shape)} must have x's rank {x.ndim} with each "
                         f"size 1 or x's (shape {x.shape})")
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    keep = (_rng.generator() if rng is None else rng).random(shape) >= rate
    a = ((1.0 - rate) * (1.0 + rate * SELU_ALPHA_P ** 2)) ** -0.5
    b = -a * SELU_ALPHA_P * rate
    y = (a * np.where(keep, x, SELU_ALPHA_P) + b).astype(dtype)
    return y, np.broadcast_to(a * keep, x.shape).astype(dtype)


def _standard_normal(x: np.ndarray, rng) -> np.ndarray:
    """N(0, 1) draws of x's shape in x's float dtype (float64 for integers), drawn in float32 or float64 without
    a float64 copy of a float32 tensor."""
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    rng = _rng.generator() if rng is None else rng
    drawn = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
    return rng.standard_normal(x.shape, dtype=drawn).astype(dtype, copy=False)


def _check_noise_arguments(op: str, arg: str, value, below: float, rng) -> None:
    """`value` a finite number in [0, below); `rng` None or a NumPy Generator."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not 0 <= value < below:
        span = "[0, 1)" if below == 1.0 else "[0, inf)"
        raise ValueError(f"{op}: argument `{arg}` must be a finite number in {span}, got {value!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: argument `rng` must be None or a numpy.random.Generator, got {type(rng).__name__}")
