"""`plot_model`: Keras' layer diagram, drawn by us (no Graphviz, no pydot).

One box per layer — "name (Type)", and when asked the input/output shapes,
dtype, activation and trainable flag — joined by arrows, top to bottom
(`rankdir="TB"`) or left to right (`"LR"`; `"BT"`/`"RL"` reverse them).
Nested models are one box, or with `expand_nested=True` a dashed cluster
holding their own layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

from ._model import (activation_name, check_dpi, check_flag, check_model, check_path, format_shape,
                     is_model, shape_of)
from .svg import Drawing, Figure, finish, text_width

RANKDIRS = ("TB", "LR", "BT", "RL")
TITLE_SIZE = 13.0
LINE_SIZE = 11.0
LINE_HEIGHT = 16.0
BOX_PAD = 10.0
GAP = 34.0


@dataclass
class Node:
    """One box of the diagram: a title line, detail lines and the clusters it lies in."""
    key: str
    title: str
    lines: List[str]
    clusters: Tuple[str, ...] = ()
    width: float = 0.0
    height: float = 0.0
    x: float = 0.0
    y: float = 0.0


@dataclass
class Graph:
    """The diagram's boxes in drawing order, its arrows and its nested-model clusters."""
    nodes: List[Node]
    edges: List[Tuple[int, int]]
    clusters: List[Tuple[str, str]] = field(default_factory=list)  # (key, label)
    rankdir: str = "TB"


def build_graph(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                expand_nested=False, show_layer_activations=False, show_trainable=False,
                where="plot_model") -> Graph:
    """Validate the options and describe the model as boxes and arrows."""
    layers = check_model(model, where)
    options = dict(show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                   expand_nested=expand_nested, show_layer_activations=show_layer_activations,
                   show_trainable=show_trainable)
    for arg, value in options.items():
        check_flag(value, arg, where)
    if not isinstance(rankdir, str) or rankdir.upper() not in RANKDIRS:
        raise ValueError(f"{where}: argument `rankdir` must be one of {RANKDIRS}, got {rankdir!r}")

    def box(key: str, name: str, type_name: str, clusters, input_shape, output_shape, dtype,
            activation, trainable: bool) -> Node:
        title = f"{name} ({type_name})" if show_layer_names else type_name
        lines = []
        if show_shapes:
            lines += [f"Input shape: {format_shape(input_shape)}", f"Output shape: {format_shape(output_shape)}"]
        if show_dtype:
            lines.append(f"dtype: {dtype or 'float32'}")
        if show_layer_activations and activation is not None:
            lines.append(f"Activation: {activation}")
        if show_trainable:
            lines.append(f"Trainable: {'Y' if trainable else 'N'}")
        return Node(key, title, lines, tuple(clusters))

    nodes: List[Node] = []
    clusters: List[Tuple[str, str]] = []
    first = layers[0]
    input_shape = shape_of(first, "input_shape")
    input_name = f"{first.name}_input"  # Keras' name for a Sequential's implicit InputLayer
    nodes.append(box(input_name, input_name, "InputLayer", (), input_shape, input_shape,
                     getattr(first, "dtype", None), None, True))

    def add(layer_list, parents):
        for layer in layer_list:
            key = "/".join(parents + (layer.name,))
            if is_model(layer) and expand_nested and layer.layers:
                clusters.append((key, f"{layer.name} ({type(layer).__name__})"))
                add(list(layer.layers), parents + (layer.name,))
            else:
                nodes.append(box(key, layer.name, type(layer).__name__, parents, shape_of(layer, "input_shape"),
                                 shape_of(layer, "output_shape"), getattr(layer, "dtype", None),
                                 activation_name(layer), getattr(layer, "trainable", True)))

    add(layers, ())
    edges = [(i, i + 1) for i in range(len(nodes) - 1)]
    return Graph(nodes, edges, clusters, rankdir.upper())


