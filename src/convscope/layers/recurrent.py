"""Keras' recurrent layers: `SimpleRNN`, `LSTM`, `GRU` (and their cells), and `RNN` over any cell.

A cell maps one time step's input (batch, features) and its states to an output and new states, with Keras 3's
weights and gate order: LSTM's kernel (in, 4·units), recurrent kernel (units, 4·units) and bias (4·units) in the
order i, f, c, o; GRU's z, r, h, its bias (2, 3·units) with `reset_after` (Keras' default, the reset gate applied
after the recurrent product); SimpleRNN's one gate.  The layer runs the cell over the time axis (reversed with
`go_backwards`) from zero states or `initial_state`, and returns the last output or the sequence
(`return_sequences`), then the final states (`return_state`).

The steps are written with `convscope.ops`, so in training the whole sequence is one call on the layer's tape and
its gradients are the tape's (backpropagation through time).  Dropout masks (`dropout` on the inputs,
`recurrent_dropout` on the states) are drawn once per call, as Keras draws them.  Keras' masks, `stateful=True`
and `unroll` are not supported (the last is accepted and changes nothing: the loop is the same).
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List

import numpy as np

from .. import activations as activations_module, ops
from ..ops.dropout import dropout_forward
from .autodiff import NOT_GIVEN
from .base import Layer, Shape, check_bool, check_positive_int, resolve_optional, serialize_optional
from .spec import LayerSpec

def _rate(value, arg: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{where}: argument `{arg}` must be a number in [0, 1), got {value!r}")
    return float(value)


def _activation(identifier, arg: str, where: str):
    """(the activation function, its name for the config), through `convscope.activations`."""
    try:
        function = activations_module.get(identifier)
        return function, activations_module.serialize(function)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{where}: argument `{arg}`: {error}") from None


def refuse_state_and_mask(layer, initial_state, mask) -> None:
    for arg, value in (("initial_state", initial_state), ("mask", mask)):
        if value is not None:
            raise ValueError(f"{layer._describe()}: argument `{arg}` is not supported yet (each call starts from zero "
                             "states; convscope has no Keras masks)")


class _Cell(Layer):
    """What the three cells share: units, activations, the weights' options and dropout rates."""

    GATES = 1

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        self.units = check_positive_int(units, "units", where)
        self.activation, self._activation_name = _activation(activation, "activation", where)
        self.use_bias = check_bool(use_bias, "use_bias", where)
        from .. import initializers
        self.kernel_initializer = initializers.get(kernel_initializer, where, "kernel_initializer")
        self.recurrent_initializer = initializers.get(recurrent_initializer, where, "recurrent_initializer")
        self.bias_initializer = initializers.get(bias_initializer, where, "bias_initializer")
        for kind, arg, value in (("regularizers", "kernel_regularizer", kernel_regularizer),
                                 ("regularizers", "recurrent_regularizer", recurrent_regularizer),
                                 ("regularizers", "bias_regularizer", bias_regularizer),
                                 ("constraints", "kernel_constraint", kernel_constraint),
                                 ("constraints", "recurrent_constraint", recurrent_constraint),
                                 ("constraints", "bias_constraint", bias_constraint)):
            setattr(self, arg, resolve_optional(kind, value, where, arg))
        self.dropout = _rate(dropout, "dropout", where)
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout", where)
        self.seed = seed
        self._generator = None if seed is None else np.random.default_rng(seed)

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def _bias_shape(self):
        return (self.GATES * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{self._describe()}: the inputs' last axis (features) must be known, got {input_shape}")
        width = self.GATES * self.units
        self.kernel = self.add_weight(shape=(features, width), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                      name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, width), initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint, name="recurrent_kernel")
        self.bias = (self.add_weight(shape=self._bias_shape(), initializer=self._bias_initializer(),
                                     regularizer=self.bias_regularizer, constraint=self.bias_constraint, name="bias")
                     if self.use_bias else None)
        self.built = True

    def compute_output_shape(self, input_shape) -> Shape:
        return tuple(input_shape[:-1]) + (self.units,)

    def dropout_masks(self, batch: int, features: int, training: bool):
        """(input mask or None, state mask or None) for one call: kept cells scaled by 1 / (1 - rate)."""
        def mask(rate, width):
            if not (training and rate > 0):
                return None
            return dropout_forward(np.ones((batch, width), self.dtype), rate, None, self._generator)[1]
        return mask(self.dropout, features), mask(self.recurrent_dropout, self.units)

    def _gates(self, inputs, h, masks):
        """x · kernel + h · recurrent_kernel (+ bias): every gate's pre-activation at once (the masks: dropout's)."""
        z = ops.add(ops.matmul(_masked(inputs, masks[0]), self.kernel),
                    ops.matmul(_masked(h, masks[1]), self.recurrent_kernel))
        return z if self.bias is None else ops.add(z, self.bias)

    def call(self, inputs, states, training=False):
        """Keras' cell call: (output, new states) of one step, without dropout masks drawn across steps."""
        return self.step(inputs, list(states) if isinstance(states, (list, tuple)) else [states], (None, None))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"units": self.units, "activation": self._activation_name, "use_bias": self.use_bias,
                       "kernel_initializer": serialize_optional("initializers", self.kernel_initializer),
                       "recurrent_initializer": serialize_optional("initializers", self.recurrent_initializer),
                       "bias_initializer": serialize_optional("initializers", self.bias_initializer),
                       "kernel_regularizer": serialize_optional("regularizers", self.kernel_regularizer),
                       "recurrent_regularizer": serialize_optional("regularizers", self.recurrent_regularizer),
                       "bias_regularizer": serialize_optional("regularizers", self.bias_regularizer),
                       "kernel_constraint": serialize_optional("constraints", self.kernel_constraint),
                       "recurrent_constraint": serialize_optional("constraints", self.recurrent_constraint),
                       "bias_constraint": serialize_optional("constraints", self.bias_constraint),
                       "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed})
        return config


