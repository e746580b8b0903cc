"""`UpSampling2D`: repeat each row and column `size` times (Keras' nearest-neighbour upsampling)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..ops import shapes
from .base import Layer, Shape, normalize_data_format
from .conv2d import channel_dim, check_image_rank, image_shape, spatial_dims


class UpSampling2D(Layer):
    """(rows, cols) -> (rows·size[0], cols·size[1]); only `interpolation="nearest"` for now
    (bilinear comes with the layer set of Keras applications)."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.size = shapes.normalize_tuple(size, 2, "size", where)
        self.data_format = normalize_data_format(data_format, where)
        if interpolation != "nearest":
            raise ValueError(f"{where}: argument `interpolation` must be 'nearest' (the only one convscope "
                             f"has yet), got {interpolation!r}")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        rows, cols = spatial_dims(input_shape, self.data_format)
        return image_shape(input_shape[0], None if rows is None else rows * self.size[0],
                           None if cols is None else cols * self.size[1],
                           channel_dim(input_shape, self.data_format), self.data_format)

    def _axes(self, ndim: int):
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def forward(self, inputs: np.ndarray, training: bool = False):
        rows_axis, cols_axis = self._axes(inputs.ndim)
        output = np.repeat(np.repeat(inputs, self.size[0], axis=rows_axis), self.size[1], axis=cols_axis)
        return output, inputs.shape

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """Each input cell's gradient is the sum over the size[0] x size[1] cells it was copied to."""
        rows_axis, cols_axis = self._axes(grad_output.ndim)
        shape = list(ctx)
        blocks = shape[:rows_axis] + [shape[rows_axis], self.size[0], shape[cols_axis], self.size[1]] + \
            shape[cols_axis + 1:]
        return grad_output.reshape(blocks).sum(axis=(rows_axis + 1, rows_axis + 3)), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format, "interpolation": self.interpolation})
        return config
