"""Fashion-MNIST, as `keras.datasets.fashion_mnist`: 60,000 + 10,000 28×28 clothing images.

Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.  The SHA-256 checksums are the ones
TensorFlow Datasets publishes for the Zalando originals.
"""

from __future__ import annotations

import os
from typing import Optional

from ._files import IdxDataset, find_or_download

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

SPEC = IdxDataset(
    name="fashion_mnist",
    folder_names=("fashion_mnist", "fashion-mnist"),
    files=(
        ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ),
    mirrors=(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    keras_cache=("fashion-mnist",),
)


def load_data(path: Optional[str] = None):
    """Return `((x_train, y_train), (x_test, y_test))`, uint8, shaped as MNIST's.

    Keras' `load_data()` takes no argument; `path` may name a folder holding
    the four IDX files (or a `.npz` with `x_train`, `y_train`, `x_test`, `y_test`).
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"fashion_mnist.load_data: argument `path` must be a folder or file "
                        f"path (str or os.PathLike) or None, got {path!r}")
    return find_or_download(SPEC, None if path is None else os.fspath(path),
                            "fashion_mnist.load_data")
