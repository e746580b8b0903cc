"""The execution plan: a model's layers grouped into stages, decided once per model and mode.

`fit`, `predict`, `evaluate` and `utils.profile` all run the same plan.  A stage runs
`forward(x, training) -> (y, ctx)` and `backward(ctx, grad) -> (grad, [(variable, grad)])`;
the ctx is per call, never kept on a layer.  The fusion rules read each layer's
`describe()` (a `layers.spec.LayerSpec`), not its class:

Inference (nothing kept for a backward pass) — a convolution takes the layers after it
that act per channel or per window into one op (`ops.conv2d_inference`), each block of
images finished in cache:

    conv2d (channels_last, activation "linear" or "relu", no activity regularizer)
      -> batch_norm (last axis)  -> activation (plain relu)  -> pool (channels_last)

each optional, in this order, with dropouts in between (the identity in inference).

Training — a conv2d with a "relu" activation and the max pooling right after it run
forward as one op (`ops.conv2d_max_pool_forward`), and backward the pooling's gradient
goes straight through the ReLU (the pooled values give its mask): the convolution's
full-size output is neither written nor read.  A batch_norm -> [add] -> relu (a ResNet
block's, the Add's other operand from the graph; a MobileNet's ReLU(6.)) runs as one `ops.batch_norm_relu_train`
(`BatchNormReluStage`): the normalized tensor and the sum are never written.

Inference, MobileNet/ResNet blocks — where the stage above covers fewer layers, a convolution
and what follows it run as one op with its whole epilogue (`ops.fused_inference`):

    [zero_pad2d]  -> conv2d | depthwise_conv2d (channels_last; activation linear, relu, relu6
      or hard_silu) -> batch_norm (last axis) -> add (a graph's residual) -> activation

each optional but the convolution, in this order, dropouts in between (`EpilogueStage`); the
padding is folded into a 'valid' convolution's own, the batch norm into the epilogue as its
per-channel map, and the residual's other operand comes from the graph (`graph_plan.py`).  Three
such stages that make a MobileNetV2 inverted-residual block (1x1 expand, 3x3 depthwise, 1x1 project,
float32), or the last two of them (a block without expansion), run as one `InvertedResidualStage`
(`ops.inverted_residual`: band by band of output rows, the expanded tensor kept in cache).

A zero_pad2d followed by a 'valid' max pooling runs as one `ops.max_pool2d_zero_padded`
(`PaddedMaxPoolStage`): the padded copy is never written.

Either way the numbers are those of the layers run one by one.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Sequence

import numpy as np

from .. import backend, ops
from ..layers.base import Layer, check_kept_for_backward
from ..layers.dense import Dense
from ..layers.kernel_bias import Preactivation
from ..layers.spec import LayerSpec
from ..ops import compiled, fused, fused_inference, inverted_residual, linear
from ..ops.normalization import layer_affine

INFERENCE = "inference"
TRAINING = "training"
LAYERS = "layers"           # each layer alone (training-mode calls that keep nothing, and the reverse)
PREPARED_SHAPES = 8         # input shapes a stage keeps its op prepared for (predict's batches, its last one, ...)

# The roles a fused inference stage takes after its convolution, in order.
_ROLES = ("norm", "relu", "pool")
# ... and those of an `EpilogueStage`.
_EPILOGUE_ROLES = ("norm", "add", "act")



def stage_input(stage, x):
    """`x` as the stage's first layer takes it (`layer_input`)."""
    return layer_input(stage.layers[0], x)


def layer_input(layer, x):
    """An array `x` as Keras hands it to the layer (the plans run the layers' ops without `Layer.__call__`): a
    float one in the layer's float type (a float64 model inside a float32 one); an integer one (indices, uint8
    pixels) as it is, but cast for the layers that cast it themselves in Keras (`casts_integer_inputs`: the
    preprocessing and augmentation layers).  Lists (a merge's inputs) as they are."""
    dtype = getattr(layer, "dtype", None)
    if dtype is None or not isinstance(x, np.ndarray) or x.dtype == dtype:
        return x
    if x.dtype.kind == "f" or getattr(layer, "casts_integer_inputs", False):
        return x.astype(dtype)
    return x

