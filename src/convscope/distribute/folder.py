"""Score a folder of PNG/JPEG images of any size into a Parquet file, one row per file, on Dask.

The files are listed as a stream (never the whole list at once), cut into chunks of `chunk_size`
files, and each chunk becomes one task: read, resize to the model's input (Pillow, bilinear),
scale by `rescale`, predict.  At most `max_in_flight` chunks are pending at a time and their rows
are written in order, one Parquet row group per chunk, so the driver holds a few chunks whatever the
folder's size.  A file that cannot be read as an image gets a row with a null prediction and the
reason in `error`.  The model goes to each worker once (`.convscope` bytes as one task result, rebuilt once
per worker); a worker lost mid-way has its chunks rerun by Dask.  The Parquet file is written
atomically (`io/_atomic.py`): it appears whole or not at all.

Columns: `path` (relative to the folder, '/'-separated), `prediction` (list of float32, the
model's output for the image, flattened), `error` (null, or why the file has no prediction).
"""

from __future__ import annotations

import collections
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..utils.image_utils import convert_mode
from ._replica import model_bytes, replica

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SCHEDULERS = ("threads", "synchronous")
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


def image_files(folder) -> Iterator[str]:
    """Relative paths of the PNG/JPEG files under `folder` (recursive, in directory order, streamed)."""
    root = Path(folder)
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(root / relative if relative else root) as entries:
            for entry in entries:
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                elif entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
                    yield name


def _input_layout(model, where: str) -> Tuple[int, int, int, bool]:
    """(height, width, channels, channels_last) of the model's image input: the channel axis where the
    first layer with a `data_format` puts it, else the end with 1, 3 or 4 channels."""
    shape = tuple(getattr(model, "input_shape", None) or ())
    if len(shape) != 4 or None in shape[1:]:
        raise ValueError(f"{where}: the model must take images of a fixed size (input shape (None, height, "
                         f"width, channels)), got input shape {shape or None}")
    declared = next((layer.data_format for layer in getattr(model, "layers", [])
                     if getattr(layer, "data_format", None) in ("channels_last", "channels_first")), None)
    last = shape[3] in _MODES if declared is None else declared == "channels_last"
    if last and shape[3] in _MODES:
        return shape[1], shape[2], shape[3], True
    if not last and shape[1] in _MODES:
        return shape[2], shape[3], shape[1], False
    raise ValueError(f"{where}: the model's input {shape} has no channel axis of 1, 3 or 4 channels "
                     f"(grayscale, RGB, RGBA) at either end")


def _read_image(path: str, height: int, width: int, channels: int, rescale: float) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as image:
        image = convert_mode(image, _COLOR_MODES[channels])   # 16-bit grayscale kept, as Keras' load_img
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32)
    return (pixels * np.float32(rescale)).reshape(height, width, channels)


def _score_chunk(blob: bytes, token: str, folder: str, paths: List[str], batch_size: int, rescale: float):
    """On a worker: (paths, predictions of the readable files [n, k] float32, {index: error}).  `blob` is
    the model's bytes, or the model itself in this process ('threads', 'synchronous')."""
    model = replica(blob, token) if isinstance(blob, bytes) else blob
    height, width, channels, channels_last = _input_layout(model, "score_folder")
    x = np.empty((len(paths), height, width, channels), np.float32)     # filled in place: one copy of the chunk
    errors, filled = {}, 0
    for index, name in enumerate(paths):
        try:
            # a plain string: pathlib interns every part, and 10,000 new names grow the interpreter's
            # interned-string table by megabytes
            x[filled] = _read_image(os.path.join(folder, name), height, width, channels, rescale)
            filled += 1
        except Exception as error:       # noqa: BLE001 - any unreadable file is reported in its row
            errors[index] = f"{type(error).__name__}: {error}"
    if not filled:
        return paths, np.zeros((0, 0), np.float32), errors
    x = x[:filled]
    if not channels_last:
        x = x.transpose(0, 3, 1, 2)
    out = model.predict(x, batch_size=batch_size, verbose=0)
    return paths, np.asarray(out, dtype=np.float32).reshape(len(out), -1), errors


def _identity(value):
    return value


class _Inline:
    """The 'synchronous' scheduler: each chunk scored when submitted."""

    class _Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    def submit(self, function, *args):
        return self._Done(function(*args))


