"""The benchmark's models, written once as Keras layer configs and built in every framework.

A model is a list of `(class name, keyword arguments)` pairs in Keras' own
spelling, so the same spec builds a convscope `Sequential`, a Keras model and
(translated here) a PyTorch module.  Weights are made once, in Keras' layouts
(conv kernels HWIO, Dense kernels (in, out)), and copied into each framework,
which is what makes the outputs comparable before any timing.

FLOPs are counted from the specs with `convscope.ops.shapes`, the library's one
source of padding/stride arithmetic: 2 x multiply-adds of every conv and dense
GEMM, as `torch.utils.flop_counter` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from convscope.ops.shapes import conv_output_length, normalize_tuple, pad_amounts


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model: input shape (H, W, C), layers, and what is timed on it."""

    name: str
    description: str
    input_shape: Tuple[int, int, int]
    layers: Tuple[Tuple[str, Dict], ...]
    tasks: Tuple[str, ...] = ("train", "infer")
    fixed_batch: int = 0  # a batch size the seed prescribes (0: use the command line's)

    @property
    def num_classes(self) -> int:
        return self.layers[-1][1]["units"] if self.layers[-1][0] == "Dense" else 0


SPECS: Dict[str, ModelSpec] = {
    "seed000": ModelSpec(
        "seed000", "seed 000's MNIST model (Conv 5x5x32, pool, Conv 2x2x64, pool, Dense 1000, Dense 10)",
        (28, 28, 1),
        (("Conv2D", dict(filters=32, kernel_size=(5, 5), strides=(1, 1), padding="same", activation="relu")),
         ("MaxPooling2D", dict(pool_size=(2, 2), strides=(2, 2))),
         ("Conv2D", dict(filters=64, kernel_size=(2, 2), padding="same", activation="relu")),
         ("MaxPooling2D", dict(pool_size=(2, 2))),
         ("Dropout", dict(rate=0.25)),
         ("Flatten", dict()),
         ("Dense", dict(units=1000, activation="relu")),
         ("Dropout", dict(rate=0.5)),
         ("Dense", dict(units=10, activation="softmax")))),
    "seed001": ModelSpec(
        "seed001", "seed 001's 264,562-parameter model (3 x Conv+BN+pool, Dense 512, Dense 25)",
        (28, 28, 1),
        (("Conv2D", dict(filters=75, kernel_size=(3, 3), strides=1, padding="same", activation="relu")),
         ("BatchNormalization", dict()),
         ("MaxPooling2D", dict(pool_size=(2, 2), strides=2, padding="same")),
         ("Conv2D", dict(filters=50, kernel_size=(3, 3), strides=1, padding="same", activation="relu")),
         ("Dropout", dict(rate=0.2)),
         ("BatchNormalization", dict()),
         ("MaxPooling2D", dict(pool_size=(2, 2), strides=2, padding="same")),
         ("Conv2D", dict(filters=25, kernel_size=(3, 3), strides=1, padding="same", activation="relu")),
         ("BatchNormalization", dict()),
         ("MaxPooling2D", dict(pool_size=(2, 2), strides=2, padding="same")),
         ("Flatten", dict()),
         ("Dense", dict(units=512, activation="relu")),
         ("Dropout", dict(rate=0.3)),
         ("Dense", dict(units=25, activation="softmax")))),
    "seed004": ModelSpec(
        "seed004", "seed 004's Conv2D(16, (5, 5)) forward on a (64, 300, 300, 3) batch",
        (300, 300, 3),
        (("Conv2D", dict(filters=16, kernel_size=(5, 5), strides=(1, 1))),),
        tasks=("infer",), fixed_batch=64),
}

SUPPORTED_ACTIVATIONS = (None, "linear", "relu", "softmax")


