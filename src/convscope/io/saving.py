"""Saving and loading whole models (`.convscope` zip files) and their weights (`.weights.npz`).

A model file is one zip archive:

    convscope.json        format name and version, convscope version, model class
    config.json           the model's `get_config()`
    weights.json          name, shape and dtype of each weight, in `get_weights()` order
    weights/00000.npy ... the weight arrays
    compile.json          the compile settings (null when the model was not compiled)
    optimizer.json        the optimizer's class and config, and the keys of its state
    optimizer/00000.npy   its state arrays (moments, iteration count)

`save_model` picks the format by suffix: `.convscope` this one, `.keras` and `.h5`/`.hdf5`
Keras' own (`keras_files`); any other suffix is refused.  `load_model` tells them apart by
their bytes (HDF5 signature; a zip with `convscope.json`, or Keras' `config.json` and
`model.weights.h5`).

Every file is written through `_atomic.atomic_write` (a temporary file beside
the target, renamed into place), so an interrupted save leaves any earlier file
intact.  `load_model` restores the optimizer state too, so training continues
exactly where it stopped.

Loading trusts nothing in the file.  Before any array is decompressed or any
weight allocated, the loader checks

* the zip directory: at most `_MAX_MEMBERS` entries (counted from the end
  record, before `zipfile` parses the directory), each name once, no absolute
  names, `..`, backslashes or control characters, stored or deflated entries
  only, none encrypted, each entry's data inside the file and apart from the
  others', and an uncompressed size its compressed size can give (stored: the
  same; deflate: at most 1032:1); beyond `_RATIO_FLOOR` (64 MiB) in all, the
  entries may not expand more than `_PLAUSIBLE_RATIO` (100:1) in all;
* each JSON entry: at most `_MAX_JSON_BYTES`, nested at most `_MAX_JSON_DEPTH`
  deep, at most `_MAX_JSON_CONTAINERS` lists and objects, and the types and
  fields convscope writes;
* the entries present: exactly those the JSON entries call for;
* the model: rebuilt from its config with `layers.base.deferred_weights()`,
  which gives every weight its shape and dtype without creating an array, and
  only from convscope's own classes (a fixed table of model classes, the
  registries of layers, initializers, ..., and `custom_objects`): nothing is
  imported by name;
* every array's npy header (read from the entry's first bytes, at most
  `_MAX_NPY_HEADER` bytes): a version 1 or 2 header, a plain float dtype
  (the iteration count: an integer scalar), no complex, object or structured
  dtypes, and a shape and dtype equal to those the model (and weights.json)
  expect; the zip's uncompressed size of the entry must be exactly the header
  plus those bytes;
* the optimizer state (with `compile=True`): each slot belongs to a slot the
  optimizer keeps and to a trainable variable, with that variable's shape and
  dtype.

Only then are the arrays read, each straight into its final array, and each
entry's CRC is checked as its last byte is read.  A file that fails any check
raises a ValueError naming the function, the file, what was expected and what
was found; a file that passes gives exactly the arrays that were saved.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .._weight_memory import weight_array
from .._custom_objects import custom_object_scope
from ..layers.base import runs_own_call
from ..layers.lambda_layer import Lambda
from ._atomic import atomic_write

FORMAT_NAME = "convscope-model"
FORMAT_VERSION = 1
WEIGHTS_FORMAT_NAME = "convscope-weights"
MODEL_SUFFIX = ".convscope"
MODEL_SUFFIXES = (MODEL_SUFFIX, ".keras", ".h5", ".hdf5")
WEIGHTS_SUFFIX = ".weights.npz"
H5_WEIGHTS_SUFFIX = ".weights.h5"
_HEADER = "convscope.json"
_LAYOUT_KEY = "layout"

# What a file may make the loader do.  A file beyond any of these is refused before anything
# large is read or allocated.
_MAX_MEMBERS = 20_000                     # zip entries (a model of 20,000 arrays, slots included)
_MAX_CENTRAL_DIRECTORY = _MAX_MEMBERS * 128   # bytes of zip directory (ours: ~65 per entry)
_MAX_JSON_BYTES = 4 << 20                 # one JSON entry, uncompressed
_MAX_JSON_DEPTH = 64                      # nesting of lists and objects (a config needs ~8)
_MAX_JSON_CONTAINERS = 100_000            # lists and objects in one JSON entry
_MAX_NPY_HEADER = 10_000                  # numpy's own default `max_header_size`
_MAX_NDIM = 32
_DEFLATE_MAX_RATIO = 1032                 # deflate's most: 258 bytes from 2 bits
_PLAUSIBLE_RATIO = 100                    # weights compress ~1.1:1; zeros ~1000:1
_RATIO_FLOOR = 64 << 20                   # ... checked once the entries hold more than this
_READ_CHUNK = 1 << 20
_FLOAT_DTYPES = ("float32", "float64")
# Weights are floats, but for counters such as Normalization's `count` (int32, as Keras); each array's
# dtype must still be exactly its variable's.
_WEIGHT_DTYPES = _FLOAT_DTYPES + ("int32", "int64")

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "InvalidFileError",
           "FORMAT_VERSION"]


class InvalidFileError(ValueError):
    """A file that load_model/load_weights refuse: malformed, damaged, inconsistent or hostile.

    A ValueError whose message names the function, the file, what was expected and
    what was found.
    """


# -- whole models ---------------------------------------------------------------------------

def save_model(model, filepath, overwrite: bool = True) -> Path:
    """Write `model` (config, weights, compile settings, optimizer state) to one zip file."""
    path = _checked_path("save_model", filepath)
    _check_model("save_model", model)
    if runs_own_call(model):
        raise ValueError(f"save_model: {type(model).__name__} '{model.name}' is a subclassed model (its own `call`), "
                         "whose structure lives in your code, not in a config; saving it whole is not supported "
                         "yet: use `model.save_weights('....weights.npz')`, then rebuild the model in code, "
                         "`build()` it and `load_weights`")
    _refuse_code("save_model", model)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ValueError(f"save_model: cannot tell the format of '{path}' from its suffix "
                         f"{suffix or '(none)'!r}; known suffixes: {', '.join(MODEL_SUFFIXES)} "
                         f"('.convscope' convscope's own, '.keras' Keras 3, '.h5'/'.hdf5' legacy "
                         f"Keras HDF5)")
    if not overwrite and path.exists():
        raise FileExistsError(f"save_model: '{path}' exists and overwrite=False")
    if suffix != MODEL_SUFFIX:
        from . import keras_files
        save = keras_files.save_keras_archive if suffix == ".keras" else keras_files.save_legacy_h5
        return save(model, path)
    entries = _model_entries(model)
    with atomic_write(path) as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                _write_entry(archive, name, data)
    return path


def load_model(filepath, custom_objects=None, compile: bool = True):  # noqa: A002 - Keras' name
    """Rebuild a model saved by `save_model`, with its weights, compile settings and optimizer state.

    `custom_objects` maps names to your own layer classes and loss functions, as in Keras (found
    while the file loads, as in a `custom_object_scope`); `compile=False` skips the compile settings
    and optimizer state.  Every part of the file is checked before anything large is read (see the
    module's docstring); a malformed file raises a ValueError naming it.
    """
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"load_model: argument `custom_objects` must be a dict of name -> class or function, got "
                        f"{type(custom_objects).__name__}")
    with custom_object_scope(custom_objects):
        return _load_model(filepath, custom_objects, compile)


def _load_model(filepath, custom_objects, compile: bool):  # noqa: A002 - Keras' name
    function = "load_model"
    path = _checked_path(function, filepath, must_exist=True)
    if _is_hdf5(path):
        from . import keras_files
        return keras_files.load_legacy_h5(function, path, custom_objects, compile)
    with _Archive(function, path) as archive:
        if not archive.has(_HEADER):
            from . import keras_files
            if keras_files.is_keras_archive(archive):
                return keras_files.load_keras_archive(archive, custom_objects, compile)
        header = _read_header(archive)
        contents = _model_contents(archive)
        config = archive.json("config.json")
        weight_headers = [archive.npy_header(name, kinds="fi") for name in contents.weight_members]
        model = _rebuild(archive, header.get("class_name"), config, custom_objects)
        variables = model.weights
        order = _name_order([w["name"] for w in contents.layout], [v.name for v in variables])
        if order is not None:
            contents = contents._replace(layout=[contents.layout[i] for i in order],
                                         weight_members=[contents.weight_members[i] for i in order])
            weight_headers = [weight_headers[i] for i in order]
        _check_layout_against_model(archive, contents.layout, variables)
        for variable, member, npy in zip(variables, contents.weight_members, weight_headers):
            _check_npy_header(archive, member, npy, variable.shape, variable.dtype,
                              f"the model's weight '{variable.name}'", weight=True)
        state_plan = None
        if compile and contents.compile_config is not None:
            _compile(archive, model, contents.compile_config)
            if contents.state_keys is not None:
                state_plan = _optimizer_state_plan(archive, model, contents)
        arrays = [archive.read_array(member, npy)
                  for member, npy in zip(contents.weight_members, weight_headers)]
        state = None
        if state_plan is not None:
            state = {key: weight_shaped(archive.read_array(member, npy), shape)
                     for key, member, npy, shape in state_plan}
            _check_iterations(archive, state)
    for variable, array in zip(variables, arrays):
        variable.value = weight_shaped(array, variable.shape)
    if state is not None:
        try:
            model.optimizer.set_state(state)
        except (TypeError, ValueError) as error:
            raise InvalidFileError(f"{function}: '{path}' holds an optimizer state that cannot "
                                   f"be restored: {error}") from None
    return model


class _ModelContents(NamedTuple):
    layout: List[Dict[str, Any]]
    weight_members: List[str]
    compile_config: Optional[Dict[str, Any]]
    state_keys: Optional[List[str]]
    state_members: List[str]


def _model_contents(archive: "_Archive") -> _ModelContents:
    """weights.json, compile.json and optimizer.json, checked, and the entries they call for
    (which must be exactly the archive's entries)."""
    layout = _checked_layout(archive, archive.json("weights.json"))
    compile_config = archive.json("compile.json")
    if compile_config is not None and not isinstance(compile_config, dict):
        raise archive.refuse(f"has a damaged 'compile.json': expected an object or null, found "
                             f"{_kind(compile_config)}")
    state_keys = None
    if archive.has("optimizer.json"):
        saved = archive.json("optimizer.json")
        keys = saved.get("state_keys") if isinstance(saved, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) \
                or len(set(keys)) != len(keys) or len(keys) > _MAX_MEMBERS:
            raise archive.refuse(f"has a damaged 'optimizer.json': expected an object whose "
                                 f"'state_keys' is a list of distinct strings, found "
                                 f"{_kind(keys if isinstance(saved, dict) else saved)}")
        state_keys = keys
    elif compile_config is not None:
        raise archive.refuse("lacks the entry 'optimizer.json', which a compiled model's file "
                             "holds (its compile.json is not null); the file is incomplete")
    weight_members = [f"weights/{i:05d}.npy" for i in range(len(layout))]
    state_members = [f"optimizer/{i:05d}.npy" for i in range(len(state_keys or []))]
    expected = {_HEADER, "config.json", "weights.json", "compile.json", *weight_members,
                *state_members}
    if state_keys is not None:
        expected.add("optimizer.json")
    archive.expect_exactly(expected)
    return _ModelContents(layout, weight_members, compile_config, state_keys, state_members)


def _checked_layout(archive: "_Archive", layout) -> List[Dict[str, Any]]:
    """weights.json: a list of {"name": str, "shape": [ints >= 0], "dtype": "float32"/"float64"}."""
    if not isinstance(layout, list):
        raise archive.refuse(f"has a damaged 'weights.json': expected a list of {{name, shape, "
                             f"dtype}} objects, found {_kind(layout)}")
    if len(layout) > _MAX_MEMBERS:
        raise archive.refuse(f"has a damaged 'weights.json': it lists {len(layout)} weights, "
                             f"more than the {_MAX_MEMBERS} a file may hold")
    for index, entry in enumerate(layout):
        problem = None
        if not isinstance(entry, dict):
            problem = f"is {_kind(entry)}, expected an object"
        elif not isinstance(entry.get("name"), str):
            problem = f"has the name {entry.get('name')!r}, expected a string"
        elif _shape_tuple(entry.get("shape")) is None:
            problem = f"has the shape {entry.get('shape')!r}, expected a list of integers >= 0"
        elif entry.get("dtype") not in _WEIGHT_DTYPES:
            problem = f"has the dtype {entry.get('dtype')!r}, expected one of {_WEIGHT_DTYPES}"
        if problem is not None:
            raise archive.refuse(f"has a damaged 'weights.json': entry {index} {problem}")
    return layout


def _rebuild(archive: "_Archive", class_name, config, custom_objects):
    """The model of `config`, built with placeholders for its weights (no initializer runs)."""
    from ..layers.base import deferred_weights
    cls = _model_class(archive, class_name)
    try:
        with deferred_weights():
            return cls.from_config(config, custom_objects)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to rebuild is the file's fault
        raise archive.refuse(f"holds a model config that cannot be rebuilt: "
                             f"{type(error).__name__}: {error}") from error


# The model classes a file may name, and the attribute of `convscope.models` that rebuilds each
# (a functional model's config goes to `Model.from_config`, as in Keras).  Nothing else is looked up.
_MODEL_CLASSES = {"Sequential": "Sequential", "Functional": "Model", "Model": "Model"}


def _model_class(archive: "_Archive", class_name):
    """Only a model class that `convscope.models` itself defines (nothing imported by name)."""
    from .. import models
    attribute = _MODEL_CLASSES.get(class_name) if isinstance(class_name, str) else None
    cls = getattr(models, attribute, None) if attribute is not None else None
    if not (isinstance(cls, type) and hasattr(cls, "from_config")):
        raise archive.refuse(f"holds a model of class {class_name!r}, which convscope.models does "
                             f"not define (expected one of {sorted(_MODEL_CLASSES)})")
    return cls


def _check_layout_against_model(archive: "_Archive", layout: List[Dict[str, Any]],
                                variables) -> None:
    """weights.json must list exactly the weights the config builds: count, shapes, dtypes."""
    if len(layout) != len(variables):
        raise archive.refuse(f"is inconsistent: its config builds {len(variables)} weights "
                             f"({_short([v.name for v in variables])}) but its weights.json lists "
                             f"{len(layout)} ({_short([w['name'] for w in layout])})")
    for index, (entry, variable) in enumerate(zip(layout, variables)):
        shape, dtype = _shape_tuple(entry["shape"]), entry["dtype"]
        if not fits_weight(shape, variable.shape) or dtype != variable.dtype.name:
            raise archive.refuse(f"is inconsistent: weight {index} ('{entry['name']}' in "
                                 f"weights.json) is declared with shape {shape} {dtype}, but the "
                                 f"config builds '{variable.name}' with shape "
                                 f"{tuple(variable.shape)} {variable.dtype.name}")


def _compile(archive: "_Archive", model, compile_config: Dict[str, Any]) -> None:
    try:
        model.compile_from_config(compile_config)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to compile is the file's fault
        raise archive.refuse(f"holds compile settings that cannot be restored: "
                             f"{type(error).__name__}: {error}") from error


def _optimizer_state_plan(archive: "_Archive", model, contents: _ModelContents):
    """(key, entry, npy header) of each saved optimizer array, each checked against the variable
    it belongs to: the slot must be one the optimizer keeps, for a trainable variable, with that
    variable's shape and dtype; 'iterations' an integer scalar."""
    optimizer = model.optimizer
    slot_names = tuple(getattr(optimizer, "_slot_names", ()))
    variables = model.trainable_weights
    keys = contents.state_keys
    if keys and "iterations" not in keys:
        raise archive.refuse(f"has a damaged 'optimizer.json': its state_keys {_short(keys)} lack "
                             f"'iterations'")
    plan = []
    for key, member in zip(keys, contents.state_members):
        if key == "iterations":
            npy = archive.npy_header(member, kinds="iu")
            if npy.shape != ():
                raise archive.refuse(f"has a damaged optimizer state: '{member}' (the iteration "
                                     f"count) has shape {npy.shape}, expected a scalar ()")
            plan.append((key, member, npy, ()))
            continue
        slot, _, position = key.partition("/")
        index = int(position) if position.isdigit() and position.isascii() else None
        if slot not in slot_names or index is None or index >= len(variables):
            raise archive.refuse(f"has an optimizer state that does not fit the model: the key "
                                 f"'{key}' ('{member}') names no slot of its "
                                 f"{type(optimizer).__name__}, which keeps {list(slot_names)} for "
                                 f"each of the model's {len(variables)} trainable variables "
                                 f"(keys 'slot/0' to 'slot/{len(variables) - 1}')")
        variable = variables[index]
        initial = optimizer._initial_slot(slot, variable.value)    # Adafactor's factors: not the weight's shape
        npy = archive.npy_header(member, kinds="f" if initial.dtype.kind == "f" else "iu")
        _check_npy_header(archive, member, npy, initial.shape, initial.dtype,
                          f"the optimizer slot '{key}' of '{variable.name}'", weight=True)
        plan.append((key, member, npy, initial.shape))
    return plan


def _check_iterations(archive: "_Archive", state: Dict[str, np.ndarray]) -> None:
    if "iterations" in state and int(state["iterations"]) < 0:
        raise archive.refuse(f"has a damaged optimizer state: the iteration count is "
                             f"{int(state['iterations'])}, expected a count >= 0")


def _model_entries(model) -> List[tuple]:
    """The archive's entries as (name, bytes), header first."""
    arrays = model.get_weights()
    names = [v.name for v in model.weights]
    layout = [{"name": n, "shape": list(a.shape), "dtype": a.dtype.name} for n, a in zip(names, arrays)]
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "convscope_version": _version(), "class_name": type(model).__name__}
    entries = [(_HEADER, _json_bytes(header)),
               ("config.json", _json_bytes(model.get_config())),
               ("weights.json", _json_bytes(layout))]
    entries += [(f"weights/{i:05d}.npy", _npy_bytes(a)) for i, a in enumerate(arrays)]
    compile_config = _compile_config(model)
    entries.append(("compile.json", _json_bytes(compile_config)))
    optimizer = getattr(model, "optimizer", None) if compile_config is not None else None
    if optimizer is not None:
        from .. import optimizers
        state = optimizer.get_state()
        keys = sorted(state)
        entries.append(("optimizer.json", _json_bytes({**optimizers.serialize(optimizer),
                                                       "state_keys": keys})))
        entries += [(f"optimizer/{i:05d}.npy", _npy_bytes(np.asarray(state[k])))
                    for i, k in enumerate(keys)]
    return entries


def _write_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(name, data)


def _compile_config(model) -> Optional[Dict[str, Any]]:
    """The model's compile settings, or None when it was never compiled."""
    getter = getattr(model, "get_compile_config", None)
    return getter() if getter is not None else None


# -- weights only ---------------------------------------------------------------------------

def save_weights(model, filepath, overwrite: bool = True) -> Path:
    """Write the model's weights to `<name>.weights.npz` (or `.weights.h5` with h5py)."""
    path = _checked_path("save_weights", filepath)
    _check_model("save_weights", model)
    if path.name.endswith(H5_WEIGHTS_SUFFIX):
        from . import h5
        return h5.save_weights(model, path, overwrite=overwrite)
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"save_weights: argument `filepath` must end in '{WEIGHTS_SUFFIX}' "
                         f"(or '{H5_WEIGHTS_SUFFIX}'), got '{path}'")
    if not overwrite and path.exists():
        raise FileExistsError(f"save_weights: '{path}' exists and overwrite=False")
    arrays = model.get_weights()
    names = [v.name for v in model.weights]
    layout = {"format": WEIGHTS_FORMAT_NAME, "format_version": FORMAT_VERSION,
              "names": names, "shapes": [list(a.shape) for a in arrays]}
    members = {_LAYOUT_KEY: np.array(json.dumps(layout))}
    members.update({f"w{i:05d}": a for i, a in enumerate(arrays)})
    with atomic_write(path) as handle:
        np.savez(handle, **members)
    return path


