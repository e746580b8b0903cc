"""ONNX emitters of convscope's layers: one small function per kind of layer, in a table keyed by
class name (`EMITTERS`).  Each takes the graph builder and a `Call` (the layer, its input Values,
its output Keras shapes, an optional BatchNormalization folded into it) and returns the output
Value(s).  Windowed layers read their inputs channels first (`GraphBuilder.channels_first`);
element-wise layers keep whatever layout their input has."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List

import numpy as np

from ..ops import shapes
from ..ops.activations import get_activation
from ..ops.augment import center_crop_window
from ..ops.batch_dot import NORMALIZE_EPSILON as DOT_EPSILON, batch_dot_axes
from ..ops.einsum_dense import einsum_subscripts
from ..ops.resize import aspect_window, center_crop_resizes
from .onnx_graph import GraphBuilder, Value

__all__ = ["Call", "EMITTERS", "emit_activation", "CannotExport", "bn_affine"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class CannotExport(Exception):
    """A layer (or one of its settings) that has no ONNX form here; the walk names the layer."""


class Call:
    """One call of a layer: `inputs` (Values), `out_shapes` (Keras shapes), `args`/`kwargs` (an
    operation's node arguments, Values in the tensors' places), `fold` (a BatchNormalization layer
    whose map is folded into this convolution's weights, or None)."""

    def __init__(self, layer, inputs: List[Value], out_shapes: List[tuple], args=None, kwargs=None, fold=None):
        self.layer, self.inputs, self.out_shapes = layer, inputs, out_shapes
        self.args, self.kwargs, self.fold = args, kwargs or {}, fold

    @property
    def x(self) -> Value:
        return self.inputs[0]

    @property
    def hint(self) -> str:
        return self.layer.name


def _f32(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


# -- activations --------------------------------------------------------------------------------
def emit_activation(b: GraphBuilder, x: Value, activation, hint: str) -> Value:
    """`activation` (an ops Activation, or a name) applied to x, in x's layout."""
    act = get_activation(activation) if not hasattr(activation, "params") else activation
    name, p = act.name, act.params
    if name == "linear":
        return x
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "softsign": "Softsign", "softplus": "Softplus"}
    if name in simple:
        return b.value(simple[name], [x.name], x, hint=hint)
    if name in ("softmax", "log_softmax"):
        op = "Softmax" if name == "softmax" else "LogSoftmax"
        return b.value(op, [x.name], x, hint=hint, axis=x.axis(p.get("axis", -1)))
    if name == "relu":
        return _relu(b, x, p.get("negative_slope", 0.0) or 0.0, p.get("max_value"), p.get("threshold", 0.0) or 0.0,
                     hint)
    if name == "relu6":
        return _relu(b, x, 0.0, 6.0, 0.0, hint)
    if name == "leaky_relu":
        return b.value("LeakyRelu", [x.name], x, hint=hint, alpha=float(p.get("negative_slope", 0.2)))
    if name == "elu":
        return b.value("Elu", [x.name], x, hint=hint, alpha=float(p.get("alpha", 1.0)))
    if name == "selu":
        return b.value("Selu", [x.name], x, hint=hint, alpha=_SELU_ALPHA, gamma=_SELU_SCALE)
    if name == "hard_sigmoid":
        return b.value("HardSigmoid", [x.name], x, hint=hint, alpha=1.0 / 6.0, beta=0.5)
    if name in _PIECEWISE:
        return Value(_PIECEWISE[name](b, x.name, p, hint), x.shape, x.layout)
    return _gated(b, x, name, p, hint)


def _clip(b: GraphBuilder, x: str, low: float, high: float, hint: str) -> str:
    return b.op("Clip", [x, b.scalar(low), b.scalar(high)], hint)


def _affine(b: GraphBuilder, x: str, scale: float, shift: float, hint: str) -> str:
    return b.op("Add", [b.op("Mul", [x, b.scalar(scale)], hint), b.scalar(shift)], hint)


def _squareplus(b: GraphBuilder, x: str, p, hint: str) -> str:
    root = b.op("Sqrt", [b.op("Add", [b.op("Mul", [x, x], hint), b.scalar(float(p.get("b", 4.0)))], hint)], hint)
    return b.op("Mul", [b.op("Add", [x, root], hint), b.scalar(0.5)], hint)


def _sparse_plus(b: GraphBuilder, x: str, p, hint: str) -> str:
    """max(x, (clip(x, -1, 1) + 1)² / 4): 0 up to -1, the parabola on (-1, 1), x beyond (they meet at 1)."""
    shifted = b.op("Add", [_clip(b, x, -1.0, 1.0, hint), b.scalar(1.0)], hint)
    return b.op("Max", [x, b.op("Mul", [b.op("Mul", [shifted, shifted], hint), b.scalar(0.25)], hint)], hint)


# Activations ONNX has no one op for (or whose op differs): name -> emitter(builder, x, params, hint).
_PIECEWISE = {
    "celu": lambda b, x, p, h: b.op("Celu", [x], h, alpha=float(p.get("alpha", 1.0))),
    "hard_tanh": lambda b, x, p, h: _clip(b, x, -1.0, 1.0, h),
    "hard_shrink": lambda b, x, p, h: b.op("Shrink", [x], h, lambd=float(p.get("threshold", 0.5)), bias=0.0),
    "soft_shrink": lambda b, x, p, h: b.op("Shrink", [x], h, lambd=float(p.get("threshold", 0.5)),
                                           bias=float(p.get("threshold", 0.5))),
    "tanh_shrink": lambda b, x, p, h: b.op("Sub", [x, b.op("Tanh", [x], h)], h),
    "log_sigmoid": lambda b, x, p, h: b.op("Neg", [b.op("Softplus", [b.op("Neg", [x], h)], h)], h),
    "squareplus": _squareplus,
    "sparse_plus": _sparse_plus,
    "sparse_sigmoid": lambda b, x, p, h: _clip(b, _affine(b, x, 0.5, 0.5, h), 0.0, 1.0, h),
    "exponential": lambda b, x, p, h: b.op("Exp", [x], h),
}


def _gated(b: GraphBuilder, x: Value, name: str, p: Dict[str, Any], hint: str) -> Value:
    """x times a gate: silu (sigmoid), hard_silu (hard sigmoid), mish (tanh of softplus), gelu."""
    if name == "silu":
        gate = b.op("Sigmoid", [x.name], hint)
    elif name == "hard_silu":
        gate = b.op("HardSigmoid", [x.name], hint, alpha=1.0 / 6.0, beta=0.5)
    elif name == "mish":
        gate = b.op("Tanh", [b.op("Softplus", [x.name], hint)], hint)
    elif name == "gelu":
        gate = _gelu_gate(b, x.name, bool(p.get("approximate", False)), hint)
    else:
        raise CannotExport(f"the activation {name!r} has no ONNX form here")
    return b.value("Mul", [x.name, gate], x, hint=hint)


def _gelu_gate(b: GraphBuilder, x: str, approximate: bool, hint: str) -> str:
    """0.5 (1 + erf(x / sqrt 2)), or 0.5 (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    if approximate:
        cube = b.op("Mul", [x, b.op("Mul", [x, x], hint)], hint)
        inner = b.op("Add", [x, b.op("Mul", [cube, b.scalar(0.044715)], hint)], hint)
        core = b.op("Tanh", [b.op("Mul", [inner, b.scalar(math.sqrt(2.0 / math.pi))], hint)], hint)
    else:
        core = b.op("Erf", [b.op("Mul", [x, b.scalar(1.0 / math.sqrt(2.0))], hint)], hint)
    return b.op("Mul", [b.op("Add", [core, b.scalar(1.0)], hint), b.scalar(0.5)], hint)


def _relu(b: GraphBuilder, x: Value, slope: float, max_value, threshold: float, hint: str) -> Value:
    """Keras' relu(negative_slope, max_value, threshold): Relu, LeakyRelu or Clip where they suffice."""
    if not threshold and not slope:
        if max_value is None:
            return b.value("Relu", [x.name], x, hint=hint)
        return b.value("Clip", [x.name, b.scalar(0.0), b.scalar(max_value)], x, hint=hint)
    if not threshold and 0 <= slope <= 1:
        y = b.value("LeakyRelu", [x.name], x, hint=hint, alpha=float(slope))
    else:
        t = b.scalar(threshold)
        above = b.op("Greater", [x.name, t], hint)
        below = b.op("Mul", [b.op("Sub", [x.name, t], hint), b.scalar(slope)], hint) if slope else b.scalar(0.0)
        y = b.value("Where", [above, x.name, below], x, hint=hint)
    if max_value is not None:
        y = b.value("Min", [y.name, b.scalar(max_value)], x, hint=hint)
    return y


def _activation_layer(b: GraphBuilder, call: Call) -> Value:
    return emit_activation(b, call.x, call.layer._activation, call.hint)


# -- convolutions ----------------------------------------------------------------------------------
def _pads(layer, spatial, strides, dilations) -> Dict[str, Any]:
    """Conv/pool padding attributes: explicit pads (TensorFlow's SAME split), also for an unknown
    length at stride 1 (k_eff - 1 cells whatever the length); else auto_pad SAME_UPPER (the same
    split), which ONNX Runtime refuses with a dilation."""
    kernel = getattr(layer, "kernel_size", None) or layer.pool_size
    before, after = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        if layer.padding == "same" and n is None and s > 1:
            if max(dilations) > 1:
                raise CannotExport("'same' padding with strides > 1 and a dilation needs the input's spatial "
                                   "size to be known")
            return {"auto_pad": "SAME_UPPER"}
        lo, hi = shapes.pad_amounts(n or 1, k, s, d, layer.padding)
        before.append(lo)
        after.append(hi)
    return {"pads": before + after}


def _window_attrs(layer, x: Value) -> Dict[str, Any]:
    spatial = x.physical_shape()[2:]
    strides, dilations = list(layer.strides), list(layer.dilation_rate)
    return dict(kernel_shape=list(layer.kernel_size), strides=strides, dilations=dilations,
                **_pads(layer, spatial, strides, dilations))


def bn_affine(bn) -> tuple:
    """(scale, shift) in float64 with which BatchNormalization's inference is x * scale + shift."""
    mean = np.asarray(bn.moving_mean.value, np.float64)
    var = np.asarray(bn.moving_variance.value, np.float64)
    gamma = np.ones_like(mean) if bn.gamma is None else np.asarray(bn.gamma.value, np.float64)
    beta = np.zeros_like(mean) if bn.beta is None else np.asarray(bn.beta.value, np.float64)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def _conv_weights(b: GraphBuilder, call: Call, kernel_var, weight: np.ndarray, bias_var, out_axis: int = 0):
    """(weight name, bias name or None): the ONNX weight (and bias) with a folded BatchNormalization
    applied along the output channels (`out_axis` of the ONNX weight)."""
    bias = None if bias_var is None else np.asarray(bias_var.value, np.float64)
    key = (id(kernel_var), id(call.fold))
    if call.fold is not None:
        scale, shift = bn_affine(call.fold)
        shape = [1] * weight.ndim
        shape[out_axis] = -1
        weight = weight.astype(np.float64) * scale.reshape(shape)
        bias = (0.0 if bias is None else bias) * scale + shift
    w = b.const(weight, f"{call.hint}/kernel", key=("w",) + key)
    bn = None if bias is None else b.const(bias, f"{call.hint}/bias", key=("b",) + key)
    return w, bn


def _out_in_window(kernel: np.ndarray) -> np.ndarray:
    """A Keras kernel (k..., a, b) as ONNX's (b, a, k...)."""
    return kernel.transpose([kernel.ndim - 1, kernel.ndim - 2] + list(range(kernel.ndim - 2)))


def _conv(b: GraphBuilder, call: Call) -> Value:
    """Conv2D and Conv1D: kernel (k..., in / groups, out) -> ONNX (out, in / groups, k...)."""
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    weight = _out_in_window(layer.kernel.value)
    w, bias = _conv_weights(b, call, layer.kernel, weight, layer.bias)
    y = b.value("Conv", [x.name, w] + ([bias] if bias else []), x, call.out_shapes[0], hint=call.hint,
                group=layer.groups, **_window_attrs(layer, x))
    return emit_activation(b, y, layer.activation, call.hint)


def _depthwise(b: GraphBuilder, call: Call, kernel_var, bias_var, out_shape, with_activation=True) -> Value:
    """A depthwise convolution (k..., in, m) -> ONNX (in * m, 1, k...) with group = in."""
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    *window, channels, multiplier = kernel_var.shape
    weight = np.moveaxis(kernel_var.value.reshape(*window, channels * multiplier), -1, 0)[:, None]
    w, bias = _conv_weights(b, call, kernel_var, weight, bias_var)
    y = b.value("Conv", [x.name, w] + ([bias] if bias else []), x, out_shape, hint=call.hint, group=channels,
                **_window_attrs(layer, x))
    return emit_activation(b, y, layer.activation, call.hint) if with_activation else y


def _depthwise_layer(b: GraphBuilder, call: Call) -> Value:
    return _depthwise(b, call, call.layer.kernel, call.layer.bias, call.out_shapes[0])


def _separable(b: GraphBuilder, call: Call) -> Value:
    """The depthwise convolution, then a 1x1 Conv with the bias (a folded BN goes into the 1x1)."""
    layer = call.layer
    depth_call = Call(layer, call.inputs, call.out_shapes)
    mid_shape = list(call.out_shapes[0])
    mid_shape[1 if layer.data_format == "channels_first" else -1] = layer.depthwise_kernel.shape[-2] * \
        layer.depthwise_kernel.shape[-1]
    mid = _depthwise(b, depth_call, layer.depthwise_kernel, None, tuple(mid_shape), with_activation=False)
    weight = _out_in_window(layer.pointwise_kernel.value)
    w, bias = _conv_weights(b, call, layer.pointwise_kernel, weight, layer.bias)
    y = b.value("Conv", [mid.name, w] + ([bias] if bias else []), mid, call.out_shapes[0], hint=call.hint,
                kernel_shape=[1] * len(layer.kernel_size))
    return emit_activation(b, y, layer.activation, call.hint)


def _conv_transpose(b: GraphBuilder, call: Call) -> Value:
    """Conv2DTranspose: kernel (kh, kw, out, in) -> ONNX (in, out, kh, kw); Keras' output placement as
    pads (cells cut before/after) and output_padding (zeros appended)."""
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    weight = _out_in_window(layer.kernel.value)          # (k..., out, in) -> (in, out, k...)
    w, bias = _conv_weights(b, call, layer.kernel, weight, layer.bias, out_axis=1)
    before, after, extra = [], [], []
    for i in range(len(layer.kernel_size)):
        op = None if layer.output_padding is None else layer.output_padding[i]
        lo, hi = shapes.deconv_padding(1, layer.kernel_size[i], layer.strides[i], layer.dilation_rate[i],
                                       layer.padding, op)
        before.append(lo)
        after.append(max(hi, 0))
        extra.append(max(-hi, 0))
    y = b.value("ConvTranspose", [x.name, w] + ([bias] if bias else []), x, call.out_shapes[0], hint=call.hint,
                kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                dilations=list(layer.dilation_rate), pads=before + after,
                output_padding=extra if any(extra) else None)
    return emit_activation(b, y, layer.activation, call.hint)


# -- pooling ---------------------------------------------------------------------------------------
def _pool(b: GraphBuilder, call: Call) -> Value:
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    strides = list(layer.strides)
    attrs = dict(kernel_shape=list(layer.pool_size), strides=strides,
                 **_pads(layer, x.physical_shape()[2:], strides, [1] * len(strides)))
    op = "MaxPool" if layer._mode == "max" else "AveragePool"
    return b.value(op, [x.name], x, call.out_shapes[0], hint=call.hint, **attrs)


def _adaptive_pool(b: GraphBuilder, call: Call) -> Value:
    """Adaptive pooling whose windows are even (each input length a multiple of its output size): a pooling
    of that window and stride; uneven (overlapping) windows have no ONNX operator."""
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    lengths = x.physical_shape()[2:]
    if any(n is None or n % m for n, m in zip(lengths, layer.output_size)):
        raise CannotExport(f"its windows are even only where each input length is a multiple of its output "
                           f"size; got lengths {tuple(lengths)} for output_size {layer.output_size}")
    window = [n // m for n, m in zip(lengths, layer.output_size)]
    op = "MaxPool" if layer._mode == "max" else "AveragePool"
    return b.value(op, [x.name], x, call.out_shapes[0], hint=call.hint, kernel_shape=window, strides=window)


def _embedding(b: GraphBuilder, call: Call) -> Value:
    """Gather of the embeddings' rows at the indices (cast to int64)."""
    x = b.as_layout(call.x, "keras")
    indices = b.op("Cast", [x.name], f"{call.hint}/indices", to=7)              # TensorProto.INT64
    table = b.const(call.layer.embeddings.value, f"{call.hint}/embeddings", key=(id(call.layer.embeddings),))
    return Value(b.op("Gather", [table, indices], call.hint, axis=0), call.out_shapes[0])


def _global_pool(b: GraphBuilder, call: Call) -> Value:
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    op = "GlobalMaxPool" if layer._mode == "max" else "GlobalAveragePool"
    pooled = b.value(op, [x.name], x, call.out_shapes[0], hint=call.hint)
    if layer.keepdims:
        return pooled
    return Value(b.op("Flatten", [pooled.name], call.hint, axis=1), call.out_shapes[0])


# -- normalization ---------------------------------------------------------------------------------
def _batch_norm(b: GraphBuilder, call: Call) -> Value:
    """ONNX BatchNormalization where the axis can be physical axis 1, else x * scale + shift."""
    layer, x = call.layer, call.x
    axis = layer.axis % x.rank
    if x.rank >= 3 and axis in (1, x.rank - 1):
        x = b.as_layout(x, "keras" if axis == 1 else "cf")
    if x.axis(axis) == 1:
        mean, var = layer.moving_mean.value, layer.moving_variance.value
        gamma = np.ones_like(mean) if layer.gamma is None else layer.gamma.value
        beta = np.zeros_like(mean) if layer.beta is None else layer.beta.value
        names = [b.const(v, f"{call.hint}/{n}", key=(id(layer), n))
                 for n, v in (("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", var))]
        return b.value("BatchNormalization", [x.name] + names, x, hint=call.hint, epsilon=float(layer.epsilon))
    scale, shift = bn_affine(layer)
    shape = [1] * x.rank
    shape[axis] = -1
    scaled = b.op("Mul", [x.name, b.const(x.align(scale.reshape(shape)), f"{call.hint}/scale")], call.hint)
    return b.value("Add", [scaled, b.const(x.align(shift.reshape(shape)), f"{call.hint}/shift")], x,
                   hint=call.hint)


def _layer_norm(b: GraphBuilder, call: Call) -> Value:
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over `axis`, in x's layout."""
    layer, x = call.layer, call.x
    if getattr(layer, "rms_scaling", False):
        raise CannotExport("rms_scaling=True is not exported")
    keras_axes = sorted(a % x.rank for a in (layer.axis if isinstance(layer.axis, list) else [layer.axis]))
    axes, h = sorted(x.axis(a) for a in keras_axes), call.hint
    mean = b.reduce("ReduceMean", x.name, axes, True, h)
    centred = b.op("Sub", [x.name, mean], h)
    var = b.reduce("ReduceMean", b.op("Mul", [centred, centred], h), axes, True, h)
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [var, b.scalar(layer.epsilon)], h)], h)], h)
    y = b.op("Mul", [centred, inv], h)
    shape = [x.shape[a] if a in keras_axes else 1 for a in range(x.rank)]
    for weight, op in ((layer.gamma, "Mul"), (layer.beta, "Add")):
        if weight is not None:
            constant = x.align(np.reshape(weight.value, shape))
            y = b.op(op, [y, b.const(constant, f"{h}/{weight.name}", key=(id(weight), x.layout))], h)
    return Value(y, call.out_shapes[0], x.layout)