def _masked(value, mask):
    return value if mask is None else ops.multiply(value, mask)


class SimpleRNNCell(_Cell):
    """h = activation(x · kernel + h_prev · recurrent_kernel + bias)."""

    def step(self, inputs, states, masks):
        h = self.activation(self._gates(inputs, states[0], masks))
        return h, [h]


class _GatedCell(_Cell):
    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", **kwargs):
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation, self._recurrent_name = _activation(recurrent_activation, "recurrent_activation",
                                                                      self._describe())

    def get_config(self) -> Dict[str, Any]:
        return _insert_after(super().get_config(), "activation", "recurrent_activation", self._recurrent_name)


class LSTMCell(_GatedCell):
    """Keras' LSTM step: i, f, o = σ(·), c̃ = tanh(·) of x · kernel + h · recurrent_kernel + bias (i, f, c, o);
    c = f · c_prev + i · c̃, h = o · tanh(c).  `unit_forget_bias`: the forget gate's bias starts at 1."""

    GATES = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 unit_forget_bias=True, **kwargs):
        kwargs.pop("implementation", None)            # Keras' choice of kernels: one computation here
        super().__init__(units, activation, recurrent_activation, use_bias=use_bias, **kwargs)
        self.unit_forget_bias = check_bool(unit_forget_bias, "unit_forget_bias", self._describe())

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, units = self.bias_initializer, self.units

        def initializer(shape, dtype=None):
            gates = np.asarray(base((units,), dtype=dtype))
            return np.concatenate([gates, np.ones((units,), gates.dtype), np.asarray(base((2 * units,),
                                                                                         dtype=dtype))])
        return initializer

    def step(self, inputs, states, masks):
        h, c = states
        z_i, z_f, z_c, z_o = ops.split(self._gates(inputs, h, masks), 4, axis=-1)
        sigma = self.recurrent_activation
        c = ops.add(ops.multiply(sigma(z_f), c), ops.multiply(sigma(z_i), self.activation(z_c)))
        h = ops.multiply(sigma(z_o), self.activation(c))
        return h, [h, c]

    def get_config(self) -> Dict[str, Any]:
        return _insert_after(super().get_config(), "bias_initializer", "unit_forget_bias", self.unit_forget_bias)