def load_weights(model, filepath) -> None:
    """Load weights saved by `save_weights` (or the weights of a `.convscope` model file).

    The file must hold one array per model weight, in the same order and shapes;
    otherwise a ValueError names the first weight that differs.  Every part of the
    file is checked before its arrays are read (see the module's docstring).
    """
    function = "load_weights"
    path = _checked_path(function, filepath, must_exist=True)
    _check_model(function, model)
    if path.name.endswith(H5_WEIGHTS_SUFFIX) or _is_hdf5(path):
        from . import h5
        h5.load_weights(model, path)
        return
    with _Archive(function, path) as archive:
        if archive.has(_HEADER):
            _read_header(archive)
            contents = _model_contents(archive)
            members = contents.weight_members
            saved_names = [w["name"] for w in contents.layout]
            saved_shapes = [_shape_tuple(w["shape"]) for w in contents.layout]
        elif archive.has(f"{_LAYOUT_KEY}.npy"):
            layout = _read_weights_layout(archive)
            saved_names = layout["names"]
            saved_shapes = [_shape_tuple(s) for s in layout["shapes"]]
            members = [f"w{i:05d}.npy" for i in range(len(saved_names))]
            archive.expect_exactly({f"{_LAYOUT_KEY}.npy", *members})
        else:
            raise archive.refuse(f"is a zip file but not a convscope weights or model file (it "
                                 f"holds {sorted(archive.names)[:5]})")
        variables = model.weights
        order = _name_order(saved_names, [v.name for v in variables])
        if order is not None:
            members, saved_names, saved_shapes = ([items[i] for i in order]
                                                  for items in (members, saved_names, saved_shapes))
        _check_against_model(archive, variables, saved_shapes, saved_names)
        # floats for float weights (other float types are cast, as set_weights casts); integers only
        # for integer counters (Normalization's `count`)
        headers = [archive.npy_header(member, kinds="i" if variable.dtype.kind == "i" else "f")
                   for member, variable in zip(members, variables)]
        for variable, member, npy, name in zip(variables, members, headers, saved_names):
            _check_npy_header(archive, member, npy, variable.shape, None,
                              f"the model's weight '{variable.name}' ('{name}' in the file)", weight=True)
        arrays = [weight_shaped(archive.read_array(member, npy), variable.shape)
                  for member, npy, variable in zip(members, headers, variables)]
    model.set_weights(arrays)


