"""Models: `Sequential` (structure, summary, weights, config) on `Model` (training)."""

from .sequential import Sequential, model_from_config, model_from_json
from .training import Model

__all__ = ["Model", "Sequential", "model_from_config", "model_from_json"]
