"""Input pipelines for `fit`/`evaluate`/`predict`: a Python generator, an iterator, an iterable of
batches or a `PyDataset` (Keras 3's `keras.utils.PyDataset` too) -> batches `(x, y, sample_weight)`.

Keras 3's rules (trainers/epoch_iterator.py and data_adapters/):

* a `PyDataset` (an instance of a class named PyDataset or derived from one: convscope's or
  Keras'; a bare object with `__len__` and `__getitem__` is not one, as in Keras) gives `num_batches` batches per epoch, in a new order each epoch when `shuffle`,
  with `on_epoch_begin`/`on_epoch_end` called around it;
* an iterable with `__len__` (e.g. `utils.image_dataset_from_directory`) is iterated afresh each
  epoch and has a known length; a generator or other iterator is read once, as a stream;
* without `steps_per_epoch` an epoch runs until the source ends; with it, each epoch takes that
  many batches of the running stream (a sized source starts over when a pass ends, with Keras'
  "ran out of data" warning when a pass ends an epoch early);
* a source known to be endless (a PyDataset whose `num_batches` is None, `itertools.count`,
  `cycle` or `repeat` without times) is refused without `steps_per_epoch`: it would never end;
* a generator's batches are tuples `(x,)`, `(x, y)` or `(x, y, sample_weight)`; those of a
  PyDataset or an iterable may also be a bare array (`(x,)`).

Only one batch is held at a time (a PyDataset with `workers` > 1: at most `max_queue_size` read
ahead on threads): nothing here collects a source, so memory stays bounded.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import types
import warnings
from typing import Any, Iterator, Optional, Tuple

import numpy as np

from .. import _rng

Batch = Tuple[Any, Any, Any]

_ENDLESS = (itertools.count, itertools.cycle)
RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator "
           "can generate at least `steps_per_epoch * epochs` batches.")


def is_py_dataset(x) -> bool:
    """A `PyDataset`: convscope's `utils.PyDataset` or Keras' `keras.utils.PyDataset` (by class name,
    so that models/ needs nothing from utils/), e.g. `ImageDataGenerator.flow(...)`."""
    return any(cls.__name__ == "PyDataset" for cls in type(x).__mro__)


def is_stream(x) -> bool:
    """True for the inputs this module reads (generators, iterators, iterables, PyDatasets); False
    for arrays, lists/tuples/dicts of arrays and None (the array path of `fit`)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes, int, float)):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False
    return is_py_dataset(x) or hasattr(x, "__iter__") or hasattr(x, "__next__")


def _endless(x) -> bool:
    if isinstance(x, _ENDLESS):
        return True
    if isinstance(x, itertools.repeat):
        try:
            x.__length_hint__()
        except TypeError:
            return True
    return False


