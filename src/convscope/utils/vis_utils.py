"""Keras' `keras.utils.vis_utils`: `model_to_dot` and `plot_model`, drawn by convscope.

`model_to_dot(model, show_shapes=True).create(prog="dot", format="svg")`
returns SVG bytes as in Keras, but the picture is drawn by `convscope.viz`
without Graphviz or pydot; `prog` is accepted for compatibility only.
"""

from __future__ import annotations

from pathlib import Path

from ..viz._model import check_dpi, check_flag
from ..viz.model_plot import build_graph, dot_source, draw_graph, plot_model
from ..viz.svg import atomic_write

__all__ = ["model_to_dot", "plot_model", "ModelDot"]

_PROGS = ("dot", "neato", "twopi", "circo", "fdp", "sfdp")


class ModelDot:
    """The diagram of a model, with pydot's `create`, `create_svg`, `create_png`, `to_string`, `write`."""

    def __init__(self, graph, name: str, subgraph: bool, dpi: float):
        self.graph = graph
        self.name = name
        self.subgraph = subgraph
        self.dpi = dpi
        self._drawing = draw_graph(graph)

    def create(self, prog="dot", format="svg") -> bytes:  # noqa: A002 - pydot's argument name
        """The picture as bytes: format "svg" (UTF-8 SVG), "png", or "dot"/"raw" (DOT text)."""
        if not isinstance(prog, str) or prog not in _PROGS:
            raise ValueError(f"model_to_dot(...).create: argument `prog` must be one of {_PROGS}, got {prog!r}")
        kind = format.lower() if isinstance(format, str) else format
        if kind == "svg":
            return self._drawing.to_svg().encode("utf-8")
        if kind == "png":
            return self._drawing.to_png(self.dpi)
        if kind in ("dot", "raw"):
            return self.to_string().encode("utf-8")
        raise ValueError(f"model_to_dot(...).create: argument `format` must be 'svg', 'png', 'dot' or 'raw', "
                         f"got {format!r}")

    def create_svg(self, prog="dot") -> bytes:
        return self.create(prog, "svg")

    def create_png(self, prog="dot") -> bytes:
        return self.create(prog, "png")

    def to_string(self) -> str:
        """The diagram as DOT text."""
        return dot_source(self.graph, self.name, self.subgraph, self.dpi)

    def write(self, path, prog="dot", format="raw") -> Path:  # noqa: A002
        """Write `create(prog, format)` to `path` atomically (pydot's default format is DOT text)."""
        return atomic_write(path, self.create(prog, format))

    def write_svg(self, path, prog="dot") -> Path:
        return self.write(path, prog, "svg")

    def write_png(self, path, prog="dot") -> Path:
        return self.write(path, prog, "png")

    def _repr_svg_(self) -> str:
        return self._drawing.to_svg()


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=96, subgraph=False, show_layer_activations=False,
                 show_trainable=False) -> ModelDot:
    """Keras' `model_to_dot`: the model's diagram as an object with pydot's methods.

    `subgraph=True` makes `to_string()` a DOT `subgraph cluster_...` block, as Keras
    uses for nested models.
    """
    check_flag(subgraph, "subgraph", "model_to_dot")
    dpi = check_dpi(dpi, "model_to_dot")
    graph = build_graph(model, show_shapes, show_dtype, show_layer_names, rankdir, expand_nested,
                        show_layer_activations, show_trainable, where="model_to_dot")
    return ModelDot(graph, getattr(model, "name", None) or "model", subgraph, dpi)
