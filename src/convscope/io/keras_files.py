"""Keras' own model files, both ways: Keras 3 `.keras` archives and legacy `.h5` (Keras 2 /
tf.keras full-model HDF5, as Keras 3's `legacy_h5_format` writes it).  Needs h5py.

* `.keras`: a zip of `metadata.json`, `config.json` (`{"module", "class_name", "config",
  "compile_config", "build_config"}`) and `model.weights.h5` (the tree of `keras_tree`:
  `layers/<name>/vars/<i>`, `optimizer/vars/<i>`), entries stored as Keras writes them.
* `.h5`: root attributes `model_config` and `training_config` (JSON), the group
  `model_weights` (`layer_names`, per layer `weight_names`) and `optimizer_weights`.

Loading checks as `saving.load_model` does, before any weight is read: the zip directory
(`saving._Archive`), bounded JSON, every class named in the config convscope's own or in
`custom_objects` (nothing imported, no Lambda bytecode run), the model rebuilt under
`deferred_weights`, every dataset's shape and dtype against its variable; only then are the
arrays read, into new arrays, and set.  The optimizer's variables are mapped to convscope's
slots (`keras_tree.optimizer_slot_keys`); a Keras 2 file's optimizer weights (another
layout) are left out, with a warning.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ._atomic import atomic_write
from .h5 import _h5py, _Reader, _text, assign_plan, check_plan, keras3_plan, legacy_names, \
    legacy_plan, read_plan, write_weight_tree
from .keras_tree import check_config, compile_config_from_keras, compile_config_to_keras, \
    has_lr_variable, is_model, keras_layers, legacy_weights, optimizer_slot_keys
from .saving import _MAX_JSON_BYTES, InvalidFileError, _Archive, _check_json_structure, _compile, \
    _rebuild, fits_weight, weight_shaped

KERAS_SUFFIX = ".keras"
LEGACY_SUFFIXES = (".h5", ".hdf5")
_WEIGHTS_ENTRY = "model.weights.h5"
_KERAS_VERSION = "3.15.1"          # the Keras whose file layout these files follow


# -- reading ------------------------------------------------------------------------------------

def is_keras_archive(archive: _Archive) -> bool:
    return archive.has("config.json") and archive.has(_WEIGHTS_ENTRY)


def load_keras_archive(archive: _Archive, custom_objects, compile: bool):  # noqa: A002
    """The model of an open `.keras` archive, checked whole before its weights are set."""
    extra = sorted(set(archive.names) - {"config.json", "metadata.json", _WEIGHTS_ENTRY})
    if extra:
        raise archive.refuse(f"holds entries convscope does not read ({extra[:5]}); a Keras archive "
                             f"of convscope's layers holds only config.json, metadata.json and "
                             f"{_WEIGHTS_ENTRY}")
    if archive.has("metadata.json") and not isinstance(archive.json("metadata.json"), dict):
        raise archive.refuse("has a damaged 'metadata.json': expected a JSON object")
    saved = archive.json("config.json")
    model = _build(archive, saved, custom_objects)
    compile_config = saved.get("compile_config") if compile else None
    if compile_config:
        _compile(archive, model, _translated(archive, compile_config))
    h5py = _h5py()
    window = _weights_file(archive)
    reader = _Reader(h5py, archive.path, archive.function)
    try:
        with h5py.File(window, "r") as handle:
            plan = keras3_plan(reader, handle, model)
            check_plan(reader, plan)
            slots = _keras3_optimizer_plan(reader, handle, model) if compile_config else None
            arrays = read_plan(plan)
            state = _read_optimizer(slots)
    except (InvalidFileError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - a damaged HDF5 file raises OSError, KeyError, ...
        raise reader.refuse(f"holds a damaged '{_WEIGHTS_ENTRY}' ({type(error).__name__}: "
                            f"{error})") from error
    assign_plan(plan, arrays)
    _set_optimizer(reader, model, state)
    return model


def _weights_file(archive: _Archive):
    """model.weights.h5 as a seekable file: a window on a stored entry (CRC-checked first), or
    the bytes of a deflated one (bounded by the directory checks)."""
    info = archive.info(_WEIGHTS_ENTRY)
    if info.compress_type == zipfile.ZIP_STORED:
        return archive.stored_window(_WEIGHTS_ENTRY)
    return io.BytesIO(archive.read_bytes(_WEIGHTS_ENTRY, info.file_size))


def _build(archive, saved, custom_objects):
    """The model of a Keras `config.json` / `model_config`, after `check_config`."""
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise archive.refuse(f"has a damaged model config: expected an object with 'class_name' and "
                             f"a 'config' object, found {type(saved).__name__}")
    class_name = saved.get("class_name")
    config = saved["config"]
    if class_name in ("Functional", "Model"):
        config = _keras3_nodes(config)
    check_config(config, custom_objects, archive.refuse)
    return _rebuild(archive, class_name, config, custom_objects)


def _translated(archive, compile_config) -> Dict[str, Any]:
    if not isinstance(compile_config, dict):
        raise archive.refuse("has damaged compile settings: expected a JSON object")
    try:
        return compile_config_from_keras(compile_config)
    except (ValueError, TypeError, KeyError) as error:
        raise archive.refuse(f"holds compile settings convscope cannot restore ({error}); load it "
                             f"with compile=False") from None


def _optimizer_plan(reader, model, datasets, where: str):
    """[(key, dataset, the variable's shape for a slot, else None)] for Keras' optimizer variables (`iteration`,
    `learning_rate`, slots)."""
    optimizer = model.optimizer
    variables = model.trainable_weights
    prefix = ["iterations"] + (["learning_rate"] if has_lr_variable(optimizer) else [])
    keys = optimizer_slot_keys(optimizer, len(variables))
    if len(datasets) <= len(prefix):
        keys = []
    if keys is None or len(datasets) not in (len(prefix), len(prefix) + len(keys)):
        raise reader.refuse(f"holds {len(datasets)} optimizer variables in {where}, but a "
                            f"{type(optimizer).__name__} of the model's {len(variables)} trainable "
                            f"variables keeps {len(prefix)} or {len(prefix) + len(keys or [])}; "
                            f"load it with compile=False")
    plan = []
    for key, dataset in zip(prefix + keys, datasets):
        if key in ("iterations", "learning_rate", "u_product"):
            kind = "iu" if key == "iterations" else "f"
            if dataset.shape != () or dataset.dtype.kind not in kind:
                raise reader.refuse(f"holds the optimizer's {key} as shape {dataset.shape} "
                                    f"{dataset.dtype}, expected a scalar")
        else:
            slot, _, position = key.partition("/")
            variable = variables[int(position)]
            initial = optimizer._initial_slot(slot, variable.value)        # Adafactor's factors: not the weight's
            shape, kinds = initial.shape, ("f" if initial.dtype.kind == "f" else "iu")
            if not fits_weight(dataset.shape, shape) or dataset.dtype.kind not in kinds:
                raise reader.refuse(f"holds the optimizer slot '{slot}' for '{variable.name}' with shape "
                                    f"{dataset.shape} {dataset.dtype}, expected {tuple(shape)} "
                                    f"{'floats' if kinds == 'f' else 'integers'}")
        plan.append((key, dataset, None if key in ("iterations", "learning_rate", "u_product") else shape))
    return plan


def _keras3_optimizer_plan(reader, handle, model):
    group = reader.child(handle, "optimizer/vars", "group", required=False)
    if group is None:
        return None
    count = len(group)
    if count > 4 * len(model.trainable_weights) + 2:
        raise reader.refuse(f"holds {count} optimizer variables, more than any optimizer keeps")
    datasets = [_int_dataset(reader, group) if i == 0 else reader.child(group, str(i), "dataset")
                for i in range(count)]
    return _optimizer_plan(reader, model, datasets, "'optimizer/vars'")


def _int_dataset(reader, group):
    """`iteration` (an integer scalar: `_Reader.child` takes floats only)."""
    link = group.get("0", getlink=True)
    if not isinstance(link, reader.h5py.HardLink) or not isinstance(group["0"], reader.h5py.Dataset):
        raise reader.refuse("holds no optimizer iteration count ('optimizer/vars/0')")
    dataset = group["0"]
    if dataset.is_virtual or dataset.external or dataset.shape != () or dataset.dtype.kind not in "iuf":
        raise reader.refuse(f"holds the optimizer's iteration count as {dataset.shape} "
                            f"{dataset.dtype}, expected an integer scalar")
    return dataset


def _read_optimizer(plan) -> Optional[Dict[str, np.ndarray]]:
    if plan is None:
        return None
    return {key: np.asarray(dataset[()]) if shape is None else weight_shaped(np.asarray(dataset[()]), shape)
            for key, dataset, shape in plan}


def _set_optimizer(reader, model, state) -> None:
    if not state:
        return
    optimizer = model.optimizer
    state.pop("u_product", None)        # Nadam's product of u_t: convscope computes it from iterations
    if "learning_rate" in state:
        optimizer.learning_rate = float(state.pop("learning_rate"))
    state["iterations"] = np.asarray(int(state["iterations"]), dtype=np.int64)
    if int(state["iterations"]) < 0:
        raise reader.refuse(f"holds the iteration count {int(state['iterations'])}, expected >= 0")
    optimizer.set_state(state)


def _keras3_nodes(config):
    """A Keras 2 functional config's nodes (`[[["name", 0, 0, {}], ...]]`) in Keras 3's form."""
    layers = config.get("layers")
    if not isinstance(layers, list):
        return config
    converted = []
    for entry in layers:
        nodes = entry.get("inbound_nodes") if isinstance(entry, dict) else None
        if isinstance(nodes, list) and nodes and isinstance(nodes[0], list):
            entry = dict(entry, inbound_nodes=[_keras3_node(node) for node in nodes])
        converted.append(_with_operation_module(entry))
    return dict(config, layers=converted)


def _with_operation_module(entry):
    """A legacy .h5 config drops an operation's module (`x * 0.5` reads as the Multiply layer, and
    Keras itself cannot load it): an entry without a module is an operation when its class is no
    layer's, or a node passes it more than one positional argument, and convscope.ops has it."""
    if not isinstance(entry, dict) or entry.get("module") or not isinstance(entry.get("class_name"), str):
        return entry
    from .. import backend
    from ..layers import LAYER_CLASSES
    from ..layers.operations import operation_class
    nodes = entry.get("inbound_nodes") or []
    several = any(isinstance(n, dict) and isinstance(n.get("args"), list) and len(n["args"]) != 1 for n in nodes)
    if entry["class_name"] in LAYER_CLASSES and not several:
        return entry
    try:
        cls = operation_class(backend.snake_case(entry["class_name"]))
    except ValueError:
        return entry
    if cls is None or cls.__name__ != entry["class_name"]:
        return entry
    return dict(entry, module=cls.keras_module)


def _keras3_node(node):
    tensors = [{"class_name": "__keras_tensor__", "config": {"keras_history": list(t[:3])}}
               for t in node if isinstance(t, list) and len(t) >= 3]
    kwargs = node[0][3] if node and isinstance(node[0], list) and len(node[0]) > 3 else {}
    return {"args": [tensors[0] if len(tensors) == 1 else tensors], "kwargs": kwargs or {}}


# -- legacy .h5 -----------------------------------------------------------------------------------

def is_legacy_h5(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


def load_legacy_h5(function: str, path: Path, custom_objects, compile: bool):  # noqa: A002
    """The model of a legacy full-model `.h5` file, checked whole before its weights are set."""
    h5py = _h5py()
    reader = _Reader(h5py, path, function)
    try:
        handle = h5py.File(path, "r")
    except Exception as error:  # noqa: BLE001 - h5py raises OSError, and others on odd files
        raise reader.refuse(f"cannot be read as an HDF5 file ({type(error).__name__}: {error})") from None
    try:
        with handle:
            if "model_config" not in handle.attrs:
                raise reader.refuse("is an HDF5 file without a model (no 'model_config' attribute: a "
                                    "weights file? load it with model.load_weights)")
            model = _build(reader, _json_attribute(reader, handle, "model_config"), custom_objects)
            training = _json_attribute(reader, handle, "training_config") if compile and \
                "training_config" in handle.attrs else None
            if training:
                _compile(reader, model, _translated(reader, training))
            plan = legacy_plan(reader, reader.child(handle, "model_weights", "group"), model)
            check_plan(reader, plan)
            slots = _legacy_optimizer_plan(reader, handle, model) if training else None
            arrays = read_plan(plan)
            state = _read_optimizer(slots)
    except (InvalidFileError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - a damaged HDF5 file raises OSError, KeyError, ...
        raise reader.refuse(f"is a damaged HDF5 file ({type(error).__name__}: {error})") from error
    assign_plan(plan, arrays)
    _set_optimizer(reader, model, state)
    return model


def _json_attribute(reader, handle, name: str):
    """A JSON root attribute, its size checked before it is read."""
    size = handle.attrs.get_id(name).get_storage_size()
    if size > _MAX_JSON_BYTES:
        raise reader.refuse(f"has an attribute '{name}' of {size} bytes; at most {_MAX_JSON_BYTES} "
                            f"are allowed")
    value = handle.attrs[name]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if not isinstance(value, (bytes, str)):
        raise reader.refuse(f"has a damaged attribute '{name}': expected JSON text")
    text = _text(value)
    _check_json_structure(reader, name, text)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise reader.refuse(f"has a damaged attribute '{name}': {error}") from None


def _legacy_optimizer_plan(reader, handle, model):
    group = reader.child(handle, "optimizer_weights", "group", required=False)
    if group is None:
        return None
    version = _text(handle.attrs.get("keras_version", b""))
    if not version.startswith("3."):
        warnings.warn(f"load_model: '{reader.path}' was written by Keras {version or '2'}, whose "
                      f"optimizer weights convscope does not map; the optimizer starts afresh",
                      stacklevel=3)
        return None
    names = legacy_names(reader, group, "weight_names")
    if len(names) > 4 * len(model.trainable_weights) + 2:
        raise reader.refuse(f"holds {len(names)} optimizer weights, more than any optimizer keeps")
    datasets = [_legacy_dataset(reader, group, _text(n), first=i == 0) for i, n in enumerate(names)]
    return _optimizer_plan(reader, model, datasets, "'optimizer_weights'")


def _legacy_dataset(reader, group, name: str, first: bool):
    if not first:
        return reader.child(group, name, "dataset")
    parent, _, leaf = name.rpartition("/")
    target = reader.child(group, parent, "group") if parent else group
    return _int_dataset(reader, _Renamed(target, leaf))


class _Renamed:
    """A group seen with one child renamed "0" (for `_int_dataset`)."""

    def __init__(self, group, name: str):
        self._group, self._name = group, name

    def get(self, _key, getlink=False):
        return self._group.get(self._name, getlink=getlink)

    def __getitem__(self, _key):
        return self._group[self._name]


# -- writing -------------------------------------------------------------------------------------

def model_file_config(model) -> Dict[str, Any]:
    """`config.json` of a `.keras` archive, as Keras 3 writes it."""
    functional = type(model).__name__ != "Sequential"
    config = {"module": "keras.src.models.functional" if functional else "keras",
              "class_name": "Functional" if functional else "Sequential",
              "config": model.get_config(), "registered_name": "Functional" if functional else None}
    shape = getattr(model, "_build_input_shape", None) if not functional else None
    if not functional and shape is None and getattr(model, "built", False):
        shape = getattr(model, "input_shape", None)
    config["build_config"] = {"input_shape": list(shape) if shape is not None else None}
    config["compile_config"] = compile_config_to_keras(model) or {}
    return config


def save_keras_archive(model, path: Path) -> Path:
    """A `.keras` archive that Keras 3's `load_model` opens."""
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        write_weight_tree(handle, model)
        _write_keras3_optimizer(handle, model)
    metadata = {"keras_version": _KERAS_VERSION, "date_saved": datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with atomic_write(path) as out:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
            archive.writestr("config.json", json.dumps(model_file_config(model)))
            archive.writestr(_WEIGHTS_ENTRY, buffer.getbuffer())
    return path


def _optimizer_arrays(model) -> Optional[List[np.ndarray]]:
    """Keras' optimizer variables of a compiled model: iteration, learning rate, slots."""
    optimizer = getattr(model, "optimizer", None) if getattr(model, "compiled", False) else None
    if optimizer is None:
        return None
    arrays = [np.asarray(optimizer.iterations, dtype=np.int64)]
    if has_lr_variable(optimizer):
        arrays.append(np.asarray(optimizer.learning_rate, dtype=np.float32))
    state = optimizer.get_state()
    variables = model.trainable_weights
    for key in optimizer_slot_keys(optimizer, len(variables)) or []:
        if key == "u_product":          # Nadam: Keras' running product, a float32 scalar
            arrays.append(np.asarray(optimizer._u_product(optimizer.iterations), dtype=np.float32))
            continue
        slot, _, position = key.partition("/")
        initial = optimizer._initial_slot(slot, variables[int(position)].value)
        arrays.append(state.get(key, initial))   # slots not built yet: their initial values, as Keras
    return arrays


def _write_keras3_optimizer(handle, model) -> None:
    arrays = _optimizer_arrays(model)
    if arrays is None:
        return
    group = handle.create_group("optimizer").create_group("vars")
    group.attrs["name"] = model.optimizer.name
    for index, array in enumerate(arrays):
        group.create_dataset(str(index), data=array)


def save_legacy_h5(model, path: Path) -> Path:
    """A legacy HDF5 model file in the layout of Keras 3's `save_model_to_hdf5`."""
    h5py = _h5py()
    with atomic_write(path, mode="w+b") as out:
        with h5py.File(out, "w") as handle:
            handle.attrs["backend"] = "numpy"
            handle.attrs["keras_version"] = _KERAS_VERSION
            config = model_file_config(model)
            handle.attrs["model_config"] = json.dumps(
                {"class_name": config["class_name"], "config": config["config"]}).encode("utf8")
            training = compile_config_to_keras(model)
            if training is not None:
                training = dict(training, optimizer_config=training.pop("optimizer"))
                handle.attrs["training_config"] = json.dumps(training).encode("utf8")
            _write_legacy_weights(handle.create_group("model_weights"), model)
            _write_legacy_optimizer(handle, model)
    return path


def _write_legacy_weights(group, model) -> None:
    layers = keras_layers(model)
    group.attrs["layer_names"] = [layer.name.encode("utf8") for layer in layers]
    group.attrs["backend"] = b"numpy"
    group.attrs["keras_version"] = _KERAS_VERSION.encode("utf8")
    for layer in sorted(layers, key=lambda item: item.name):
        variables = legacy_weights(layer)
        names = [_variable_path(layer, v) for v in variables]
        layer_group = group.create_group(layer.name)
        layer_group.attrs["weight_names"] = [n.encode("utf8") for n in names] or np.zeros(0)
        for name, variable in zip(names, variables):
            layer_group.create_dataset(name, data=np.asarray(variable.value))
    group.create_group("top_level_model_weights").attrs["weight_names"] = np.zeros(0)


def _variable_path(layer, variable) -> str:
    """`layer/var` as Keras names a variable, `model/layer/var` inside a nested model."""
    if is_model(layer) or "/" not in variable.name:
        return f"{layer.name}/{variable.name}"
    return variable.name


def _write_legacy_optimizer(handle, model) -> None:
    arrays = _optimizer_arrays(model)
    if arrays is None:
        return
    group = handle.create_group("optimizer_weights")
    prefix = model.optimizer.name
    names = [f"{prefix}/iteration"] + ([f"{prefix}/learning_rate"] if len(arrays) > 1 else [])
    names += [f"{prefix}/slot_{i}" for i in range(len(arrays) - len(names))]
    group.attrs["weight_names"] = [n.encode("utf8") for n in names]
    for name, array in zip(names, arrays):
        group.create_dataset(name, data=array)
