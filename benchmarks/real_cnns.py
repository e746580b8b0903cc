"""Real CNNs for the speed benchmark, built once from the same Keras-format weights for every framework.

Keras 3 (torch backend, in a child process) builds each architecture (`keras.applications`
MobileNetV2/ResNet50 with weights=None, a ResNet-style CIFAR network, a U-Net), perturbs its
biases and BatchNormalization scales, sets the BN moving statistics from one batch (so deep
inference stays well scaled and the outputs are no saturated softmax), and saves it once as
`.keras` in a cache folder under the temporary directory.  Then:

* convscope: `convscope.models.load_model` of that file;
* PyTorch: `to_torch(model)` walks convscope's functional graph (`model._compute_nodes`) and emits a
  `torch.fx.GraphModule` of native modules (nn.Conv2d with groups for depthwise, nn.BatchNorm2d,
  nn.ReLU6, nn.ConvTranspose2d, nn.Linear, add/cat, pooling), NCHW inside, weights transposed from
  Keras' layouts: PyTorch's own generated code runs it, not an interpreter of our graph;
* ONNX Runtime: convscope's own export (`model.export(path, format="onnx")`: NHWC input transposed
  once to NCHW, BatchNormalization folded into the convolutions);
* Keras on TensorFlow (optional): `keras.saving.load_model` of the same file.

FLOPs are counted from convscope's graph (2 x multiply-adds of every conv, depthwise, transposed
conv and dense GEMM), as `torch.utils.flop_counter` counts them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from convscope.ops.shapes import deconv_padding, pad_amounts


@dataclass(frozen=True)
class RealSpec:
    """One real CNN: how Keras builds it, its input, what is timed (task, batch) and the optimizer."""

    name: str
    description: str
    builder: str                      # a function of BUILD_SCRIPT
    options: Dict = field(default_factory=dict)
    input_shape: Tuple[int, int, int] = (224, 224, 3)
    num_classes: int = 1000           # 0: dense per-pixel output (no labels; inference only)
    figures: Tuple[Tuple[str, int], ...] = (("infer", 1), ("infer", 32))
    optimizer: str = "sgd"            # the training step's rule: "sgd" (lr 0.1, momentum 0.9) or "adam"
    fixed_batch: int = 0              # compare_torch's ModelSpec field (the figures say the batches)

    @property
    def tasks(self) -> Tuple[str, ...]:
        return tuple(sorted({task for task, _ in self.figures}))


SPECS: Dict[str, RealSpec] = {
    "mobilenetv2": RealSpec(
        "mobilenetv2", "Keras MobileNetV2 (alpha 1.0, 224x224, 1000 classes), inference",
        "mobilenetv2", dict(size=224, alpha=1.0, classes=1000)),
    "resnet50": RealSpec(
        "resnet50", "Keras ResNet50 (224x224, 1000 classes), inference", "resnet50",
        dict(size=224, classes=1000)),
    "resnet_cifar": RealSpec(
        "resnet_cifar", "ResNet-20 v1 for CIFAR (3 stages x 3 blocks, 16/32/64 filters, 32x32), SGD step",
        "resnet_cifar", dict(size=32, stages=3, blocks=3, classes=10), (32, 32, 3), 10,
        (("train", 128),), "sgd"),
    "mobilenetv2_96": RealSpec(
        "mobilenetv2_96", "Keras MobileNetV2 (alpha 1.0, 96x96, 10 classes), Adam step", "mobilenetv2",
        dict(size=96, alpha=1.0, classes=10), (96, 96, 3), 10, (("train", 64),), "adam"),
    "unet": RealSpec(
        "unet", "U-Net (128x128x3, 4 levels of 32-256 filters, 512 at the bottom, 2x2 up-convs, sigmoid)",
        "unet", dict(size=128, base=32, depth=4, classes=1), (128, 128, 3), 0,
        (("infer", 1), ("infer", 8))),
}

# Small versions for the correctness test (tests/test_bench_real_cnns.py).
SMALL_SPECS: Dict[str, RealSpec] = {
    "mobilenetv2_small": RealSpec("mobilenetv2_small", "MobileNetV2 alpha 0.35 at 32 px", "mobilenetv2",
                                  dict(size=32, alpha=0.35, classes=10), (32, 32, 3), 10,
                                  (("infer", 2), ("train", 4)), "adam"),
    "resnet_small": RealSpec("resnet_small", "2-stage ResNet-style net at 16 px", "resnet_cifar",
                             dict(size=16, stages=2, blocks=1, classes=5), (16, 16, 3), 5,
                             (("infer", 2), ("train", 4)), "sgd"),
    "unet_small": RealSpec("unet_small", "tiny U-Net (2 levels of 4-8 filters) at 32 px", "unet",
                           dict(size=32, base=4, depth=2, classes=2), (32, 32, 3), 0, (("infer", 2),)),
}

OPTIMIZERS = {"sgd": dict(learning_rate=0.1, momentum=0.9), "adam": dict(learning_rate=1e-3, epsilon=1e-7)}

BUILD_SCRIPT = r'''
import json, os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np
import keras
from keras import layers as L

def mobilenetv2(size, alpha, classes):
    return keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), alpha=alpha,
                                          classes=classes)

def resnet50(size, classes):
    return keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=classes)

def resnet_cifar(size, stages, blocks, classes):
    """Keras' CIFAR-10 ResNet v1 (conv-BN-ReLU, 1x1 projection shortcuts when the shape changes)."""
    def conv_bn(x, filters, strides=1, relu=True, kernel=3):
        x = L.Conv2D(filters, kernel, strides=strides, padding="same", kernel_initializer="he_normal")(x)
        x = L.BatchNormalization()(x)
        return L.Activation("relu")(x) if relu else x
    inputs = keras.Input((size, size, 3))
    x = conv_bn(inputs, 16)
    for stage in range(stages):
        filters = 16 * 2 ** stage
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            y = conv_bn(x, filters, strides)
            y = conv_bn(y, filters, relu=False)
            if strides != 1:
                x = conv_bn(x, filters, strides, relu=False, kernel=1)
            x = L.Activation("relu")(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(classes, activation="softmax", kernel_initializer="he_normal")(x)
    return keras.Model(inputs, outputs, name="resnet_cifar")

def unet(size, base, depth, classes):
    """U-Net: two conv3x3-BN-ReLU per level, 2x2 max pooling down, 2x2 stride-2 up-convs, skip concats."""
    def twice(x, filters):
        for _ in range(2):
            x = L.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = L.ReLU()(L.BatchNormalization()(x))
        return x
    inputs = keras.Input((size, size, 3))
    x, skips = inputs, []
    for level in range(depth):
        x = twice(x, base * 2 ** level)
        skips.append(x)
        x = L.MaxPooling2D()(x)
    x = twice(x, base * 2 ** depth)
    for level in reversed(range(depth)):
        x = L.Conv2DTranspose(base * 2 ** level, 2, strides=2)(x)
        x = twice(L.Concatenate()([skips[level], x]), base * 2 ** level)
    outputs = L.Conv2D(classes, 1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="unet")

def perturb_and_calibrate(model, size, seed):
    """Random biases and BN scales (their layouts get checked), BN moving statistics from one batch."""
    rng = np.random.default_rng(seed)
    norms = [l for l in model.layers if isinstance(l, L.BatchNormalization)]
    for layer in model.layers:
        bias = getattr(layer, "bias", None)
        if bias is not None and not isinstance(layer, L.BatchNormalization):
            bias.assign(rng.uniform(-0.05, 0.05, tuple(bias.shape)).astype("float32"))
    for layer in norms:
        layer.gamma.assign(rng.uniform(0.8, 1.2, tuple(layer.gamma.shape)).astype("float32"))
        layer.beta.assign(rng.uniform(-0.1, 0.1, tuple(layer.beta.shape)).astype("float32"))
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(rng.random((4, size, size, 3), dtype=np.float32), training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum

for builder, options, seed, path in json.loads(sys.argv[1]):
    keras.utils.set_random_seed(seed)
    model = globals()[builder](**options)
    perturb_and_calibrate(model, options["size"], seed)
    model.save(path)
    keras.backend.clear_session()
'''


def cache_dir() -> Path:
    """The folder of the built `.keras` files (under the temporary directory, kept between runs)."""
    return Path(tempfile.gettempdir()) / "convscope-bench-cache"


def keras_file(spec: RealSpec, seed: int = 0, folder: Optional[Path] = None) -> Path:
    """The spec's `.keras` file, built by Keras 3 (torch backend) in a child process on first use."""
    return keras_files([spec], seed, folder)[0]


def keras_files(specs, seed: int = 0, folder: Optional[Path] = None) -> List[Path]:
    """The specs' `.keras` files in the cache folder; the missing ones built in one Keras child process
    (each written to a temporary name, then renamed: a half-built file is never taken)."""
    from importlib.metadata import version
    specs = list(specs)
    bad = [type(s).__name__ for s in specs if not isinstance(s, RealSpec)]
    if bad or not specs:
        raise TypeError("real_cnns.keras_files: argument `specs` must be a non-empty list of RealSpec, "
                        f"got {bad or specs}")
    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths, jobs = [], []
    for spec in specs:
        tag = "_".join(f"{k}{v}" for k, v in sorted(spec.options.items()))
        script = hashlib.sha256(BUILD_SCRIPT.encode()).hexdigest()[:8]      # a changed builder: new files
        path = folder / f"{spec.builder}_{tag}_seed{seed}_keras{version('keras')}_{script}.keras"
        paths.append(path)
        if not path.exists() and all(job[3] != path for job in jobs):
            fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".keras", dir=folder)
            os.close(fd)
            jobs.append((spec.builder, spec.options, seed, path, tmp))
    if not jobs:
        return paths
    env = dict(os.environ, KERAS_BACKEND="torch")
    try:
        proc = subprocess.run([sys.executable, "-c", BUILD_SCRIPT,
                               json.dumps([(b, o, s, tmp) for b, o, s, _, tmp in jobs])],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"real_cnns.keras_files: Keras could not build {[j[0] for j in jobs]}:\n"
                               f"{proc.stderr[-3000:]}")
        for *_, path, tmp in jobs:
            os.replace(tmp, path)
    finally:
        for *_, tmp in jobs:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return paths


# --- convscope --------------------------------------------------------------------------------------

def load_convscope(path, spec: RealSpec, train: bool):
    """The convscope model of the file; compiled with the spec's optimizer for training."""
    from convscope.models import load_model
    model = load_model(path, compile=False)
    if train:
        from convscope import optimizers
        rule = optimizers.SGD if spec.optimizer == "sgd" else optimizers.Adam
        model.compile(optimizer=rule(**OPTIMIZERS[spec.optimizer]), loss="categorical_crossentropy")
    return model


def trainable_arrays(model, what: str = "value") -> List[np.ndarray]:
    """convscope's trainable weights (or their last gradients), layer by layer in Keras layouts."""
    return [np.array(getattr(v, what)) for layer in model.layers for v in layer.trainable_weights]


GEMM_ROWS = ("conv", "depthwise_conv", "separable_conv", "conv_transpose", "dense")


def multiply_adds(model) -> List[int]:
    """Multiply-adds per sample of each GEMM-like layer call (convs of every kind, dense), as
    `convscope.models.analysis` counts them for summary and explain."""
    from convscope.models.analysis import analyze
    return [row.macs for row in analyze(model).layers if row.kind in GEMM_ROWS]


def flops(model, task: str, batch: int) -> int:
    """GEMM FLOPs of an inference pass or a training step (forward, weight gradients, and input
    gradients of every GEMM layer but the first), as `bench_models.flops` counts a Sequential's."""
    if task not in ("train", "infer"):
        raise ValueError(f"real_cnns.flops: argument `task` must be 'train' or 'infer', got {task!r}")
    counts = multiply_adds(model)
    forward = 2 * sum(counts)
    if task == "infer":
        return forward * batch
    return (forward + 2 * sum(counts) + 2 * sum(counts[1:])) * batch


# --- the PyTorch twin ----------------------------------------------------------------------------------

class TorchTwin:
    """A converted model: `module` (torch.fx.GraphModule on NCHW input), `softmax_output` (the module
    stops at the logits of a last softmax Dense), `params`: per convscope layer, in model.layers
    order, (parameter, function to Keras' layout) pairs in the layer's trainable_weights order, and
    `gates`: (convscope layer name, module name) of each ReLU/ReLU6/Hardtanh module, in graph order
    (the convscope layer whose output that module's output is: a ReLU, or a conv with its activation)."""

    def __init__(self, module, softmax_output: bool, params, gates=()):
        self.module, self.softmax_output, self.params = module, softmax_output, params
        self.gates = list(gates)

    def arrays(self, what: str = "value") -> List[np.ndarray]:
        """The trainable weights (or their gradients) in Keras layouts, as `trainable_arrays`."""
        out = []
        for pairs in self.params:
            for param, to_keras in pairs:
                tensor = param if what == "value" else param.grad
                out.append(np.array(to_keras(tensor.detach().numpy())))    # a copy, not a view
        return out


def _refuse(layer, why: str):
    raise ValueError(f"real_cnns.to_torch: layer '{layer.name}' ({type(layer).__name__}) {why}")


def _activation_module(layer, name: str):
    from torch import nn
    table = {"relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
             "silu": nn.SiLU, "hard_silu": nn.Hardswish}
    if name not in table:
        _refuse(layer, f"has activation {name!r}; the converter knows linear, softmax (last Dense) and "
                       f"{sorted(table)}")
    return table[name]()


def _same_pads(layer, in_shape, kernel, strides, dilation):
    pads = [pad_amounts(in_shape[axis], kernel[axis], strides[axis], dilation[axis], layer.padding)
            for axis in (0, 1)]
    return pads, all(before == after for before, after in pads)


class _Builder:
    """Emits fx nodes and modules for one layer call at a time."""

    def __init__(self, model):
        import torch
        from torch import fx, nn
        self.torch, self.fx, self.nn = torch, fx, nn
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.params: Dict[str, list] = {}
        self.names: Dict[str, int] = {}
        self.gates: List[Tuple[str, str]] = []

    def module(self, layer, module, x, suffix=""):
        name = re.sub(r"\W", "_", layer.name + suffix)
        if name in self.names or not name or name[0].isdigit():
            self.names[name] = self.names.get(name, 0) + 1
            name = f"m_{name}_{self.names[name]}"
        self.names.setdefault(name, 0)
        self.root.add_module(name, module)
        if isinstance(module, (self.nn.ReLU, self.nn.Hardtanh)):      # nn.ReLU6 is a Hardtanh
            self.gates.append((layer.name, name))
        return self.graph.call_module(name, (x,))

    def copy(self, param, array):
        with self.torch.no_grad():
            param.copy_(self.torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))

    def conv(self, layer, x, in_shape, last: bool):
        nn = self.nn
        kind = type(layer).__name__
        kernel, strides, dilation = layer.kernel_size, layer.strides, layer.dilation_rate
        pads, symmetric = _same_pads(layer, in_shape, kernel, strides, dilation)
        if not symmetric:
            x = self.module(layer, nn.ZeroPad2d((pads[1][0], pads[1][1], pads[0][0], pads[0][1])), x, "_pad")
        padding = (pads[0][0], pads[1][0]) if symmetric else 0
        weights = [np.asarray(v.value) for v in layer.trainable_weights]
        channels = in_shape[-1]
        if kind == "DepthwiseConv2D":
            multiplier = layer.depth_multiplier
            conv = nn.Conv2d(channels, channels * multiplier, kernel, strides, padding, dilation,
                             groups=channels, bias=layer.use_bias)
            kh, kw = kernel
            self.copy(conv.weight, weights[0].reshape(kh, kw, -1).transpose(2, 0, 1)[:, None])
            to_keras = (lambda w, kh=kh, kw=kw, c=channels, m=multiplier:
                        w[:, 0].transpose(1, 2, 0).reshape(kh, kw, c, m))
        else:
            conv = nn.Conv2d(channels, layer.filters, kernel, strides, padding, dilation,
                             groups=layer.groups, bias=layer.use_bias)
            self.copy(conv.weight, weights[0].transpose(3, 2, 0, 1))
            to_keras = lambda w: w.transpose(2, 3, 1, 0)          # noqa: E731
        pairs = [(conv.weight, to_keras)]
        if layer.use_bias:
            self.copy(conv.bias, weights[1])
            pairs.append((conv.bias, lambda b: b))
        self.params[layer.name] = pairs
        return self.activation(layer, self.module(layer, conv, x), layer.activation.name, last)

    def conv_transpose(self, layer, x, in_shape, out_shape):
        nn = self.nn
        kernel, strides, dilation = layer.kernel_size, layer.strides, layer.dilation_rate
        cuts = [deconv_padding(in_shape[a], kernel[a], strides[a], dilation[a], layer.padding,
                               None if layer.output_padding is None else layer.output_padding[a])
                for a in (0, 1)]
        if any(after < 0 for _, after in cuts):
            _refuse(layer, f"cuts {cuts} from its full output; an output_padding beyond it is not converted")
        symmetric = all(before == after for before, after in cuts)
        conv = nn.ConvTranspose2d(in_shape[-1], layer.filters, kernel, strides,
                                  padding=(cuts[0][0], cuts[1][0]) if symmetric else 0,
                                  dilation=dilation, bias=layer.use_bias)
        weights = [np.asarray(v.value) for v in layer.trainable_weights]
        self.copy(conv.weight, weights[0].transpose(3, 2, 0, 1))
        pairs = [(conv.weight, lambda w: w.transpose(2, 3, 1, 0))]
        if layer.use_bias:
            self.copy(conv.bias, weights[1])
            pairs.append((conv.bias, lambda b: b))
        self.params[layer.name] = pairs
        y = self.module(layer, conv, x)
        if not symmetric:
            import operator
            rows = slice(cuts[0][0], cuts[0][0] + out_shape[0])
            cols = slice(cuts[1][0], cuts[1][0] + out_shape[1])
            y = self.graph.call_function(operator.getitem, (y, (slice(None), slice(None), rows, cols)))
        return self.activation(layer, y, layer.activation.name, False)

    def activation(self, layer, x, name: str, last: bool):
        if name == "linear":
            return x
        if name == "softmax" and last:
            self.softmax = True
            return x
        return self.module(layer, _activation_module(layer, name), x, "_act")


def to_torch(model) -> TorchTwin:
    """Convert a channels_last convscope graph model (one input, one output) into native PyTorch modules."""
    from convscope.models.training import Model
    if not isinstance(model, Model) or not hasattr(model, "_compute_nodes"):
        raise TypeError(f"real_cnns.to_torch: argument `model` must be a convscope functional Model, "
                        f"got {type(model).__name__}")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"real_cnns.to_torch: model '{model.name}' must have one input and one output, got "
                         f"{len(model.inputs)} and {len(model.outputs)}")
    b = _Builder(model)
    b.softmax = False
    values = {id(model.inputs[0]): b.graph.placeholder("x")}
    last_node = model._compute_nodes[-1]
    for node in model._compute_nodes:
        ins = [values[id(t)] for t in node.input_tensors]
        in_shape = tuple(node.input_tensors[0].shape[1:])
        out_shape = tuple(node.outputs[0].shape[1:])
        values[id(node.outputs[0])] = _convert(b, node.layer, ins, in_shape, out_shape, node is last_node)
    b.graph.output(values[id(model.outputs[0])])
    module = b.fx.GraphModule(b.root, b.graph, class_name=re.sub(r"\W", "_", model.name))
    params = [b.params.get(layer.name, []) for layer in model.layers]
    expected = [len(layer.trainable_weights) for layer in model.layers]
    if [len(p) for p in params] != expected:
        raise ValueError(f"real_cnns.to_torch: model '{model.name}': converted parameters per layer "
                         f"{[len(p) for p in params]} differ from the trainable weights {expected}")
    return TorchTwin(module, b.softmax, params, b.gates)


def _convert(b: _Builder, layer, ins, in_shape, out_shape, last: bool):
    """The fx value of one layer call (NCHW tensors)."""
    import operator
    nn, torch = b.nn, b.torch
    kind = type(layer).__name__
    x = ins[0]
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        _refuse(layer, "is channels_first; the converter takes channels_last models")
    if kind in ("Conv2D", "DepthwiseConv2D"):
        return b.conv(layer, x, in_shape, last)
    if kind == "Conv2DTranspose":
        return b.conv_transpose(layer, x, in_shape, out_shape)
    if kind == "BatchNormalization":
        if layer.axis % (len(in_shape) + 1) != len(in_shape) or not (layer.center and layer.scale):
            _refuse(layer, f"normalizes axis {layer.axis} (center={layer.center}, scale={layer.scale}); "
                           "the converter takes the channel axis with both")
        norm = (nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d)(
            in_shape[-1], eps=layer.epsilon, momentum=1.0 - layer.momentum)
        for target, variable in zip((norm.weight, norm.bias, norm.running_mean, norm.running_var),
                                    (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)):
            b.copy(target, np.asarray(variable.value))
        b.params[layer.name] = [(norm.weight, lambda g: g), (norm.bias, lambda v: v)]
        return b.module(layer, norm, x)
    if kind == "ReLU":
        if layer.negative_slope != 0 or layer.threshold != 0:
            _refuse(layer, "has a negative_slope or threshold; the converter takes plain ReLU/ReLU6")
        if layer.max_value is None:
            return b.module(layer, nn.ReLU(), x)
        return b.module(layer, nn.ReLU6() if layer.max_value == 6 else nn.Hardtanh(0.0, layer.max_value), x)
    if kind == "Activation":
        return b.activation(layer, x, layer.activation, last)
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        return b.module(layer, nn.ZeroPad2d((left, right, top, bottom)), x)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        return _pool(b, layer, x, in_shape, kind == "MaxPooling2D")
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        method = "mean" if kind.startswith("GlobalAverage") else "amax"
        return b.graph.call_method(method, (x, (2, 3)), {"keepdim": bool(layer.keepdims)})
    if kind == "Flatten":
        if len(in_shape) == 3:
            x = b.graph.call_method("permute", (x, (0, 2, 3, 1)))
        return b.graph.call_method("flatten", (x, 1))
    if kind == "Dense":
        if len(in_shape) != 1:
            _refuse(layer, f"takes an input of shape {in_shape}; the converter takes a Dense on flat features")
        dense = nn.Linear(in_shape[-1], layer.units, bias=layer.use_bias)
        weights = [np.asarray(v.value) for v in layer.trainable_weights]
        b.copy(dense.weight, weights[0].T)
        pairs = [(dense.weight, lambda w: w.T)]
        if layer.use_bias:
            b.copy(dense.bias, weights[1])
            pairs.append((dense.bias, lambda v: v))
        b.params[layer.name] = pairs
        return b.activation(layer, b.module(layer, dense, x), layer.activation.name, last)
    if kind == "Dropout":
        return b.module(layer, nn.Dropout(layer.rate), x)
    if kind == "Add":
        out = ins[0]
        for other in ins[1:]:
            out = b.graph.call_function(operator.add, (out, other))
        return out
    if kind == "Concatenate":
        if layer.axis not in (-1, len(in_shape)):
            _refuse(layer, f"joins axis {layer.axis}; the converter takes the channel axis")
        return b.graph.call_function(torch.cat, (list(ins),), {"dim": 1})
    if kind == "UpSampling2D":
        mode = {"nearest": "nearest", "bilinear": "bilinear"}.get(layer.interpolation)
        if mode is None:
            _refuse(layer, f"interpolates {layer.interpolation!r}; the converter takes nearest and bilinear")
        extra = {"align_corners": False} if mode == "bilinear" else {}
        return b.module(layer, nn.Upsample(scale_factor=tuple(float(s) for s in layer.size), mode=mode, **extra), x)
    _refuse(layer, "has no PyTorch form in the benchmark's converter")


def _pool(b: _Builder, layer, x, in_shape, is_max: bool):
    nn = b.nn
    kernel, strides = layer.pool_size, layer.strides
    pads, symmetric = _same_pads(layer, in_shape, kernel, strides, (1, 1))
    if all(before == after == 0 for before, after in pads):
        return b.module(layer, (nn.MaxPool2d if is_max else nn.AvgPool2d)(kernel, strides), x)
    if is_max:
        pad = nn.ConstantPad2d((pads[1][0], pads[1][1], pads[0][0], pads[0][1]), float("-inf"))
        return b.module(layer, nn.MaxPool2d(kernel, strides), b.module(layer, pad, x, "_pad"))
    if symmetric and all(before <= k // 2 for (before, _), k in zip(pads, kernel)):
        return b.module(layer, nn.AvgPool2d(kernel, strides, (pads[0][0], pads[1][0]),
                                            count_include_pad=False), x)
    _refuse(layer, f"pads {pads} unevenly; the converter takes evenly padded average pooling")


def torch_optimizer(spec: RealSpec, module):
    """PyTorch's form of the spec's rule (SGD: one step is w -= lr * g in both; Adam: Keras adds epsilon
    before the bias correction, PyTorch after, so the benchmark compares gradients there)."""
    import torch
    options = OPTIMIZERS[spec.optimizer]
    if spec.optimizer == "sgd":
        return torch.optim.SGD(module.parameters(), lr=options["learning_rate"], momentum=options["momentum"])
    return torch.optim.Adam(module.parameters(), lr=options["learning_rate"], eps=options["epsilon"])


def onnx_session(model, path, threads: int):
    """An ONNX Runtime session (all graph optimizations, `threads` intra-op threads) on convscope's
    export of `model` written to `path`."""
    import onnxruntime
    model.export(str(path), format="onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _gate_bounds(module) -> Tuple[float, float]:
    """The open interval where a ReLU (0, inf) or ReLU6/Hardtanh (min_val, max_val) passes its gradient."""
    from torch import nn
    return (0.0, float("inf")) if isinstance(module, nn.ReLU) else (module.min_val, module.max_val)


def _gate_runners(model, names) -> Dict[str, object]:
    """{gate layer name: what computes its output in a training step}: the training plan's fused stage
    that ends with the layer (`plan.BatchNormReluStage`), else the layer."""
    runners = {layer.name: layer for layer in model.layers if layer.name in names}
    for step in model._steps(training=True, keep=True):
        last = step.nodes[-1].layer.name
        if step.stage is not None and last in runners:
            runners[last] = step.stage
    return runners


@contextmanager
def recorded_gates(twin: TorchTwin, model=None):
    """Yields a list that, when the block ends, holds the float32 outputs (NCHW) of the twin's ReLU/ReLU6
    modules from the forward pass run in the block: PyTorch's own (forward hooks on `twin.module`) or,
    with `model` (the convscope model the twin was converted from), convscope's (the forward of its layers,
    or of the training plan's stages that end with them, wrapped for the block).  `float64_gradients(...,
    gates=)` takes that list."""
    seen: Dict[str, list] = {}
    gates: List[np.ndarray] = []

    def keep(key, out):
        out = np.array(out.detach().numpy() if model is None else out)
        seen.setdefault(key, []).append(out.transpose(0, 3, 1, 2) if model is not None and out.ndim == 4 else out)

    if model is None:
        handles = [twin.module.get_submodule(name).register_forward_hook(
            lambda module, ins, out, key=name: keep(key, out)) for _, name in twin.gates]
    else:
        wrapped = _gate_runners(model, {n for n, _ in twin.gates})
        for name, runner in wrapped.items():
            def forward(*args, original=runner.forward, key=name, **kwargs):
                out, ctx = original(*args, **kwargs)
                keep(key, out)
                return out, ctx
            runner.forward = forward
    try:
        yield gates
    finally:
        if model is None:
            for handle in handles:
                handle.remove()
        else:
            for runner in wrapped.values():
                del runner.forward
    for layer_name, name in twin.gates:
        calls = seen.get(name if model is None else layer_name, [])
        if not calls:
            raise ValueError(f"real_cnns.recorded_gates: no output of '{name}' (layer '{layer_name}') was seen "
                             "in the block (not run, or fused with its neighbours)")
        gates.append(calls.pop(0))


def float64_gradients(twin: TorchTwin, x: np.ndarray, y: np.ndarray, gates=None) -> List[np.ndarray]:
    """The gradients of the crossentropy at the twin's current weights computed in float64 (training
    mode, a copy of the module), in Keras layouts: the oracle the float32 gradients are judged by.

    `gates` (from `recorded_gates`): each ReLU/ReLU6 then opens where that float32 run's did and outputs
    its closed value (0 or 6) elsewhere, so a float32 input rounded across a gate (a value within ~1e-6
    of 0 or 6) does not count as an error: the oracle of that run's arithmetic, not of its rounding's
    legitimate choice of branch.  None: float64's own gates."""
    import copy
    import torch
    module = copy.deepcopy(twin.module).double().train()
    copies = dict(zip((id(p) for p in twin.module.parameters()), module.parameters()))
    if gates is not None and len(gates) != len(twin.gates):
        raise ValueError(f"real_cnns.float64_gradients: argument `gates` must hold one array per gate of the "
                         f"twin ({len(twin.gates)}), got {len(gates)}")
    for (_, name), kept in zip(twin.gates, gates or ()):
        gate = module.get_submodule(name)
        low, high = _gate_bounds(gate)
        kept = torch.from_numpy(np.asarray(kept)).double()

        def hook(gate, ins, out, name=name, kept=kept, opened=(kept > low) & (kept < high)):
            if out.shape != kept.shape:
                raise ValueError(f"real_cnns.float64_gradients: the gate of '{name}' recorded shape "
                                 f"{tuple(kept.shape)}, the float64 run gives {tuple(out.shape)}")
            return torch.where(opened, ins[0], kept)
        gate.register_forward_hook(hook)
    logits = module(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).double())
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y).double()).backward()
    return [np.array(to_keras(copies[id(param)].grad.numpy())) for pairs in twin.params for param, to_keras in pairs]
