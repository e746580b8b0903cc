"""`Layer` and `Variable`: the contract every layer keeps.

A layer is built once from its input shape (`build`), maps arrays forward and
gradients backward, per call: `forward(inputs, training)` returns the outputs and a
context (what the backward pass of *this* call needs), `backward(ctx, grad_output)`
returns the gradient w.r.t. that call's inputs and `[(variable, gradient), ...]`.
Nothing of a call stays on the layer, so a layer can be called twice in a graph, and
from several threads.  Shapes always include the batch axis, written `None`.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import backend
from ..variables import Variable
from .._weight_memory import holding
from . import graph, step_losses
from .autodiff import (NOT_GIVEN, call_layer, call_traced, infer_output_shape, recording, resolve_training,
                       training_default)
from .input_spec import check_input_spec
from .spec import LayerSpec

Shape = Tuple[Optional[int], ...]

_FLOAT_DTYPES = ("float32", "float64")

# True inside `deferred_weights()`; a context variable, so other threads and tasks never see it.
_DEFERRED_WEIGHTS: contextvars.ContextVar = contextvars.ContextVar("convscope_deferred_weights",
                                                                   default=False)


# The calls made in this thread (or task) while `noting_calls()` is open: (layer, inputs, outputs) each.
_NOTED_CALLS: contextvars.ContextVar = contextvars.ContextVar("convscope_noted_calls", default=None)


@contextlib.contextmanager
def noting_calls():
    """Note every eager layer call made inside (`layer(x)` on arrays): yields the list of
    (layer, inputs as given, outputs), in call order.  How a subclassed model's `call` is seen (what it
    calls, on what) by analysis and the drawings.  Only this thread (or task) is affected."""
    calls: list = []
    token = _NOTED_CALLS.set(calls)
    try:
        yield calls
    finally:
        _NOTED_CALLS.reset(token)


def noted(layer, inputs, outputs):
    """`outputs`, the call noted first where `noting_calls()` is open."""
    calls = _NOTED_CALLS.get()
    if calls is not None:
        calls.append((layer, inputs, outputs))
    return outputs


@contextlib.contextmanager
def deferred_weights():
    """Build layers without creating their weights' values (what a loader needs).

    Inside this context `Layer.add_weight` does not call the initializer: each new
    variable's value is a read-only placeholder of the right shape and dtype that
    allocates nothing (`np.broadcast_to` of one zero), so a model of any size can
    be built to learn the shapes its config implies.  The caller gives every such
    variable its real array (`variable.value = array`, C-contiguous and writable)
    before the layer is used.  Only this thread (or asyncio task) is affected.
    """
    token = _DEFERRED_WEIGHTS.set(True)
    try:
        yield
    finally:
        _DEFERRED_WEIGHTS.reset(token)


class Layer:
    """Base class of every convscope layer.

    Keyword arguments every layer accepts, as in Keras: `name`, `trainable`,
    `dtype` ("float32" by default, or "float64"), and on the first layer of a
    model `input_shape` (without the batch axis), `batch_input_shape`,
    `batch_size` or `input_dim` (Dense's shorthand for `input_shape=(input_dim,)`).
    """

    # Defaults as `get_config` writes them where that differs from the signature
    # (data_format None -> "channels_last", initializer names -> dicts), for `repr`.
    _CONFIG_DEFAULTS: Dict[str, Any] = {}
    # (forward, backward) of the nearest class that writes them by hand (None: a layer that only writes `call`).
    _hand_written: Optional[Tuple[Any, Any]] = None
    # Layers with an `activity_regularizer` argument set this; whoever runs the layer reads it (step_losses).
    activity_regularizer = None
    # Keras' `input_spec`: a custom layer may set an `InputSpec` (or a list of them); each call checks its input.
    input_spec = None

    def __init__(self, *, name: Optional[str] = None, trainable: bool = True, dtype=None,
                 input_shape=None, batch_input_shape=None, batch_size=None, input_dim=None,
                 activity_regularizer=None, **kwargs):
        cls = type(self).__name__
        if kwargs:
            unknown = ", ".join(sorted(kwargs))
            raise TypeError(f"{cls}: unexpected keyword argument(s): {unknown}")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{cls}: argument `name` must be a non-empty string, got {name!r}")
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"{cls}: argument `trainable` must be True or False, got {trainable!r}")
        self.name = name or backend.unique_name(backend.snake_case(cls))
        self.trainable = bool(trainable)
        self.dtype = _normalize_dtype(dtype, self)
        self.built = False
        self._variables: List[Variable] = []
        self._build_input_shape: Optional[Shape] = None
        self._batch_input_shape = _declared_input_shape(self, input_shape, batch_input_shape,
                                                        batch_size, input_dim)
        self._inbound_nodes: list = []      # one graph.Node per call on symbolic tensors
        if activity_regularizer is not None:        # Keras 3's Layer takes it (custom layers too)
            self.activity_regularizer = resolve_optional("regularizers", activity_regularizer, self._describe(),
                                                         "activity_regularizer")

    # -- what subclasses override -------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """Create the weights for inputs of `input_shape` (batch axis included)."""
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The output shape for `input_shape`; raises ValueError if the layer cannot take it.  A layer
        that only writes `call` gets it from `call` run on placeholders (Keras' symbolic call)."""
        if runs_own_call(self) and self.built:
            return infer_output_shape(self, input_shape)
        return tuple(input_shape)

    def describe(self):
        """What the layer is, for the execution plan: a `spec.LayerSpec` (kind "other" by default)."""
        return LayerSpec()

    @property
    def output_activation(self):
        """The ops Activation this layer applies last (None when it applies none).

        With the ctx's `preactivation` and `backward(ctx, grad, from_preactivation=True)`, a
        loss can fuse with the activation: softmax + crossentropy differentiates as
        (p - y) / N on the logits.
        """
        return None

    def get_config(self) -> Dict[str, Any]:
        """JSON-serializable constructor arguments; `from_config(get_config())` rebuilds the layer."""
        config: Dict[str, Any] = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Layer":
        return cls(**config)

    # -- shared machinery ---------------------------------------------------------------
    TRAINING_DEFAULT = False        # the `training` a built-in layer's call takes when none is passed or inherited

    def __call__(self, inputs, training=NOT_GIVEN) -> np.ndarray:
        """Keras' `layer(x)`: symbolic tensors record a node; arrays are computed.  `training=None`: that of
        the `call` this one runs inside (False outside any).  Inside a traced call (a sublayer's
        `self.dense(x)` while a model trains) the call is one node on the tape."""
        if self.input_spec is not None:
            check_input_spec(self, inputs)
        if graph.is_symbolic(inputs):
            return self._call_symbolic(inputs)
        explicit = training is not NOT_GIVEN
        training = resolve_training(training, training_default(self))     # Keras' rule; None: `call`'s own
        if recording():
            return self._call_on_tape(inputs, bool(training))
        x = self._as_input_array(inputs)
        if not self.built:
            self.build_from_shape((None,) + x.shape[1:])
        else:
            self._check_input_shape(x.shape)
        outputs = call_layer(self, x, training, explicit)
        step_losses.penalize(self, outputs)         # into the step this call runs in (evaluate), if any
        return noted(self, inputs, outputs)

    def add_loss(self, loss) -> None:
        """Keras' `add_loss`: inside `call`, `loss` (summed) is added to the loss of the fit or evaluate step the
        call runs in, and differentiated with it when the step trains; outside a step, nothing
        (`layers/step_losses.py`)."""
        step_losses.add_loss(self, loss)

    # -- one call with what its backward pass needs -------------------------------------
    def forward(self, inputs, training: bool = False):
        """(outputs, ctx): one forward pass and what `backward` needs from it (None under
        `backend.no_backward()` for a layer that would keep arrays; a layer that needs only a shape
        may still return it).  Built-in layers compute both by hand; a layer that only
        writes `call` (a custom layer) is run on a tape and differentiated automatically."""
        from .autodiff import forward_on_tape
        return forward_on_tape(self, inputs, training)

    def backward(self, ctx, grad_output, need_input_grad: bool = True):
        """(gradient w.r.t. the inputs of the call that made `ctx` — None when not
        `need_input_grad` —, [(variable, gradient), ...] for the trainable variables; none when the
        layer is frozen, `trainable=False`)."""
        from .autodiff import backward_on_tape
        return backward_on_tape(self, ctx, grad_output, need_input_grad)

    def call(self, inputs, training: bool = False):
        """Keras' forward pass: the outputs only, nothing kept for a backward pass (one node, when a tape
        records).  A built-in layer's pass, also for a subclass's `super().call(x)`."""
        pair = type(self)._hand_written
        if pair is None:
            raise NotImplementedError(f"{type(self).__name__}.call: a layer must define `call` "
                                      "(or `forward` and `backward`)")
        if recording():        # the runner of this layer's call takes its activity penalty, not this inner pass
            return call_traced(self, inputs, training, forward=pair[0], backward=pair[1], penalize=False)
        with backend.no_backward():
            return pair[0](self, inputs, training=training)[0]

    def _call_on_tape(self, inputs, training: bool):
        """A call while a tape records (a sublayer inside a traced `call`): built for the values' shapes,
        then one node on the tape (`autodiff.call_traced`)."""
        if not self.built:
            def unbatched(value):
                return (None,) + tuple(np.shape(getattr(value, "value", value))[1:])
            several = isinstance(inputs, (list, tuple))
            self.build_from_shape([unbatched(v) for v in inputs] if several else unbatched(inputs))
        return call_traced(self, inputs, training)

    def __init_subclass__(cls, **kwargs):
        """Keras' way of changing a built-in layer is a subclass that writes `call` (and calls `super().call`):
        such a class runs its `call` on the tape (`forward`, `backward`), is described as any custom layer
        (the plan fuses nothing of it) and names no output activation; `super().call` still reaches the
        built-in pass, kept as `_hand_written`."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "forward" in own:
            cls._hand_written = (own["forward"], own.get("backward", cls.backward))
        elif "call" in own and cls._hand_written is not None and cls.forward is not Layer.forward:
            cls.forward, cls.backward = Layer.forward, Layer.backward
            cls.describe = Layer.describe
            cls.output_activation = Layer.output_activation

    def _call_symbolic(self, inputs):
        """A call on KerasTensors: build for their shapes, check them, record a graph.Node and return
        the output KerasTensor(s) (Keras' functional API)."""
        if any(not isinstance(leaf, graph.KerasTensor) for leaf in graph.flatten(inputs)):
            given = [type(leaf).__name__ for leaf in graph.flatten(inputs)]
            raise TypeError(f"{self._describe()}: inputs mix symbolic tensors (keras.Input and layer outputs) "
                            f"with other values {given}; in a functional model every input of a layer must "
                            "be a symbolic tensor")
        shapes = _shapes_of(inputs)
        try:
            output_shape = self.build_from_shape(shapes) if not self.built else self.compute_output_shape(shapes)
        except ValueError as error:
            message = str(error)
            if not message.startswith(self._describe()):
                message = f"{self._describe()}: cannot take inputs of shape {_shape_text(shapes)}: {message}"
            raise ValueError(message) from None
        if self.built and not isinstance(shapes, list):
            self._check_input_shape(shapes)
        multiple = isinstance(output_shape, list)
        dtype = self.dtype
        outputs = [graph.KerasTensor(s, dtype) for s in (output_shape if multiple else [output_shape])]
        graph.Node(self, [inputs], outputs)
        return outputs if multiple else outputs[0]

    @property
    def input(self):
        """The input KerasTensor(s) of the layer's first call on symbolic tensors (Keras' `layer.input`)."""
        return self._node_tensors("input_tensors", "input")

    @property
    def output(self):
        """The output KerasTensor(s) of the layer's first symbolic call (`keras.Model(m.input, layer.output)`)."""
        return self._node_tensors("outputs", "output")

    def _node_tensors(self, attribute: str, what: str):
        if not self._inbound_nodes:
            raise AttributeError(f"{self._describe()} has never been called on a symbolic tensor, so it has no "
                                 f"defined {what}; call it on keras.Input(...) or a layer's output first")
        tensors = getattr(self._inbound_nodes[0], attribute)
        return tensors[0] if len(tensors) == 1 else list(tensors)

    def build_from_shape(self, input_shape: Shape) -> Shape:
        """Check `input_shape`, create the weights and return the output shape."""
        input_shape = [tuple(s) for s in input_shape] if isinstance(input_shape, list) else tuple(input_shape)
        if runs_own_call(self) and type(self).compute_output_shape is Layer.compute_output_shape:
            if not self.built:              # the shape comes from running `call`, which needs the weights
                self.build(input_shape)
                self.built = True
            output_shape = self.compute_output_shape(input_shape)
        else:
            output_shape = self.compute_output_shape(input_shape)
        if not self.built:
            self.build(input_shape)
            self.built = True
        self._build_input_shape = input_shape
        return output_shape

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable: bool = True, autocast=True,
                   regularizer=None, constraint=None, aggregation="none", overwrite_with_gradient=False,
                   name=None) -> Variable:
        """Create a variable with `initializer(shape, dtype)` and register it on the layer (Keras 3's
        signature; Keras 2's name-first call `add_weight("kernel", shape, ...)` works too).

        The initializer may be a name, a dict or a callable, None meaning "glorot_uniform"
        (Keras' default for float weights); the regularizer and constraint may be names.
        Inside `deferred_weights()` the initializer is not called: the value is a placeholder.
        """
        where = f"{self._describe()}.add_weight"
        if isinstance(shape, str):                  # Keras 2 order: add_weight(name, shape, ...)
            name, shape, initializer = shape, initializer, dtype
            dtype = None
        if dtype is not None and _normalize_dtype(dtype, self) != self.dtype:
            raise ValueError(f"{where}: argument `dtype` must be the layer's dtype {self.dtype!r}, got {dtype!r}")
        name = name or "variable"
        shape = _weight_shape(shape, where)
        if initializer is None or isinstance(initializer, (str, dict)):
            initializer = importlib.import_module("convscope.initializers").get(
                initializer or "glorot_uniform", where, "initializer")
        if isinstance(regularizer, (str, dict)):
            regularizer = resolve_optional("regularizers", regularizer, where, "regularizer")
        if isinstance(constraint, (str, dict)):
            constraint = resolve_optional("constraints", constraint, where, "constraint")
        if _DEFERRED_WEIGHTS.get():
            value = np.broadcast_to(np.zeros((), dtype=self.dtype), tuple(int(d) for d in shape))
        else:
            value = holding(np.asarray(initializer(tuple(shape), dtype=self.dtype), dtype=self.dtype))
        variable = Variable(value, f"{self.name}/{name}", trainable, regularizer, constraint)
        self._variables.append(variable)
        return variable

    @property
    def trainable(self) -> bool:
        """Whether training changes the layer's weights; set on a layer holding layers, it sets theirs (Keras)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = bool(value)
        for layer in self._children():
            layer.trainable = value

    def _children(self) -> List["Layer"]:
        """The layers this one holds, whose `trainable` follows its own (Keras 3): a custom layer's held layers."""
        return held_layers(self)

    @property
    def weights(self) -> List[Variable]:
        """Trainable then non-trainable variables, the order `get_weights` uses (as Keras); a custom layer's
        own, then each of its sublayers' in turn (Keras 3's order)."""
        own = [v for v in self._variables if v.trainable] + [v for v in self._variables if not v.trainable]
        sublayers = held_layers(self)
        return unique_variables(own + [v for layer in sublayers for v in layer.weights]) if sublayers else own

    @property
    def trainable_weights(self) -> List[Variable]:
        if not self.trainable:
            return []
        sublayers = held_layers(self)
        if not sublayers:
            return self._own_trainable()
        trainable = {id(v) for v in self._own_trainable()}
        trainable.update(id(v) for layer in sublayers for v in layer.trainable_weights)
        return [v for v in self.weights if id(v) in trainable]

    @property
    def non_trainable_weights(self) -> List[Variable]:
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    def _own_trainable(self) -> List[Variable]:
        return [v for v in self._variables if v.trainable] if self.trainable else []

    @property
    def variables(self) -> List[Variable]:
        """Keras 3's name for the layer's whole state: `weights`."""
        return self.weights

    @property
    def trainable_variables(self) -> List[Variable]:
        """Keras 3's name for `trainable_weights`."""
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> List[Variable]:
        """Keras 3's name for `non_trainable_weights`."""
        return self.non_trainable_weights

    @property
    def input_shape(self) -> Shape:
        if self._build_input_shape is None:
            raise AttributeError(f"{self._describe()} has not been built yet, so it has no input shape")
        return self._build_input_shape

    @property
    def output_shape(self) -> Shape:
        return self.compute_output_shape(self.input_shape)

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the weight arrays, in Keras' order."""
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights: Sequence) -> None:
        """Replace every weight; the count and each shape must match `get_weights()`."""
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f"{self._describe()}: set_weights expected a list of {len(own)} arrays "
                             f"(shapes {[v.shape for v in own]}), got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        for variable, array in zip(own, arrays):
            if array.shape != variable.shape:
                raise ValueError(f"{self._describe()}: set_weights got shape {array.shape} for "
                                 f"'{variable.name}', expected {variable.shape}")
        for variable, array in zip(own, arrays):
            variable.assign(array)

    def count_params(self) -> int:
        """Number of scalars in all weights (trainable or not)."""
        if not self.built:
            raise ValueError(f"{self._describe()}: count_params() needs the layer to be built; "
                             "give it an input shape or call it on data first")
        return int(sum(v.value.size for v in self.weights))

    # -- helpers for subclasses -----------------------------------------------------------
    def _describe(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _as_input_array(self, inputs) -> np.ndarray:
        x = np.asarray(inputs)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{self._describe()}: expected a numeric array, got dtype {x.dtype}")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        if x.ndim == 0:
            raise ValueError(f"{self._describe()}: expected an array with a batch axis, got a scalar")
        return x

    def _check_input_shape(self, shape: Sequence[int]) -> None:
        """An eager call's input against the shape the layer was built for: the same rank, and other sizes only
        where the layer takes them (`compute_output_shape` does not refuse them: a convolution built on 5x5
        images takes 9x9 ones with the same channels, as in Keras)."""
        expected = self._build_input_shape
        if expected is None or type(self)._hand_written is None:    # a custom layer's call takes what it takes
            return
        if len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected[1:], shape[1:])):
            return
        problem = "another rank"
        if len(shape) == len(expected):
            try:
                self.compute_output_shape((None,) + tuple(shape[1:]))
                return
            except ValueError as error:
                problem = str(error)
        raise ValueError(f"{self._describe()}: expected input of shape {expected}, got {tuple(shape)} ({problem})")

    def _non_default_args(self) -> Dict[str, Any]:
        """Constructor arguments that differ from the defaults, for `repr`."""
        config = self.get_config()
        signature = inspect.signature(type(self).__init__)
        shown = {}
        for key, value in config.items():
            if key in ("name", "trainable", "dtype", "batch_input_shape"):
                continue
            param = signature.parameters.get(key)
            default = param.default if param is not None else inspect.Parameter.empty
            default = self._CONFIG_DEFAULTS.get(key, default)
            if default is inspect.Parameter.empty or _normalize_for_compare(default) != _normalize_for_compare(value):
                shown[key] = value
        return shown

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._non_default_args().items())
        sep = ", " if args else ""
        return f"{type(self).__name__}({args}{sep}name={self.name!r})"


