"""The legacy `keras.preprocessing.image` API: `ImageDataGenerator` with `flow` and
`flow_from_directory` (Keras 3.15.1's keras/src/legacy/preprocessing/image.py), and the image
file functions of `convscope.utils`.

The iterators are `PyDataset`s with a length, so `fit(datagen.flow(x, y))` runs
`ceil(n / batch_size)` batches an epoch and ends, as in Keras 3 (iterating one with `next()`
loops for ever, as Keras' does).  The random draws follow Keras' order: with `seed`, batch `k`
draws from `RandomState(seed + k)` exactly as Keras seeds NumPy's global generator, so the
same seed gives the same index order and the same transform parameters; without a seed they
come from convscope's generator (`utils.set_random_seed`).  NumPy's global state is never touched.

The affine transforms (rotation, shifts, shear, zoom) resample as `scipy.ndimage.affine_transform`
with `order` 0 or 1 and fill modes "constant", "nearest", "reflect", "wrap"; SciPy is not needed.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from typing import Optional

import numpy as np

from .. import _rng, backend
from ..ops.ndimage_affine import resample_affine
from ..utils.image_dataset import index_subdirectory
from ..utils.image_utils import array_to_img, img_to_array, load_img, save_img
from ..utils.py_dataset import PyDataset

__all__ = ["ImageDataGenerator", "Iterator", "NumpyArrayIterator", "DirectoryIterator", "apply_affine_transform",
           "apply_channel_shift", "apply_brightness_shift", "flip_axis", "load_img", "img_to_array",
           "array_to_img", "save_img"]

_FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def _seeded(seed: Optional[int]) -> np.random.RandomState:
    """A legacy generator: `RandomState(seed)` (the stream np.random.seed(seed) gives), else seeded
    from convscope's generator."""
    if seed is None:
        seed = int(_rng.generator().integers(2 ** 32))
    return np.random.RandomState(seed)


# -- transforms -------------------------------------------------------------------------------------
def flip_axis(x, axis):
    """`x` reversed along `axis`."""
    x = np.asarray(x).swapaxes(axis, 0)
    return x[::-1, ...].swapaxes(0, axis)


def apply_channel_shift(x, intensity, channel_axis=0):
    """Every channel shifted by `intensity`, clipped to the image's range."""
    x = np.rollaxis(x, channel_axis, 0)
    low, high = np.min(x), np.max(x)
    x = np.stack([np.clip(channel + intensity, low, high) for channel in x], axis=0)
    return np.rollaxis(x, 0, channel_axis + 1)


def apply_brightness_shift(x, brightness, scale=True):
    """Pillow's `ImageEnhance.Brightness(brightness)` on the image (channels last)."""
    from PIL import ImageEnhance
    low, high = np.min(x), np.max(x)
    local_scale = (low < 0) or (high > 255)
    image = ImageEnhance.Brightness(array_to_img(x, scale=local_scale or scale)).enhance(brightness)
    x = img_to_array(image)
    if not scale and local_scale:
        x = x / 255 * (high - low) + low
    return x


def _offset_center(matrix, height, width):
    o_x, o_y = float(height) / 2 - 0.5, float(width) / 2 - 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return offset @ matrix @ reset


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, row_axis=1, col_axis=2, channel_axis=0,
                           fill_mode="nearest", cval=0.0, order=1):
    """Rotate (`theta` degrees), shift (`tx` rows, `ty` columns), shear (degrees) and zoom one image, as
    Keras (the matrix about the image centre; SciPy's `affine_transform` resampling)."""
    where = "apply_affine_transform"
    if sorted((row_axis, col_axis, channel_axis)) != [0, 1, 2]:
        raise ValueError(f"{where}: `row_axis`, `col_axis` and `channel_axis` must be 0, 1 and 2 in some order, "
                         f"got {row_axis}, {col_axis}, {channel_axis}")
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{where}: expected one image of rank 3, got shape {x.shape}")
    if channel_axis not in (0, 2):
        raise ValueError(f"{where}: the channels must be the first or the last axis, got channel_axis={channel_axis}")
    if fill_mode not in _FILL_MODES:
        raise ValueError(f"{where}: argument `fill_mode` must be one of {_FILL_MODES}, got {fill_mode!r}")
    if order not in (0, 1):
        raise ValueError(f"{where}: argument `order` must be 0 (nearest) or 1 (linear); higher spline orders are "
                         f"not implemented, got {order!r}")
    matrix = None
    parts = []
    if theta != 0:
        t = np.deg2rad(theta)
        parts.append(np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]))
    if tx != 0 or ty != 0:
        parts.append(np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]]))
    if shear != 0:
        s = np.deg2rad(shear)
        parts.append(np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]))
    if zx != 1 or zy != 1:
        parts.append(np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]]))
    for part in parts:
        matrix = part if matrix is None else matrix @ part
    if matrix is None:
        return x
    height, width = x.shape[row_axis], x.shape[col_axis]
    matrix = _offset_center(matrix, height, width)
    x = np.rollaxis(x, channel_axis, 0)
    if col_axis > row_axis:
        matrix[:, [0, 1]] = matrix[:, [1, 0]]
        matrix[[0, 1]] = matrix[[1, 0]]
    x = np.stack([resample_affine(channel, matrix[:2, :2], matrix[:2, 2], order, fill_mode, cval) for channel in x])
    return np.rollaxis(x, 0, channel_axis + 1)


