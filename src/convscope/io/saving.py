"""Saving and loading whole models (`.convscope` zip files) and their weights (`.weights.npz`).

A model file is one zip archive:

    convscope.json        format name and version, convscope version, model class
    config.json           the model's `get_config()`
    weights.json          name, shape and dtype of each weight, in `get_weights()` order
    weights/00000.npy ... the weight arrays
    compile.json          the compile settings (null when the model was not compiled)
    optimizer.json        the optimizer's class and config, and the keys of its state
    optimizer/00000.npy   its state arrays (moments, iteration count)

Every file is written to a temporary name beside the target and renamed into
place, so an interrupted save leaves any earlier file intact.  `load_model`
restores the optimizer state too, so training continues exactly where it stopped.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._atomic import atomic_write

FORMAT_NAME = "convscope-model"
FORMAT_VERSION = 1
WEIGHTS_FORMAT_NAME = "convscope-weights"
MODEL_SUFFIX = ".convscope"
WEIGHTS_SUFFIX = ".weights.npz"
H5_WEIGHTS_SUFFIX = ".weights.h5"
_HEADER = "convscope.json"
_LAYOUT_KEY = "layout"

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_VERSION"]


# -- whole models ---------------------------------------------------------------------------

def save_model(model, filepath, overwrite: bool = True) -> Path:
    """Write `model` (config, weights, compile settings, optimizer state) to one zip file."""
    path = _checked_path("save_model", filepath)
    _check_model("save_model", model)
    if not overwrite and path.exists():
        raise FileExistsError(f"save_model: '{path}' exists and overwrite=False")
    entries = _model_entries(model)
    with atomic_write(path) as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                _write_entry(archive, name, data)
    return path


def load_model(filepath, custom_objects=None, compile: bool = True):  # noqa: A002 - Keras' name
    """Rebuild a model saved by `save_model`, with its weights, compile settings and optimizer state.

    `custom_objects` maps class names to your own layer classes, as in Keras;
    `compile=False` skips the compile settings and optimizer state.
    """
    path = _checked_path("load_model", filepath, must_exist=True)
    with _open_archive("load_model", path) as archive:
        header = _read_header("load_model", path, archive)
        config = _read_json("load_model", path, archive, "config.json")
        cls = _model_class(header.get("class_name"), path)
        try:
            model = cls.from_config(config, custom_objects)
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"load_model: '{path}' holds a model config that cannot be rebuilt: "
                             f"{error}") from None
        layout = _read_json("load_model", path, archive, "weights.json")
        arrays = [_read_array("load_model", path, archive, f"weights/{i:05d}.npy")
                  for i in range(len(layout))]
        _assign_weights("load_model", path, model, arrays, [w.get("name") for w in layout])
        compile_config = _read_json("load_model", path, archive, "compile.json")
        if compile and compile_config is not None:
            state = _read_optimizer_state("load_model", path, archive)
            _restore_compile("load_model", path, model, compile_config, state)
    return model


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


def _read_optimizer_state(function: str, path: Path,
                          archive: zipfile.ZipFile) -> Optional[Dict[str, np.ndarray]]:
    """The saved optimizer slots and iteration count, or None when none were saved."""
    if "optimizer.json" not in archive.namelist():
        return None
    saved = _read_json(function, path, archive, "optimizer.json")
    keys = saved.get("state_keys", []) if isinstance(saved, dict) else []
    return {k: _read_array(function, path, archive, f"optimizer/{i:05d}.npy")
            for i, k in enumerate(keys)}


def _compile_config(model) -> Optional[Dict[str, Any]]:
    """The model's compile settings, or None when it was never compiled."""
    getter = getattr(model, "get_compile_config", None)
    return getter() if getter is not None else None