class LayerStage:
    """One layer on its own."""

    def __init__(self, layer: Layer):
        self.layers = [layer]
        self.layer = layer

    def forward(self, x, training: bool = False):
        return self.layer.forward(x, training=training)

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        return self.layer.backward(ctx, grad, need_input_grad=need_input_grad, **options)


class DenseStage:
    """Inference: a Dense layer as one `ops.linear.prepare_dense_inference` op, checked and its path chosen once
    per input (a few rows: the product, bias and ReLU in one compiled call; a classifier's softmax in place
    after it); an activation it does not take after."""

    def __init__(self, layer: Layer, spec: LayerSpec):
        self.layers = [layer]
        self.layer, self.spec = layer, spec
        fused_activation = spec.activation in linear.PREPARED_ACTIVATIONS and not spec.activation_params
        self.activation = spec.activation if fused_activation else None
        self._prepared = {}     # as EpilogueStage's

    @staticmethod
    def takes(layer: Layer, spec: LayerSpec) -> bool:
        """A Dense layer whose forward pass is Dense's own (a subclass's own `forward` runs as it is)."""
        return spec.kind == "dense" and type(layer).forward is Dense.forward

    def forward(self, x, training: bool = False):
        if backend.keeps_for_backward():    # a loss fused with the last activation (evaluate) reads its ctx
            return self.layer.forward(x, training=training)
        kernel, bias = self.spec.weights["kernel"].value, _value(self.spec.weights["bias"])
        x = np.asarray(x)
        run = _prepared_run(self, x, None, lambda: linear.prepare_dense_inference(
            x, kernel, bias, self.activation or "linear"))
        y = run(x, kernel, bias)
        return (y if self.activation else self.layer.activation.forward(y)), None

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        check_kept_for_backward(self.layer, None)


class ConvInferenceStage:
    """conv2d [-> batch_norm] [-> relu] [-> pool], dropouts between: one `ops.conv2d_inference`."""

    def __init__(self, layers: Sequence[Layer], specs: Sequence[LayerSpec]):
        self.layers = list(layers)
        self.spec = specs[0]
        self.norm = _norm_in(layers, specs)
        self.then = "relu" if any(spec.kind == "activation" for spec in specs[1:]) else "linear"
        pool = next((spec for spec in specs[1:] if spec.kind == "pool"), None)
        self.pool = None if pool is None else (pool.pool, pool.window.size, pool.window.strides,
                                               pool.window.padding.upper())
        self._prepared = {}     # as EpilogueStage's: the op prepared per input (shape, dtype) and kernel switch

    def forward(self, x, training: bool = False):
        spec, window = self.spec, self.spec.window
        kernel, bias = spec.weights["kernel"].value, _value(spec.weights["bias"])
        scale, shift = _norm_map(self.norm)     # the weights and moving statistics may change between calls
        x = np.asarray(x)
        run = _prepared_run(self, x, None, lambda: fused.prepare_conv2d_inference(
            x, kernel, window.strides, window.padding.upper(), window.dilation, spec.groups, bias=bias,
            activation=spec.activation, scale=scale, shift=shift, then=self.then, pool=self.pool))
        return run(x, kernel, bias, scale, shift), None

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        check_kept_for_backward(self.layers[0], None)


class ConvReluMaxPoolStage:
    """Training: conv2d('relu') and the max pooling after it as one op; backward through the ReLU
    from the pooled values."""

    def __init__(self, conv: Layer, pool: Layer):
        self.layers = [conv, pool]
        self.conv, self.spec, self.window = conv, conv.describe(), pool.describe().window

    def forward(self, x, training: bool = False):
        spec, pool, window = self.spec, self.window, self.spec.window
        pooled, conv_ctx, pool_ctx = ops.conv2d_max_pool_forward(
            x, spec.weights["kernel"].value, window.strides, window.padding.upper(), window.dilation,
            spec.groups, bias=_value(spec.weights["bias"]), activation="relu",
            pool=(pool.size, pool.strides, pool.padding.upper()))
        return pooled, (conv_ctx, pool_ctx, pooled)

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        conv_ctx, pool_ctx, pooled = ctx
        grad_z = ops.max_pool2d_backward(grad, pool_ctx, relu_output=pooled)
        return self.conv.backward(Preactivation(conv_ctx, None, None), grad_z, need_input_grad=need_input_grad,
                                  from_preactivation=True)