def draw_graph(graph: Graph) -> Drawing:
    """Lay the boxes out in a line along `rankdir` and draw them with their arrows."""
    for node in graph.nodes:
        widths = [text_width(node.title, TITLE_SIZE)] + [text_width(line, LINE_SIZE) for line in node.lines]
        node.width = max(widths) + 2 * BOX_PAD
        node.height = LINE_HEIGHT + 4 + LINE_HEIGHT * len(node.lines) + 2 * BOX_PAD - 4
    vertical = graph.rankdir in ("TB", "BT")
    order = graph.nodes if graph.rankdir in ("TB", "LR") else list(reversed(graph.nodes))
    cross = max(n.width if vertical else n.height for n in graph.nodes)
    margin = 20.0 + 14.0 * max((len(n.clusters) for n in graph.nodes), default=0)
    position = margin
    previous_clusters: Tuple[str, ...] = ()
    for node in order:
        depth_change = len(set(node.clusters) ^ set(previous_clusters))
        position += 14.0 * depth_change
        previous_clusters = node.clusters
        if vertical:
            node.x, node.y = margin + (cross - node.width) / 2, position
            position += node.height + GAP
        else:
            node.x, node.y = position, margin + (cross - node.height) / 2
            position += node.width + GAP
    position += 14.0 * len(previous_clusters) - GAP + margin
    width, height = (cross + 2 * margin, position) if vertical else (position, cross + 2 * margin)
    drawing = Drawing(width, height)

    for key, label in graph.clusters:
        members = [n for n in graph.nodes if key in _cluster_keys(n)]
        depth = key.count("/") + 1
        inner = max(len(n.clusters) for n in members) - depth + 1
        pad = 8.0 + 12.0 * (inner - 1) + 6.0
        x0 = min(n.x for n in members) - pad
        y0 = min(n.y for n in members) - pad - 4
        x1 = max(n.x + n.width for n in members) + pad
        y1 = max(n.y + n.height for n in members) + pad
        drawing.rect(x0, y0, x1 - x0, y1 - y0, fill="none", stroke="#7a7a7a", stroke_width=1, rx=6,
                     css_class="cluster")
        drawing.text(x0 + 6, y0 + 11, label, size=9, fill="#555555")

    for a, b in graph.edges:
        start, end = graph.nodes[a], graph.nodes[b]
        if vertical:
            down = end.y > start.y
            x1 = start.x + start.width / 2
            y1 = start.y + start.height if down else start.y
            y2 = end.y if down else end.y + end.height
            drawing.arrow(x1, y1, end.x + end.width / 2, y2)
        else:
            right = end.x > start.x
            y1 = start.y + start.height / 2
            x1 = start.x + start.width if right else start.x
            x2 = end.x if right else end.x + end.width
            drawing.arrow(x1, y1, x2, end.y + end.height / 2)

    for node in graph.nodes:
        drawing.rect(node.x, node.y, node.width, node.height, fill="#eef4fb", stroke="#1f4e79",
                     stroke_width=1.2, rx=4, css_class="layer")
        baseline = node.y + BOX_PAD + TITLE_SIZE - 1
        drawing.text(node.x + node.width / 2, baseline, node.title, size=TITLE_SIZE, anchor="middle",
                     weight="bold", css_class="layer-title")
        if node.lines:
            drawing.line(node.x, baseline + 6, node.x + node.width, baseline + 6, stroke="#9db6d3",
                         stroke_width=0.8)
        for number, line in enumerate(node.lines):
            drawing.text(node.x + BOX_PAD, baseline + 6 + LINE_HEIGHT * (number + 1) - 2, line,
                         size=LINE_SIZE, fill="#222222")
    return drawing


def _cluster_keys(node: Node) -> List[str]:
    """The keys of every cluster around `node` ("outer", "outer/inner", ...)."""
    return ["/".join(node.clusters[:depth]) for depth in range(1, len(node.clusters) + 1)]


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True,
               rankdir="TB", expand_nested=False, dpi=96, show_layer_activations=False,
               show_trainable=False) -> Figure:
    """Draw the model as boxes and arrows and write it to `to_file` (.svg or .png, by extension).

    Keras' signature and defaults.  Returns a `Figure` (shows itself in a
    notebook through `_repr_svg_`; `.path` is the written file).  PNG needs
    Pillow (`pip install convscope[viz]`); SVG needs nothing.
    """
    path = check_path(to_file, "plot_model")
    dpi = check_dpi(dpi, "plot_model")
    graph = build_graph(model, show_shapes, show_dtype, show_layer_names, rankdir, expand_nested,
                        show_layer_activations, show_trainable)
    return finish(draw_graph(graph), path, dpi, "plot_model")


def dot_source(graph: Graph, name: str = "G", subgraph: bool = False, dpi: float = 96) -> str:
    """The diagram in the DOT language (what pydot's `to_string()` gives), for tools that read DOT."""
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    head = f"subgraph {quote('cluster_' + name)}" if subgraph else f"digraph {quote(name)}"
    out = [head + " {", f"  graph [rankdir={graph.rankdir}, dpi={dpi:g}];",
           "  node [shape=record, fontname=Helvetica];"]
    for index, node in enumerate(graph.nodes):
        label = "\\n".join([node.title] + node.lines)
        out.append(f"  n{index} [label={quote(label)}];")
    for a, b in graph.edges:
        out.append(f"  n{a} -> n{b};")
    out.append("}")
    return "\n".join(out) + "\n"

