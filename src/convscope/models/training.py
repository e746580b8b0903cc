"""`Model`: compile, fit, evaluate, train_on_batch, test_on_batch — Keras' training API.

`Sequential` subclasses `Model` and provides `layers`, `build`, `input_shape`
and `output_shape`.  The training step runs the layers itself so that each
layer's `activity_regularizer` adds its penalty and gradient (`layers/step_losses.py`), and so that
softmax + crossentropy fuse: when the last layer
ends in the activation the loss names in `fused_activation`, the loss is taken
on that layer's pre-activation with `from_logits=True` (as Keras does with the
logits it keeps on a softmax output) and the gradient enters the layer below
its activation — (p - y) / N, with no division by a tiny probability.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .. import _rng, backend, losses as losses_module, metrics as metrics_module, optimizers
from ..callbacks import CallbackList, History, ProgbarLogger, TerminateOnNaN, check_callbacks
from ..layers import step_losses
from ..layers.autodiff import call_layer, infer_output_shape, plain
from ..layers.base import Layer, Variable, held_layers, runs_own_call, unique_variables
from . import data_adapters
from .plan import INFERENCE, LAYERS, TRAINING, LayerStage, build_plan, stage_input


_BUILD_LOCK = threading.RLock()    # held only while a model builds on its first data


def _check_int(value, arg: str, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: argument `{arg}` must be an int >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{where}: argument `{arg}` must be an int >= {low}, got {value!r}")
    return int(value)


def _check_verbose(verbose, where: str) -> int:
    """Keras' verbose: "auto" -> 1 (bar), 0 silent, 2 one line per epoch."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"{where}: argument `verbose` must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def check_predict_arguments(batch_size, verbose, steps, where: str) -> int:
    """`predict`'s plain arguments checked (in memory, graph, lazy on Dask alike); the batch size, 32
    when None."""
    batch_size = 32 if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"{where}: argument `batch_size` must be a positive int, got {batch_size!r}")
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"{where}: argument `verbose` must be 'auto', 0, 1 or 2, got {verbose!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0):
        raise ValueError(f"{where}: argument `steps` must be None or a positive int, got {steps!r}")
    return int(batch_size)


def _as_array(value, arg: str, where: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"{where}: argument `{arg}` is required, got None")
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: argument `{arg}` must be a numeric array, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{where}: argument `{arg}` must have a batch axis, got a scalar")
    return array


def _check_finite(x: np.ndarray, arg: str, where: str) -> None:
    if x.dtype.kind != "f":
        return
    finite = np.isfinite(x)
    if not finite.all():
        nans, infs = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        first = int(np.argmin(finite.reshape(len(x), -1).all(axis=1)))
        raise ValueError(f"{where}: `{arg}` must hold finite numbers, got {nans} NaN and {infs} infinite "
                         f"values (first in sample {first})")


def check_fit_arguments(batch_size, epochs, initial_epoch, verbose, shuffle, steps_per_epoch, validation_split,
                        where: str):
    """`fit`'s plain arguments checked (in-process and data-parallel alike): (batch_size, epochs,
    initial_epoch, verbose, steps_per_epoch), with Keras' defaults filled in."""
    batch_size = 32 if batch_size is None else _check_int(batch_size, "batch_size", where, 1)
    epochs = _check_int(epochs, "epochs", where, 0)
    initial_epoch = _check_int(initial_epoch, "initial_epoch", where, 0)
    verbose = _check_verbose(verbose, where)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"{where}: argument `shuffle` must be True or False, got {shuffle!r}")
    if steps_per_epoch is not None:
        steps_per_epoch = _check_int(steps_per_epoch, "steps_per_epoch", where, 1)
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.floating)) or \
            not 0 <= validation_split < 1:
        raise ValueError(f"{where}: argument `validation_split` must be a number in [0, 1), "
                         f"got {validation_split!r}")
    return batch_size, epochs, initial_epoch, verbose, steps_per_epoch


def is_dask_collection(value) -> bool:
    """True for a dask array (or other dask collection), without importing dask."""
    return type(value).__module__.split(".")[0] == "dask" and hasattr(value, "__dask_graph__")


def _batch_length(xb) -> int:
    """The number of samples in a batch of inputs (an array, a list/tuple or a dict of arrays)."""
    if isinstance(xb, dict):
        xb = next(iter(xb.values()))
    if isinstance(xb, (list, tuple)):
        xb = xb[0]
    return int(np.shape(xb)[0]) if np.ndim(xb) else 0


