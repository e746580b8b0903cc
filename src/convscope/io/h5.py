"""Keras `.weights.h5` files, in both layouts Keras writes (needs the optional `h5py`).

* Keras 3 (`model.save_weights("m.weights.h5")`): `layers/<name>/vars/0, 1, ...`,
  where `<name>` is the layer's class in snake case numbered per class in
  model order (`conv2d`, `conv2d_1`, `max_pooling2d`, ...), whatever the layers
  were called.
* Keras 2 / legacy HDF5 (`save_weights("m.h5")`): the root attribute
  `layer_names`, and per layer the attribute `weight_names` naming its datasets;
  layers with weights are matched to the model's layers with weights in order.

Arrays keep Keras' layouts, which are convscope's, so they load unchanged.

Files we write carry checksums (Fletcher-32 on every dataset, a version-3
superblock with checksummed metadata): a damaged byte fails the load instead of
changing a weight.  Keras' own files have none, so a flipped bit in their data
goes unnoticed.  Loading follows only hard links to groups and float datasets
stored in the file itself (no soft or external links, no external or virtual
datasets, which would read other files), and compares every dataset's shape
with the model's before reading any.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .. import backend
from ._atomic import atomic_write
from .saving import InvalidFileError


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


# Superblock 3 and version-2 object headers: every piece of metadata carries a checksum (HDF5
# >= 1.10 and h5py >= 2.9 read these files); the datasets carry Fletcher-32 checksums, so a
# damaged byte anywhere in a file we wrote fails its load instead of changing a weight.
_LIBVER = ("v110", "v110")
_MAX_VARS_PER_LAYER = 64


def save_weights(model, filepath, overwrite: bool = True) -> Path:
    """Write the weights in Keras 3's `.weights.h5` layout (Keras' `load_weights` reads it)."""
    h5py = _h5py()
    path = Path(filepath)
    if not overwrite and path.exists():
        raise FileExistsError(f"save_weights: '{path}' exists and overwrite=False")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=_LIBVER) as handle:
        handle.create_group("vars").attrs["name"] = getattr(model, "name", "sequential")
        layers = handle.create_group("layers")
        for layer, name in keras_layer_paths(model):
            group = layers.create_group(name).create_group("vars")
            group.attrs["name"] = layer.name
            for index, array in enumerate(layer.get_weights()):
                checksum = {"fletcher32": True} if array.ndim and array.size else {}
                group.create_dataset(str(index), data=array, **checksum)
    with atomic_write(path) as out:
        out.write(buffer.getvalue())
    return path


def load_weights(model, filepath) -> None:
    """Set the model's weights from a Keras `.weights.h5` (Keras 3) or legacy `.h5` (Keras 2) file.

    Only groups and datasets stored in the file itself are followed (no soft or external
    links, no external or virtual datasets); every dataset's shape and dtype (floats) are
    checked against the model before any is read.  A malformed file raises a ValueError
    naming it.
    """
    h5py = _h5py()
    path = Path(filepath)
    try:
        handle = h5py.File(path, "r")
    except Exception as error:  # noqa: BLE001 - h5py raises OSError, and others on odd files
        raise InvalidFileError(f"load_weights: cannot read '{path}' as an HDF5 file: {error}") from None
    reader = _Reader(h5py, path)
    try:
        with handle:
            if "layer_names" in handle.attrs:
                plan = _legacy_plan(reader, handle, model)
            elif reader.child(handle, "layers", "group", required=False) is not None:
                plan = _keras3_plan(reader, handle, model)
            else:
                raise reader.refuse(f"is an HDF5 file without Keras weights (neither a 'layers' "
                                    f"group nor a 'layer_names' attribute; it has "
                                    f"{sorted(handle.keys())[:10]})")
            for layer, datasets, source in plan:
                own = [w.shape for w in layer.get_weights()]
                got = [tuple(d.shape) for d in datasets]
                if own != got:
                    raise reader.refuse(f"is for a different architecture: {source} holds weights "
                                        f"of shapes {got}, but layer '{layer.name}' "
                                        f"({type(layer).__name__}) has {own}")
            arrays = [[np.asarray(d[()]) for d in datasets] for _, datasets, _ in plan]
    except (InvalidFileError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - damaged HDF5 files raise OSError, KeyError, ...
        raise reader.refuse(f"is a damaged HDF5 file ({type(error).__name__}: {error})") from error
    for (layer, _, _), layer_arrays in zip(plan, arrays):
        layer.set_weights(layer_arrays)


class _Reader:
    """Follows only hard links to groups and float datasets stored in the file; errors name it."""

    def __init__(self, h5py, path: Path):
        self.h5py = h5py
        self.path = path

    def refuse(self, what: str) -> InvalidFileError:
        return InvalidFileError(f"load_weights: '{self.path}' {what}")

    def child(self, group, name: str, kind: str, required: bool = True):
        """`group[name]` ("a/b" walks two links), a "group" or a "dataset", or None if absent and
        not `required`."""
        h5py = self.h5py
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts):
            raise self.refuse(f"names the object {name!r}; expected a relative path such as "
                              f"'dense/kernel:0'")
        where = group.name.rstrip("/")
        for position, part in enumerate(parts):
            link = group.get(part, getlink=True)
            where = f"{where}/{part}"
            if link is None:
                if required:
                    raise self.refuse(f"has no object '{where}'; is it for a different "
                                      f"architecture?")
                return None
            if not isinstance(link, h5py.HardLink):
                raise self.refuse(f"holds '{where}' as a {type(link).__name__}; convscope follows "
                                  f"only objects stored in the file itself")
            group = group[part]
            want = "dataset" if kind == "dataset" and position == len(parts) - 1 else "group"
            if not isinstance(group, h5py.Dataset if want == "dataset" else h5py.Group):
                raise self.refuse(f"holds '{where}' as a {type(group).__name__}, expected a {want}")
        if kind == "dataset":
            self._check_dataset(group, where)
        return group

    def _check_dataset(self, dataset, where: str) -> None:
        if dataset.is_virtual or dataset.external:
            raise self.refuse(f"holds '{where}' as a virtual or external dataset (its data in "
                              f"other files); convscope reads data stored in the file itself")
        dtype = dataset.dtype
        if dtype.kind != "f" or dtype.fields is not None or dtype.subdtype is not None:
            what = {"c": "complex numbers", "O": "Python objects"}.get(dtype.kind, f"dtype {dtype}")
            raise self.refuse(f"holds '{where}' of {what}; convscope weights are floats")
        if len(dataset.shape) > 32:
            raise self.refuse(f"holds '{where}' of shape {dataset.shape}")


def _keras3_plan(reader: _Reader, handle, model):
    pairs = []
    layers = reader.child(handle, "layers", "group")
    for layer, name in keras_layer_paths(model):
        if not layer.weights:
            continue
        group = reader.child(layers, name, "group", required=False)
        group = None if group is None else reader.child(group, "vars", "group", required=False)
        if group is None:
            raise reader.refuse(f"has no weights for layer '{layer.name}' (looked for the group "
                                f"'layers/{name}/vars'; the file has {sorted(layers.keys())[:10]}); "
                                f"is it for a different architecture?")
        count = len(group)
        if count > _MAX_VARS_PER_LAYER:
            raise reader.refuse(f"is for a different architecture: the group 'layers/{name}/vars' "
                                f"holds {count} objects, but layer '{layer.name}' "
                                f"({type(layer).__name__}) has {len(layer.weights)} weights")
        datasets = [reader.child(group, str(i), "dataset") for i in range(count)]
        pairs.append((layer, datasets, f"the group 'layers/{name}/vars'"))
    return pairs


def _legacy_plan(reader: _Reader, handle, model):
    names = [_text(n) for n in _text_list(reader, handle.attrs["layer_names"], "layer_names")]
    groups = [reader.child(handle, n, "group") for n in names]
    weight_names = [_text_list(reader, g.attrs.get("weight_names", []), f"{n}'s weight_names")
                    for n, g in zip(names, groups)]
    with_weights = [(n, g, w) for n, g, w in zip(names, groups, weight_names) if len(w) > 0]
    layers = [layer for layer in model.layers if layer.weights]
    if len(with_weights) != len(layers):
        raise reader.refuse(f"holds weights for {len(with_weights)} layers "
                            f"({', '.join(n for n, _, _ in with_weights)}) but the model has "
                            f"{len(layers)} layers with weights ({', '.join(l.name for l in layers)}); "
                            f"the file is for a different architecture")
    pairs = []
    for layer, (name, group, weights) in zip(layers, with_weights):
        if len(weights) > _MAX_VARS_PER_LAYER:
            raise reader.refuse(f"names {len(weights)} weights for its layer '{name}'")
        datasets = [reader.child(group, _text(w), "dataset") for w in weights]
        pairs.append((layer, datasets, f"the file's layer '{name}'"))
    return pairs


def _text_list(reader: _Reader, value, what: str) -> list:
    """An attribute holding a list of names (bytes or str), checked."""
    array = np.asarray(value)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "SUO"):
        raise reader.refuse(f"has a damaged attribute '{what}': expected a list of names, found "
                            f"shape {array.shape} dtype {array.dtype}")
    items = list(array)
    if not all(isinstance(item, (bytes, str)) for item in items):
        raise reader.refuse(f"has a damaged attribute '{what}': expected a list of names")
    return items


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