# -- the generator ----------------------------------------------------------------------------------
class ImageDataGenerator:
    """Random augmentation and normalization of image batches (Keras' legacy class, same arguments)."""

    def __init__(self, featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
                 samplewise_std_normalization=False, zca_whitening=False, zca_epsilon=1e-6, rotation_range=0,
                 width_shift_range=0.0, height_shift_range=0.0, brightness_range=None, shear_range=0.0,
                 zoom_range=0.0, channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, interpolation_order=1, dtype=None):
        where = "ImageDataGenerator"
        data_format = backend.image_data_format() if data_format is None else data_format
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"{where}: argument `data_format` must be 'channels_last' or 'channels_first', "
                             f"got {data_format!r}")
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"{where}: argument `fill_mode` must be one of {_FILL_MODES}, got {fill_mode!r}")
        if interpolation_order not in (0, 1):
            raise ValueError(f"{where}: argument `interpolation_order` must be 0 or 1 (higher spline orders are not "
                             f"implemented), got {interpolation_order!r}")
        if validation_split and not 0 < validation_split < 1:
            raise ValueError(f"{where}: argument `validation_split` must be strictly between 0 and 1, "
                             f"got {validation_split!r}")
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise TypeError(f"{where}: argument `preprocessing_function` must be callable, "
                            f"got {preprocessing_function!r}")
        for arg, value in (("rotation_range", rotation_range), ("shear_range", shear_range),
                           ("channel_shift_range", channel_shift_range)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value < 0:
                raise ValueError(f"{where}: argument `{arg}` must be a number >= 0, got {value!r}")
        if isinstance(zoom_range, (float, int)) and not isinstance(zoom_range, bool):
            zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif isinstance(zoom_range, (list, tuple)) and len(zoom_range) == 2 and all(
                isinstance(v, (float, int)) for v in zoom_range):
            zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError(f"{where}: argument `zoom_range` must be a float or a pair of floats, got {zoom_range!r}")
        if brightness_range is not None and (not isinstance(brightness_range, (tuple, list))
                                             or len(brightness_range) != 2):
            raise ValueError(f"{where}: argument `brightness_range` must be a pair of floats, "
                             f"got {brightness_range!r}")
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening, self.zca_epsilon = zca_whitening, zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range, self.height_shift_range = width_shift_range, height_shift_range
        self.shear_range, self.zoom_range = shear_range, zoom_range
        self.channel_shift_range = channel_shift_range
        self.fill_mode, self.cval = fill_mode, cval
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.dtype = backend.floatx() if dtype is None else dtype
        self.interpolation_order = interpolation_order
        self.brightness_range = brightness_range
        self.data_format = data_format
        self.channel_axis, self.row_axis, self.col_axis = (1, 2, 3) if data_format == "channels_first" else (3, 1, 2)
        self._validation_split = validation_split
        self.mean = self.std = self.zca_whitening_matrix = None
        if zca_whitening:
            if not featurewise_center:
                self.featurewise_center = True
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, which overrides setting of "
                              "`featurewise_center`.", stacklevel=2)
            if featurewise_std_normalization:
                self.featurewise_std_normalization = False
                warnings.warn("This ImageDataGenerator specifies `zca_whitening` which overrides setting of"
                              "`featurewise_std_normalization`.", stacklevel=2)
        if featurewise_std_normalization and not featurewise_center:
            self.featurewise_center = True
            warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, which overrides "
                          "setting of `featurewise_center`.", stacklevel=2)
        if samplewise_std_normalization and not samplewise_center:
            self.samplewise_center = True
            warnings.warn("This ImageDataGenerator specifies `samplewise_std_normalization`, which overrides "
                          "setting of `samplewise_center`.", stacklevel=2)

    # -- iterators ----------------------------------------------------------------------------------
    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None, save_to_dir=None,
             save_prefix="", save_format="png", ignore_class_split=False, subset=None):
        """A `NumpyArrayIterator`: batches `(x, y[, sample_weight])` of augmented, standardized images."""
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight,
                                  seed=seed, data_format=self.data_format, save_to_dir=save_to_dir,
                                  save_prefix=save_prefix, save_format=save_format,
                                  ignore_class_split=ignore_class_split, subset=subset, dtype=self.dtype)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb", classes=None,
                            class_mode="categorical", batch_size=32, shuffle=True, seed=None, save_to_dir=None,
                            save_prefix="", save_format="png", follow_links=False, subset=None,
                            interpolation="nearest", keep_aspect_ratio=False):
        """A `DirectoryIterator` over the images in `directory`'s class subfolders, read batch by batch."""
        return DirectoryIterator(directory, self, target_size=target_size, color_mode=color_mode, classes=classes,
                                 class_mode=class_mode, data_format=self.data_format, batch_size=batch_size,
                                 shuffle=shuffle, seed=seed, save_to_dir=save_to_dir, save_prefix=save_prefix,
                                 save_format=save_format, follow_links=follow_links, subset=subset,
                                 interpolation=interpolation, keep_aspect_ratio=keep_aspect_ratio, dtype=self.dtype)

    # -- per image -------------------------------------------------------------------------------------
    def standardize(self, x):
        """The normalization (in place where it can be, as Keras): preprocessing_function, rescale,
        sample-wise then feature-wise centring and scaling, ZCA."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= np.std(x, keepdims=True) + 1e-6
        for flag, value, name in ((self.featurewise_center, self.mean, "featurewise_center"),
                                  (self.featurewise_std_normalization, self.std, "featurewise_std_normalization"),
                                  (self.zca_whitening, self.zca_whitening_matrix, "zca_whitening")):
            if flag and value is None:
                warnings.warn(f"This ImageDataGenerator specifies `{name}`, but it hasn't been fit on any training "
                              "data. Fit it first by calling `.fit(numpy_data)`.", stacklevel=2)
        if self.featurewise_center and self.mean is not None:
            x -= self.mean
        if self.featurewise_std_normalization and self.std is not None:
            x /= self.std + 1e-6
        if self.zca_whitening and self.zca_whitening_matrix is not None:
            flat = x.reshape(-1, math.prod(x.shape[-3:]))
            x = np.reshape(flat @ self.zca_whitening_matrix, x.shape)
        return x

    def get_random_transform(self, img_shape, seed=None):
        """A dict of random transform parameters for one image, drawn in Keras' order (`seed`: the draws
        of np.random.seed(seed))."""
        return self._random_parameters(img_shape, _seeded(seed))

    def _random_parameters(self, img_shape, rs: np.random.RandomState):
        row_axis, col_axis = self.row_axis - 1, self.col_axis - 1
        theta = rs.uniform(-self.rotation_range, self.rotation_range) if self.rotation_range else 0
        tx = self._shift(self.height_shift_range, img_shape[row_axis], rs)
        ty = self._shift(self.width_shift_range, img_shape[col_axis], rs)
        shear = rs.uniform(-self.shear_range, self.shear_range) if self.shear_range else 0
        if self.zoom_range[0] == 1 and self.zoom_range[1] == 1:
            zx, zy = 1, 1
        else:
            zx, zy = rs.uniform(self.zoom_range[0], self.zoom_range[1], 2)
        flip_horizontal = (rs.random_sample() < 0.5) * self.horizontal_flip
        flip_vertical = (rs.random_sample() < 0.5) * self.vertical_flip
        channel_shift = None
        if self.channel_shift_range != 0:
            channel_shift = rs.uniform(-self.channel_shift_range, self.channel_shift_range)
        brightness = None
        if self.brightness_range is not None:
            brightness = rs.uniform(self.brightness_range[0], self.brightness_range[1])
        return {"theta": theta, "tx": tx, "ty": ty, "shear": shear, "zx": zx, "zy": zy,
                "flip_horizontal": flip_horizontal, "flip_vertical": flip_vertical,
                "channel_shift_intensity": channel_shift, "brightness": brightness}

    @staticmethod
    def _shift(shift_range, size, rs):
        """Keras' shift draw: from a list/int of pixel shifts (with a random sign), or uniform in ±range."""
        if not shift_range:
            return 0
        try:
            shift = rs.choice(shift_range)
            shift *= rs.choice([-1, 1])
        except ValueError:                                   # a float range
            shift = rs.uniform(-shift_range, shift_range)
        if np.max(shift_range) < 1:
            shift *= size
        return shift

    def apply_transform(self, x, transform_parameters):
        """One image (rank 3) transformed by the parameters of `get_random_transform`."""
        row_axis, col_axis, channel_axis = self.row_axis - 1, self.col_axis - 1, self.channel_axis - 1
        p = transform_parameters
        x = apply_affine_transform(x, p.get("theta", 0), p.get("tx", 0), p.get("ty", 0), p.get("shear", 0),
                                   p.get("zx", 1), p.get("zy", 1), row_axis=row_axis, col_axis=col_axis,
                                   channel_axis=channel_axis, fill_mode=self.fill_mode, cval=self.cval,
                                   order=self.interpolation_order)
        if p.get("channel_shift_intensity") is not None:
            x = apply_channel_shift(x, p["channel_shift_intensity"], channel_axis)
        if p.get("flip_horizontal", False):
            x = flip_axis(x, col_axis)
        if p.get("flip_vertical", False):
            x = flip_axis(x, row_axis)
        if p.get("brightness") is not None:
            x = apply_brightness_shift(x, p["brightness"], False)
        return x

    def random_transform(self, x, seed=None):
        """`apply_transform(x, get_random_transform(x.shape, seed))`."""
        return self.apply_transform(x, self.get_random_transform(x.shape, seed))

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Compute the feature-wise mean, std and ZCA matrix from sample images `x` (rank 4)."""
        x = np.array(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"ImageDataGenerator.fit: input must have rank 4, got an array of shape {x.shape}")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"ImageDataGenerator.fit: argument `rounds` must be an int >= 1, got {rounds!r}")
        rs = _seeded(seed)
        if self.rescale:
            x *= self.rescale
        if augment:
            augmented = np.zeros((rounds * x.shape[0],) + x.shape[1:], dtype=self.dtype)
            for r in range(rounds):
                for i in range(x.shape[0]):
                    augmented[i + r * x.shape[0]] = self.apply_transform(x[i], self._random_parameters(x[i].shape, rs))
            x = augmented
        shape = [1, 1, 1]
        shape[self.channel_axis - 1] = x.shape[self.channel_axis]
        if self.featurewise_center:
            self.mean = np.reshape(np.mean(x, axis=(0, self.row_axis, self.col_axis)), shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.reshape(np.std(x, axis=(0, self.row_axis, self.col_axis)), shape)
            x /= self.std + 1e-6
        if self.zca_whitening:
            flat = np.reshape(x, (len(x), -1))
            u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
            self.zca_whitening_matrix = (u * (np.sqrt(len(x)) / (s + self.zca_epsilon))).dot(u.T)


# -- iterators --------------------------------------------------------------------------------------
class Iterator(PyDataset):
    """Base of the image iterators: `len()` batches an epoch, indices reshuffled at each epoch's end."""

    white_list_formats = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")

    def __init__(self, n, batch_size, shuffle, seed):
        super().__init__()
        where = type(self).__name__
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"{where}: argument `batch_size` must be an int >= 1, got {batch_size!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{where}: argument `seed` must be an int >= 0 or None, got {seed!r}")
        self.n, self.batch_size, self.seed, self.shuffle = n, int(batch_size), seed, bool(shuffle)
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self.index_array = None
        self._rs = _seeded(seed)
        self.index_generator = self._flow_index()

    def _reseed(self) -> np.random.RandomState:
        """The generator of the next batch: RandomState(seed + batches seen) as Keras seeds NumPy."""
        if self.seed is not None:
            self._rs = np.random.RandomState(self.seed + self.total_batches_seen)
        return self._rs

    def _set_index_array(self):
        self.index_array = self._rs.permutation(self.n) if self.shuffle else np.arange(self.n)

    def __getitem__(self, idx):
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)) or not 0 <= idx < len(self):
            raise ValueError(f"{type(self).__name__}: asked to retrieve element {idx!r}, but the Sequence has "
                             f"length {len(self)}")
        rs = self._reseed()
        self.total_batches_seen += 1
        if self.index_array is None:
            self._set_index_array()
        indices = self.index_array[self.batch_size * idx:self.batch_size * (idx + 1)]
        return self._get_batches_of_transformed_samples(indices, rs)

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def on_epoch_end(self):
        self._set_index_array()

    def reset(self):
        self.batch_index = 0

    def _flow_index(self):
        self.reset()
        while True:
            self._reseed()
            if self.batch_index == 0:
                self._set_index_array()
            current = 0 if self.n == 0 else (self.batch_index * self.batch_size) % self.n
            if self.n > current + self.batch_size:
                self.batch_index += 1
            else:
                self.batch_index = 0
            self.total_batches_seen += 1
            yield self.index_array[current:current + self.batch_size], self._rs

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            indices, rs = next(self.index_generator)
        return self._get_batches_of_transformed_samples(indices, rs)

    def _transform(self, x, rs):
        generator = self.image_data_generator
        if generator is None:
            return x
        x = generator.apply_transform(x.astype(self.dtype), generator._random_parameters(x.shape, rs))
        return generator.standardize(x)

    def _save(self, batch_x, index_array, rs, hash_range):
        for i, j in enumerate(index_array):
            name = f"{self.save_prefix}_{j}_{rs.randint(hash_range)}.{self.save_format}"
            save_img(os.path.join(self.save_to_dir, name), batch_x[i], data_format=self.data_format, scale=True)

    def _get_batches_of_transformed_samples(self, index_array, rs):
        raise NotImplementedError


