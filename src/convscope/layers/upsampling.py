"""`UpSampling2D`: repeat each row and column `size` times (nearest), or interpolate them (bilinear)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import ops
from ..ops import shapes
from .base import Layer, Shape, normalize_data_format
from .conv2d import channel_dim, check_image_rank, image_shape, ops_format, spatial_dims
from .preprocessing import check_interpolation
from .spec import LayerSpec


class UpSampling2D(Layer):
    """(rows, cols) -> (rows·size[0], cols·size[1]): "nearest" repeats each row and column,
    "bilinear" interpolates as `Resizing` does (Keras' pixel-centre convention)."""

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.size = shapes.normalize_tuple(size, 2, "size", where)
        self.data_format = normalize_data_format(data_format, where)
        self.interpolation = check_interpolation(interpolation, where)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        rows, cols = spatial_dims(input_shape, self.data_format)
        return image_shape(input_shape[0], None if rows is None else rows * self.size[0],
                           None if cols is None else cols * self.size[1],
                           channel_dim(input_shape, self.data_format), self.data_format)

    def describe(self):
        return LayerSpec(kind="upsample2d", data_format=self.data_format, size=self.size,
                         interpolation=self.interpolation)

    def _axes(self, ndim: int):
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def forward(self, inputs: np.ndarray, training: bool = False):
        if self.interpolation == "bilinear":
            rows, cols = (inputs.shape[a] for a in self._axes(inputs.ndim))
            return ops.resize2d_forward(inputs, (rows * self.size[0], cols * self.size[1]), "bilinear",
                                        ops_format(self.data_format))
        rows_axis, cols_axis = self._axes(inputs.ndim)
        output = np.repeat(np.repeat(inputs, self.size[0], axis=rows_axis), self.size[1], axis=cols_axis)
        return output, inputs.shape

    def backward(self, ctx, grad_output: np.ndarray, need_input_grad: bool = True):
        """Nearest: each input cell's gradient is the sum over the size[0] x size[1] cells it was copied
        to; bilinear: the resize's backward pass."""
        if self.interpolation == "bilinear":
            return ops.resize2d_backward(grad_output, ctx), []
        rows_axis, cols_axis = self._axes(grad_output.ndim)
        shape = list(ctx)
        blocks = shape[:rows_axis] + [shape[rows_axis], self.size[0], shape[cols_axis], self.size[1]] + \
            shape[cols_axis + 1:]
        return grad_output.reshape(blocks).sum(axis=(rows_axis + 1, rows_axis + 3)), []

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format, "interpolation": self.interpolation})
        return config
