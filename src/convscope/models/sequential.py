"""`Sequential`: a stack of layers with Keras' structure API (shapes, weights, summary, config).

Training (compile/fit/evaluate) comes from `Model` in `models/training.py`.
Shapes are inferred as layers are added, so a layer that cannot take its input
fails at `add`, naming the layer, its position, the input shape and why.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .. import backend
from ..callbacks import CallbackList, check_callbacks
from .. import layers as layers_module
from ..layers import InputLayer, Layer, step_losses
from ..layers.autodiff import NOT_GIVEN, call_context, call_training, recording, resolve_training, training_default
from .._custom_objects import custom_object_scope, get_registered_name, lookup
from ..layers.base import Shape, Variable, check_kept_for_backward, noted, runs_own_call
from ..layers.graph import KerasTensor, is_symbolic
from .plan import INFERENCE, stage_input
from .summary import print_summary
from .training import Model, check_predict_arguments

_BUILD_LOCK = threading.RLock()     # a model's first call, from several threads at once, builds it once




class Sequential(Model):
    """A linear stack of layers, as `keras.Sequential(layers=None, name=None)`.

    The input shape comes from an `Input(shape=...)` first, or from `input_shape=`
    (`batch_input_shape=`, `input_dim=`) on the first layer; without either the
    model is built by `build(input_shape)` or on its first call.
    """

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None):
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"Sequential: argument `name` must be a non-empty string, got {name!r}")
        super().__init__(name=name)
        self._layers: List[Layer] = []
        self._input_layer: Optional[InputLayer] = None
        self._output_shapes: List[Shape] = []
        if layers is not None:
            if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
                raise TypeError(f"Sequential '{self.name}': argument `layers` must be a list of layers, "
                                f"got {layers!r}")
            for layer in layers:
                self.add(layer)

    # -- structure --------------------------------------------------------------------
    def _describe(self) -> str:
        return f"Sequential '{self.name}'"

    @property
    def layers(self) -> List[Layer]:
        """The layers in order (the InputLayer is not one of them, as in Keras)."""
        return list(self._layers)

    @property
    def built(self) -> bool:
        return self._input_layer is not None and len(self._output_shapes) == len(self._layers)

    @built.setter
    def built(self, value) -> None:
        """Layer.__init__ sets `built`; a Sequential is built when its layers are (the getter)."""

    def add(self, layer: Layer) -> None:
        """Append `layer`; with a known input shape it is built and its output shape checked at once."""
        if isinstance(layer, KerasTensor) and isinstance(layer.keras_history[0], InputLayer):
            layer = layer.keras_history[0]          # Keras 3: Sequential([keras.Input(shape), ...])
        if not isinstance(layer, Layer):
            raise TypeError(f"{self._describe()}.add: argument `layer` must be a convscope Layer instance, "
                            f"got {layer!r}")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"{self._describe()}.add: an InputLayer ('{layer.name}') can only come first; "
                                 f"the model already has "
                                 f"{'an input' if self._input_layer is not None else 'layers'}")
            self._input_layer = layer
            return
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"{self._describe()}.add: layer '{layer.name}' is already in the model")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"{self._describe()}.add: all layers must have unique names; "
                             f"'{layer.name}' is already used")
        first_shape = _known_input_shape(layer) if self._input_layer is None and not self._layers else None
        if first_shape is not None:
            self._input_layer = InputLayer(batch_shape=first_shape, name=f"{layer.name}_input", dtype=layer.dtype)
        if self.built:
            self._output_shapes.append(self._infer(layer, len(self._layers), self._current_output_shape()))
        self._layers.append(layer)
        if self.built:
            self._symbolic_outputs()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError(f"{self._describe()}.pop: the model has no layers to remove")
        layer = self._layers.pop()
        if len(self._output_shapes) > len(self._layers):
            self._output_shapes.pop()
        return layer

    def _symbolic_outputs(self) -> List[KerasTensor]:
        """Each layer's output KerasTensor in this model (nodes recorded once per layer list), so that
        `model.input`, `layer.output` and `keras.Model(model.input, layer.output)` work as in Keras."""
        key = tuple(id(layer) for layer in self._layers)
        cached = self.__dict__.get("_graph")
        if cached is not None and cached[0] == key:
            return cached[1]
        outputs, x = [], self._input_layer.output
        for layer in self._layers:
            x = layer._call_symbolic(x)
            outputs.append(x)
        self._graph = (key, outputs)
        return outputs

    @property
    def input(self) -> KerasTensor:
        """The model's input KerasTensor (its InputLayer's), as Keras' `model.input`."""
        if not self.built:
            raise AttributeError(f"{self._describe()} has no input yet: it has not been built")
        return self._input_layer.output

    @property
    def output(self) -> KerasTensor:
        """The last layer's output KerasTensor in this model, as Keras' `model.output`."""
        if not self.built or not self._layers:
            raise AttributeError(f"{self._describe()} has no output yet: it has no layers or is not built")
        return self._symbolic_outputs()[-1]

    @property
    def inputs(self) -> List[KerasTensor]:
        return [self.input]

    @property
    def outputs(self) -> List[KerasTensor]:
        return [self.output]

    def _current_output_shape(self) -> Shape:
        return self._output_shapes[-1] if self._output_shapes else self._input_layer.shape

    def _infer(self, layer: Layer, position: int, input_shape: Shape) -> Shape:
        """Build `layer` for `input_shape` and return its output shape, or explain why it cannot."""
        try:
            return tuple(layer.build_from_shape(input_shape))
        except ValueError as error:
            raise ValueError(f"{self._describe()}: layer {position} '{layer.name}' ({type(layer).__name__}) "
                             f"cannot take the input shape {tuple(input_shape)}: {error}") from None

    def build(self, input_shape=None) -> None:
        """Build every layer for inputs of `input_shape` (batch axis included, e.g. (None, 28, 28, 1))."""
        if input_shape is not None:
            try:
                shape = tuple(None if d is None else d for d in input_shape)
            except TypeError:
                raise TypeError(f"{self._describe()}.build: argument `input_shape` must be a tuple such as "
                                f"(None, 28, 28, 1), got {input_shape!r}") from None
            if self._input_layer is None:
                self._input_layer = InputLayer(batch_shape=shape, name=f"{self.name}_input",
                                               dtype=self._layers[0].dtype if self._layers else None)
            elif len(shape) != len(self._input_layer.shape) or any(
                    a is not None and b is not None and a != b for a, b in zip(shape[1:], self._input_layer.shape[1:])):
                raise ValueError(f"{self._describe()}.build: argument `input_shape` {shape} does not match the "
                                 f"model's input shape {self._input_layer.shape}")
        if self._input_layer is None:
            raise ValueError(f"{self._describe()}.build: the model has no input shape; pass `input_shape`, "
                             "e.g. build((None, 28, 28, 1))")
        shapes: List[Shape] = []
        current = self._input_layer.shape
        for position, layer in enumerate(self._layers):
            current = self._infer(layer, position, current)
            shapes.append(current)
        self._output_shapes = shapes
        if self._layers:
            self._symbolic_outputs()

    @property
    def input_shape(self) -> Shape:
        if self._input_layer is None:
            raise AttributeError(f"{self._describe()} has no input shape yet: it has not been built")
        return self._input_layer.shape

    @property
    def output_shape(self) -> Shape:
        if not self.built:
            raise AttributeError(f"{self._describe()} has no output shape yet: it has not been built")
        return self._current_output_shape()

    # -- weights ----------------------------------------------------------------------
    @property
    def weights(self) -> List[Variable]:
        """Each layer's weights in layer order, a variable two layers hold once (Keras' `get_weights` order)."""
        return self._unique_weights("weights")

    @property
    def trainable_weights(self) -> List[Variable]:
        if not self.trainable:
            return []
        return self._unique_weights("trainable_weights")

    @property
    def non_trainable_weights(self) -> List[Variable]:
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self._describe()}.count_params: the model has not been built yet; give it an "
                             "input shape or call it on data first")
        return sum(layer.count_params() for layer in self._layers)

    def get_weights(self) -> List[np.ndarray]:
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights: Sequence) -> None:
        """Replace every weight; the number of arrays and each shape must match `get_weights()`."""
        own = self.weights
        try:
            arrays = [np.asarray(w) for w in weights]
        except TypeError:
            raise TypeError(f"{self._describe()}.set_weights: argument `weights` must be a list of arrays, "
                            f"got {weights!r}") from None
        if len(arrays) != len(own):
            raise ValueError(f"{self._describe()}.set_weights: expected a list of {len(own)} arrays "
                             f"(shapes {[v.shape for v in own]}), got {len(arrays)}")
        for i, (variable, array) in enumerate(zip(own, arrays)):
            if array.shape != variable.shape:
                raise ValueError(f"{self._describe()}.set_weights: array {i} is for '{variable.name}' of shape "
                                 f"{variable.shape}, got shape {array.shape}")
        for variable, array in zip(own, arrays):
            variable.assign(array)

    # -- computation ------------------------------------------------------------------
    def _check_input(self, x, where: str) -> np.ndarray:
        if not self._layers:        # Keras 3 refuses too ("cannot be built because it has no layers")
            raise ValueError(f"{self._describe()}.{where}: the model has no layers, so it cannot be built or "
                             "run; add layers with `model.add(layer)` first")
        array = np.asarray(x)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{self._describe()}.{where}: expected a numeric array, got dtype {array.dtype}")
        if self._input_layer is None:       # built from this input: an input of the first layer's dtype (Keras')
            dtype = np.dtype(self._layers[0].dtype or backend.floatx())
            return array if array.dtype == dtype else array.astype(dtype)
        expected = self._input_layer.shape
        if array.ndim != len(expected) or (array.shape[1:] != expected[1:] and any(
                e is not None and e != s for e, s in zip(expected[1:], array.shape[1:]))):
            raise ValueError(f"{self._describe()}.{where}: expected input of shape {expected} "
                             f"(batch first), got {array.shape}")
        if array.dtype != np.dtype(self._input_layer.dtype):       # Keras casts at the input, as graph models
            array = array.astype(self._input_layer.dtype)
        return array

    def _forward(self, x, training: bool = False) -> np.ndarray:
        """The model's output for `x`, keeping nothing: in inference the plan's fused stages
        (models/plan.py), in training mode each layer in turn."""
        x = self._check_input(x, "call")
        self._build_for(x)
        return self._forward_checked(x, training)

    def _forward_checked(self, x: np.ndarray, training: bool) -> np.ndarray:
        """`_forward` of an input already checked, the model built."""
        if training:
            for layer in self._layers:
                x = layer.call(x, training=True)
                step_losses.penalize(layer, x)
            return x
        with backend.no_backward():
            for stage in self._layers_plan(INFERENCE):
                x, _ = stage.forward(stage_input(stage, x))
                step_losses.penalize(stage.layers[-1], x)
        return x

    def _build_for(self, x: np.ndarray) -> None:
        if not self.built:
            with _BUILD_LOCK:           # else two threads' first predicts could both create the weights
                if not self.built:
                    self.build((None,) + x.shape[1:])

    TRAINING_DEFAULT = None         # Keras' `call(inputs, training=None)`: its layers take their own defaults

    def __call__(self, x, training=NOT_GIVEN) -> np.ndarray:
        if is_symbolic(x):
            return self._call_symbolic(x)
        if runs_own_call(self):         # a subclass that writes `call`: that call, as any custom layer's
            return Layer.__call__(self, x, training)
        if not recording() and resolve_training(training, None) is None and any(
                training_default(layer) is not False for layer in self._layers):
            return noted(self, x, self._forward_own_defaults(x))
        training = call_training(training)
        if recording():                 # a model inside a custom layer's traced call: one node on the tape
            return self._call_on_tape(x, training)
        return noted(self, x, self._forward(x, training=training))

    def _forward_own_defaults(self, x) -> np.ndarray:
        """`model(x)` with no `training` from anywhere, as Keras: each layer takes its own default (augmentation
        layers augment, dropouts and batch norms infer): the layers called in turn, nothing kept."""
        x = self._check_input(x, "call")
        self._build_for(x)
        with backend.no_backward(), call_context(None):
            for layer in self._layers:
                x = layer(x)
        return x

    def call(self, inputs, training: bool = False):
        return self._forward(inputs, training=bool(training))

    # -- as a layer of another model (per call: nothing kept on the layers) ----------------
    def compute_output_shape(self, input_shape) -> Shape:
        """The output shape for inputs of `input_shape`; builds the model first if needed (a subclass that
        writes `call`: that call's, `Model.compute_output_shape`)."""
        if runs_own_call(self):
            return super().compute_output_shape(input_shape)
        if not self.built:
            self.build(tuple(input_shape))
        else:
            self._check_input(np.zeros([1 if d is None else d for d in input_shape], self.dtype), "call")
        return self.output_shape

    def forward(self, inputs, training: bool = False):
        """(output, (stages, one context per stage, the outputs penalized by an activity regularizer)): one call,
        e.g. as a layer of a graph model."""
        x = self._check_input(inputs, "call")
        self._build_for(x)
        if not backend.keeps_for_backward():
            return self._forward(x, training=training), None
        x, stages, contexts, penalized = self._run(x, training)
        return x, (stages, contexts, penalized)

    def backward(self, ctx, grad_output, need_input_grad: bool = True):
        """(gradient w.r.t. the input, [(variable, gradient)]) for the call that made `ctx`."""
        check_kept_for_backward(self, ctx)
        return self._backward_stages(*ctx, grad_output, need_input_grad)

    def predict(self, x, batch_size: Optional[int] = 32, verbose="auto", steps=None, callbacks=None) -> np.ndarray:
        """Outputs for `x` in inference mode, `batch_size` samples at a time (at most `steps` batches).

        Callbacks get Keras' `on_predict_*` hooks; `verbose` 1, 2 or "auto" prints one line at the end.
        A subclass that writes `call` predicts with it (`Model.predict`).
        """
        if runs_own_call(self):
            return super().predict(x, batch_size, verbose, steps, callbacks)
        lazy = self._predict_lazily(x, batch_size, verbose, steps, callbacks)   # a dask array
        if lazy is not None:
            return lazy
        where = f"{self._describe()}.predict"
        batch_size = check_predict_arguments(batch_size, verbose, steps, where)
        callbacks = check_callbacks(callbacks, where)
        x = self._check_input(x, "predict")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"{where}: expected at least one sample, got shape {x.shape}")
        start_time = time.perf_counter()
        self._build_for(x)
        if callbacks or x.shape[0] > batch_size:
            outputs = self._predict_batches(x, batch_size, steps, CallbackList(callbacks, model=self))
        else:       # one batch and no hooks to call: the pass alone (a sizeable share of batch 1's latency)
            outputs = [self._forward_checked(x, training=False)]
        if verbose != 0:
            elapsed = time.perf_counter() - start_time
            print(f"{len(outputs)}/{len(outputs)} - {elapsed:.0f}s {1000 * elapsed / len(outputs):.0f}ms/step")
        if len(outputs) == 1 and not np.may_share_memory(outputs[0], x):
            return outputs[0]        # one batch: its fresh output, not a copy (seed 004's is 359 MB: copying
                                     # it is costly; measurements: benchmarks/README.md, 'Measurements
                                     # behind the code's choices')
        return np.concatenate(outputs, axis=0)

    def _predict_batches(self, x: np.ndarray, batch_size: int, steps, callback_list: CallbackList) -> list:
        """`predict`'s outputs of each batch of `x` (at most `steps`), with the callbacks' hooks."""
        callback_list.on_predict_begin()
        outputs = []
        for batch, start in enumerate(list(range(0, x.shape[0], batch_size))[:steps]):
            callback_list.on_predict_batch_begin(batch)
            outputs.append(self._forward_checked(x[start:start + batch_size], training=False))
            callback_list.on_predict_batch_end(batch, {"outputs": outputs[-1]})
        callback_list.on_predict_end()
        return outputs

    # -- config -----------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, show_trainable=False,
                show_kernels=False, show_flops=False, show_receptive_field=False, show_memory=False) -> None:
        """Print tf.keras 2's summary table (seed 001); `show_*` add columns from `models.analysis`."""
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      show_trainable=show_trainable, show_kernels=show_kernels, show_flops=show_flops,
                      show_receptive_field=show_receptive_field, show_memory=show_memory)

    def get_config(self) -> Dict[str, Any]:
        """{"name": ..., "trainable": ..., "dtype": ..., "layers": [InputLayer, then each layer's dict]}, as Keras
        writes it (`from_config` leaves the model trainable, as Keras' does: each layer's config keeps its own).

        The input shape lives in the InputLayer only (Keras 3 rejects `batch_input_shape` on layers).
        """
        layer_configs = [layers_module.serialize(layer) for layer in self._layers]
        if self._input_layer is not None:
            if layer_configs:
                layer_configs[0]["config"].pop("batch_input_shape", None)
            layer_configs.insert(0, layers_module.serialize(self._input_layer))
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype, "layers": layer_configs}

    @classmethod
    def from_config(cls, config, custom_objects=None) -> "Sequential":
        """Rebuild from `get_config()`, from Keras 2/3's Sequential config, or from a list of layer dicts."""
        if isinstance(config, dict) and config.get("class_name") == "Sequential" and "config" in config:
            config = config["config"]
        if isinstance(config, list):
            config = {"layers": config}
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise TypeError(f"Sequential.from_config: argument `config` must be a dict with a 'layers' list, "
                            f"got {config!r}")
        from .functional_config import deserialize_layer     # a nested Sequential or Functional model too
        model = cls(name=config.get("name"))
        for layer_config in config["layers"]:
            model.add(deserialize_layer(layer_config, custom_objects))
        first = config["layers"][0] if config["layers"] else {}
        build_shape = (first.get("build_config") or {}).get("input_shape") if isinstance(first, dict) else None
        if model._input_layer is None and build_shape is not None:  # Keras 3 without an InputLayer
            model.build(tuple(build_shape))
        return model

    def to_json(self, **kwargs) -> str:
        """The model's structure as JSON (Keras' `to_json`); `kwargs` go to `json.dumps`."""
        # a subclass keeps its own class name: rebuilt as a plain Sequential it would lose its `call` (refused
        # by name without custom_objects instead, as Keras)
        cls = type(self)
        registered = None if cls is Sequential else get_registered_name(cls)
        return json.dumps({"module": "keras", "class_name": cls.__name__, "config": self.get_config(),
                           "registered_name": registered}, **kwargs)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r}, {len(self._layers)} layers>"


