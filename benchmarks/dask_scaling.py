"""Images per second of `predict` and data-parallel `fit` on a Dask LocalCluster of 1 and 2 worker
processes (one thread each), against in-process predict/fit, on this machine.

    .venv/bin/python benchmarks/dask_scaling.py [--images 4096] [--batch-size 256] [--model seed000|seed002]

Reports one line per setting; the numbers go in benchmarks/README.md with the CPU and the date.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _model(name: str):
    from seed_models import seed000_model, seed002_model
    model = seed000_model(dropout=False) if name == "seed000" else seed002_model()
    shape = (28, 28, 1) if name == "seed000" else (8, 8, 1)
    model.build((None,) + shape)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model, shape


def _best(function, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", choices=("seed000", "seed002"), default="seed000")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    import dask.array as da
    from distributed import Client, LocalCluster

    model, shape = _model(args.model)
    rng = np.random.default_rng(0)
    x = rng.random((args.images,) + shape, dtype=np.float32)
    y = rng.integers(0, model.output_shape[-1], args.images)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.model}, "
          f"{args.images} images, batch {args.batch_size}, {time.strftime('%Y-%m-%d')}")

    seconds = _best(lambda: model.predict(x, batch_size=args.batch_size, verbose=0), args.rounds)
    print(f"predict in process        : {args.images / seconds:8.0f} images/s")
    seconds = _best(lambda: model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0), 1)
    print(f"fit in process            : {args.images / seconds:8.0f} images/s")
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            x_dask = client.persist(da.from_array(x, chunks=args.batch_size * 4))
            y_dask = client.persist(da.from_array(y, chunks=args.batch_size * 4))
            lazy = model.predict(x_dask, batch_size=args.batch_size)
            client.compute(lazy).result()                      # the replicas are built once, first
            seconds = _best(lambda: client.compute(lazy).result(), args.rounds)
            print(f"predict on {workers} worker(s)     : {args.images / seconds:8.0f} images/s")
            seconds = _best(lambda: model.fit(x_dask, y_dask, batch_size=args.batch_size, epochs=1, verbose=0,
                                              distribute=client), 1)
            print(f"fit on {workers} worker(s)         : {args.images / seconds:8.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
