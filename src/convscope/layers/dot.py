"""`Dot`: per sample, the dot product of two inputs along one axis of each (Keras' `layers.Dot`, `layers.dot`).

Shape: (B, *x_rest) and (B, *y_rest) -> (B, *x_rest without axes[0], *y_rest without axes[1]), or (B, 1) where
only the batch axis is left (Keras' `batch_dot`); with `normalize=True` each input is first scaled to unit L2 norm
along its axis (the norm at least 1e-7, Keras' `backend.epsilon()`), so the output is the cosine similarity.
No weights.  The arithmetic is `ops.batch_dot`'s.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..ops import batch_dot, unit_norm
from .base import Shape
from .merging import _Merge
from .spec import LayerSpec


class Dot(_Merge):
    """The per-sample dot product of two inputs along `axes` (an int: that axis of both, negative counted
    from each input's end; a pair: one axis of each; never the batch axis 0), cosine similarity with
    `normalize=True`."""

    _MIN_INPUTS = _MAX_INPUTS = 2

    def __init__(self, axes, normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        items = list(axes) if isinstance(axes, (list, tuple)) else [axes]
        if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in items):
            raise TypeError(f"{where}: argument `axes` must be an int or a pair of ints, got {axes!r}")
        if isinstance(axes, (list, tuple)) and len(axes) != 2:
            raise ValueError(f"{where}: argument `axes` must be an int or a pair of ints (one axis of each input), "
                             f"got {axes!r}")
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(f"{where}: argument `normalize` must be a bool, got {normalize!r}")
        self.axes = [int(a) for a in axes] if isinstance(axes, (list, tuple)) else int(axes)
        self.normalize = bool(normalize)

    def _resolved(self, shapes) -> tuple:
        return batch_dot.batch_dot_axes(self.axes, [len(s) for s in shapes], self._describe())

    def compute_output_shape(self, input_shapes) -> Shape:
        return batch_dot.batch_dot_shape(self._shapes(input_shapes), self.axes, self._describe())

    def describe(self):
        """kind "merge", op "dot", axis the `axes` as given (resolved against the inputs' ranks by the analysis),
        normalize."""
        return LayerSpec(kind="merge", op="dot", axis=self.axes, normalize=self.normalize)

    def _inputs(self, arrays: List[np.ndarray]):
        """(the two inputs, unit-normalized where `normalize`; their normalization contexts; the axes)."""
        axes = self._resolved([x.shape for x in arrays])
        if not self.normalize:
            return arrays, (None, None), axes
        pairs = [unit_norm.unit_norm_forward(x, axis, batch_dot.NORMALIZE_EPSILON) for x, axis in zip(arrays, axes)]
        return [y for y, _ in pairs], tuple(ctx for _, ctx in pairs), axes

    def _merge(self, arrays):
        inputs, _, axes = self._inputs(arrays)
        return batch_dot.batch_dot_forward(inputs[0], inputs[1], axes)[0]

    def _merge_for_backward(self, arrays):
        inputs, norms, axes = self._inputs(arrays)
        out, ctx = batch_dot.batch_dot_forward(inputs[0], inputs[1], axes)
        return out, {"dot": ctx, "norms": norms}

    def _merge_backward(self, ctx: Dict[str, Any], grad: np.ndarray) -> List[np.ndarray]:
        saved = ctx["saved"]
        grads = batch_dot.batch_dot_backward(grad, saved["dot"])
        return [g if norm is None else unit_norm.unit_norm_backward(g, norm) for g, norm in zip(grads, saved["norms"])]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"axes": self.axes, "normalize": self.normalize})
        return config


def dot(inputs, axes=-1, **kwargs):
    """Keras' `layers.dot(inputs, axes=-1, normalize=False)`: `Dot(axes=axes, **kwargs)(inputs)`."""
    return Dot(axes=axes, **kwargs)(inputs)
