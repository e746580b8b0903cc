"""Keras' small data and graph helpers: `pad_sequences` (token lists to one array, for an Embedding),
`pack_x_y_sample_weight`/`unpack_x_y_sample_weight` (the tuples `fit` takes), `is_keras_tensor` and
`get_source_inputs` (symbolic tensors), `standardize_dtype`."""

from __future__ import annotations

from typing import Any, List

import numpy as np

__all__ = ["pad_sequences", "pack_x_y_sample_weight", "unpack_x_y_sample_weight", "is_keras_tensor",
           "get_source_inputs", "standardize_dtype"]


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0) -> np.ndarray:
    """Keras' `pad_sequences`: a list of sequences as one (samples, maxlen, ...) array, each padded with `value` or
    cut to `maxlen` at its start ("pre") or end ("post"); `maxlen` None: the longest sequence's length."""
    where = "pad_sequences"
    if not hasattr(sequences, "__len__") or isinstance(sequences, (str, bytes)):
        raise ValueError(f"{where}: argument `sequences` must be a list of sequences, got {type(sequences).__name__}")
    for arg, given in (("padding", padding), ("truncating", truncating)):
        if given not in ("pre", "post"):
            raise ValueError(f"{where}: argument `{arg}` must be 'pre' or 'post', got {given!r}")
    lengths, sample_shape = [], ()
    for index, sequence in enumerate(sequences):
        if not hasattr(sequence, "__len__"):
            raise ValueError(f"{where}: argument `sequences` must hold sequences; item {index} is "
                             f"{type(sequence).__name__} {sequence!r}")
        lengths.append(len(sequence))
        if len(sequence) and not sample_shape:
            sample_shape = np.asarray(sequence).shape[1:]
    if maxlen is None:
        maxlen = max(lengths, default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"{where}: argument `maxlen` must be None or an int >= 0, got {maxlen!r}")
    textual = np.issubdtype(np.dtype(dtype), np.str_) or np.issubdtype(np.dtype(dtype), np.bytes_)
    if isinstance(value, str) and dtype is not object and not textual:
        raise ValueError(f"{where}: argument `dtype`={dtype!r} cannot hold the string `value` {value!r}; use "
                         "dtype=object for strings")
    out = np.full((len(sequences), maxlen) + tuple(sample_shape), value, dtype=dtype)
    for index, sequence in enumerate(sequences):
        if not len(sequence) or maxlen == 0:
            continue
        kept = np.asarray(sequence[-maxlen:] if truncating == "pre" else sequence[:maxlen], dtype=dtype)
        if kept.shape[1:] != tuple(sample_shape):
            raise ValueError(f"{where}: item {index} has values of shape {kept.shape[1:]}, the first non-empty "
                             f"sequence's are {tuple(sample_shape)}")
        if padding == "post":
            out[index, :len(kept)] = kept
        else:
            out[index, maxlen - len(kept):] = kept
    return out


def unpack_x_y_sample_weight(data):
    """(x, y, sample_weight) from `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)` (None where not given)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if 1 <= len(data) <= 3:
        return tuple(data) + (None,) * (3 - len(data))
    raise ValueError(f"unpack_x_y_sample_weight: argument `data` must be x, (x,), (x, y) or (x, y, sample_weight), "
                     f"got a tuple of {len(data)} items")


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """The tuple `fit` takes: x alone (in a 1-tuple where x is a list or tuple), (x, y) or (x, y, weights)."""
    if y is None:
        return (x,) if isinstance(x, (tuple, list)) else x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def is_keras_tensor(x) -> bool:
    """Whether `x` is a symbolic tensor (`convscope.Input` or a layer's output on one)."""
    from ..layers.graph import KerasTensor
    return isinstance(x, KerasTensor)


def get_source_inputs(tensor) -> List[Any]:
    """The model inputs (`Input` tensors) that `tensor` is computed from, each once, in the order found."""
    history = getattr(tensor, "keras_history", None)
    if history is None:
        return tensor
    layer, node_index, _ = history
    node = layer._inbound_nodes[node_index] if layer is not None and layer._inbound_nodes else None
    if node is None:
        return [tensor]
    if node.is_input:
        return list(node.outputs)
    sources: List[Any] = []
    for parent in node.input_tensors:
        for source in get_source_inputs(parent):
            if all(source is not seen for seen in sources):
                sources.append(source)
    return sources


def standardize_dtype(dtype) -> str:
    """A dtype's Keras name ("float32", "int32", "bool", ...) from a string, a NumPy dtype or type, or a Python type
    (int: "int32", float: "float32", as Keras); None gives Keras' float type."""
    from .. import backend
    if dtype is None:
        return backend.floatx()
    named = {int: "int32", float: "float32", bool: "bool", "int": "int32", "bfloat16": "bfloat16"}
    if isinstance(dtype, (str, type)) and dtype in named:
        return named[dtype]
    if isinstance(dtype, str) and dtype in ("float", "double"):
        raise ValueError(f"standardize_dtype: invalid dtype {dtype!r}")
    try:
        return np.dtype(getattr(dtype, "name", dtype) if not isinstance(dtype, type) else dtype).name
    except TypeError:
        raise ValueError(f"standardize_dtype: invalid dtype {dtype!r}") from None
