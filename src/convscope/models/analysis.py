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

from dataclasses import dataclass, field, replace
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..ops import einsum_dense
from ..ops import resize as resize_ops
from ..ops import shapes

__all__ = ["AxisSize", "AxisField", "LayerNumbers", "ModelNumbers", "analyze", "analyze_layer",
           "summary_columns", "optimizer_slots", "is_graph_model"]

# Each layer is read through its `describe()` (layers/spec.py), never its class name: spec kind -> row kind.
CONV_KINDS = {"conv2d": "conv", "conv1d": "conv", "conv3d": "conv", "conv3d_transpose": "conv_transpose",
              "depthwise_conv2d": "depthwise_conv",
              "separable_conv2d": "separable_conv", "conv2d_transpose": "conv_transpose",
              "depthwise_conv1d": "depthwise_conv", "separable_conv1d": "separable_conv",
              "conv1d_transpose": "conv_transpose"}
SIMPLE_KINDS = {"flatten": "flatten", "reshape": "reshape", "repeat": "repeat", "dropout": "dropout",
                "activation": "activation", "permute": "permute", "identity": "identity", "augment": "augment",
                "noise": "noise", "operation": "operation", "input": "input"}
WINDOW_ROW_KINDS = ("conv", "depthwise_conv", "separable_conv", "max_pool", "avg_pool")  # fields step by a window
ADAPTIVE_KINDS = ("adaptive_max_pool", "adaptive_avg_pool")   # too, where every axis' windows are even
PARAM_FORMULA_KINDS = ("conv", "depthwise_conv", "separable_conv", "conv_transpose", "dense", "embedding",
                       "batch_norm",
                       "layer_norm", "group_norm", "rms_norm", "normalization")
AXIS_NAMES = ("height", "width")
VOLUME_NAMES = ("depth", "height", "width")
STEP_NAMES = ("steps",)

DEFAULT_BATCH_SIZE = 32  # Keras' fit/predict default, used when the model fixes no batch size