def _unit_norm(b: GraphBuilder, call: Call) -> Value:
    """UnitNormalization: x · min(1 / √Σx², 1e12) over `axis`, in x's layout."""
    layer, x, h = call.layer, call.x, call.hint
    axes = sorted(x.axis(a) for a in (layer.axis if isinstance(layer.axis, list) else [layer.axis]))
    square_sum = b.reduce("ReduceSum", b.op("Mul", [x.name, x.name], h), axes, True, h)
    inv = b.op("Min", [b.op("Reciprocal", [b.op("Sqrt", [square_sum], h)], h), b.scalar(1e12)], h)
    return b.value("Mul", [x.name, inv], x, call.out_shapes[0], hint=h)


def _rms_norm(b: GraphBuilder, call: Call) -> Value:
    """RMSNormalization: x / √(mean(x²) + ε) · scale over `axis`, in x's layout."""
    layer, x, h = call.layer, call.x, call.hint
    axes = sorted(x.axis(a % x.rank) for a in layer.axis)
    mean_square = b.reduce("ReduceMean", b.op("Mul", [x.name, x.name], h), axes, True, h)
    epsilon = 1e-7 if layer.epsilon is None else layer.epsilon        # None: Keras' backend.epsilon()
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [mean_square, b.scalar(epsilon)], h)], h)], h)
    shape = [x.shape[a] if a % x.rank in [k % x.rank for k in layer.axis] else 1 for a in range(x.rank)]
    scale = b.const(x.align(np.reshape(layer.scale.value, shape)), f"{h}/scale", key=(id(layer.scale), x.layout))
    return b.value("Mul", [b.op("Mul", [x.name, inv], h), scale], x, call.out_shapes[0], hint=h)


