"""The library's one random generator, so that `set_random_seed` makes runs repeatable.

Initializers, Dropout masks and `fit`'s shuffling all draw from `generator()`.
"""

from __future__ import annotations

import random

import numpy as np

_state = {"generator": np.random.default_rng()}


def generator() -> np.random.Generator:
    """The generator every random draw in convscope uses."""
    return _state["generator"]


def set_seed(seed: int) -> None:
    """Reseed convscope's generator, NumPy's legacy global one and Python's `random`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_random_seed: argument `seed` must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"set_random_seed: argument `seed` must be non-negative, got {seed}")
    _state["generator"] = np.random.default_rng(int(seed))
    np.random.seed(int(seed) % 2**32)
    random.seed(int(seed))