class BatchNormReluStage:
    """Training: batch_norm [-> add] -> relu (capped or not) as one `ops.batch_norm_relu_train` (its residual
    the Add's other operand, from the graph); backward the ReLU's mask inside the batch norm's two passes.  Where
    the batch norm would not use its batch statistics (frozen: trainable False) or a layer has an activity
    regularizer, set since the plan was made, the layers run one by one instead."""

    def __init__(self, layers: Sequence[Layer], specs: Sequence[LayerSpec]):
        self.layers = list(layers)
        self.norm, self.has_add = layers[0], any(spec.kind == "merge" for spec in specs)
        self.max_value = _fused_relu(specs[-1])[1]

    def _fused(self, training: bool) -> bool:
        return (training and self.norm.trainable and self.norm.built
                and all(layer.activity_regularizer is None for layer in self.layers))

    def forward(self, x, training: bool = False, residual=None):
        if not self._fused(training):
            return self._one_by_one(x, training, residual)
        norm = self.norm
        y, ctx, mean, var = ops.batch_norm_relu_train(x, _value(norm.gamma), _value(norm.beta), norm.axis % x.ndim,
                                                      norm.epsilon, residual, self.max_value)
        ops.moving_average_update(norm.moving_mean.value, mean, norm.momentum)
        ops.moving_average_update(norm.moving_variance.value, var, norm.momentum)
        return y, ("fused", ctx)

    def _one_by_one(self, x, training, residual):
        contexts = []
        for layer in self.layers:
            is_add = layer.describe().kind == "merge"
            x, ctx = layer.forward([x, residual] if is_add else x, training=training)
            contexts.append(ctx)
        return x, ("layers", contexts)

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        """(input gradient, or [input's, residual's] with an Add; [(variable, gradient)])."""
        kind, saved = ctx
        if kind == "layers":
            return self._one_by_one_backward(saved, grad)
        grad_x, grad_gamma, grad_beta, grad_residual = ops.batch_norm_relu_backward(grad, saved)
        pairs = [(variable, value) for variable, value in ((self.norm.gamma, grad_gamma), (self.norm.beta, grad_beta))
                 if variable is not None]
        return ([grad_x, grad_residual] if self.has_add else grad_x), pairs

    def _one_by_one_backward(self, contexts, grad):
        pairs, grad_residual = [], None
        for layer, ctx in zip(reversed(self.layers), reversed(contexts)):
            grad, layer_pairs = layer.backward(ctx, grad)
            if layer.describe().kind == "merge":
                grad, grad_residual = grad
            pairs += layer_pairs
        return ([grad, grad_residual] if self.has_add else grad), pairs


class PaddedMaxPoolStage:
    """Inference: zero_pad2d -> a 'valid' max pooling as one `ops.max_pool2d_zero_padded` (the padded copy
    never written; a ResNet's stem)."""

    def __init__(self, layers: Sequence[Layer], specs: Sequence[LayerSpec]):
        self.layers = list(layers)
        self.pads, window = specs[0].pads, specs[1].window
        self.window = (window.size, window.strides)

    def forward(self, x, training: bool = False):
        return ops.max_pool2d_zero_padded(x, self.pads, *self.window), None

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        check_kept_for_backward(self.layers[0], None)


def _padded_pool_run(layers, specs, start: int) -> int:
    """2 where a channels_last zero_pad2d is followed by a 'valid' channels_last max pooling of its dtype;
    else 0."""
    if start + 1 >= len(layers):
        return 0
    pad, pool = specs[start], specs[start + 1]
    return 2 if (pad.kind == "zero_pad2d" and pad.data_format == "channels_last"
                 and layers[start].activity_regularizer is None and pool.kind == "pool" and pool.pool == "max"
                 and pool.data_format == "channels_last" and len(pool.window.size) == 2
                 and pool.window.padding == "valid"
                 and layers[start + 1].dtype == layers[start].dtype) else 0


