"""Keras 3's adaptive pooling: `AdaptiveAveragePooling1D/2D/3D`, `AdaptiveMaxPooling1D/2D/3D` (PyTorch's
AdaptiveAvgPool/AdaptiveMaxPool): the spatial axes pooled to `output_size`, whatever the input's size.

Shape: (N, H, W, C) -> (N, out_h, out_w, C) (volumes: (N, D, H, W, C) -> (N, out_d, out_h, out_w, C)); output
cell i pools input cells ⌊i·H/out_h⌋ to ⌈(i+1)·H/out_h⌉ − 1 (`shapes.adaptive_windows`), each axis alike.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend, ops
from ..ops import shapes
from .base import Layer, Shape, check_kept_for_backward, normalize_data_format
from .conv1d import check_sequence_rank
from .conv2d import check_image_rank
from .conv3d import check_volume_rank
from .spec import LayerSpec


class _AdaptivePooling(Layer):
    """The shared body: `_rank` spatial axes (1, 2 or 3), `_mode` "avg" or "max"."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}
    _rank = 2
    _mode = "avg"

    def __init__(self, output_size, data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.output_size = shapes.normalize_tuple(output_size, self._rank, "output_size", where)
        self.data_format = normalize_data_format(data_format, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        {1: check_sequence_rank, 2: check_image_rank, 3: check_volume_rank}[self._rank](self, input_shape,
                                                                                         self.data_format)
        if self.data_format == "channels_first":
            return (input_shape[0], input_shape[1]) + self.output_size
        return (input_shape[0],) + self.output_size + (input_shape[-1],)

    def describe(self):
        return LayerSpec(kind="adaptive_pool", pool=self._mode, data_format=self.data_format, size=self.output_size)

    def _nhwc(self, x: np.ndarray) -> np.ndarray:
        """`x` as the channels-last batch the op takes (a sequence as one-row images)."""
        x = np.moveaxis(x, 1, -1) if self.data_format == "channels_first" else x
        return x[:, None] if self._rank == 1 else x

    def _own_layout(self, y: np.ndarray) -> np.ndarray:
        y = y[:, 0] if self._rank == 1 else y
        return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if self.data_format == "channels_first" else y

    def forward(self, inputs: np.ndarray, training: bool = False):
        if self._rank == 3:
            y, op_ctx = ops.adaptive_pool3d_forward(self._nhwc(inputs), self.output_size, self._mode)
        else:
            size = (1,) * (2 - self._rank) + self.output_size
            y, op_ctx = ops.adaptive_pool2d_forward(self._nhwc(inputs), size, self._mode)
        return self._own_layout(y), (op_ctx if backend.keeps_for_backward() else None)

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        check_kept_for_backward(self, ctx)
        pool_backward = ops.adaptive_pool3d_backward if self._rank == 3 else ops.adaptive_pool2d_backward
        return self._own_layout(pool_backward(self._nhwc(grad_output), ctx)), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"output_size": self.output_size, "data_format": self.data_format})
        return config


class AdaptiveAveragePooling1D(_AdaptivePooling):
    """The mean of each adaptive window of steps."""

    _rank, _mode = 1, "avg"


class AdaptiveMaxPooling1D(_AdaptivePooling):
    """The maximum of each adaptive window of steps."""

    _rank, _mode = 1, "max"


class AdaptiveAveragePooling2D(_AdaptivePooling):
    """The mean of each adaptive window of rows and columns."""

    _rank, _mode = 2, "avg"


class AdaptiveMaxPooling2D(_AdaptivePooling):
    """The maximum of each adaptive window of rows and columns."""

    _rank, _mode = 2, "max"


class AdaptiveAveragePooling3D(_AdaptivePooling):
    """The mean of each adaptive window of depths, rows and columns."""

    _rank, _mode = 3, "avg"


class AdaptiveMaxPooling3D(_AdaptivePooling):
    """The maximum of each adaptive window of depths, rows and columns."""

    _rank, _mode = 3, "max"
