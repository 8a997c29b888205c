"""Offline figures: token heatmaps, layer heatmaps, result figures and the HTML report.

Nothing here touches the network: HTML views are plain HTML/CSS, plotly figures embed
plotly.js (never the CDN), and static images are written only when kaleido is installed.
"""

from value_lens.viz.circuits import circuits_token_view
from value_lens.viz.controls import control_panel_figure, control_table
from value_lens.viz.export import png_available, save_figure
from value_lens.viz.figures import code_scatter_figure, layer_cosine_figure, sweep_figure
from value_lens.viz.figures_evals import (
    backtracking_band_figure,
    confidence_prefill_figure,
    dose_response_figure,
    event_locked_figure,
    slope_heatmap_figure,
)
from value_lens.viz.heatmap import TokenHeatmap, token_heatmap, trace_difference
from value_lens.viz.layer_heatmap import layer_token_heatmap
from value_lens.viz.live import LiveHeatmap
from value_lens.viz.position import discontinuity_figure, discontinuity_table
from value_lens.viz.report import write_report

__all__ = [
    "LiveHeatmap",
    "TokenHeatmap",
    "backtracking_band_figure",
    "circuits_token_view",
    "code_scatter_figure",
    "confidence_prefill_figure",
    "control_panel_figure",
    "control_table",
    "discontinuity_figure",
    "discontinuity_table",
    "dose_response_figure",
    "event_locked_figure",
    "layer_cosine_figure",
    "layer_token_heatmap",
    "png_available",
    "save_figure",
    "slope_heatmap_figure",
    "sweep_figure",
    "token_heatmap",
    "trace_difference",
    "write_report",
]