def _read_weights_layout(archive: "_Archive") -> Dict[str, Any]:
    """The `layout` entry of a `.weights.npz`: format, version, names and shapes, checked."""
    member = f"{_LAYOUT_KEY}.npy"
    npy = archive.npy_header(member, kinds="U")
    if npy.shape != () or npy.nbytes > 4 * _MAX_JSON_BYTES:
        raise archive.refuse(f"has a damaged layout entry: '{member}' declares shape {npy.shape} "
                             f"{npy.dtype} ({npy.nbytes} bytes), expected one string of at most "
                             f"{_MAX_JSON_BYTES} characters")
    text = str(archive.read_array(member, npy)[()])
    layout = archive.parse_json(member, text)
    if not isinstance(layout, dict) or layout.get("format") != WEIGHTS_FORMAT_NAME:
        raise archive.refuse("is not a convscope weights file (its layout entry names no "
                             f"'{WEIGHTS_FORMAT_NAME}' format)")
    version = layout.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise archive.refuse(f"has a damaged layout entry: format_version {version!r}, expected "
                             f"an integer >= 1")
    if version > FORMAT_VERSION:
        raise archive.refuse(f"was written by a newer convscope (weights format {version}, this "
                             f"one reads up to {FORMAT_VERSION})")
    names, shapes = layout.get("names"), layout.get("shapes")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) \
            or not isinstance(shapes, list) or len(shapes) != len(names) \
            or len(names) > _MAX_MEMBERS or any(_shape_tuple(s) is None for s in shapes):
        raise archive.refuse(f"has a damaged layout entry: expected 'names' (a list of strings) "
                             f"and 'shapes' (as many lists of integers >= 0), found names "
                             f"{_kind(names)} and shapes {_kind(shapes)}")
    return layout