class BatchSource:
    """One input pipeline: `epoch(steps)` yields one epoch's `(x, y, sample_weight)` batches.

    `num_batches` is the length of one pass when known (else None); `ran_out` becomes True when a
    one-shot stream ends while more batches were wanted (`fit` then stops, as it can never restart).
    """

    def __init__(self, data, steps: Optional[int], shuffle: bool, where: str, arg: str = "x"):
        self.where, self.arg, self.shuffle = where, arg, bool(shuffle)
        self.data = data
        self.ran_out = False            # a one-shot stream read to its end
        self.warned = False             # Keras' "ran out of data" warning given
        self._iterator: Optional[Iterator] = None     # the stream of an iterator (read once)
        self._current: Optional[Iterator] = None      # the running pass when epochs take `steps`
        self._seen = 0
        if is_py_dataset(data):
            self.kind = "pydataset"
            count = data.num_batches if hasattr(data, "num_batches") else len(data)
            if count is not None and (isinstance(count, bool) or not isinstance(count, (int, np.integer))
                                      or count < 0):
                raise ValueError(f"{where}: `{arg}` is a PyDataset whose length must be an int >= 0 or "
                                 f"None (infinite), got {count!r}")
            self.num_batches = None if count is None else int(count)
        elif hasattr(data, "__iter__") and not hasattr(data, "__next__") and iter_is_fresh(data):
            self.kind = "iterable"
            self.num_batches = len(data) if hasattr(data, "__len__") else None
        else:
            self.kind = "iterator"
            self.num_batches = None
        endless = (self.kind == "pydataset" and self.num_batches is None) or _endless(data)
        if endless and steps is None:
            what = "an infinite PyDataset (num_batches is None)" if self.kind == "pydataset" else \
                f"an endless iterator ({type(data).__name__})"
            raise ValueError(f"{where}: `{arg}` is {what}, so an epoch would never end; pass "
                             f"`{_steps_arg(where, arg)}` to say how many batches make one epoch")
        if self.num_batches == 0:
            raise ValueError(f"{where}: `{arg}` has no batches (length 0)")

    # -- passes -----------------------------------------------------------------------------------
    def _pass(self) -> Iterator:
        """One pass over the source: fresh for a PyDataset or an iterable, the stream itself else."""
        if self.kind == "pydataset":
            return self._py_dataset_pass()
        if self.kind == "iterable":
            return iter(self.data)
        if self._iterator is None:
            self._iterator = iter(self.data)
        return self._iterator

    def _py_dataset_pass(self) -> Iterator:
        if self.num_batches is None:
            indices = itertools.count()
        elif self.shuffle:
            indices = iter(_rng.generator().permutation(self.num_batches).tolist())
        else:
            indices = iter(range(self.num_batches))
        workers = getattr(self.data, "workers", 1)
        if isinstance(workers, int) and workers > 1:
            yield from _prefetched(self.data, indices, workers, getattr(self.data, "max_queue_size", 10))
            return
        for index in indices:
            yield self.data[index]

    def epoch(self, steps: Optional[int]) -> Iterator[Batch]:
        """One epoch's batches, unpacked and checked as tuples; with `steps`, from the running stream."""
        self._hook("on_epoch_begin")
        try:
            yield from self._epoch_batches(steps)
        finally:
            self._hook("on_epoch_end")

    def _epoch_batches(self, steps):
        if steps is None:
            stream = self._pass()
            for batch in stream:
                yield self.unpack(batch)
            if self.kind == "iterator":
                self.ran_out = True          # read to its end: a next epoch would get nothing
            return
        if self._current is None:
            self._current = self._pass()
            self._seen = 0
        for _ in range(steps):
            if self.num_batches and self._seen >= self.num_batches:
                self._warn()
                break
            try:
                batch = next(self._current)
            except StopIteration:
                self._warn()
                if self.kind == "iterator":
                    self.ran_out = True
                self._current = None
                return
            self._seen += 1
            yield self.unpack(batch)
        if self.num_batches and self._seen >= self.num_batches:
            self._current = None

    def _warn(self) -> None:
        self.warned = True
        warnings.warn(RAN_OUT, stacklevel=4)

    def restart(self) -> None:
        """Start the next `epoch(steps)` at the beginning of a sized source (validation each epoch)."""
        if self.kind != "iterator":
            self._current = None

    def _hook(self, name: str) -> None:
        if self.kind == "pydataset":
            hook = getattr(self.data, name, None)
            if callable(hook):
                hook()

    # -- one batch --------------------------------------------------------------------------------
    def unpack(self, batch) -> Batch:
        """`(x, y, sample_weight)` from a batch `(x,)`, `(x, y)`, `(x, y, w)` (a PyDataset's may be `x`)."""
        if self.kind != "iterator":              # a PyDataset's or a dataset's batch may be a bare array
            if isinstance(batch, list):
                batch = tuple(batch)
            if not isinstance(batch, (tuple, dict)):
                batch = (batch,)
        if not isinstance(batch, tuple) or not 1 <= len(batch) <= 3:
            given = f"a tuple of {len(batch)} items" if isinstance(batch, tuple) else \
                f"{type(batch).__name__} {_short(batch)}"
            raise ValueError(f"{self.where}: each batch of `{self.arg}` must be a tuple (inputs,), "
                             f"(inputs, targets) or (inputs, targets, sample_weights), got {given}")
        return batch + (None,) * (3 - len(batch))


