"""`keras.ops.image`'s functions a model's custom parts call: `extract_patches` (a ViT's patches) and `resize`, with
Keras 3's names, arguments and numbers; on an active tape they record their gradients (through `ops.conv2d` and
`ops.resize2d`), on symbolic tensors they record Keras' operations (`ExtractPatches`, `Resize`).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from . import numpy_api as ops
from .conv import conv2d
from .numpy_api import _symbolic_dispatch
from .resize import resize2d
from .shapes import normalize_tuple

__all__ = ["extract_patches", "resize"]


def _format(data_format, fn: str) -> str:
    """Keras' data format (None: `backend.image_data_format()`) as the tf.nn ops name it."""
    given = backend.image_data_format() if data_format is None else data_format
    return "NHWC" if backend.standardize_data_format(given, f"ops.image.{fn}") == "channels_last" else "NCHW"


def _pair(value, arg: str, fn: str):
    """A positive int or a pair of them, as (height, width) (`shapes.normalize_tuple`)."""
    return normalize_tuple(value, 2, arg, f"ops.image.{fn}")


def extract_patches(images, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """Each (size × size) patch of the images, flattened (rows, columns, channels) into the channel axis:
    (N, H, W, C) -> (N, H', W', size_h · size_w · C), `strides` the patch size by default.  As Keras computes it:
    a convolution by the identity kernel."""
    fmt = _format(data_format, "extract_patches")
    value = np.asarray(getattr(images, "value", images))
    if value.ndim not in (3, 4):
        raise ValueError(f"ops.image.extract_patches: argument `images` must be 3-D or 4-D, got shape {value.shape}")
    if padding not in ("valid", "same"):
        raise ValueError(f"ops.image.extract_patches: argument `padding` must be 'valid' or 'same', got {padding!r}")
    patch_h, patch_w = _pair(size, "size", "extract_patches")
    stride = _pair(size if strides is None else strides, "strides", "extract_patches")
    dilation = _pair(dilation_rate, "dilation_rate", "extract_patches")
    batched = images if value.ndim == 4 else images[None]
    if stride == (patch_h, patch_w) and dilation == (1, 1) and padding == "valid":
        patches = _tiles(batched, patch_h, patch_w, fmt)
    else:
        channels = value.shape[-1] if fmt == "NHWC" else value.shape[-3]
        depth = patch_h * patch_w * channels
        kernel = np.eye(depth, dtype=value.dtype if value.dtype.kind == "f" else np.float32).reshape(
            patch_h, patch_w, channels, depth)
        patches = conv2d(batched, kernel, stride, padding.upper(), data_format=fmt, dilations=dilation)
    return patches if value.ndim == 4 else patches[0]


def _tiles(images, patch_h: int, patch_w: int, fmt: str):
    """Patches that tile the images (strides = size, no dilation, "valid"): the identity convolution's numbers
    (each patch's rows, columns, channels in order) by a reshape and a transpose, without its products."""
    n, *rest = np.shape(getattr(images, "value", images))
    height, width = (rest[0], rest[1]) if fmt == "NHWC" else (rest[1], rest[2])
    rows, cols = height // patch_h, width // patch_w
    if fmt == "NHWC":
        x = images[:, :rows * patch_h, :cols * patch_w, :]
        x = ops.reshape(x, (n, rows, patch_h, cols, patch_w, rest[2]))
        return ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (n, rows, cols, patch_h * patch_w * rest[2]))
    x = images[:, :, :rows * patch_h, :cols * patch_w]
    x = ops.reshape(x, (n, rest[0], rows, patch_h, cols, patch_w))
    return ops.reshape(ops.transpose(x, (0, 3, 5, 1, 2, 4)), (n, patch_h * patch_w * rest[0], rows, cols))


def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """Images resized to `size` (height, width), as Keras' `ops.image.resize` ("bilinear" or "nearest"; no
    antialiasing; padding to the aspect ratio with the constant `fill_value`)."""
    if antialias:
        raise ValueError("ops.image.resize: argument `antialias=True` is not supported")
    if fill_mode != "constant":
        raise ValueError(f"ops.image.resize: argument `fill_mode` must be 'constant', got {fill_mode!r}")
    value = np.asarray(getattr(images, "value", images))
    if value.ndim not in (3, 4):
        raise ValueError(f"ops.image.resize: argument `images` must be 3-D or 4-D, got shape {value.shape}")
    batched = images if value.ndim == 4 else images[None]
    out = resize2d(batched, _pair(size, "size", "resize"), interpolation, _format(data_format, "resize"),
                   crop_to_aspect_ratio, pad_to_aspect_ratio, fill_value)
    return out if value.ndim == 4 else out[0]


_symbolic_dispatch(globals(), __all__)
