"""Keras 3's affine augmentation layers: `RandomRotation`, `RandomZoom`, `RandomTranslation`.

Each draws one transform per image in training (Keras' matrices, `ops.augment`) and resamples the
images through it with `interpolation` ("bilinear" or "nearest") and `fill_mode` ("reflect",
"wrap", "constant" with `fill_value`, "nearest") — `ops.augment.affine_transform`, which matches
Keras on torch; the identity at inference.  The resampling is linear in the images, so the
backward pass is exact (each output gradient back to the pixels it read).
"""

from __future__ import annotations

from typing import Any, Dict

from ..ops import augment
from .augmentation import BaseAugmentation, _plain, axis_factor, keras_factor
from .base import check_float


def _check_choice(value, allowed, arg: str, where: str) -> str:
    if value not in allowed:
        raise ValueError(f"{where}: argument `{arg}` must be one of {allowed}, got {value!r}")
    return value


class _AffineAugmentation(BaseAugmentation):
    """fill_mode, interpolation and fill_value, the resampling and its backward pass."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.fill_mode = _check_choice(fill_mode, augment.FILL_MODES, "fill_mode", where)
        self.interpolation = _check_choice(interpolation, augment.INTERPOLATIONS, "interpolation", where)
        self.fill_value = check_float(fill_value, "fill_value", where)

    def _augment(self, x, rng):
        height, width = self._size(x)
        transforms = self._transforms(x.shape[0], height, width, rng)
        return augment.affine_transform_forward(x, transforms, self.interpolation, self.fill_mode,
                                                self.fill_value, self._format())

    def _backward(self, ctx, grad_output):
        return augment.affine_transform_backward(grad_output, ctx)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "interpolation": self.interpolation, "seed": self.seed,
                       "fill_value": self.fill_value})
        return config


class RandomRotation(_AffineAugmentation):
    """Rotates each image about its centre by an angle drawn in [lower, upper] · 360 degrees
    (`factor` as a fraction of a full turn: a number f gives [-f, f]; positive turns
    counter-clockwise on screen, as Keras)."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = keras_factor(0.0 if factor is None else factor, (-1, 1), self._describe())

    def _transforms(self, n, height, width, rng):
        angles = rng.uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, size=n)
        return augment.rotation_transforms(angles, height, width)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["factor"] = list(self.factor)
        return config


class RandomZoom(_AffineAugmentation):
    """Scales each image about its centre by 1 + a factor drawn per axis from `height_factor` and
    `width_factor` (fractions in (-1, 1]; positive zooms out; width_factor None: the height's
    draw for both axes, keeping the aspect ratio)."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        where = self._describe()
        self.height_lower, self.height_upper = axis_factor(height_factor, where, "height_factor", low_open=True)
        if width_factor is not None:
            self.width_lower, self.width_upper = axis_factor(width_factor, where, "width_factor", low_open=True)
        self.height_factor, self.width_factor = _as_given(height_factor), _as_given(width_factor)

    def _transforms(self, n, height, width, rng):
        height_zoom = rng.uniform(1.0 + self.height_lower, 1.0 + self.height_upper, size=n)
        width_zoom = height_zoom
        if self.width_factor is not None:
            width_zoom = rng.uniform(1.0 + self.width_lower, 1.0 + self.width_upper, size=n)
        return augment.zoom_transforms(width_zoom, height_zoom, height, width)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config


class RandomTranslation(_AffineAugmentation):
    """Moves each image by a fraction of its height and width drawn from `height_factor` and
    `width_factor` (in [-1, 1]; a number f gives [-f, f]; positive moves down and right)."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        where = self._describe()
        self.height_lower, self.height_upper = axis_factor(height_factor, where, "height_factor")
        self.width_lower, self.width_upper = axis_factor(width_factor, where, "width_factor")
        self.height_factor, self.width_factor = _as_given(height_factor), _as_given(width_factor)

    def _transforms(self, n, height, width, rng):
        dy = rng.uniform(self.height_lower, self.height_upper, size=n) * height
        dx = rng.uniform(self.width_lower, self.width_upper, size=n) * width
        return augment.translation_transforms(dx, dy)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config


def _as_given(factor):
    """A (checked) factor as Keras writes it in the config: as given, a pair as a list, Python numbers."""
    if factor is None:
        return None
    if isinstance(factor, (tuple, list)):
        return [_plain(v) for v in factor]
    return _plain(factor)
