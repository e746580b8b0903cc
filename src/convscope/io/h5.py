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
from pathlib import Path
from typing import List

import numpy as np

from .._weight_memory import weight_array
from ._atomic import atomic_write
from .keras_tree import legacy_weights, own_weights, weight_tree
from .saving import InvalidFileError, fits_weight, weight_shaped


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading or writing Keras .h5 weight files needs the optional package "
                          "h5py: pip install 'convscope[h5]' (or pip install h5py)") from None
    return h5py


# Superblock 3 and version-2 object headers: every piece of metadata carries a checksum (HDF5
# >= 1.10 and h5py >= 2.9 read these files); the datasets carry Fletcher-32 checksums, so a
# damaged byte anywhere in a file we wrote fails its load instead of changing a weight.
_LIBVER = ("v110", "v110")
_RATIO_FLOOR = 64 << 20          # bytes of one dataset beyond which ...
_PLAUSIBLE_RATIO = 100           # ... it may not expand more than this from what is stored


def save_weights(model, filepath, overwrite: bool = True) -> Path:
    """Write the weights in Keras 3's `.weights.h5` layout (Keras' `load_weights` reads it)."""
    h5py = _h5py()
    path = Path(filepath)
    if not overwrite and path.exists():
        raise FileExistsError(f"save_weights: '{path}' exists and overwrite=False")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=_LIBVER) as handle:
        write_weight_tree(handle, model, checksums=True)
    with atomic_write(path) as out:
        out.write(buffer.getvalue())
    return path