def build_plan(layers: Sequence[Layer], mode: str) -> List:
    """The stages of a chain of layers for `mode` (INFERENCE, TRAINING or LAYERS)."""
    specs = [layer.describe() for layer in layers]
    stages, position = [], 0
    while position < len(layers):
        if mode == INFERENCE and _padded_pool_run(layers, specs, position):
            stages.append(PaddedMaxPoolStage(layers[position:position + 2], specs[position:position + 2]))
            position += 2
            continue
        size = (_inference_run(layers, specs, position) if mode == INFERENCE else
                _training_run(layers, specs, position) if mode == TRAINING else 1)
        longer = _epilogue_run(layers, specs, position) if mode == INFERENCE else 0
        lone = longer == 1 and (specs[position].kind == "depthwise_conv2d"
                                or (size == 1 and specs[position].kind == "conv2d"))
        if longer > size or lone or (longer == size > 1 and _pointwise(specs[position])):
            stages.append(EpilogueStage(layers[position:position + longer], specs[position:position + longer]))
            position += longer
            continue
        if size > 1 and mode == INFERENCE:
            stages.append(ConvInferenceStage(layers[position:position + size], specs[position:position + size]))
        elif size > 1 and specs[position].kind == "batch_norm":
            stages.append(BatchNormReluStage(layers[position:position + size], specs[position:position + size]))
        elif size > 1:
            stages.append(ConvReluMaxPoolStage(layers[position], layers[position + 1]))
        elif mode == INFERENCE and DenseStage.takes(layers[position], specs[position]):
            stages.append(DenseStage(layers[position], specs[position]))
        else:
            stages.append(LayerStage(layers[position]))
        position += size
    return _merge_inverted_residuals(stages) if mode == INFERENCE else stages


def _pointwise(spec: LayerSpec) -> bool:
    """A 1x1 conv2d of one group: its `EpilogueStage`'s op chooses among conv2d_inference and the 1x1 products
    (`fused_inference`'s paths: one image's columns shared, a large product's matrix packed)."""
    return spec.kind == "conv2d" and spec.groups == 1 and tuple(spec.window.size) == (1, 1)


def _merge_inverted_residuals(stages: List) -> List:
    """Each run of three `EpilogueStage`s that is a MobileNetV2 inverted-residual block, or of two that is one
    without expansion (`InvertedResidualStage.fits`), as one stage."""
    merged, position = [], 0
    while position < len(stages):
        for size in (3, 2):
            parts = [_as_epilogue_stage(stage) for stage in stages[position:position + size]]
            if len(parts) == size and InvertedResidualStage.fits(parts):
                merged.append(InvertedResidualStage(*([None] * (3 - size) + parts)))
                position += size
                break
        else:
            merged.append(stages[position])
            position += 1
    return merged


def _fusable_conv(layer: Layer, spec: LayerSpec, activations=("linear", "relu")) -> bool:
    return (spec.kind == "conv2d" and spec.data_format == "channels_last" and not spec.activation_params
            and spec.activation in activations and layer.activity_regularizer is None)


def _role(spec: LayerSpec) -> Optional[str]:
    """The role a layer can take in a fused inference stage (None: it ends the stage)."""
    if spec.kind == "batch_norm" and spec.axis in (-1, 3):
        return "norm"
    if spec.kind == "activation" and spec.plain_relu:
        return "relu"
    if spec.kind == "pool" and spec.data_format == "channels_last" and spec.pool in ("max", "avg"):
        return "pool"
    return None


def _inference_run(layers, specs, start: int) -> int:
    """How many layers from `start` run as one fused inference stage (1: the layer alone)."""
    head = layers[start]
    if not _fusable_conv(head, specs[start]):
        return 1
    roles = list(_ROLES)
    end = start + 1
    while end < len(layers) and roles and layers[end - 1].activity_regularizer is None:
        layer, spec = layers[end], specs[end]
        if layer.dtype != head.dtype:
            break
        role = "dropout" if spec.kind == "dropout" else _role(spec)
        if role != "dropout":
            if role not in roles:
                break
            roles = roles[roles.index(role) + 1:]
        end += 1
    while end - 1 > start and specs[end - 1].kind == "dropout":    # a trailing dropout stays alone
        end -= 1
    return end - start


