"""`model.predict(x)` of a dask array: a lazy dask array, one `predict` per chunk of the batch axis.

The model goes into the graph once, as `.convscope` bytes under one key that every chunk's task
depends on: Dask moves that key to a worker once and each worker rebuilds the model once
(`_replica.replica`, keyed by the bytes' hash).  The graph holds the weights as they were when
`predict` was called.  With a `dask.distributed.Client` as the default scheduler, `.compute()` runs
on the cluster; a worker lost mid-way has its chunks recomputed by Dask from the graph.

For a model of several MB Dask warns "Sending large graph" when the result is computed: the
model's bytes travel with the graph, once, on purpose (so the graph needs no live client).

Chunks are rechunked to multiples of `batch_size` along the batch axis, so every batch is the batch
in-memory `predict` would run: the result equals in-memory `predict` exactly.
"""

from __future__ import annotations

import numpy as np

from ..models.training import check_predict_arguments
from ._replica import model_bytes, replica


def _predict_block(block: np.ndarray, blob: bytes, token: str, batch_size: int) -> np.ndarray:
    """One chunk's outputs, on whichever worker runs it."""
    return replica(blob, token).predict(block, batch_size=batch_size, verbose=0)


def _chunk_rows(chunks, batch_size: int) -> int:
    """Rows per chunk: the input's typical chunk rounded to a multiple of `batch_size` (at least one batch)."""
    typical = max(chunks) if chunks else batch_size
    return max(1, round(typical / batch_size)) * batch_size


def predict(model, x, batch_size=32, verbose="auto", steps=None, callbacks=None):
    """A lazy dask array of `model`'s outputs for the dask array `x` (Keras' `predict` arguments)."""
    import dask
    import dask.array as da

    where = f"{type(model).__name__} '{model.name}'.predict"
    if not isinstance(x, da.Array):
        raise TypeError(f"{where}: a dask input must be a dask.array.Array, got {type(x).__name__}")
    batch_size = check_predict_arguments(batch_size, verbose, steps, where)
    if callbacks:
        raise ValueError(f"{where}: argument `callbacks` cannot be used with a dask array input (the result "
                         f"is lazy: nothing runs until .compute()), got {callbacks!r}")
    if x.ndim == 0 or any(np.isnan(s) for s in x.shape):
        raise ValueError(f"{where}: a dask input needs known shape and chunks (call x.compute_chunk_sizes() "
                         f"first), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: expected at least one sample, got shape {x.shape}")
    if steps is not None:
        x = x[:int(steps) * int(batch_size)]
    expected = getattr(model, "input_shape", None) if getattr(model, "built", False) else None
    if isinstance(expected, tuple) and (len(expected) != x.ndim or any(
            e is not None and e != s for e, s in zip(expected[1:], x.shape[1:]))):
        raise ValueError(f"{where}: the model expects input of shape {expected}, got x of shape {tuple(x.shape)}")
    # One sample run here checks the input against the model and gives the output's shape and dtype.
    probe = model.predict(np.zeros((1,) + tuple(x.shape[1:]), dtype=x.dtype), batch_size=1, verbose=0)
    if not isinstance(probe, np.ndarray):
        raise ValueError(f"{where}: a dask input works for a model with one input and one output; this "
                         f"model returns {type(probe).__name__}")
    rows = _chunk_rows(x.chunks[0], int(batch_size))
    x = x.rechunk({0: rows, **{axis: -1 for axis in range(1, x.ndim)}})
    blob, token = model_bytes(model)
    shipped = dask.delayed(blob, name=f"convscope-model-{token}", pure=True)
    run = dask.delayed(_predict_block, pure=True)
    blocks = [da.from_delayed(run(block, shipped, token, int(batch_size)), dtype=probe.dtype,
                              shape=(rows_in_chunk,) + tuple(probe.shape[1:]), meta=probe[:0])
              for block, rows_in_chunk in zip(x.to_delayed().ravel(), x.chunks[0])]
    return blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=0)