class GRUCell(_GatedCell):
    """Keras' GRU step: z, r = σ(·), then h̃ = tanh(x_h + r · (h · U_h + b_h)) with `reset_after` (Keras'
    default; else tanh(x_h + (r · h) · U_h)); h = z · h_prev + (1 - z) · h̃."""

    GATES = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True, reset_after=True,
                 **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(units, activation, recurrent_activation, use_bias=use_bias, **kwargs)
        self.reset_after = check_bool(reset_after, "reset_after", self._describe())

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def step(self, inputs, states, masks):
        h = states[0]
        x = ops.matmul(_masked(inputs, masks[0]), self.kernel)
        input_bias = recurrent_bias = None
        if self.bias is not None:
            input_bias, recurrent_bias = (self.bias[0], self.bias[1]) if self.reset_after else (self.bias, None)
            x = ops.add(x, input_bias)
        x_z, x_r, x_h = ops.split(x, 3, axis=-1)
        h_in, units, sigma = _masked(h, masks[1]), self.units, self.recurrent_activation
        if self.reset_after:
            inner = ops.matmul(h_in, self.recurrent_kernel)
            if recurrent_bias is not None:
                inner = ops.add(inner, recurrent_bias)
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
        else:
            r_z, r_r = ops.split(ops.matmul(h_in, self.recurrent_kernel[:, :2 * units]), 2, axis=-1)
        z, r = sigma(ops.add(x_z, r_z)), sigma(ops.add(x_r, r_r))
        if self.reset_after:
            candidate = ops.multiply(r, r_h)
        else:
            candidate = ops.matmul(ops.multiply(r, h_in), self.recurrent_kernel[:, 2 * units:])
        hh = self.activation(ops.add(x_h, candidate))
        h = ops.add(ops.multiply(z, h), ops.multiply(ops.subtract(1.0, z), hh))
        return h, [h]

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config