def _group_norm(b: GraphBuilder, call: Call) -> Value:
    """GroupNormalization: the channels first, viewed as (N, groups, rest), normalized over `rest`, then
    gamma and beta per channel (ONNX's own GroupNormalization op changed its scale's meaning at opset 21)."""
    layer, h = call.layer, call.hint
    keras_axis = layer.axis % call.x.rank
    if keras_axis not in (1, call.x.rank - 1):
        raise CannotExport(f"the channel axis {layer.axis} must be 1 or the last")
    x = b.as_layout(call.x, "keras" if keras_axis == 1 else "cf")
    grouped = b.op("Reshape", [x.name, b.ints([0, layer.groups, -1], "shape")], h)
    mean = b.reduce("ReduceMean", grouped, [2], True, h)
    centred = b.op("Sub", [grouped, mean], h)
    var = b.reduce("ReduceMean", b.op("Mul", [centred, centred], h), [2], True, h)
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [var, b.scalar(layer.epsilon)], h)], h)], h)
    y = b.op("Reshape", [b.op("Mul", [centred, inv], h), b.op("Shape", [x.name], h)], h)
    shape = [x.shape[keras_axis] if a == keras_axis else 1 for a in range(x.rank)]
    for weight, op in ((layer.gamma, "Mul"), (layer.beta, "Add")):
        if weight is not None:
            constant = x.align(np.reshape(weight.value, shape))
            y = b.op(op, [y, b.const(constant, f"{h}/{weight.name}", key=(id(weight), x.layout))], h)
    return Value(y, call.out_shapes[0], x.layout)


