"""InceptionResNetV2's residual merge, as `keras.src.applications.inception_resnet_v2` defines it, so that
Keras' InceptionResNetV2 files load: `CustomScaleLayer([x, r])` = x + scale · r (Keras' name and module)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .base import check_float
from .merging import _ElementwiseMerge, _sum_to
from .spec import LayerSpec


class CustomScaleLayer(_ElementwiseMerge):
    """`inputs[0] + inputs[1] * scale`: a residual branch scaled before it is added (arXiv:1602.07261)."""

    keras_module = "keras.src.applications.inception_resnet_v2"
    keras_registered_name = "CustomScaleLayer"
    _MIN_INPUTS = _MAX_INPUTS = 2

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_float(scale, "scale", self._describe())

    def describe(self):
        return LayerSpec(kind="merge", op="custom_scale")

    def _merge(self, arrays):
        x, residual = self._aligned(arrays)
        return x + residual * np.asarray(self.scale, dtype=residual.dtype)

    def _merge_for_backward(self, arrays):
        return self._merge(arrays), {"aligned": [x.shape for x in self._aligned(arrays)]}

    def _merge_backward(self, ctx, grad):
        first, second = ctx["saved"]["aligned"]
        return [_sum_to(grad, first), _sum_to(grad * np.asarray(self.scale, dtype=grad.dtype), second)]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"scale": self.scale})
        return config