def _training_run(layers, specs, start: int) -> int:
    """2 for a conv2d('relu') followed by a channels_last max pooling; 2 or 3 for a batch_norm [-> add] -> relu
    (`_norm_relu_run`); else 1."""
    if start + 1 >= len(layers):
        return 1
    norm_relu = _norm_relu_run(layers, specs, start)
    if norm_relu:
        return norm_relu
    head, spec, after = layers[start], specs[start], specs[start + 1]
    if (_fusable_conv(head, spec, ("relu",)) and after.kind == "pool" and after.pool == "max"
            and after.data_format == "channels_last" and layers[start + 1].dtype == head.dtype):
        return 2
    return 1


def _fused_relu(spec: LayerSpec) -> tuple:
    """`_relu_cap` of an activation layer `BatchNormReluStage` computes; (False, None) for other layers."""
    return _relu_cap(spec) if spec.kind == "activation" else (False, None)


def _norm_relu_run(layers, specs, start: int) -> int:
    """How many layers from `start` make a `BatchNormReluStage` (0: none): a BatchNormalization (float32 or
    float64) -> [a two-operand Add] -> a ReLU (`_fused_relu`) of its dtype, with no activity regularizer."""
    norm = layers[start]
    if specs[start].kind != "batch_norm" or norm.dtype not in ("float32", "float64"):
        return 0
    end = start + 1
    if end < len(layers) and specs[end].kind == "merge" and specs[end].op == "add":
        end += 1
    if (end < len(layers) and _fused_relu(specs[end])[0]
            and all(layer.dtype == norm.dtype and layer.activity_regularizer is None
                    for layer in layers[start:end + 1])):
        return end + 1 - start
    return 0


class EpilogueStage:
    """[zero_pad2d] -> conv2d | depthwise_conv2d -> [batch_norm] -> [add] -> [activation], dropouts between:
    one `ops.fused_inference` call; `forward(x, training, residual=None)` takes the Add's other operand."""

    def __init__(self, layers: Sequence[Layer], specs: Sequence[LayerSpec]):
        self.layers = list(layers)
        start = 1 if specs[0].kind == "zero_pad2d" else 0
        self.pads = specs[0].pads if start else None
        self.head, self.spec = layers[start], specs[start]
        self.activation = _epilogue_activation(self.spec)
        self.norm = _norm_in(layers, specs)
        self.then = next((_epilogue_activation(spec) for spec in specs[start + 1:] if spec.kind == "activation"),
                         "linear")
        # the op checked and its path chosen once per input (shape, dtype), residual and kernel switch:
        # the plan's, not a call's (entries are added whole; threads may race to add the same one)
        self._prepared = {}

    def _padding(self):
        window = self.spec.window
        if self.pads is None:
            return window.padding.upper()
        (top, bottom), (left, right) = self.pads
        return [[0, 0], [top, bottom], [left, right], [0, 0]]

    def values(self):
        """(kernel, bias, scale, shift) for this call: read per call, since the weights and the moving
        statistics may change between calls."""
        spec = self.spec
        scale, shift = _norm_map(self.norm)
        return spec.weights["kernel"].value, _value(spec.weights["bias"]), scale, shift

    def arguments(self) -> tuple:
        """(kernel, the `ops.fused_inference` epilogue arguments of this stage but its residual) for this call,
        from the weights as `values` reads them."""
        kernel, bias, scale, shift = self.values()
        return kernel, {"bias": bias, "activation": self.activation, "scale": scale, "shift": shift, "then": self.then}

    def forward(self, x, training: bool = False, residual=None):
        spec, window = self.spec, self.spec.window
        kernel, bias, scale, shift = self.values()
        x = np.asarray(x)

        def prepare():
            op = (fused_inference.prepare_depthwise_inference if spec.kind == "depthwise_conv2d" else
                  fused_inference.prepare_conv2d_epilogue_inference)
            extra = {} if spec.kind == "depthwise_conv2d" else {"groups": spec.groups}
            return op(x, kernel, window.strides, self._padding(), window.dilation, bias=bias,
                      activation=self.activation, scale=scale, shift=shift, residual=residual, then=self.then,
                      **extra)

        run = _prepared_run(self, x, residual, prepare)
        return run(x, kernel, bias, scale, shift, residual), None

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        check_kept_for_backward(self.layers[0], None)


