"""What Keras 3 and legacy Keras files share: where each layer's weights live, the optimizer's
variables in Keras' order, the compile settings in Keras' spelling, and the check of a config
before anything is built from it.

* Keras 3's weight tree (`saving_lib._save_state`): `layers/<name>/vars/0, 1, ...`, `<name>`
  the layer's class in snake case numbered per class among the model's layers (operations
  such as `x * 2` are not layers there); a nested model's layers under
  `layers/<its name>/layers/...`, the model itself an empty `.../vars` group; a wrapper's (TimeDistributed)
  under `layers/<its name>/layer/...`, the wrapper an empty `vars` group.
* Keras' optimizer variables: `iteration`, `learning_rate` (unless a schedule), then the slots
  in the order its `build` adds them (Adam, Adadelta, Adamax, Nadam, Lion, Ftrl, Lamb, Adafactor: the
  slots of each variable together, then Adam's v-hat, Nadam's scalar `u_product`; Adafactor's r and c
  are the factored moments, scalars for a weight of fewer than 2 axes; RMSprop: every velocity, then
  momentums, then average gradients).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Optional, Tuple

from .. import backend
from .._custom_objects import lookup

# Keras optimizer config keys convscope has no use for, with the values that mean "off".
_NEUTRAL_OPTIMIZER_KEYS = {"use_ema": (False, None), "ema_momentum": None, "ema_overwrite_frequency": None,
                           "loss_scale_factor": (None,), "gradient_accumulation_steps": (None, 1)}
_MODEL_CLASS_NAMES = ("Sequential", "Functional", "Model")


def is_model(layer) -> bool:
    from ..models.training import Model
    return isinstance(layer, Model)


def holds_layers(layer) -> bool:
    """A model, or a Pipeline: Keras stores its layers' weights under its own `layers/` group, none of its own."""
    from ..layers.pipeline import Pipeline
    return is_model(layer) or isinstance(layer, Pipeline)


def wrapped_layer(layer):
    """The layer a wrapper (TimeDistributed, SpectralNormalization) holds, else None: Keras stores its weights
    under `<wrapper>/layer`."""
    from ..layers.wrapper import Wrapper
    return layer.layer if isinstance(layer, Wrapper) else None


def sublayers(layer) -> list:
    """(name, sublayer) of a layer Keras stores as its parts (MultiHeadAttention's `query_dense`, ...), else []."""
    parts = getattr(layer, "keras_sublayers", None)
    return list(parts()) if callable(parts) else []


def keras_layers(model) -> list:
    """`model.layers` as Keras lists them: operations (`x * 2`) are not layers."""
    return list(model.layers)


def weight_tree(model, prefix: str = "") -> List[Tuple[str, Any]]:
    """(path, layer) of every layer, nested models' layers included, as Keras 3 names them:
    `layers/conv2d`, `layers/sequential/layers/dense`, ...; a model comes before its layers."""
    used: Dict[str, int] = defaultdict(int)
    out = []
    for layer in keras_layers(model):
        base = backend.snake_case(type(layer).__name__)
        count = used[base]
        used[base] += 1
        path = f"{prefix}layers/{base if count == 0 else f'{base}_{count}'}"
        out.append((path, layer))
        while wrapped_layer(layer) is not None:         # a wrapper's layer (itself a wrapper, maybe)
            path, layer = path + "/layer", wrapped_layer(layer)
            out.append((path, layer))
        out.extend(_parts(path, layer))
        if holds_layers(layer):
            out.extend(weight_tree(layer, path + "/"))
    return out


def _parts(path: str, layer) -> List[Tuple[str, Any]]:
    """(path, sublayer) of a layer's parts and of theirs (Bidirectional's `forward_layer` and its `cell`)."""
    out = []
    for name, sublayer in sublayers(layer):
        out.append((f"{path}/{name}", sublayer))
        out.extend(_parts(f"{path}/{name}", sublayer))
    return out


def own_weights(layer) -> list:
    """The weights Keras stores under a layer's own `vars` group (a model's and a Pipeline's are its layers', a
    wrapper's the variables it tracks itself)."""
    if wrapped_layer(layer) is not None:
        return list(layer.wrapper_variables)
    return [] if holds_layers(layer) or sublayers(layer) else list(layer.weights)


