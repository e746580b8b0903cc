"""What Keras' applications share: the arguments' checks, the input shape, the top, the weights, preprocessing.

The architectures and layer names are Keras 3's (`keras.applications`), so that Keras' ImageNet weight
files (legacy HDF5, matched by layer name) load into them, and so do the user's own Keras-trained ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .. import layers
from ..datasets._files import download, file_digest
from ..models import Model

KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
_CLASS_INDEX_MAX_BYTES = 1 << 20


def check_arguments(where: str, weights, include_top: bool, classes, input_tensor, pooling,
                    classifier_activation) -> None:
    """Keras' checks of an application's arguments, each error naming the function and the argument."""
    if not (weights in ("imagenet", None) or (isinstance(weights, (str, os.PathLike)) and Path(weights).is_file())):
        raise ValueError(f"{where}: argument `weights` must be None (random initialization), 'imagenet' "
                         f"(pre-trained on ImageNet) or the path to a weights file, got {weights!r}")
    if not isinstance(include_top, bool):
        raise TypeError(f"{where}: argument `include_top` must be a bool, got {include_top!r}")
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 1:
        raise ValueError(f"{where}: argument `classes` must be a positive int, got {classes!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"{where}: with weights='imagenet' and include_top=True, `classes` must be 1000 (the "
                         f"ImageNet classes), got {classes}")
    if input_tensor is not None:
        raise ValueError(f"{where}: argument `input_tensor` is not supported yet (give `input_shape`), got "
                         f"{type(input_tensor).__name__}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"{where}: argument `pooling` must be None, 'avg' or 'max', got {pooling!r}")
    named = getattr(classifier_activation, "__name__", classifier_activation)      # a function: by its name
    if weights is not None and include_top and named not in (None, "softmax"):
        raise ValueError(f"{where}: with pre-trained weights and include_top=True, `classifier_activation` must be "
                         f"None or 'softmax', got {classifier_activation!r}")


def input_shape_for(where: str, input_shape, default_size: int, min_size: int, include_top: bool,
                    weights) -> tuple:
    """Keras' `obtain_input_shape` for channels_last images: the default size with the top and ImageNet
    weights (refusing another), (None, None, 3) without a top and a shape, else the given one, checked."""
    if input_shape is not None:
        try:
            input_shape = tuple(None if d is None else int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: argument `input_shape` must be a tuple (height, width, channels), got "
                            f"{input_shape!r}") from None
    channels = input_shape[-1] if weights != "imagenet" and input_shape and len(input_shape) == 3 else 3
    default = (default_size, default_size, channels)
    if weights == "imagenet" and include_top:
        if input_shape is not None and input_shape != default:
            raise ValueError(f"{where}: with include_top=True and weights='imagenet', `input_shape` must be "
                             f"{default}, got {input_shape}")
        return default
    if input_shape is None:
        return default if include_top else (None, None, 3)
    if len(input_shape) != 3:
        raise ValueError(f"{where}: argument `input_shape` must have three entries (height, width, channels), "
                         f"got {input_shape}")
    if weights == "imagenet" and input_shape[-1] != 3:
        raise ValueError(f"{where}: ImageNet weights take 3 channels, got input_shape={input_shape}")
    if any(d is not None and d < min_size for d in input_shape[:2]):
        raise ValueError(f"{where}: the input must be at least {min_size}x{min_size}, got input_shape={input_shape}")
    if include_top and None in input_shape:
        raise ValueError(f"{where}: with include_top=True the input shape must be known, got {input_shape}")
    return input_shape


def correct_pad(size, kernel: int):
    """Keras' `imagenet_utils.correct_pad`: the zero padding before a `kernel` window of stride 2 over an image
    of `size` (height, width), one row/column less before on an even side."""
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    return ((kernel // 2 - adjust[0], kernel // 2), (kernel // 2 - adjust[1], kernel // 2))


def top(x, include_top: bool, pooling, classes: int, classifier_activation, names: Sequence[Optional[str]]):
    """The classifier (global average pooling, then a Dense named "predictions") or the pooling asked for;
    `names`: the pooling layers' names (avg, max), None where Keras leaves them unnamed."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name=names[0])(x)
        return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=names[0])(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=names[1])(x)
    return x


def tf_kernels_file(weights, folder: str, include_top: bool, md5s) -> tuple:
    """(url, md5) of Keras' `<folder>/<folder>_weights_tf_dim_ordering_tf_kernels[_notop].h5` (`md5s`: with the
    top, without) where weights='imagenet', else (None, None)."""
    if weights != "imagenet":
        return None, None
    url = f"{KERAS_BASE}{folder}/{folder}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return url, md5s[0 if include_top else 1]


def finish(inputs, outputs, name: str, weights, url: Optional[str], md5: Optional[str],
           cache_name: Optional[str] = None) -> Model:
    """The model, with its weights: Keras' ImageNet file (`url`; cached as `cache_name` where Keras names it
    otherwise) where weights='imagenet', a file the user names, or none."""
    model = Model(inputs, outputs, name=name)
    if weights == "imagenet":
        model.load_weights(str(weights_file(url, md5, name=cache_name)))
    elif weights is not None:
        model.load_weights(str(weights))
    return model