class NumpyArrayIterator(Iterator):
    """Batches of augmented images from arrays (`ImageDataGenerator.flow`)."""

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False, sample_weight=None, seed=None,
                 data_format=None, save_to_dir=None, save_prefix="", save_format="png", subset=None,
                 ignore_class_split=False, dtype=None):
        where = "ImageDataGenerator.flow"
        data_format = backend.image_data_format() if data_format is None else data_format
        self.dtype = backend.floatx() if dtype is None else dtype
        x_misc = []
        if isinstance(x, (tuple, list)):
            x_misc = [np.asarray(a) for a in x[1]] if isinstance(x[1], list) else [np.asarray(x[1])]
            x = x[0]
            for extra in x_misc:
                if len(x) != len(extra):
                    raise ValueError(f"{where}: all the arrays in `x` must have the same length, got len(x[0]) = "
                                     f"{len(x)} and len(x[?]) = {len(extra)}")
        if y is not None and len(x) != len(y):
            raise ValueError(f"{where}: `x` (images) and `y` (labels) must have the same length, got x.shape = "
                             f"{np.asarray(x).shape}, y.shape = {np.asarray(y).shape}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError(f"{where}: `x` (images) and `sample_weight` must have the same length, got x.shape = "
                             f"{np.asarray(x).shape}, sample_weight.shape = {np.asarray(sample_weight).shape}")
        if subset is not None:
            if subset not in ("training", "validation"):
                raise ValueError(f"{where}: argument `subset` must be 'training' or 'validation', got {subset!r}")
            split = int(len(x) * image_data_generator._validation_split)
            if y is not None and not ignore_class_split and not np.array_equal(
                    np.unique(y[:split]), np.unique(y[split:])):
                raise ValueError(f"{where}: training and validation subsets have different classes after the "
                                 "split; if your arrays are sorted by label, shuffle them first")
            part = slice(None, split) if subset == "validation" else slice(split, None)
            x, x_misc = x[part], [np.asarray(a[part]) for a in x_misc]
            y = None if y is None else y[part]
            sample_weight = None if sample_weight is None else sample_weight[part]
        self.x = np.asarray(x, dtype=self.dtype)
        if self.x.ndim != 4:
            raise ValueError(f"{where}: the images must have rank 4, got an array of shape {self.x.shape}")
        channels_axis = 3 if data_format == "channels_last" else 1
        if self.x.shape[channels_axis] not in (1, 3, 4):
            warnings.warn(f"NumpyArrayIterator is set to use the data format convention \"{data_format}\" "
                          f"(channels on axis {channels_axis}), i.e. expected either 1, 3, or 4 channels on axis "
                          f"{channels_axis}. However, it was passed an array with shape {self.x.shape} "
                          f"({self.x.shape[channels_axis]} channels).", stacklevel=3)
        self.x_misc = x_misc
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format
        super().__init__(self.x.shape[0], batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array, rs):
        batch_x = np.zeros((len(index_array),) + self.x.shape[1:], dtype=self.dtype)
        for i, j in enumerate(index_array):
            batch_x[i] = self._transform(self.x[j], rs)
        if self.save_to_dir:
            self._save(batch_x, index_array, rs, int(1e4))
        miscs = [a[index_array] for a in self.x_misc]
        output = (batch_x if not miscs else [batch_x] + miscs,)
        if self.y is None:
            return output[0]
        output += (self.y[index_array],)
        if self.sample_weight is not None:
            output += (self.sample_weight[index_array],)
        return output