@dataclass
class AxisSize:
    """How one spatial axis goes from `input` to `output` through a window (or padding, cropping,
    upsampling, resizing) layer."""

    axis: str   # "height", "width" (images) or "steps" (sequences)
    mode: str   # "valid", "same", "causal", "explicit" (zero padding), "crop", "global", "upsample", "resize",
    #             "adaptive" (kernel: its longest window; stride: n / m where m divides n, else 0)
    input: int
    kernel: int
    stride: int
    dilation: int
    pad_before: int   # "crop": the cells cut; a transposed conv: the cells cut from its full output
    pad_after: int
    output: int
    dropped: int  # cells at the end that no window reaches because of the floor
    factor: int = 1                       # "upsample": each cell repeated (or interpolated) `factor` times
    transposed: bool = False              # Conv2DTranspose: the output size by the transposed rule
    output_padding: Optional[int] = None  # Conv2DTranspose's, None: Keras' default rule

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
    kind: str  # conv (Conv2D, Conv1D), depthwise_conv, separable_conv, conv_transpose, dense, max_pool,
    #            avg_pool, global_max_pool, global_avg_pool, adaptive_max_pool, adaptive_avg_pool (2-D and 1-D),
    #            batch_norm, layer_norm,
    #            group_norm, unit_norm, rms_norm, normalization, rescaling, zero_pad, crop, upsample, resize, flatten,
    #            reshape, permute, identity, dropout, activation, operation, other;
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
    kernels: Optional[int] = None           # kernels (kh x kw slices; Conv1D: k taps) held by a conv layer
    weights_per_filter: Optional[int] = None
    depth_multiplier: Optional[int] = None  # depthwise and separable convs
    pointwise_kernels: Optional[int] = None  # SeparableConv2D: its 1x1 kernels (filters · in · multiplier)
    pointwise_macs: int = 0                 # SeparableConv2D: the MACs of its 1x1 step (included in `macs`)
    macs: int = 0
    bias_adds: int = 0
    pool_ops: int = 0
    norm_ops: int = 0
    activation: Optional[str] = None
    activation_ops: int = 0
    rate: Optional[float] = None  # Dropout's rate
    spatial_dropout: bool = False   # SpatialDropout2D: whole feature maps dropped
    interpolation: Optional[str] = None  # UpSampling2D / Resizing
    aspect: Optional[tuple] = None  # Resizing: ops.resize.aspect_window's ("crop", ...) or ("pad", ...)
    resize_ops: int = 0             # bilinear interpolation: 2 multiplies and 1 add per value per axis pass
    scale_ops: int = 0              # Rescaling / Normalization / LayerNormalization element-wise work
    op: Optional[str] = None        # a merge's or an operation's name ("add", "concatenate", "multiply")
    dims: Optional[Tuple[int, ...]] = None  # Permute's
    field_known: bool = True        # False: the receptive field is not followed through this layer
    adaptive_spans: List[List[int]] = field(default_factory=list)   # adaptive pooling: each axis' window lengths
    norm_weights: Tuple[str, ...] = ()  # LayerNormalization's: ("gamma", "beta"), either, or none
    elementwise: bool = False       # an operation computed value by value: fields pass through (a union)
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
    dot_axes: Optional[Tuple[int, int]] = None  # Dot's summed axes, one of each input (non-negative)
    einsum_sizes: Optional[Tuple[Tuple[str, int], ...]] = None  # EinsumDense: each axis letter's size (no batch)
    recurrent: Optional[Tuple[Any, ...]] = None  # SimpleRNN, LSTM, GRU: (class, gates, biases per gate,
    #                                             directions); `filters` the units, `in_channels` the features
    attention: Optional[Tuple[int, ...]] = None  # MultiHeadAttention: (projection MACs, query positions, value
    #                                              positions, key_dim, value_dim); `filters` its heads
    nested: Optional["ModelNumbers"] = None  # a model inside another: its own numbers
    inner: Optional["LayerNumbers"] = None  # a wrapper's layer's numbers (TimeDistributed: on one step ...
    steps: Optional[int] = None             # ... and the number of steps)
    branches: Optional[List[Tuple[str, Optional[List[AxisField]]]]] = None  # a merge's inputs' fields

    @property
    def flops(self) -> int:
        """2 FLOPs per MAC plus bias adds, pooling, normalization, activation, merge, resize and scaling work."""
        return (2 * self.macs + self.bias_adds + self.pool_ops + self.norm_ops + self.activation_ops
                + self.merge_ops + self.resize_ops + self.scale_ops)

    @property
    def output_elements(self) -> int:
        return _elements(self.output_shape)

    @property
    def input_elements(self) -> int:
        return _elements(self.input_shape)

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
    called = _subclassed_inputs(model)
    if called is not None and not called[1]:
        fields = None                   # the call is not a chain: no receptive field is followed
    for index, layer in enumerate(layers):
        if called is not None:
            shape = called[0][index]
        row = _analyze_one(layer, index, shape, batch)
        if fields is None and called is not None:
            row.field_known = False
        data_format = row.data_format = row.data_format or data_format
        if rows and not rows[-1].field_known and fields is None:
            row.field_known = False          # after a layer whose field is not followed, none is
        fields = _propagate_fields(row, fields)
        row.receptive_field = _spatial_fields(row, fields)
        rows.append(row)
        shape = row.output_shape
    if called is not None:
        shape = tuple(model.output_shape)
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
    if name in ("adagrad", "adadelta", "ftrl", "lion", "lamb", "adafactor"):
        return 2 if name in ("adadelta", "ftrl", "lamb") else 1     # Adafactor: v (r and c, per row and column)
    raise ValueError(f"optimizer_slots: unknown optimizer {type(optimizer).__name__}; expected SGD, Adam, AdamW, "
                     "RMSprop, Adagrad, Adadelta, Nadam, Adamax, Lion, Ftrl, Lamb or Adafactor")


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
        groups = [by_name[layer.name] for layer in model.operations]
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
    """'5x5 /2 @-2,-2' (size, jump, start), 'all' for layers whose units see the whole input, '-' where
    the field is not followed (after upsampling, resizing, a transposed conv or an operation)."""
    rf = row.receptive_field
    if rf is None:
        return "all" if row.field_known else "-"
    size = "x".join(str(a.size) for a in rf)
    jump = "x".join(str(a.jump) for a in rf)
    if len({a.jump for a in rf}) == 1:
        jump = str(rf[0].jump)
    start = ",".join(str(a.start) for a in rf)
    return f"{size} /{jump} @{start}"


def _kernel_cell(row: LayerNumbers) -> str:
    """'2,048 x 2x2'; a separable conv adds its 1x1 kernels: '24 x 3x3 + 256 x 1x1'."""
    if row.kernels is None:
        return ""
    cell = f"{row.kernels:,} x {'x'.join(map(str, row.kernel_size))}"
    if row.pointwise_kernels is not None:
        cell += f" + {row.pointwise_kernels:,} x {'x'.join('1' for _ in row.kernel_size)}"
    return cell


