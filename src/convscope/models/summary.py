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


# tf.keras 2's layout for graph models: a "Connected to" column, 98 characters.
_GRAPH_LINE_LENGTH = 98
_GRAPH_POSITIONS = (.33, .55, .67, 1.)


def _output_shape_text(model, layer) -> str:
    """The layer's output shape; "multiple" for a layer called on inputs of different shapes (Keras)."""
    nodes = [n for n in layer._inbound_nodes if n in getattr(model, "_nodes", ())]
    shapes = {tuple(tuple(t.shape) for t in n.outputs) for n in nodes}
    if len(shapes) > 1:
        return "multiple"
    if nodes:
        outputs = nodes[0].outputs
        return str(outputs[0].shape if len(outputs) == 1 else [t.shape for t in outputs])
    return str(layer.output_shape)


def _connected_to(model, layer) -> List[str]:
    """`name[node][tensor]` for each tensor each of the layer's calls in `model` takes."""
    own = set(model._nodes)
    sources = []
    for node in layer._inbound_nodes:
        if node not in own:
            continue
        for tensor in node.input_tensors:
            source, node_index, tensor_index = tensor.keras_history
            position = [n for n in source._inbound_nodes if n in own].index(source._inbound_nodes[node_index])
            sources.append(f"{source.name}[{position}][{tensor_index}]")
    return sources


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


def _check_positions(positions, line_length: int, columns: int = len(_HEADERS)) -> List[int]:
    if positions is None:
        positions = _DEFAULT_POSITIONS
    try:
        values = [float(p) for p in positions]
    except (TypeError, ValueError):
        raise TypeError(f"summary: argument `positions` must be a list of {columns} numbers, "
                        f"got {positions!r}") from None
    if len(values) != columns or not all(np.isfinite(values)) or min(values) <= 0:
        raise ValueError(f"summary: argument `positions` must be {columns} positive, finite numbers "
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
    graph = hasattr(model, "_nodes")
    if graph and line_length is None:
        line_length = _GRAPH_LINE_LENGTH
    line_length = _check_line_length(line_length)
    if graph and positions is None:
        positions = _GRAPH_POSITIONS
    ends = _check_positions(positions, line_length, len(_HEADERS) + graph)
    layers = model.operations        # Keras' summary lists a functional model's operations too
    headers = list(_HEADERS) + (["Connected to"] if graph else [])
    cells = [[f"{layer.name} ({type(layer).__name__})", _output_shape_text(model, layer),
              str(layer.count_params())] for layer in layers]
    continuation = [[] for _ in layers]       # extra lines of the "Connected to" cell
    if graph:
        for row, more, layer in zip(cells, continuation, layers):
            sources = _connected_to(model, layer)
            row.append(sources[0] if sources else "")
            more.extend(sources[1:])
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
        for source in continuation[i]:
            print_fn(_format_row([""] * (len(row) - 1) + [source], ends) if len(row) == 4 else
                     _format_row(["", "", "", source] + [""] * (len(row) - 4), ends))
        print_fn(("=" if i == len(cells) - 1 else "_") * line_length)
    trainable = sum(int(v.value.size) for v in model.trainable_weights)
    non_trainable = sum(int(v.value.size) for v in model.non_trainable_weights)
    print_fn(f"Total params: {trainable + non_trainable:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {non_trainable:,}")
    print_fn("_" * line_length)
