"""A model as bytes for Dask workers, and each worker's cache of the replicas it rebuilt.

The bytes are a `.convscope` file (config, weights, compile settings, optimizer state: data, never
code, checked on load as any file), not a pickle of live objects.  A worker rebuilds a model once per
token (the bytes' SHA-256) and keeps the last few, so the model crosses the network and is rebuilt
once per worker, not once per chunk or per step.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Tuple

_CACHE_SIZE = 4
_cache: "OrderedDict[str, object]" = OrderedDict()
_lock = threading.Lock()
_rebuilt: "dict[str, int]" = {}          # token -> how many times this process rebuilt it


def model_bytes(model) -> Tuple[bytes, str]:
    """(the model as `.convscope` bytes, their SHA-256 hex token)."""
    from ..io import save_model
    with tempfile.TemporaryDirectory(prefix="convscope-replica-") as folder:
        path = Path(folder) / "model.convscope"
        save_model(model, path)
        blob = path.read_bytes()
    return blob, hashlib.sha256(blob).hexdigest()


def model_from_bytes(blob: bytes):
    """A fresh model from `model_bytes`' bytes (`io.load_model`'s checks apply)."""
    from ..io import load_model
    with tempfile.TemporaryDirectory(prefix="convscope-replica-") as folder:
        path = Path(folder) / "model.convscope"
        path.write_bytes(blob)
        return load_model(path)


def replica(blob: bytes, token: str):
    """This process's model for `token`, rebuilt from `blob` the first time (one per process; the
    lock keeps two threads of a worker from rebuilding it twice)."""
    with _lock:
        model = _cache.get(token)
        if model is None:
            model = model_from_bytes(blob)
            model._replica_lock = threading.Lock()    # one training shard at a time on a replica
            _cache[token] = model
            _rebuilt[token] = _rebuilt.get(token, 0) + 1
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(token)
        return model


def rebuilds(token: str) -> int:
    """How many times this process rebuilt the model of `token` (the tests read it on each worker)."""
    return _rebuilt.get(token, 0)


def process_id() -> int:
    return os.getpid()