def _normalization(b: GraphBuilder, call: Call) -> Value:
    """Normalization: (x - mean) / max(sqrt(var), 1e-7), or mean + x * that with invert=True."""
    layer, x = call.layer, call.x
    mean, variance = layer._statistics()
    denominator = np.maximum(np.sqrt(_f32(variance)), np.float32(1e-7))
    m, d = (b.const(x.align(v), f"{call.hint}/{n}") for n, v in (("mean", mean), ("denominator", denominator)))
    if layer.invert:
        return b.value("Add", [b.op("Mul", [x.name, d], call.hint), m], x, hint=call.hint)
    return b.value("Div", [b.op("Sub", [x.name, m], call.hint), d], x, hint=call.hint)


def _rescaling(b: GraphBuilder, call: Call) -> Value:
    layer, x = call.layer, call.x
    y = b.value("Mul", [x.name, b.const(x.align(layer.scale), f"{call.hint}/scale")], x, hint=call.hint)
    if np.any(np.asarray(layer.offset) != 0):
        y = b.value("Add", [y.name, b.const(x.align(layer.offset), f"{call.hint}/offset")], x, hint=call.hint)
    return y


def _prelu(b: GraphBuilder, call: Call) -> Value:
    """PRelu with the layer's slopes (1 along its shared axes), arranged as the tensor's layout."""
    x, alpha = call.x, call.layer.alpha
    return b.value("PRelu", [x.name, b.const(x.align(alpha.value), f"{call.hint}/alpha")], x, hint=call.hint)


def _layer_scale(b: GraphBuilder, call: Call) -> Value:
    x, gamma = call.x, call.layer.gamma
    return b.value("Mul", [x.name, b.const(x.align(gamma.value), f"{call.hint}/gamma")], x, hint=call.hint)


# -- shapes ----------------------------------------------------------------------------------------
def _dense(b: GraphBuilder, call: Call) -> Value:
    """Gemm on (N, in); MatMul on more axes; a 1x1 Conv on a tensor laid out channels first."""
    layer, x = call.layer, call.x
    kernel, bias_var = layer.kernel, layer.bias
    bias = None if bias_var is None else b.const(bias_var.value, f"{call.hint}/bias", key=(id(bias_var),))
    if x.layout == "cf" and x.rank >= 3:
        weight = kernel.value.T.reshape(kernel.shape[::-1] + (1,) * (x.rank - 2))
        w = b.const(weight, f"{call.hint}/kernel", key=(id(kernel), "conv"))
        y = b.value("Conv", [x.name, w] + ([bias] if bias else []), x, call.out_shapes[0], hint=call.hint,
                    kernel_shape=[1] * (x.rank - 2))
        return emit_activation(b, y, layer.activation, call.hint)
    x = b.as_layout(x, "keras")
    w = b.const(kernel.value, f"{call.hint}/kernel", key=(id(kernel),))
    if x.rank == 2:
        y = b.op("Gemm", [x.name, w] + ([bias] if bias else []), call.hint)
    else:
        y = b.op("MatMul", [x.name, w], call.hint)
        y = b.op("Add", [y, bias], call.hint) if bias else y
    return emit_activation(b, Value(y, call.out_shapes[0]), layer.activation, call.hint)