# -- one layer ------------------------------------------------------------------------------------

def _analyze_one(layer, index: int, input_shape, batch: int, known_output=None) -> LayerNumbers:
    """One layer on `input_shape`, read through its `describe()`; `known_output` (graph models) is the
    output shape of the call, used where the layer's spec gives no formula."""
    cls = type(layer).__name__
    spec = layer.describe()
    row = LayerNumbers(index=index, name=layer.name, class_name=cls, kind="other",
                       input_shape=tuple(input_shape), output_shape=tuple(input_shape),
                       itemsize=np.dtype(getattr(layer, "dtype", "float32") or "float32").itemsize,
                       batch_size=batch)
    where = f"{cls} '{layer.name}'"
    handler = _HANDLERS.get(spec.kind)
    if spec.kind == "model":
        _nested_model(row, spec.inner, batch, known_output)
    elif spec.kind == "time_distributed":
        _time_distributed(row, spec.inner, batch)
    elif spec.kind == "recurrent":
        _recurrent(row, spec, layer, known_output)
    elif spec.kind == "spectral_norm":         # the wrapped layer's numbers (its kernel's power iteration aside)
        _wrapped(row, spec.inner, batch, row.input_shape, 1)
        row.kind = "spectral_norm"
    elif handler is not None:
        handler(row, spec, where)
    else:
        row.kind = SIMPLE_KINDS.get(spec.kind, "other")
        row.output_shape = tuple(known_output if known_output is not None
                                 else layer.compute_output_shape(tuple(input_shape)))
        if row.kind == "dropout":
            row.rate = spec.rate
            row.spatial_dropout = spec.op == "spatial"
        elif row.kind == "activation":
            row.activation = spec.activation or "linear"
            row.activation_ops = row.output_elements
        elif row.kind in ("permute", "operation"):
            row.dims, row.op, row.elementwise = spec.dims, spec.op, spec.elementwise
            if row.elementwise:             # one evaluation (or one arithmetic operation) per output value
                row.merge_ops = row.output_elements
        row.field_known = row.kind not in ("other", "repeat") and (row.kind != "operation" or row.elementwise)
    _weights(row, layer)
    return row


def _recurrent(row: LayerNumbers, spec, layer, known_output) -> None:
    """A recurrent layer on (batch, steps, features): per step each gate's units take features + units products
    (the input's and the state's), and one bias add per bias; a Bidirectional twice; the time steps are its
    "steps" (unknown: none counted); its receptive field is not followed."""
    _, steps, features = row.input_shape
    gates, biases = spec.size
    directions = 2 if spec.op == "Bidirectional" else 1
    name = type(spec.inner.cell).__name__[:-len("Cell")] if directions == 2 else spec.op
    row.kind, row.field_known, row.steps = "recurrent", False, steps
    row.filters, row.in_channels, row.use_bias = spec.filters, features, spec.use_bias
    row.recurrent = (name, gates, biases, directions)
    per_step = gates * spec.filters * ((features or 0) + spec.filters)
    row.macs = directions * (steps or 0) * per_step
    row.bias_adds = directions * (steps or 0) * gates * spec.filters * biases if spec.use_bias else 0
    output = known_output if known_output is not None else layer.compute_output_shape(row.input_shape)
    row.output_shape = tuple(output[0] if isinstance(output, list) else output)


_PER_STEP_COUNTS = ("macs", "bias_adds", "pool_ops", "norm_ops", "activation_ops", "resize_ops", "scale_ops",
                    "merge_ops")


def _time_distributed(row: LayerNumbers, inner, batch: int) -> None:
    """TimeDistributed: its layer's numbers on one step's (batch, *rest), the counts times the steps (unknown
    steps: none counted); its receptive field is not followed."""
    shape = row.input_shape
    _wrapped(row, inner, batch, (shape[0],) + tuple(shape[2:]), shape[1] or 0)
    row.kind, row.steps, row.field_known = "time_distributed", shape[1], False
    out = row.inner.output_shape
    row.output_shape = (out[0], shape[1]) + tuple(out[1:])


def _nested_model(row: LayerNumbers, model, batch: int, known_output) -> None:
    """A model inside another: its own analysis (its layers on its own input), the counts summed into this row;
    its receptive field is not followed through it here."""
    row.kind, row.field_known = "model", False
    row.nested = analyze(model, batch)
    row.output_shape = tuple(known_output) if known_output is not None else \
        tuple(model.compute_output_shape(row.input_shape))
    for name in _PER_STEP_COUNTS:
        setattr(row, name, sum(getattr(inner, name) for inner in row.nested.layers))