def _prepared_run(stage, x, residual, prepare):
    """The stage's op prepared for this input (shape, dtype), residual and kernel switch: from its
    `_prepared` (the plan's, not a call's: entries are added whole; threads may race to add the same one),
    else `prepare()`, kept for the next call (at most `PREPARED_SHAPES` kept)."""
    key = (x.shape, x.dtype, None if residual is None else (residual.shape, residual.dtype), compiled.active())
    run = stage._prepared.get(key)
    if run is None:
        run = prepare()
        if len(stage._prepared) >= PREPARED_SHAPES:
            stage._prepared = {}
        stage._prepared[key] = run
    return run


def _as_epilogue_stage(stage):
    """A `ConvInferenceStage` an `EpilogueStage` covers whole (a block's projection: conv -> BN, no pooling)
    as that `EpilogueStage`; any other stage as it is."""
    if isinstance(stage, ConvInferenceStage) and stage.pool is None:
        specs = [layer.describe() for layer in stage.layers]
        if _epilogue_run(stage.layers, specs, 0) == len(stage.layers):
            return EpilogueStage(stage.layers, specs)
    return stage


class InvertedResidualStage:
    """[expand 1x1 conv] -> depthwise 3x3 -> project 1x1 conv, each an `EpilogueStage` (BN and activations
    in its epilogue, the block's residual Add in the last): one `ops.inverted_residual_inference`, which
    computes the block band by band of output rows so the expanded (or depthwise) tensor stays in cache.
    `expand` None: a block without expansion (MobileNetV2's first, a MobileNet v1 pair)."""

    def __init__(self, expand: Optional[EpilogueStage], depthwise: EpilogueStage, project: EpilogueStage):
        self.parts = (expand, depthwise, project)
        self.layers = (expand.layers if expand is not None else []) + depthwise.layers + project.layers
        self._prepared = {}     # as EpilogueStage's: per input (shape, dtype), residual and kernel switch

    @staticmethod
    def fits(stages) -> bool:
        """Three `EpilogueStage`s: a 1x1 stride-1 conv2d, a 3x3 depthwise (multiplier 1, dilation 1, the same
        stride 1 or 2 both ways), a 1x1 stride-1 conv2d; or the last two; float32; a residual Add (if any) in
        the last only."""
        if len(stages) not in (2, 3) or not all(isinstance(stage, EpilogueStage) for stage in stages):
            return False
        depthwise, project = stages[-2:]
        pointwise = all(stage.spec.kind == "conv2d" and stage.pads is None and stage.spec.groups == 1
                        and tuple(stage.spec.window.size) == (1, 1) and tuple(stage.spec.window.strides) == (1, 1)
                        and tuple(stage.spec.window.dilation) == (1, 1) for stage in stages[:-2] + [project])
        window = depthwise.spec.window
        return (pointwise and depthwise.spec.kind == "depthwise_conv2d" and depthwise.spec.depth_multiplier == 1
                and tuple(window.size) == (3, 3) and tuple(window.dilation) == (1, 1)
                and window.strides[0] == window.strides[1] and window.strides[0] in (1, 2)
                and all(layer.dtype == "float32" for stage in stages for layer in stage.layers)
                and not any(layer.describe().kind == "merge" for stage in stages[:-1] for layer in stage.layers))

    def forward(self, x, training: bool = False, residual=None):
        first, middle, last = self.parts
        expand, expand_epilogue = (None, {}) if first is None else first.arguments()
        depthwise, depthwise_epilogue = middle.arguments()
        project, project_epilogue = last.arguments()
        x = np.asarray(x)
        run = _prepared_run(self, x, residual, lambda: inverted_residual.prepare_inverted_residual_inference(
            x, expand, depthwise, project, middle.spec.window.strides, middle._padding(), expand_epilogue,
            depthwise_epilogue, project_epilogue, residual=residual))
        return run(x, expand, depthwise, project, expand_epilogue, depthwise_epilogue, project_epilogue, residual), None

    def backward(self, ctx, grad, need_input_grad: bool = True, **options):
        check_kept_for_backward(self.layers[0], None)


