"""Streaming benchmark: one epoch of `fit` on a folder of 10,000 small PNGs through
`utils.image_dataset_from_directory`, printing the peak resident memory.

The images are generated in a temporary folder (removed at the end).  The peak RSS is
compared with what the folder would take loaded whole as float32, to show that the
pipeline streams the files batch by batch rather than collecting them.

    python benchmarks/stream_folder.py [--files 10000] [--size 32] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import convscope as cs                      # noqa: E402
from convscope import layers, utils         # noqa: E402


def peak_rss_mb() -> float:
    """The process' peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_images(root: Path, files: int, size: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    for index in range(files):
        folder = root / f"class_{index % classes}"
        folder.mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{index:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="convscope-stream-"))
    try:
        start = time.perf_counter()
        write_images(root, args.files, args.size)
        written = time.perf_counter() - start
        model = cs.Sequential([cs.Input((args.size, args.size, 3)), layers.Rescaling(1 / 255.0),
                               layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
                               layers.GlobalAveragePooling2D(), layers.Dense(4, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        dataset = utils.image_dataset_from_directory(root, image_size=(args.size, args.size),
                                                     batch_size=args.batch_size, seed=1, verbose=False)
        model.fit(next(iter(dataset))[0][:2], np.zeros(2, "int32"), verbose=0)     # warm up (builds, compiles)
        before_peak, before = peak_rss_mb(), current_rss_mb()
        start = time.perf_counter()
        history = model.fit(dataset, epochs=1, verbose=0)
        seconds = time.perf_counter() - start
        whole = args.files * args.size * args.size * 3 * 4 / 2 ** 20
        print(f"files: {args.files} PNG {args.size}x{args.size}x3 in {len(dataset)} batches of {args.batch_size} "
              f"(written in {written:.1f} s)")
        print(f"one epoch: {seconds:.1f} s, loss {history.history['loss'][0]:.4f}")
        print(f"RSS before fit: {before:.0f} MiB (peak so far {before_peak:.0f} MiB); peak after fit: "
              f"{peak_rss_mb():.0f} MiB; the folder loaded whole as float32 would be {whole:.0f} MiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
