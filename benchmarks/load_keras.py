"""Time and peak memory of loading a large Keras model file: convscope vs Keras 3.

    python benchmarks/load_keras.py [--model resnet50|vgg_like] [--format keras|h5] [--rounds 3] [--width 1.0]

`resnet50`: Keras' ResNet50 (`weights=None`, 224x224, 1000 classes; 25.6M parameters, ~98 MB).
`vgg_like`: Conv2D/MaxPooling2D blocks, Flatten, two Dense layers (~100 MB of float32 weights at
--width 1).  The model is built and saved by Keras in a child process; each loader then runs
in a fresh child process per round (`convscope.models.load_model` vs
`keras.saving.load_model`, both with compile=True) and reports the seconds of the load and
its peak resident memory above the process' memory before the load (ru_maxrss).  The best
round of each is printed, with the ratios convscope / Keras.  Needs keras, torch and h5py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

BUILD = r"""
import os, sys
os.environ.setdefault("KERAS_BACKEND", "torch")
import numpy as np, keras
from keras import layers as L
kind, width, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
def w(n): return max(1, int(n * width))
def vgg_like():
    inputs = L.Input((64, 64, 3))
    x = inputs
    for filters in (64, 128, 256, 512):
        x = L.Conv2D(w(filters), 3, padding="same", activation="relu")(x)
        x = L.Conv2D(w(filters), 3, padding="same", activation="relu")(x)
        x = L.MaxPooling2D()(x)
    x = L.Dense(w(2048), activation="relu")(L.Flatten()(x))
    x = L.Dense(w(2048), activation="relu")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x), name="vgg_like")
if kind == "resnet50":
    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
else:
    model = vgg_like()
model.compile(optimizer="adam", loss="categorical_crossentropy")
model.save(path)
print("%d %d" % (model.count_params(), os.path.getsize(path)))
"""

LOAD = r"""
import os, sys, time, resource, json
os.environ.setdefault("KERAS_BACKEND", "torch")
loader, path = sys.argv[1], sys.argv[2]
if loader == "convscope":
    import convscope
    load = lambda: convscope.models.load_model(path)
else:
    import keras
    load = lambda: keras.saving.load_model(path)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
model = load()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mib": (peak - before) / 1024, "params": model.count_params()}))
"""


def child(code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def best_of(loader: str, path: Path, rounds: int) -> dict:
    results = [json.loads(child(LOAD, loader, str(path))) for _ in range(rounds)]
    return {"seconds": min(r["seconds"] for r in results), "peak_mib": min(r["peak_mib"] for r in results),
            "params": results[0]["params"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("resnet50", "vgg_like"), default="resnet50")
    parser.add_argument("--format", choices=("keras", "h5"), default="keras")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0, help="vgg_like: scales every layer's width (1: ~100 MB)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{args.model}.{args.format}"
        params, size = map(int, child(BUILD, args.model, str(args.width), str(path)).split())
        print(f"model: {args.model}, {params:,} parameters ({params * 4 / 2**20:.1f} MiB of float32), "
              f"file {size / 2**20:.1f} MiB ({args.format})")
        ours, theirs = best_of("convscope", path, args.rounds), best_of("keras", path, args.rounds)
    if ours["params"] != theirs["params"]:
        raise SystemExit(f"the loaders disagree: {ours['params']} vs {theirs['params']} parameters")
    for name, result in (("convscope", ours), ("keras", theirs)):
        print(f"{name:>10}: {result['seconds']:.3f} s, peak +{result['peak_mib']:.1f} MiB (best of {args.rounds})")
    print(f"{'ratio':>10}: time {ours['seconds'] / theirs['seconds']:.2f}x, "
          f"memory {ours['peak_mib'] / max(theirs['peak_mib'], 1e-9):.2f}x (convscope / Keras)")
    limit = (size + 1.5 * params * 4) / 2**20
    print(f"{'targets':>10}: time <= 2x Keras' ({ours['seconds'] <= 2 * theirs['seconds']}), extra memory <= "
          f"file + 1.5x the weights = {limit:.0f} MiB ({ours['peak_mib'] <= limit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