def _epilogue_activation(spec: LayerSpec) -> Optional[str]:
    """The `ops.fused_inference` name of the activation a layer ends with (None: not one it fuses)."""
    name, params = spec.activation or "linear", spec.activation_params
    if name == "relu":
        relu, cap = _relu_cap(spec)
        return None if not relu else "relu" if cap is None else "relu6" if cap == 6.0 else None
    if params:
        return None
    return name if name in fused_inference.INFERENCE_ACTIVATIONS else None


def _relu_cap(spec: LayerSpec) -> tuple:
    """(True, max_value) for a layer ending with a ReLU without slope or threshold (max_value None, or the
    cap: a MobileNet's ReLU(6.)), else (False, None)."""
    params = spec.activation_params
    if (spec.activation != "relu" or set(params) - {"negative_slope", "max_value", "threshold"}
            or params.get("negative_slope") or params.get("threshold")):
        return False, None
    return True, params.get("max_value")


def _epilogue_role(spec: LayerSpec) -> Optional[str]:
    """The role a layer can take after the convolution of an `EpilogueStage` (None: it ends the stage)."""
    if spec.kind == "batch_norm" and spec.axis in (-1, 3):
        return "norm"
    if spec.kind == "merge" and spec.op == "add":
        return "add"
    if spec.kind == "activation" and _epilogue_activation(spec) is not None:
        return "act"
    return None


def _epilogue_head(layer: Layer, spec: LayerSpec) -> bool:
    return (spec.kind in ("conv2d", "depthwise_conv2d") and spec.data_format == "channels_last"
            and layer.activity_regularizer is None and _epilogue_activation(spec) is not None
            and (spec.kind == "conv2d" or spec.depth_multiplier is not None))


def _epilogue_run(layers, specs, start: int) -> int:
    """How many layers from `start` run as one `EpilogueStage` (0: none does)."""
    head = start
    if (specs[start].kind == "zero_pad2d" and specs[start].data_format == "channels_last"
            and start + 1 < len(layers) and specs[start + 1].window is not None
            and specs[start + 1].window.padding == "valid" and layers[start + 1].dtype == layers[start].dtype):
        head = start + 1
    if not _epilogue_head(layers[head], specs[head]):
        return 0
    roles, end = list(_EPILOGUE_ROLES), head + 1
    while end < len(layers) and roles and layers[end - 1].activity_regularizer is None:
        layer, spec = layers[end], specs[end]
        if layer.dtype != layers[head].dtype:
            break
        role = "dropout" if spec.kind == "dropout" else _epilogue_role(spec)
        if role != "dropout":
            if role not in roles:
                break
            roles = roles[roles.index(role) + 1:]
        end += 1
    while end - 1 > head and specs[end - 1].kind == "dropout":    # a trailing dropout stays alone
        end -= 1
    return end - start


class _Norm(NamedTuple):
    """A stage's BatchNormalization layer and its variables (gamma, beta None where it has none), looked up
    once: `_norm_map` reads them at every call."""
    layer: Layer
    gamma: Any
    beta: Any
    mean: Any
    var: Any


def _norm_in(layers, specs) -> Optional[_Norm]:
    """The first BatchNormalization among a stage's layers as a `_Norm`, None without one."""
    for layer, spec in zip(layers, specs):
        if spec.kind == "batch_norm":
            w = spec.weights
            return _Norm(layer, w["gamma"], w["beta"], w["moving_mean"], w["moving_variance"])
    return None


def _norm_map(norm: Optional[_Norm]) -> tuple:
    """A stage's BatchNormalization as its inference map (scale, shift) from its variables as they are now;
    (None, None) without one."""
    if norm is None:
        return None, None
    mean = norm.mean.value
    return layer_affine(_value(norm.gamma), _value(norm.beta), mean, norm.var.value, norm.layer.epsilon, mean.dtype)


def _value(variable) -> Optional[np.ndarray]:
    return None if variable is None else variable.value