def unique_variables(variables) -> List[Variable]:
    """`variables` with each one once, where it first comes (a layer held twice, a weight shared)."""
    seen: set = set()
    return [v for v in variables if not (id(v) in seen or seen.add(id(v)))]


def held_layers(layer: Layer) -> List[Layer]:
    """The layers a custom layer holds as attributes (alone, or in lists, tuples and dicts, nested), in the order
    they were set: Keras tracks their weights as the layer's.  Built-in layers keep their own weights."""
    if not runs_own_call(layer):
        return []
    found, seen = [], {id(layer)}

    def visit(value, depth: int) -> None:
        if isinstance(value, Layer):
            if id(value) not in seen:
                seen.add(id(value))
                found.append(value)
        elif depth < 8 and isinstance(value, (list, tuple, dict)):
            for item in (value.values() if isinstance(value, dict) else value):
                visit(item, depth + 1)
    for value in vars(layer).values():
        visit(value, 0)
    return found


def runs_own_call(layer: Layer) -> bool:
    """Whether `layer` computes with its own `call` (a custom layer), differentiated on the tape."""
    return type(layer).forward is Layer.forward


def _weight_shape(shape, where: str) -> Tuple[int, ...]:
    """A weight's shape: a tuple of non-negative ints (an int for one axis, () for a scalar)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: argument `shape` must be a tuple of ints, got {shape!r}") from None
    if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0 for d in dims):
        raise ValueError(f"{where}: argument `shape` must be a tuple of non-negative ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def _shapes_of(inputs):
    """The shape of a KerasTensor, or a list of shapes for a list of them (merge layers)."""
    if isinstance(inputs, (list, tuple)):
        return [_shapes_of(item) for item in inputs]
    return tuple(inputs.shape)


def _shape_text(shapes) -> str:
    return ", ".join(str(s) for s in shapes) if isinstance(shapes, list) else str(shapes)


def _normalize_for_compare(value):
    if isinstance(value, (list, tuple)):
        return tuple(_normalize_for_compare(v) for v in value)
    return value


def _normalize_dtype(dtype, layer: Layer) -> str:
    if dtype is None:
        return backend.floatx()
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in _FLOAT_DTYPES:
        raise ValueError(f"{type(layer).__name__}: argument `dtype` must be one of {_FLOAT_DTYPES}, "
                         f"got {dtype!r}")
    return name


def _declared_input_shape(layer: Layer, input_shape, batch_input_shape, batch_size,
                          input_dim) -> Optional[Shape]:
    """The full input shape declared on a layer (batch axis first), or None."""
    cls = type(layer).__name__
    given = [n for n, v in (("input_shape", input_shape), ("batch_input_shape", batch_input_shape),
                            ("input_dim", input_dim)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"{cls}: give only one of input_shape, batch_input_shape, input_dim; got {given}")
    if input_dim is not None:
        input_shape = (input_dim,)
    if input_shape is not None:
        dims = _shape_tuple(input_shape, "input_shape", cls)
        return (batch_size,) + dims
    if batch_input_shape is not None:
        dims = _shape_tuple(batch_input_shape, "batch_input_shape", cls)
        return dims
    return None


def _shape_tuple(shape, arg: str, cls: str) -> Shape:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{cls}: argument `{arg}` must be a tuple of positive ints, got {shape!r}") from None
    out = []
    for d in dims:
        if d is None:
            out.append(None)
            continue
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{cls}: argument `{arg}` must be a tuple of positive ints, got {shape!r}")
        if d <= 0:
            raise ValueError(f"{cls}: argument `{arg}` must be a tuple of positive ints, got {shape!r}")
        out.append(int(d))
    return tuple(out)


_DATA_FORMATS = ("channels_last", "channels_first")


def normalize_data_format(value, where: str) -> str:
    """Keras' data_format: None means `backend.image_data_format()` (read now, when the layer is
    created); anything else must be one of the two names, in any case."""
    return backend.standardize_data_format(value, where)


def normalize_padding(value, where: str) -> str:
    """"valid" or "same", case-insensitive, as Keras' conv and pooling layers take."""
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise ValueError(f"{where}: argument `padding` must be 'valid' or 'same', got {value!r}")
    return value.lower()


