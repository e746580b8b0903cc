"""`image_dataset_from_directory`: batches of images read from class subfolders, as Keras 3's
(keras/src/utils/image_dataset_utils.py and dataset_utils.index_directory).

The files are indexed and split exactly as Keras does: class folders in sorted order (or
`class_names`' order), each walked in sorted order, the whole list shuffled with
`np.random.RandomState(seed)` (paths and labels alike), the last `int(validation_split * n)`
files for "validation" and the rest for "training".  So the same folder and seed give the same
files, labels and class_names as Keras.  Each image is decoded by Pillow, converted to the
`color_mode`, and resized with Keras' resize convention (`ops.resize2d`: pixel centres, no
antialiasing, as `keras.ops.image.resize` and `tf.image.resize`), float32.

The result is an iterable of batches with a length (`fit`, `evaluate` and `predict` take it):
files are read one batch at a time, never the whole folder.  Each pass over a shuffled dataset
takes a new order from a generator seeded with `seed` (Keras reshuffles each epoch too, with
tf.data's buffer of `8 * batch_size`; the orders within an epoch differ from TensorFlow's).
"""

from __future__ import annotations

import math
import os
from typing import List, Optional, Sequence

import numpy as np

from .. import _rng, backend
from ..ops.resize import resize2d
from .image_utils import convert_mode, open_image

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
SUPPORTED_INTERPOLATIONS = ("bilinear", "nearest")
_WHERE = "image_dataset_from_directory"


def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None,
                    follow_links=False, verbose=True):
    """(file paths, integer labels or None, class names or None) of the files in `directory`, as
    Keras' `dataset_utils.index_directory`."""
    if labels == "inferred":
        subdirs = [name for name in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, name)) and not name.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(subdirs):
                raise ValueError(f"{_WHERE}: the `class_names` passed did not match the names of the "
                                 f"subdirectories of the target directory. Expected: {subdirs} (or a subset "
                                 f"of it), but received: class_names={list(class_names)}")
            subdirs = list(class_names)
    else:
        subdirs = [""]
    filenames: List[str] = []
    file_labels: List[int] = []
    for index, subdir in enumerate(subdirs):
        found = index_subdirectory(os.path.join(directory, subdir), follow_links, formats)
        filenames += found
        file_labels += [index] * len(found)
    if labels == "inferred":
        label_array: Optional[np.ndarray] = np.asarray(file_labels, dtype="int32")
        class_names = subdirs
    elif labels is None:
        label_array, class_names = None, None
    else:
        if len(labels) != len(filenames):
            raise ValueError(f"{_WHERE}: expected the lengths of `labels` to match the number of files in the "
                             f"target directory. len(labels) is {len(labels)} while we found {len(filenames)} "
                             f"files in directory {directory}.")
        label_array = np.asarray(labels)
        class_names = [str(label) for label in sorted(set(labels))]
    if verbose:
        classes = "" if label_array is None else f" belonging to {len(class_names)} classes"
        print(f"Found {len(filenames)} files{classes}.")
    paths = [os.path.join(directory, name) for name in filenames]
    if shuffle:
        if seed is None:
            seed = int(_rng.generator().integers(1_000_000))
        np.random.RandomState(seed).shuffle(paths)
        if label_array is not None:
            np.random.RandomState(seed).shuffle(label_array)
    return paths, label_array, class_names


def index_subdirectory(directory: str, follow_links: bool, formats) -> List[str]:
    """The files of one class folder (walked in sorted order), relative to the dataset's folder."""
    name = os.path.basename(directory)
    found = []
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links), key=lambda entry: entry[0]):
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                found.append(os.path.join(name, os.path.relpath(os.path.join(root, fname), directory)))
    return found