def legacy_weights(layer) -> list:
    """Keras' `_legacy_weights`: trainable then non-trainable, the order of legacy .h5 files."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


# -- optimizer variables ----------------------------------------------------------------------

def optimizer_slot_keys(optimizer, count: int) -> Optional[List[str]]:
    """convscope's state keys (`slot/position`) in the order of Keras' slot variables for `count`
    trainable variables; None for an optimizer whose order is not known."""
    name = type(optimizer).__name__
    positions = range(count)
    if name == "SGD":
        return [f"momentum/{i}" for i in positions] if optimizer.momentum else []
    if name in ("Adam", "AdamW"):
        keys = [key for i in positions for key in (f"m/{i}", f"v/{i}")]
        return keys + ([f"vhat/{i}" for i in positions] if optimizer.amsgrad else [])
    if name == "RMSprop":
        slots = ["velocity"] + (["momentum"] if optimizer.momentum else []) + \
            (["average_gradient"] if optimizer.centered else [])
        return [f"{slot}/{i}" for slot in slots for i in positions]
    if name == "Adagrad":
        return [f"accumulator/{i}" for i in positions]
    if name in ("Adadelta", "Adamax", "Nadam", "Lion", "Ftrl", "Lamb", "Adafactor"):     # each variable's slots
        keys = [f"{slot}/{i}" for i in positions for slot in optimizer._slot_names]
        return keys + (["u_product"] if name == "Nadam" else [])    # Keras' running product of u_t
    return None


def has_lr_variable(optimizer) -> bool:
    """Whether Keras keeps the learning rate as a variable (not for a schedule)."""
    from ..optimizers import schedules
    return not isinstance(optimizer._learning_rate, schedules.LearningRateSchedule)


# -- compile settings ---------------------------------------------------------------------------

def compile_config_from_keras(config: Dict[str, Any]) -> Dict[str, Any]:
    """Keras' `compile_config` (or a legacy `training_config`) as convscope's `compile_from_config`
    takes it; a feature convscope lacks (EMA, loss scaling, ...) raises ValueError naming it."""
    optimizer = config.get("optimizer", config.get("optimizer_config"))
    if isinstance(optimizer, str):
        optimizer = {"class_name": optimizer, "config": {}}
    if not isinstance(optimizer, dict):
        raise ValueError(f"the compile settings name the optimizer {optimizer!r}, expected a dict")
    inner = dict(optimizer.get("config") or {})
    for key, neutral in _NEUTRAL_OPTIMIZER_KEYS.items():
        value = inner.pop(key, None)
        if neutral is not None and value not in neutral:
            raise ValueError(f"the optimizer uses {key}={value!r}, which convscope does not support")
    if "is_legacy_optimizer" in inner:
        inner.pop("is_legacy_optimizer")
    for key in ("decay", "jit_compile"):
        if inner.pop(key, None) not in (None, 0, 0.0, False, True):
            raise ValueError(f"the optimizer uses {key}, which convscope does not support")
    class_name = optimizer.get("class_name")
    class_name = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad",
                  "adadelta": "Adadelta", "adamax": "Adamax", "nadam": "Nadam",
                  "lion": "Lion"}.get(str(class_name).lower(), class_name)
    loss = config.get("loss")
    if loss is None:
        raise ValueError("the compile settings name no loss")
    return {"optimizer": {"class_name": class_name, "config": inner}, "loss": _loss_from_keras(loss),
            "metrics": _metrics_from_keras(config.get("metrics")),
            "loss_weights": config.get("loss_weights")}


def _loss_from_keras(loss):
    if isinstance(loss, dict) and loss.get("class_name") == "function":     # a loss function of the user's
        from .. import losses
        return losses.get(loss.get("config"))       # found by name among the user's objects, never imported
    if isinstance(loss, dict) and "class_name" in loss:
        from .. import losses
        inner = {k: v for k, v in (loss.get("config") or {}).items() if k not in ("dtype",)}
        return losses.deserialize({"class_name": loss["class_name"], "config": inner,
                                   "registered_name": loss.get("registered_name")})
    if isinstance(loss, dict):
        return {key: _loss_from_keras(value) for key, value in loss.items()}
    if isinstance(loss, list):
        return [_loss_from_keras(value) for value in loss]
    return loss


def _metrics_from_keras(metrics):
    """Metric names, and metric objects: Keras writes one as a dict (class and config: MeanIoU's classes,
    Precision's thresholds, ...), rebuilt as convscope's class of that name."""
    if metrics is None:
        return None
    if isinstance(metrics, dict):
        return {key: _metrics_from_keras(value) for key, value in metrics.items()}
    if isinstance(metrics, list):
        return [_metrics_from_keras(m) if isinstance(m, (list, dict)) and "class_name" not in m
                else _metric_name(m) for m in metrics]
    return _metric_name(metrics)


def _metric_name(metric):
    if isinstance(metric, dict):
        from .. import metrics
        name = metric.get("class_name")
        if name in metrics.CLASSES and name != "MeanMetricWrapper" and metric.get("module") in (None, "keras.metrics"):
            return metrics.deserialize({"class_name": name, "config": metric.get("config") or {}})
        return (metric.get("config") or {}).get("name") or name
    return metric


def compile_config_to_keras(model) -> Optional[Dict[str, Any]]:
    """convscope's compile settings in Keras 3's `compile_config` spelling (None: not compiled)."""
    config = model.get_compile_config() if hasattr(model, "get_compile_config") else None
    if config is None:
        return None
    optimizer = dict(config["optimizer"], module="keras.optimizers", registered_name=None)
    loss = config["loss"]
    if isinstance(loss, dict) and loss.get("class_name") == "FunctionLoss":   # as Keras writes a function
        loss = {"module": "builtins", "class_name": "function", "config": loss["config"]["function"],
                "registered_name": "function"}
    elif isinstance(loss, dict) and "class_name" in loss:      # a Loss of the user's keeps its registered name
        loss = dict(loss, module="keras.losses", registered_name=loss.get("registered_name"))
    return {"optimizer": optimizer, "loss": loss, "loss_weights": config.get("loss_weights"),
            "metrics": config.get("metrics") or None, "weighted_metrics": None, "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}


# -- checking a config before building it ----------------------------------------------------------

def check_config(config, custom_objects, refuse) -> None:
    """Every class a model config names must be convscope's, in `custom_objects` or registered by the user's code
    (`saving.register_keras_serializable`, a `custom_object_scope`), and no Lambda
    carries code (Keras' `safe_mode`): `refuse(message)` returns the error raised otherwise.
    Nothing named in the file is imported."""
    from ..layers import LAYER_CLASSES
    known = set(LAYER_CLASSES) | set(_MODEL_CLASS_NAMES) | set(custom_objects or {})
    objects = list(_objects(config))
    for value in objects:
        class_name = value.get("class_name")
        if class_name == "__lambda__" or (class_name == "Lambda" and _has_code(value)):
            raise refuse("holds a Lambda layer with serialized Python bytecode; convscope never runs "
                         "code from a file (as Keras' safe_mode=True): rebuild that layer in Python")
    for value in objects:
        if isinstance(value.get("layers"), list):
            for entry in value["layers"]:
                name = entry.get("class_name") if isinstance(entry, dict) else None
                registered = entry.get("registered_name") if isinstance(entry, dict) else None
                if name is not None and not isinstance(name, str):
                    raise refuse(f"names a layer class by {name!r}, not by a string")
                if name is not None and name not in known and not _is_operation(entry) and \
                        lookup(name, registered if isinstance(registered, str) else None, custom_objects) is None:
                    raise refuse(f"holds a layer of class {name!r} (module {entry.get('module')!r}), "
                                 f"which convscope does not define; pass your own class as "
                                 f"custom_objects={{{name!r}: YourClass}} (nothing is imported from "
                                 f"the file)")


def _objects(config):
    """Every JSON object in `config`, outermost first (no recursion)."""
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(reversed(value))
        elif isinstance(value, dict):
            yield value
            stack.extend(reversed(list(value.values())))


def _has_code(entry: Dict[str, Any]) -> bool:
    inner = entry.get("config") or {}
    if not isinstance(inner, dict):
        return False
    function = inner.get("function")
    return (function is not None and not isinstance(function, str)) or inner.get("function_type") == "lambda"


def _is_operation(entry: Dict[str, Any]) -> bool:
    return str(entry.get("module") or "").startswith("keras.src.ops.")