def check_bool(value, arg: str, where: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: argument `{arg}` must be True or False, got {value!r}")
    return bool(value)


def check_positive_int(value, arg: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: argument `{arg}` must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{where}: argument `{arg}` must be a positive int, got {value!r}")
    return int(value)


def check_float(value, arg: str, where: str, low=None, high=None, low_open=False,
                high_open=False) -> float:
    """A finite float within [low, high] (ends excluded where *_open), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: argument `{arg}` must be a number, got {value!r}")
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not np.isfinite(value) or below or above:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{where}: argument `{arg}` must be a finite number in {span}, got {value!r}")
    return value


def resolve_optional(kind: str, identifier, where: str, arg: str):
    """A regularizer or constraint through `convscope.<kind>.get` (None stays None).

    Errors name the layer and the argument.
    """
    if identifier is None:
        return None
    module = importlib.import_module(f"convscope.{kind}")
    try:
        return module.get(identifier)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{where}: argument `{arg}`: {error}") from None


def serialize_optional(kind: str, value):
    """The JSON form of an initializer/regularizer/constraint for `get_config` (None stays None)."""
    if value is None:
        return None
    return importlib.import_module(f"convscope.{kind}").serialize(value)


def check_kept_for_backward(layer: Layer, kept) -> None:
    """A backward pass needs a forward pass that kept its context (not one under `no_backward()`)."""
    if kept is None:
        raise RuntimeError(f"{layer._describe()}: backward() needs the context of a forward pass that kept "
                           "its inputs; this one ran under predict/evaluate (backend.no_backward())")
