"""Keras' `keras.utils`: `to_categorical`, `normalize`, `set_random_seed` (and `plot_model`, `model_to_dot`)."""

from __future__ import annotations

from .. import _rng
from .np_utils import normalize, to_categorical

__all__ = ["to_categorical", "normalize", "set_random_seed", "plot_model", "model_to_dot", "profile"]


def set_random_seed(seed: int) -> None:
    """Seed every random draw in convscope (initializers, dropout, shuffling), NumPy's and Python's."""
    _rng.set_seed(seed)


def __getattr__(name: str):
    """`plot_model`/`model_to_dot` and `profile` load their code only when asked for."""
    if name in ("plot_model", "model_to_dot"):
        from . import vis_utils
        return getattr(vis_utils, name)
    if name in ("profile", "ProfileResult", "LayerTiming"):
        from . import profiling
        return getattr(profiling, name)
    raise AttributeError(f"module 'convscope.utils' has no attribute {name!r}")
