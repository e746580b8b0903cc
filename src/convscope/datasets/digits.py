"""The UCI optical-recognition 8×8 handwritten digits (1,797 images), shipped with convscope.

Each pixel counts the "on" pixels of a 4×4 block of a 32×32 bitmap, so values
run 0..16 (divide by 16 to get 0..1).  The file `data/digits.npz` was taken once
from scikit-learn's bundled copy; `data/DIGITS_SOURCE.txt` gives its origin and
its CC BY 4.0 licence.  Offline, small and real: the demo and the CI train on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA_FILE = Path(__file__).resolve().parent / "data" / "digits.npz"
NUM_IMAGES = 1797
TEST_EVERY = 5


def load_data():
    """Return `((x_train, y_train), (x_test, y_test))`: uint8 images (N, 8, 8) in 0..16, labels 0..9.

    The split is fixed and needs no random numbers: image i (in the original
    order) is a test image when i % 5 == 4, so 1,438 images train and 359 test,
    with every digit and every writer's stretch of the file in both.
    """
    images, labels = _read()
    is_test = np.arange(len(images)) % TEST_EVERY == TEST_EVERY - 1
    return (images[~is_test], labels[~is_test]), (images[is_test], labels[is_test])


def _read():
    try:
        with np.load(DATA_FILE, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, KeyError, ValueError) as error:
        raise FileNotFoundError(f"digits.load_data: the embedded file '{DATA_FILE}' is missing "
                                f"or damaged ({error}); reinstall convscope") from None
    if images.shape != (NUM_IMAGES, 8, 8) or labels.shape != (NUM_IMAGES,):
        raise ValueError(f"digits.load_data: '{DATA_FILE}' holds images {images.shape} and "
                         f"labels {labels.shape}, expected ({NUM_IMAGES}, 8, 8) and ({NUM_IMAGES},)")
    return images.astype(np.uint8), labels.astype(np.uint8)
