"""`PyDataset` (alias `Sequence`): Keras 3's base class for a dataset of batches written in Python.

A subclass gives `__len__` (the number of batches) and `__getitem__(index)` (one whole batch:
`x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`); `on_epoch_begin`/`on_epoch_end` are called by
`fit` around each epoch.  An infinite dataset returns None from `num_batches` and needs
`steps_per_epoch`.  With `workers` > 1, `fit`/`evaluate`/`predict` read batches ahead on that many
threads, in order, at most `max_queue_size` waiting (`use_multiprocessing` gets threads too).
"""

from __future__ import annotations

import itertools
import warnings


class PyDataset:
    """Base class of a dataset of batches: subclass it and give `__len__` and `__getitem__`."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        for arg, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"PyDataset: argument `{arg}` must be an int >= 0, got {value!r}")
        if not isinstance(use_multiprocessing, bool):
            raise TypeError(f"PyDataset: argument `use_multiprocessing` must be True or False, "
                            f"got {use_multiprocessing!r}")
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _setting(self, name, default):
        if not hasattr(self, name):
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in its "
                          "constructor. `**kwargs` can include `workers`, `use_multiprocessing`, "
                          "`max_queue_size`.", stacklevel=3)
            setattr(self, name, default)
        return getattr(self, name)

    @property
    def workers(self):
        return self._setting("_workers", 1)

    @property
    def use_multiprocessing(self):
        return self._setting("_use_multiprocessing", False)

    @property
    def max_queue_size(self):
        return self._setting("_max_queue_size", 10)

    def __getitem__(self, index):
        """The batch at position `index`."""
        raise NotImplementedError(f"{type(self).__name__}: a PyDataset must implement __getitem__(index)")

    @property
    def num_batches(self):
        """The number of batches (`len(self)`), or None for an infinite dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__}: a PyDataset must implement __len__ or the "
                                  "`num_batches` property (None for an infinite dataset)")

    def __iter__(self):
        count = self.num_batches
        for index in (range(count) if count is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


Sequence = PyDataset
