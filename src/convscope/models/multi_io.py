"""Several inputs and outputs in training: data columns, a loss per output, metrics per output.

Keras 3's rules: `loss` is one loss for every output, a list (in output order) or a dict
keyed by output name; `loss_weights` likewise a list or a dict; `metrics` a list of lists,
a dict keyed by output name, or (one output) a flat list.  The total loss is
sum(weight_i * loss_i); the logs hold `loss`, then `<output>_loss` for each output when
there are several, then `<output>_<metric>` (the metric name alone for one output).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .. import losses as losses_module, metrics as metrics_module


class Columns:
    """Arrays with the same number of samples, sliced together (`x` or `y` of a multi-IO model)."""

    def __init__(self, arrays: Sequence[np.ndarray]):
        self.arrays = list(arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index) -> "Columns":
        return Columns([a[index] for a in self.arrays])

    @property
    def shape(self):
        return tuple(a.shape for a in self.arrays)


def per_output(value, names: Sequence[str], arg: str, where: str, broadcast: bool) -> List[Any]:
    """`value` as one entry per output: from a dict keyed by output name, a list in output order,
    or (when `broadcast`) one value for every output."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{where}: argument `{arg}` has keys {unknown} that are not outputs; the "
                             f"outputs are {list(names)}")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)) and (len(names) > 1 or not broadcast):
        if len(value) != len(names):
            raise ValueError(f"{where}: argument `{arg}` must have one entry per output ({len(names)}: "
                             f"{list(names)}), got {len(value)}")
        return list(value)
    if broadcast or len(names) == 1:
        return [value] * len(names)
    raise ValueError(f"{where}: argument `{arg}` must be a list or a dict for a model with "
                     f"{len(names)} outputs {list(names)}, got {value!r}")


def losses_per_output(loss, names: Sequence[str], where: str) -> List[Optional[losses_module.Loss]]:
    entries = per_output(loss, names, "loss", where, broadcast=True)
    if all(entry is None for entry in entries):
        raise ValueError(f"{where}: argument `loss` is required (one loss, a list or a dict keyed by "
                         f"output name {list(names)}), got {loss!r}")
    return [None if entry is None else losses_module.as_loss_object(entry, where) for entry in entries]


def loss_weights_per_output(loss_weights, names: Sequence[str], where: str) -> List[float]:
    if loss_weights is None:
        return [1.0] * len(names)
    entries = per_output(loss_weights, names, "loss_weights", where, broadcast=False)
    weights = []
    for name, weight in zip(names, entries):
        weight = 1.0 if weight is None else weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
            raise TypeError(f"{where}: argument `loss_weights` must hold numbers, got {weight!r} for "
                            f"output '{name}'")
        weights.append(float(weight))
    return weights


def metrics_per_output(metrics, names: Sequence[str], where: str) -> List[List[Any]]:
    if metrics is None:
        return [[] for _ in names]
    if isinstance(metrics, dict):
        entries = per_output(metrics, names, "metrics", where, broadcast=False)
    elif isinstance(metrics, (list, tuple)) and metrics and all(isinstance(m, (list, tuple)) for m in metrics):
        entries = per_output(list(metrics), names, "metrics", where, broadcast=False)
    elif isinstance(metrics, (list, tuple)) and len(names) == 1:
        entries = [list(metrics)]
    elif isinstance(metrics, (list, tuple)):         # Keras 3: one entry per output, as it refuses others
        if len(metrics) != len(names):
            raise ValueError(f"{where}: argument `metrics` must be a dict keyed by output name or a list "
                             f"with one entry (a metric or a list of them) per output {list(names)}, "
                             f"got {list(metrics)!r} for {len(names)} outputs")
        entries = list(metrics)
    else:
        raise TypeError(f"{where}: argument `metrics` must be a list, a list of lists or a dict keyed by "
                        f"output name, got {metrics!r}")
    out = []
    for entry in entries:
        entry = [] if entry is None else ([entry] if isinstance(entry, str) else list(entry))
        for metric in entry:
            if metric not in ("accuracy", "acc"):
                metrics_module.get(metric)
        out.append(entry)
    return out


def metric_name(metric, output: str, prefix: bool) -> str:
    return f"{output}_{metric.name}" if prefix else metric.name