def training_or_validation_split(samples, labels, validation_split, subset):
    """The files (and labels) of `subset`: the last `int(validation_split * n)` are the validation ones."""
    if not validation_split:
        return samples, labels
    count = int(validation_split * len(samples))
    if subset == "training":
        print(f"Using {len(samples) - count} files for training.")
        return samples[:len(samples) - count], None if labels is None else labels[:len(samples) - count]
    print(f"Using {count} files for validation.")
    return samples[len(samples) - count:], None if labels is None else labels[len(samples) - count:]


class ImageDataset:
    """Batches `(images, labels)` (or `images` when label_mode is None) read from files on each pass.

    `len(dataset)` is the number of batches; `file_paths`, `class_names` and `labels` tell which
    files, in the order before each epoch's shuffle."""

    def __init__(self, file_paths: Sequence[str], labels, label_mode, class_names, num_channels: int,
                 batch_size: Optional[int], image_size, interpolation: str, data_format: str,
                 crop_to_aspect_ratio: bool, pad_to_aspect_ratio: bool, shuffle: bool, seed):
        self.file_paths = list(file_paths)
        self.labels = labels
        self.label_mode = label_mode
        self.class_names = class_names
        self.num_channels = num_channels
        self.batch_size = batch_size
        self.image_size = tuple(image_size)
        self.interpolation = interpolation
        self.data_format = data_format
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.pad_to_aspect_ratio = pad_to_aspect_ratio
        self.shuffle = shuffle
        self._order_rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        if self.batch_size is None:
            return len(self.file_paths)
        return math.ceil(len(self.file_paths) / self.batch_size)

    def __iter__(self):
        count = len(self.file_paths)
        order = self._order_rng.permutation(count) if self.shuffle else np.arange(count)
        step = self.batch_size or 1
        for start in range(0, count, step):
            indices = order[start:start + step]
            images = np.stack([self.load(self.file_paths[i]) for i in indices])
            labels = None if self.label_mode is None else self._encode(self.labels[indices])
            if self.batch_size is None:
                images, labels = images[0], None if labels is None else labels[0]
            yield images if labels is None else (images, labels)

    def _encode(self, labels: np.ndarray) -> np.ndarray:
        if self.label_mode == "int":
            return labels.astype("int32")
        if self.label_mode == "binary":
            return labels.astype("float32")[:, None]
        return np.eye(len(self.class_names), dtype="float32")[labels]

    def load(self, path: str) -> np.ndarray:
        """One image as float32 (height, width, channels) or channels first, resized to `image_size`."""
        mode = {1: "grayscale", 3: "rgb", 4: "rgba"}[self.num_channels]
        image = open_image(path, _WHERE)
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)                      # an animated GIF: its first frame, as Keras
        array = np.array(convert_mode(image, mode), dtype=np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        resized = resize2d(array[None], self.image_size, self.interpolation, "NHWC",
                           self.crop_to_aspect_ratio, self.pad_to_aspect_ratio)[0]
        return resized.transpose(2, 0, 1) if self.data_format == "channels_first" else resized

    def __repr__(self) -> str:
        return (f"ImageDataset({len(self.file_paths)} files, {len(self)} batches of {self.batch_size}, "
                f"class_names={self.class_names})")


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True,
                                 seed=None, validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                                 data_format=None, format="tf", verbose=True):
    """An `ImageDataset` of the images in `directory` (one subfolder per class), or with
    subset="both" a (training, validation) pair; Keras 3's arguments and checks (`format`, Keras'
    choice of tf.data or grain, is checked and gives the same dataset either way)."""
    if format not in ("tf", "grain"):
        raise ValueError(f"{_WHERE}: argument `format` must be 'tf' or 'grain', got {format!r}")
    _check_arguments(directory, labels, label_mode, class_names, batch_size, validation_split, subset,
                     shuffle, seed, crop_to_aspect_ratio, pad_to_aspect_ratio)
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}.get(color_mode)
    if channels is None:
        raise ValueError(f"{_WHERE}: argument `color_mode` must be one of 'rgb', 'rgba', 'grayscale', "
                         f"got {color_mode!r}")
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if not isinstance(image_size, (list, tuple)) or len(image_size) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in image_size):
        raise ValueError(f"{_WHERE}: argument `image_size` must be a (height, width) pair of positive ints, "
                         f"got {image_size!r}")
    interpolation = interpolation.lower() if isinstance(interpolation, str) else interpolation
    if interpolation not in SUPPORTED_INTERPOLATIONS:
        raise ValueError(f"{_WHERE}: argument `interpolation` must be one of {SUPPORTED_INTERPOLATIONS} "
                         f"(Keras' other filters are not implemented), got {interpolation!r}")
    data_format = backend.image_data_format() if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{_WHERE}: argument `data_format` must be 'channels_last', 'channels_first' or None, "
                         f"got {data_format!r}")
    if seed is None:
        seed = int(_rng.generator().integers(1_000_000))
    paths, label_array, class_names = index_directory(directory, labels, ALLOWLIST_FORMATS, class_names,
                                                      shuffle, seed, follow_links, verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f"{_WHERE}: when passing label_mode='binary', there must be exactly 2 class_names, "
                         f"got class_names={class_names}")

    def dataset(subset_name, shuffle_it):
        files, file_labels = training_or_validation_split(paths, label_array, validation_split, subset_name)
        if not files:
            what = {"training": "training ", "validation": "validation "}.get(subset_name, "")
            raise ValueError(f"{_WHERE}: no {what}images found in directory {directory}. "
                             f"Allowed formats: {ALLOWLIST_FORMATS}")
        return ImageDataset(files, file_labels, label_mode, class_names, channels, batch_size, image_size,
                            interpolation, data_format, crop_to_aspect_ratio, pad_to_aspect_ratio, shuffle_it, seed)
    if subset == "both":
        return dataset("training", shuffle), dataset("validation", False)
    return dataset(subset, shuffle)


