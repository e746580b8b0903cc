"""Keras `.weights.h5` files, in both layouts Keras writes (needs the optional `h5py`).

* Keras 3 (`model.save_weights("m.weights.h5")`): `layers/<name>/vars/0, 1, ...`,
  where `<name>` is the layer's class in snake case numbered per class in
  model order (`conv2d`, `conv2d_1`, `max_pooling2d`, ...), whatever the layers
  were called.
* Keras 2 / legacy HDF5 (`save_weights("m.h5")`): the root attribute
  `layer_names`, and per layer the attribute `weight_names` naming its datasets;
  layers with weights are matched to the model's layers with weights in order.

Arrays keep Keras' layouts, which are convscope's, so they load unchanged.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .. import backend
from ._atomic import atomic_write


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading or writing Keras .h5 weight files needs the optional package "
                          "h5py: pip install 'convscope[h5]' (or pip install h5py)") from None
    return h5py


def keras_layer_paths(model) -> List[Tuple[object, str]]:
    """Each layer with the group name Keras 3 gives it: snake-case class name, numbered per class."""
    used: Dict[str, int] = defaultdict(int)
    paths = []
    for layer in model.layers:
        base = backend.snake_case(type(layer).__name__)
        count = used[base]
        used[base] += 1
        paths.append((layer, base if count == 0 else f"{base}_{count}"))
    return paths


def save_weights(model, filepath, overwrite: bool = True) -> Path:
    """Write the weights in Keras 3's `.weights.h5` layout (Keras' `load_weights` reads it)."""
    h5py = _h5py()
    path = Path(filepath)
    if not overwrite and path.exists():
        raise FileExistsError(f"save_weights: '{path}' exists and overwrite=False")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_group("vars").attrs["name"] = getattr(model, "name", "sequential")
        layers = handle.create_group("layers")
        for layer, name in keras_layer_paths(model):
            group = layers.create_group(name).create_group("vars")
            group.attrs["name"] = layer.name
            for index, array in enumerate(layer.get_weights()):
                group.create_dataset(str(index), data=array)
    with atomic_write(path) as out:
        out.write(buffer.getvalue())
    return path


def load_weights(model, filepath) -> None:
    """Set the model's weights from a Keras `.weights.h5` (Keras 3) or legacy `.h5` (Keras 2) file."""
    h5py = _h5py()
    path = Path(filepath)
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"load_weights: cannot read '{path}' as an HDF5 file: {error}") from None
    with handle:
        if "layer_names" in handle.attrs:
            pairs = _legacy_arrays(handle, model, path)
        elif "layers" in handle:
            pairs = _keras3_arrays(handle, model, path)
        else:
            raise ValueError(f"load_weights: '{path}' is an HDF5 file without Keras weights "
                             f"(neither a 'layers' group nor a 'layer_names' attribute; it has "
                             f"{sorted(handle.keys())})")
    for layer, arrays, source in pairs:
        own = [w.shape for w in layer.get_weights()]
        got = [a.shape for a in arrays]
        if own != got:
            raise ValueError(f"load_weights: '{path}' is for a different architecture: {source} "
                             f"holds weights of shapes {got}, but layer '{layer.name}' "
                             f"({type(layer).__name__}) has {own}")
    for layer, arrays, _ in pairs:
        layer.set_weights(arrays)


def _keras3_arrays(handle, model, path: Path):
    pairs = []
    layers = handle["layers"]
    for layer, name in keras_layer_paths(model):
        if not layer.weights:
            continue
        if name not in layers or "vars" not in layers[name]:
            raise ValueError(f"load_weights: '{path}' has no weights for layer '{layer.name}' "
                             f"(looked for the group 'layers/{name}/vars'; the file has "
                             f"{sorted(layers.keys())}); is it for a different architecture?")
        group = layers[name]["vars"]
        arrays = [np.asarray(group[str(i)]) for i in range(len(group))]
        pairs.append((layer, arrays, f"the group 'layers/{name}/vars'"))
    return pairs


def _legacy_arrays(handle, model, path: Path):
    names = [_text(n) for n in handle.attrs["layer_names"]]
    with_weights = [n for n in names if len(handle[n].attrs.get("weight_names", [])) > 0]
    layers = [layer for layer in model.layers if layer.weights]
    if len(with_weights) != len(layers):
        raise ValueError(f"load_weights: '{path}' holds weights for {len(with_weights)} layers "
                         f"({', '.join(with_weights)}) but the model has {len(layers)} layers "
                         f"with weights ({', '.join(l.name for l in layers)}); the file is for "
                         "a different architecture")
    pairs = []
    for layer, name in zip(layers, with_weights):
        group = handle[name]
        arrays = [np.asarray(group[_text(w)]) for w in group.attrs["weight_names"]]
        pairs.append((layer, arrays, f"the file's layer '{name}'"))
    return pairs


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
