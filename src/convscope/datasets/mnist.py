"""MNIST handwritten digits, as `keras.datasets.mnist`: 60,000 + 10,000 grayscale 28×28 images.

Reads Keras' `mnist.npz` or the four original IDX `.gz` files; see
`convscope.datasets._files` for where it looks and how it downloads.
"""

from __future__ import annotations

import os

from ._files import IdxDataset, find_or_download

SPEC = IdxDataset(
    name="mnist",
    folder_names=("mnist",),
    files=(
        ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    mirrors=(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    keras_cache=("",),
    npz_sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
)


def load_data(path: str = "mnist.npz"):
    """Return `((x_train, y_train), (x_test, y_test))`, all uint8.

    Shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,); pixels 0..255,
    labels 0..9.  `path` may name a Keras `.npz` file or a folder holding the
    four IDX files; a bare file name is looked for in the search folders.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"mnist.load_data: argument `path` must be a file or folder path "
                        f"(str or os.PathLike), got {path!r}")
    return find_or_download(SPEC, os.fspath(path), "mnist.load_data")