def _name_order(saved: Sequence[str], own: Sequence[str]) -> Optional[List[int]]:
    """The file's positions in the model's weight order where, layer by layer (runs of one name prefix), the
    file names the same weights in another order — a frozen layer's weights as convscope before 2026-12-06
    ordered them (creation order; trainable-first now, as Keras) — else None: the file's order stands (layer
    names may differ between a saved and a rebuilt model; shapes are checked)."""
    if not all(isinstance(name, str) for name in saved) or len(saved) != len(own):
        return None
    saved_runs, own_runs = _runs(saved), _runs(own)
    if [len(run) for run in saved_runs] != [len(run) for run in own_runs]:
        return None
    order = []
    for saved_run, own_run in zip(saved_runs, own_runs):
        saved_short = [saved[i].rsplit("/", 1)[-1] for i in saved_run]
        own_short = [own[i].rsplit("/", 1)[-1] for i in own_run]
        if sorted(saved_short) != sorted(own_short) or len(set(own_short)) != len(own_short):
            return None
        position = dict(zip(saved_short, saved_run))
        order += [position[name] for name in own_short]
    return None if order == list(range(len(own))) else order


def _runs(names: Sequence[str]) -> List[List[int]]:
    """Positions of `names` in runs of one prefix (the layer's name before the weight's)."""
    runs: List[List[int]] = []
    for index, name in enumerate(names):
        prefix = name.rsplit("/", 1)[0]
        if runs and names[runs[-1][0]].rsplit("/", 1)[0] == prefix:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _check_against_model(archive: "_Archive", variables, shapes: Sequence[Tuple[int, ...]],
                         saved_names: Sequence[str]) -> None:
    """The file's arrays must match the model's weights in count and shapes."""
    own = [tuple(v.shape) for v in variables]
    own_names = [v.name for v in variables]
    if len(shapes) != len(own):
        raise archive.refuse(f"holds {len(shapes)} weight arrays ({_short(saved_names)}) but the "
                             f"model has {len(own)} ({_short(own_names)}); the file is for a "
                             f"different architecture")
    for index, (shape, expected) in enumerate(zip(shapes, own)):
        if not fits_weight(shape, expected):
            raise archive.refuse(f"is for a different architecture: weight {index} "
                                 f"('{saved_names[index]}' in the file) has shape {tuple(shape)}, "
                                 f"the model's '{own_names[index]}' has shape {tuple(expected)}")


