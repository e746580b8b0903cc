"""The library's one random generator, so that `set_random_seed` makes runs repeatable.

Initializers, Dropout masks and `fit`'s shuffling all draw from `generator()`.

Threads: the generator is shared by every thread.  Each draw is atomic (NumPy's Generator
holds its BitGenerator's lock for every call), so threads drawing at once never corrupt it
or get the same numbers; but which thread gets which numbers then depends on the scheduler.
So `set_random_seed` makes a run repeatable when one thread at a time draws: one thread
building or training models while others only predict (inference draws nothing).  Two
threads training (Dropout, shuffling) or building models at once get repeatable numbers
only from generators of their own: `Dropout(seed=...)`, initializers with `seed=...`.
"""

from __future__ import annotations

import random

import numpy as np

_state = {"generator": np.random.default_rng()}


def generator() -> np.random.Generator:
    """The generator every random draw in convscope uses (shared by all threads; see the module's notes)."""
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
