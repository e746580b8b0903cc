"""`plot_model`: Keras' layer diagram, drawn by us (no Graphviz, no pydot).

One box per layer — "name (Type)", and when asked the input/output shapes,
dtype, activation and trainable flag — joined by arrows, top to bottom
(`rankdir="TB"`) or left to right (`"LR"`; `"BT"`/`"RL"` reverse them).
Nested models are one box, or with `expand_nested=True` a dashed cluster
holding their own layers.  A functional model is drawn as a layered DAG
(`viz/layout.py`): one box per layer, one arrow per connection (a shared layer
has an arrow in and out for each call), ranks by the longest path from the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

from ..models.analysis import is_graph_model
from . import layout
from ._model import (activation_name, check_dpi, check_flag, check_model, check_path, format_shape,
                     is_model, shape_of)
from .i18n import check_lang, diagram_line
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
    layered: bool = False  # a functional model: laid out as a DAG (viz/layout.py), not as a line


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
            lines += [f"Input shape: {_shape_cell(input_shape)}", f"Output shape: {_shape_cell(output_shape)}"]
        if show_dtype:
            lines.append(f"dtype: {dtype or 'float32'}")
        if show_layer_activations and activation is not None:
            lines.append(f"Activation: {activation}")
        if show_trainable:
            lines.append(f"Trainable: {'Y' if trainable else 'N'}")
        return Node(key, title, lines, tuple(clusters))

    if is_graph_model(model):
        return _functional_graph(model, box, rankdir.upper())
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
                add(list(getattr(layer, "operations", layer.layers)), parents + (layer.name,))
            else:
                nodes.append(box(key, layer.name, type(layer).__name__, parents, shape_of(layer, "input_shape"),
                                 shape_of(layer, "output_shape"), getattr(layer, "dtype", None),
                                 activation_name(layer), getattr(layer, "trainable", True)))

    add(layers, ())
    edges = [(i, i + 1) for i in range(len(nodes) - 1)]
    return Graph(nodes, edges, clusters, rankdir.upper())


def _functional_graph(model, box, rankdir: str) -> Graph:
    """One box per layer of a functional model, one edge per tensor each call takes."""
    own = set(model._nodes)
    layers = list(model.operations)
    index = {id(layer): i for i, layer in enumerate(layers)}
    nodes, edges = [], []
    for layer in layers:
        calls = [n for n in layer._inbound_nodes if n in own]
        inputs = {_shapes_text([t.shape for t in n.input_tensors] or [t.shape for t in n.outputs]) for n in calls}
        outputs = {_shapes_text([t.shape for t in n.outputs]) for n in calls}
        nodes.append(box(layer.name, layer.name, type(layer).__name__, (),
                         inputs.pop() if len(inputs) == 1 else "multiple",      # Keras' word for a shared
                         outputs.pop() if len(outputs) == 1 else "multiple",    # layer's differing calls
                         getattr(layer, "dtype", None), activation_name(layer), getattr(layer, "trainable", True)))
        for call in calls:
            edges += [(index[id(t.keras_history[0])], index[id(layer)]) for t in call.input_tensors]
    return Graph(nodes, edges, [], rankdir, layered=True)


def _shape_cell(shape) -> str:
    """A shape as Keras prints it; text ("multiple", a list of shapes) as it is."""
    return shape if isinstance(shape, str) else format_shape(shape)


def _shapes_text(shapes) -> str:
    """One shape as Keras prints it, several as a list of them (a merge layer's inputs)."""
    if len(shapes) == 1:
        return format_shape(shapes[0])
    return "[" + ", ".join(format_shape(s) for s in shapes) + "]"


def draw_graph(graph: Graph) -> Drawing:
    """Lay the boxes out in a line (or, for a functional model, a layered DAG) along `rankdir` and draw them."""
    for node in graph.nodes:
        widths = [text_width(node.title, TITLE_SIZE)] + [text_width(line, LINE_SIZE) for line in node.lines]
        node.width = max(widths) + 2 * BOX_PAD
        node.height = LINE_HEIGHT + 4 + LINE_HEIGHT * len(node.lines) + 2 * BOX_PAD - 4
    if graph.layered:
        return _draw_layered(graph)
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

    _draw_boxes(drawing, graph)
    return drawing


def _draw_layered(graph: Graph) -> Drawing:
    """The DAG layout of `viz/layout.py`, mapped onto `rankdir`, with bent arrows around the boxes."""
    vertical = graph.rankdir in ("TB", "BT")
    count = len(graph.nodes)
    ranks, unit_edges, chains = layout.split_long_edges(layout.longest_path_ranks(count, graph.edges),
                                                        graph.edges)
    across = [n.width if vertical else n.height for n in graph.nodes] + [layout.DUMMY_SIZE] * (len(ranks) - count)
    along = [n.height if vertical else n.width for n in graph.nodes] + [0.0] * (len(ranks) - count)
    layers = layout.order_ranks(ranks, unit_edges)
    margin = 20.0
    centre, starts, sizes = layout.place(layers, across, along, unit_edges, 24.0 if vertical else 14.0, GAP + 12,
                                         margin)
    total_across = max(centre[n] + across[n] / 2 for n in centre) + margin
    total_along = starts[-1] + sizes[-1] + margin
    flip = graph.rankdir in ("BT", "RL")

    def point(across_value, along_value):
        along_value = total_along - along_value if flip else along_value
        return (across_value, along_value) if vertical else (along_value, across_value)

    for i, node in enumerate(graph.nodes):
        start = starts[ranks[i]] + (sizes[ranks[i]] - along[i]) / 2
        corner = point(centre[i] - across[i] / 2, start + (along[i] if flip else 0.0))
        node.x, node.y = corner
    width, height = (total_across, total_along) if vertical else (total_along, total_across)
    drawing = Drawing(width, height)
    ports = _ports(graph, chains, centre, across, count)
    for number, chain in enumerate(chains):
        a, b = chain[0], chain[-1]
        if a == b:                        # a layer called on its own output: a loop beside its box
            side, middle = centre[a] + across[a] / 2, starts[ranks[a]] + sizes[ranks[a]] / 2
            _arrow_through(drawing, [point(side, middle - 6), point(side + 16, middle - 6),
                                     point(side + 16, middle + 6), point(side, middle + 6)])
            continue
        out_at, in_at = ports[number]
        a_end = starts[ranks[a]] + (sizes[ranks[a]] + along[a]) / 2
        b_start = starts[ranks[b]] + (sizes[ranks[b]] - along[b]) / 2
        if ranks[b] <= ranks[a]:          # a back edge (a cycle through a shared layer): a plain arrow
            a_end, b_start = starts[ranks[a]] + (sizes[ranks[a]] - along[a]) / 2, \
                starts[ranks[b]] + (sizes[ranks[b]] + along[b]) / 2
        points = [point(out_at, a_end)]
        for dummy in chain[1:-1]:
            rank = ranks[dummy]
            points += [point(centre[dummy], starts[rank]), point(centre[dummy], starts[rank] + sizes[rank])]
        points.append(point(in_at, b_start))
        _arrow_through(drawing, _dedupe(points))
    _draw_boxes(drawing, graph)
    return drawing


def _ports(graph: Graph, chains, centre, across, count: int):
    """Where each edge leaves its source box and enters its target, spread along the box side by the order
    of the other ends (so that parallel edges, e.g. a shared layer's two calls into one Add, stay apart)."""
    def spread(box, ends, key):
        ends = sorted(ends, key=key)
        width = across[box] * 0.6
        return {e: centre[box] - width / 2 + width * (k + 1) / (len(ends) + 1) for k, e in enumerate(ends)}
    out_ends: dict = {}
    in_ends: dict = {}
    for number, chain in enumerate(chains):
        out_ends.setdefault(chain[0], []).append(number)
        in_ends.setdefault(chain[-1], []).append(number)
    out_at, in_at = {}, {}
    for box, ends in out_ends.items():
        out_at.update(spread(box, ends, lambda e: (centre[chains[e][1]], e)))
    for box, ends in in_ends.items():
        in_at.update(spread(box, ends, lambda e: (centre[chains[e][-2]], e)))
    return [(out_at[e], in_at[e]) for e in range(len(chains))]


def _dedupe(points):
    out = [points[0]]
    for p in points[1:]:
        if abs(p[0] - out[-1][0]) > 1e-9 or abs(p[1] - out[-1][1]) > 1e-9:
            out.append(p)
    return out


def _arrow_through(drawing: Drawing, points) -> None:
    """An arrow along `points`: a straight arrow for two points, else a polyline ending in a head."""
    if len(points) == 2:
        drawing.arrow(*points[0], *points[1])
        return
    (x1, y1), (x2, y2) = points[-2], points[-1]
    head = 7.0
    length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1e-9)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    bx, by = x2 - ux * head, y2 - uy * head
    drawing.polyline(points[:-1] + [(bx, by)], stroke="#333333", stroke_width=1.2, css_class="edge")
    drawing.polygon([(x2, y2), (bx - uy * head * 0.45, by + ux * head * 0.45),
                     (bx + uy * head * 0.45, by - ux * head * 0.45)], fill="#333333", css_class="edge-head")