def weights_file(url: str, md5: Optional[str], opener=None, name: Optional[str] = None) -> Path:
    """Keras' weights file at `url`, named `name` in the caches (default: the URL's last part, as Keras): from
    Keras' own cache (`~/.keras/models`) or convscope's (`~/.convscope/models`) where it is there and its hash is
    the published one (`md5`: an MD5, or a SHA-256 where Keras publishes one, told apart by length as Keras'
    "auto"), else downloaded into convscope's cache and checked (Keras publishes no hash for some files: those are
    kept as fetched)."""
    name = name or url.rsplit("/", 1)[-1]
    algorithm = "sha256" if md5 is not None and len(md5) == 64 else "md5"
    for folder in (Path.home() / ".keras" / "models", Path.home() / ".convscope" / "models"):
        candidate = folder / name
        if candidate.is_file() and (md5 is None or file_digest(candidate, algorithm) == md5):
            return candidate
    return download(url, Path.home() / ".convscope" / "models" / name, md5, opener=opener, algorithm=algorithm)


def _preprocess(x, mode: str, where: str) -> np.ndarray:
    """Keras' `imagenet_utils.preprocess_input` for channels_last images (a new float32 array): "tf" scales
    to [-1, 1]; "caffe" swaps RGB to BGR and subtracts ImageNet's mean per channel; "torch" scales to [0, 1]
    and standardizes with ImageNet's mean and deviation."""
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: argument `x` must be an array of numbers, got dtype {array.dtype}")
    array = array.astype(np.float32 if array.dtype != np.float64 else np.float64)
    if mode == "tf":
        return array / 127.5 - 1.0
    if array.ndim == 0 or array.shape[-1] != 3:
        raise ValueError(f"{where}: expected images with 3 channels last, got shape {array.shape}")
    if mode == "torch":
        return (array / 255.0 - np.array([0.485, 0.456, 0.406], array.dtype)) / np.array([0.229, 0.224, 0.225],
                                                                                         array.dtype)
    return array[..., ::-1] - np.array([103.939, 116.779, 123.68], array.dtype)


def decode_predictions(preds, top: int = 5, opener=None) -> list:
    """Keras' `decode_predictions`: for each row of ImageNet scores (n, 1000), its `top` classes as
    (WordNet id, name, score), best first; the class names from Keras' `imagenet_class_index.json` (from
    Keras' cache, or downloaded once and checked against Keras' MD5; read as data each call)."""
    where = "decode_predictions"
    scores = np.asarray(preds)
    if scores.ndim != 2 or scores.shape[1] != 1000 or scores.dtype.kind not in "biuf":
        raise ValueError(f"{where}: argument `preds` must be a batch of ImageNet scores, shape (samples, 1000), got "
                         f"shape {scores.shape} dtype {scores.dtype}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= 1000:
        raise ValueError(f"{where}: argument `top` must be an int from 1 to 1000, got {top!r}")
    index = _class_index(weights_file(CLASS_INDEX_URL, CLASS_INDEX_MD5, opener=opener))
    results = []
    for row in scores:
        best = np.argsort(row, kind="stable")[::-1][:top]
        results.append([index[int(i)] + (row[i],) for i in best])
    return results


def _class_index(path: Path) -> list:
    """The 1000 (WordNet id, name) pairs of Keras' class index file, checked (a file is data)."""
    if path.stat().st_size > _CLASS_INDEX_MAX_BYTES:
        raise ValueError(f"decode_predictions: '{path}' is {path.stat().st_size} bytes, more than an ImageNet class "
                         "index")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        pairs = [tuple(table[str(i)]) for i in range(1000)]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"decode_predictions: '{path}' is not an ImageNet class index (\"0\" to \"999\" -> "
                         f"[WordNet id, name]): {error}") from None
    if not all(len(pair) == 2 and all(isinstance(item, str) for item in pair) for pair in pairs):
        raise ValueError(f"decode_predictions: '{path}' is not an ImageNet class index: each entry must be "
                         "[WordNet id, name]")
    return pairs


def preprocessor(mode: str, where: str):
    """A module's `preprocess_input(x, data_format=None)` in Keras' `mode` (a new array; channels_last only)."""
    def preprocess_input(x, data_format=None):
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: argument `data_format` must be 'channels_last' (or None), got "
                             f"{data_format!r}")
        return _preprocess(x, mode, where)
    preprocess_input.__doc__ = (f"Images of 0-255 (RGB) as the model takes them: Keras' {mode!r} mode "
                                f"(`imagenet_utils.preprocess_input`), a new array.")
    return preprocess_input


def decoder():
    """A module's `decode_predictions(preds, top=5)` (Keras')."""
    def decode(preds, top=5):
        return decode_predictions(preds, top)
    decode.__name__ = decode.__qualname__ = "decode_predictions"
    decode.__doc__ = "Each row's `top` ImageNet classes as (WordNet id, name, score), best first (Keras')."
    return decode
