"""CIFAR-100, as `keras.datasets.cifar100`: 50,000 + 10,000 colour 32×32 images,
100 fine classes grouped in 20 coarse ones.

Reads Keras' "python version" archive without unpickling anything (see
`convscope.datasets.cifar` for where it looks and how it downloads).
"""

from __future__ import annotations

import os

from .cifar import CifarSpec, load

SPEC = CifarSpec(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    train=("train",),
    test=("test",),
    keras_dirname="cifar-100-python-target",
    label_dtype="int64",
    max_batch_bytes=320 << 20,      # the real training file: 155 MB
    max_archive_bytes=512 << 20,    # the real archive unpacks to under 200 MB
)

_CLASSES = {"fine": 100, "coarse": 20}


def load_data(label_mode="fine", path=None):
    """Return `((x_train, y_train), (x_test, y_test))` as Keras does.

    x: uint8 (50000, 32, 32, 3) and (10000, 32, 32, 3) — (N, 3, 32, 32) when
    `backend.image_data_format()` is "channels_first"; y: int64 (50000, 1) and
    (10000, 1): 0..99 for `label_mode="fine"`, the 20 superclasses 0..19 for
    "coarse".  `path` (convscope's addition) may name the archive or a folder
    holding it or its batch files.
    """
    if not isinstance(label_mode, str) or label_mode not in _CLASSES:
        raise ValueError(f"cifar100.load_data: argument `label_mode` must be 'fine' or 'coarse', "
                         f"got {label_mode!r}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"cifar100.load_data: argument `path` must be None or a file or folder "
                        f"path (str or os.PathLike), got {path!r}")
    return load(SPEC, f"{label_mode}_labels", _CLASSES[label_mode], path, "cifar100.load_data")