def _draw_boxes(drawing: Drawing, graph: Graph) -> None:
    """Each box: a rounded rectangle, the bold title and the detail lines under a rule."""
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


def _cluster_keys(node: Node) -> List[str]:
    """The keys of every cluster around `node` ("outer", "outer/inner", ...)."""
    return ["/".join(node.clusters[:depth]) for depth in range(1, len(node.clusters) + 1)]


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True,
               rankdir="TB", expand_nested=False, dpi=96, show_layer_activations=False,
               show_trainable=False, lang="en") -> Figure:
    """Draw the model as boxes and arrows and write it to `to_file` (.svg or .png, by extension).

    Keras' signature and defaults, plus `lang` ("en" or "ko"): the language of the
    boxes' words (layer, class, activation and dtype names stay as they are).  Returns a
    `Figure` (shows itself in a notebook through `_repr_svg_`; `.path` is the written
    file).  PNG needs Pillow (`pip install convscope[viz]`); SVG needs nothing.
    """
    check_lang(lang, "plot_model")
    path = check_path(to_file, "plot_model")
    dpi = check_dpi(dpi, "plot_model")
    graph = build_graph(model, show_shapes, show_dtype, show_layer_names, rankdir, expand_nested,
                        show_layer_activations, show_trainable)
    return finish(draw_graph(translate_graph(graph, lang)), path, dpi, "plot_model")


def translate_graph(graph: Graph, lang: str) -> Graph:
    """`graph` with its boxes' detail lines in `lang` (titles are names and stay); changes it in place."""
    for node in graph.nodes:
        node.lines = [diagram_line(line, lang) for line in node.lines]
    return graph


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

