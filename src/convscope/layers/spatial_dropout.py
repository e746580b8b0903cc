"""`SpatialDropout1D`, `SpatialDropout2D` and `SpatialDropout3D`: dropout of whole feature maps (Keras' layers),
the identity at inference."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import ops
from .base import Shape, normalize_data_format
from .conv2d import check_image_rank
from .conv3d import check_volume_rank
from .dropout import Dropout
from .spec import LayerSpec


class SpatialDropout2D(Dropout):
    """Zeroes each channel of each image with probability `rate` in training, scaling the rest by
    1 / (1 - rate): one draw per (image, channel), noise shape (N, 1, 1, C) channels_last or
    (N, C, 1, 1) channels_first.  Neighbouring pixels of a feature map are strongly correlated,
    so dropping single pixels regularizes little; dropping the whole map does.

    The config has Keras' keys only (rate, seed, name, dtype, data_format: no `trainable`).
    """

    _CONFIG_DEFAULTS = {"data_format": "channels_last"}

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        if "noise_shape" in kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument `noise_shape` (the noise shape "
                            f"is fixed: one draw per image and channel), got {kwargs['noise_shape']!r}")
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = normalize_data_format(data_format, self._describe())

    def _spatial_noise_shape(self):
        return (None, None, 1, 1) if self.data_format == "channels_first" else (None, 1, 1, None)

    def describe(self):
        """A dropout (kind "dropout"), op "spatial": whole feature maps are dropped."""
        return LayerSpec(kind="dropout", data_format=self.data_format, rate=self.rate, op="spatial")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_image_rank(self, input_shape, self.data_format)
        return input_shape

    def forward(self, inputs: np.ndarray, training: bool = False):
        """(output, the (N, 1, 1, C) mask; None when nothing was dropped: inference, or rate 0)."""
        if not training or self.rate == 0.0:
            return inputs, None
        return ops.dropout_forward(inputs, self.rate, self._spatial_noise_shape(), self._generator)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        for key in ("trainable", "noise_shape"):
            del config[key]
        config["data_format"] = self.data_format
        return config


class SpatialDropout1D(Dropout):
    """Zeroes each channel of each sequence with probability `rate` in training, scaling the rest by
    1 / (1 - rate): one draw per (sample, channel) of an (N, steps, C) input, noise shape (N, 1, C).

    The config has Keras' keys only (rate, seed, name, dtype)."""

    def __init__(self, rate, seed=None, **kwargs):
        if "noise_shape" in kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument `noise_shape` (the noise shape "
                            f"is fixed: one draw per sample and channel), got {kwargs['noise_shape']!r}")
        super().__init__(rate, seed=seed, **kwargs)

    def describe(self):
        """A dropout (kind "dropout"), op "spatial": whole channels of a sequence are dropped."""
        return LayerSpec(kind="dropout", rate=self.rate, op="spatial")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"{self._describe()}: expected an input of rank 3 (batch, steps, channels), got shape "
                             f"{input_shape}")
        return input_shape

    def forward(self, inputs: np.ndarray, training: bool = False):
        """(output, the (N, 1, C) mask; None when nothing was dropped: inference, or rate 0)."""
        if not training or self.rate == 0.0:
            return inputs, None
        return ops.dropout_forward(inputs, self.rate, (None, 1, None), self._generator)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        for key in ("trainable", "noise_shape"):
            del config[key]
        return config


class SpatialDropout3D(SpatialDropout2D):
    """SpatialDropout2D's rule on volumes: one draw per (sample, channel), noise shape (N, 1, 1, 1, C)
    channels_last or (N, C, 1, 1, 1) channels_first."""

    def _spatial_noise_shape(self):
        return (None, None, 1, 1, 1) if self.data_format == "channels_first" else (None, 1, 1, 1, None)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = tuple(input_shape)
        check_volume_rank(self, input_shape, self.data_format)
        return input_shape