def _wrapped(row: LayerNumbers, inner, batch: int, input_shape, times: int) -> None:
    """A wrapper's row: its layer's numbers on `input_shape`, the counts `times` over, its output shape."""
    row.inner = _analyze_one(inner, 0, input_shape, batch)
    row.output_shape, row.field_known = row.inner.output_shape, row.inner.field_known
    row.data_format = row.inner.data_format
    for name in _PER_STEP_COUNTS:
        setattr(row, name, getattr(row.inner, name) * times)


def _layout(data_format: Optional[str], shape, where: str):
    """(spatial axis positions, channel position, axis names) of a 5-D volume, 4-D image or 3-D sequence shape."""
    first = data_format == "channels_first"
    if len(shape) == 5:
        return ((2, 3, 4) if first else (1, 2, 3)), (1 if first else 4), VOLUME_NAMES
    if len(shape) == 4:
        return ((2, 3) if first else (1, 2)), (1 if first else 3), AXIS_NAMES
    if len(shape) == 3:
        return ((2,) if first else (1,)), (1 if first else 2), STEP_NAMES
    raise ValueError(f"analyze: {where} expects a 4-D input (batch, rows, cols, channels), a 3-D one (batch, steps, "
                     f"channels) or a 5-D one (batch, depth, rows, cols, channels), got {tuple(shape)}")


def _windowed(row: LayerNumbers, spec, where: str, dilation=None):
    """Set the axes of a sliding window (conv, pooling) and return (spatial axes, channel axis)."""
    row.data_format = spec.data_format
    spatial, c_axis, names = _layout(spec.data_format, row.input_shape, where)
    w = spec.window
    dilation = w.dilation[:len(spatial)] if dilation is None else dilation
    row.axes = [_window_axis(name, row.input_shape[a], k, s, d, w.padding)
                for name, a, k, s, d in zip(names, spatial, w.size, w.strides, dilation)]
    row.kernel_size = tuple(w.size)
    return spatial, c_axis


