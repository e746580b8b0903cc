"""The numbers behind the explanations: per-layer shapes, parameters, kernels, work, memory, fields.

`analyze(model)` walks a built `Sequential` and returns one `LayerNumbers` per
layer.  Every size, padding and receptive-field step comes from
`convscope.ops.shapes` (the functions the ops themselves use), so what an
explanation prints is what the forward pass computes.  Layers are read through
their public attributes and `get_config()`, never through op internals.

Counting conventions (stated again in every explanation):

* 1 multiply-accumulate (MAC) = 2 FLOPs.  Conv2D: per output element
  in/groups · kh · kw MACs; Dense: `in` MACs per output element.
* Bias adds, pooling work (max: comparisons; average: adds and one divide per
  output, over the real, unpadded cells of each window), BatchNormalization at
  inference (one multiply and one add per element, the statistics folded in) and
  activation functions (one evaluation per element) are counted separately and
  added to the FLOPs under their own names.
* Memory in bytes of the layer's dtype: activations per sample and per batch,
  parameters, and the optimizer's extra slots per trainable parameter once the
  model is compiled (Adam 2, SGD with momentum 1, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..ops import shapes

__all__ = ["AxisSize", "AxisField", "LayerNumbers", "ModelNumbers", "analyze", "analyze_layer",
           "summary_columns", "optimizer_slots", "is_graph_model"]

# Layer classes by name (aliases such as MaxPool2D are the same classes, so they share a name).
WINDOW_KINDS = {"Conv2D": "conv", "MaxPooling2D": "max_pool", "AveragePooling2D": "avg_pool"}
GLOBAL_KINDS = {"GlobalMaxPooling2D": "global_max_pool", "GlobalAveragePooling2D": "global_avg_pool"}
SIMPLE_KINDS = {"Flatten": "flatten", "Reshape": "reshape", "Dropout": "dropout",
                "Activation": "activation", "ReLU": "activation", "Softmax": "activation"}
AXIS_NAMES = ("height", "width")

DEFAULT_BATCH_SIZE = 32  # Keras' fit/predict default, used when the model fixes no batch size


@dataclass
class AxisSize:
    """How one spatial axis goes from `input` to `output` through a window (or padding) layer."""

    axis: str
    mode: str  # "valid", "same", "explicit" (ZeroPadding2D) or "global"
    input: int
    kernel: int
    stride: int
    dilation: int
    pad_before: int
    pad_after: int
    output: int
    dropped: int  # cells at the end that no window reaches because of the floor

    @property
    def effective_kernel(self) -> int:
        return shapes.effective_kernel_size(self.kernel, self.dilation)


@dataclass
class AxisField:
    """Receptive field of one output unit on one spatial axis of the model input."""

    axis: str
    size: int   # input cells seen by one unit (padding included)
    jump: int   # input cells between neighbouring units (the effective stride)
    start: int  # input coordinate of the first cell seen by unit 0 (negative: in padding)


@dataclass
class LayerNumbers:
    """Everything countable about one layer of a built model."""

    index: int
    name: str
    class_name: str
    kind: str  # conv, dense, max_pool, avg_pool, global_max_pool, global_avg_pool,
    #            batch_norm, zero_pad, flatten, reshape, dropout, activation, other;
    #            graph models also: input (an InputLayer), merge (Add, Concatenate, ...)
    input_shape: Tuple[Optional[int], ...]
    output_shape: Tuple[Optional[int], ...]
    data_format: Optional[str] = None
    axes: List[AxisSize] = field(default_factory=list)
    params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    weight_shapes: List[Tuple[str, Tuple[int, ...], bool]] = field(default_factory=list)
    in_channels: Optional[int] = None
    filters: Optional[int] = None     # conv filters or dense units
    groups: int = 1
    kernel_size: Optional[Tuple[int, int]] = None
    use_bias: bool = False
    kernels: Optional[int] = None           # 2-D kernels (kh x kw slices) held by a conv layer
    weights_per_filter: Optional[int] = None
    macs: int = 0
    bias_adds: int = 0
    pool_ops: int = 0
    norm_ops: int = 0
    activation: Optional[str] = None
    activation_ops: int = 0
    rate: Optional[float] = None  # Dropout's rate
    itemsize: int = 4
    batch_size: int = DEFAULT_BATCH_SIZE
    receptive_field: Optional[List[AxisField]] = None  # None: every unit sees the whole input
    # Graph models only (one row per call of a layer; a Sequential row keeps the defaults):
    call: int = 1                       # which call of the layer in the model (1-based) ...
    calls: int = 1                      # ... of how many
    inbound: Optional[List[str]] = None  # where its inputs come from ("conv2d", "shared (call 2)")
    parents: Optional[List[int]] = None  # the rows that compute its inputs
    input_shapes: Optional[List[Tuple[Optional[int], ...]]] = None  # every input (merge layers)
    merge_ops: int = 0                   # element-wise adds/multiplies/comparisons of a merge layer
    concat_axis: Optional[int] = None    # Concatenate's axis (non-negative)
    branches: Optional[List[Tuple[str, Optional[List[AxisField]]]]] = None  # a merge's inputs' fields

    @property
    def flops(self) -> int:
        """2 FLOPs per MAC plus bias adds, pooling, normalization, activation and merge work."""
        return (2 * self.macs + self.bias_adds + self.pool_ops + self.norm_ops + self.activation_ops
                + self.merge_ops)

    @property
    def output_elements(self) -> int:
        return _elements(self.output_shape)

    @property
    def activation_bytes_per_sample(self) -> int:
        return self.output_elements * self.itemsize

    @property
    def activation_bytes_per_batch(self) -> int:
        return self.activation_bytes_per_sample * self.batch_size

    @property
    def param_bytes(self) -> int:
        return self.params * self.itemsize


@dataclass
class ModelNumbers:
    """Per-layer (graph models: per-call) numbers, the model totals and the optimizer's state, if compiled.

    A shared layer's parameters count once (its first call's row); its work and its
    feature maps count once per call.  InputLayer rows hold no work and are not
    counted in the activation memory (as a Sequential model's input is not).
    """

    name: str
    input_shape: Tuple[Optional[int], ...]
    output_shape: Tuple[Optional[int], ...]
    layers: List[LayerNumbers]
    batch_size: int
    optimizer: Optional[str] = None
    optimizer_slots: Optional[int] = None
    input_shapes: Optional[List[Tuple[Optional[int], ...]]] = None   # graph models: every input
    output_shapes: Optional[List[Tuple[Optional[int], ...]]] = None  # graph models: every output

    @property
    def owners(self) -> List[LayerNumbers]:
        """One row per layer: the first call of each (what parameter totals count)."""
        return [r for r in self.layers if r.call == 1]

    @property
    def params(self) -> int:
        return sum(r.params for r in self.owners)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable_params for r in self.owners)

    @property
    def non_trainable_params(self) -> int:
        return sum(r.non_trainable_params for r in self.owners)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.layers)

    @property
    def param_bytes(self) -> int:
        return sum(r.param_bytes for r in self.owners)

    @property
    def activation_bytes_per_sample(self) -> int:
        return sum(r.activation_bytes_per_sample for r in self.layers if r.kind != "input")

    @property
    def activation_bytes_per_batch(self) -> int:
        return sum(r.activation_bytes_per_batch for r in self.layers if r.kind != "input")

    @property
    def optimizer_state_bytes(self) -> Optional[int]:
        if self.optimizer_slots is None:
            return None
        return self.optimizer_slots * sum(r.trainable_params * r.itemsize for r in self.owners)

    @property
    def largest_layer(self) -> Optional[LayerNumbers]:
        """The layer holding the most parameters (None for a model without any)."""
        best = max(self.owners, key=lambda r: r.params, default=None)
        return best if best is not None and best.params > 0 else None


# -- entry points ---------------------------------------------------------------------------------

def analyze(model, batch_size: Optional[int] = None) -> ModelNumbers:
    """Numbers for every layer of a built Sequential `model`, or every call of a layer of a graph model.

    `batch_size` sets the batch used for per-batch memory; by default the
    model's fixed batch size, else Keras' default of 32.  Graph (functional)
    models are read node by node in `models/analysis_graph.py`.
    """
    if is_graph_model(model):
        from .analysis_graph import analyze_graph
        return analyze_graph(model, batch_size)
    layers = getattr(model, "layers", None)
    if layers is None or not isinstance(layers, (list, tuple)):
        raise TypeError(f"analyze: argument `model` must be a Sequential model, got {type(model).__name__}")
    if not layers:
        raise ValueError("analyze: argument `model` has no layers; add layers before analyzing it")
    input_shape = _model_input_shape(model)
    batch = _batch_size(batch_size, input_shape, "analyze")
    rows: List[LayerNumbers] = []
    fields = _initial_fields(input_shape)
    shape = input_shape
    data_format = None
    for index, layer in enumerate(layers):
        row = _analyze_one(layer, index, shape, batch)
        data_format = row.data_format = row.data_format or data_format
        fields = _propagate_fields(row, fields)
        row.receptive_field = _spatial_fields(row, fields)
        rows.append(row)
        shape = row.output_shape
    optimizer = getattr(model, "optimizer", None)
    optimizer_name = slots = None
    if optimizer is not None:
        optimizer_name = type(optimizer).__name__
        slots = optimizer_slots(optimizer)
    name = getattr(model, "name", "sequential")
    return ModelNumbers(name=name, input_shape=input_shape, output_shape=shape, layers=rows,
                        batch_size=batch, optimizer=optimizer_name, optimizer_slots=slots)


def is_graph_model(model) -> bool:
    """True for a functional model: one whose structure is a graph of layer calls (`model._nodes`).

    A Sequential model is always read as its list of layers (its numbers stay as they were).
    """
    from .sequential import Sequential
    return (isinstance(getattr(model, "_nodes", None), (list, tuple)) and hasattr(model, "inputs")
            and not isinstance(model, Sequential))


def analyze_layer(layer, input_shape=None, batch_size: Optional[int] = None) -> LayerNumbers:
    """Numbers for one layer, on `input_shape` (batch axis included) or the shape it was built on."""
    if not hasattr(layer, "get_config") or not hasattr(layer, "weights"):
        raise TypeError(f"analyze_layer: argument `layer` must be a convscope layer, got {type(layer).__name__}")
    if input_shape is None:
        try:
            input_shape = layer.input_shape
        except AttributeError:
            raise ValueError(f"analyze_layer: {type(layer).__name__} '{layer.name}' has not been built; "
                             "pass `input_shape` (with the batch axis) or call the layer on data first") from None
    input_shape = tuple(input_shape)
    batch = _batch_size(batch_size, input_shape, "analyze_layer")
    row = _analyze_one(layer, 0, input_shape, batch)
    row.receptive_field = _spatial_fields(row, _propagate_fields(row, _initial_fields(input_shape)))
    return row


def optimizer_slots(optimizer) -> int:
    """Extra arrays the optimizer keeps per trainable parameter (Adam: m and v, so 2)."""
    name = type(optimizer).__name__.lower()
    config = optimizer.get_config() if hasattr(optimizer, "get_config") else {}
    if name in ("adam", "adamw", "nadam", "adamax"):
        return 3 if config.get("amsgrad") else 2
    if name == "sgd":
        return 1 if config.get("momentum", 0.0) else 0
    if name == "rmsprop":
        return 1 + bool(config.get("momentum", 0.0)) + bool(config.get("centered", False))
    if name in ("adagrad", "adadelta", "ftrl"):
        return 2 if name in ("adadelta", "ftrl") else 1
    raise ValueError(f"optimizer_slots: unknown optimizer {type(optimizer).__name__}; "
                     "expected SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Nadam, Adamax or Ftrl")


def summary_columns(model, show_kernels: bool = False, show_flops: bool = False,
                    show_receptive_field: bool = False, show_memory: bool = False
                    ) -> List[Tuple[str, List[str]]]:
    """Extra summary columns as (header, one cell per layer); empty when no flag is set."""
    flags = {"show_kernels": show_kernels, "show_flops": show_flops,
             "show_receptive_field": show_receptive_field, "show_memory": show_memory}
    for arg, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"summary: argument `{arg}` must be True or False, got {value!r}")
    if not any(flags.values()):
        return []
    rows = analyze(model).layers
    groups = [[r] for r in rows]
    if is_graph_model(model):           # one cell per layer of `model.layers`, its calls joined
        by_name = {}
        for r in rows:
            by_name.setdefault(r.name, []).append(r)
        groups = [by_name[layer.name] for layer in model.layers]
    columns: List[Tuple[str, List[str]]] = []

    def column(header, cell):
        columns.append((header, [_joined([cell(r) for r in group]) for group in groups]))
    if show_kernels:
        column("Kernels", _kernel_cell)
    if show_flops:
        column("MACs", lambda r: f"{r.macs:,}" if r.macs else "0")
        column("FLOPs", lambda r: f"{r.flops:,}")
    if show_receptive_field:
        column("Receptive field", receptive_field_cell)
    if show_memory:
        column("Activations/sample", lambda r: format_bytes(r.activation_bytes_per_sample))
        column("Param memory", lambda r: format_bytes(r.param_bytes))
    return columns


def _joined(cells: List[str]) -> str:
    """A shared layer's cell: one value when its calls agree, else each call's, joined by " | "."""
    return cells[0] if len(set(cells)) == 1 else " | ".join(cells)


# -- formatting helpers shared with the explanations ----------------------------------------------

def format_bytes(count: int) -> str:
    """Bytes as 'B', 'KiB', 'MiB' or 'GiB' with one decimal where it matters."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def receptive_field_cell(row: LayerNumbers) -> str:
    """'5x5 /2 @-2,-2' (size, jump, start) or 'all' for layers whose units see the whole input."""
    rf = row.receptive_field
    if rf is None:
        return "all"
    size = "x".join(str(a.size) for a in rf)
    jump = "x".join(str(a.jump) for a in rf)
    if len({a.jump for a in rf}) == 1:
        jump = str(rf[0].jump)
    start = ",".join(str(a.start) for a in rf)
    return f"{size} /{jump} @{start}"


def _kernel_cell(row: LayerNumbers) -> str:
    if row.kernels is None:
        return ""
    kh, kw = row.kernel_size
    return f"{row.kernels:,} x {kh}x{kw}"


# -- one layer ------------------------------------------------------------------------------------

def _analyze_one(layer, index: int, input_shape, batch: int, known_output=None) -> LayerNumbers:
    """One layer on `input_shape`; `known_output` (graph models) replaces compute_output_shape."""
    cls = type(layer).__name__
    config = layer.get_config()
    row = LayerNumbers(index=index, name=layer.name, class_name=cls, kind="other",
                       input_shape=tuple(input_shape), output_shape=tuple(input_shape),
                       itemsize=np.dtype(getattr(layer, "dtype", "float32") or "float32").itemsize,
                       batch_size=batch)
    where = f"{cls} '{layer.name}'"
    kind = WINDOW_KINDS.get(cls) or GLOBAL_KINDS.get(cls)
    if kind == "conv":
        _conv(row, config, where)
    elif kind in ("max_pool", "avg_pool"):
        _pool(row, config, where, kind)
    elif kind in ("global_max_pool", "global_avg_pool"):
        _global_pool(row, config, kind)
    elif cls == "ZeroPadding2D":
        _zero_pad(row, config, where)
    elif cls == "Dense":
        _dense(row, config)
    elif cls == "BatchNormalization":
        _batch_norm(row, config)
    else:
        row.kind = SIMPLE_KINDS.get(cls, "other")
        row.output_shape = tuple(known_output if known_output is not None
                                 else layer.compute_output_shape(tuple(input_shape)))
        if row.kind == "dropout" and "rate" in config:
            row.rate = float(config["rate"])
        if row.kind == "activation":
            row.activation = _activation_name(layer, config)
            row.activation_ops = row.output_elements
    _weights(row, layer)
    return row


def _conv(row: LayerNumbers, config, where: str) -> None:
    row.kind = "conv"
    data_format = _data_format(config)
    h_axis, w_axis, c_axis = _axes(data_format, row.input_shape, where)
    kernel = shapes.normalize_tuple(config["kernel_size"], 2, "kernel_size", where)
    strides = shapes.normalize_tuple(config.get("strides", 1), 2, "strides", where)
    dilation = shapes.normalize_tuple(config.get("dilation_rate", 1), 2, "dilation_rate", where)
    padding = str(config.get("padding", "valid")).lower()
    filters = int(config["filters"])
    groups = int(config.get("groups", 1) or 1)
    in_channels = row.input_shape[c_axis]
    row.data_format = data_format
    row.axes = [_window_axis(name, row.input_shape[a], k, s, d, padding)
                for name, a, k, s, d in zip(AXIS_NAMES, (h_axis, w_axis), kernel, strides, dilation)]
    row.output_shape = _replace(row.input_shape, {h_axis: row.axes[0].output, w_axis: row.axes[1].output,
                                                 c_axis: filters})
    row.in_channels, row.filters, row.groups, row.kernel_size = in_channels, filters, groups, kernel
    row.use_bias = bool(config.get("use_bias", True))
    row.kernels = filters * (in_channels // groups)
    row.weights_per_filter = (in_channels // groups) * kernel[0] * kernel[1]
    row.macs = row.output_elements * row.weights_per_filter
    row.bias_adds = row.output_elements if row.use_bias else 0
    row.params = filters * row.weights_per_filter + (filters if row.use_bias else 0)
    row.activation = _activation_name(None, config)
    row.activation_ops = 0 if row.activation == "linear" else row.output_elements


def _pool(row: LayerNumbers, config, where: str, kind: str) -> None:
    row.kind = kind
    data_format = _data_format(config)
    h_axis, w_axis, c_axis = _axes(data_format, row.input_shape, where)
    pool = shapes.normalize_tuple(config.get("pool_size", 2), 2, "pool_size", where)
    strides = config.get("strides")
    strides = pool if strides is None else shapes.normalize_tuple(strides, 2, "strides", where)
    padding = str(config.get("padding", "valid")).lower()
    row.data_format = data_format
    row.kernel_size = pool
    row.axes = [_window_axis(name, row.input_shape[a], k, s, 1, padding)
                for name, a, k, s in zip(AXIS_NAMES, (h_axis, w_axis), pool, strides)]
    row.output_shape = _replace(row.input_shape, {h_axis: row.axes[0].output, w_axis: row.axes[1].output})
    channels = row.input_shape[c_axis]
    cells = _real_cells(row.axes[0]) * _real_cells(row.axes[1]) * channels  # inputs read, all windows
    outputs = row.output_elements
    row.pool_ops = cells - outputs + (outputs if kind == "avg_pool" else 0)


def _global_pool(row: LayerNumbers, config, kind: str) -> None:
    row.kind = kind
    data_format = _data_format(config)
    h_axis, w_axis, c_axis = _axes(data_format, row.input_shape, f"{row.class_name} '{row.name}'")
    height, width, channels = (row.input_shape[a] for a in (h_axis, w_axis, c_axis))
    row.data_format = data_format
    row.axes = [AxisSize(name, "global", n, n, n, 1, 0, 0, 1, 0) for name, n in zip(AXIS_NAMES, (height, width))]
    if config.get("keepdims"):
        row.output_shape = _replace(row.input_shape, {h_axis: 1, w_axis: 1})
    else:
        row.output_shape = (row.input_shape[0], channels)
    row.pool_ops = (height * width - 1) * channels + (channels if kind == "global_avg_pool" else 0)


def _zero_pad(row: LayerNumbers, config, where: str) -> None:
    row.kind = "zero_pad"
    data_format = _data_format(config)
    h_axis, w_axis, _ = _axes(data_format, row.input_shape, where)
    pads = _zero_pad_amounts(config.get("padding", 1), where)
    row.data_format = data_format
    row.axes = [_window_axis(name, row.input_shape[a], 1, 1, 1, pad)
                for name, a, pad in zip(AXIS_NAMES, (h_axis, w_axis), pads)]
    for axis in row.axes:
        axis.mode = "explicit"
    row.output_shape = _replace(row.input_shape, {h_axis: row.axes[0].output, w_axis: row.axes[1].output})


def _dense(row: LayerNumbers, config) -> None:
    row.kind = "dense"
    units = int(config["units"])
    in_features = row.input_shape[-1]
    row.output_shape = tuple(row.input_shape[:-1]) + (units,)
    row.in_channels, row.filters = in_features, units
    row.use_bias = bool(config.get("use_bias", True))
    row.macs = row.output_elements * in_features
    row.bias_adds = row.output_elements if row.use_bias else 0
    row.params = in_features * units + (units if row.use_bias else 0)
    row.activation = _activation_name(None, config)
    row.activation_ops = 0 if row.activation == "linear" else row.output_elements


def _batch_norm(row: LayerNumbers, config) -> None:
    row.kind = "batch_norm"
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) else axis
    channels = row.input_shape[int(axis)]
    row.in_channels = channels
    row.params = channels * (2 + bool(config.get("center", True)) + bool(config.get("scale", True)))
    row.norm_ops = 2 * row.output_elements


def _weights(row: LayerNumbers, layer) -> None:
    """Parameter split from the layer's variables when built, else from the formulas above."""
    variables = list(getattr(layer, "weights", []) or [])
    if variables:
        row.weight_shapes = [(v.name, tuple(v.shape), bool(v.trainable)
                              and v in layer.trainable_weights) for v in variables]
        row.trainable_params = int(sum(int(np.prod(v.shape)) for v in layer.trainable_weights))
        row.non_trainable_params = int(sum(int(np.prod(v.shape)) for v in layer.non_trainable_weights))
        if row.kind not in ("conv", "dense", "batch_norm"):
            row.params = row.trainable_params + row.non_trainable_params
        return
    if row.kind == "batch_norm":
        channels = row.in_channels or 0
        row.non_trainable_params = 2 * channels
        row.trainable_params = row.params - row.non_trainable_params
    else:
        row.trainable_params = row.params
    if not getattr(layer, "trainable", True):
        row.non_trainable_params += row.trainable_params
        row.trainable_params = 0


# -- receptive fields -----------------------------------------------------------------------------

def _initial_fields(input_shape):
    """Per non-batch tensor axis: (size, jump, start) of one input cell, i.e. (1, 1, 0)."""
    return {axis: (1, 1, 0) for axis in range(1, len(input_shape))}


def _propagate_fields(row: LayerNumbers, fields):
    """Fields after `row`: window layers step the spatial axes; mixing layers make them global."""
    if fields is None:
        return None
    if row.kind in ("conv", "max_pool", "avg_pool", "zero_pad"):
        h_axis, w_axis, c_axis = _axes(row.data_format, row.input_shape, row.name)
        out = dict(fields)
        for axis_index, axis in zip((h_axis, w_axis), row.axes):
            if out.get(axis_index) is None:
                continue
            size, jump, start = out[axis_index]
            out[axis_index] = shapes.receptive_field_step(size, jump, start, axis.kernel, axis.stride,
                                                          axis.dilation, axis.pad_before)
        if row.kind == "conv":
            out[c_axis] = None
        return out
    if row.kind in ("batch_norm", "dropout", "activation"):
        return fields
    if row.kind == "dense" and len(row.input_shape) > 2:
        out = dict(fields)
        out[len(row.input_shape) - 1] = None
        return out
    return None


def _spatial_fields(row: LayerNumbers, fields) -> Optional[List[AxisField]]:
    """The two spatial axes' fields of the layer's output, or None when units see everything."""
    if fields is None or len(row.output_shape) != 4:
        return None
    data_format = row.data_format or "channels_last"
    h_axis, w_axis, _ = _axes(data_format, row.output_shape, row.name)
    picked = [fields.get(h_axis), fields.get(w_axis)]
    if any(f is None for f in picked):
        return None
    return [AxisField(name, int(size), int(jump), int(start)) for name, (size, jump, start)
            in zip(AXIS_NAMES, picked)]


# -- small helpers --------------------------------------------------------------------------------

def _window_axis(name: str, length, kernel: int, stride: int, dilation: int, padding) -> AxisSize:
    if length is None:
        raise ValueError(f"analyze: the {name} of the input is unknown (None); give the model a full input shape")
    before, after = shapes.pad_amounts(length, kernel, stride, dilation, padding)
    mode = padding if isinstance(padding, str) else "explicit"
    return AxisSize(axis=name, mode=mode, input=length, kernel=kernel, stride=stride, dilation=dilation,
                    pad_before=before, pad_after=after,
                    output=shapes.conv_output_length(length, kernel, stride, dilation, padding),
                    dropped=shapes.dropped_by_floor(length, kernel, stride, dilation, padding))


def _real_cells(axis: AxisSize) -> int:
    """Sum over the axis' windows of the real (unpadded) cells each window covers."""
    starts = np.arange(axis.output) * axis.stride - axis.pad_before
    ends = starts + axis.effective_kernel
    return int(np.sum(np.minimum(ends, axis.input) - np.maximum(starts, 0)))


def _zero_pad_amounts(padding, where: str):
    """ZeroPadding2D's `padding` (int, (h, w) or ((t, b), (l, r))) as two (before, after) pairs."""
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    pair = list(padding)
    if len(pair) == 2 and all(isinstance(p, int) for p in pair):
        return (pair[0], pair[0]), (pair[1], pair[1])
    if len(pair) == 2 and all(len(p) == 2 for p in pair):
        return tuple(tuple(int(v) for v in p) for p in pair)
    raise ValueError(f"{where}: argument `padding` must be an int, (h, w) or ((top, bottom), (left, right)), "
                     f"got {padding!r}")


def _data_format(config) -> str:
    data_format = config.get("data_format") or "channels_last"
    return data_format


def _axes(data_format: Optional[str], shape, where: str) -> Tuple[int, int, int]:
    """(height, width, channels) positions in a 4-D shape for the data format."""
    if len(shape) != 4:
        raise ValueError(f"analyze: {where} expects a 4-D input (batch, rows, cols, channels), got {tuple(shape)}")
    return (2, 3, 1) if data_format == "channels_first" else (1, 2, 3)


def _replace(shape, changes) -> Tuple[Optional[int], ...]:
    out = list(shape)
    for axis, value in changes.items():
        out[axis] = value
    return tuple(out)


def _elements(shape) -> int:
    return int(np.prod([d for d in shape[1:] if d is not None], dtype=np.int64))


def _activation_name(layer, config) -> str:
    """The activation a layer applies, as a name ('linear' for none)."""
    if layer is not None and type(layer).__name__ in ("ReLU", "Softmax"):
        return type(layer).__name__.lower()
    activation = config.get("activation", "linear")
    if activation is None:
        return "linear"
    if isinstance(activation, dict):
        activation = activation.get("config", {}).get("name") or activation.get("class_name", "linear")
    return str(getattr(activation, "__name__", activation))


def _model_input_shape(model):
    shape = getattr(model, "input_shape", None)
    if shape is None:
        first = model.layers[0]
        try:
            shape = first.input_shape
        except AttributeError:
            shape = None
    if shape is None:
        raise ValueError("analyze: the model has no input shape yet; give the first layer `input_shape=` "
                         "or start with Input(shape=...)")
    return tuple(shape)


def _batch_size(batch_size, input_shape: Sequence, where: str) -> int:
    if batch_size is None:
        return input_shape[0] if input_shape and input_shape[0] else DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: argument `batch_size` must be a positive int, got {batch_size!r}")
    return int(batch_size)