def _restore_compile(function: str, path: Path, model, config: Dict[str, Any],
                     state: Optional[Dict[str, np.ndarray]]) -> None:
    """Compile the rebuilt model as it was, then give its optimizer the saved state."""
    try:
        model.compile_from_config(config)
        if state is not None:
            model.optimizer.set_state(state)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{function}: '{path}' holds compile settings or an optimizer state "
                         f"that cannot be restored: {error}") from None


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
    otherwise a ValueError names the first weight that differs.
    """
    path = _checked_path("load_weights", filepath, must_exist=True)
    _check_model("load_weights", model)
    if path.name.endswith(H5_WEIGHTS_SUFFIX) or _is_hdf5(path):
        from . import h5
        h5.load_weights(model, path)
        return
    with _open_archive("load_weights", path) as archive:
        names = archive.namelist()
        if _HEADER in names:
            _read_header("load_weights", path, archive)
            layout = _read_json("load_weights", path, archive, "weights.json")
            arrays = [_read_array("load_weights", path, archive, f"weights/{i:05d}.npy")
                      for i in range(len(layout))]
            saved_names = [w.get("name") for w in layout]
        elif f"{_LAYOUT_KEY}.npy" in names:
            layout = _read_weights_layout(path, archive)
            saved_names = layout["names"]
            arrays = [_read_array("load_weights", path, archive, f"w{i:05d}.npy")
                      for i in range(len(saved_names))]
        else:
            raise ValueError(f"load_weights: '{path}' is a zip file but not a convscope weights "
                             f"or model file (it holds {sorted(names)[:5]})")
    _assign_weights("load_weights", path, model, arrays, saved_names)


def _read_weights_layout(path: Path, archive: zipfile.ZipFile) -> Dict[str, Any]:
    raw = _read_array("load_weights", path, archive, f"{_LAYOUT_KEY}.npy")
    try:
        layout = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise ValueError(f"load_weights: '{path}' has a damaged layout entry: {error}") from None
    if not isinstance(layout, dict) or layout.get("format") != WEIGHTS_FORMAT_NAME:
        raise ValueError(f"load_weights: '{path}' is not a convscope weights file")
    if layout.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"load_weights: '{path}' was written by a newer convscope (weights "
                         f"format {layout.get('format_version')}, this one reads up to "
                         f"{FORMAT_VERSION})")
    return layout


def _assign_weights(function: str, path: Path, model, arrays: Sequence[np.ndarray],
                    saved_names: Sequence[Optional[str]]) -> None:
    """Check every array against the model's weights (count, shapes), then set them all."""
    own = [tuple(v.shape) for v in model.weights]
    own_names = [v.name for v in model.weights]
    if len(arrays) != len(own):
        raise ValueError(f"{function}: '{path}' holds {len(arrays)} weight arrays "
                         f"({_short(saved_names)}) but the model has {len(own)} "
                         f"({_short(own_names)}); the file is for a different architecture")
    for index, (array, shape) in enumerate(zip(arrays, own)):
        if tuple(array.shape) != tuple(shape):
            raise ValueError(f"{function}: '{path}' is for a different architecture: weight "
                             f"{index} ('{saved_names[index]}' in the file) has shape "
                             f"{tuple(array.shape)}, the model's '{own_names[index]}' has "
                             f"shape {tuple(shape)}")
    model.set_weights(list(arrays))


# -- archive helpers --------------------------------------------------------------------------

def _open_archive(function: str, path: Path) -> zipfile.ZipFile:
    if _is_hdf5(path):
        raise ValueError(f"{function}: '{path}' is an HDF5 file (Keras .h5), not a convscope "
                         f"file; load its weights with load_weights(model, path) into a model "
                         f"of the same architecture")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        size = path.stat().st_size
        with path.open("rb") as handle:
            starts_like_zip = handle.read(4) == b"PK\x03\x04"
        what = ("a truncated or damaged zip file" if starts_like_zip
                else "not a zip file (it does not start with the zip signature)")
        raise ValueError(f"{function}: '{path}' ({size} bytes) is {what}; expected a file "
                         f"written by convscope's save_model/save_weights") from None
    try:
        damaged = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        damaged = f"? ({error})"
    if damaged is not None:
        archive.close()
        raise ValueError(f"{function}: '{path}' is damaged: the entry '{damaged}' fails its "
                         "CRC check")
    return archive


def _read_header(function: str, path: Path, archive: zipfile.ZipFile) -> Dict[str, Any]:
    if _HEADER not in archive.namelist():
        raise ValueError(f"{function}: '{path}' is a zip file but not a convscope model file "
                         f"(no '{_HEADER}' entry; it holds {sorted(archive.namelist())[:5]})")
    header = _read_json(function, path, archive, _HEADER)
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{function}: '{path}' is not a convscope model file (format "
                         f"{header.get('format') if isinstance(header, dict) else header!r}, "
                         f"expected '{FORMAT_NAME}')")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{function}: '{path}' has format version {version!r}; this convscope "
                         f"reads versions up to {FORMAT_VERSION} — upgrade convscope")
    return header


def _read_json(function: str, path: Path, archive: zipfile.ZipFile, name: str):
    try:
        return json.loads(archive.read(name).decode("utf-8"))
    except KeyError:
        raise ValueError(f"{function}: '{path}' lacks the entry '{name}'; the file is "
                         "incomplete") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{function}: '{path}' has a damaged '{name}': {error}") from None


def _read_array(function: str, path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray:
    try:
        data = archive.read(name)
    except KeyError:
        raise ValueError(f"{function}: '{path}' lacks the entry '{name}'; the file is "
                         "incomplete") from None
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{function}: '{path}' has a damaged array '{name}': {error}") from None


def _model_class(class_name, path: Path):
    from .. import models
    cls = getattr(models, class_name, None) if isinstance(class_name, str) else None
    if cls is None or not hasattr(cls, "from_config"):
        raise ValueError(f"load_model: '{path}' holds a model of class {class_name!r}, which "
                         "convscope.models does not define")
    return cls


# -- small helpers ----------------------------------------------------------------------------

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
