"""A classifier's output as class probabilities, shared by the report and `plot_feature_maps`.

The model's last output for one sample: a softmax (or values already summing to 1)
is taken as it is, sigmoid units as independent probabilities (multi-label), other
vectors (logits) through a softmax, a single sigmoid unit as [1 − p, p]; a single
linear unit is a regression and gives none.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def final_activation(rows) -> Optional[str]:
    """The activation the model ends with (its last layer's, or a last Activation layer's), from
    `analyze(model).layers`."""
    for row in reversed(rows):
        if row.kind == "dropout":
            continue
        return row.activation
    return None


def class_probabilities(values, activation: Optional[str]) -> Optional[Tuple[np.ndarray, str]]:
    """(probabilities, how they were read) of one output vector, or None when it is not a classifier's."""
    values = np.asarray(values, np.float64).reshape(-1)
    if not values.size or not np.all(np.isfinite(values)):
        return None
    if values.size == 1:      # a binary classifier's probability; a single linear output is a regression
        return (np.array([1.0 - values[0], values[0]]), "sigmoid") if activation == "sigmoid" else None
    if activation == "sigmoid":      # multi-label: each unit its own class's probability (no softmax)
        return values, "sigmoid"
    if activation == "softmax" or (np.all(values >= 0) and abs(values.sum() - 1.0) < 1e-3):
        return values, "softmax"
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum(), "softmax of logits"
