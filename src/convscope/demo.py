"""The demo (`python -m convscope demo`): seed 002's CNN learns real handwritten digits, offline.

Seed 002 builds Conv2D → MaxPooling2D → Conv2D → MaxPooling2D → Flatten →
Dense → Dense for 8×8 images of three hand-drawn shapes.  The demo keeps that
exact layer sequence and kernel sizes but widens it for ten classes — 32 and 64
filters instead of 2 and 3, 128 hidden units instead of 8 (with 2, 3 and 8 the
network is too narrow to separate ten digits reliably) — and trains it on the
real 8×8 UCI digits shipped with convscope (1,438 training images, 359 test).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List

import numpy as np

from . import _rng
from .datasets import digits
from .layers import Conv2D, Dense, Flatten, MaxPooling2D
from .models import Sequential
from .optimizers import Adam

DEFAULT_EPOCHS = 12
LEARNING_RATE = 0.002
BATCH_SIZE = 32
SEED = 2


@dataclass
class DemoResult:
    """What the demo measured: test accuracy and loss, training time, and the trained model."""

    test_accuracy: float
    test_loss: float
    seconds: float
    epochs: int
    history: Dict[str, List[float]]
    model: Any


def build_model() -> Sequential:
    """Seed 002's architecture for 8×8×1 input and 10 classes (wider filters and units)."""
    model = Sequential(name="seed002_digits")
    model.add(Conv2D(32, (3, 3), input_shape=(8, 8, 1), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, (2, 2), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    return model


def load_digits():
    """The embedded digits as float32 (N, 8, 8, 1) images in [0, 1] and integer labels."""
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    scale = np.float32(1.0 / 16.0)   # pixels count 0..16 "on" cells
    return ((x_train[..., None].astype(np.float32) * scale, y_train.astype(np.int64)),
            (x_test[..., None].astype(np.float32) * scale, y_test.astype(np.int64)))


def run(epochs: int = DEFAULT_EPOCHS, verbose=1, seed: int = SEED) -> DemoResult:
    """Print the summary, train with a progress bar, print and return the test accuracy.

    `verbose` is passed to `fit` (1 progress bar, 2 one line per epoch, 0 silent;
    0 also silences the summary and the final lines).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"demo.run: argument `epochs` must be a positive int, got {epochs!r}")
    if verbose not in (0, 1, 2, "auto"):
        raise ValueError(f"demo.run: argument `verbose` must be 0, 1, 2 or 'auto', got {verbose!r}")
    talk = print if verbose != 0 else (lambda *args, **kwargs: None)
    _rng.set_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = build_model()
    talk(f"convscope demo: seed 002's CNN on the UCI 8x8 handwritten digits "
         f"({len(x_train)} training images, {len(x_test)} test images, offline)")
    if verbose != 0:
        model.summary()
    model.compile(optimizer=Adam(learning_rate=LEARNING_RATE),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=int(epochs),
                        verbose=verbose)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    talk(f"Test accuracy: {test_accuracy:.2%} on {len(x_test)} unseen digits "
         f"(test loss {test_loss:.4f}); trained {epochs} epochs in {seconds:.1f} s")
    return DemoResult(float(test_accuracy), float(test_loss), seconds, int(epochs),
                      dict(history.history), model)


if __name__ == "__main__":
    run()
