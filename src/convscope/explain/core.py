"""Builds explanations from `models.analysis` numbers and one language's sentences.

The formulas (with numbers substituted) are written here once, in a neutral
mathematical notation; `text_en` / `text_ko` only hold the sentences around them.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Dict, List, Optional

from ..models import analysis
from ..models.analysis import ADAPTIVE_KINDS, AxisField, AxisSize, LayerNumbers, ModelNumbers, format_bytes
from . import text_en, text_ko

LANGUAGES = {"en": text_en, "ko": text_ko}
SCHEMA = "convscope.explain/1"
SECTION_KEYS = ("shape", "params", "kernels", "compute", "memory", "receptive_field", "notes")
CONV_ROW_KINDS = ("conv", "depthwise_conv", "separable_conv", "conv_transpose")
WINDOW_ROW_KINDS = ("conv", "depthwise_conv", "separable_conv", "max_pool", "avg_pool")


def explain(model_or_layer, lang: str = "en", batch_size: Optional[int] = None) -> "Explanation":
    """Explain a built Sequential or functional model, or a single built layer, in English ("en") or Korean ("ko").

    A functional model is explained call by call: a shared layer appears once per call
    ("call 1 of 2: from a"), a merge layer with the union of its branches' receptive fields.
    """
    if not isinstance(lang, str) or lang not in LANGUAGES:
        raise ValueError(f"explain: argument `lang` must be one of {sorted(LANGUAGES)}, got {lang!r}")
    text = LANGUAGES[lang]
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, Integral)
                                   or batch_size < 1):
        raise ValueError(f"explain: argument `batch_size` must be a positive int or None, got {batch_size!r}")
    is_model = isinstance(getattr(model_or_layer, "layers", None), (list, tuple))
    if is_model:
        numbers = analysis.analyze(model_or_layer, batch_size=batch_size)
    elif hasattr(model_or_layer, "get_config") and hasattr(model_or_layer, "weights"):
        row = analysis.analyze_layer(model_or_layer, batch_size=batch_size)
        numbers = ModelNumbers(name=row.name, input_shape=row.input_shape, output_shape=row.output_shape,
                               layers=[row], batch_size=row.batch_size)
    else:
        raise TypeError("explain: argument `model_or_layer` must be a convscope Sequential model or layer, "
                        f"got {type(model_or_layer).__name__}")
    return _build(numbers, text, lang, "model_title" if is_model else "layer_only_title")


@dataclass
class LayerExplanation:
    """One layer: its numbers and its explanation, section by section."""

    numbers: LayerNumbers
    title: str
    sections: List[Dict[str, Any]]

    def section(self, key: str) -> List[str]:
        """The lines of section `key` ("shape", "params", ...); empty when the layer has none."""
        if key not in SECTION_KEYS:
            raise ValueError(f"LayerExplanation.section: argument `key` must be one of {SECTION_KEYS}, got {key!r}")
        for sec in self.sections:
            if sec["key"] == key:
                return list(sec["lines"])
        return []

    def to_text(self) -> str:
        lines = [self.title]
        for sec in self.sections:
            lines.append(f"  {sec['title']}:")
            lines.extend(f"    {line}" for line in sec["lines"])
        return "\n".join(lines) + "\n"

    def to_markdown(self) -> str:
        lines = [f"### {self.numbers.index + 1}. {self.title}", ""]
        for sec in self.sections:
            lines += [f"**{sec['title']}**", ""] + [_md_bullet(line) for line in sec["lines"]] + [""]
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        r = self.numbers
        kernels = None
        if r.kernels is not None:
            kernels = {"count": r.kernels, "size": list(r.kernel_size), "filters": r.filters,
                       "in_channels": r.in_channels, "groups": r.groups,
                       "weights_per_filter": r.weights_per_filter}
            if r.depth_multiplier is not None:      # depthwise and separable convs only
                kernels.update(depth_multiplier=r.depth_multiplier, pointwise_count=r.pointwise_kernels)
        return {
            "index": r.index, "name": r.name, "class_name": r.class_name, "kind": r.kind,
            "input_shape": list(r.input_shape), "output_shape": list(r.output_shape),
            "data_format": r.data_format,
            "axes": [_axis_dict(a) for a in r.axes],
            "params": r.params, "trainable_params": r.trainable_params,
            "non_trainable_params": r.non_trainable_params,
            "weights": [{"name": n, "shape": list(s), "trainable": t} for n, s, t in r.weight_shapes],
            "kernels": kernels,
            "macs": r.macs, "flops": r.flops, "bias_adds": r.bias_adds, "pool_ops": r.pool_ops,
            "norm_ops": r.norm_ops, "resize_ops": r.resize_ops, "scale_ops": r.scale_ops,
            "activation": r.activation, "activation_ops": r.activation_ops,
            "activation_bytes_per_sample": r.activation_bytes_per_sample,
            "activation_bytes_per_batch": r.activation_bytes_per_batch, "param_bytes": r.param_bytes,
            "receptive_field": None if r.receptive_field is None else
            [{"axis": f.axis, "size": f.size, "jump": f.jump, "start": f.start} for f in r.receptive_field],
            "title": self.title,
            "sections": [{"key": s["key"], "title": s["title"], "lines": list(s["lines"])} for s in self.sections],
            **_graph_dict(r),
        }


@dataclass
class Explanation:
    """A whole model's explanation; render with to_text(), to_markdown(), to_dict()."""

    numbers: ModelNumbers
    lang: str
    title: str
    model_lines: List[str]
    model_notes: List[str]
    conventions: List[str]
    layers: List[LayerExplanation] = field(default_factory=list)

    def layer(self, name_or_index) -> LayerExplanation:
        """The explanation of one layer, by name or position."""
        if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
            if not -len(self.layers) <= name_or_index < len(self.layers):
                raise ValueError(f"Explanation.layer: index {name_or_index} out of range for "
                                 f"{len(self.layers)} layers")
            return self.layers[name_or_index]
        for item in self.layers:
            if item.numbers.name == name_or_index:
                return item
        names = [item.numbers.name for item in self.layers]
        raise ValueError(f"Explanation.layer: no layer named {name_or_index!r}; layers are {names}")

    def calls(self, name: str) -> List[LayerExplanation]:
        """Every call of the layer `name` (a shared layer of a functional model has several)."""
        found = [item for item in self.layers if item.numbers.name == name]
        if not found:
            names = [item.numbers.name for item in self.layers]
            raise ValueError(f"Explanation.calls: no layer named {name!r}; layers are {names}")
        return found

    def to_dict(self) -> Dict[str, Any]:
        n = self.numbers
        optimizer = None
        if n.optimizer is not None:
            optimizer = {"name": n.optimizer, "slots": n.optimizer_slots, "state_bytes": n.optimizer_state_bytes}
        largest = n.largest_layer
        return {
            "schema": SCHEMA, "lang": self.lang, "title": self.title,
            "model": {
                "name": n.name, "input_shape": list(n.input_shape), "output_shape": list(n.output_shape),
                "params": n.params, "trainable_params": n.trainable_params,
                "non_trainable_params": n.non_trainable_params, "macs": n.macs, "flops": n.flops,
                "batch_size": n.batch_size, "activation_bytes_per_sample": n.activation_bytes_per_sample,
                "activation_bytes_per_batch": n.activation_bytes_per_batch, "param_bytes": n.param_bytes,
                "optimizer": optimizer, "largest_layer": largest.name if largest else None,
                "lines": list(self.model_lines), "notes": list(self.model_notes),
            },
            "conventions": list(self.conventions),
            "layers": [item.to_dict() for item in self.layers],
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def to_text(self) -> str:
        out = [self.title, *self.model_lines, *self.model_notes, ""]
        for item in self.layers:
            out.append(f"[{item.numbers.index + 1}] {item.to_text()}")
        out.extend(self.conventions)
        return "\n".join(out).rstrip() + "\n"

    def to_markdown(self) -> str:
        out = [f"## {self.title}", ""]
        out.extend(_md_bullet(line) for line in self.model_lines + self.model_notes)
        out.append("")
        for item in self.layers:
            out.append(item.to_markdown())
        out += ["---", ""] + [_md_bullet(line) for line in self.conventions]
        return "\n".join(out).rstrip() + "\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        esc = html.escape
        out = [f"<div class='convscope-explain' lang='{self.lang}'><h3>{esc(self.title)}</h3><ul>"]
        out += [f"<li>{esc(line)}</li>" for line in self.model_lines + self.model_notes]
        out.append("</ul>")
        for item in self.layers:
            out.append(f"<h4>{item.numbers.index + 1}. {esc(item.title)}</h4>")
            for sec in item.sections:
                out.append(f"<p><b>{esc(sec['title'])}</b></p><ul>")
                out += [f"<li>{esc(line.strip())}</li>" for line in sec["lines"]]
                out.append("</ul>")
        out.append("<hr><ul>" + "".join(f"<li>{esc(c)}</li>" for c in self.conventions) + "</ul></div>")
        return "".join(out)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        n = self.numbers
        return (f"<Explanation of '{n.name}' ({self.lang}): {len(self.layers)} layer(s), "
                f"{n.params:,} params, {n.flops:,} FLOPs>")


def _axis_dict(a: AxisSize) -> Dict[str, Any]:
    """One axis; "factor" (upsampling) and "output_padding" (transposed convs) only where they apply."""
    out = dict(axis=a.axis, mode=a.mode, input=a.input, kernel=a.kernel, stride=a.stride, dilation=a.dilation,
               pad_before=a.pad_before, pad_after=a.pad_after, output=a.output, dropped=a.dropped)
    if a.mode == "upsample":
        out["factor"] = a.factor
    if a.transposed:
        out.update(transposed=True, output_padding=a.output_padding)
    return out


def _graph_dict(r: LayerNumbers) -> Dict[str, Any]:
    """The keys only a functional model's rows have (none for a Sequential row, whose dict is unchanged)."""
    if r.inbound is None:
        return {}
    return {"call": r.call, "calls": r.calls, "inbound": list(r.inbound), "parents": list(r.parents),
            "input_shapes": [list(shape) for shape in r.input_shapes or []], "merge_ops": r.merge_ops,
            "concat_axis": r.concat_axis,
            "branches": [{"source": label, "receptive_field": None if f is None else
                          [{"axis": a.axis, "size": a.size, "jump": a.jump, "start": a.start} for a in f]}
                         for label, f in r.branches or []]}


def _md_bullet(line: str) -> str:
    """A text line as a Markdown bullet: indented lines nest, and _ * ` are escaped."""
    depth = "  " if line.startswith("  ") else ""
    escaped = line.strip().replace("\\", "\\\\")
    for char in "_*`":
        escaped = escaped.replace(char, "\\" + char)
    return f"{depth}- {escaped}"


# -- building ------------------------------------------------------------------------------------

def _build(numbers: ModelNumbers, text, lang: str, title_key: str) -> Explanation:
    t = text.T
    total = numbers.params
    largest = numbers.largest_layer if len(numbers.layers) > 1 else None
    model_lines = [
        _model_shapes(numbers, t),
        t["model_params"].format(total=_n(total), trainable=_n(numbers.trainable_params),
                                 non_trainable=_n(numbers.non_trainable_params)),
        t["model_compute"].format(macs=_n(numbers.macs), flops=_n(numbers.flops)),
        t["model_memory"].format(act_sample=format_bytes(numbers.activation_bytes_per_sample),
                                 act_batch=format_bytes(numbers.activation_bytes_per_batch),
                                 batch=numbers.batch_size, param_bytes=format_bytes(numbers.param_bytes)),
    ]
    if numbers.optimizer is not None:
        model_lines.append(t["model_optimizer"].format(
            name=numbers.optimizer, slots=numbers.optimizer_slots,
            state=format_bytes(numbers.optimizer_state_bytes), multiplier=1 + numbers.optimizer_slots))
    model_notes = []
    if largest is not None:
        note = t["largest"].format(name=largest.name, cls=largest.class_name, params=_n(largest.params),
                                   total=_n(total), share=100.0 * largest.params / total)
        previous = _previous_row(numbers, largest)
        if largest.kind == "dense" and previous is not None and previous.kind == "flatten":
            note += t["largest_dense_after_flatten"].format(inputs=_n(largest.in_channels),
                                                            units=_n(largest.filters))
        model_notes.append(note)
    model_notes += [t["model_shared"].format(name=r.name, cls=r.class_name, calls=r.calls, params=_n(r.params))
                    for r in numbers.layers if r.call == 1 and r.calls > 1]
    conventions = [t["convention_mac"], t["convention_extra"]]
    if any(r.resize_ops or r.scale_ops or r.kind in ("layer_norm", "group_norm", "unit_norm", "rms_norm")
           for r in numbers.layers):
        conventions.append(t["convention_more"])
    if any(r.kind == "conv_transpose" for r in numbers.layers):
        conventions.append(t["convention_transpose"])
    conventions.append(t["convention_memory"].format(batch=numbers.batch_size))
    explanation = Explanation(numbers=numbers, lang=lang,
                              title=t[title_key].format(name=numbers.name),
                              model_lines=model_lines, model_notes=model_notes, conventions=conventions)
    first_conv = next((r.index for r in numbers.layers if r.kind in CONV_ROW_KINDS), None)
    previous_field = _input_field(numbers)
    for row in numbers.layers:
        share = 100.0 * row.params / total if largest is not None and row is largest else None
        if row.parents is not None:         # a graph model: the field this call's (first) input has
            previous_field = numbers.layers[row.parents[0]].receptive_field if row.parents else None
        sections = _sections(row, text, previous_field, first_conv == row.index, share)
        explanation.layers.append(LayerExplanation(numbers=row, title=_layer_title(row, t), sections=sections))
        previous_field = row.receptive_field
    return explanation


def _model_shapes(numbers: ModelNumbers, t) -> str:
    """'Input (…) → output (…)'; a model with several inputs or outputs lists them all."""
    inputs, outputs = numbers.input_shapes, numbers.output_shapes
    if inputs is None or (len(inputs) == 1 and len(outputs) == 1):
        return t["model_shapes"].format(inp=_shape(numbers.input_shape), out=_shape(numbers.output_shape))
    return t["model_shapes_many"].format(inp=", ".join(map(_shape, inputs)), out=", ".join(map(_shape, outputs)))


def _previous_row(numbers: ModelNumbers, row: LayerNumbers) -> Optional[LayerNumbers]:
    """The row feeding `row`: the one before it (Sequential) or its first parent (graph)."""
    if row.parents is not None:
        return numbers.layers[row.parents[0]] if row.parents else None
    return numbers.layers[row.index - 1] if row.index > 0 else None


def _layer_title(row: LayerNumbers, t) -> str:
    """'name (Class): in → out'; a shared layer's call says which call it is and where its input comes from."""
    inp = _shape(row.input_shape) if not row.input_shapes or len(row.input_shapes) == 1 else \
        "[" + ", ".join(map(_shape, row.input_shapes)) + "]"
    if row.calls > 1:
        return t["layer_call_title"].format(name=row.name, cls=row.class_name, call=row.call, calls=row.calls,
                                            sources=", ".join(row.inbound), inp=inp, out=_shape(row.output_shape))
    return t["layer_title"].format(name=row.name, cls=row.class_name, inp=inp, out=_shape(row.output_shape))


def _input_field(numbers: ModelNumbers) -> Optional[List[AxisField]]:
    names = {5: analysis.VOLUME_NAMES, 4: analysis.AXIS_NAMES, 3: analysis.STEP_NAMES}.get(len(numbers.input_shape))
    return None if names is None else [AxisField(name, 1, 1, 0) for name in names]


def _sections(row: LayerNumbers, text, previous_field, first_conv: bool, share) -> List[Dict[str, Any]]:
    t = text.T
    built = [("shape", _shape_lines(row, text)), ("params", _param_lines(row, text)),
             ("kernels", _kernel_lines(row, text)), ("compute", _compute_lines(row, text)),
             ("memory", _memory_lines(row, text)),
             ("receptive_field", _field_lines(row, text, previous_field)),
             ("notes", _note_lines(row, text, first_conv, share))]
    return [{"key": key, "title": t["sec_" + key], "lines": lines} for key, lines in built if lines]


def _shape_lines(row: LayerNumbers, text) -> List[str]:
    t = text.T
    lines: List[str] = []
    if row.inbound:
        lines.append(t["shape_inbound"].format(sources=", ".join(row.inbound)))
    if row.kind == "input":
        lines.append(t["shape_input"].format(shape=_shape(row.output_shape)))
    elif row.kind == "merge":
        lines.append(_merge_shape_line(row, t))
    elif row.kind == "model":
        lines.append(t["shape_model"].format(count=len(row.nested.layers), inp=_shape(row.input_shape),
                                             out=_shape(row.output_shape), name=row.name))
    elif row.kind == "spectral_norm":
        lines.append(t["shape_spectral_norm"].format(inner=f"{row.inner.name} ({row.inner.class_name})",
                                                     out=_shape(row.output_shape)))
    elif row.kind == "time_distributed":
        inner = row.inner
        key = "shape_time_distributed" if row.steps is not None else "shape_time_distributed_unknown"
        lines.append(t[key].format(inner=f"{inner.name} ({inner.class_name})", steps=row.steps,
                                                        step_in=_shape(inner.input_shape),
                                                        step_out=_shape(inner.output_shape),
                                                        out=_shape(row.output_shape)))
    elif row.kind in WINDOW_ROW_KINDS + ("conv_transpose",):
        for axis in row.axes:
            lines += _transposed_axis_lines(axis, text) if axis.transposed else _window_axis_lines(axis, text)
        c_in = row.input_shape[_channel_axis(row)]
        if row.kind in ("conv", "conv_transpose", "separable_conv"):
            lines.append(t["shape_channels_conv"].format(c_in=c_in, c_out=row.filters))
        elif row.kind == "depthwise_conv":
            lines.append(t["shape_channels_depthwise"].format(c_in=c_in, m=row.depth_multiplier, c_out=row.filters))
        else:
            lines.append(t["shape_channels_pool"].format(c=c_in))
    elif row.kind in ("zero_pad", "crop"):
        key = "shape_zero_pad" if row.kind == "zero_pad" else "shape_crop"
        for axis in row.axes:
            before_side, after_side = text.SIDES[axis.axis]
            lines.append(t[key].format(axis=text.AXES[axis.axis], n_in=axis.input, n_out=axis.output,
                                       before=axis.pad_before, after=axis.pad_after,
                                       side_before=before_side, side_after=after_side))
    elif row.kind in ("upsample", "resize"):
        lines += _resampling_lines(row, text)
    elif row.kind in ("adaptive_max_pool", "adaptive_avg_pool"):
        lines += [_adaptive_axis_line(axis, spans, t, text) for axis, spans in zip(row.axes, row.adaptive_spans)]
        lines.append(t["shape_channels_pool"].format(c=row.input_shape[_channel_axis(row)]))
    elif row.kind in ("global_max_pool", "global_avg_pool"):
        whole = "×".join(str(a.input) for a in row.axes)
        key = "shape_global_1d" if len(row.axes) == 1 else "shape_global"
        for axis in row.axes:
            lines.append(t[key].format(axis=text.AXES[axis.axis], n_in=axis.input, whole=whole))
    elif row.kind == "embedding":
        lines.append(t["shape_embedding"].format(last=_n(row.in_channels - 1), width=_n(row.filters),
                                                 inp=_shape(row.input_shape), out=_shape(row.output_shape)))
    elif row.kind == "dense":
        rest = _shape(row.input_shape[:-1])
        lines.append(t["shape_dense"].format(n_in=_n(row.in_channels), units=_n(row.filters), rest=rest))
    elif row.kind == "flatten":
        dims = [d for d in row.input_shape[1:]]
        lines.append(t["shape_flatten"].format(expr="·".join(str(d) for d in dims),
                                               total=_n(row.output_elements)))
    elif row.kind == "reshape":
        lines.append(t["shape_reshape"].format(total=_n(row.output_elements)))
    elif row.kind == "recurrent":
        name, _, _, directions = row.recurrent
        lines.append(t["shape_recurrent"].format(cls=name, steps=row.steps or t["unknown_steps"], units=row.filters,
                                                 both=t["both_directions"] if directions == 2 else "",
                                                 inp=_shape(row.input_shape), out=_shape(row.output_shape)))
    elif row.kind == "attention":
        projections, targets, sources, key_dim, value_dim = row.attention
        key = "shape_attention" if projections is not None else "shape_attention_plain"    # None: Attention's
        lines.append(t[key].format(heads=row.filters, targets=_n(targets), sources=_n(sources),
                                   key_dim=key_dim, value_dim=value_dim,
                                   inp=_shape(row.input_shape), out=_shape(row.output_shape)))
    elif row.kind == "einsum_dense":
        lines.append(t["shape_einsum"].format(equation=row.op, inp=_shape(row.input_shape),
                                              out=_shape(row.output_shape)))
    elif row.kind == "repeat":
        lines.append(t["shape_repeat"].format(n=row.output_shape[1], inp=_shape(row.input_shape),
                                              out=_shape(row.output_shape)))
    elif row.kind == "permute" and row.dims:
        lines.append(t["shape_permute"].format(dims=tuple(row.dims), inp=_shape(row.input_shape),
                                               out=_shape(row.output_shape)))
    elif row.kind == "operation":
        lines.append(t["shape_operation"].format(op=row.op, shape=_shape(row.output_shape)))
    elif row.kind == "other" and _shape(row.input_shape) != _shape(row.output_shape):
        lines.append(t["shape_other"].format(cls=row.class_name, inp=_shape(row.input_shape),
                                             out=_shape(row.output_shape)))
    else:
        lines.append(t["shape_same_as_input"].format(shape=_shape(row.output_shape)))
    return lines


def _adaptive_axis_line(axis: AxisSize, spans: List[int], t, text) -> str:
    """One axis of an adaptive pooling: even windows as a plain pooling, else every window's cells."""
    name = text.AXES[axis.axis]
    if axis.stride:
        return t["shape_adaptive_even"].format(axis=name, n_in=axis.input, n_out=axis.output, size=axis.stride)
    starts = [i * axis.input // axis.output for i in range(axis.output)]
    windows = ", ".join(f"{start}–{start + span - 1}" for start, span in zip(starts, spans))
    return t["shape_adaptive"].format(axis=name, n_in=axis.input, n_out=axis.output, windows=windows)


def _channel_axis(row: LayerNumbers) -> int:
    if row.data_format == "channels_first":
        return 1
    return len(row.input_shape) - 1


def _transposed_axis_lines(axis: AxisSize, text) -> List[str]:
    """Conv2DTranspose's size: (W − 1)·S − 2P + D·(K − 1) + 1 + output_padding, as Keras computes it.

    Every number comes from the axis (ops.shapes' deconv_output_length and deconv_padding): the full
    scatter is output + both cuts, the implied output_padding and P follow from it."""
    t = text.T
    name = text.AXES[axis.axis]
    full = axis.output + axis.pad_before + axis.pad_after
    k_eff = f"{axis.dilation}·({axis.kernel} − 1) + 1"
    if axis.mode == "same" and axis.output_padding is None:
        lines = [t["shape_transpose_same"].format(axis=name, n_in=axis.input, n_out=axis.output,
                                                  stride=axis.stride)]
    else:
        extra = axis.output - full if axis.output_padding is None else axis.output_padding
        pad = (full + extra - axis.output) // 2
        expr = f"({axis.input} − 1)·{axis.stride} − 2·{pad} + {k_eff} + {extra} = {axis.output}"
        lines = [t["shape_transpose"].format(axis=name, n_in=axis.input, n_out=axis.output, padding=axis.mode,
                                             expr=expr)]
        if axis.output_padding is None:
            lines.append(t["shape_transpose_default_op"].format(k_eff=axis.effective_kernel, stride=axis.stride,
                                                                extra=extra))
    side_before, side_after = text.SIDES[axis.axis]
    lines.append(t["shape_transpose_full"].format(expr=f"({axis.input} − 1)·{axis.stride} + {k_eff}", full=full,
                                                  before=axis.pad_before, after=axis.pad_after,
                                                  side_before=side_before, side_after=side_after,
                                                  n_out=axis.output))
    return lines


def _resampling_lines(row: LayerNumbers, text) -> List[str]:
    """UpSampling: out = in · size; Resizing: out = the target, after an optional crop or pad to its aspect."""
    t = text.T
    lines = []
    if row.kind == "resize" and row.aspect is not None:
        window = row.aspect
        if window[0] == "crop":
            lines.append(t["shape_resize_crop"].format(rows=window[3], cols=window[4], top=window[1],
                                                       left=window[2]))
        else:
            lines.append(t["shape_resize_pad"].format(rows=window[1], cols=window[2]))
    for axis in row.axes:
        name = text.AXES[axis.axis]
        if row.kind == "upsample":
            lines.append(t["shape_upsample"].format(axis=name, n_in=axis.input, factor=axis.factor,
                                                    n_out=axis.output))
        else:
            lines.append(t["shape_resize"].format(axis=name, n_in=axis.input, n_out=axis.output))
    method = t["interp_" + (row.interpolation or "nearest")]
    lines.append(t["shape_interpolation"].format(method=method))
    return lines


def _merge_shape_line(row: LayerNumbers, t) -> str:
    shapes = row.input_shapes or [row.input_shape]
    if row.dot_axes is not None:
        (a0, a1), (x, y) = row.dot_axes, shapes
        return t["shape_dot"].format(a0=a0, a1=a1, k=x[a0], x=_shape(x), y=_shape(y), out=_shape(row.output_shape))
    if row.concat_axis is not None:
        axis = row.concat_axis
        parts = [s[axis] for s in shapes]
        return t["shape_concat"].format(axis=axis, expr=" + ".join(map(str, parts)), total=row.output_shape[axis])
    op = t["merge_ops"].get(row.class_name, row.class_name)
    return t["shape_merge"].format(op=op, count=len(shapes), shapes=", ".join(map(_shape, shapes)),
                                   out=_shape(row.output_shape))


def _window_axis_lines(axis: AxisSize, text) -> List[str]:
    """Output size of one axis: the mode's formula, the general or familiar form, and floor drops."""
    t = text.T
    name = text.AXES[axis.axis]
    side_before, side_after = text.SIDES[axis.axis]
    lines = []
    if axis.mode == "valid":
        expr = (f"⌊({axis.input} − {axis.dilation}·({axis.kernel}−1) − 1)/{axis.stride}⌋ + 1 = {axis.output}")
        lines.append(t["shape_valid"].format(axis=name, n_in=axis.input, n_out=axis.output, expr=expr))
    elif axis.mode == "causal":
        lines.append(t["shape_causal"].format(axis=name, n_in=axis.input, n_out=axis.output, stride=axis.stride,
                                              before=axis.pad_before,
                                              pad_expr=f"{axis.dilation}·({axis.kernel} − 1) = {axis.pad_before}",
                                              side_before=side_before))
    else:
        lines.append(t["shape_same"].format(axis=name, n_in=axis.input, n_out=axis.output, stride=axis.stride,
                                            before=axis.pad_before, after=axis.pad_after,
                                            side_before=side_before, side_after=side_after))
        if axis.dilation > 1:
            expr = (f"⌊({axis.input} + {axis.pad_before} + {axis.pad_after} − {axis.dilation}·({axis.kernel}−1)"
                    f" − 1)/{axis.stride}⌋ + 1 = {axis.output}")
            lines.append(t["shape_general"].format(expr=expr))
    if axis.dilation == 1:
        lines.append(t["shape_familiar"].format(form=_familiar_form(axis), expr=_familiar_expr(axis)))
    else:
        lines.append(t["shape_window"].format(kernel=axis.kernel, effective=axis.effective_kernel,
                                              dilation=axis.dilation, stride=axis.stride))
    if axis.dropped:
        singular, plural = text.CELLS[axis.axis]
        lines.append(t["shape_dropped"].format(count=axis.dropped, cells=singular if axis.dropped == 1 else plural,
                                               side=side_after, them="it" if axis.dropped == 1 else "them"))
    return lines


def _familiar_form(axis: AxisSize) -> str:
    pad = "2P" if axis.pad_before == axis.pad_after else "P₁ + P₂"
    return f"(W − F + {pad})/S + 1"


def _familiar_expr(axis: AxisSize) -> str:
    """The seeds' (W − F + 2P)/S + 1 with the numbers in; ⌊ ⌋ shown when the division is not exact."""
    if axis.pad_before == axis.pad_after:
        pad = f"2·{axis.pad_before}"
    else:
        pad = f"{axis.pad_before} + {axis.pad_after}"
    inner = f"({axis.input} − {axis.kernel} + {pad})/{axis.stride}"
    if axis.dropped:
        inner = f"⌊{inner}⌋"
    return f"{inner} + 1 = {axis.output}"


def _param_lines(row: LayerNumbers, text) -> List[str]:
    t = text.T
    lines: List[str] = []
    taps = _taps_expr(row)
    if row.kind == "conv":
        per = _per_group(row)
        if row.use_bias:
            lines.append(t["params_conv"].format(inner=_inner_name(row), expr=f"{row.filters} × ({per}·{taps} + 1)",
                                                 total=_n(row.params)))
            lines.append(t["params_conv_alt"].format(alt=_inner_name(row, alt=True),
                                                     expr=f"({taps}·{per} + 1)·{row.filters}", total=_n(row.params)))
        else:
            lines.append(t["params_conv_nobias"].format(inner=_inner_name(row),
                                                        expr=f"{row.filters} × {per}·{taps}",
                                                        total=_n(row.params)))
    elif row.kind in ("depthwise_conv", "separable_conv"):
        depthwise = f"{taps}·{row.in_channels}·{row.depth_multiplier}"
        parts = [depthwise]
        if row.kind == "separable_conv":
            parts.append(f"{row.in_channels}·{row.depth_multiplier}·{row.filters}")
        if row.use_bias:
            parts.append(f"{row.filters}" if row.kind == "separable_conv" else
                         f"{row.in_channels}·{row.depth_multiplier}")
        key = "params_" + row.kind + ("" if row.use_bias else "_nobias")
        lines.append(t[key].format(expr=" + ".join(parts), total=_n(row.params), **_window_names(row)))
        if row.kind == "separable_conv":
            lines.append(t["params_separable_sum"].format(
                depthwise=_n(row.kernels * _prod(row.kernel_size)), pointwise=_n(row.pointwise_kernels),
                bias=_n(row.filters if row.use_bias else 0), total=_n(row.params)))
    elif row.kind == "conv_transpose":
        expr = f"{taps}·{row.filters}·{row.in_channels}" + (f" + {row.filters}" if row.use_bias else "")
        key = "params_transpose" if row.use_bias else "params_transpose_nobias"
        lines.append(t[key].format(expr=expr, total=_n(row.params), **_window_names(row)))
    elif row.kind == "recurrent":
        name, gates, biases, directions = row.recurrent
        bias = f" + {biases}" if row.use_bias else ""
        expr = f"{gates} × {row.filters} × ({row.in_channels} + {row.filters}{bias})"
        lines.append(t["params_recurrent"].format(twice="2 × " if directions == 2 else "",
                                                  bias=f" + {t['recurrent_biases'][biases]}" if row.use_bias else "",
                                                  expr=("2 × " if directions == 2 else "") + expr,
                                                  total=_n(row.params)))
    elif row.kind == "embedding":
        lines.append(t["params_embedding"].format(vocabulary=_n(row.in_channels), width=_n(row.filters),
                                                  total=_n(row.params)))
    elif row.kind == "dense":
        if row.use_bias:
            lines.append(t["params_dense"].format(expr=f"{row.in_channels} × {row.filters} + {row.filters}",
                                                  total=_n(row.params)))
        else:
            lines.append(t["params_dense_nobias"].format(expr=f"{row.in_channels} × {row.filters}",
                                                         total=_n(row.params)))
    elif row.kind == "batch_norm":
        channels = row.in_channels
        factor = row.params // channels
        trainable = row.params - 2 * channels
        lines.append(t["params_bn"].format(
            factor=factor, expr=f"{factor} × {channels}", total=_n(row.params),
            trainable=f"{trainable // channels} × {channels} = {_n(trainable)}",
            non_trainable=f"2 × {channels} = {_n(2 * channels)}"))
    elif row.kind == "layer_norm" and row.params:
        count = row.params // row.in_channels
        which = t["and"].join(t["weight_names"][w] for w in row.norm_weights)
        lines.append(t["params_layer_norm"].format(count=count, size=_n(row.in_channels), total=_n(row.params),
                                                   axes=list(row.dims), which=which))
    elif row.kind == "rms_norm":
        lines.append(t["params_rms_norm"].format(size=_n(row.in_channels), axes=list(row.dims)))
    elif row.kind == "group_norm" and row.params:
        which = t["and"].join(t["weight_names"][w] for w in row.norm_weights)
        lines.append(t["params_group_norm"].format(count=row.params // row.in_channels, channels=_n(row.in_channels),
                                                   total=_n(row.params), which=which))
    elif row.kind == "normalization":
        if row.params:
            lines.append(t["params_normalization"].format(size=_n(row.in_channels), total=_n(row.params)))
        else:
            lines.append(t["params_normalization_given"])
    elif row.params == 0:
        lines.append(t["params_none"])
    else:
        lines.append(t["params_other"].format(total=_n(row.params)))
    if row.call > 1 and row.params:
        lines.append(t["params_shared"].format(call=row.call, calls=row.calls, total=_n(row.params)))
    if row.params and row.trainable_params == 0 and row.non_trainable_params == row.params \
            and row.kind not in ("batch_norm", "normalization"):
        lines.append(t["params_frozen"].format(total=_n(row.params)))
    return lines


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _taps_expr(row: LayerNumbers) -> str:
    """'3·3' (kh·kw) or '5' (a Conv1D's k)."""
    return "·".join(str(k) for k in row.kernel_size) if row.kernel_size else ""


def _kernel_text(row: LayerNumbers) -> str:
    """'3×3' or '5' (one kernel's size)."""
    return "×".join(str(k) for k in row.kernel_size)


def _per_group(row: LayerNumbers) -> str:
    return f"{row.in_channels}" if row.groups == 1 else f"({row.in_channels}/{row.groups})"


def _window_names(row: LayerNumbers) -> Dict[str, str]:
    """The window's symbols in formulas ("kh·kw", "kh, kw"; a 1-D layer's "k") and the plain convolution
    of its rank ("Conv2D", "Conv1D")."""
    names = {1: ("k", "Conv1D"), 2: ("kh·kw", "Conv2D"), 3: ("kd·kh·kw", "Conv3D")}
    window, conv = names[len(row.kernel_size)]
    return {"window": window, "window_axes": window.replace("·", ", "), "conv": conv}


def _inner_name(row: LayerNumbers, alt: bool = False) -> str:
    window = _window_names(row)["window"]
    per = "in" if row.groups == 1 else "in/groups"
    return f"{window}·{per}" if alt else f"{per}·{window}"


def _kernel_lines(row: LayerNumbers, text) -> List[str]:
    if row.kind not in CONV_ROW_KINDS:
        return []
    t = text.T
    size = _kernel_text(row)
    if row.kind in ("depthwise_conv", "separable_conv"):
        lines = [t["kernels_depthwise"].format(expr=f"{row.in_channels} × {row.depth_multiplier}",
                                               count=_n(row.kernels), size=size)]
        if row.kind == "separable_conv":
            one = "×".join("1" for _ in row.kernel_size)
            lines.append(t["kernels_pointwise"].format(
                expr=f"{row.filters} × {row.in_channels}·{row.depth_multiplier}", count=_n(row.pointwise_kernels),
                one=one, total=_n(row.kernels + row.pointwise_kernels)))
        return lines
    if row.kind == "conv_transpose":
        return [t["kernels_transpose"].format(expr=f"{row.filters} × {row.in_channels}", count=_n(row.kernels),
                                              size=size, shape=_shape(tuple(row.kernel_size) +
                                                                      (row.filters, row.in_channels)))]
    per_name = "in" if row.groups == 1 else "in/groups"
    per_expr = f"{row.in_channels}" if row.groups == 1 else f"{row.in_channels}/{row.groups}"
    per = row.in_channels // row.groups
    lines = [t["kernels"].format(per=per_name, expr=f"{row.filters} × {per_expr}", count=_n(row.kernels),
                                 size=size),
             t["kernels_per_filter"].format(per=per, taps=_taps_expr(row), weights=_n(row.weights_per_filter),
                                            group_note=t["kernels_group_note"] if row.groups > 1 else "")]
    if per > 1:
        shape_t = _shape((row.filters, per) + tuple(reversed(row.kernel_size)))
        lines.append(t["kernels_not_filters"].format(filters=_n(row.filters), count=_n(row.kernels),
                                                     shape_t=shape_t))
    return lines


def _mac_lines(row: LayerNumbers, t) -> List[str]:
    """MACs with the numbers in, one formula per kind of layer that multiplies."""
    outputs_expr = "·".join(str(d) for d in row.output_shape[1:])
    taps = _taps_expr(row)
    if row.kind == "separable_conv":
        positions = row.output_elements // row.filters
        depthwise = row.macs - row.pointwise_macs
        return [t["compute_macs_separable"].format(
            positions=_n(positions), kernels=_n(row.kernels), taps=taps, depthwise=_n(depthwise),
            pointwise_expr=f"{row.filters} × {row.in_channels}·{row.depth_multiplier}",
            pointwise=_n(row.pointwise_macs), macs=_n(row.macs))]
    if row.kind == "recurrent":
        _, gates, _, directions = row.recurrent
        twice = "2 × " if directions == 2 else ""
        return [t["compute_macs_recurrent"].format(
            twice=twice, expr=f"{twice}{row.steps} × {gates} × {row.filters} × ({row.in_channels} + {row.filters})",
            macs=_n(row.macs))]
    if row.kind == "attention":
        projections, targets, sources, key_dim, value_dim = row.attention
        key = "compute_macs_attention" if projections is not None else "compute_macs_attention_plain"
        return [t[key].format(projections=_n(projections or 0), heads=row.filters, targets=_n(targets),
                              sources=_n(sources), key_dim=key_dim, value_dim=value_dim, macs=_n(row.macs))]
    if row.kind == "einsum_dense":
        sizes = [size for _, size in row.einsum_sizes]
        return [t["compute_macs_einsum"].format(letters="·".join(letter for letter, _ in row.einsum_sizes),
                                                expr="·".join(map(str, sizes)), macs=_n(row.macs))]
    if row.kind == "conv_transpose":
        inputs_expr = "·".join(str(d) for d in row.input_shape[1:])
        return [t["compute_macs_transpose"].format(inputs_expr=inputs_expr, per_expr=f"{taps}·{row.filters}",
                                                   macs=_n(row.macs))]
    if row.kind == "conv":
        per_expr, per_name = f"{row.in_channels // row.groups}·{taps}", t["per_conv"]
    elif row.kind == "depthwise_conv":
        per_expr, per_name = taps, t["per_depthwise"]
    else:
        per_expr, per_name = str(row.in_channels), t["per_dense"]
    return [t["compute_macs"].format(per_name=per_name, outputs_expr=outputs_expr, per_expr=per_expr,
                                     macs=_n(row.macs))]


def _compute_lines(row: LayerNumbers, text) -> List[str]:
    t = text.T
    lines: List[str] = []
    if row.kind == "spectral_norm":
        return [t["compute_spectral_norm"].format(flops=_n(row.flops))]
    if row.kind == "model":
        return [t["compute_model"].format(flops=_n(row.flops), macs=_n(row.macs), count=len(row.nested.layers))]
    if row.kind == "recurrent" and not row.steps:      # the steps are known only when it runs
        _, gates, _, directions = row.recurrent
        return [t["compute_recurrent_unknown"].format(twice="2 × " if directions == 2 else "",
                                                      expr=f"{gates} × {row.filters} × ({row.in_channels} + "
                                                           f"{row.filters})",
                                                      per=_n(directions * gates * row.filters * (
                                                          (row.in_channels or 0) + row.filters)))]
    if row.kind == "time_distributed":
        if row.steps is None and row.inner.flops:
            return [t["compute_time_distributed_unknown"].format(per=_n(row.inner.flops))]
        if not row.flops:
            return [t["compute_none"]]
        return [t["compute_time_distributed"].format(per=_n(row.inner.flops), steps=row.steps, flops=_n(row.flops))]
    if row.macs:
        lines += _mac_lines(row, t)
        lines.append(t["compute_flops"].format(flops2=_n(2 * row.macs)))
    if row.bias_adds:
        lines.append(t["compute_bias"].format(count=_n(row.bias_adds)))
    if row.pool_ops:
        key = "compute_pool_max" if row.kind in ("max_pool", "global_max_pool", "adaptive_max_pool") \
            else "compute_pool_avg"
        lines.append(t[key].format(count=_n(row.pool_ops)))
    if row.norm_ops:
        key = {"layer_norm": "compute_layer_norm", "group_norm": "compute_layer_norm", "unit_norm": "compute_unit_norm",
               "rms_norm": "compute_rms_norm", "merge": "compute_dot_normalize",
               "attention": "compute_attention_softmax"}.get(row.kind, "compute_norm")
        lines.append(t[key].format(count=_n(row.norm_ops), per=row.norm_ops // max(row.output_elements, 1)))
    if row.scale_ops:
        key = "compute_rescale" if row.kind == "rescaling" else "compute_standardize"
        lines.append(t[key].format(count=_n(row.scale_ops)))
    if row.resize_ops:
        lines.append(t["compute_resize"].format(count=_n(row.resize_ops)))
    if row.activation_ops:
        lines.append(t["compute_activation"].format(count=_n(row.activation_ops), activation=row.activation))
    if row.merge_ops and row.kind == "operation":
        lines.append(t["compute_elementwise"].format(count=_n(row.merge_ops), op=row.op))
    elif row.merge_ops:
        key = {"average": "compute_merge_average", "custom_scale": "compute_merge_scaled"}.get(row.op, "compute_merge")
        lines.append(t[key].format(count=_n(row.merge_ops), n=len(row.input_shapes or [1]),
                                   outputs=_n(row.output_elements)))
    if row.kind == "merge" and not lines:
        return [t["compute_concat"]]
    if lines:
        if not row.macs:  # nothing to add the counts to: drop the leading "+ "
            lines[0] = lines[0][2:] if lines[0].startswith("+ ") else lines[0]
        lines.append(t["compute_total"].format(flops=_n(row.flops)))
    elif row.kind == "operation":
        lines.append(t["compute_operation"].format(op=row.op))
    elif row.kind == "other":          # a layer convscope has no formula for (a custom one, an RNN, ...)
        lines.append(t["compute_unknown"].format(cls=row.class_name))
    else:
        lines.append(t["compute_none"])
    return lines


def _memory_lines(row: LayerNumbers, text) -> List[str]:
    t = text.T
    lines = [t["memory_act"].format(values=_n(row.output_elements), itemsize=row.itemsize,
                                    per_sample=format_bytes(row.activation_bytes_per_sample),
                                    per_batch=format_bytes(row.activation_bytes_per_batch), batch=row.batch_size)]
    if row.params and row.call == 1:
        lines.append(t["memory_params"].format(params=_n(row.params), itemsize=row.itemsize,
                                               bytes=format_bytes(row.param_bytes)))
    return lines


def _field_lines(row: LayerNumbers, text, previous_field) -> List[str]:
    t = text.T
    rf = row.receptive_field
    if row.kind == "input":
        return []
    if rf is None:
        if not row.field_known and previous_field is not None:
            if row.kind == "model":
                return [t["rf_model"].format(name=row.name)]
            own = row.kind in ("conv_transpose", "upsample", "resize", "operation", "other", "adaptive_max_pool",
                               "adaptive_avg_pool")
            return [t["rf_untracked"].format(cls=row.class_name) if own else t["rf_untracked_input"]]
        return [t["rf_all"]] if previous_field is not None or row.branches else []
    if len(rf) == 3:
        depth, height, width = rf
        lines = [t["rf_size_3d"].format(size_d=depth.size, size_h=height.size, size_w=width.size, jump_d=depth.jump,
                                        jump_h=height.jump, jump_w=width.jump, start_d=depth.start,
                                        start_h=height.start, start_w=width.start)]
    elif len(rf) == 2:
        height, width = rf
        lines = [t["rf_size"].format(size_h=height.size, size_w=width.size, jump_h=height.jump, jump_w=width.jump,
                                     start_h=height.start, start_w=width.start)]
    else:
        lines = [t["rf_size_1d"].format(size=rf[0].size, jump=rf[0].jump, start=rf[0].start)]
    if row.kind in WINDOW_ROW_KINDS + ADAPTIVE_KINDS + ("zero_pad", "crop") and previous_field is not None \
            and len(previous_field) == len(rf):
        for axis, before, after in zip(row.axes, previous_field, rf):
            if row.kind == "crop":
                lines.append(t["rf_crop_step"].format(axis=text.AXES[axis.axis], prev_start=before.start,
                                                      cut=axis.pad_before, prev_jump=before.jump, start=after.start))
                continue
            lines.append(t["rf_step"].format(axis=text.AXES[axis.axis], prev_size=before.size,
                                             effective=axis.effective_kernel, prev_jump=before.jump,
                                             size=after.size, stride=axis.stride, jump=after.jump,
                                             prev_start=before.start, pad=axis.pad_before, start=after.start))
    if row.branches:
        lines += _union_lines(row, t)
    if any(f.start < 0 for f in rf):
        lines.append(t["rf_padding"])
    return lines


def _union_lines(row: LayerNumbers, t) -> List[str]:
    """A merge's field: the union of its branches, the largest named, then each branch's own field."""
    sized = [(label, f) for label, f in row.branches if f is not None]
    sizes = [_field_size(f) for _, f in sized]
    lines = []
    if sized and len(set(sizes)) == 1:
        lines.append(t["rf_union_same"].format(name=row.name, count=len(row.branches), size=sizes[0]))
    elif sized:
        best = max(range(len(sized)), key=lambda i: _prod(a.size for a in sized[i][1]))
        others = list(dict.fromkeys(size for i, size in enumerate(sizes) if i != best))
        lines.append(t["rf_union"].format(name=row.name, count=len(row.branches), largest=sizes[best],
                                          source=sized[best][0], others=", ".join(others)))
    for label, f in row.branches:
        if f is None:
            lines.append(t["rf_branch_all"].format(source=label))
        else:
            jump = "×".join(str(a.jump) for a in f)
            lines.append(t["rf_branch"].format(source=label, size=_field_size(f), jump=jump,
                                               start=", ".join(str(a.start) for a in f)))
    return lines


def _field_size(field) -> str:
    return "×".join(str(a.size) for a in field)


def _note_lines(row: LayerNumbers, text, first_conv: bool, share) -> List[str]:
    t = text.T
    notes = []
    if share is not None:
        notes.append(t["note_largest"].format(share=share))
    if row.kind in ("max_pool", "avg_pool", "global_max_pool", "global_avg_pool", "adaptive_max_pool",
                    "adaptive_avg_pool"):
        what = t["note_pool_max"] if "max" in row.kind else t["note_pool_avg"]
        notes.append(t["note_pool"].format(what=what))
    if row.kind in ("conv", "depthwise_conv", "separable_conv") and first_conv:
        notes.append(t["note_xcorr"].format(cls=row.class_name))
    if row.kind == "embedding":
        notes.append(t["note_embedding"])
    if row.kind == "depthwise_conv":
        notes.append(t["note_depthwise"].format(**_window_names(row)))
    if row.kind == "separable_conv":
        taps = _prod(row.kernel_size)
        full = taps * row.in_channels * row.filters + (row.filters if row.use_bias else 0)
        notes.append(t["note_separable"].format(filters=row.filters, size=_kernel_text(row), full=_n(full),
                                                params=_n(row.params), ratio=f"{full / row.params:.1f}",
                                                **_window_names(row)))
    if row.kind == "conv_transpose":
        notes.append(t["note_transpose"].format(cls=row.class_name, **_window_names(row)))
    if row.kind in WINDOW_ROW_KINDS:
        asymmetric = [a for a in row.axes if a.mode == "same" and a.pad_before != a.pad_after]
        if asymmetric:
            sides = " / ".join(text.SIDES[a.axis][1] for a in asymmetric)
            notes.append(t["note_same_asym"].format(sides=sides))
        if any(a.mode == "causal" for a in row.axes):
            notes.append(t["note_causal"])
        for axis in row.axes:
            if axis.dilation > 1:
                notes.append(t["note_dilation"].format(dilation=axis.dilation, kernel=axis.kernel,
                                                       effective=axis.effective_kernel))
                break
    if row.kind == "dropout" and row.rate is not None:
        notes.append(t["note_dropout"].format(rate=f"{row.rate:g}", percent=f"{100 * row.rate:g}%"))
        if row.spatial_dropout:
            notes.append(t["note_spatial_dropout"])
    if row.kind == "augment":
        notes.append(t["note_augment"])
    if row.kind == "noise":
        notes.append(t["note_noise"])
    if row.kind == "upsample" and row.interpolation == "nearest":
        notes.append(t["note_upsample"])
    if row.kind in ("rescaling", "normalization", "layer_norm", "unit_norm", "rms_norm"):
        notes.append(t["note_" + row.kind].format(axes=list(row.dims or ())))
    if row.kind == "group_norm":
        notes.append(t["note_group_norm"].format(groups=row.groups, channels=row.in_channels,
                                                 per=row.in_channels // max(row.groups, 1), axis=row.dims[0]))
    return notes


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _shape(shape) -> str:
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
