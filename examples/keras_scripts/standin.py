"""Stand-in data for the scripts here, where the originals download a data set.

Small, generated on the spot, with the shapes, dtypes and folder layout of the real thing, and
learnable (each class has its own colour and stripe direction), so that training visibly moves.
Nothing here is downloaded or committed.
"""

import os

import numpy as np


def _class_images(labels, size, rng):
    """uint8 images (n, size, size, 3): class k is tinted and striped its own way, plus noise."""
    n = len(labels)
    ramp = np.arange(size, dtype=np.float32)
    images = rng.integers(0, 96, (n, size, size, 3)).astype(np.float32)
    for i, k in enumerate(int(label) for label in labels):
        period = 3 + k % 4
        stripes = ((ramp[:, None] if k % 2 else ramp[None, :]) // period) % 2
        tint = np.array([(k * 70) % 256, (k * 130 + 60) % 256, (k * 200 + 120) % 256], np.float32)
        images[i] += stripes[..., None] * tint * 0.6
    return np.clip(images, 0, 255).astype(np.uint8)


def cifar10_load_data(n_train=1000, n_test=200, seed=0):
    """`((x_train, y_train), (x_test, y_test))` shaped as `cifar10.load_data()`: uint8 (n, 32, 32, 3)
    images and uint8 (n, 1) labels 0..9 — `n_train`/`n_test` of them instead of 50,000/10,000."""
    rng = np.random.default_rng(seed)
    y_train = rng.integers(0, 10, n_train).astype(np.uint8)
    y_test = rng.integers(0, 10, n_test).astype(np.uint8)
    return ((_class_images(y_train, 32, rng), y_train[:, None]),
            (_class_images(y_test, 32, rng), y_test[:, None]))


def image_folder(root, class_names, per_class, size=(64, 64), seed=0, formats=("jpg", "png")):
    """Writes `root/<class>/<i>.<ext>` image files (the layout `image_dataset_from_directory` and
    `flow_from_directory` read); returns `root`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(class_names):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        images = _class_images([k] * per_class, max(size), rng)
        for i, image in enumerate(images):
            ext = formats[i % len(formats)]
            Image.fromarray(image[:size[0], :size[1]]).save(os.path.join(folder, f"{name}.{i}.{ext}"))
    return root
