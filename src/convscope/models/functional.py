"""`Functional`: a model built from a graph of layer calls, as `keras.Model(inputs, outputs)`.

The structure (which layer feeds which) comes from the nodes recorded by calling layers
on symbolic tensors (`layers/graph.py`); `graph_map.map_graph` orders them.  A forward
pass runs the nodes in that order and returns, besides the outputs, an `Execution`: what
each call kept for its backward pass.  Nothing of a call is stored on the layers, so a
layer used twice (its gradient is the sum of both uses), a model used as a layer, and
threads calling one model at once all work.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import backend, losses as losses_module, metrics as metrics_module, optimizers
from ..ops import elementwise_fast
from ..callbacks import CallbackList, check_callbacks
from ..layers import InputLayer, Layer, step_losses
from ..layers.autodiff import NOT_GIVEN, call_layer, call_training, recording
from ..layers.base import Variable, noted
from ..layers.graph import KerasTensor, flatten, is_symbolic
from ..layers.operations import Operation
from . import multi_io
from .functional_config import functional_config, functional_from_config
from .graph_map import map_graph
from .graph_plan import graph_steps
from .plan import INFERENCE, LAYERS, TRAINING, stage_input
from .plan import layer_input as layer_input_cast
from .summary import print_summary
from .training import Model, check_predict_arguments


class _FunctionalTraining:
    """compile/fit/evaluate/predict for several inputs and outputs (mixed into `Functional`);
    the epoch loop, callbacks and batching are `Model`'s."""

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None) -> None:
        where = "compile"
        names = self.output_names
        self.optimizer = optimizers.get(optimizer)
        self._losses = multi_io.losses_per_output(loss, names, where)
        self._loss = next(entry for entry in self._losses if entry is not None)
        self._logits_loss = None
        self.loss = loss
        self._loss_weights = multi_io.loss_weights_per_output(loss_weights, names, where)
        self._metric_ids_per_output = multi_io.metrics_per_output(metrics, names, where)
        self._metric_ids = metrics if metrics is not None else []
        self._compile_args = {"optimizer": optimizer, "loss": loss, "metrics": metrics,
                              "loss_weights": loss_weights}
        self._metric_objects = None
        self._loss_tracker = metrics_module.Mean("loss")
        self._output_loss_trackers = [metrics_module.Mean(f"{name}_loss") for name in names]
        self.stop_training = False

    def get_compile_config(self):
        if not self.compiled:
            return None
        loss = self._compile_args["loss"]

        def one(entry):
            return entry if entry is None or isinstance(entry, str) else losses_module.serialize(entry)
        loss = ({k: one(v) for k, v in loss.items()} if isinstance(loss, dict) else
                [one(v) for v in loss] if isinstance(loss, (list, tuple)) else one(loss))
        metrics = self._compile_args["metrics"]
        serialize = metrics_module.serialize
        metrics = (None if metrics is None else
                   {k: [serialize(m) for m in (v if isinstance(v, (list, tuple)) else [v])] for k, v in metrics.items()}
                   if isinstance(metrics, dict) else
                   [[serialize(m) for m in v] if isinstance(v, (list, tuple)) else serialize(v) for v in metrics])
        return {"optimizer": optimizers.serialize(self.optimizer), "loss": loss, "metrics": metrics,
                "loss_weights": self._compile_args["loss_weights"]}

    # -- data -------------------------------------------------------------------------------------
    def _columns(self, value, tensors, names, arg: str, where: str) -> multi_io.Columns:
        if value is None:
            raise ValueError(f"{where}: argument `{arg}` is required, got None")
        if isinstance(value, dict):
            missing = [n for n in names if n not in value]
            if missing:
                raise ValueError(f"{where}: argument `{arg}` lacks {missing}; expected a dict with keys {list(names)}")
            given = [value[n] for n in names]
        elif isinstance(value, (list, tuple)) and len(tensors) > 1:
            given = list(value)
        else:
            given = [value]
        if len(given) != len(tensors):
            raise ValueError(f"{where}: argument `{arg}` must hold {len(tensors)} arrays {list(names)}, "
                             f"got {len(given)}")
        arrays = []
        for name, item in zip(names, given):
            array = np.asarray(item)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"{where}: `{arg}` for '{name}' must be a numeric array, got dtype {array.dtype}")
            if array.ndim == 0:
                raise ValueError(f"{where}: `{arg}` for '{name}' must have a batch axis, got a scalar")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"{where}: `{arg}` for '{name}' must hold finite numbers")
            arrays.append(array)
        return multi_io.Columns(arrays)

    def _check_data(self, x, y, where: str, x_arg: str = "x", y_arg: str = "y"):
        input_names = [t.keras_history[0].name for t in self._inputs]
        xs = self._columns(x, self._inputs, input_names, x_arg, where)
        ys = self._columns(y, self._outputs, self.output_names, y_arg, where)
        self._flat_inputs(xs.arrays, where)
        counts = {len(a) for a in xs.arrays + ys.arrays}
        if len(counts) > 1:
            raise ValueError(f"{where}: `{x_arg}` and `{y_arg}` must have the same number of samples, got "
                             f"{[len(a) for a in xs.arrays]} and {[len(a) for a in ys.arrays]}")
        if len(xs) == 0:
            raise ValueError(f"{where}: `{x_arg}` is empty; there is nothing to train on")
        for loss, target, tensor in zip(self._losses, ys.arrays, self._outputs):
            if loss is not None:
                loss.check_targets(target, tensor.shape, where)
        return xs, ys

    def _output_shape_for(self, x_shape, where: str):
        return [t.shape for t in self._outputs]

    # -- steps --------------------------------------------------------------------------------------
    def _losses_of(self, ys, outputs, sample_weight=None, where: str = "fit") -> List[float]:
        return [0.0 if loss is None else float(loss.weighted(y, out, sample_weight, where))
                for loss, y, out in zip(self._losses, ys, outputs)]

    def _train_step(self, x, y, where: str, epoch: int, batch: int, raise_on_nan: bool, sample_weight=None):
        arrays = self._flat_inputs(x.arrays, where)
        with step_losses.collecting() as penalty:
            outputs, execution = self.run(arrays, training=True, keep=True)
        per_output = self._losses_of(y.arrays, outputs, sample_weight)
        grads = [None if loss is None else loss.weighted_gradient(target, out, sample_weight) * weight
                 for loss, target, out, weight in zip(self._losses, y.arrays, outputs, self._loss_weights)]
        _, pairs = self.backward_graph(execution, grads, need_input_grads=False)
        self._assign_gradients(pairs)
        loss = sum(w * value for w, value in zip(self._loss_weights, per_output)) + penalty.total
        loss += self._weight_penalty(add_gradients=True)
        if raise_on_nan and not np.isfinite(loss):
            raise ValueError(f"{where}: the loss became {loss} at epoch {epoch + 1}, batch {batch + 1} "
                             f"(the weights were not updated with it); lower the learning rate, "
                             f"scale the inputs, or pass callbacks=[TerminateOnNaN()] to stop quietly")
        self.optimizer.apply(self.trainable_weights)
        return (loss, per_output), outputs

    def _test_step(self, x, y, sample_weight=None):
        with step_losses.collecting() as penalty:
            outputs, _ = self.run(self._flat_inputs(x.arrays, "evaluate"), training=False, keep=False)
        per_output = self._losses_of(y.arrays, outputs, sample_weight, "evaluate")
        loss = sum(w * value for w, value in zip(self._loss_weights, per_output)) + penalty.total
        return (loss + self._weight_penalty(add_gradients=False), per_output), outputs

    # -- metrics ------------------------------------------------------------------------------------
    def _reset_metrics(self, y, output_shape) -> None:
        if self._metric_objects is None:
            self._metric_objects = [
                [metrics_module.resolve(m, target.shape, tensor.shape) for m in ids]
                for ids, target, tensor in zip(self._metric_ids_per_output, y.arrays, self._outputs)]
        self._loss_tracker.reset_state()
        for tracker in self._output_loss_trackers:
            tracker.reset_state()
        for metric in (m for group in self._metric_objects for m in group):
            metric.reset_state()

    def _update_metrics(self, loss, y, output, count: int) -> Dict[str, float]:
        total, per_output = loss
        self._loss_tracker.update_state(total, sample_weight=count)
        for tracker, value in zip(self._output_loss_trackers, per_output):
            tracker.update_state(value, sample_weight=count)
        for group, target, out in zip(self._metric_objects, y.arrays, output):
            for metric in group:
                metric.update_state(target, out)
        return self._logs()

    def _logs(self) -> Dict[str, float]:
        several = len(self._outputs) > 1
        logs = {"loss": self._loss_tracker.result()}
        if several:
            logs.update({t.name: t.result() for t in self._output_loss_trackers})
        for name, group in zip(self.output_names, self._metric_objects or []):
            logs.update({multi_io.metric_name(m, name, several): m.result() for m in group})
        return logs

    @property
    def metrics_names(self) -> List[str]:
        names = ["loss"]
        if self.compiled and len(self._outputs) > 1:
            names += [f"{name}_loss" for name in self.output_names]
        return names

    # -- predict ------------------------------------------------------------------------------------
    def predict(self, x, batch_size: Optional[int] = 32, verbose="auto", steps=None, callbacks=None):
        """Outputs for `x` (an array, a list or a dict of inputs), `batch_size` samples at a time, in
        the structure the model was built with."""
        lazy = self._predict_lazily(x, batch_size, verbose, steps, callbacks)   # a dask array
        if lazy is not None:
            return lazy
        where = f"{self._describe()}.predict"
        batch_size = check_predict_arguments(batch_size, verbose, steps, where)
        callback_list = CallbackList(check_callbacks(callbacks, where), model=self)
        arrays = self._flat_inputs(x, where)
        if arrays[0].shape[0] == 0:
            raise ValueError(f"{where}: expected at least one sample, got shape {arrays[0].shape}")
        starts = list(range(0, arrays[0].shape[0], int(batch_size)))[:steps]
        callback_list.on_predict_begin()
        pieces = []
        for batch, start in enumerate(starts):
            callback_list.on_predict_batch_begin(batch)
            with backend.no_backward():
                outputs, _ = self.run([a[start:start + batch_size] for a in arrays], training=False, keep=False)
            pieces.append(outputs)
            callback_list.on_predict_batch_end(batch, {"outputs": outputs})
        callback_list.on_predict_end()
        flat = [np.concatenate([piece[i] for piece in pieces], axis=0) for i in range(len(self._outputs))]
        return self._structure_outputs(flat)


