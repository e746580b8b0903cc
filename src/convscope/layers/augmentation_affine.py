"""Keras 3's affine augmentation layers: `RandomRotation`, `RandomZoom`, `RandomTranslation`, `RandomShear`,
the projective `RandomPerspective` and `RandomElasticTransform` (a smooth random displacement per pixel).

Each draws one transform per image in training (Keras' matrices, `ops.augment`) and resamples the
images through it with `interpolation` ("bilinear" or "nearest") and `fill_mode` ("reflect",
"wrap", "constant" with `fill_value`, "nearest") — `ops.augment.affine_transform`, which matches
Keras on torch; the identity at inference.  The resampling is linear in the images, so the
backward pass is exact (each output gradient back to the pixels it read).
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..ops import augment
from .augmentation import (_IDENTITY, BaseAugmentation, _is_number, _numbers, _plain, axis_factor, check_value_range,
                           keras_factor)
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

    def _draw(self, x, rng):
        height, width = self._size(x)
        return self._transforms(x.shape[0], height, width, rng)

    def _apply(self, x, transforms):
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


class RandomShear(_AffineAugmentation):
    """Shears each image: output (x, y) reads the input at (x + sx·y, sy·x + y), sx drawn in `x_factor` and
    sy in `y_factor` (a number f in [0, 1] gives [-f, f]; a pair [lower, upper]), both turned by one random
    sign per image (Keras')."""

    def __init__(self, x_factor=0.0, y_factor=0.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 data_format=None, seed=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        where = self._describe()
        self.x_factor = self._factor(x_factor, "x_factor", where)
        self.y_factor = self._factor(y_factor, "y_factor", where)

    @staticmethod
    def _factor(factor, arg: str, where: str):
        """(lower, upper): a number f in [0, 1] gives (-f, f); a pair, sorted, may hold numbers in [-1, 1] (Keras
        writes (-f, f) in its config, which Keras 3.15.1's own check then refuses: its files would not open)."""
        expected = "a number in [0, 1] or a list of two numbers in [-1, 1]"
        pair, values = _numbers(factor, arg, where, expected)
        if any(not (-1 if pair else 0) <= v <= 1 for v in values):
            raise ValueError(f"{where}: argument `{arg}` must be {expected}, got {factor!r}")
        return tuple(sorted(values)) if pair else (-abs(values[0]), abs(values[0]))

    def _transforms(self, n, height, width, rng):
        sign = np.where(rng.uniform(0, 1, size=n) > 0.5, -1.0, 1.0)
        shear_y = rng.uniform(self.y_factor[0], self.y_factor[1], size=n)
        shear_x = rng.uniform(self.x_factor[0], self.x_factor[1], size=n)
        return augment.shear_transforms(shear_x * sign, shear_y * sign)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"x_factor": list(self.x_factor), "y_factor": list(self.y_factor)})
        return config


class RandomPerspective(BaseAugmentation):
    """With a probability drawn in `factor` (a number f: [0, f]) per image, moves each corner of the image by
    up to `scale` / 2 of its coordinates and warps the image so (Keras' homography; outside the input:
    `fill_value`)."""

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_value=0.0, seed=None, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.factor = keras_factor(factor, (0, 1), where)
        if not _is_number(scale) or not 0 <= scale <= 1:
            raise (ValueError if _is_number(scale) else TypeError)(
                f"{where}: argument `scale` must be a number in [0, 1], got {scale!r}")
        self.scale = _plain(scale)
        if interpolation not in augment.INTERPOLATIONS:
            raise ValueError(f"{where}: argument `interpolation` must be one of {augment.INTERPOLATIONS}, got "
                             f"{interpolation!r}")
        self.interpolation = interpolation
        self.fill_value = check_float(fill_value, "fill_value", where)

    def _draw(self, x, rng):
        n = x.shape[0]
        height, width = self._size(x)
        if min(height, width) < 2:
            raise ValueError(f"{self._describe()}: expected images at least 2 x 2 (the corners' homography is "
                             f"singular below), got {height} x {width}")
        probability = rng.uniform(self.factor[0], self.factor[1], size=n)
        apply = rng.uniform(0.0, 1.0, size=n) < probability
        moves = rng.uniform(-0.5 * self.scale, 0.5 * self.scale, size=(n, 4, 2)).astype(np.float32)
        corners = np.array([[0.0, 0.0], [width - 1, 0.0], [0.0, height - 1], [width - 1, height - 1]], np.float32)
        start = np.repeat(corners[None], n, axis=0)
        return apply, augment.homography_transforms(start, start + start * moves)

    def _apply(self, x, params):
        apply, transforms = params
        warped, ctx = augment.affine_transform_forward(x, transforms, self.interpolation, "constant",
                                                       self.fill_value, self._format())
        flags = apply.reshape(-1, 1, 1, 1)
        return np.where(flags, warped, x), (flags, ctx)

    def _backward(self, ctx, grad_output):
        flags, warp = ctx
        return np.where(flags, augment.affine_transform_backward(grad_output, warp), grad_output)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"factor": list(self.factor), "scale": self.scale, "interpolation": self.interpolation,
                       "fill_value": self.fill_value, "seed": self.seed})
        return config


