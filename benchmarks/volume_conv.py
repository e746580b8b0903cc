"""A 3-D CNN (a clip or a scan: Conv3D → MaxPooling3D, three times, then a classifier) beside PyTorch.

    python benchmarks/volume_conv.py [--batch 8] [--size 16,64,64] [--rounds 3] [--steps 3]

Each framework runs in its own child process, rounds alternating, with the same weights (convscope's,
copied into native PyTorch modules); the outputs are checked to agree first.  Times inference
(`predict` / `torch.no_grad`) and a training step (SGD, softmax crossentropy).  Prints the machine (CPU,
SIMD width, BLAS, load), the medians and the ratio convscope / PyTorch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FILTERS = (16, 32, 64)
CLASSES = 10


def build_convscope(size):
    import convscope as cs
    from convscope import layers as L
    cs.utils.set_random_seed(0)
    layers = [L.Input(tuple(size) + (1,))]
    for filters in FILTERS:
        layers += [L.Conv3D(filters, 3, padding="same", activation="relu"), L.MaxPooling3D(2)]
    model = cs.Sequential(layers + [L.GlobalAveragePooling3D(), L.Dense(CLASSES)])
    model.compile(optimizer=cs.optimizers.SGD(0.01),
                  loss=cs.losses.CategoricalCrossentropy(from_logits=True))
    return model


def build_torch(weights):
    import torch
    from torch import nn
    modules, channels = [], 1
    for filters in FILTERS:
        modules += [nn.Conv3d(channels, filters, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2)]
        channels = filters
    model = nn.Sequential(*modules, nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(channels, CLASSES))
    convs = [m for m in model if isinstance(m, (nn.Conv3d, nn.Linear))]
    with torch.no_grad():
        for module, (kernel, bias) in zip(convs, zip(weights[::2], weights[1::2])):
            w = np.transpose(kernel, (4, 3, 0, 1, 2)) if kernel.ndim == 5 else kernel.T
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            module.bias.copy_(torch.from_numpy(bias))
    return model


def child(framework: str, folder: Path, steps: int) -> None:
    """Time `steps` inference calls and training steps; print {"infer": [s...], "train": [s...], "out": ...}."""
    data = np.load(folder / "data.npz")
    x, y = data["x"], data["y"]
    weights = [data[f"w{i}"] for i in range(len(data.files) - 2)]
    times = {"infer": [], "train": []}
    if framework == "convscope":
        model = build_convscope(x.shape[1:4])
        model.set_weights(weights)
        out = model.predict(x, batch_size=len(x), verbose=0)
        model.train_on_batch(x, y)                                     # warm-up (compiles, plans)
        model.set_weights(weights)
        for _ in range(steps):
            start = time.perf_counter()
            model.predict(x, batch_size=len(x), verbose=0)
            times["infer"].append(time.perf_counter() - start)
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times["train"].append(time.perf_counter() - start)
    else:
        import torch
        torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
        model = build_torch(weights)
        xt, yt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))), torch.from_numpy(y.argmax(1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        with torch.no_grad():
            out = model(xt).numpy()
        for _ in range(steps + 1):
            start = time.perf_counter()
            with torch.no_grad():
                model(xt)
            infer = time.perf_counter() - start
            start = time.perf_counter()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            optimizer.step()
            times["infer"].append(infer)
            times["train"].append(time.perf_counter() - start)
        times = {k: v[1:] for k, v in times.items()}                  # the first call warms up
    print(json.dumps({**times, "out": np.asarray(out, np.float64).ravel()[:64].tolist()}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", default="16,64,64", help="depth,height,width")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), args.steps)
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    from plan_speed import machine
    size = tuple(int(v) for v in args.size.split(","))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((args.batch,) + size + (1,)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, args.batch)]
    weights = build_convscope(size).get_weights()
    folder = Path(tempfile.mkdtemp(prefix="volume_conv_"))
    np.savez(folder / "data.npz", x=x, y=y, **{f"w{i}": w for i, w in enumerate(weights)})
    print(machine())
    results = {"convscope": {"infer": [], "train": []}, "torch": {"infer": [], "train": []}}
    outputs = {}
    for _ in range(args.rounds):
        for framework in results:
            run = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", framework,
                                  str(folder)], capture_output=True, text=True, check=True)
            report = json.loads(run.stdout.strip().splitlines()[-1])
            outputs[framework] = np.array(report["out"])
            for task in ("infer", "train"):
                results[framework][task].append(min(report[task]))
    difference = float(np.max(np.abs(outputs["convscope"] - outputs["torch"])))
    print(f"batch {args.batch}, volume {size}, outputs agree to {difference:.1e}")
    for task in ("infer", "train"):
        ours, theirs = (statistics.median(results[f][task]) * 1e3 for f in ("convscope", "torch"))
        print(f"{task:5s}  convscope {ours:8.1f} ms  PyTorch {theirs:8.1f} ms  ratio {ours / theirs:.2f}x")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0 if difference < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
