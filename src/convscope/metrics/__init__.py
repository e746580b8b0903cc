"""Keras-named metrics: per-sample functions, running `Metric` objects, and `"accuracy"` resolved
from the shapes as Keras' `compile` does.

`compile(metrics=[...])` takes names ("accuracy", "auc", "mae"), functions and `Metric` objects;
an object is used as it is (as in Keras, two models compiled with one object share its state).
`result()` is the running value since `reset_state()` — what `fit` shows and `History` records.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from .accuracy import (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                       SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy)
from .auc import AUC
from .base import Mean, MeanMetricWrapper, Metric
from .functions import (FUNCTIONS, accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
                        sparse_top_k_categorical_accuracy, top_k_categorical_accuracy)
from .f_score import F1Score, FBetaScore
from .iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from .loss_metrics import (BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge, CosineSimilarity, Hinge,
                           KLDivergence, LogCoshError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
                           Poisson, SparseCategoricalCrossentropy, SquaredHinge)
from .precision_recall import FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives, TruePositives
from .regression import MeanAbsoluteError, MeanSquaredError, R2Score, RootMeanSquaredError
from .. import backend
# Keras 3's `keras.metrics.<name>` functions are its `keras.losses.<name>` functions themselves
from ..losses import (binary_crossentropy, binary_focal_crossentropy, categorical_crossentropy,
                      categorical_focal_crossentropy, categorical_hinge, hinge, huber, kl_divergence, log_cosh,
                      mean_absolute_error, mean_absolute_percentage_error, mean_squared_error,
                      mean_squared_logarithmic_error, poisson, sparse_categorical_crossentropy, squared_hinge)

LOSS_FUNCTIONS = tuple(function.__name__ for function in (
    binary_crossentropy, binary_focal_crossentropy, categorical_crossentropy, categorical_focal_crossentropy,
    categorical_hinge, hinge, huber, kl_divergence, log_cosh, mean_absolute_error, mean_absolute_percentage_error,
    mean_squared_error, mean_squared_logarithmic_error, poisson, sparse_categorical_crossentropy, squared_hinge))

__all__ = [
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "Metric", "Mean", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "Precision", "Recall", "AUC", "MeanIoU", "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError",
    "IoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU", "F1Score", "FBetaScore", "TruePositives", "FalsePositives",
    "TrueNegatives", "FalseNegatives", "R2Score", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy", "KLDivergence", "Poisson", "Hinge", "SquaredHinge", "CategoricalHinge",
    "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "LogCoshError", "CosineSimilarity",
    "get", "resolve", "serialize", "deserialize", *LOSS_FUNCTIONS,
]

CLASSES: Dict[str, type] = {cls.__name__: cls for cls in (
    Mean, MeanMetricWrapper, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, Precision, Recall, AUC, MeanIoU, MeanSquaredError,
    MeanAbsoluteError, RootMeanSquaredError, IoU, BinaryIoU, OneHotIoU, OneHotMeanIoU, F1Score, FBetaScore,
    TruePositives, FalsePositives, TrueNegatives, FalseNegatives, R2Score, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, KLDivergence, Poisson, Hinge, SquaredHinge, CategoricalHinge,
    MeanAbsolutePercentageError, MeanSquaredLogarithmicError, LogCoshError, CosineSimilarity)}
# Keras' snake-case names of the classes that need no argument ("auc", "precision", "binary_accuracy")
_CLASS_NAMES: Dict[str, type] = {backend.snake_case(name): cls for name, cls in CLASSES.items()
                                 if cls not in (MeanMetricWrapper, MeanIoU, IoU, OneHotIoU, OneHotMeanIoU)}


def _known() -> str:
    return ", ".join(["accuracy", "acc"] + sorted(set(FUNCTIONS) | set(CLASSES) | set(_CLASS_NAMES)))


def get(identifier):
    """As `keras.metrics.get`: a class name (or its snake case) gives an instance, a function name
    the function, a config dict the object; a `Metric`, a Metric class or a function as given."""
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, Metric) or callable(identifier):
        return identifier
    if isinstance(identifier, str):
        if identifier in _CLASS_NAMES or identifier in CLASSES and identifier != "MeanMetricWrapper":
            return _CLASS_NAMES.get(identifier, CLASSES.get(identifier))()
        if identifier in FUNCTIONS:
            return FUNCTIONS[identifier]
        raise ValueError(f"metrics.get: unknown metric {identifier!r}; known metrics: {_known()}")
    raise TypeError(f"metrics.get: expected a metric name, a config dict, a function or a Metric, "
                    f"got {identifier!r}")


def _accuracy_for_shapes(y_true_shape: Tuple[int, ...], y_pred_shape: Tuple[int, ...]) -> type:
    """Keras' rule: one output unit -> binary; labels without a class axis -> sparse; else categorical."""
    is_binary = y_pred_shape[-1] == 1
    is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and not is_binary)
    if is_binary:
        return BinaryAccuracy
    return SparseCategoricalAccuracy if is_sparse else CategoricalAccuracy


def resolve(identifier, y_true_shape, y_pred_shape) -> Metric:
    """The running `Metric` `compile(metrics=[...])` uses: a Metric object itself (Keras shares it),
    "accuracy"/"acc" by the shapes, a name keeps its spelling as the metric's name."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return _accuracy_for_shapes(tuple(y_true_shape), tuple(y_pred_shape))(name=identifier)
    metric = get(identifier)
    if not isinstance(metric, Metric):
        metric = MeanMetricWrapper(metric, name=getattr(metric, "__name__", None) or None)
    if isinstance(identifier, str):
        metric.name = identifier
    return metric


def serialize(identifier) -> Any:
    """A metric as compile settings store it: a name as it is, a function by its name, a Metric
    object as Keras writes one ({"module", "class_name", "config", "registered_name"})."""
    if isinstance(identifier, str):
        return identifier
    if isinstance(identifier, Metric):
        if type(identifier).__name__ not in CLASSES or type(identifier) is MeanMetricWrapper:
            return identifier.name
        return {"module": "keras.metrics", "class_name": type(identifier).__name__,
                "config": identifier.get_config(), "registered_name": None}
    return getattr(identifier, "__name__", repr(identifier))


def deserialize(config: Dict[str, Any]) -> Metric:
    """The Metric of a `serialize` dict; only convscope's own classes (nothing is imported)."""
    if not isinstance(config, dict) or not isinstance(config.get("config", {}), dict):
        raise ValueError(f"metrics.deserialize: expected {{'class_name': ..., 'config': {{...}}}}, got {config!r}")
    name = config.get("class_name")
    if name not in CLASSES or name == "MeanMetricWrapper" or type(CLASSES[name]) is not type:
        raise ValueError(f"metrics.deserialize: unknown metric class {name!r}; known: "
                         f"{', '.join(sorted(n for n in CLASSES if n != 'MeanMetricWrapper'))}")
    return CLASSES[name].from_config(dict(config.get("config", {})))
