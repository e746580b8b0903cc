"""Keras 3's augmentation layers that map pixel values: RandomGrayscale, RandomInvert, Solarization,
RandomPosterization, RandomColorDegeneration, RandomSharpness, RandomSaturation, RandomHue, RandomColorJitter,
RandomGaussianBlur, RandomErasing, Equalization (random, in training only) and AutoContrast (in training and at
inference, as Keras).

Each layer draws its parameters per image as Keras' `get_random_transformation` does (the same
distributions, from convscope's generator: other numbers than torch's for the same seed) and maps the
images with `ops.augment_color`, whose maps follow Keras' code op by op.  In training the map runs on a
value a per-call `ops.Tape` watches, kept in the call's ctx: the backward pass is the tape's gradient, which
follows torch's rules through the same ops (RandomPosterization and Equalization give a zero gradient, as
their casts and table lookups do in torch).  Configs are Keras', quirks included (RandomGrayscale keeps no
seed; RandomInvert and RandomHue keep `value_range` as given, the others sorted).
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import backend
from ..ops import augment_color, clahe
from ..ops.tape import Tape, Traced
from .augmentation import (BaseAugmentation, RandomBrightness, RandomContrast, _is_number, _numbers, _plain,
                           check_value_range, keras_factor)
from .base import Shape, check_positive_int
from .conv2d import channel_dim
from .spec import LayerSpec

_ZERO_GRADIENT = "zero gradient"      # a ctx whose map passes no gradient (a cast to bytes, a table lookup)


def _no_seed(kwargs, cls: str) -> None:
    """Keras' AutoContrast and Equalization draw nothing and refuse a `seed`."""
    if "seed" in kwargs:
        raise TypeError(f"{cls}: unexpected argument `seed` (the layer draws nothing), got {kwargs['seed']!r}")


def _value_range(value_range, where: str, sort: bool = True) -> list:
    values = check_value_range(value_range, where)
    return sorted(values) if sort else values


class _ColorAugmentation(BaseAugmentation):
    """A map of `ops.augment_color` with parameters drawn per image, applied on a taped value in training.
    Subclasses write `_draw(x, rng)` (the parameters) and `_map(x, params)` (the map, on an array or a taped
    value); `_CHANNELS` the channel counts the map takes (None: any)."""

    _CHANNELS = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = super().compute_output_shape(input_shape)
        channels = channel_dim(input_shape, self.data_format)
        if self._CHANNELS is not None and channels is not None and channels not in self._CHANNELS:
            raise ValueError(f"{self._describe()}: expected images of {' or '.join(map(str, self._CHANNELS))} "
                             f"channels ({self.data_format}), got input shape {tuple(input_shape)}")
        return input_shape

    def _axis(self) -> int:
        return augment_color.channel_axis(self.data_format)

    def _augment(self, x, rng):
        self.compute_output_shape(x.shape)
        return self._apply(x, self._draw(x, rng))

    def _apply(self, x, params):
        """(the mapped images, the ctx of their backward pass); an empty batch as it is."""
        if x.shape[0] == 0:
            return x, (_ZERO_GRADIENT, x.shape, x.dtype)
        if not backend.keeps_for_backward():
            return np.asarray(self._map(x, params), dtype=x.dtype), None
        with Tape() as tape:
            watched = tape.watch(x)
            y = self._map(watched, params)
        if not isinstance(y, Traced):
            return np.asarray(y, dtype=x.dtype), (_ZERO_GRADIENT, x.shape, x.dtype)
        return np.asarray(y.value, dtype=x.dtype), (tape, watched, y)

    def _backward(self, ctx, grad_output):
        if isinstance(ctx[0], str):
            return np.zeros(ctx[1], dtype=ctx[2])
        tape, watched, y = ctx
        return tape.gradient(y, [watched], output_gradient=np.asarray(grad_output, dtype=y.dtype))[0]

    def _uniform(self, rng, low, high, count) -> np.ndarray:
        return rng.uniform(low, high, size=count).astype(np.float32)


