"""Inference speed of Keras' MobileNetV2 and ResNet50 through convscope's plan, with and without the
MobileNet/ResNet fusion (`plan.EpilogueStage`, graph residual Adds).

    KERAS_BACKEND=torch python benchmarks/plan_speed.py [--models mnv2_224,mnv2_96,r50] [--batches 1,32]
        [--rounds 3] [--folder DIR]

The models are built by real Keras (keras.applications, weights=None, the moving statistics
randomised so that a wrong normalization shows), saved as .keras (into --folder, reused when
there) and loaded with `convscope.models.load_model`.  "unfused" is the plan before the
fusion: `_epilogue_run` and `_residual_adds` switched off, every other stage as it was.
Rounds alternate fused and unfused, so a shared machine's load falls on both alike; the
outputs are checked to agree first.  Prints the CPU, SIMD width, BLAS and load with the medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

BUILDERS = {
    "mnv2_224": ("MobileNetV2", dict(input_shape=(224, 224, 3), alpha=1.0)),
    "mnv2_96": ("MobileNetV2", dict(input_shape=(96, 96, 3), alpha=1.0)),
    "r50": ("ResNet50", dict(input_shape=(224, 224, 3))),
}


def machine() -> str:
    from convscope.ops import simd
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i.get('internal_api')} {i.get('architecture')} x{i.get('num_threads')}"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        blas = "unknown"
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} CPUs, SIMD {simd.vector_bits()} bits, BLAS {blas}\n{load}"


def build(name: str, folder: Path) -> Path:
    path = folder / f"{name}.keras"
    if path.exists():
        return path
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    cls, kwargs = BUILDERS[name]
    net = getattr(keras.applications, cls)(weights=None, **kwargs)
    rng = np.random.default_rng(0)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape
            layer.set_weights([(rng.random(c) + 0.5).astype("float32"), rng.standard_normal(c).astype("float32") * .1,
                               rng.standard_normal(c).astype("float32") * .1, (rng.random(c) + .5).astype("float32")])
    net.save(path)
    return path


@contextmanager
def unfused(model):
    """The plan as it was before the MobileNet/ResNet fusion."""
    from convscope.models import graph_plan, plan
    saved = plan._epilogue_run, graph_plan._residual_adds
    plan._epilogue_run = lambda *args: 0
    graph_plan._residual_adds = lambda *args: {}
    model.__dict__.pop("_graph_plans", None)
    try:
        yield
    finally:
        plan._epilogue_run, graph_plan._residual_adds = saved
        model.__dict__.pop("_graph_plans", None)


def timed(model, x) -> float:
    start = time.perf_counter()
    model.predict(x, batch_size=len(x), verbose=0)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mnv2_224,mnv2_96,r50")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", default=None, help="where the .keras files are kept (default: a temporary one)")
    args = parser.parse_args(argv)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="plan_speed_"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: build(name, folder) for name in args.models.split(",")}
    from convscope.models import load_model
    print(machine())
    print(f"{'model':10s} {'batch':>5s} {'fused ms':>9s} {'unfused ms':>11s} {'speed-up':>8s}  max |diff|")
    for name, path in paths.items():
        model = load_model(path)
        for batch in (int(b) for b in args.batches.split(",")):
            x = np.random.default_rng(1).standard_normal((batch,) + tuple(model.inputs[0].shape[1:])).astype("float32")
            fused_out = model.predict(x, batch_size=batch, verbose=0)
            with unfused(model):
                plain_out = model.predict(x, batch_size=batch, verbose=0)
            diff = float(np.max(np.abs(fused_out - plain_out)))
            fused, plain = [], []
            for _ in range(args.rounds):
                model.predict(x[:1], batch_size=1, verbose=0)          # the plan rebuilt outside the timing
                fused.append(timed(model, x))
                with unfused(model):
                    model.predict(x[:1], batch_size=1, verbose=0)      # the plan rebuilt outside the timing
                    plain.append(timed(model, x))
            f, p = statistics.median(fused) * 1e3, statistics.median(plain) * 1e3
            print(f"{name:10s} {batch:5d} {f:9.1f} {p:11.1f} {p / f:7.2f}x  {diff:.1e}", flush=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    sys.exit(main())