class Model(Layer):
    """Base of every model, itself a layer (a model can be called inside another): the training API
    (`compile`, `fit`, `evaluate`, `*_on_batch`).

    `Model(inputs, outputs, name=...)` builds a `Functional` model, as `keras.Model` does.  A subclass that
    writes `call` (Keras' subclassing API) holds its layers as attributes (`layers` lists them, their weights
    are the model's) and runs that `call`, on the tape when it trains: one stage of the plan.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            if args or "inputs" in kwargs or "outputs" in kwargs:
                from .functional import Functional
                return super().__new__(Functional)
            raise TypeError("Model: give `inputs` and `outputs` (keras.Model(inputs, outputs)), use "
                            "Sequential, or subclass Model and write its `call`")
        return super().__new__(cls)

    def __init__(self, *args, name=None, trainable=True, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {args or ''} {kwargs or ''}")
        if not hasattr(self, "_inbound_nodes"):
            Layer.__init__(self, name=name or backend.unique_name(backend.snake_case(type(self).__name__)),
                           trainable=trainable)

    def _children(self) -> List[Layer]:
        """The layers whose `trainable` follows the model's (Keras 3): a subclassed model's held layers, or a
        Sequential or functional model's layers (none while it is being made)."""
        return held_layers(self) if runs_own_call(self) else list(self.__dict__.get("_layers", ()))

    def _unique_weights(self, attribute: str) -> List[Variable]:
        """Each layer's `attribute` list in layer order, a variable two layers hold once (Keras' model.weights)."""
        return unique_variables(v for layer in self._layers for v in getattr(layer, attribute))

    # -- a subclass that writes `call` (Sequential and Functional have their own) -----------------------
    @property
    def layers(self) -> List[Layer]:
        """The layers the model holds as attributes, in the order they were set (Keras' subclassed `layers`)."""
        return held_layers(self)

    @property
    def operations(self) -> List[Layer]:
        """The layers and, in a functional model, the operations recorded on symbolic tensors (Keras'
        `model.operations`); what summaries, drawings and analysis walk."""
        return self.layers

    def build(self, input_shape=None) -> None:
        """Build for inputs of `input_shape` (batch axis included): `call` run on placeholders, which builds
        the layers it calls (Keras' `model.build` of a subclassed model)."""
        if not runs_own_call(self):
            return super().build(input_shape)
        self._build_call(self._build_shape(input_shape))

    def build_from_shape(self, input_shape):
        """A subclassed model built once, under a lock (threads' first calls at once): its own `build` if it
        writes one (its weights), then `call` run on placeholders (the layers it calls); the output shape."""
        if not runs_own_call(self):
            return super().build_from_shape(input_shape)
        shape = self._build_shape(input_shape)
        if not self.built:
            with _BUILD_LOCK:
                if not self.built:
                    if type(self).build is not Model.build:
                        self.build(shape)           # the subclass's own: its weights, before `call` reads them
                    self._build_call(shape)
        return self.compute_output_shape(shape)

    def _build_shape(self, input_shape):
        """`input_shape` with the batch axis None; a list of shapes for several inputs."""
        if isinstance(input_shape, list) and input_shape and all(isinstance(s, (tuple, list)) for s in input_shape):
            return [self._build_shape(tuple(s)) for s in input_shape]
        if input_shape is None or not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2:
            raise ValueError(f"{self._describe()}.build: argument `input_shape` must be a shape with the batch "
                             f"axis, e.g. (None, 28, 28, 1), got {input_shape!r}")
        return (None,) + tuple(input_shape[1:])

    def _build_call(self, shape) -> None:
        self.compute_output_shape(shape)
        self._build_input_shape = shape
        self.built = True

    def compute_output_shape(self, input_shape):
        """A subclassed model's output shape for `input_shape`: its `call` run on placeholders, once per shape."""
        if not runs_own_call(self):
            return super().compute_output_shape(input_shape)
        known = self.__dict__.setdefault("_call_output_shapes", {})
        key = repr(input_shape)
        if key not in known:
            known[key] = infer_output_shape(self, input_shape)
        return known[key]

    def predict(self, x, batch_size: Optional[int] = 32, verbose="auto", steps=None, callbacks=None):
        """A subclassed model's outputs for `x` (an array, or a list of arrays for several inputs) in inference
        mode, `batch_size` samples at a time."""
        where = f"{self._describe()}.predict"
        batch_size = check_predict_arguments(batch_size, verbose, steps, where)
        callback_list = CallbackList(check_callbacks(callbacks, where), model=self)
        several = isinstance(x, (list, tuple))
        arrays = [_as_array(a, f"x[{i}]" if several else "x", where) for i, a in enumerate(x if several else [x])]
        for array in arrays:
            if array.ndim == 0 or array.shape[0] != arrays[0].shape[0] or array.shape[0] == 0:
                raise ValueError(f"{where}: expected at least one sample, the same number in every input, got "
                                 f"shapes {[a.shape for a in arrays]}")
        self.build_from_shape([a.shape for a in arrays] if several else arrays[0].shape)
        callback_list.on_predict_begin()
        outputs = []
        with backend.no_backward():
            for batch, start in enumerate(list(range(0, len(arrays[0]), batch_size))[:steps]):
                callback_list.on_predict_batch_begin(batch)
                pieces = [a[start:start + batch_size] for a in arrays]
                outputs.append(plain(call_layer(self, pieces if several else pieces[0], False)))
                callback_list.on_predict_batch_end(batch, {"outputs": outputs[-1]})
        callback_list.on_predict_end()
        if isinstance(outputs[0], list):
            return [np.concatenate(parts, axis=0) for parts in zip(*outputs)]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=0)

    def describe(self):
        """kind "model", inner the model itself: inside another model, the analysis reads its layers' numbers."""
        from ..layers.spec import LayerSpec
        return LayerSpec(kind="model", inner=self)

    def summary(self, line_length=None, positions=None, print_fn=None, show_trainable=False,
                show_kernels=False, show_flops=False, show_receptive_field=False, show_memory=False) -> None:
        """A subclassed model's layers, their output shapes and parameter counts (tf.keras 2's table); `show_*`
        add columns from `models.analysis` (each layer read on the input its call gives it)."""
        from .summary import print_summary
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      show_trainable=show_trainable, show_kernels=show_kernels, show_flops=show_flops,
                      show_receptive_field=show_receptive_field, show_memory=show_memory)

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """The layer called `name`, or at position `index` of `layers` (exactly one of the two)."""
        where = f"{self._describe()}.get_layer"
        layers = self.layers
        if (name is None) == (index is None):
            raise ValueError(f"{where}: give exactly one of `name` or `index`, got name={name!r}, index={index!r}")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"{where}: argument `index` must be an int, got {index!r}")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"{where}: argument `index` is {index} but the model has only "
                                 f"{len(layers)} layers")
            return layers[index]
        for layer in self.operations:      # an operation's name too (its output is a feature map)
            if layer.name == name:
                return layer
        raise ValueError(f"{where}: no layer named {name!r}; the layers are {[layer.name for layer in layers]}")

    def _summed_gradients(self, pairs) -> List[np.ndarray]:
        """One gradient per trainable variable, in `trainable_weights` order: the sum of its gradients in
        `pairs` (zeros without one)."""
        grads: Dict[int, np.ndarray] = {}
        for variable, value in pairs:
            key = id(variable)
            grads[key] = value if key not in grads else grads[key] + value
        return [grads[id(v)] if id(v) in grads else np.zeros_like(v.value) for v in self.trainable_weights]

    def _assign_gradients(self, pairs) -> None:
        """Each trainable variable's `grad`: the sum of its gradients in `pairs` (zeros without one)."""
        for variable, grad in zip(self.trainable_weights, self._summed_gradients(pairs)):
            variable.grad = grad

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """`keras.Model.from_config`: a functional model from its config (Keras 3's format)."""
        from .functional import Functional
        return Functional.from_config(config, custom_objects)

    # -- compile --------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None) -> None:
        """Choose the optimizer, the loss and the metrics ("accuracy" resolves from the shapes, as Keras)."""
        where = "compile"
        self.optimizer = optimizers.get(optimizer)
        self._loss = losses_module.as_loss_object(loss, where)
        self._logits_loss = self._loss.with_logits() if self._loss.fused_activation else None
        self.loss = loss
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
            raise TypeError(f"{where}: argument `metrics` must be a list, e.g. metrics=['accuracy'], "
                            f"got {metrics!r}")
        for metric in metrics:
            if metric not in ("accuracy", "acc"):
                metrics_module.get(metric)
        self._metric_ids = [metrics_module.get(m) if isinstance(m, dict) else m for m in metrics]  # saved objects
        self._loss_weight = self._check_loss_weights(loss_weights, where)
        self._compile_args = {"optimizer": optimizer, "loss": loss, "metrics": self._metric_ids,
                              "loss_weights": loss_weights}
        self._metric_objects: Optional[List[metrics_module.Metric]] = None
        self._loss_tracker = metrics_module.Mean("loss")
        self.stop_training = False

    @staticmethod
    def _check_loss_weights(loss_weights, where: str) -> float:
        if loss_weights is None:
            return 1.0
        weight = loss_weights
        if isinstance(loss_weights, (list, tuple)) and len(loss_weights) == 1:
            weight = loss_weights[0]
        elif isinstance(loss_weights, dict) and len(loss_weights) == 1:
            weight = next(iter(loss_weights.values()))
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
            raise TypeError(f"{where}: argument `loss_weights` must be a number (or a list of one for the "
                            f"single output), got {loss_weights!r}")
        return float(weight)

    @property
    def compiled(self) -> bool:
        return getattr(self, "_loss", None) is not None

    def get_compile_config(self) -> Optional[Dict[str, Any]]:
        """JSON-serializable compile settings (`compile_from_config` restores them), None before compile."""
        if not self.compiled:
            return None
        loss = self._compile_args["loss"]
        return {
            "optimizer": optimizers.serialize(self.optimizer),
            "loss": loss if isinstance(loss, str) else losses_module.serialize(loss),
            "metrics": [metrics_module.serialize(m) for m in self._metric_ids],
            "loss_weights": self._compile_args["loss_weights"],
        }

    def compile_from_config(self, config: Dict[str, Any]) -> None:
        """Compile with the settings of `get_compile_config()` (a fresh optimizer of the same config)."""
        if not isinstance(config, dict) or "optimizer" not in config or "loss" not in config:
            raise ValueError(f"compile_from_config: expected the dict of get_compile_config() with "
                             f"'optimizer' and 'loss', got {config!r}")
        self.compile(optimizer=optimizers.deserialize(config["optimizer"]), loss=_loss_from_config(config["loss"]),
                     metrics=config.get("metrics") or None, loss_weights=config.get("loss_weights"))

    def _require_compiled(self, where: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"{where}: the model must be compiled before training or evaluating it; call "
                               "model.compile(optimizer=..., loss=...) first")

    @property
    def metrics_names(self) -> List[str]:
        names = ["loss"]
        if self.compiled:
            names += [m.name if isinstance(m, metrics_module.Metric) else
                      (m if isinstance(m, str) else getattr(m, "__name__", "metric")) for m in self._metric_ids]
        return names

    # -- data checks ------------------------------------------------------------------------------
    def _output_shape_for(self, x_shape: Tuple[int, ...], where: str) -> Tuple:
        """Build the model for `x_shape` if needed, check `x_shape` against its input, return the output shape."""
        if not self.layers and not runs_own_call(self):
            raise ValueError(f"{where}: {type(self).__name__} '{self.name}' has no layers, so it cannot be built or "
                             "run; add layers with `model.add(layer)` first")
        if runs_own_call(self):         # a subclassed model: built once; any input its call takes (as Keras)
            return tuple(self.build_from_shape((None,) + tuple(x_shape[1:])))
        if not self.built:
            with _BUILD_LOCK:           # two threads' first calls would both create the layers' weights
                if not self.built:
                    self.build((None,) + tuple(x_shape[1:]))
        expected = tuple(self.input_shape)
        if len(expected) != len(x_shape) or any(e is not None and e != s for e, s in zip(expected[1:], x_shape[1:])):
            raise ValueError(f"{where}: the model expects input of shape {expected}, got x of shape {tuple(x_shape)}")
        return tuple(self.output_shape)

    def _check_data(self, x, y, where: str, x_arg: str = "x", y_arg: str = "y") -> Tuple[np.ndarray, np.ndarray]:
        if runs_own_call(self) and any(isinstance(v, (list, tuple, dict)) for v in (x, y)):
            raise ValueError(f"{where}: {self._describe()} is a subclassed model, which trains and evaluates here on "
                             f"one input array and one target array; got `{x_arg}` of type {type(x).__name__} and "
                             f"`{y_arg}` of type {type(y).__name__} (several inputs or outputs: not supported yet; "
                             "predict takes a list of inputs)")
        x = _as_array(x, x_arg, where)
        y = _as_array(y, y_arg, where)
        if len(x) != len(y):
            raise ValueError(f"{where}: `{x_arg}` and `{y_arg}` must have the same number of samples, "
                             f"got {len(x)} in {x_arg} (shape {x.shape}) and {len(y)} in {y_arg} (shape {y.shape})")
        if len(x) == 0:
            raise ValueError(f"{where}: `{x_arg}` is empty (shape {x.shape}); there is nothing to train on")
        _check_finite(x, x_arg, where)
        _check_finite(y, y_arg, where)
        output_shape = self._output_shape_for(x.shape, where)
        self._loss.check_targets(y, output_shape, where)
        return x, y

    # -- one step ----------------------------------------------------------------------------------
    def _fusion(self):
        """The last layer, when the loss fuses with its activation (softmax/sigmoid + crossentropy):
        the loss then reads the pre-activation in that layer's ctx and backward starts below the
        activation."""
        wanted = self._loss.fused_activation
        if runs_own_call(self):
            return None                 # a subclassed model's last activation is inside its call
        last = self.layers[-1]
        activation = last.output_activation
        if wanted is None or activation is None or last.activity_regularizer is not None:
            return None
        if activation.name == "softmax" and activation.params.get("axis", -1) != -1:
            return None                  # crossentropy is over the last axis only
        return last if activation.name == wanted else None

    def _plan(self, mode: str):
        """The execution plan of this model for `mode` (models/plan.py), built once."""
        if runs_own_call(self):
            return [LayerStage(self)]   # a subclassed model: its call, on the tape when it trains
        return self._layers_plan(mode)

    def _layers_plan(self, mode: str):
        """The plan of the model's layers one after another (`build_plan`), built once per mode: a Sequential's
        own pass, which a subclass writing `call` reaches by `super().call`."""
        plans = self.__dict__.setdefault("_plans", {})
        key = (mode, *map(id, self.layers))     # in C: a generator here cost a sizeable share of batch 1's latency
        plan = plans.get(key)
        if plan is None:
            plans.clear()
            plan = plans[key] = build_plan(self.layers, mode)
        return plan

    def _run(self, x: np.ndarray, training: bool, fusion=None):
        """Forward through the plan's stages (a training step keeps each stage's ctx; inference under
        `backend.no_backward()` keeps none): (output, stages, each stage's ctx, each stage's output where its
        last layer's activity penalty went to the step, else None).  With `fusion`, the last layer's ctx is
        kept even in inference (its pre-activation gives the loss)."""
        keep = backend.keeps_for_backward()
        stages = self._plan(TRAINING if training and keep else INFERENCE if not (keep or training) else LAYERS)
        contexts, penalized = [], []
        last = len(stages) - 1
        for index, stage in enumerate(stages):
            if index == last and fusion is not None and not keep:
                with backend.keep_for_backward():
                    x, ctx = stage.forward(stage_input(stage, x), training=training)
            else:
                x, ctx = stage.forward(stage_input(stage, x), training=training)
            contexts.append(ctx)
            penalized.append(x if step_losses.penalize(stage.layers[-1], x) else None)
        return x, stages, contexts, penalized

    def _backward_stages(self, stages, contexts, penalized, grad, need_input_grad: bool, fusion=None):
        """(input gradient, [(variable, gradient)]) of `_run`'s stages from the output gradient `grad`, each
        penalized output's activity gradient added; with `fusion`, `grad` is the last layer's pre-activation's.
        Without `need_input_grad` the first stage computes none (most of a first Conv2D's backward)."""
        pairs = []
        for index in range(len(stages) - 1, -1, -1):
            stage, options = stages[index], {}
            if index == len(stages) - 1 and fusion is not None:
                options["from_preactivation"] = True
            elif penalized[index] is not None:
                grad = step_losses.with_gradient(stage.layers[-1], penalized[index], grad)
            grad, stage_pairs = stage.backward(contexts[index], grad, need_input_grad=need_input_grad or index > 0,
                                               **options)
            pairs += stage_pairs
            if grad is None:           # an Embedding's indices: no gradient reaches the layers before it
                break
        return grad, pairs

    def _weight_penalty(self, add_gradients: bool) -> float:
        penalty = 0.0
        for variable in self.trainable_weights:
            if variable.regularizer is not None:
                penalty += variable.regularizer(variable.value)
                if add_gradients:
                    variable.grad = variable.grad + variable.regularizer.gradient(variable.value)
        return penalty

    def _forward_loss(self, x, y, training: bool, sample_weight=None):
        """(output, stages, contexts, penalized outputs, weighted data loss + activity penalty, fused layer or
        None)."""
        fusion = self._fusion()
        with step_losses.collecting() as penalty:
            output, stages, contexts, penalized = self._run(x, training, fusion)
        where = "fit" if training else "evaluate"          # who reports sample weights that do not fit
        if fusion is not None:
            data_loss = self._logits_loss.weighted(y, contexts[-1].preactivation, sample_weight, where)
        else:
            data_loss = self._loss.weighted(y, output, sample_weight, where)
        return output, stages, contexts, penalized, self._loss_weight * data_loss + penalty.total, fusion

    def _gradients(self, x, y, sample_weight=None) -> Tuple[float, np.ndarray, List[np.ndarray]]:
        """(weighted data loss + activity penalty, output, one gradient per trainable variable) of this
        batch, without the weight regularizers and without changing anything: the part of a training step
        a data-parallel replica computes on its shard (`convscope.distribute`)."""
        output, stages, contexts, penalized, loss, fusion = self._forward_loss(x, y, True, sample_weight)
        if fusion is not None:
            grad = self._logits_loss.weighted_gradient(y, contexts[-1].preactivation, sample_weight)
        else:
            grad = self._loss.weighted_gradient(y, output, sample_weight)
        _, pairs = self._backward_stages(stages, contexts, penalized, grad * self._loss_weight, False, fusion)
        return loss, output, self._summed_gradients(pairs)

    def _apply_gradients(self, grads, loss: float, where: str, epoch: int, batch: int, raise_on_nan: bool) -> float:
        """The update of a training step from the batch's gradients: the weight regularizers' penalty and
        gradients added, the loss checked, the optimizer applied; returns the loss with the penalty."""
        for variable, grad in zip(self.trainable_weights, grads):
            variable.grad = grad
        loss += self._weight_penalty(add_gradients=True)
        if raise_on_nan and not np.isfinite(loss):
            raise ValueError(f"{where}: the loss became {loss} at epoch {epoch + 1}, batch {batch + 1} "
                             f"(the weights were not updated with it); lower the learning rate, "
                             f"scale the inputs, or pass callbacks=[TerminateOnNaN()] to stop quietly")
        self.optimizer.apply(self.trainable_weights)
        return loss

    def _train_step(self, x, y, where: str, epoch: int, batch: int, raise_on_nan: bool,
                    sample_weight=None) -> Tuple[float, np.ndarray]:
        loss, output, grads = self._gradients(x, y, sample_weight)
        return self._apply_gradients(grads, loss, where, epoch, batch, raise_on_nan), output

    def _test_step(self, x, y, sample_weight=None) -> Tuple[float, np.ndarray]:
        with backend.no_backward():
            output, _, _, _, loss, _ = self._forward_loss(x, y, False, sample_weight)
        return loss + self._weight_penalty(add_gradients=False), output

    # -- metrics ---------------------------------------------------------------------------------
    def _reset_metrics(self, y: np.ndarray, output_shape: Tuple) -> None:
        if self._metric_objects is None:
            self._metric_objects = [metrics_module.resolve(m, y.shape, output_shape) for m in self._metric_ids]
        self._loss_tracker.reset_state()
        for metric in self._metric_objects:
            metric.reset_state()

    def _update_metrics(self, loss: float, y, output, count: int) -> Dict[str, float]:
        self._loss_tracker.update_state(loss, sample_weight=count)
        for metric in self._metric_objects:
            metric.update_state(y, output)
        return self._logs()

    def _logs(self) -> Dict[str, float]:
        logs = {"loss": self._loss_tracker.result()}
        logs.update({metric.name: metric.result() for metric in self._metric_objects})
        return logs

    # -- batches ---------------------------------------------------------------------------------
    @staticmethod
    def _batches(count: int, batch_size: int, shuffle: bool) -> Iterator[np.ndarray]:
        """Index arrays of one pass, the last partial batch kept."""
        order = _rng.generator().permutation(count) if shuffle else np.arange(count)
        for start in range(0, count, batch_size):
            yield order[start:start + batch_size]

    # -- fit -------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, sample_weight=None, distribute=None,
            class_weight=None) -> History:
        """Train for `epochs` epochs; returns the `History` (`history.history["loss"]`, ...).

        `distribute` (a `dask.distributed.Client` or `convscope.distribute.DaskStrategy`), or x given
        as a dask array, trains data-parallel on a Dask cluster (`convscope.distribute.fit`).
        `x` may also be a generator, an iterable of batches or a `PyDataset` (models/data_adapters.py):
        its batches are `(x, y)` or `(x, y, sample_weight)`; `validation_data` likewise, with
        `validation_steps`.  `sample_weight` (arrays only) weights each sample's loss, as Keras; `class_weight`
        ({class index: weight}, arrays only) weights each training sample by its class, as Keras."""
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: give `class_weight` or `sample_weight`, not both (as Keras)")
        if class_weight is not None and (distribute is not None or is_dask_collection(x) or data_adapters.is_stream(x)):
            raise ValueError("fit: argument `class_weight` is supported for arrays x and y only (not yet for "
                             f"generators, datasets or data-parallel training), got x of type {type(x).__name__}")
        if distribute is not None or is_dask_collection(x):
            for arg, value in (("sample_weight", sample_weight), ("validation_steps", validation_steps)):
                if value is not None:
                    raise ValueError(f"fit: argument `{arg}` is not supported in data-parallel training "
                                     f"(distribute= or a dask array), got {arg} of type {type(value).__name__}")
            from ..distribute.fit import fit as distributed_fit   # distribute sits above models
            return distributed_fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                                   callbacks=callbacks, validation_split=validation_split,
                                   validation_data=validation_data, shuffle=shuffle, initial_epoch=initial_epoch,
                                   steps_per_epoch=steps_per_epoch, distribute=distribute)
        where = "fit"
        self._require_compiled(where)
        batch_size, epochs, initial_epoch, verbose, steps_per_epoch = check_fit_arguments(
            batch_size, epochs, initial_epoch, verbose, shuffle, steps_per_epoch, validation_split, where)
        if validation_steps is not None:
            validation_steps = _check_int(validation_steps, "validation_steps", where, 1)
        user_callbacks = check_callbacks(callbacks, where)
        split_made = False
        if data_adapters.is_stream(x):
            source = self._stream_source(x, y, validation_split, steps_per_epoch, shuffle, where, sample_weight)
            steps = steps_per_epoch or source.num_batches          # None: unknown until the end

            def epoch_batches():
                return self._checked_batches(source.epoch(steps_per_epoch), where)
        else:
            source = None
            x, y = self._check_data(x, y, where)
            w = data_adapters.check_sample_weight(sample_weight, len(x), where)
            if validation_data is None and validation_split:
                split_at = int(math.floor(len(x) * (1.0 - validation_split)))
                if split_at == 0 or split_at == len(x):
                    raise ValueError(f"{where}: validation_split={validation_split} of {len(x)} samples leaves "
                                     f"{split_at} for training and {len(x) - split_at} for validation; both "
                                     "need some")
                validation_data = (x[split_at:], y[split_at:], None if w is None else w[split_at:])   # checked
                x, y, w = x[:split_at], y[:split_at], None if w is None else w[:split_at]
                split_made = True
            if class_weight is not None:        # the training samples only, as Keras
                w = data_adapters.class_sample_weights(y, class_weight, where)
            steps = steps_per_epoch or math.ceil(len(x) / batch_size)
            stream = self._batch_stream(len(x), batch_size, shuffle)

            def epoch_batches():
                return ((x[i], y[i], None if w is None else w[i]) for i in itertools.islice(stream, steps))
        validate = self._validation(validation_data, validation_steps, batch_size, where, checked=split_made)

        history = History()
        extra = [ProgbarLogger(verbose)] if verbose else []
        callback_list = CallbackList(extra + user_callbacks + [history], model=self,
                                     params={"verbose": verbose, "epochs": epochs, "steps": steps})
        raise_on_nan = not any(isinstance(c, TerminateOnNaN) for c in user_callbacks)
        self.stop_training = False
        self.history = history
        callback_list.on_train_begin()
        resumed, self._initial_epoch = getattr(self, "_initial_epoch", None), None   # BackupAndRestore's
        initial_epoch = resumed or initial_epoch
        for epoch in range(initial_epoch, epochs):
            if source is None:
                self._reset_metrics(y, self._output_shape_for(x.shape, where))
            callback_list.on_epoch_begin(epoch)
            logs: Dict[str, float] = {}
            for batch, (xb, yb, wb) in enumerate(epoch_batches()):
                if source is not None and batch == 0:
                    self._reset_metrics(yb, self._output_shape_for(xb.shape, where))
                callback_list.on_train_batch_begin(batch)
                weights = {} if wb is None else {"sample_weight": wb}
                loss, output = self._train_step(xb, yb, where, epoch, batch, raise_on_nan, **weights)
                logs = self._update_metrics(loss, yb, output, len(xb))
                callback_list.on_train_batch_end(batch, dict(logs))
                if self.stop_training:
                    break
            if source is not None and not logs and epoch == initial_epoch and not self.stop_training:
                raise ValueError(f"{where}: `x` gave no batches; a generator or dataset must yield at least one "
                                 "batch (inputs, targets)")
            epoch_logs = dict(logs)
            if validate is not None:
                val_logs = validate(callback_list)
                epoch_logs.update({f"val_{key}": value for key, value in val_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            if source is not None and source.ran_out and epoch + 1 < epochs:
                if not source.warned:                                  # a one-shot stream read to its end
                    warnings.warn(data_adapters.RAN_OUT, stacklevel=2)
                break
            if self.stop_training:
                break
        callback_list.on_train_end()
        return history

    # -- input pipelines (models/data_adapters.py) --------------------------------------------------
    def _stream_source(self, x, y, validation_split, steps, shuffle, where: str,
                       sample_weight=None) -> data_adapters.BatchSource:
        """The batch source of a generator / iterable / PyDataset `x` (no `y`: its batches hold the targets)."""
        kind = "PyDataset" if data_adapters.is_py_dataset(x) else type(x).__name__
        for arg, value, what in (("y", y, "targets"), ("sample_weight", sample_weight, "sample weights")):
            if value is not None:
                raise ValueError(f"{where}: when `x` is a {kind}, `{arg}` should not be passed; the {what} must be "
                                 f"part of its batches (inputs, targets[, sample_weights]), got {arg} of type "
                                 f"{type(value).__name__}")
        if validation_split:
            raise ValueError(f"{where}: argument `validation_split` is only supported for arrays, not when `x` "
                             f"is a {kind}; pass `validation_data` instead, got "
                             f"validation_split={validation_split!r}")
        return data_adapters.BatchSource(x, steps, shuffle, where)

    def _checked_batches(self, batches, where: str):
        """Each `(x, y, sample_weight)` of a stream checked as `fit`'s arrays are (and built on the first)."""
        for xb, yb, wb in batches:
            if yb is None:
                raise ValueError(f"{where}: a batch of `x` holds inputs only; training and evaluating need "
                                 "(inputs, targets) or (inputs, targets, sample_weights)")
            xb, yb = self._check_data(xb, yb, where)
            yield xb, yb, data_adapters.check_sample_weight(wb, len(xb), where)

    def _validation(self, validation_data, validation_steps, batch_size: int, where: str, checked=False):
        """`validate(callback_list) -> logs` for `validation_data` (arrays or a stream), or None; `checked`:
        arrays already checked (the validation_split of x, y)."""
        if validation_data is None:
            return None
        if data_adapters.is_stream(validation_data):
            source = data_adapters.BatchSource(validation_data, validation_steps, False, where, "validation_data")

            def validate(callback_list):
                source.restart()       # a sized source starts again each epoch; a generator goes on
                batches = self._checked_batches(source.epoch(validation_steps), where)
                logs = self._evaluate_batches(batches, callback_list)
                if not logs:
                    warnings.warn(f"{where}: `validation_data` gave no batches this epoch (a generator read to its "
                                  "end gives none again); no val_ logs", stacklevel=3)
                return logs
            return validate
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            given = (f"a {type(validation_data).__name__} of {len(validation_data)} items"
                     if isinstance(validation_data, (tuple, list)) else repr(type(validation_data).__name__))
            raise ValueError(f"{where}: argument `validation_data` must be a tuple (x_val, y_val), got {given} "
                             "(also accepted: (x_val, y_val, val_sample_weights), a generator or a PyDataset)")
        x_val, y_val = validation_data[:2]
        if not checked:
            x_val, y_val = self._check_data(x_val, y_val, where, "x_val", "y_val")
        w_val = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            w_val = data_adapters.check_sample_weight(validation_data[2], len(x_val), where)
        steps = validation_steps

        def validate(callback_list):
            if w_val is None and steps is None:
                return self._evaluate_arrays(x_val, y_val, batch_size, callback_list)
            starts = list(range(0, len(x_val), batch_size))[:steps]
            return self._evaluate_batches(((x_val[s:s + batch_size], y_val[s:s + batch_size],
                                            None if w_val is None else w_val[s:s + batch_size]) for s in starts),
                                          callback_list)
        return validate

    def _evaluate_batches(self, batches, callback_list: CallbackList) -> Dict[str, float]:
        """Test steps over checked `(x, y, sample_weight)` batches, metrics reset at the first."""
        callback_list.on_test_begin()
        logs: Dict[str, float] = {}
        for batch, (xb, yb, wb) in enumerate(batches):
            if batch == 0:
                self._reset_metrics(yb, self._output_shape_for(xb.shape, "evaluate"))
            callback_list.on_test_batch_begin(batch)
            loss, output = self._test_step(xb, yb, **({} if wb is None else {"sample_weight": wb}))
            logs = self._update_metrics(loss, yb, output, len(xb))
            callback_list.on_test_batch_end(batch, dict(logs))
        callback_list.on_test_end(dict(logs))
        return logs

    def _batch_stream(self, count: int, batch_size: int, shuffle: bool) -> Iterator[np.ndarray]:
        """Batches across epochs, reshuffled at each pass: an epoch takes one pass, or with
        `steps_per_epoch` that many batches of the running stream (as Keras with arrays)."""
        while True:
            yield from self._batches(count, batch_size, shuffle)

    # -- evaluate ----------------------------------------------------------------------------------
    def _evaluate_arrays(self, x, y, batch_size: int, callback_list: CallbackList) -> Dict[str, float]:
        self._reset_metrics(y, self._output_shape_for(x.shape, "evaluate"))
        callback_list.on_test_begin()
        logs: Dict[str, float] = {}
        for batch, indices in enumerate(self._batches(len(x), batch_size, shuffle=False)):
            callback_list.on_test_batch_begin(batch)
            loss, output = self._test_step(x[indices], y[indices])
            logs = self._update_metrics(loss, y[indices], output, len(indices))
            callback_list.on_test_batch_end(batch, dict(logs))
        callback_list.on_test_end(dict(logs))
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", callbacks=None, return_dict=False,
                 steps=None, sample_weight=None):
        """Loss (and metrics) in inference mode: a float, a list [loss, *metrics], or a dict.  `x` may be
        a generator, an iterable of batches or a PyDataset (read to its end, or `steps` batches)."""
        where = "evaluate"
        self._require_compiled(where)
        batch_size = 32 if batch_size is None else _check_int(batch_size, "batch_size", where, 1)
        verbose = _check_verbose(verbose, where)
        if steps is not None:
            steps = _check_int(steps, "steps", where, 1)
        user_callbacks = check_callbacks(callbacks, where)
        extra = [ProgbarLogger(verbose)] if verbose else []
        if data_adapters.is_stream(x):
            source = self._stream_source(x, y, 0.0, steps, False, where, sample_weight)
            callback_list = CallbackList(extra + user_callbacks, model=self,
                                         params={"verbose": verbose, "steps": steps or source.num_batches})
            logs = self._evaluate_batches(self._checked_batches(source.epoch(steps), where), callback_list)
            if not logs:
                raise ValueError(f"{where}: `x` gave no batches; there is nothing to evaluate")
            return self._format_result(logs, return_dict)
        x, y = self._check_data(x, y, where)
        w = data_adapters.check_sample_weight(sample_weight, len(x), where)
        count = math.ceil(len(x) / batch_size) if steps is None else min(steps, math.ceil(len(x) / batch_size))
        callback_list = CallbackList(extra + user_callbacks, model=self, params={"verbose": verbose, "steps": count})
        if steps is None and w is None:
            logs = self._evaluate_arrays(x, y, batch_size, callback_list)
        else:
            logs = self._evaluate_batches(((x[s:s + batch_size], y[s:s + batch_size],
                                            None if w is None else w[s:s + batch_size])
                                           for s in range(0, len(x), batch_size)[:steps]), callback_list)
        return self._format_result(logs, return_dict)

    def _format_result(self, logs: Dict[str, float], return_dict: bool):
        if return_dict:
            return dict(logs)
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _predict_lazily(self, x, batch_size, verbose, steps, callbacks):
        """`predict` of a dask array: a lazy dask array (`convscope.distribute.predict`); of a generator,
        iterable or PyDataset: the outputs of its batches (`_predict_stream`); else None."""
        if isinstance(x, np.ndarray):
            return None
        if is_dask_collection(x):
            from ..distribute.predict import predict   # distribute sits above models: imported when used
            return predict(self, x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)
        if data_adapters.is_stream(x):
            return self._predict_stream(x, verbose, steps, callbacks)
        return None

    def _predict_stream(self, x, verbose, steps, callbacks):
        """Outputs for each batch of a generator / iterable / PyDataset (its inputs; targets and weights
        are ignored), concatenated, as Keras' `predict`."""
        where = f"{self._describe()}.predict"
        if steps is not None:
            steps = _check_int(steps, "steps", where, 1)
        _check_verbose(verbose, where)
        callback_list = CallbackList(check_callbacks(callbacks, where), model=self)
        source = data_adapters.BatchSource(x, steps, False, where)
        start_time = time.perf_counter()
        callback_list.on_predict_begin()
        pieces = []
        for batch, (xb, _, _) in enumerate(source.epoch(steps)):
            callback_list.on_predict_batch_begin(batch)
            pieces.append(self._predict_batch(xb, where))
            callback_list.on_predict_batch_end(batch, {"outputs": pieces[-1]})
        callback_list.on_predict_end()
        if not pieces:
            raise ValueError(f"{where}: `x` gave no batches; there is nothing to predict")
        if verbose != 0:
            elapsed = time.perf_counter() - start_time
            print(f"{len(pieces)}/{len(pieces)} - {elapsed:.0f}s {1000 * elapsed / len(pieces):.0f}ms/step")
        if isinstance(pieces[0], (list, tuple)):
            return type(pieces[0])(np.concatenate([p[i] for p in pieces]) for i in range(len(pieces[0])))
        if isinstance(pieces[0], dict):
            return {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
        return np.concatenate(pieces, axis=0)

    def _predict_batch(self, xb, where: str):
        """The model's outputs for one batch of inputs (arrays as `predict` takes them)."""
        return self.predict(xb, batch_size=max(_batch_length(xb), 1), verbose=0)

    # -- single batches ----------------------------------------------------------------------------
    def train_on_batch(self, x, y, return_dict=False):
        """One gradient step on this batch; returns its loss (and metrics) before the update."""
        where = "train_on_batch"
        self._require_compiled(where)
        x, y = self._check_data(x, y, where)
        self._reset_metrics(y, self._output_shape_for(x.shape, where))
        loss, output = self._train_step(x, y, where, 0, 0, raise_on_nan=True)
        return self._format_result(self._update_metrics(loss, y, output, len(x)), return_dict)

    def predict_on_batch(self, x):
        """The outputs for this one batch in inference mode, as Keras' `predict_on_batch` (`predict` over it as
        one batch, nothing printed)."""
        return self._predict_batch(x, "predict_on_batch")

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and metrics) of this batch in inference mode."""
        where = "test_on_batch"
        self._require_compiled(where)
        x, y = self._check_data(x, y, where)
        self._reset_metrics(y, self._output_shape_for(x.shape, where))
        loss, output = self._test_step(x, y)
        return self._format_result(self._update_metrics(loss, y, output, len(x)), return_dict)

    # -- saving (Keras' method names; the work is convscope.io's) ----------------------------------
    def save(self, filepath, overwrite: bool = True):
        """Write the model, its compile settings and optimizer state to one file (`convscope.io.save_model`)."""
        from ..io import save_model        # io sits above models; imported when used, as Keras does
        return save_model(self, filepath, overwrite=overwrite)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras' export for inference: `format="onnx"` (with `opset_version=`) writes an ONNX file
        (`convscope.io.onnx_export`); Keras' other formats need TensorFlow and are refused."""
        from ..io.onnx_export import export_model     # io sits above models, as for save
        return export_model(self, filepath, format=format, verbose=verbose, input_signature=input_signature,
                            **kwargs)

    def save_weights(self, filepath, overwrite: bool = True):
        """Write only the weights (`convscope.io.save_weights`)."""
        from ..io import save_weights
        return save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath) -> None:
        """Read weights written by `save_weights` or `save` (`convscope.io.load_weights`)."""
        from ..io import load_weights
        load_weights(self, filepath)


def _loss_from_config(loss):
    """A loss as `get_compile_config` wrote it, with each serialized Loss object (a dict with
    'class_name') an object again, so a graph model does not read its keys as output names."""
    if isinstance(loss, dict) and "class_name" in loss:
        return losses_module.deserialize(loss)
    if isinstance(loss, dict):
        return {key: _loss_from_config(value) for key, value in loss.items()}
    if isinstance(loss, list):
        return [_loss_from_config(value) for value in loss]
    return loss