def _check_arguments(directory, labels, label_mode, class_names, batch_size, validation_split, subset,
                     shuffle, seed, crop_to_aspect_ratio, pad_to_aspect_ratio) -> None:
    if not isinstance(directory, (str, os.PathLike)) or not os.path.isdir(directory):
        raise ValueError(f"{_WHERE}: argument `directory` must be an existing folder, got {directory!r}")
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError(f"{_WHERE}: argument `labels` must be 'inferred', None or a list/tuple of integer "
                             f"labels (one per image file), got {labels!r}")
        if class_names:
            raise ValueError(f"{_WHERE}: `class_names` can only be passed with labels='inferred', got "
                             f"labels={labels!r} and class_names={class_names!r}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError(f"{_WHERE}: argument `label_mode` must be 'int', 'categorical', 'binary' or None, "
                         f"got {label_mode!r}")
    if labels is None and class_names is not None:
        raise ValueError(f"{_WHERE}: with labels=None (no labels), argument `class_names` cannot be given")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"{_WHERE}: argument `batch_size` must be a positive int or None, got {batch_size!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError(f"{_WHERE}: only one of `pad_to_aspect_ratio` and `crop_to_aspect_ratio` can be True")
    if validation_split is not None and (isinstance(validation_split, bool) or not isinstance(
            validation_split, (int, float)) or (validation_split and not 0 < validation_split < 1)):
        raise ValueError(f"{_WHERE}: argument `validation_split` must be between 0 and 1, "
                         f"got {validation_split!r}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError(f"{_WHERE}: if `subset` is set, `validation_split` must be set, and inversely; got "
                         f"validation_split={validation_split!r}, subset={subset!r}")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f"{_WHERE}: argument `subset` must be 'training', 'validation', 'both' or None, "
                         f"got {subset!r}")
    if validation_split and shuffle and seed is None:
        raise ValueError(f"{_WHERE}: with `validation_split` and shuffling, argument `seed` is required, so that "
                         "the training and validation subsets do not overlap")
