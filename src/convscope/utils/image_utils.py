"""Image files and arrays through Pillow, as Keras 3's `keras.utils.load_img`, `img_to_array`,
`array_to_img` and `save_img` (keras/src/utils/image_utils.py): the same conversions, defaults
and resampling, so the same file gives the same numbers.  `save_img` writes atomically."""

from __future__ import annotations

import io
import os
import pathlib
import warnings

import numpy as np

from .. import backend
from ..io._atomic import atomic_write

_COLOR_MODES = ("grayscale", "rgb", "rgba")


def _pil():
    try:
        from PIL import Image
    except ImportError:                                   # pragma: no cover - Pillow is a dependency
        raise ImportError("convscope.utils image functions need Pillow: pip install pillow") from None
    return Image


def interpolation_methods():
    """Keras' names of Pillow's resampling filters."""
    Image = _pil()
    return {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
            "hamming": Image.HAMMING, "box": Image.BOX, "lanczos": Image.LANCZOS}


def _data_format(data_format, where: str) -> str:
    if data_format is None:
        return backend.image_data_format()
    if not isinstance(data_format, str) or data_format.lower() not in ("channels_last", "channels_first"):
        raise ValueError(f"{where}: argument `data_format` must be 'channels_last', 'channels_first' or None, "
                         f"got {data_format!r}")
    return data_format.lower()


def _dtype(dtype, where: str) -> np.dtype:
    try:
        result = np.dtype(backend.floatx() if dtype is None else dtype)
    except TypeError:
        raise TypeError(f"{where}: argument `dtype` must be a NumPy dtype name, got {dtype!r}") from None
    return result


def open_image(path, where: str = "load_img"):
    """A Pillow image of the file at `path` (str, bytes, Path) or in an `io.BytesIO`, fully read."""
    Image = _pil()
    if isinstance(path, io.BytesIO):
        image = Image.open(path)
    elif isinstance(path, (str, bytes, pathlib.Path, os.PathLike)):
        with open(path, "rb") as handle:
            image = Image.open(io.BytesIO(handle.read()))
    else:
        raise TypeError(f"{where}: argument `path` must be a path (str, bytes, pathlib.Path) or an io.BytesIO, "
                        f"got {type(path).__name__}")
    image.load()
    return image


def convert_mode(image, color_mode: str):
    """`image` in the color mode Keras gives (grayscale keeps 16/32-bit grayscale as it is)."""
    if color_mode == "grayscale":
        return image if image.mode in ("L", "I;16", "I") else image.convert("L")
    wanted = "RGBA" if color_mode == "rgba" else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """A Pillow image from a file, in `color_mode`, resized to `target_size` = (height, width) with
    `interpolation` (keep_aspect_ratio: crop the centre to the target's aspect ratio first)."""
    where = "load_img"
    if color_mode not in _COLOR_MODES:
        raise ValueError(f"{where}: argument `color_mode` must be one of {_COLOR_MODES}, got {color_mode!r}")
    methods = interpolation_methods()
    if interpolation not in methods:
        raise ValueError(f"{where}: argument `interpolation` must be one of {sorted(methods)}, "
                         f"got {interpolation!r}")
    if target_size is not None:
        target_size = _check_size(target_size, "target_size", where)
    if not isinstance(keep_aspect_ratio, (bool, np.bool_)):
        raise TypeError(f"{where}: argument `keep_aspect_ratio` must be True or False, got {keep_aspect_ratio!r}")
    image = convert_mode(open_image(path, where), color_mode)
    if target_size is None:
        return image
    width_height = (target_size[1], target_size[0])
    if image.size == width_height:
        return image
    box = None
    if keep_aspect_ratio:
        width, height = image.size
        crop_height = min(height, (width * width_height[1]) // width_height[0])
        crop_width = min(width, (height * width_height[0]) // width_height[1])
        top, left = (height - crop_height) // 2, (width - crop_width) // 2
        box = (left, top, left + crop_width, top + crop_height)
    return image.resize(width_height, methods[interpolation], box=box)


def _check_size(size, arg: str, where: str):
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(
            not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v > 0 for v in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"{where}: argument `{arg}` must be a (height, width) pair of positive ints, got {size!r}")


def img_to_array(img, data_format=None, dtype=None) -> np.ndarray:
    """A Pillow image as an array (height, width, channels), or channels first; grayscale gets a channel axis."""
    where = "img_to_array"
    data_format = _data_format(data_format, where)
    dtype = _dtype(dtype, where)
    x = np.asarray(img, dtype=dtype)
    if x.ndim == 3:
        return x.transpose(2, 0, 1) if data_format == "channels_first" else x
    if x.ndim == 2:
        return x[None] if data_format == "channels_first" else x[:, :, None]
    raise ValueError(f"{where}: expected an image of 2 or 3 dimensions, got an array of shape {x.shape}")


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A Pillow image from a 3-D array (1, 3 or 4 channels); `scale` maps min..max to 0..255 first."""
    where = "array_to_img"
    data_format = _data_format(data_format, where)
    x = np.array(x, dtype=_dtype(dtype, where))
    if x.ndim != 3:
        raise ValueError(f"{where}: expected an image array of rank 3 (one image), got shape {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x /= top
        x *= 255
    Image = _pil()
    channels = x.shape[2]
    if channels in (3, 4):
        return Image.fromarray(x.astype("uint8"), "RGBA" if channels == 4 else "RGB")
    if channels == 1:
        if np.max(x) > 255:                   # 32-bit integer grayscale, Pillow's mode "I"
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"{where}: an image needs 1, 3 or 4 channels, got {channels} (shape {x.shape})")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs) -> None:
    """Write an array as an image file (format from the suffix or `file_format`), atomically."""
    where = "save_img"
    data_format = _data_format(data_format, where)
    if file_format is None and isinstance(path, (str, pathlib.Path)):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    image = array_to_img(x, data_format=data_format, scale=scale)
    if image.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.", stacklevel=2)
        image = image.convert("RGB")
    if not file_format and not isinstance(path, (str, pathlib.Path)):
        raise ValueError(f"{where}: argument `file_format` is required when `path` is a file object")
    if not isinstance(path, (str, pathlib.Path)):
        image.save(path, format=file_format, **kwargs)
        return
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=file_format or None, **kwargs)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{where}: cannot write format {file_format!r} for '{path}': {error}") from None
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