class Execution:
    """One forward pass of a graph: (node, what its layer kept) in execution order, and the outputs of the
    records (by position) whose activity penalty went to a training step (`layers/step_losses.py`)."""

    __slots__ = ("records", "penalized")

    def __init__(self):
        self.records: List[Tuple[Any, Any]] = []
        self.penalized: Dict[int, Any] = {}


class Functional(_FunctionalTraining, Model):
    """A model from `inputs` to `outputs` (a KerasTensor, or a list/dict of them), Keras' functional API."""

    def __init__(self, inputs, outputs, name: Optional[str] = None, trainable: bool = True):
        Layer.__init__(self, name=name or backend.unique_name("functional"), trainable=trainable)
        where = f"Functional '{self.name}'"
        self._input_structure = _check_structure(inputs, "inputs", where)
        self._output_structure = _check_structure(outputs, "outputs", where)
        self._inputs = flatten(self._input_structure)
        self._outputs = flatten(self._output_structure)
        for tensor in self._inputs:
            if not isinstance(tensor.keras_history[0], InputLayer):
                layer = tensor.keras_history[0]
                raise ValueError(f"{where}: argument `inputs` must be tensors made by keras.Input(...); got "
                                 f"the output of layer '{layer.name}' ({type(layer).__name__})")
        self._nodes, self._layers = map_graph(self._inputs, self._outputs, where)
        self._compute_nodes = [n for n in self._nodes if not n.is_input]
        self._consumers = _consumer_counts(self._compute_nodes, self._outputs)
        self.built = True

    # -- structure ----------------------------------------------------------------------
    def _describe(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    @property
    def layers(self) -> List[Layer]:
        """Every layer, InputLayers first, in Keras' order (deepest first, then as first met); as in Keras,
        not the operations (`x + 3.0`) recorded on symbolic tensors, so `layers[i]` is Keras' layer i."""
        return [layer for layer in self._layers if not isinstance(layer, Operation)]

    @property
    def operations(self) -> List[Layer]:
        """Every layer and operation (arithmetic on symbolic tensors) in graph order, Keras' `model.operations`."""
        return list(self._layers)

    @property
    def inputs(self) -> List[KerasTensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> List[KerasTensor]:
        return list(self._outputs)

    @property
    def input(self):
        return self._input_structure

    @property
    def output(self):
        return self._output_structure

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self._outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_names(self) -> List[str]:
        if isinstance(self._output_structure, dict):
            return sorted(self._output_structure)
        return [t.keras_history[0].name for t in self._outputs]

    # -- weights ----------------------------------------------------------------------
    @property
    def weights(self) -> List[Variable]:
        """Each layer's weights in layer order, a shared layer's once (Keras' `model.weights`)."""
        return self._unique_weights("weights")

    @property
    def trainable_weights(self) -> List[Variable]:
        return self._unique_weights("trainable_weights") if self.trainable else []

    @property
    def non_trainable_weights(self) -> List[Variable]:
        if not self.trainable:
            return self.weights
        return self._unique_weights("non_trainable_weights")

    @property
    def _variables(self):
        return self.weights

    @_variables.setter
    def _variables(self, value):
        pass                      # Layer.__init__ sets it; a model's variables are its layers'

    def count_params(self) -> int:
        return int(sum(v.value.size for v in self.weights))

    # -- computation ------------------------------------------------------------------
    def _flat_inputs(self, inputs, where: str) -> List[np.ndarray]:
        """The arrays for `self._inputs`, from one array, a list or a dict keyed by input name."""
        names = [t.keras_history[0].name for t in self._inputs]
        if isinstance(inputs, dict):
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(f"{where}: the inputs dict lacks {missing}; the model's inputs are {names}")
            given = [inputs[n] for n in names]
        elif isinstance(inputs, (list, tuple)) and (len(self._inputs) > 1 or (
                len(inputs) == 1 and isinstance(inputs[0], np.ndarray))):
            given = list(inputs)
        else:
            given = [inputs]
        if len(given) != len(self._inputs):
            raise ValueError(f"{where}: the model takes {len(self._inputs)} inputs {names}, got {len(given)}")
        arrays = []
        for tensor, name, value in zip(self._inputs, names, given):
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"{where}: input '{name}' must be a numeric array, got dtype {array.dtype}")
            expected = tensor.shape
            if array.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], array.shape[1:])):
                raise ValueError(f"{where}: input '{name}' expects shape {expected} (batch first), got {array.shape}")
            if array.dtype != np.dtype(tensor.dtype):
                array = array.astype(tensor.dtype)
            arrays.append(array)
        if len({len(a) for a in arrays}) > 1:
            raise ValueError(f"{where}: the inputs must have the same number of samples, got "
                             f"{dict(zip(names, [len(a) for a in arrays]))}")
        return arrays

    def _steps(self, training: bool, keep: bool):
        """The execution plan for this call's mode (models/graph_plan.py), built once per mode."""
        mode = TRAINING if training and keep else INFERENCE if not (training or keep) else LAYERS
        plans = self.__dict__.setdefault("_graph_plans", {})
        if mode not in plans:
            plans[mode] = graph_steps(self._compute_nodes, self._outputs, mode)
        return plans[mode]

    def run(self, arrays: Sequence[np.ndarray], training: bool = False, keep: bool = True,
            on_step=None) -> Tuple[List[np.ndarray], Optional[Execution]]:
        """Run the graph's plan on the flat input arrays: (flat outputs, the Execution, None when not
        `keep`).  Fused chains run as one stage; every other node through its layer.
        `on_step(step, seconds)`, when given, hears each step's time (`utils.profile`)."""
        values: Dict[int, np.ndarray] = {id(t): a for t, a in zip(self._inputs, arrays)}
        execution = Execution() if keep else None
        if keep or training:
            self._run_steps(values, training, keep, execution, on_step)
        else:                                   # the inference plan: nothing kept, set once for its steps
            with backend.no_backward():
                self._run_steps(values, training, keep, execution, on_step)
        return [values[id(t)] for t in self._outputs], execution

    def _run_steps(self, values: Dict[int, np.ndarray], training: bool, keep: bool, execution, on_step) -> None:
        """`run`'s steps in order, each reading its inputs from `values` and writing its outputs there; what no
        later step reads is dropped from it."""
        remaining = dict(self._consumers)
        for step in self._steps(training, keep):
            start = time.perf_counter() if on_step is not None else 0.0
            if step.stage is not None:
                if step.residual is None:
                    values[id(step.output)], ctx = step.stage.forward(stage_input(step.stage, values[id(step.input)]),
                                                                      training=training)
                    read = [step.input]
                else:                               # a fused Add's other operand
                    values[id(step.output)], ctx = step.stage.forward(
                        stage_input(step.stage, values[id(step.input)]), training=training,
                        residual=values[id(step.residual)])
                    read = [step.input, step.residual]
                layer, results = step.stage.layers[-1], values[id(step.output)]
            else:
                node = step.nodes[0]
                args = _substitute(node.args, values)
                layer_input = layer_input_cast(node.layer, args[0]) if len(args) == 1 else args
                call_kwargs = _call_kwargs(node, values)
                if keep:
                    result, ctx = node.layer.forward(layer_input, training=training, **call_kwargs)
                elif call_kwargs:
                    with backend.no_backward():
                        result = node.layer.forward(layer_input, training=training, **call_kwargs)[0]
                else:
                    result = call_layer(node.layer, layer_input, training)
                results = result if isinstance(result, (list, tuple)) else [result]
                for tensor, value in zip(node.outputs, results):
                    values[id(tensor)] = value
                layer, read = node.layer, node.input_tensors
            penalized = step_losses.penalize(layer, results)     # the step's last layer's activity penalty
            if keep:
                _record(execution, step, ctx, results if penalized else None)
            if on_step is not None:
                on_step(step, time.perf_counter() - start)
            for tensor in read:                     # drop what no later step reads
                key = id(tensor)
                remaining[key] -= 1
                if remaining[key] == 0:
                    values.pop(key, None)

    def backward_graph(self, execution: Execution, output_grads: Sequence[Optional[np.ndarray]],
                       need_input_grads: bool = True, on_step=None):
        """(gradients w.r.t. the flat inputs, [(variable, gradient)] summed over every use of a weight);
        `on_step(step, seconds)` as in `run`.  Without `need_input_grads` (a training step) a layer or stage
        whose inputs are all the model's own is asked for no input gradient (an image model's first conv)."""
        grads: Dict[int, np.ndarray] = {}
        for tensor, grad in zip(self._outputs, output_grads):
            _accumulate(grads, tensor, grad)
        weight_grads: Dict[int, List] = {}
        unneeded = set() if need_input_grads else {id(t) for t in self._inputs}     # gradients nobody reads
        for position in range(len(execution.records) - 1, -1, -1):
            step, ctx = execution.records[position]
            penalized = execution.penalized.get(position)
            start = time.perf_counter() if on_step is not None else 0.0
            if step.stage is not None:
                upstream = grads.pop(id(step.output), None)
                if penalized is not None:
                    upstream = step_losses.with_gradient(step.stage.layers[-1], penalized, upstream)
                if upstream is None:
                    continue
                sources = [step.input] + ([step.residual] if step.residual is not None else [])
                needed = any(id(t) not in unneeded for t in sources)
                grad_in, pairs = step.stage.backward(ctx, upstream, need_input_grad=needed)
                grad_list = ([grad_in] if step.residual is None else list(grad_in)) if needed else []
            else:
                node = step.nodes[0]
                upstream = [grads.pop(id(t), None) for t in node.outputs]
                if penalized is not None:
                    upstream = step_losses.with_gradient(node.layer, penalized, upstream)
                if all(g is None for g in upstream):
                    if not step_losses.holds_losses(ctx):
                        continue
                    upstream = ctx.zero_output_gradients()         # its add_loss terms need its backward
                if len(upstream) > 1:
                    batch = next(len(g) for g in upstream if g is not None)
                    upstream = [np.zeros(_concrete(t.shape, batch), t.dtype) if g is None else g
                                for t, g in zip(node.outputs, upstream)]
                sources = node.input_tensors
                needed = any(id(t) not in unneeded for t in sources)
                grad_in, pairs = node.layer.backward(ctx, upstream[0] if len(upstream) == 1 else upstream,
                                                     need_input_grad=needed)
                grad_list = (grad_in if isinstance(grad_in, (list, tuple)) else [grad_in]) if needed else []
            for variable, grad in pairs:
                entry = weight_grads.setdefault(id(variable), [variable, None])
                entry[1] = grad if entry[1] is None else entry[1] + grad
            for tensor, grad in zip(sources, grad_list):
                _accumulate(grads, tensor, grad)
            if on_step is not None:
                on_step(step, time.perf_counter() - start)
        input_grads = None
        if need_input_grads:
            input_grads = _unshared([grads.get(id(t)) for t in self._inputs], output_grads)
        return input_grads, [tuple(entry) for entry in weight_grads.values()]

    def forward(self, inputs, training: bool = False):
        """The model used as a layer: (outputs, Execution)."""
        arrays = self._flat_inputs(inputs, f"{self._describe()}")
        outputs, execution = self.run(arrays, training=training, keep=backend.keeps_for_backward())
        return self._structure_outputs(outputs), execution

    def backward(self, ctx: Execution, grad_output, need_input_grad: bool = True):
        grads = flatten(grad_output) if isinstance(grad_output, (list, tuple, dict)) else [grad_output]
        input_grads, pairs = self.backward_graph(ctx, grads, need_input_grads=need_input_grad)
        if input_grads is not None and len(input_grads) == 1:
            input_grads = input_grads[0]
        return input_grads, pairs

    def call(self, inputs, training: bool = False):
        arrays = self._flat_inputs(inputs, f"{self._describe()}")
        outputs, _ = self.run(arrays, training=training, keep=False)
        return self._structure_outputs(outputs)

    def __call__(self, inputs, training=NOT_GIVEN):
        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        training = call_training(training)
        if recording():                 # a model inside a custom layer's traced call: one node on the tape
            return self._call_on_tape(inputs, training)
        return noted(self, inputs, self.call(inputs, training=training))

    def summary(self, line_length=None, positions=None, print_fn=None, show_trainable=False,
                show_kernels=False, show_flops=False, show_receptive_field=False, show_memory=False) -> None:
        """tf.keras 2's summary of a graph model, with its "Connected to" column."""
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      show_trainable=show_trainable, show_kernels=show_kernels, show_flops=show_flops,
                      show_receptive_field=show_receptive_field, show_memory=show_memory)

    # -- config -----------------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        """Keras 3's functional config (layers with their inbound nodes, input and output layers)."""
        return functional_config(self)

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> "Functional":
        return functional_from_config(cls, config, custom_objects)

    def to_json(self, **kwargs) -> str:
        """`{"class_name": "Functional", "config": get_config(), ...}` as Keras' `model.to_json()`."""
        import json
        return json.dumps({"module": "keras.src.models.functional", "class_name": "Functional",
                           "config": self.get_config(), "registered_name": "Functional"}, **kwargs)

    def compute_output_shape(self, input_shape):
        shapes = [t.shape for t in self._outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def _structure_outputs(self, flat: List[np.ndarray]):
        """Flat outputs back in the structure the model was built with (a tensor, a list or a dict)."""
        if isinstance(self._output_structure, dict):
            return dict(zip(sorted(self._output_structure), flat))
        if isinstance(self._output_structure, (list, tuple)):
            return list(flat)
        return flat[0]


def _check_structure(value, arg: str, where: str):
    """A KerasTensor, or a non-empty list/tuple/dict of them; lists of one stay lists (as Keras)."""
    leaves = flatten(value)
    if not leaves or any(not isinstance(leaf, KerasTensor) for leaf in leaves):
        given = [type(leaf).__name__ for leaf in leaves]
        raise TypeError(f"{where}: argument `{arg}` must be a KerasTensor (from keras.Input or a layer called "
                        f"on one) or a list/dict of them, got {given or value!r}")
    if isinstance(value, dict):
        return {key: value[key] for key in value}
    return list(value) if isinstance(value, (list, tuple)) else value


def _record(execution: Execution, step, ctx, penalized) -> None:
    """`step` and its ctx appended to the execution, with its outputs when they were penalized."""
    if penalized is not None:
        execution.penalized[len(execution.records)] = penalized
    execution.records.append((step, ctx))


def _consumer_counts(nodes, outputs) -> Dict[int, int]:
    """How many node inputs read each tensor; a model output counts once more (it must be kept)."""
    counts: Dict[int, int] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            counts[id(tensor)] = counts.get(id(tensor), 0) + 1
    for tensor in outputs:
        counts[id(tensor)] = counts.get(id(tensor), 0) + 1
    return counts


def _call_kwargs(node, values) -> dict:
    """The keyword arguments of a layer's node (MultiHeadAttention's `key=`, `attention_mask=`, flags), their
    tensors replaced by values; an operation's stay its own (it binds them itself)."""
    if not node.kwargs or isinstance(node.layer, Operation):
        return {}
    return _substitute(node.kwargs, values)


def _substitute(structure, values: Dict[int, np.ndarray]):
    """`structure` with each KerasTensor replaced by its value."""
    if isinstance(structure, KerasTensor):
        return values[id(structure)]
    if isinstance(structure, list):
        return [_substitute(item, values) for item in structure]
    if isinstance(structure, tuple):
        return tuple(_substitute(item, values) for item in structure)
    if isinstance(structure, dict):
        return {key: _substitute(item, values) for key, item in structure.items()}
    return structure


def _accumulate(grads: Dict[int, np.ndarray], tensor: KerasTensor, grad) -> None:
    if grad is None:
        return
    key = id(tensor)
    grads[key] = grad if key not in grads else elementwise_fast.add(grads[key], grad)


def _unshared(grads: List[Optional[np.ndarray]], given: Sequence) -> List[Optional[np.ndarray]]:
    """The input gradients as the caller's own arrays: one that shares memory with another or with an
    output gradient the caller gave (an Add passes its gradient on to each input, uncopied) is copied."""
    others = [g for g in given if isinstance(g, np.ndarray)]
    result = []
    for grad in grads:
        if grad is not None and any(np.may_share_memory(grad, other) for other in others + result
                                    if other is not None):
            grad = grad.copy()
        result.append(grad)
    return result


def _concrete(shape, batch: int) -> Tuple[int, ...]:
    return tuple(batch if d is None else d for d in shape)