class DirectoryIterator(Iterator):
    """Batches of images read from class subfolders (`ImageDataGenerator.flow_from_directory`)."""

    allowed_class_modes = ("categorical", "binary", "sparse", "input", None)

    def __init__(self, directory, image_data_generator, target_size=(256, 256), color_mode="rgb", classes=None,
                 class_mode="categorical", batch_size=32, shuffle=True, seed=None, data_format=None,
                 save_to_dir=None, save_prefix="", save_format="png", follow_links=False, subset=None,
                 interpolation="nearest", keep_aspect_ratio=False, dtype=None):
        where = "ImageDataGenerator.flow_from_directory"
        self.data_format = backend.image_data_format() if data_format is None else data_format
        self.dtype = backend.floatx() if dtype is None else dtype
        if not isinstance(directory, (str, os.PathLike)) or not os.path.isdir(directory):
            raise ValueError(f"{where}: argument `directory` must be an existing folder, got {directory!r}")
        if color_mode not in ("rgb", "rgba", "grayscale"):
            raise ValueError(f"{where}: argument `color_mode` must be 'rgb', 'rgba' or 'grayscale', "
                             f"got {color_mode!r}")
        if class_mode not in self.allowed_class_modes:
            raise ValueError(f"{where}: argument `class_mode` must be one of {self.allowed_class_modes}, "
                             f"got {class_mode!r}")
        if subset not in (None, "training", "validation"):
            raise ValueError(f"{where}: argument `subset` must be 'training', 'validation' or None, got {subset!r}")
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        self.keep_aspect_ratio, self.color_mode, self.interpolation = keep_aspect_ratio, color_mode, interpolation
        channels = {"rgba": 4, "rgb": 3, "grayscale": 1}[color_mode]
        self.image_shape = (self.target_size + (channels,) if self.data_format == "channels_last"
                            else (channels,) + self.target_size)
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format
        split = None
        if subset is not None:
            fraction = image_data_generator._validation_split
            split = (0, fraction) if subset == "validation" else (fraction, 1)
        self.split, self.subset = split, subset
        self.directory, self.class_mode = directory, class_mode
        if not classes:
            classes = [d for d in sorted(os.listdir(directory)) if os.path.isdir(os.path.join(directory, d))]
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes))))
        self.filenames, labels = [], []
        for name in classes:
            found = _list_files(os.path.join(directory, name), self.white_list_formats, split, follow_links)
            self.filenames += found
            labels += [self.class_indices[name]] * len(found)
        self.samples = len(self.filenames)
        self.classes = np.asarray(labels, dtype="int32")
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(directory, name) for name in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def filepaths(self):
        return self._filepaths

    @property
    def labels(self):
        return self.classes

    @property
    def sample_weight(self):
        return None

    def _get_batches_of_transformed_samples(self, index_array, rs):
        batch_x = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        for i, j in enumerate(index_array):
            image = load_img(self._filepaths[j], color_mode=self.color_mode, target_size=self.target_size,
                             interpolation=self.interpolation, keep_aspect_ratio=self.keep_aspect_ratio)
            x = img_to_array(image, data_format=self.data_format)
            image.close()
            batch_x[i] = self._transform(x, rs)
        if self.save_to_dir:
            self._save(batch_x, index_array, rs, int(1e7))
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        if self.class_mode in ("binary", "sparse"):
            return batch_x, self.classes[index_array].astype(self.dtype)
        if self.class_mode == "categorical":
            batch_y = np.zeros((len(batch_x), len(self.class_indices)), dtype=self.dtype)
            batch_y[np.arange(len(batch_x)), self.classes[index_array]] = 1.0
            return batch_x, batch_y
        return batch_x


def _list_files(directory, formats, split, follow_links):
    """The image files of one class folder (Keras' sorted walk, `utils.image_dataset`), relative to the
    dataset's folder, the `split` fraction (start, stop) of them."""
    found = index_subdirectory(directory, follow_links, formats)
    if split:
        found = found[int(split[0] * len(found)):int(split[1] * len(found))]
    return found
