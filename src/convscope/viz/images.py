"""Pictures files as model inputs, as Keras' `load_img` + `img_to_array` read them (Pillow).

`load_image(path, input_shape)`: the file opened with Pillow, converted to the
model's channels as Keras' color_mode grayscale/rgb/rgba converts it (1: "L", a
16- or 32-bit grayscale kept as it is; 3: "RGB"; 4: "RGBA"), resized to the input's (height, width) with Keras' default
`interpolation="nearest"` when the size differs, and returned as float32
(height, width, channels) — or channels first for a channels_first model —
without rescaling, exactly as `keras.utils.img_to_array` gives it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..utils.image_utils import convert_mode

MODES = {1: "L", 3: "RGB", 4: "RGBA"}
COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}          # Keras' load_img color_mode per channel count
MAX_PIXELS = 100_000_000   # Pillow's own bomb limit is 89M; a larger file is refused before decoding


def load_image(path, input_shape, data_format: str = "channels_last", where: str = "load_image") -> np.ndarray:
    """The image at `path` as one sample for a model whose input shape is `input_shape` (batch axis first)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: argument `path` must be a file path (str or Path), got {path!r}")
    shape = tuple(input_shape)
    if len(shape) != 4 or any(not isinstance(d, int) for d in shape[1:]):
        raise ValueError(f"{where}: the model input must be images of a fixed size (batch, height, width, "
                         f"channels), got {shape}")
    if data_format == "channels_first":
        channels, height, width = shape[1:]
    else:
        height, width, channels = shape[1:]
    if channels not in MODES:
        raise ValueError(f"{where}: the model input has {channels} channels; a picture gives 1 (grayscale), "
                         "3 (RGB) or 4 (RGBA)")
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"{where}: reading pictures needs Pillow (pip install convscope[viz])") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no picture file {str(path)!r}")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(f"{where}: {str(path)!r} has {image.width}x{image.height} pixels, more than "
                                 f"{MAX_PIXELS:,}")
            image = convert_mode(image, COLOR_MODES[channels])     # a 16-bit grayscale PNG keeps its values
            if image.size != (width, height):
                image = image.resize((width, height), Image.NEAREST)
            array = np.asarray(image, dtype=np.float32)
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{where}: {str(path)!r} is not a picture Pillow can read ({error})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return np.moveaxis(array, -1, 0).copy() if data_format == "channels_first" else array