def _einsum_dense(b: GraphBuilder, call: Call) -> Value:
    """EinsumDense: ONNX's Einsum on the input in Keras' layout (its "..." written out), the bias added, the
    activation."""
    layer, x = call.layer, b.as_layout(call.x, "keras")
    x_sub, w_sub, z_sub = einsum_subscripts(layer.equation, x.rank, layer._describe())
    w = b.const(layer.kernel.value, f"{call.hint}/kernel", key=(id(layer.kernel),))
    y = b.op("Einsum", [x.name, w], call.hint, equation=f"{x_sub},{w_sub}->{z_sub}")
    if layer.bias is not None:
        y = b.op("Add", [y, b.const(layer.bias.value, f"{call.hint}/bias", key=(id(layer.bias),))], call.hint)
    return emit_activation(b, Value(y, call.out_shapes[0]), layer.activation, call.hint)


def _flatten(b: GraphBuilder, call: Call) -> Value:
    """Keras flattens in channels_last order: a channels_first Flatten moves the channels last first."""
    layer, x = call.layer, b.as_layout(call.x, "keras")
    name = x.name
    if layer.data_format == "channels_first" and x.rank > 2:
        name = b.op("Transpose", [name], call.hint, perm=[0] + list(range(2, x.rank)) + [1])
    return Value(b.op("Flatten", [name], call.hint, axis=1), call.out_shapes[0])


def _reshape(b: GraphBuilder, call: Call) -> Value:
    """Reshape in the Keras layout; (N, C) -> (N, 1, .., 1, C) goes straight to channels first."""
    x, target = call.x, list(call.layer.target_shape)
    if x.rank == 2 and len(target) >= 2 and all(d == 1 for d in target[:-1]):
        shape = b.ints([0, target[-1]] + [1] * (len(target) - 1), "shape")
        return Value(b.op("Reshape", [x.name, shape], call.hint), call.out_shapes[0], "cf")
    x = b.as_layout(x, "keras")
    return Value(b.op("Reshape", [x.name, b.ints([0] + target, "shape")], call.hint), call.out_shapes[0])


def _permute(b: GraphBuilder, call: Call) -> Value:
    x = b.as_layout(call.x, "keras")
    return Value(b.op("Transpose", [x.name], call.hint, perm=[0] + list(call.layer.dims)), call.out_shapes[0])


def _pad(b: GraphBuilder, x: Value, amounts: Dict[int, tuple], hint: str, out_shape, fill: float = 0.0) -> Value:
    """x padded by (before, after) on the given Keras axes, with `fill`."""
    pads = [0] * (2 * x.rank)
    for axis, (lo, hi) in amounts.items():
        pads[x.axis(axis)], pads[x.rank + x.axis(axis)] = int(lo), int(hi)
    return b.value("Pad", [x.name, b.ints(pads, "pads"), b.scalar(fill)], x, out_shape, hint=hint, mode="constant")


def _slice(b: GraphBuilder, x: Value, cuts: Dict[int, tuple], hint: str, out_shape) -> Value:
    """x with (before, after) cells cut from the given Keras axes."""
    axes = [x.axis(a) for a in cuts]
    starts = [lo for lo, _ in cuts.values()]
    ends = [-hi if hi else np.iinfo(np.int64).max for _, hi in cuts.values()]
    inputs = [x.name, b.ints(starts, "starts"), b.ints(ends, "ends"), b.ints(axes, "axes")]
    return b.value("Slice", inputs, x, out_shape, hint=hint)


def _spatial_axes(layer, rank: int) -> List[int]:
    first = getattr(layer, "data_format", "channels_last") == "channels_first"
    return list(range(2, rank)) if first else list(range(1, rank - 1))


def _zero_padding(b: GraphBuilder, call: Call) -> Value:
    layer, x = call.layer, call.x
    pairs = [layer.padding] if np.ndim(layer.padding) == 1 else list(layer.padding)
    return _pad(b, x, dict(zip(_spatial_axes(layer, x.rank), pairs)), call.hint, call.out_shapes[0])


def _cropping(b: GraphBuilder, call: Call) -> Value:
    layer, x = call.layer, call.x
    pairs = [layer.cropping] if np.ndim(layer.cropping) == 1 else list(layer.cropping)
    return _slice(b, x, dict(zip(_spatial_axes(layer, x.rank), pairs)), call.hint, call.out_shapes[0])


# -- resizing --------------------------------------------------------------------------------------
_RESIZE_MODES = {"nearest": dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                                 nearest_mode="round_prefer_ceil"),
                 "bilinear": dict(mode="linear", coordinate_transformation_mode="half_pixel")}


def _resize_scales(b: GraphBuilder, x: Value, factors, interpolation: str, hint: str, out_shape) -> Value:
    """Resize by whole factors on the spatial axes (physical 2...)."""
    scales = b.const([1.0, 1.0] + [float(f) for f in factors], "scales", key=("scales", tuple(factors)))
    return b.value("Resize", [x.name, "", scales], x, out_shape, hint=hint, **_RESIZE_MODES[interpolation])


def _upsampling(b: GraphBuilder, call: Call) -> Value:
    layer = call.layer
    if type(layer).__name__ == "UpSampling1D":
        x = b.channels_first(call.x, "channels_last")
        return _resize_scales(b, x, [layer.size], "nearest", call.hint, call.out_shapes[0])
    x = b.channels_first(call.x, layer.data_format)
    return _resize_scales(b, x, layer.size, layer.interpolation, call.hint, call.out_shapes[0])


def _resizing(b: GraphBuilder, call: Call) -> Value:
    """Resizing: the aspect-ratio crop or pad (static sizes), then Resize to (height, width)."""
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    height, width = x.physical_shape()[2:]
    mode = "crop" if layer.crop_to_aspect_ratio else "pad" if layer.pad_to_aspect_ratio else None
    if mode is not None:
        if height is None or width is None:
            raise CannotExport(f"{mode}_to_aspect_ratio needs the input's height and width to be known")
        window = aspect_window(height, width, (layer.height, layer.width), mode)
        axes = _spatial_axes(layer, 4)
        if mode == "crop":
            _, top, left, rows, cols = window
            cuts = {axes[0]: (top, height - top - rows), axes[1]: (left, width - left - cols)}
            x = _slice(b, x, cuts, call.hint, x.shape)
        else:
            _, rows, cols = window
            x = _pad(b, x, {axes[0]: (rows, rows), axes[1]: (cols, cols)}, call.hint, x.shape, layer.fill_value)
    return _resize_to(b, x, (layer.height, layer.width), layer.interpolation, call.hint, call.out_shapes[0])