def _prefetched(data, indices: Iterator[int], workers: int, queue_size) -> Iterator:
    """`data[i]` for each index, in order, read ahead by `workers` threads, at most `queue_size` batches
    waiting (Keras' OrderedEnqueuer with threads; `use_multiprocessing` also gets threads here)."""
    ahead = max(int(queue_size) if isinstance(queue_size, int) else 10, 1)
    pending: collections.deque = collections.deque()
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="convscope-pydataset")
    try:
        for index in itertools.chain(indices, [None]):
            if index is not None:
                pending.append(pool.submit(data.__getitem__, index))
                if len(pending) < ahead:
                    continue
            while pending and (index is None or len(pending) >= ahead):
                yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def iter_is_fresh(data) -> bool:
    """True when `iter(data)` returns a new iterator (a re-iterable container), not `data` itself."""
    return not isinstance(data, types.GeneratorType) and not hasattr(data, "__next__")


def _steps_arg(where: str, arg: str) -> str:
    """The argument that bounds an epoch of `arg` in `where`."""
    if arg == "validation_data":
        return "validation_steps"
    return "steps_per_epoch" if where == "fit" else "steps"


def _short(value) -> str:
    if isinstance(value, np.ndarray):
        return f"of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_sample_weight(weight, batch: int, where: str) -> Optional[np.ndarray]:
    """A batch's sample weights as a float array of `batch` rows (a ValueError naming `where` else)."""
    if weight is None:
        return None
    weight = np.asarray(weight)
    if weight.dtype.kind not in "biuf":
        raise TypeError(f"{where}: sample weights must be numbers, got dtype {weight.dtype}")
    if weight.ndim == 0 or len(weight) != batch:
        raise ValueError(f"{where}: sample weights must have one row per sample ({batch}), got shape "
                         f"{weight.shape}")
    if not np.isfinite(weight).all():
        raise ValueError(f"{where}: sample weights must be finite numbers")
    return weight


def class_sample_weights(y: np.ndarray, class_weight, where: str) -> np.ndarray:
    """Keras' `class_weight` as sample weights: each sample's class (its integer label, or the argmax of a
    one-hot row) weighted by `class_weight[class]`, 1 for a class it does not name."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"{where}: argument `class_weight` must be a dict of class index -> weight, got "
                        f"{type(class_weight).__name__}")
    table = {}
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or \
                isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
                not np.isfinite(value):
            raise ValueError(f"{where}: argument `class_weight` must map class indices (ints) to finite numbers, "
                             f"got {key!r}: {value!r}")
        table[int(key)] = float(value)
    if hasattr(y, "arrays"):                    # a functional model's targets (`multi_io.Columns`)
        if len(y.arrays) != 1:
            raise ValueError(f"{where}: argument `class_weight` is for a model with one output, got targets for "
                             f"{len(y.arrays)} outputs (as Keras)")
        y = y.arrays[0]
    labels = np.asarray(y)
    if labels.ndim > 2:
        raise ValueError(f"{where}: argument `class_weight` takes one label per sample (integer labels, (n, 1) or "
                         f"one-hot rows), got targets of shape {labels.shape}; for per-pixel weights pass "
                         "`sample_weight`")
    if labels.ndim == 2:
        labels = np.argmax(labels, axis=-1) if labels.shape[-1] != 1 else labels[:, 0]
    labels = np.round(labels).astype(np.int64)
    weights = np.ones(len(labels), dtype=np.float32)
    for label, weight in table.items():
        weights[labels == label] = weight
    return weights