class RNN(Layer):
    """Keras' `RNN(cell, return_sequences=False, return_state=False, go_backwards=False, ...)`: `cell` run over the
    time axis (axis 1) of (batch, time, features) inputs."""

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        where = self._describe()
        if not isinstance(cell, Layer) or not hasattr(cell, "state_size"):
            raise TypeError(f"{where}: argument `cell` must be a cell layer (with `state_size` and `call(inputs, "
                            f"states)`), got {type(cell).__name__}")
        self.cell = cell
        self.return_sequences = check_bool(return_sequences, "return_sequences", where)
        self.return_state = check_bool(return_state, "return_state", where)
        self.go_backwards = check_bool(go_backwards, "go_backwards", where)
        if check_bool(stateful, "stateful", where):
            raise ValueError(f"{where}: argument `stateful=True` is not supported (each call starts from zero "
                             "states)")
        self.stateful = False
        self.unroll = check_bool(unroll, "unroll", where)
        self.zero_output_for_mask = check_bool(zero_output_for_mask, "zero_output_for_mask", where)

    def __call__(self, inputs, initial_state=None, training=NOT_GIVEN, mask=None):
        """Keras' call; `initial_state` and Keras' `mask` are refused by name (not supported yet)."""
        refuse_state_and_mask(self, initial_state, mask)
        return super().__call__(inputs, training)

    def keras_sublayers(self) -> List[tuple]:
        """The cell, where Keras' files keep the weights (`<layer>/cell/vars`)."""
        return [("cell", self.cell)]

    def describe(self):
        """kind "recurrent" for Keras' cells: op the layer's class, filters the units, size (gates, biases per gate:
        GRU's reset_after has two); a cell of the user's is "other" (no formula)."""
        if not isinstance(self.cell, _Cell):
            return super().describe()
        biases = 2 if getattr(self.cell, "reset_after", False) else 1
        return LayerSpec(kind="recurrent", op=type(self.cell).__name__[:-len("Cell")], filters=self.cell.units,
                         size=(self.cell.GATES, biases), use_bias=self.cell.use_bias)

    def _state_sizes(self) -> List[int]:
        size = self.cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"{self._describe()}: expected inputs of shape (batch, time, features), got {shape}")
        if not self.cell.built:            # a step's shape: a cell of the user's cannot be run without states
            self.cell.build((shape[0], shape[2]))
            self.cell.built = True
            self.cell._build_input_shape = (shape[0], shape[2])
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"{self._describe()}: expected inputs of shape (batch, time, features), got {shape}")
        size = getattr(self.cell, "output_size", self._state_sizes()[0])
        output = (shape[0], shape[1], size) if self.return_sequences else (shape[0], size)
        if not self.return_state:
            return output
        return [output] + [(shape[0], units) for units in self._state_sizes()]

    def call(self, inputs, training=False):
        batch, steps, features = np.shape(getattr(inputs, "value", inputs))
        if steps == 0:
            raise ValueError(f"{self._describe()}: the inputs have no time steps (shape {(batch, steps, features)})")
        dtype = np.dtype(self.dtype)
        states = [np.zeros((batch, units), dtype) for units in self._state_sizes()]
        step = getattr(self.cell, "step", None)
        masks = self.cell.dropout_masks(batch, features, bool(training)) if step is not None else None
        extra = {"training": training} if "training" in inspect.signature(self.cell.call).parameters else {}
        outputs = []
        for t in (range(steps - 1, -1, -1) if self.go_backwards else range(steps)):
            x_t = ops.take(inputs, t, axis=1)
            if step is not None:
                output, states = step(x_t, states, masks)
            else:                                     # a cell of the user's: Keras' call(inputs, states)
                output, states = self.cell.call(x_t, states, **extra)
                states = list(states) if isinstance(states, (list, tuple)) else [states]
            outputs.append(output)
        result = ops.stack(outputs, axis=1) if self.return_sequences else outputs[-1]
        return [result] + list(states) if self.return_state else result

    def get_config(self) -> Dict[str, Any]:
        from . import serialize
        config = super().get_config()
        config.update(self._loop_config())
        config["cell"] = serialize(self.cell)
        return config

    def _loop_config(self) -> Dict[str, Any]:
        return {"return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from . import deserialize
        config = dict(config)
        cell = config.pop("cell")
        return cls(deserialize(cell, custom_objects) if isinstance(cell, dict) else cell, **config)


class _CellLayer(RNN):
    """SimpleRNN, LSTM and GRU: the layer makes its cell from its own arguments (Keras' config is flat)."""

    CELL = _Cell
    CELL_NAME = ""

    def __init__(self, units, *args, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, use_cudnn="auto", **kwargs):
        layer_kwargs = {key: kwargs.pop(key) for key in ("name", "trainable", "dtype", "input_shape",
                                                          "batch_input_shape", "batch_size", "input_dim",
                                                          "activity_regularizer") if key in kwargs}
        cell = self.CELL(units, *args, name=self.CELL_NAME, dtype=layer_kwargs.get("dtype"),
                         trainable=layer_kwargs.get("trainable", True), **kwargs)
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask, **layer_kwargs)

    def __getattr__(self, name):
        """The cell's arguments read on the layer (`lstm.units`, `lstm.dropout`), as Keras exposes them."""
        cell = self.__dict__.get("cell")
        if cell is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(cell, name)

    def get_config(self) -> Dict[str, Any]:
        config = Layer.get_config(self)
        config.update(self._loop_config())
        cell = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell.pop(key, None)
        config.update(cell)
        config["activity_regularizer"] = serialize_optional("regularizers", self.activity_regularizer)
        return _keras_order(config)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if "units" not in config:
            raise TypeError(f"{cls.__name__}.from_config: the config lacks `units`, got keys {sorted(config)}")
        return cls(**config)


def _keras_order(config: Dict[str, Any]) -> Dict[str, Any]:
    """The activity regularizer among the regularizers, where Keras writes it."""
    value = config.pop("activity_regularizer")
    return _insert_after(config, "bias_regularizer", "activity_regularizer", value)


def _insert_after(config: Dict[str, Any], after: str, key: str, value) -> Dict[str, Any]:
    """`config` with `key: value` placed right after `after` (Keras' key order, which its files keep)."""
    items = list(config.items())
    items.insert([name for name, _ in items].index(after) + 1, (key, value))
    return dict(items)


class SimpleRNN(_CellLayer):
    """Keras' `SimpleRNN(units, activation="tanh", ...)` (its config, as Keras writes it, without the seed)."""

    CELL, CELL_NAME = SimpleRNNCell, "simple_rnn_cell"

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        del config["seed"]
        return config


class LSTM(_CellLayer):
    """Keras' `LSTM(units, activation="tanh", recurrent_activation="sigmoid", unit_forget_bias=True, ...)`."""

    CELL, CELL_NAME = LSTMCell, "lstm_cell"


class GRU(_CellLayer):
    """Keras' `GRU(units, activation="tanh", recurrent_activation="sigmoid", reset_after=True, ...)`."""

    CELL, CELL_NAME = GRUCell, "gru_cell"