def _center_crop(b: GraphBuilder, call: Call) -> Value:
    """CenterCrop: a Slice of the centred window, or the aspect-ratio crop and a bilinear Resize for an input
    smaller than the target (static sizes)."""
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    height, width = x.physical_shape()[2:]
    if height is None or width is None:
        raise CannotExport("its crop needs the input's height and width to be known")
    size, axes = (layer.height, layer.width), _spatial_axes(layer, 4)
    if not center_crop_resizes(height, width, size):
        top, left = (height - size[0]) // 2, (width - size[1]) // 2
        cuts = {axes[0]: (top, height - top - size[0]), axes[1]: (left, width - left - size[1])}
        return _slice(b, x, cuts, call.hint, call.out_shapes[0])
    _, top, left, rows, cols = aspect_window(height, width, size, "crop")
    x = _slice(b, x, {axes[0]: (top, height - top - rows), axes[1]: (left, width - left - cols)}, call.hint, x.shape)
    return _resize_to(b, x, size, "bilinear", call.hint, call.out_shapes[0])


def _resize_to(b: GraphBuilder, x: Value, size, interpolation: str, hint: str, out_shape) -> Value:
    """Resize x (channels first) to `size` = (height, width); the batch and channels from its shape."""
    batch_channels = b.op("Slice", [b.op("Shape", [x.name], hint), b.ints([0]), b.ints([2])], hint)
    sizes = b.op("Concat", [batch_channels, b.ints(size)], hint, axis=0)
    return b.value("Resize", [x.name, "", "", sizes], x, out_shape, hint=hint, **_RESIZE_MODES[interpolation])


def _random_crop(b: GraphBuilder, call: Call) -> Value:
    """RandomCrop at inference: Keras' centred window, resized bilinearly where the input is smaller."""
    layer = call.layer
    x = b.channels_first(call.x, layer.data_format)
    height, width = x.physical_shape()[2:]
    if height is None or width is None:
        raise CannotExport("its inference crop needs the input's height and width to be known")
    top, left = center_crop_window(height, width, layer.height, layer.width)
    rows, cols = min(layer.height, height - top), min(layer.width, width - left)
    axes = _spatial_axes(layer, 4)
    shape = list(x.shape)
    shape[axes[0]], shape[axes[1]] = rows, cols
    x = _slice(b, x, {axes[0]: (top, height - top - rows), axes[1]: (left, width - left - cols)}, call.hint,
               tuple(shape))
    if (rows, cols) == (layer.height, layer.width):
        return x
    return _resize_to(b, x, (layer.height, layer.width), "bilinear", call.hint, call.out_shapes[0])


# -- merging ---------------------------------------------------------------------------------------
def common_layout(b: GraphBuilder, values: List[Value]) -> List[Value]:
    """The values in one layout: the first one's when all have one rank, else the Keras layout, with
    lower-rank inputs given 1-axes after the batch axis (Keras' merge broadcasting)."""
    rank = max(v.rank for v in values)
    layout = values[0].layout if all(v.rank == rank for v in values) else "keras"
    out = []
    for value in values:
        value = b.as_layout(value, layout)
        if value.rank < rank:
            axes = b.ints(range(1, 1 + rank - value.rank), "axes")
            shape = value.shape[:1] + (1,) * (rank - value.rank) + value.shape[1:]
            value = Value(b.op("Unsqueeze", [value.name, axes], value.name), shape, layout)
        out.append(value)
    return out


_MERGE_OPS = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Average": "Add", "Maximum": "Max",
              "Minimum": "Min"}


def _merge(b: GraphBuilder, call: Call) -> Value:
    """A left fold of the binary op (as convscope and Keras compute it); Average divides by n after."""
    kind = type(call.layer).__name__
    values = common_layout(b, call.inputs)
    out = values[0].name
    for value in values[1:]:
        out = b.op(_MERGE_OPS[kind], [out, value.name], call.hint)
    if len(values) == 1:
        out = b.op("Identity", [out], call.hint)
    if kind == "Average":
        out = b.op("Div", [out, b.scalar(len(values))], call.hint)
    return Value(out, call.out_shapes[0], values[0].layout)


def _repeat_vector(b: GraphBuilder, call: Call) -> Value:
    """RepeatVector: (batch, features) unsqueezed to (batch, 1, features), then tiled n times on axis 1."""
    h = call.hint
    x = b.op("Unsqueeze", [call.x.name, b.ints([1], "axes")], h)
    return Value(b.op("Tile", [x, b.ints([1, call.layer.n, 1], "repeats")], h), call.out_shapes[0])


def _dot(b: GraphBuilder, call: Call) -> Value:
    """Dot: both inputs in Keras' layout (unit-normalized first where asked: x · min(1 / √Σx², 1e7)), x's axis
    moved last and y's first after the batch, one batched MatMul (B, M, K) × (B, K, N), reshaped to the output."""
    layer, h = call.layer, call.hint
    x, y = (b.as_layout(v, "keras") for v in call.inputs)
    a0, a1 = batch_dot_axes(layer.axes, [x.rank, y.rank], layer._describe())
    out_shape = call.out_shapes[0]
    if None in tuple(x.shape[1:]) + tuple(y.shape[1:]):
        raise CannotExport(f"every axis but the batch must be known, got input shapes {x.shape} and {y.shape}")
    names = []
    for value, axis in ((x, a0), (y, a1)):
        name = value.name
        if layer.normalize:
            square_sum = b.reduce("ReduceSum", b.op("Mul", [name, name], h), [axis], True, h)
            inv = b.op("Min", [b.op("Reciprocal", [b.op("Sqrt", [square_sum], h)], h), b.scalar(1.0 / DOT_EPSILON)], h)
            name = b.op("Mul", [name, inv], h)
        names.append(name)
    k = x.shape[a0]
    m = math.prod(x.shape[i] for i in range(1, x.rank) if i != a0)
    n = math.prod(y.shape[i] for i in range(1, y.rank) if i != a1)
    x_perm = [i for i in range(x.rank) if i != a0] + [a0]
    y_perm = [0, a1] + [i for i in range(1, y.rank) if i != a1]
    x3 = b.op("Reshape", [b.op("Transpose", [names[0]], h, perm=x_perm), b.ints([-1, m, k], "shape")], h)
    y3 = b.op("Reshape", [b.op("Transpose", [names[1]], h, perm=y_perm), b.ints([-1, k, n], "shape")], h)
    product = b.op("MatMul", [x3, y3], h)           # every size written out: a batch of 0 reshapes too
    return Value(b.op("Reshape", [product, b.ints([-1] + list(out_shape[1:]), "shape")], h), out_shape, "keras")