class _RangedColorAugmentation(_ColorAugmentation):
    """A colour layer with Keras' `factor` (its `_FACTOR_BOUNDS`) and `value_range` (`_SORTED`: kept sorted)."""

    _BOUNDS = (0, 1)
    _SORTED = True

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.factor = keras_factor(factor, self._BOUNDS, where)
        self.value_range = _value_range(value_range, where, self._SORTED)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"factor": list(self.factor), "value_range": list(self.value_range), "seed": self.seed})
        return config


class RandomGrayscale(_ColorAugmentation):
    """Turns each image gray with probability `factor` (Keras' luma 0.2989 r + 0.587 g + 0.114 b on every
    channel; a one-channel image stays as it is)."""

    _CHANNELS = (1, 3)

    def __init__(self, factor=0.5, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if not _is_number(factor) or not 0 <= factor <= 1:
            raise (ValueError if _is_number(factor) else TypeError)(
                f"{self._describe()}: argument `factor` must be a number in [0, 1], got {factor!r}")
        self.factor = _plain(factor)

    def _draw(self, x, rng):
        return rng.uniform(0, 1, size=x.shape[0]) < self.factor

    def _map(self, x, apply):
        return augment_color.select_grayscale(x, apply, self._axis())

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["factor"] = self.factor       # Keras' config has no seed
        return config


class RandomInvert(_RangedColorAugmentation):
    """Replaces each image by `value_range[1] - x` with a probability drawn in `factor` (a number f: [0, f])."""

    _SORTED = False

    def __init__(self, factor=1.0, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(factor, value_range, data_format, seed, **kwargs)

    def _draw(self, x, rng):
        probability = self._uniform(rng, self.factor[0], self.factor[1], x.shape[0])
        return self._uniform(rng, 0, 1, x.shape[0]) < probability

    def _map(self, x, apply):
        return augment_color.invert(x, apply, self.value_range[1])


class Solarization(_ColorAugmentation):
    """On the [0, 255] scale: adds a value drawn in Keras' [a0, a1 · 255] (`addition_factor`), clips to
    [0, 255], then flips `255 - r` each value at or above a threshold drawn in [t0, t1 · 255]
    (`threshold_factor`); a number f gives (0, f)."""

    def __init__(self, addition_factor=0.0, threshold_factor=0.0, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        where = self._describe()
        self.addition_factor = self._factor(addition_factor, "addition_factor", where)
        self.threshold_factor = self._factor(threshold_factor, "threshold_factor", where)
        self.value_range = _value_range(value_range, where)

    @staticmethod
    def _factor(factor, arg: str, where: str):
        expected = "a number or a list of two numbers in [0, 1]"
        pair, values = _numbers(factor, arg, where, expected)
        if any(not 0 <= v <= 1 for v in values):
            raise ValueError(f"{where}: argument `{arg}` must be {expected}, got {factor!r}")
        return tuple(sorted(values)) if pair else (0, values[0])

    def _draw(self, x, rng):
        count = x.shape[0]
        return (self._uniform(rng, self.addition_factor[0], self.addition_factor[1] * 255, count),
                self._uniform(rng, self.threshold_factor[0], self.threshold_factor[1] * 255, count))

    def _map(self, x, params):
        return augment_color.solarize(x, params[0], params[1], self.value_range)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"value_range": list(self.value_range), "addition_factor": list(self.addition_factor),
                       "threshold_factor": list(self.threshold_factor), "seed": self.seed})
        return config


class RandomPosterization(_RangedColorAugmentation):
    """Keeps the highest `bits` bits of each value on the [0, 255] scale, `bits` an integer drawn in
    [factor[0], factor[1]) (Keras' randint; both ends equal: that number) per image; as Keras' bytes, 0 bits or
    more than 8 clear every bit.  No gradient."""

    _BOUNDS = (1, 8)

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(factor, value_range, data_format, seed, **kwargs)
        if any(v != int(v) or v < 0 for v in self.factor):     # Keras' randint of bytes fails on them at call time
            raise ValueError(f"{self._describe()}: argument `factor` must hold whole numbers of bits from 0, got "
                             f"{factor!r}")

    def _draw(self, x, rng):
        low, high = (int(v) for v in self.factor)
        bits = rng.integers(low, high, size=x.shape[0]) if low != high else np.full(x.shape[0], low)
        return (8 - bits) % 256          # Keras' uint8 arithmetic

    def _map(self, x, shifts):
        return augment_color.posterize(x, shifts, self.value_range)


class RandomColorDegeneration(_RangedColorAugmentation):
    """Blends each image toward its gray version: x + f (gray - x), f drawn in `factor` (bounds [-1, 1]: a
    number f gives [-f, f]; below 0 the colours strengthen), clipped to `value_range`."""

    _BOUNDS = (-1, 1)
    _CHANNELS = (1, 3)

    def _draw(self, x, rng):
        return self._uniform(rng, self.factor[0], self.factor[1], x.shape[0])

    def _map(self, x, factors):
        return augment_color.degenerate(x, factors, self.value_range, self._axis())


class RandomSharpness(_RangedColorAugmentation):
    """Blends each image with its 3x3 smoothing: x + (1 - 2 f) (smoothed - x), f drawn in `factor` (f = 0.5:
    the image itself; above it sharper), clipped to `value_range`."""

    def _draw(self, x, rng):
        return self._uniform(rng, self.factor[0], self.factor[1], x.shape[0])

    def _map(self, x, factors):
        return augment_color.sharpen(x, factors, self.value_range, self._axis())


class RandomSaturation(_RangedColorAugmentation):
    """Scales the HSV saturation of each image by f / (1 - f + 1e-7), f drawn in `factor` (bounds [-1, 1]),
    the saturation clipped to `value_range` (as Keras does)."""

    _BOUNDS = (-1, 1)
    _CHANNELS = (3,)

    def _draw(self, x, rng):
        factor = self._uniform(rng, self.factor[0], self.factor[1], x.shape[0])
        return factor / (np.float32(1) - factor + np.float32(backend.epsilon()))

    def _map(self, x, factors):
        return augment_color.adjust_saturation(x, factors, self.value_range, self._axis())


class RandomHue(_RangedColorAugmentation):
    """Turns the HSV hue of each image by ± f / 2 of a full turn, f drawn in `factor` and the sign at random,
    on the [0, 1] scale of `value_range` (kept as given)."""

    _SORTED = False
    _CHANNELS = (3,)

    def _draw(self, x, rng):
        sign = np.where(self._uniform(rng, 0, 1, x.shape[0]) > 0.5, np.float32(-1), np.float32(1))
        return sign * self._uniform(rng, self.factor[0], self.factor[1], x.shape[0]) * np.float32(0.5)

    def _map(self, x, factors):
        return augment_color.adjust_hue(x, factors, self.value_range, self._axis())


class RandomGaussianBlur(_ColorAugmentation):
    """Blurs each image with a probability drawn in `factor` (a number f: [0, f]) by a `kernel_size` Gaussian of
    one (sigma_x, sigma_y) pair per batch drawn in `sigma` (Keras' bounds [0, 1], plus 1e-6), zero padding,
    then clips every image to `value_range` (kept as given)."""

    def __init__(self, factor=1.0, kernel_size=3, sigma=1.0, value_range=(0, 255), data_format=None, seed=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.factor = keras_factor(factor, (0, 1), where)
        self.kernel_size = self._kernel_size(kernel_size, where)
        self.sigma = keras_factor(sigma, (0, 1), where, arg="sigma")
        self.value_range = _value_range(value_range, where, sort=False)

    @staticmethod
    def _kernel_size(kernel_size, where: str):
        """(k, k) of an odd positive int (a pair of two equal ones: Keras' blur runs square kernels only)."""
        pair, values = _numbers(kernel_size, "kernel_size", where, "an odd positive int or a pair of two equal ones")
        if any(v != int(v) or v < 1 or int(v) % 2 == 0 for v in values) or values[0] != values[-1]:
            raise ValueError(f"{where}: argument `kernel_size` must be an odd positive int or a pair of two equal "
                             f"ones (Keras 3.15.1's blur fails on other pairs), got {kernel_size!r}")
        return int(values[0]), int(values[-1])

    def _draw(self, x, rng):
        probability = self._uniform(rng, self.factor[0], self.factor[1], x.shape[0])
        apply = self._uniform(rng, 0.0, 1.0, x.shape[0]) < probability
        return apply, self._uniform(rng, self.sigma[0], self.sigma[1], 2) + np.float32(1e-6)

    def _map(self, x, params):
        return augment_color.gaussian_blur(x, params[0], self.kernel_size[0], params[1], self.value_range,
                                           self._axis())

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"factor": list(self.factor), "kernel_size": list(self.kernel_size), "sigma": list(self.sigma),
                       "value_range": list(self.value_range), "seed": self.seed})
        return config