# -- the archive ------------------------------------------------------------------------------

class _NpyHeader(NamedTuple):
    shape: Tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int          # bytes before the data (magic, version, length, header)
    nbytes: int          # bytes of data the header declares


_SAFE_NAME_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\]")
_EOCD = struct.Struct("<4s4H2LH")              # the zip's end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_LOCAL_HEADER_SIZE = 30


class _Archive:
    """A zip file opened for reading after every structural check of its directory.

    Errors are `InvalidFileError` (ValueError) naming `function` and `path`.  Entries are read
    through `json` (small, bounded JSON), `npy_header` (the first bytes only) and
    `read_array` (after the header was checked), each CRC-checked at its end.
    """

    def __init__(self, function: str, path: Path):
        self.function = function
        self.path = path
        if _is_hdf5(path):
            raise self.refuse("is an HDF5 file (Keras .h5), not a convscope file; load its "
                              "weights with load_weights(model, path) into a model of the same "
                              "architecture")
        self._handle = path.open("rb")
        try:
            self._open()
        except BaseException:
            self._handle.close()
            raise

    def __enter__(self) -> "_Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        zip_file = getattr(self, "zip", None)
        if zip_file is not None:
            zip_file.close()
        self._handle.close()

    def refuse(self, what: str) -> InvalidFileError:
        return InvalidFileError(f"{self.function}: '{self.path}' {what}")

    # -- opening --------------------------------------------------------------------------
    def _open(self) -> None:
        size = os.fstat(self._handle.fileno()).st_size
        self.size = size
        directory = _central_directory(self._handle, size)
        if directory is not None:
            entries, directory_size = directory
            if entries > _MAX_MEMBERS or directory_size > _MAX_CENTRAL_DIRECTORY:
                raise self.refuse(f"({size} bytes) is not a convscope file: its zip directory "
                                  f"declares {entries} entries in {directory_size} bytes; a "
                                  f"convscope file holds at most {_MAX_MEMBERS} entries "
                                  f"({_MAX_CENTRAL_DIRECTORY} bytes of directory)")
        self._handle.seek(0)
        try:
            self.zip = zipfile.ZipFile(self._handle)
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - zipfile's parse of the file's bytes
            self._handle.seek(0)
            starts_like_zip = self._handle.read(4) == b"PK\x03\x04"
            what = ("a truncated or damaged zip file" if starts_like_zip
                    else "not a zip file (it does not start with the zip signature)")
            raise self.refuse(f"({size} bytes) is {what}; expected a file written by convscope's "
                              f"save_model/save_weights ({type(error).__name__}: {error})") from None
        self._check_directory(None if directory is None else directory[0])

    def _check_directory(self, declared: Optional[int]) -> None:
        infos = self.zip.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise self.refuse(f"holds {len(infos)} zip entries; a convscope file holds at most "
                              f"{_MAX_MEMBERS}")
        if declared is not None and declared != len(infos):
            raise self.refuse(f"is damaged: its zip directory's end record declares {declared} "
                              f"entries, but the directory lists {len(infos)}")
        self.infos: Dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            raw = info.orig_filename
            parts = raw.split("/")
            if (raw != info.filename or raw.startswith("/") or _SAFE_NAME_CHARACTERS.search(raw)
                    or any(p in ("", ".", "..") for p in parts) or re.match(r"[A-Za-z]:", raw)):
                raise self.refuse(f"holds an entry with an unsafe name {raw!r} (absolute, with "
                                  f"'..', an empty part, a backslash or a control character); "
                                  f"convscope writes plain names such as 'weights/00000.npy'")
            if raw in self.infos:
                raise self.refuse(f"holds the entry '{raw}' twice; a zip written by convscope "
                                  f"names each entry once")
            if info.comment:
                raise self.refuse(f"is damaged: the entry '{raw}' carries a comment of "
                                  f"{len(info.comment)} bytes; convscope writes none")
            if info.flag_bits & 0x1:
                raise self.refuse(f"holds the encrypted entry '{raw}'; convscope never encrypts")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.refuse(f"holds the entry '{raw}' compressed with method "
                                  f"{info.compress_type}; convscope writes stored (0) or deflated "
                                  f"(8) entries only")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise self.refuse(f"is damaged: the stored entry '{raw}' declares "
                                  f"{info.file_size} bytes but holds {info.compress_size}")
            most = _DEFLATE_MAX_RATIO * (info.compress_size + 1)
            if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > most:
                raise self.refuse(f"is damaged or hostile: the entry '{raw}' declares "
                                  f"{info.file_size} bytes uncompressed from {info.compress_size} "
                                  f"compressed, more than deflate can give (at most "
                                  f"{_DEFLATE_MAX_RATIO}:1, {most} bytes)")
            self.infos[raw] = info
        expanded = sum(info.file_size for info in infos)
        compressed = sum(info.compress_size for info in infos)
        if expanded > _RATIO_FLOOR and expanded > _PLAUSIBLE_RATIO * compressed:
            raise self.refuse(f"is implausible (a zip bomb?): its entries declare {expanded} bytes "
                              f"from {compressed} compressed ({expanded / max(compressed, 1):.0f}:1); "
                              f"a convscope file's weights compress about 1.1:1, and beyond "
                              f"{_RATIO_FLOOR >> 20} MiB more than {_PLAUSIBLE_RATIO}:1 is refused")
        end = 0
        for info in sorted(infos, key=lambda i: i.header_offset):
            start = info.header_offset
            if start < end:
                raise self.refuse(f"is damaged or hostile: the data of the entry "
                                  f"'{info.orig_filename}' (from byte {start}) overlaps the "
                                  f"entry before it (up to byte {end})")
            end = start + _LOCAL_HEADER_SIZE + len(info.orig_filename.encode("utf-8")) \
                + info.compress_size
            if end > self.size:
                raise self.refuse(f"is truncated or damaged: the entry '{info.orig_filename}' "
                                  f"needs bytes {start} to {end}, but the file has {self.size}")

    # -- entries --------------------------------------------------------------------------
    @property
    def names(self) -> List[str]:
        return list(self.infos)

    def has(self, name: str) -> bool:
        return name in self.infos

    def info(self, name: str) -> zipfile.ZipInfo:
        info = self.infos.get(name)
        if info is None:
            raise self.refuse(f"lacks the entry '{name}'; the file is incomplete")
        return info

    def expect_exactly(self, expected) -> None:
        """The archive must hold exactly the entries `expected`: none missing, none extra."""
        missing = sorted(set(expected) - set(self.infos))
        if missing:
            raise self.refuse(f"lacks the entr{'y' if len(missing) == 1 else 'ies'} "
                              f"{_short(missing)}; the file is incomplete")
        extra = sorted(set(self.infos) - set(expected))
        if extra:
            raise self.refuse(f"holds entries that its JSON entries do not call for: "
                              f"{_short(extra)} (expected {len(expected)} entries, found "
                              f"{len(self.infos)})")

    def _damaged(self, name: str, error: BaseException) -> InvalidFileError:
        if isinstance(error, zipfile.BadZipFile) and "CRC" in str(error):
            return self.refuse(f"is damaged: the entry '{name}' fails its CRC check")
        return self.refuse(f"is damaged: the entry '{name}' cannot be read "
                           f"({type(error).__name__}: {error})")

    _READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error,
                    NotImplementedError, RuntimeError, ValueError, KeyError)

    def read_bytes(self, name: str, limit: int) -> bytes:
        """The whole entry (at most `limit` bytes by the directory), CRC-checked."""
        info = self.info(name)
        if info.file_size > limit:
            raise self.refuse(f"has an entry '{name}' of {info.file_size} bytes; at most {limit} "
                              f"are allowed for it")
        try:
            with self.zip.open(info) as member:
                data = member.read(info.file_size)
                rest = member.read(1)
        except self._READ_ERRORS as error:
            raise self._damaged(name, error) from None
        if len(data) != info.file_size or rest:
            raise self.refuse(f"is damaged: the entry '{name}' holds "
                              f"{'less' if len(data) < info.file_size else 'more'} than the "
                              f"{info.file_size} bytes the zip directory declares")
        return data

    def json(self, name: str):
        """A JSON entry, bounded in size, nesting and number of lists and objects."""
        data = self.read_bytes(name, _MAX_JSON_BYTES)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise self.refuse(f"has a damaged '{name}': not UTF-8 text ({error})") from None
        return self.parse_json(name, text)

    def parse_json(self, name: str, text: str):
        _check_json_structure(self, name, text)
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            raise self.refuse(f"has a damaged '{name}': {type(error).__name__}: {error}") from None

    def npy_header(self, name: str, kinds: str) -> _NpyHeader:
        """The npy header of an entry, read from its first bytes; its dtype's kind must be one of
        `kinds` ("f" floats, "iu" integers, "U" text), and its size the entry's."""
        info = self.info(name)
        try:
            with self.zip.open(info) as member:
                prefix = member.read(10)
                if len(prefix) == 10 and prefix[:6] == b"\x93NUMPY" and prefix[6] == 2:
                    prefix += member.read(2)
                if len(prefix) < 10 or prefix[:6] != b"\x93NUMPY" or prefix[6] not in (1, 2):
                    raise self.refuse(f"has a damaged array '{name}': it does not start with a "
                                      f"version 1 or 2 .npy header (found {prefix[:8]!r})")
                size = struct.unpack("<H" if prefix[6] == 1 else "<I", prefix[8:])[0]
                if size > _MAX_NPY_HEADER:
                    raise self.refuse(f"has a damaged array '{name}': its .npy header declares "
                                      f"{size} bytes, at most {_MAX_NPY_HEADER} are allowed")
                header = member.read(size)
        except self._READ_ERRORS as error:
            if isinstance(error, InvalidFileError):
                raise
            raise self._damaged(name, error) from None
        if len(header) != size:
            raise self.refuse(f"has a damaged array '{name}': it ends inside its .npy header")
        reader = (np.lib.format.read_array_header_1_0 if prefix[6] == 1
                  else np.lib.format.read_array_header_2_0)
        stream = io.BytesIO(prefix[8:] + header)
        try:
            shape, fortran_order, dtype = reader(stream, max_header_size=_MAX_NPY_HEADER)
        except Exception as error:  # noqa: BLE001 - the header is the file's text
            raise self.refuse(f"has a damaged array '{name}': its .npy header cannot be read "
                              f"({type(error).__name__}: {error})") from None
        if dtype.hasobject:
            raise self.refuse(f"holds the array '{name}' of Python objects (dtype {dtype}); "
                              f"convscope never loads pickled objects")
        if dtype.kind == "c":
            raise self.refuse(f"holds the complex array '{name}' (dtype {dtype}); convscope "
                              f"weights are real numbers")
        if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
            expected = {"f": "floats", "fi": "floats or integers", "iu": "integers", "U": "text"}.get(kinds, kinds)
            raise self.refuse(f"holds the array '{name}' of dtype {dtype}; expected {expected}")
        if not all(type(d) is int and d >= 0 for d in shape) or len(shape) > _MAX_NDIM:
            raise self.refuse(f"has a damaged array '{name}': its .npy header declares the shape "
                              f"{shape}")
        offset = len(prefix) + size
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != offset + nbytes:
            raise self.refuse(f"is damaged or hostile: the array '{name}' declares shape "
                              f"{tuple(shape)} {dtype} ({nbytes} bytes after a {offset}-byte "
                              f"header), but the zip directory gives the entry {info.file_size} "
                              f"bytes")
        return _NpyHeader(tuple(shape), dtype, bool(fortran_order), offset, nbytes)

    def stored_window(self, name: str) -> "_Window":
        """A read-only, seekable view of a stored (uncompressed) entry's bytes in the file, after a
        streamed CRC check of the whole entry (nothing read into memory at once)."""
        info = self.info(name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise self.refuse(f"holds the entry '{name}' compressed; expected it stored")
        self._handle.seek(info.header_offset)
        local = self._handle.read(_LOCAL_HEADER_SIZE)
        if len(local) != _LOCAL_HEADER_SIZE or local[:4] != b"PK\x03\x04":
            raise self.refuse(f"is damaged: the local header of the entry '{name}' is missing")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        start = info.header_offset + _LOCAL_HEADER_SIZE + name_length + extra_length
        if start + info.file_size > self.size:
            raise self.refuse(f"is truncated: the entry '{name}' needs bytes up to "
                              f"{start + info.file_size}, the file has {self.size}")
        window = _Window(self._handle, start, info.file_size)
        crc = 0
        while True:
            chunk = window.read(_READ_CHUNK)
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
        if crc != info.CRC:
            raise self.refuse(f"is damaged: the entry '{name}' fails its CRC check")
        window.seek(0)
        return window

    def read_array(self, name: str, npy: _NpyHeader) -> np.ndarray:
        """The array of an entry whose header `npy` was checked: read straight into a new array
        of exactly that size, in native byte order, C-contiguous and writable."""
        info = self.info(name)
        shape = npy.shape[::-1] if npy.fortran_order else npy.shape
        out = weight_array(shape, npy.dtype)          # weights: on huge pages where large enough
        view = memoryview(out.reshape(-1).view(np.uint8)) if npy.nbytes else None
        filled = 0
        try:
            with self.zip.open(info) as member:
                skipped = len(member.read(npy.offset))
                while skipped == npy.offset and filled < npy.nbytes:
                    chunk = member.read(min(_READ_CHUNK, npy.nbytes - filled))
                    if not chunk:
                        break
                    view[filled:filled + len(chunk)] = chunk
                    filled += len(chunk)
                rest = member.read(1)
        except self._READ_ERRORS as error:
            raise self._damaged(name, error) from None
        if filled != npy.nbytes or rest:
            raise self.refuse(f"is damaged: the array '{name}' holds "
                              f"{'less' if filled < npy.nbytes else 'more'} data than its header "
                              f"declares ({npy.nbytes} bytes)")
        if npy.fortran_order:
            out = np.ascontiguousarray(out.T)
        if not out.dtype.isnative:
            out = out.astype(out.dtype.newbyteorder("="))
        return out


class _Window(io.RawIOBase):
    """Bytes `start` to `start + size` of an open file, as a seekable read-only file (h5py reads a
    stored zip entry through it without copying it)."""

    def __init__(self, handle, start: int, size: int):
        super().__init__()
        self._file, self._start, self._size, self._at = handle, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._at, 2: self._size}[whence]
        self._at = max(0, base + offset)
        return self._at

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._size - self._at))
        if count == 0:
            return 0
        self._file.seek(self._start + self._at)
        got = self._file.readinto(memoryview(buffer)[:count])
        self._at += got
        return got


