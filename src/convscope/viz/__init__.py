"""Pictures drawn by convscope itself (no Graphviz, no matplotlib) and the interactive HTML report.

SVG needs nothing beyond NumPy; PNG needs Pillow (`pip install convscope[viz]`).
"""

from .filters import plot_feature_maps, plot_filters
from .history import plot_history
from .model_plot import plot_model
from .report import report
from .saliency import gradcam, heatmap_rgb, overlay, plot_gradcam, plot_saliency, saliency
from .svg import Drawing, Figure

__all__ = ["plot_model", "plot_filters", "plot_feature_maps", "plot_history", "report", "Drawing", "Figure",
           "saliency", "gradcam", "plot_saliency", "plot_gradcam", "overlay", "heatmap_rgb"]