def model_from_config(config, custom_objects=None):
    """Keras' `models.model_from_config`: a Sequential or a Functional model from its config dict."""
    class_name = config.get("class_name") if isinstance(config, dict) else None
    if class_name in ("Functional", "Model"):
        from .functional import Functional
        return Functional.from_config(config.get("config"), custom_objects)
    if class_name not in (None, "Sequential"):
        registered = config.get("registered_name")
        own = lookup(class_name, registered if isinstance(registered, str) else None, custom_objects)
        if isinstance(own, type) and issubclass(own, Sequential):   # a subclass the user's code provides
            with custom_object_scope(custom_objects):     # its own from_config may take the config only (Keras')
                return own.from_config(config.get("config", config))
        raise ValueError(f"model_from_config: expected a Sequential or Functional model config, got "
                         f"class_name={class_name!r} (a subclass of yours: pass it as custom_objects or register it)")
    return Sequential.from_config(config, custom_objects)


def model_from_json(json_string: str, custom_objects=None):
    """Keras' `models.model_from_json`: a Sequential or Functional model from `to_json()` (convscope's or Keras')."""
    if not isinstance(json_string, (str, bytes)):
        raise TypeError(f"model_from_json: argument `json_string` must be a str, got {type(json_string).__name__}")
    try:
        config = json.loads(json_string)
    except json.JSONDecodeError as error:
        raise ValueError(f"model_from_json: argument `json_string` is not valid JSON: {error}") from None
    return model_from_config(config, custom_objects)


def _known_input_shape(layer: Layer) -> Optional[Shape]:
    """The batch input shape a first layer brings: its `input_shape=` argument, or, for a model used as
    a layer (a data-augmentation Sequential), its own input shape once known — as Keras 3 builds then."""
    if layer._batch_input_shape is not None:
        return layer._batch_input_shape
    if isinstance(layer, Model):
        try:
            return tuple(layer.input_shape)
        except (AttributeError, ValueError):
            return None
    return None