def _central_directory(handle, size: int) -> Optional[Tuple[int, int]]:
    """(entries, bytes) of the zip directory as its end record declares them (zip64 too), read
    the way `zipfile` reads it; None when no end record is found (zipfile then refuses the file)."""
    tail_size = min(size, _EOCD.size + 0xFFFF)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    _, _, _, _, entries, directory_size, _, _ = _EOCD.unpack_from(tail, at)
    record = size - tail_size + at
    if record >= _ZIP64_LOCATOR.size + _ZIP64_EOCD.size:
        handle.seek(record - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size)
        data = handle.read(_ZIP64_LOCATOR.size + _ZIP64_EOCD.size)
        if data[_ZIP64_EOCD.size:_ZIP64_EOCD.size + 4] == b"PK\x06\x07" and data[:4] == b"PK\x06\x06":
            fields = _ZIP64_EOCD.unpack_from(data)
            entries, directory_size = fields[7], fields[8]
    return entries, directory_size


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _check_json_structure(archive: "_Archive", name: str, text: str) -> None:
    """Refuse JSON nested deeper than `_MAX_JSON_DEPTH` or with more than `_MAX_JSON_CONTAINERS`
    lists and objects, before `json.loads` (which would recurse, or build it all)."""
    outside = _JSON_STRING.sub("", text)
    containers = outside.count("[") + outside.count("{")
    if containers > _MAX_JSON_CONTAINERS:
        raise archive.refuse(f"has a damaged '{name}': it holds {containers} lists and objects, "
                             f"at most {_MAX_JSON_CONTAINERS} are allowed")
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(outside):
        depth += 1 if match.group() in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > _MAX_JSON_DEPTH:
                raise archive.refuse(f"has a damaged '{name}': its lists and objects are nested "
                                     f"more than {_MAX_JSON_DEPTH} deep")