def write_weight_tree(handle, model, checksums: bool = False) -> None:
    """Keras 3's tree: `vars` of the model, then `layers/<path>/vars/<i>` for every layer."""
    handle.create_group("vars").attrs["name"] = getattr(model, "name", "sequential")
    handle.create_group("layers")
    for path, layer in weight_tree(model):
        group = handle.create_group(path).create_group("vars")
        group.attrs["name"] = layer.name
        for index, variable in enumerate(own_weights(layer)):
            array = np.asarray(variable.value)
            checksum = {"fletcher32": True} if checksums and array.ndim and array.size else {}
            group.create_dataset(str(index), data=array, **checksum)


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
                plan = legacy_plan(reader, handle, model)
            elif "model_weights" in handle and "layer_names" in handle["model_weights"].attrs:
                plan = legacy_plan(reader, reader.child(handle, "model_weights", "group"), model)
            elif reader.child(handle, "layers", "group", required=False) is not None:
                plan = keras3_plan(reader, handle, model)
            else:
                raise reader.refuse(f"is an HDF5 file without Keras weights (neither a 'layers' "
                                    f"group nor a 'layer_names' attribute; it has "
                                    f"{sorted(handle.keys())[:10]})")
            check_plan(reader, plan)
            arrays = read_plan(plan)
    except (InvalidFileError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - damaged HDF5 files raise OSError, KeyError, ...
        raise reader.refuse(f"is a damaged HDF5 file ({type(error).__name__}: {error})") from error
    assign_plan(plan, arrays)


class _Reader:
    """Follows only hard links to groups and float datasets stored in the file; errors name it."""

    def __init__(self, h5py, path: Path, function: str = "load_weights"):
        self.h5py = h5py
        self.path = path
        self.function = function

    def refuse(self, what: str) -> InvalidFileError:
        return InvalidFileError(f"{self.function}: '{self.path}' {what}")

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
        if dtype.kind not in "fi" or dtype.fields is not None or dtype.subdtype is not None:
            what = {"c": "complex numbers", "O": "Python objects"}.get(dtype.kind, f"dtype {dtype}")
            raise self.refuse(f"holds '{where}' of {what}; convscope weights are floats (or integer counters)")
        if len(dataset.shape) > 32:
            raise self.refuse(f"holds '{where}' of shape {dataset.shape}")


def check_plan(reader: _Reader, plan) -> None:
    """Each layer's datasets against its variables: the same count and shapes, and data stored
    in the file for them (a compressed dataset may not expand more than `_PLAUSIBLE_RATIO`)."""
    for layer, variables, datasets, source in plan:
        own = [tuple(v.shape) for v in variables]
        got = [tuple(d.shape) for d in datasets]
        if len(own) != len(got) or not all(fits_weight(g, o) for g, o in zip(got, own)):
            raise reader.refuse(f"is for a different architecture: {source} holds weights of shapes "
                                f"{got}, but layer '{layer.name}' ({type(layer).__name__}) has {own}")
        for variable, dataset in zip(variables, datasets):
            if (dataset.dtype.kind == "i") != (variable.dtype.kind == "i"):
                raise reader.refuse(f"holds {source}'s weight for '{variable.name}' as {dataset.dtype}, "
                                    f"but the variable is {variable.dtype}: convscope weights are floats, "
                                    "integers only for integer counters")
            declared = int(np.prod(dataset.shape)) * dataset.dtype.itemsize
            stored = dataset.id.get_storage_size()
            if declared > _RATIO_FLOOR and declared > _PLAUSIBLE_RATIO * stored:
                raise reader.refuse(f"is implausible (a decompression bomb?): {source} declares "
                                    f"{declared} bytes for '{variable.name}' from {stored} stored")


def read_plan(plan) -> List[List[np.ndarray]]:
    """Every planned dataset, read straight into a new array of its variable's dtype."""
    arrays = []
    for _, variables, datasets, _ in plan:
        layer_arrays = []
        for variable, dataset in zip(variables, datasets):
            out = weight_array(tuple(dataset.shape), variable.dtype)    # (1,) for a scalar: `fits_weight`
            if out.size:
                dataset.read_direct(out)
            layer_arrays.append(weight_shaped(out, variable.shape))
        arrays.append(layer_arrays)
    return arrays


def assign_plan(plan, arrays) -> None:
    for (_, variables, _, _), layer_arrays in zip(plan, arrays):
        for variable, array in zip(variables, layer_arrays):
            variable.value = array


def keras3_plan(reader: _Reader, handle, model):
    """(layer, variables, datasets, where) of every layer with weights, from Keras 3's tree."""
    plan = []
    reader.child(handle, "layers", "group")
    for path, layer in weight_tree(model):
        variables = own_weights(layer)
        group = reader.child(handle, path, "group", required=False)
        group = None if group is None else reader.child(group, "vars", "group", required=False)
        if group is None:
            if variables:
                raise reader.refuse(f"has no weights for layer '{layer.name}' (looked for the group "
                                    f"'{path}/vars'); is it for a different architecture?")
            continue
        count = len(group)
        if count != len(variables):
            raise reader.refuse(f"is for a different architecture: the group '{path}/vars' holds "
                                f"{count} objects, but layer '{layer.name}' ({type(layer).__name__}) "
                                f"has {len(variables)} weights")
        datasets = [reader.child(group, str(i), "dataset") for i in range(count)]
        if datasets:
            plan.append((layer, variables, datasets, f"the group '{path}/vars'"))
    return plan


def legacy_plan(reader: _Reader, group, model):
    """(layer, variables, datasets, where) from a legacy `layer_names` group, matched in order
    among the layers with weights (Keras' topological loading)."""
    names = [_text(n) for n in legacy_names(reader, group, "layer_names")]
    groups = [reader.child(group, n, "group") for n in names]
    weight_names = [legacy_names(reader, g, "weight_names", f"{n}'s ") for n, g in zip(names, groups)]
    with_weights = [(n, g, w) for n, g, w in zip(names, groups, weight_names) if len(w) > 0]
    from .keras_tree import keras_layers
    layers = [layer for layer in keras_layers(model) if layer.weights]
    if len(with_weights) != len(layers):
        raise reader.refuse(f"holds weights for {len(with_weights)} layers "
                            f"({', '.join(n for n, _, _ in with_weights)}) but the model has "
                            f"{len(layers)} layers with weights ({', '.join(l.name for l in layers)}); "
                            f"the file is for a different architecture")
    plan = []
    for layer, (name, layer_group, weights) in zip(layers, with_weights):
        variables = legacy_weights(layer)
        if len(weights) != len(variables):
            raise reader.refuse(f"is for a different architecture: its layer '{name}' holds "
                                f"{len(weights)} weights, the model's layer '{layer.name}' has "
                                f"{len(variables)}")
        datasets = [reader.child(layer_group, _text(w), "dataset") for w in weights]
        plan.append((layer, variables, datasets, f"the file's layer '{name}'"))
    return plan


def legacy_names(reader: _Reader, group, attribute: str, what: str = "") -> list:
    """A list-of-names attribute, whole or in the chunks Keras splits a long one into
    (`layer_names0`, `layer_names1`, ...)."""
    if attribute in group.attrs:
        return _text_list(reader, group.attrs[attribute], what + attribute)
    names, chunk = [], 0
    while f"{attribute}{chunk}" in group.attrs and chunk < 10_000:
        names += _text_list(reader, group.attrs[f"{attribute}{chunk}"], f"{what}{attribute}{chunk}")
        chunk += 1
    return names


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
