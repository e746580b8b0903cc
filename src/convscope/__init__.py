"""convscope: a Keras-compatible convolutional-network library on NumPy that shows its work.

`import convscope as keras` gives the Keras names: `keras.layers.Conv2D`,
`keras.models.Sequential`, `keras.utils.to_categorical`, `keras.datasets.mnist`, ...
and the scope: `convscope.explain(model)`, `convscope.report(model, sample)`,
`convscope.gradients(model, x, target)` (d target / d input or a layer's output).
"""

from . import (activations, applications, backend, callbacks, constraints, datasets, initializers, layers,
               losses, metrics, models, ops, optimizers, preprocessing, random, regularizers, saving, utils, viz)
from .explain import explain
from .explain.gradients import gradients
from .layers import Input, InputSpec
from .models import Model, Sequential
from .viz import plot_feature_maps, plot_filters, plot_history, plot_model, report
from ._allocator import tune_allocator

tune_allocator()

__version__ = "0.1.0"

__all__ = [
    "activations", "applications", "backend", "callbacks", "constraints", "datasets", "initializers", "layers",
    "losses", "metrics", "models", "ops", "optimizers", "preprocessing", "random", "regularizers", "saving", "utils",
    "viz",
    "explain", "gradients", "report", "plot_model", "plot_filters", "plot_feature_maps", "plot_history",
    "Model", "Sequential", "Input", "InputSpec",
]
