"""A kernel divided by its largest singular value, estimated by power iteration (Keras' SpectralNormalization).

The kernel viewed as a matrix W (all axes but the last, by the last); from the running estimate u (1, out):
v = unit(u·Wᵀ), u = unit(v·W), `iterations` times; sigma = v·W·uᵀ; the kernel / sigma.  unit(x) = x · min(1 / ‖x‖,
1 / epsilon), Keras' `normalize(x, axis=None)` with epsilon 1e-7.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["spectral_normalize", "EPSILON"]

EPSILON = 1e-7      # Keras' backend.epsilon(): the least norm `normalize` divides by


def _unit(x: np.ndarray) -> np.ndarray:
    square_sum = np.sum(np.square(x, dtype=np.float64))
    inv = 1.0 / EPSILON if square_sum < EPSILON ** 2 else 1.0 / np.sqrt(square_sum)
    return x * np.asarray(inv, dtype=x.dtype)


def spectral_normalize(kernel: np.ndarray, u: np.ndarray, iterations: int) -> Tuple[np.ndarray, np.ndarray]:
    """(the new estimate u, kernel / sigma), both in the kernel's dtype; `u` of shape (1, kernel.shape[-1])."""
    matrix = kernel.reshape(-1, kernel.shape[-1])
    u = np.asarray(u, dtype=kernel.dtype)
    for _ in range(iterations):
        v = _unit(u @ matrix.T)
        u = _unit(v @ matrix)
    sigma = (v @ matrix @ u.T)[0, 0]
    return u, (kernel / sigma).astype(kernel.dtype, copy=False)
