"""CIFAR-10, as `keras.datasets.cifar10`: 50,000 + 10,000 colour 32×32 images in 10 classes.

Classes: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse,
8 ship, 9 truck.  Reads Keras' "python version" archive without unpickling
anything (see `convscope.datasets.cifar` for where it looks and how it downloads).
"""

from __future__ import annotations

import os

from .cifar import CifarSpec, load

SPEC = CifarSpec(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    train=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test=("test_batch",),
    keras_dirname="cifar-10-batches-py-target",
    label_dtype="uint8",
    max_batch_bytes=64 << 20,       # a real batch: 31 MB
    max_archive_bytes=512 << 20,    # the real archive unpacks to under 200 MB
)


def load_data(path=None):
    """Return `((x_train, y_train), (x_test, y_test))` as Keras does.

    x: uint8 (50000, 32, 32, 3) and (10000, 32, 32, 3) — (N, 3, 32, 32) when
    `backend.image_data_format()` is "channels_first"; y: uint8 (50000, 1) and
    (10000, 1), 0..9.  `path` (convscope's addition) may name the archive or a
    folder holding it or its batch files.
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"cifar10.load_data: argument `path` must be None or a file or folder path "
                        f"(str or os.PathLike), got {path!r}")
    return load(SPEC, "labels", 10, path, "cifar10.load_data")