def box_masks(layer, x, rng, width_ratios, height_ratios):
    """Keras' boxes of RandomErasing and CutMix: per image, sides `ratio` of the image's at a uniform place
    (each axis' start drawn in turn, width first); (masks of x's shape, the boxes' float32 area shares)."""
    count, (height, width) = x.shape[0], layer._size(x)

    def bounds(length, ratio):
        crop = (np.asarray(ratio, np.float32) * np.float32(length)).astype(np.float32)
        start = rng.uniform(0, 1, size=count).astype(np.float32) * (np.float32(length) - crop)
        return start[:, None, None], (start + crop)[:, None, None]
    (x0, x1), (y0, y1) = bounds(width, width_ratios), bounds(height, height_ratios)
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    masks = np.expand_dims((cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1), layer._axis())
    shares = ((x1 - x0) * (y1 - y0)).reshape(-1) / np.float32(width * height)
    return np.broadcast_to(masks, x.shape), shares.astype(np.float32)


class RandomErasing(_ColorAugmentation):
    """With a probability drawn in `factor` per image, fills a box of each image: its sides sqrt(s) of the
    image's, s drawn per side in `scale`, at a uniform place; the fill is `fill_value` (a number, or one per
    channel) or, None, normal noise times `value_range[1]`, clipped to `value_range` (kept as given)."""

    def __init__(self, factor=1.0, scale=(0.02, 0.33), fill_value=None, value_range=(0, 255), seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.factor = keras_factor(factor, (0, 1), where)
        self.scale = keras_factor(scale, (0, 1), where, arg="scale")
        self.fill_value = self._fill(fill_value, where)
        self.value_range = _value_range(value_range, where, sort=False)

    @staticmethod
    def _fill(fill_value, where: str):
        if fill_value is None:
            return None
        if isinstance(fill_value, (tuple, list)) and len(fill_value) == 3 and all(map(_is_number, fill_value)):
            return [_plain(v) for v in fill_value]
        if _is_number(fill_value):
            return _plain(fill_value)
        raise (ValueError if isinstance(fill_value, (tuple, list)) else TypeError)(
            f"{where}: argument `fill_value` must be None, a number or a list of three numbers, got {fill_value!r}")

    def _draw(self, x, rng):
        weight = np.sqrt(rng.uniform(self.scale[0], self.scale[1], size=(x.shape[0], 2)).astype(np.float32))
        masks, _ = box_masks(self, x, rng, weight[:, 0], weight[:, 1])
        probability = self._uniform(rng, self.factor[0], self.factor[1], x.shape[0])
        apply = self._uniform(rng, 0.0, 1.0, x.shape[0]) < probability
        return masks, apply, self._fill_values(x, rng)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        input_shape = super().compute_output_shape(input_shape)
        channels = channel_dim(input_shape, self.data_format)
        if isinstance(self.fill_value, list) and channels not in (None, len(self.fill_value)):
            raise ValueError(f"{self._describe()}: a `fill_value` of {len(self.fill_value)} numbers fills images of "
                             f"{len(self.fill_value)} channels ({self.data_format}), got input shape "
                             f"{tuple(input_shape)}")
        return input_shape

    def _fill_values(self, x, rng):
        if self.fill_value is None:
            fill = rng.standard_normal(x.shape).astype(np.float32) * np.float32(self.value_range[1])
        else:
            values = np.asarray(self.fill_value, np.float32)
            shape = [1] * x.ndim
            shape[self._axis()] = values.size
            fill = np.broadcast_to(values.reshape(shape), x.shape)
        return np.clip(fill, np.float32(self.value_range[0]), np.float32(self.value_range[1]))

    def _map(self, x, params):
        return augment_color.erase(x, *params)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"factor": list(self.factor), "scale": list(self.scale), "fill_value": self.fill_value,
                       "value_range": list(self.value_range), "seed": self.seed})
        return config


