"""`model.summary()`: tf.keras 2's table, character for character (seed 001), plus optional columns.

The layout is tf.keras 2's `print_summary` for sequential models: 65 characters,
columns ending at [.45, .85, 1.] of the line, each cell cut to fit (which is
why Keras 2 prints "batch_normalization (BatchNo").  The `show_*` flags append
columns computed by `models/analysis.py`.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np

_HEADERS = ["Layer (type)", "Output Shape", "Param #"]
_DEFAULT_LINE_LENGTH = 65
_DEFAULT_POSITIONS = (.45, .85, 1.)


def _format_row(fields: Sequence, positions: Sequence[int]) -> str:
    """Keras 2's print_row: each field starts one space after the previous column and is cut at its end."""
    line = ""
    for i, field in enumerate(fields):
        if i > 0:
            line = line[:-1] + " "
        line += str(field)
        line = line[:positions[i]]
        line += " " * (positions[i] - len(line))
    return line


def _check_line_length(line_length) -> int:
    if line_length is None:
        return _DEFAULT_LINE_LENGTH
    if isinstance(line_length, bool) or not isinstance(line_length, (int, np.integer)) or line_length < 20:
        raise ValueError(f"summary: argument `line_length` must be an int >= 20, got {line_length!r}")
    return int(line_length)


def _check_positions(positions, line_length: int) -> List[int]:
    if positions is None:
        positions = _DEFAULT_POSITIONS
    try:
        values = [float(p) for p in positions]
    except (TypeError, ValueError):
        raise TypeError(f"summary: argument `positions` must be a list of {len(_HEADERS)} numbers, "
                        f"got {positions!r}") from None
    if len(values) != len(_HEADERS) or not all(np.isfinite(values)) or min(values) <= 0:
        raise ValueError(f"summary: argument `positions` must be {len(_HEADERS)} positive, finite numbers "
                         f"(fractions of the line or column ends), got {positions!r}")
    if values[-1] <= 1:
        values = [line_length * p for p in values]
    ends = [int(p) for p in values]
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError(f"summary: argument `positions` must increase, got {positions!r}")
    return ends


def print_summary(model, line_length: Optional[int] = None, positions=None,
                  print_fn: Optional[Callable[[str], None]] = None, show_trainable: bool = False,
                  show_kernels: bool = False, show_flops: bool = False, show_receptive_field: bool = False,
                  show_memory: bool = False) -> None:
    """Print `model`'s layers, output shapes and parameter counts as tf.keras 2 does."""
    if print_fn is None:
        print_fn = print
    elif not callable(print_fn):
        raise TypeError(f"summary: argument `print_fn` must be callable, got {print_fn!r}")
    if not isinstance(show_trainable, (bool, np.bool_)):
        raise TypeError(f"summary: argument `show_trainable` must be True or False, got {show_trainable!r}")
    if not model.built:
        raise ValueError(f"summary: {type(model).__name__} '{model.name}' has not been built yet: give its first "
                         "layer an `input_shape`, start it with `Input(shape=...)`, or call `build()` or "
                         "the model on data first")
    line_length = _check_line_length(line_length)
    ends = _check_positions(positions, line_length)
    layers = model.layers
    headers = list(_HEADERS)
    cells = [[f"{layer.name} ({type(layer).__name__})", str(layer.output_shape), str(layer.count_params())]
             for layer in layers]
    extra = []
    if show_trainable:
        extra.append(("Trainable", ["Y" if layer.trainable else "N" for layer in layers]))
    if show_kernels or show_flops or show_receptive_field or show_memory:
        from .analysis import summary_columns
        extra.extend(summary_columns(model, show_kernels=show_kernels, show_flops=show_flops,
                                     show_receptive_field=show_receptive_field, show_memory=show_memory))
    for header, column in extra:
        width = max([len(header)] + [len(c) for c in column]) + 2
        line_length += width
        ends.append(line_length)
        headers.append(header)
        for row, cell in zip(cells, column):
            row.append(cell)

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    print_fn(_format_row(headers, ends))
    print_fn("=" * line_length)
    for i, row in enumerate(cells):
        print_fn(_format_row(row, ends))
        print_fn(("=" if i == len(cells) - 1 else "_") * line_length)
    trainable = sum(int(v.value.size) for v in model.trainable_weights)
    non_trainable = sum(int(v.value.size) for v in model.non_trainable_weights)
    print_fn(f"Total params: {trainable + non_trainable:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {non_trainable:,}")
    print_fn("_" * line_length)