@contextlib.contextmanager
def _runner(scheduler, where: str):
    """(submit(function, *args) -> future with .result(), how many chunks to keep in flight, ship(blob))."""
    if scheduler == "synchronous":
        yield _Inline().submit, 1, lambda blob: blob
        return
    if scheduler == "threads":
        workers = os.cpu_count() or 1
        with ThreadPoolExecutor(workers) as pool:
            yield pool.submit, 2 * workers, lambda blob: blob
        return
    from distributed import Client, LocalCluster
    with contextlib.ExitStack() as stack:
        if isinstance(scheduler, Client):
            client = scheduler
        elif scheduler is None:
            cluster = stack.enter_context(LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                                                       processes=True, dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
        elif isinstance(scheduler, str):
            try:
                client = stack.enter_context(Client(scheduler, timeout="10s"))
            except (OSError, ValueError, TypeError) as error:
                raise ValueError(f"{where}: argument `scheduler` {scheduler!r} is not 'threads', 'synchronous' "
                                 f"or the address of a reachable Dask scheduler ({error})") from None
        else:
            raise TypeError(f"{where}: argument `scheduler` must be None, 'threads', 'synchronous', a scheduler "
                            f"address or a dask.distributed.Client, got {type(scheduler).__name__}")
        count = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))

        def submit(function, *args):
            return client.submit(function, *args, pure=False)

        yield submit, 2 * count, lambda blob: client.submit(_identity, blob, pure=False)   # recomputable


def _chunks(folder, chunk_size: int) -> Iterator[List[str]]:
    chunk: List[str] = []
    for name in image_files(folder):
        chunk.append(name)
        if len(chunk) == chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _table(paths, predictions, errors):
    import pyarrow as pa
    rows, column = iter(predictions), []
    for index in range(len(paths)):
        column.append(None if index in errors else next(rows))
    width = predictions.shape[1] if len(predictions) else 0
    values = pa.array(np.concatenate([p for p in column if p is not None]) if width else np.zeros(0, np.float32),
                      type=pa.float32())
    offsets = np.zeros(len(paths) + 1, np.int32)
    offsets[1:] = np.cumsum([0 if p is None else width for p in column])
    mask = pa.array([p is None for p in column])
    prediction = pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)
    error = pa.array([errors.get(i) for i in range(len(paths))], type=pa.string())
    return pa.table({"path": pa.array(paths, pa.string()), "prediction": prediction, "error": error})


def score_folder(model, folder, output, batch_size: int = 32, chunk_size: int = 256, rescale: float = 1 / 255,
                 scheduler=None, progress: bool = True) -> int:
    """Score every PNG/JPEG under `folder` with `model` into the Parquet file `output`; returns the rows.

    `scheduler`: None (a LocalCluster of one worker process per CPU, closed afterwards), a
    `dask.distributed.Client` or a scheduler's address, 'threads' (this process' threads) or
    'synchronous' (one chunk after another in this thread).
    """
    import pyarrow.parquet as pq
    from ..io._atomic import atomic_write
    where = "score_folder"
    for arg, value in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{where}: argument `{arg}` must be a positive int, got {value!r}")
    if isinstance(rescale, bool) or not isinstance(rescale, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: argument `rescale` must be a finite number, got {rescale!r}")
    if not np.isfinite(rescale):
        raise ValueError(f"{where}: argument `rescale` must be a finite number, got {rescale!r}")
    if not Path(folder).is_dir():
        raise ValueError(f"{where}: argument `folder` must be a folder of images, got {str(folder)!r}")
    if Path(output).suffix.lower() != ".parquet":
        raise ValueError(f"{where}: argument `output` must be a .parquet file, got {str(output)!r}")
    _input_layout(model, where)
    total = sum(1 for _ in image_files(folder))
    blob, token = model_bytes(model) if scheduler not in SCHEDULERS else (model, None)
    rows = 0
    with _runner(scheduler, where) as (submit, in_flight, ship), \
            atomic_write(output) as handle, _progress(total, progress) as bar:
        shipped = ship(blob)
        writer = None
        pending: "collections.deque" = collections.deque()
        chunks = _chunks(folder, int(chunk_size))
        while True:
            while len(pending) < in_flight:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                pending.append(submit(_score_chunk, shipped, token, str(folder), chunk, int(batch_size),
                                      float(rescale)))
            if not pending:
                break
            table = _table(*pending.popleft().result())
            writer = writer or pq.ParquetWriter(handle, table.schema)
            writer.write_table(table)
            rows += table.num_rows
            bar.update(table.num_rows)
        if writer is None:
            writer = pq.ParquetWriter(handle, _table([], np.zeros((0, 0), np.float32), {}).schema)
        writer.close()
    return rows


@contextlib.contextmanager
def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    with tqdm(total=total, unit="image", disable=not enabled, desc="scoring") as bar:
        yield bar