def _conv(row: LayerNumbers, spec, where: str) -> None:
    """Conv2D and Conv1D: filters × (in/groups) kernels; Depthwise and Separable: see the module rules."""
    row.kind = CONV_KINDS[spec.kind]
    if row.kind == "conv_transpose":
        return _conv_transpose(row, spec, where)
    spatial, c_axis = _windowed(row, spec, where)
    in_channels = row.input_shape[c_axis]
    taps = int(np.prod(row.kernel_size))
    row.in_channels, row.use_bias = in_channels, spec.use_bias
    if row.kind == "conv":
        filters, groups = spec.filters, spec.groups
        row.filters, row.groups = filters, groups
        row.kernels = filters * (in_channels // groups)
        row.weights_per_filter = (in_channels // groups) * taps
        out_channels, weights = filters, filters * row.weights_per_filter
    else:
        multiplier = row.depth_multiplier = spec.depth_multiplier
        row.groups = in_channels
        row.kernels = in_channels * multiplier
        row.weights_per_filter = taps
        weights = taps * in_channels * multiplier
        out_channels = row.filters = in_channels * multiplier
        if row.kind == "separable_conv":
            out_channels = row.filters = spec.filters
            row.pointwise_kernels = in_channels * multiplier * spec.filters
            weights += row.pointwise_kernels
    row.output_shape = _replace(row.input_shape, {**{a: x.output for a, x in zip(spatial, row.axes)},
                                                  c_axis: out_channels})
    positions = row.output_elements // out_channels
    row.macs = row.output_elements * row.weights_per_filter
    if row.kind == "separable_conv":
        row.macs = positions * row.kernels * taps
        row.pointwise_macs = positions * row.pointwise_kernels
        row.macs += row.pointwise_macs
    row.bias_adds = row.output_elements if row.use_bias else 0
    row.params = weights + (out_channels if row.use_bias else 0)
    row.activation = spec.activation or "linear"
    row.activation_ops = 0 if row.activation == "linear" else row.output_elements


def _conv_transpose(row: LayerNumbers, spec, where: str) -> None:
    """Conv2DTranspose: each input pixel scatters filters kernels of kh×kw; size by Keras' transposed rule."""
    row.data_format = spec.data_format
    spatial, c_axis, names = _layout(spec.data_format, row.input_shape, where)
    w = spec.window
    extras = spec.output_padding or (None,) * len(spatial)
    row.axes = []
    for name, a, k, st, d, extra in zip(names, spatial, w.size, w.strides, w.dilation, extras):
        length = _known(row.input_shape[a], name)
        before, after = shapes.deconv_padding(length, k, st, d, w.padding, extra)
        out = shapes.deconv_output_length(length, k, st, d, w.padding, extra)
        row.axes.append(AxisSize(name, w.padding, length, k, st, d, before, after, out, 0, transposed=True,
                                 output_padding=extra))
    in_channels, filters = row.input_shape[c_axis], spec.filters
    taps = int(np.prod(w.size))
    row.kernel_size, row.in_channels, row.filters, row.use_bias = tuple(w.size), in_channels, filters, spec.use_bias
    row.kernels = filters * in_channels
    row.weights_per_filter = in_channels * taps
    row.output_shape = _replace(row.input_shape, {**{a: x.output for a, x in zip(spatial, row.axes)},
                                                  c_axis: filters})
    row.macs = row.input_elements * taps * filters        # every input value times every tap of every filter
    row.bias_adds = row.output_elements if row.use_bias else 0
    row.params = row.kernels * taps + (filters if row.use_bias else 0)
    row.activation = spec.activation or "linear"
    row.activation_ops = 0 if row.activation == "linear" else row.output_elements
    row.field_known = False


def _pool(row: LayerNumbers, spec, where: str) -> None:
    """MaxPooling / AveragePooling, 1-D, 2-D and 3-D."""
    row.kind = "max_pool" if spec.pool == "max" else "avg_pool"
    spatial, c_axis = _windowed(row, spec, where, dilation=(1,) * len(spec.window.size))
    row.output_shape = _replace(row.input_shape, {a: x.output for a, x in zip(spatial, row.axes)})
    cells = row.input_shape[c_axis]
    for axis in row.axes:
        cells *= _real_cells(axis)          # inputs read, all windows
    outputs = row.output_elements
    row.pool_ops = cells - outputs + (outputs if row.kind == "avg_pool" else 0)


def _global_pool(row: LayerNumbers, spec, where: str) -> None:
    row.kind = "global_max_pool" if spec.pool == "max" else "global_avg_pool"
    row.data_format = spec.data_format
    spatial, c_axis, names = _layout(spec.data_format, row.input_shape, where)
    lengths = [_known(row.input_shape[a], name) for a, name in zip(spatial, names)]
    channels = row.input_shape[c_axis]
    row.axes = [AxisSize(name, "global", n, n, n, 1, 0, 0, 1, 0) for name, n in zip(names, lengths)]
    if spec.keepdims:
        row.output_shape = _replace(row.input_shape, {a: 1 for a in spatial})
    else:
        row.output_shape = (row.input_shape[0], channels)
    row.pool_ops = (int(np.prod(lengths)) - 1) * channels + (channels if row.kind == "global_avg_pool" else 0)


def _adaptive_pool(row: LayerNumbers, spec, where: str) -> None:
    """Adaptive pooling: output cell i of an axis pools input cells ⌊i·n/m⌋ to ⌈(i+1)·n/m⌉ − 1
    (`shapes.adaptive_windows`); the field is followed where every axis' windows are even (n / m cells, side by
    side: a pooling of that size and stride)."""
    row.kind = "adaptive_max_pool" if spec.pool == "max" else "adaptive_avg_pool"
    row.data_format = spec.data_format
    spatial, c_axis, names = _layout(spec.data_format, row.input_shape, where)
    row.axes, covered = [], 1
    for name, a, m in zip(names, spatial, spec.size):
        n = _known(row.input_shape[a], name)
        spans = [stop - start for start, stop in shapes.adaptive_windows(n, m)]
        covered *= sum(spans)                  # input cells read, summed over this axis' output cells
        row.axes.append(AxisSize(name, "adaptive", n, max(spans), n // m if n % m == 0 else 0, 1, 0, 0, m, 0))
        row.adaptive_spans.append(spans)
    row.output_shape = _replace(row.input_shape, dict(zip(spatial, spec.size)))
    cells, channels = int(np.prod(spec.size)), row.input_shape[c_axis]
    row.pool_ops = (covered - cells + (cells if row.kind == "adaptive_avg_pool" else 0)) * channels
    row.field_known = all(axis.stride for axis in row.axes)


def _border(row: LayerNumbers, spec, where: str) -> None:
    """ZeroPadding (cells added) and Cropping (cells cut), 2-D and 1-D: (before, after) per axis."""
    row.kind = "zero_pad" if spec.kind in ("zero_pad2d", "pad1d", "zero_pad3d") else "crop"
    row.data_format = spec.data_format
    spatial, _, names = _layout(spec.data_format, row.input_shape, where)
    row.axes = []
    for name, a, (before, after) in zip(names, spatial, spec.pads):
        length = _known(row.input_shape[a], name)
        if row.kind == "zero_pad":
            axis = _window_axis(name, length, 1, 1, 1, (before, after))
            axis.mode = "explicit"
        else:
            axis = AxisSize(name, "crop", length, 1, 1, 1, before, after, length - before - after, 0)
        row.axes.append(axis)
    row.output_shape = _replace(row.input_shape, {a: x.output for a, x in zip(spatial, row.axes)})


def _upsample(row: LayerNumbers, spec, where: str) -> None:
    """UpSampling (each cell repeated, or bilinear) and Resizing (to a target size)."""
    row.kind = "upsample" if spec.kind in ("upsample2d", "upsample1d", "upsample3d") else "resize"
    row.data_format = spec.data_format
    row.interpolation = spec.interpolation or "nearest"
    spatial, c_axis, names = _layout(spec.data_format, row.input_shape, where)
    lengths = [_known(row.input_shape[a], name) for a, name in zip(spatial, names)]
    if row.kind == "upsample":
        row.axes = [AxisSize(name, "upsample", n, 1, 1, 1, 0, 0, n * f, 0, factor=f)
                    for name, n, f in zip(names, lengths, spec.size)]
        sources = lengths
    else:
        window = resize_ops.aspect_window(lengths[0], lengths[1], spec.size, spec.aspect)
        sources = (lengths if window is None else list(window[3:5]) if window[0] == "crop"
                   else [lengths[0] + 2 * window[1], lengths[1] + 2 * window[2]])
        row.axes = [AxisSize(name, "resize", n, 1, 1, 1, 0, 0, t, 0) for name, n, t in zip(names, lengths, spec.size)]
        row.aspect = window
    row.output_shape = _replace(row.input_shape, {a: x.output for a, x in zip(spatial, row.axes)})
    if row.interpolation == "bilinear":      # separable: along the first axis, then the second; 3 FLOPs a value
        channels = row.input_shape[c_axis]
        outs = [x.output for x in row.axes]
        row.resize_ops = 3 * channels * outs[0] * (sources[1] + outs[1]) if len(outs) == 2 else 0
    row.field_known = False


def _center_crop(row: LayerNumbers, spec, where: str) -> None:
    """CenterCrop: a crop (cells cut on both sides) of an image at least the target's size, else a resize
    after the aspect-ratio crop, as the op decides (`resize.center_crop_resizes`)."""
    spatial, _, names = _layout(spec.data_format, row.input_shape, where)
    height, width = (_known(row.input_shape[a], name) for a, name in zip(spatial, names))
    if resize_ops.center_crop_resizes(height, width, spec.size):
        _upsample(row, replace(spec, kind="resizing"), where)
        return
    cuts = [(n - t) // 2 for n, t in zip((height, width), spec.size)]
    pads = tuple((cut, n - t - cut) for cut, n, t in zip(cuts, (height, width), spec.size))
    _border(row, replace(spec, kind="crop2d", pads=pads), where)


def _dense(row: LayerNumbers, spec, where: str) -> None:
    row.kind = "dense"
    units = spec.filters
    in_features = row.input_shape[-1]
    row.output_shape = tuple(row.input_shape[:-1]) + (units,)
    row.in_channels, row.filters = in_features, units
    row.use_bias = spec.use_bias
    row.macs = row.output_elements * in_features
    row.bias_adds = row.output_elements if row.use_bias else 0
    row.params = in_features * units + (units if row.use_bias else 0)
    row.activation = spec.activation or "linear"
    row.activation_ops = 0 if row.activation == "linear" else row.output_elements


def _einsum_dense(row: LayerNumbers, spec, where: str) -> None:
    """EinsumDense: one multiply-add per combination of its axes' sizes (the batch's aside), a bias add per output
    value where it has a bias."""
    row.kind, row.op = "einsum_dense", spec.op
    geometry = einsum_dense.einsum_dense_geometry(spec.op, None, row.input_shape, spec.size, where)
    subscripts = einsum_dense.einsum_subscripts(spec.op, len(row.input_shape), where)
    row.output_shape = geometry.output_shape
    sizes = dict(zip(subscripts[0][1:], row.input_shape[1:]))
    sizes.update(zip(subscripts[1], geometry.kernel_shape))
    row.einsum_sizes = tuple(sizes.items())
    row.macs = einsum_dense.multiply_adds(subscripts, row.input_shape, geometry.kernel_shape)
    row.use_bias = spec.use_bias
    row.bias_adds = row.output_elements if row.use_bias else 0
    row.activation = spec.activation or "linear"
    row.activation_ops = 0 if row.activation == "linear" else row.output_elements


def _embedding(row: LayerNumbers, spec, where: str) -> None:
    """Embedding: a row of (input_dim, output_dim) looked up per index; no arithmetic."""
    row.kind = "embedding"
    vocabulary, width = spec.size
    row.output_shape = tuple(row.input_shape) + (width,)
    row.in_channels, row.filters = vocabulary, width
    row.params = vocabulary * width
    row.field_known = False


def _batch_norm(row: LayerNumbers, spec, where: str) -> None:
    row.kind = "batch_norm"
    axis = spec.axis[0] if isinstance(spec.axis, (list, tuple)) else spec.axis
    channels = row.input_shape[int(axis)]
    row.in_channels = channels
    row.params = channels * (2 + spec.center + spec.scale)
    row.norm_ops = 2 * row.output_elements


def _normalizing(row: LayerNumbers, spec, where: str) -> None:
    """LayerNormalization (gamma, beta over `axis`), GroupNormalization (gamma, beta per channel on `axis`),
    UnitNormalization (no weights), RMSNormalization (scale over `axis`), Normalization (mean, variance, count)
    and Rescaling."""
    kinds = ("layer_norm", "group_norm", "unit_norm", "rms_norm", "normalization")
    row.kind = spec.kind if spec.kind in kinds else "rescaling"
    n = len(row.input_shape)
    axes = spec.axis if isinstance(spec.axis, (list, tuple)) else [] if spec.axis is None else [spec.axis]
    row.dims = tuple(sorted(int(a) % n for a in axes))
    elements = row.output_elements
    if row.kind == "unit_norm":                 # no weights: the axes' sizes may be unknown
        row.norm_ops = 3 * elements             # a square and an add (the sum), then a multiply by 1 / norm
        return
    size = int(np.prod([row.input_shape[a] for a in row.dims], dtype=np.int64))
    if row.kind == "group_norm":
        row.groups = spec.groups if spec.groups != -1 else size      # -1 (instance normalization) until built
    if row.kind in ("layer_norm", "group_norm"):
        weights = [spec.scale, spec.center]
        row.norm_weights = tuple(name for name, on in zip(("gamma", "beta"), weights) if on)
        row.params = size * sum(weights)
        row.in_channels = size
        # per element: 1 add (mean), subtract + square + add (variance), subtract + multiply (normalize),
        # then one multiply (gamma) and one add (beta) when present
        row.norm_ops = (6 + sum(weights)) * elements
    elif row.kind == "rms_norm":            # a square and an add (the mean), a multiply by 1 / RMS, one by scale
        row.params = row.in_channels = size
        row.norm_ops = 4 * elements
    elif row.kind == "normalization":
        row.params = 2 * size + 1 if spec.adapted else 0
        row.in_channels = size
        row.scale_ops = 2 * elements            # a subtract and a divide (sqrt(variance) computed once)
    else:
        row.scale_ops = 2 * elements            # a multiply and an add


def _weights(row: LayerNumbers, layer) -> None:
    """Parameter split from the layer's variables when built, else from the formulas above."""
    variables = list(getattr(layer, "weights", []) or [])
    if variables:
        row.weight_shapes = [(v.name, tuple(v.shape), bool(v.trainable)
                              and v in layer.trainable_weights) for v in variables]
        row.trainable_params = int(sum(int(np.prod(v.shape)) for v in layer.trainable_weights))
        row.non_trainable_params = int(sum(int(np.prod(v.shape)) for v in layer.non_trainable_weights))
        if row.kind not in PARAM_FORMULA_KINDS:
            row.params = row.trainable_params + row.non_trainable_params
        return
    if row.kind == "batch_norm":
        channels = row.in_channels or 0
        row.non_trainable_params = 2 * channels
        row.trainable_params = row.params - row.non_trainable_params
    elif row.kind == "normalization":
        row.non_trainable_params = row.params
    else:
        row.trainable_params = row.params
    if not getattr(layer, "trainable", True):
        row.non_trainable_params += row.trainable_params
        row.trainable_params = 0


_HANDLERS = {
    **{kind: _conv for kind in CONV_KINDS}, "pool": _pool, "pool1d": _pool, "global_pool": _global_pool,
    "global_pool1d": _global_pool, "adaptive_pool": _adaptive_pool, "zero_pad2d": _border, "pad1d": _border,
    "crop2d": _border, "crop1d": _border, "pool3d": _pool, "global_pool3d": _global_pool, "zero_pad3d": _border,
    "crop3d": _border, "upsample3d": _upsample, "upsample2d": _upsample, "upsample1d": _upsample, "resizing": _upsample,
    "center_crop": _center_crop,
    "dense": _dense, "einsum_dense": _einsum_dense, "embedding": _embedding, "batch_norm": _batch_norm,
    "layer_norm": _normalizing, "group_norm": _normalizing,
    "unit_norm": _normalizing, "rms_norm": _normalizing, "normalization": _normalizing,
    "rescaling": _normalizing,
}


# -- receptive fields -----------------------------------------------------------------------------

def _initial_fields(input_shape):
    """Per non-batch tensor axis: (size, jump, start) of one input cell, i.e. (1, 1, 0)."""
    return {axis: (1, 1, 0) for axis in range(1, len(input_shape))}


def _propagate_fields(row: LayerNumbers, fields):
    """Fields after `row`: window layers step the spatial axes; mixing layers make them global."""
    if fields is None or not row.field_known:
        return None
    if row.kind == "spectral_norm":             # the wrapped layer's window
        return _propagate_fields(row.inner, fields)
    if row.kind in WINDOW_ROW_KINDS + ADAPTIVE_KINDS + ("zero_pad", "crop"):
        spatial, c_axis, _ = _layout(row.data_format, row.input_shape, row.name)
        out = dict(fields)
        for axis_index, axis in zip(spatial, row.axes):
            if out.get(axis_index) is None:
                continue
            size, jump, start = out[axis_index]
            pad = -axis.pad_before if row.kind == "crop" else axis.pad_before
            out[axis_index] = shapes.receptive_field_step(size, jump, start, axis.kernel, axis.stride,
                                                          axis.dilation, pad)
        if row.kind in ("conv", "depthwise_conv", "separable_conv"):
            out[c_axis] = None
        return out
    if row.kind in ("batch_norm", "dropout", "activation", "identity", "augment", "noise", "rescaling",
                    "normalization") or \
            (row.kind == "operation" and row.elementwise):
        return fields
    if row.kind in ("layer_norm", "unit_norm", "rms_norm"):
        return {axis: (None if axis in row.dims else f) for axis, f in fields.items()}
    if row.kind == "permute" and row.dims:
        return {i + 1: fields.get(d) for i, d in enumerate(row.dims)}
    if row.kind == "dense" and len(row.input_shape) > 2:
        out = dict(fields)
        out[len(row.input_shape) - 1] = None
        return out
    return None


def _spatial_fields(row: LayerNumbers, fields) -> Optional[List[AxisField]]:
    """The spatial axes' fields of the layer's output (volumes: 3, images: 2, sequences: 1), or None when units
    see everything (or the field is not followed)."""
    if fields is None or len(row.output_shape) not in (3, 4, 5):
        return None
    data_format = row.data_format or "channels_last"
    spatial, _, names = _layout(data_format, row.output_shape, row.name)
    picked = [fields.get(a) for a in spatial]
    if any(f is None for f in picked):
        return None
    return [AxisField(name, int(size), int(jump), int(start)) for name, (size, jump, start)
            in zip(names, picked)]


# -- small helpers --------------------------------------------------------------------------------

def _known(length, name: str) -> int:
    if length is None:
        raise ValueError(f"analyze: the {name} of the input is unknown (None); give the model a full input shape")
    return length


def _window_axis(name: str, length, kernel: int, stride: int, dilation: int, padding) -> AxisSize:
    length = _known(length, name)
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


def _subclassed_inputs(model):
    """For a subclassed model: (each layer's input shape as its call saw it, whether the call is a chain);
    else None (a Sequential model's layers take the shape before them)."""
    from .subclassed import is_chain, is_subclassed, layer_calls, zero_sample
    if not is_subclassed(model):
        return None
    sample = zero_sample(model)
    calls = layer_calls(model, sample, "analyze")

    def unbatched(value):
        if isinstance(value, (list, tuple)):
            return [unbatched(v) for v in value]
        return (None,) + tuple(np.shape(value)[1:])
    return [unbatched(inputs) for _, inputs, _ in calls], is_chain(calls, sample)


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