def _window(config: Dict, default_kernel=None) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int], str]:
    """(kernel, strides, dilation, padding) of a Conv2D or pooling config, with Keras' defaults."""
    if default_kernel is None:
        kernel = normalize_tuple(config["kernel_size"], 2, "kernel_size", "benchmark Conv2D")
        strides = normalize_tuple(config.get("strides", 1), 2, "strides", "benchmark Conv2D")
        dilation = normalize_tuple(config.get("dilation_rate", 1), 2, "dilation_rate", "benchmark Conv2D")
    else:
        kernel = normalize_tuple(config.get("pool_size", default_kernel), 2, "pool_size", "benchmark pool")
        strides = config.get("strides") or kernel
        strides = normalize_tuple(strides, 2, "strides", "benchmark pool")
        dilation = (1, 1)
    return kernel, strides, dilation, config.get("padding", "valid").lower()


def layer_shapes(spec: ModelSpec) -> List[Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """(input shape, output shape) of each layer, without the batch axis."""
    shape: Tuple[int, ...] = tuple(spec.input_shape)
    shapes = []
    for kind, config in spec.layers:
        if kind in ("Conv2D", "MaxPooling2D"):
            height, width, channels = shape
            kernel, strides, dilation, padding = _window(config, None if kind == "Conv2D" else (2, 2))
            out_h = conv_output_length(height, kernel[0], strides[0], dilation[0], padding)
            out_w = conv_output_length(width, kernel[1], strides[1], dilation[1], padding)
            out = (out_h, out_w, config["filters"] if kind == "Conv2D" else channels)
        elif kind == "Flatten":
            out = (int(np.prod(shape)),)
        elif kind == "Dense":
            out = shape[:-1] + (config["units"],)
        elif kind in ("Dropout", "BatchNormalization"):
            out = shape
        else:
            raise ValueError(f"benchmark spec {spec.name!r}: layer type {kind!r} is not supported")
        shapes.append((shape, out))
        shape = out
    return shapes


def multiply_adds(spec: ModelSpec) -> List[int]:
    """Multiply-adds per sample of each layer's GEMM (0 for layers without one)."""
    counts = []
    for (kind, config), (in_shape, out_shape) in zip(spec.layers, layer_shapes(spec)):
        if kind == "Conv2D":
            kernel, _, _, _ = _window(config)
            counts.append(int(np.prod(out_shape)) * kernel[0] * kernel[1] * in_shape[-1])
        elif kind == "Dense":
            counts.append(int(np.prod(out_shape)) * in_shape[-1])
        else:
            counts.append(0)
    return counts


def flops(spec: ModelSpec, task: str, batch: int) -> int:
    """GEMM FLOPs of one inference pass or one training step on `batch` samples.

    Training adds the weight gradient (as many FLOPs as the forward) and the
    input gradient of every GEMM layer except the first, whose input (the data)
    needs no gradient.
    """
    if task not in ("train", "infer"):
        raise ValueError(f"flops: argument `task` must be 'train' or 'infer', got {task!r}")
    per_layer = multiply_adds(spec)
    forward = 2 * sum(per_layer)
    if task == "infer":
        return forward * batch
    gemm_layers = [count for count in per_layer if count]
    backward = 2 * sum(gemm_layers) + 2 * sum(gemm_layers[1:])
    return (forward + backward) * batch


def param_count(spec: ModelSpec) -> int:
    """Scalars in all weights (trainable or not), as Keras' `count_params()`."""
    return int(sum(array.size for layer in make_weights(spec, seed=0) for array in layer))


def make_weights(spec: ModelSpec, seed: int = 0) -> List[List[np.ndarray]]:
    """float32 weights of each layer in Keras' `get_weights()` order and layouts.

    Biases and BatchNormalization statistics are random rather than Keras'
    zeros and ones, so the agreement check also covers their layouts.
    """
    rng = np.random.default_rng(seed)

    def glorot(shape, fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(np.float32)

    weights = []
    for (kind, config), (in_shape, out_shape) in zip(spec.layers, layer_shapes(spec)):
        if kind == "Conv2D":
            kernel, _, _, _ = _window(config)
            receptive = kernel[0] * kernel[1]
            arrays = [glorot(kernel + (in_shape[-1], out_shape[-1]), receptive * in_shape[-1],
                             receptive * out_shape[-1])]
        elif kind == "Dense":
            arrays = [glorot((in_shape[-1], out_shape[-1]), in_shape[-1], out_shape[-1])]
        elif kind == "BatchNormalization":
            channels = in_shape[-1]
            arrays = [rng.uniform(0.5, 1.5, channels).astype(np.float32),
                      rng.uniform(-0.1, 0.1, channels).astype(np.float32),
                      rng.uniform(-0.1, 0.1, channels).astype(np.float32),
                      rng.uniform(0.5, 1.5, channels).astype(np.float32)]
        else:
            arrays = []
        if kind in ("Conv2D", "Dense") and config.get("use_bias", True):
            arrays.append(rng.uniform(-0.1, 0.1, out_shape[-1]).astype(np.float32))
        weights.append(arrays)
    return weights


def without_dropout(spec: ModelSpec) -> ModelSpec:
    """The same model with every Dropout rate set to 0, so training steps are deterministic."""
    layers = tuple((kind, dict(config, rate=0.0) if kind == "Dropout" else config)
                   for kind, config in spec.layers)
    return ModelSpec(spec.name, spec.description, spec.input_shape, layers, spec.tasks, spec.fixed_batch)


def make_batch(spec: ModelSpec, batch: int, seed: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """A float32 NHWC input batch in [0, 1) and one-hot float32 labels (empty without classes)."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch,) + tuple(spec.input_shape), dtype=np.float32)
    classes = spec.num_classes
    y = np.zeros((batch, classes), dtype=np.float32)
    if classes:
        y[np.arange(batch), rng.integers(0, classes, batch)] = 1.0
    return x, y


# --- builders ----------------------------------------------------------------------------

def build_convscope(spec: ModelSpec, weights: Sequence[Sequence[np.ndarray]], train: bool):
    """A convscope `Sequential` from the spec, with `weights` set and, for training, Adam compiled."""
    import convscope
    from convscope import layers as cs_layers
    from convscope.models import Sequential

    convscope.backend.clear_session()
    built = []
    for index, (kind, config) in enumerate(spec.layers):
        extra = {"input_shape": spec.input_shape} if index == 0 else {}
        built.append(getattr(cs_layers, kind)(**config, **extra))
    model = Sequential(built, name=spec.name)
    for layer, arrays in zip(model.layers, weights):
        if arrays:
            layer.set_weights(arrays)
    if train:
        from convscope.optimizers import Adam
        model.compile(optimizer=Adam(), loss="categorical_crossentropy")
    return model


def build_keras(spec: ModelSpec, weights: Sequence[Sequence[np.ndarray]], train: bool):
    """The same model in Keras (TensorFlow backend), with `weights` set and, for training, Adam compiled."""
    import keras

    model = keras.Sequential([keras.Input(shape=spec.input_shape)]
                             + [getattr(keras.layers, kind)(**config) for kind, config in spec.layers])
    for layer, arrays in zip(model.layers, weights):
        if arrays:
            layer.set_weights(arrays)
    if train:
        model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy")
    return model


def build_torch(spec: ModelSpec, weights: Sequence[Sequence[np.ndarray]]):
    """The same model as a `torch.nn.Sequential` on NCHW input.

    Returns `(module, softmax_output)`: when the last Dense has a softmax, the
    module stops at the logits (PyTorch's idiom: `cross_entropy` on logits for
    training, `softmax` applied for inference).  Flatten permutes to NHWC
    first, so Keras' Dense kernels apply unchanged (transposed to (out, in)).
    """
    import torch
    from torch import nn

    class FlattenHWC(nn.Module):
        """Keras' Flatten order (height, width, channels) on an NCHW tensor."""

        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    def tensor(array):
        return torch.from_numpy(np.ascontiguousarray(array))

    modules: List = []
    softmax_output = False
    last = len(spec.layers) - 1
    for index, ((kind, config), (in_shape, out_shape), arrays) in enumerate(
            zip(spec.layers, layer_shapes(spec), weights)):
        activation = config.get("activation")
        if activation not in SUPPORTED_ACTIVATIONS:
            raise ValueError(f"build_torch: layer {index} ({kind}) has activation {activation!r}; "
                             f"supported: {SUPPORTED_ACTIVATIONS}")
        if activation == "softmax" and not (kind == "Dense" and index == last):
            raise ValueError(f"build_torch: softmax is supported only on the last Dense, "
                             f"got it on layer {index} ({kind})")
        if kind == "Conv2D":
            kernel, strides, dilation, padding = _window(config)
            pads = [pad_amounts(in_shape[axis], kernel[axis], strides[axis], dilation[axis], padding)
                    for axis in (0, 1)]
            symmetric = all(before == after for before, after in pads)
            if not symmetric:
                modules.append(nn.ZeroPad2d((pads[1][0], pads[1][1], pads[0][0], pads[0][1])))
            conv = nn.Conv2d(in_shape[-1], out_shape[-1], kernel, stride=strides, dilation=dilation,
                             padding=(pads[0][0], pads[1][0]) if symmetric else 0,
                             bias=config.get("use_bias", True))
            with torch.no_grad():
                conv.weight.copy_(tensor(arrays[0].transpose(3, 2, 0, 1)))
                if conv.bias is not None:
                    conv.bias.copy_(tensor(arrays[1]))
            modules.append(conv)
        elif kind == "MaxPooling2D":
            kernel, strides, _, padding = _window(config, (2, 2))
            pads = [pad_amounts(in_shape[axis], kernel[axis], strides[axis], 1, padding) for axis in (0, 1)]
            # PyTorch's ceil_mode ends with a partial window exactly like TF's SAME when nothing is
            # padded before; otherwise pad with -inf explicitly.
            ceil_out = [-(-(in_shape[axis] - kernel[axis]) // strides[axis]) + 1 for axis in (0, 1)]
            if all(before == after == 0 for before, after in pads):
                modules.append(nn.MaxPool2d(kernel, strides))
            elif all(before == 0 for before, _ in pads) and tuple(ceil_out) == out_shape[:2]:
                modules.append(nn.MaxPool2d(kernel, strides, ceil_mode=True))
            else:
                modules.append(nn.ConstantPad2d((pads[1][0], pads[1][1], pads[0][0], pads[0][1]),
                                                float("-inf")))
                modules.append(nn.MaxPool2d(kernel, strides))
        elif kind == "BatchNormalization":
            norm = nn.BatchNorm2d(in_shape[-1], eps=config.get("epsilon", 1e-3),
                                  momentum=1.0 - config.get("momentum", 0.99))
            with torch.no_grad():
                for target, array in zip((norm.weight, norm.bias, norm.running_mean, norm.running_var),
                                         arrays):
                    target.copy_(tensor(array))
            modules.append(norm)
        elif kind == "Dropout":
            modules.append(nn.Dropout(config["rate"]))
        elif kind == "Flatten":
            modules.append(FlattenHWC())
        elif kind == "Dense":
            dense = nn.Linear(in_shape[-1], out_shape[-1], bias=config.get("use_bias", True))
            with torch.no_grad():
                dense.weight.copy_(tensor(arrays[0].T))
                if dense.bias is not None:
                    dense.bias.copy_(tensor(arrays[1]))
            modules.append(dense)
        else:
            raise ValueError(f"build_torch: layer type {kind!r} is not supported")
        if activation == "relu":
            modules.append(nn.ReLU(inplace=True))
        softmax_output = activation == "softmax"
    return nn.Sequential(*modules), softmax_output