def _custom_scale(b: GraphBuilder, call: Call) -> Value:
    """InceptionResNetV2's x + r · scale."""
    x, residual = common_layout(b, call.inputs)
    scaled = b.op("Mul", [residual.name, b.scalar(call.layer.scale)], call.hint)
    return Value(b.op("Add", [x.name, scaled], call.hint), call.out_shapes[0], x.layout)


def _concatenate(b: GraphBuilder, call: Call) -> Value:
    values = common_layout(b, call.inputs)
    axis = values[0].axis(call.layer.axis)
    return b.value("Concat", [v.name for v in values], values[0], call.out_shapes[0], hint=call.hint, axis=axis)


def _value_range(b: GraphBuilder, x: str, source, target, hint: str) -> str:
    """Keras' `_transform_value_range`: ((x - low) / (high - low)) * (target's span) + target's low."""
    if tuple(source) == tuple(target):
        return x
    unit = b.op("Div", [b.op("Sub", [x, b.scalar(source[0])], hint), b.scalar(source[1] - source[0])], hint)
    return b.op("Add", [b.op("Mul", [unit, b.scalar(target[1] - target[0])], hint), b.scalar(target[0])], hint)


def _auto_contrast(b: GraphBuilder, call: Call) -> Value:
    """AutoContrast (`ops.augment_color.auto_contrast`): on the [0, 255] scale each image's lowest value to 0
    and its highest to 255 over Keras' axes 1 and 2, clipped; NaN (an image of one value) -> the input."""
    x, hint, value_range = call.x, call.hint, call.layer.value_range
    scaled = _value_range(b, x.name, value_range, (0, 255), hint)
    axes = [x.axis(1), x.axis(2)]
    low, high = (b.reduce(op, scaled, axes, True, hint) for op in ("ReduceMin", "ReduceMax"))
    spread = b.op("Sub", [high, low], hint)
    scale = b.op("Mul", [b.op("Div", [b.scalar(1.0), spread], hint), b.scalar(255.0)], hint)   # torch's 255 / t
    offset = b.op("Mul", [b.op("Neg", [low], hint), scale], hint)
    stretched = b.op("Add", [b.op("Mul", [scaled, scale], hint), offset], hint)
    result = _value_range(b, b.op("Clip", [stretched, b.scalar(0.0), b.scalar(255.0)], hint), (0, 255),
                          value_range, hint)
    # ReduceMin/Max skip NaN where torch's (and NumPy's) give it: a slice holding one is kept, as they keep it
    nan_slice = b.reduce("ReduceMax", b.op("Cast", [b.op("IsNaN", [scaled], hint)], hint, to=1), axes, True, hint)
    keep = b.op("Or", [b.op("IsNaN", [result], hint), b.op("Greater", [nan_slice, b.scalar(0.0)], hint)], hint)
    return b.value("Where", [keep, x.name, result], x, hint=hint)


def _symmetric_pad(b: GraphBuilder, x: str, axis: int, size: int, pad: int, hint: str) -> str:
    """x with its last `pad` entries along `axis` appended in reverse (NumPy's "symmetric" pad at the end)."""
    if pad == 0:
        return x
    if pad > size:
        raise CannotExport(f"its tiles pad an axis of {size} by {pad}, more than the axis holds")
    end = size - 1 - pad if pad < size else -(size + 1)     # -1 would read as the last index: through index 0
    tail = b.op("Slice", [x, b.ints([size - 1]), b.ints([end]), b.ints([axis]), b.ints([-1])], hint)
    return b.op("Concat", [x, tail], hint, axis=axis)


def _clahe_lookups(grid: int, tile: int, table_stride: int):
    """Per pixel of one padded axis: the flat offsets of its lower and upper tile tables and the upper's weight
    (`ops.clahe`'s `_axis_weights`)."""
    from ..ops.clahe import _axis_weights
    low, high, weight = _axis_weights(grid * tile, tile, grid)
    return low * table_stride, high * table_stride, weight