class RandomElasticTransform(BaseAugmentation):
    """With a probability drawn in `factor` per image, moves each pixel by a smooth random field: Keras' normal
    fields blurred by a Gaussian of sigma = 0.05 d min(H, W), scaled by alpha = 0.1 d max(H, W), d drawn in
    `scale` once per batch; then clips every image to `value_range` (kept as given)."""

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.factor = keras_factor(factor, (0, 1), where)
        self.scale = keras_factor(scale, (0, 1), where, arg="scale")
        self.interpolation = _check_choice(interpolation, augment.INTERPOLATIONS, "interpolation", where)
        self.fill_mode = _check_choice(fill_mode, augment.MAP_FILL_MODES, "fill_mode", where)
        self.fill_value = check_float(fill_value, "fill_value", where)
        self.value_range = check_value_range(value_range, where)

    def _draw(self, x, rng):
        if self.scale[1] == 0 or self.factor[1] == 0:       # Keras draws nothing and leaves the images as they are
            return None
        n, (height, width) = x.shape[0], self._size(x)
        probability = rng.uniform(self.factor[0], self.factor[1], size=n)
        apply = rng.uniform(0.0, 1.0, size=n) < probability
        distortion = np.float32(rng.uniform(self.scale[0], self.scale[1]))
        alpha = np.float32(max(height, width)) * (np.float32(0.1) * distortion)
        sigma = np.float32(min(height, width)) * (np.float32(0.05) * distortion)
        noise = [rng.standard_normal((n, height, width)).astype(np.float32) for _ in range(2)]
        return apply, augment.elastic_coordinates(noise[0], noise[1], alpha, sigma)

    def _apply(self, x, params):
        if params is None:
            return x, _IDENTITY
        apply, (rows, cols) = params
        warped, warp = augment.map_coordinates_forward(x, rows, cols, self.interpolation, self.fill_mode,
                                                       self.fill_value, self._format())
        flags = apply.reshape(-1, 1, 1, 1)
        y = np.where(flags, warped, x)
        low, high = (np.asarray(v, y.dtype) for v in self.value_range)
        return np.clip(y, low, high), (flags, warp, (y >= low) & (y <= high))

    def _backward(self, ctx, grad_output):
        flags, warp, inside = ctx
        grad = np.where(inside, grad_output, 0).astype(grad_output.dtype)
        return np.where(flags, augment.affine_transform_backward(grad, warp), grad)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"factor": list(self.factor), "scale": list(self.scale), "interpolation": self.interpolation,
                       "fill_mode": self.fill_mode, "fill_value": self.fill_value,
                       "value_range": list(self.value_range), "seed": self.seed})
        return config


def _as_given(factor):
    """A (checked) factor as Keras writes it in the config: as given, a pair as a list, Python numbers."""
    if factor is None:
        return None
    if isinstance(factor, (tuple, list)):
        return [_plain(v) for v in factor]
    return _plain(factor)