class Equalization(_ColorAugmentation):
    """Histogram equalization of each channel in training (Keras' histogram of `bins` bins over the whole
    batch, on the [0, 255] scale of `value_range`); the identity at inference.  No gradient."""

    def __init__(self, value_range=(0, 255), bins=256, data_format=None, **kwargs):
        _no_seed(kwargs, "Equalization")
        super().__init__(data_format=data_format, **kwargs)
        where = self._describe()
        self.bins = check_positive_int(bins, "bins", where)
        self.value_range = _value_range(value_range, where)

    def _draw(self, x, rng):
        return None

    def _map(self, x, params):
        return augment_color.equalize(x, self.value_range, self.bins, self._axis())

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"bins": self.bins, "value_range": list(self.value_range)})
        return config


class AutoContrast(_ColorAugmentation):
    """Stretches each image's values to the whole of `value_range` (its lowest to the low end, its highest
    to the high end); an image of one value stays as it is.  Applied at inference too, as Keras does."""

    def __init__(self, value_range=(0, 255), **kwargs):
        _no_seed(kwargs, "AutoContrast")
        super().__init__(**kwargs)
        self.value_range = _value_range(value_range, self._describe())

    def describe(self):
        """Not the identity at inference: each output reads its whole image (kind "other")."""
        return LayerSpec(kind="other", data_format=self.data_format)

    def _draw(self, x, rng):
        return None

    def _map(self, x, params):
        return augment_color.auto_contrast(x, self.value_range)

    def _infer(self, inputs):
        return self._apply(inputs, None)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["value_range"] = list(self.value_range)
        return config