def _clahe(b: GraphBuilder, call: Call) -> Value:
    """CLAHE (`ops.clahe`): histograms as a sum of OneHot rows per tile, clipped and spread, their cumulative
    tables stretched and edge-padded, and each pixel's four tables read by flat index (Gather), blended."""
    layer, hint = call.layer, call.hint
    x = b.as_layout(call.x, "keras")
    name = b.op("Transpose", [x.name], hint, perm=[0, 2, 3, 1]) if layer.data_format == "channels_first" else x.name
    n_h, n_w, n_c = call.out_shapes[0][1:] if layer.data_format != "channels_first" else \
        (call.out_shapes[0][2], call.out_shapes[0][3], call.out_shapes[0][1])
    if None in (n_h, n_w, n_c):
        raise CannotExport(f"the images' height, width and channels must be known, got {call.out_shapes[0]}")
    (grid_h, grid_w), area = layer.tile_grid_size, None
    tile_h, tile_w = -(-n_h // grid_h), -(-n_w // grid_w)
    area = tile_h * tile_w
    scaled = _value_range(b, name, layer.value_range, (0, 255), hint)
    padded = _symmetric_pad(b, _symmetric_pad(b, scaled, 1, n_h, tile_h * grid_h - n_h, hint), 2, n_w,
                            tile_w * grid_w - n_w, hint)
    bounds = [b.const(np.int32(v), "bound", dtype=np.int32) for v in (0, 255)]        # int32, then int64 (to=7)
    binned = b.op("Cast", [b.op("Clip", [b.op("Cast", [padded], hint, to=6)] + bounds, hint)], hint, to=7)
    pixels = b.op("Cast", [b.op("Clip", [padded, b.scalar(0.0), b.scalar(255.0)], hint)], hint, to=7)
    tiles = b.op("Transpose", [b.op("Reshape", [binned, b.ints([-1, grid_h, tile_h, grid_w, tile_w, n_c])], hint)],
                 hint, perm=[0, 1, 3, 5, 2, 4])
    tiles = b.op("Reshape", [tiles, b.ints([-1, grid_h, grid_w, n_c, area])], hint)
    hot = b.op("OneHot", [tiles, b.ints([256]), b.const(np.array([0.0, 1.0], np.float32), "onehot")], hint, axis=-1)
    hists = b.reduce("ReduceSum", hot, [4], False, hint)
    if layer.clip_limit > 0:
        clipped = b.op("Min", [hists, b.scalar(layer.clip_limit * area / 256.0)], hint)
        excess = b.reduce("ReduceSum", b.op("Sub", [hists, clipped], hint), [4], True, hint)
        hists = b.op("Add", [clipped, b.op("Div", [excess, b.scalar(256.0)], hint)], hint)
    cdf = b.op("CumSum", [hists, b.const(np.int64(4), "axis", dtype=np.int64)], hint)
    cdf_min = b.reduce("ReduceMin", cdf, [4], True, hint)
    denominator = b.op("Sub", [b.scalar(float(area)), cdf_min], hint)
    denominator = b.op("Where", [b.op("Equal", [denominator, b.scalar(0.0)], hint), b.scalar(1.0), denominator], hint)
    stretched = b.op("Div", [b.op("Mul", [b.op("Sub", [cdf, cdf_min], hint), b.scalar(255.0)], hint), denominator],
                     hint)
    tables = b.op("Clip", [stretched, b.scalar(0.0), b.scalar(255.0)], hint)
    tables = b.op("Pad", [tables, b.ints([0, 1, 1, 0, 0, 0, 1, 1, 0, 0])], hint, mode="edge")
    flat = b.op("Reshape", [tables, b.ints([-1])], hint)
    stride_x = 256 * n_c
    stride_y, stride_b = stride_x * (grid_w + 2), stride_x * (grid_w + 2) * (grid_h + 2)
    y0, y1, wy = _clahe_lookups(grid_h, tile_h, stride_y)
    x0, x1, wx = _clahe_lookups(grid_w, tile_w, stride_x)
    batch = b.op("Slice", [b.op("Shape", [pixels], hint), b.ints([0]), b.ints([1])], hint)
    images = b.op("Range", [b.const(np.int64(0), "start", dtype=np.int64), b.op("Squeeze", [batch], hint),
                            b.const(np.int64(1), "step", dtype=np.int64)], hint)
    base = b.op("Add", [b.op("Mul", [b.op("Reshape", [images, b.ints([-1, 1, 1, 1])], hint),
                                     b.const(np.int64(stride_b), "stride", dtype=np.int64)], hint),
                        b.op("Add", [pixels, b.const(np.arange(n_c, dtype=np.int64) * 256, "channels",
                                                     dtype=np.int64)], hint)], hint)

    def read(rows, cols):
        offsets = rows[:, None, None] + cols[None, :, None]
        return b.op("Gather", [flat, b.op("Add", [base, b.const(offsets, "offsets", dtype=np.int64)], hint)], hint,
                    axis=0)

    wx_c, wy_c = b.const(wx[None, :, None], "wx"), b.const(wy[:, None, None], "wy")
    one = b.scalar(1.0)

    def blend(a, c, weight):
        return b.op("Add", [b.op("Mul", [a, b.op("Sub", [one, weight], hint)], hint), b.op("Mul", [c, weight], hint)],
                    hint)

    result = blend(blend(read(y0, x0), read(y0, x1), wx_c), blend(read(y1, x0), read(y1, x1), wx_c), wy_c)
    result = b.op("Slice", [result, b.ints([0, 0]), b.ints([n_h, n_w]), b.ints([1, 2])], hint)
    result = _value_range(b, result, (0, 255), layer.value_range, hint)
    if layer.data_format == "channels_first":
        result = b.op("Transpose", [result], hint, perm=[0, 3, 1, 2])
    return Value(result, call.out_shapes[0], "keras")


def _identity(b: GraphBuilder, call: Call) -> Value:
    return call.x


EMITTERS: Dict[str, Callable[[GraphBuilder, Call], Any]] = {
    "Conv2D": _conv, "Conv1D": _conv, "DepthwiseConv2D": _depthwise_layer, "SeparableConv2D": _separable,
    "Conv2DTranspose": _conv_transpose, "DepthwiseConv1D": _depthwise_layer, "SeparableConv1D": _separable,
    "Conv1DTranspose": _conv_transpose, "Conv3D": _conv, "Conv3DTranspose": _conv_transpose,
    "MaxPooling3D": _pool, "AveragePooling3D": _pool, "GlobalMaxPooling3D": _global_pool,
    "GlobalAveragePooling3D": _global_pool, "ZeroPadding3D": _zero_padding, "Cropping3D": _cropping,
    "UpSampling3D": _upsampling, "Embedding": _embedding,
    "AdaptiveAveragePooling1D": _adaptive_pool, "AdaptiveAveragePooling2D": _adaptive_pool,
    "AdaptiveMaxPooling1D": _adaptive_pool, "AdaptiveMaxPooling2D": _adaptive_pool,
    "AdaptiveAveragePooling3D": _adaptive_pool, "AdaptiveMaxPooling3D": _adaptive_pool,
    "MaxPooling2D": _pool, "AveragePooling2D": _pool, "MaxPooling1D": _pool, "AveragePooling1D": _pool,
    "GlobalMaxPooling2D": _global_pool, "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling1D": _global_pool, "GlobalAveragePooling1D": _global_pool,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm, "GroupNormalization": _group_norm,
    "UnitNormalization": _unit_norm,
    "Dot": _dot,
    "EinsumDense": _einsum_dense,
    "RepeatVector": _repeat_vector,
    "RMSNormalization": _rms_norm,
    "ContrastLimitedAdaptiveHistogramEqualization": _clahe,
    "Normalization": _normalization,
    "Rescaling": _rescaling, "LayerScale": _layer_scale,
    "Activation": _activation_layer, "ReLU": _activation_layer, "Softmax": _activation_layer,
    "LeakyReLU": _activation_layer, "ELU": _activation_layer, "PReLU": _prelu,
    "Dense": _dense, "Flatten": _flatten, "Reshape": _reshape, "Permute": _permute,
    "ZeroPadding2D": _zero_padding, "ZeroPadding1D": _zero_padding,
    "Cropping2D": _cropping, "Cropping1D": _cropping,
    "UpSampling2D": _upsampling, "UpSampling1D": _upsampling, "Resizing": _resizing, "RandomCrop": _random_crop,
    "CenterCrop": _center_crop,
    "Add": _merge, "Subtract": _merge, "Multiply": _merge, "Average": _merge, "Maximum": _merge,
    "Minimum": _merge, "Concatenate": _concatenate, "CustomScaleLayer": _custom_scale,
    "AutoContrast": _auto_contrast,
}
# The identity at inference: dropouts, noise and random augmentation (Keras' inference behaviour).
EMITTERS.update({name: _identity for name in (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "StochasticDepth", "Identity",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "RandomFlip",
    "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast", "RandomBrightness", "RandomGrayscale",
    "RandomInvert", "Solarization", "RandomPosterization", "RandomColorDegeneration", "RandomSharpness",
    "RandomSaturation", "RandomHue", "RandomColorJitter", "Equalization", "RandomShear", "RandomPerspective",
    "RandomGaussianBlur", "RandomErasing", "MixUp", "CutMix", "RandAugment", "AugMix",
    "RandomElasticTransform")})