def _read_header(archive: _Archive) -> Dict[str, Any]:
    if not archive.has(_HEADER):
        raise archive.refuse(f"is a zip file but not a convscope model file (no '{_HEADER}' "
                             f"entry; it holds {sorted(archive.names)[:5]}) nor a Keras .keras "
                             f"archive (config.json and model.weights.h5)")
    header = archive.json(_HEADER)
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise archive.refuse(f"is not a convscope model file (format "
                             f"{header.get('format') if isinstance(header, dict) else header!r}, "
                             f"expected '{FORMAT_NAME}')")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION \
            or version < 1:
        raise archive.refuse(f"has format version {version!r}; this convscope reads versions "
                             f"up to {FORMAT_VERSION} — upgrade convscope")
    return header


def _check_npy_header(archive: _Archive, name: str, npy: _NpyHeader, shape, dtype,
                      what: str, weight: bool = False) -> None:
    """An array's header against what it is for: the same shape (a `weight`: one that `fits_weight`) and
    dtype (unless None)."""
    same = fits_weight(npy.shape, shape) if weight else npy.shape == tuple(shape)
    if not same or (dtype is not None and npy.dtype != dtype):
        expected = f"shape {tuple(shape)}" + (f" {np.dtype(dtype)}" if dtype is not None else "")
        raise archive.refuse(f"is inconsistent: the array '{name}' declares shape {npy.shape} "
                             f"{npy.dtype} in its .npy header, but {what} has {expected}")