class ContrastLimitedAdaptiveHistogramEqualization(_ColorAugmentation):
    """CLAHE (`ops.clahe`): histogram equalization per tile of a `tile_grid_size` grid, each tile's histogram
    clipped at `clip_limit` times the even share (0: no clipping), the tiles' tables blended bilinearly.  Applied
    at inference too, as Keras does; no gradient.  Keras 3.15.1 on its torch backend counts the histograms in
    integers and so cuts the clip limit to an integer, and pads a tile by repeating the edge row; convscope keeps the
    limit as given and pads by mirroring, as Keras' other backends do."""

    def __init__(self, value_range=(0, 255), clip_limit=4.0, tile_grid_size=(8, 8), data_format=None, **kwargs):
        _no_seed(kwargs, "ContrastLimitedAdaptiveHistogramEqualization")
        super().__init__(data_format=data_format, **kwargs)
        where = self._describe()
        self.value_range = _value_range(value_range, where, sort=False)      # as given, as Keras keeps it
        if isinstance(clip_limit, bool) or not _is_number(clip_limit) or not 0 <= clip_limit < float("inf"):
            raise ValueError(f"{where}: argument `clip_limit` must be a finite number >= 0, got {clip_limit!r}")
        self.clip_limit = float(clip_limit)
        if not isinstance(tile_grid_size, (list, tuple)) or len(tile_grid_size) != 2:
            raise ValueError(f"{where}: argument `tile_grid_size` must be a pair (rows, columns) of positive ints, "
                             f"got {tile_grid_size!r}")
        self.tile_grid_size = tuple(check_positive_int(n, "tile_grid_size", where) for n in tile_grid_size)

    def describe(self):
        """Not the identity at inference: each output reads its neighbouring tiles (kind "other")."""
        return LayerSpec(kind="other", data_format=self.data_format)

    def _draw(self, x, rng):
        return None

    def _map(self, x, params):
        images = np.asarray(x.value if isinstance(x, Traced) else x, dtype=np.float32)
        if np.isnan(images).any():
            raise ValueError(f"{self._describe()}: expected images without NaN (a pixel's bin is undefined), got "
                             f"{int(np.isnan(images).sum())} NaN values")
        first = self.data_format == "channels_first"
        images = images.transpose(0, 2, 3, 1) if first else images
        scaled = augment_color.to_value_range(images, self.value_range, (0, 255))
        out = augment_color.to_value_range(clahe.clahe(np.asarray(scaled, np.float32), self.clip_limit,
                                                       self.tile_grid_size), (0, 255), self.value_range)
        return np.asarray(out.transpose(0, 3, 1, 2) if first else out)

    def _infer(self, inputs):
        return self._apply(inputs, None)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"value_range": list(self.value_range), "clip_limit": self.clip_limit,
                       "tile_grid_size": list(self.tile_grid_size)})
        return config