# -- small helpers ----------------------------------------------------------------------------

def _refuse_code(function: str, model) -> None:
    """A model holding a Lambda (at any depth) is not written whole: its function is code, a file is data."""
    queue = list(getattr(model, "layers", []))
    while queue:
        layer = queue.pop(0)
        if isinstance(layer, Lambda):
            raise ValueError(f"{function}: {type(model).__name__} '{model.name}' holds the Lambda layer "
                             f"'{layer.name}', whose function is Python code, which convscope does not write into "
                             "files (a file is data); use `model.save_weights('....weights.npz')`, then rebuild the "
                             "model in code and `load_weights`")
        queue.extend(getattr(layer, "layers", []))


def fits_weight(stored, shape) -> bool:
    """A stored array of shape `stored` loads into a weight of `shape`: the same shape, or (1,) for a scalar
    weight (convscope wrote `add_weight(shape=())`'s weights as (1,) before they were scalars, as Keras')."""
    stored, shape = tuple(stored), tuple(shape)
    return stored == shape or (shape == () and stored == (1,))


def weight_shaped(array: np.ndarray, shape) -> np.ndarray:
    """A loaded `array` as the weight of `shape` it `fits_weight`: itself, or its one value as a scalar."""
    return array if array.shape == tuple(shape) else array.reshape(shape)


def _checked_path(function: str, filepath, must_exist: bool = False) -> Path:
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"{function}: argument `filepath` must be a path (str or os.PathLike), "
                        f"got {filepath!r}")
    path = Path(filepath).expanduser()
    if must_exist and not path.is_file():
        raise FileNotFoundError(f"{function}: no file at '{path}'")
    return path


def _check_model(function: str, model) -> None:
    if not all(hasattr(model, a) for a in ("weights", "get_weights", "set_weights", "get_config")):
        raise TypeError(f"{function}: argument `model` must be a convscope model, got "
                        f"{type(model).__name__}")


def _is_hdf5(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


def _shape_tuple(shape) -> Optional[Tuple[int, ...]]:
    """A JSON shape (a list of integers >= 0, at most `_MAX_NDIM`) as a tuple, or None."""
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM:
        return None
    if not all(type(d) is int and d >= 0 for d in shape):
        return None
    return tuple(shape)


def _kind(value) -> str:
    """What a JSON value is, for error messages: 'a dict', 'a list', 'the string ...'."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return f"the {type(value).__name__} {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"a {type(value).__name__}"


def _json_bytes(value) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True).encode("utf-8")


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _short(names: Sequence[Optional[str]], limit: int = 6) -> str:
    shown = [str(n) for n in names[:limit]]
    return ", ".join(shown) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _version() -> str:
    from .. import __version__
    return __version__