class RandomColorJitter(BaseAugmentation):
    """RandomBrightness, RandomContrast, RandomSaturation and RandomHue in that order, each where its factor
    is given (None: left out), all with `value_range` and this layer's draws.  They take this layer's
    `data_format` (Keras 3.15.1 builds them channels_last whatever it is given: its channels_first jitter
    averages contrast over the wrong axes and fails on saturation and hue)."""

    _PARTS = (("brightness_factor", RandomBrightness), ("contrast_factor", RandomContrast),
              ("saturation_factor", RandomSaturation), ("hue_factor", RandomHue))

    def __init__(self, value_range=(0, 255), brightness_factor=None, contrast_factor=None, saturation_factor=None,
                 hue_factor=None, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range = _value_range(value_range, self._describe(), sort=False)
        given = dict(brightness_factor=brightness_factor, contrast_factor=contrast_factor,
                     saturation_factor=saturation_factor, hue_factor=hue_factor)
        self._parts = []
        for arg, cls in self._PARTS:
            setattr(self, arg, _as_given(given[arg]))
            if given[arg] is None:
                continue
            try:
                self._parts.append(cls(factor=given[arg], value_range=self.value_range, seed=seed,
                                       data_format=self.data_format,
                                       name=f"{self.name}_{backend.snake_case(cls.__name__)}"))
            except (TypeError, ValueError) as error:
                raise type(error)(f"{self._describe()}: argument `{arg}` is {cls.__name__}'s `factor`: {error}") \
                    from error

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        for part in self._parts:
            input_shape = part.compute_output_shape(input_shape)
        return super().compute_output_shape(input_shape)

    def _augment(self, x, rng):
        self.compute_output_shape(x.shape)
        contexts = []
        for part in self._parts:
            x, ctx = part._augment(x, rng)
            contexts.append(ctx)
        return x, contexts

    def _backward(self, contexts, grad_output):
        for part, ctx in zip(reversed(self._parts), reversed(contexts)):
            grad_output = part._backward(ctx, grad_output)
        return grad_output

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"value_range": list(self.value_range), "seed": self.seed})
        config.update({arg: getattr(self, arg) for arg, _ in self._PARTS})
        return config


def _as_given(factor):
    """A factor as the config keeps it (JSON: a pair as a list)."""
    return list(factor) if isinstance(factor, (tuple, list)) else factor
