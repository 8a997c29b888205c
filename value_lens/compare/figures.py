"""Figures of the comparisons (plotly, offline): each draws exactly its summary table.

Error bars are the summaries' 95% bootstrap CIs; the value-change heatmap uses the project's
signed scale (blue above zero, red below, white at zero).

Example:
    >>> import pandas as pd
    >>> s = pd.DataFrame({"model": ["base", "dpo"], "rate_first": [0.2, 0.4],
    ...                   "rate_first_ci_lo": [0.1, 0.3], "rate_first_ci_hi": [0.3, 0.5],
    ...                   "chance": [0.25, 0.25]})
    >>> list(rank_figure(s).data[0].y)
    [0.2, 0.4]
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from value_lens.viz._style import DIVERGING, symmetric_limit

__all__ = [
    "domain_figure",
    "quartile_figure",
    "rank_figure",
    "selection_figure",
    "steering_figure",
    "word_delta_figure",
]

_PALETTE = ["#1f4e9c", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#888888"]


def _bars(x: Any, y: Any, lo: Any, hi: Any, name: str = "") -> go.Bar:
    y, lo, hi = (pd.Series(v, dtype=float).to_numpy() for v in (y, lo, hi))
    return go.Bar(
        x=list(x),
        y=list(y),
        name=name,
        marker_color=_PALETTE[0],
        error_y={
            "type": "data",
            "symmetric": False,
            "array": list(hi - y),
            "arrayminus": list(y - lo),
        },
    )


def _chance(fig: go.Figure, summary: pd.DataFrame) -> None:
    if "chance" in summary:
        c = float(summary["chance"].mean())
        fig.add_hline(y=c, line_dash="dot", line_color="#888888", annotation_text=f"chance {c:.2f}")


def rank_figure(summary: pd.DataFrame) -> go.Figure:
    """Rate at which the target ranks first, per model, with its CI (Figs 7a/13/15)."""
    fig = go.Figure(
        _bars(
            summary["model"],
            summary["rate_first"],
            summary["rate_first_ci_lo"],
            summary["rate_first_ci_hi"],
        )
    )
    _chance(fig, summary)
    fig.update_layout(
        title="Preferred item ranks first in value (95% CI over prompts)",
        yaxis_title="rate ranked first",
        template="plotly_white",
    )
    return fig


def selection_figure(summary: pd.DataFrame) -> go.Figure:
    """Selection accuracy by option log-likelihood, per model (Fig 12)."""
    fig = go.Figure(
        _bars(summary["model"], summary["accuracy"], summary["ci_lo"], summary["ci_hi"])
    )
    _chance(fig, summary)
    fig.update_layout(
        title="Target selected by log-likelihood (95% CI over prompts)",
        yaxis_title="selection accuracy",
        template="plotly_white",
    )
    return fig


def word_delta_figure(summary: pd.DataFrame) -> go.Figure:
    """Mean tuned - base value on the preferred vs the control words (Fig 7b)."""
    s = summary[summary["statistic"] != "ratio"]
    fig = go.Figure(_bars(s["statistic"], s["value"], s["ci_lo"], s["ci_hi"]))
    r = summary[summary["statistic"] == "ratio"]
    ratio = f" (ratio {float(r['value'].iloc[0]):.3g})" if len(r) else ""
    fig.update_layout(
        title=f"Value change on the word, tuned - base{ratio}",
        yaxis_title="mean delta",
        template="plotly_white",
    )
    return fig


def domain_figure(summary: pd.DataFrame) -> go.Figure:
    """Heatmap of the value change per (tuned model, test domain) (Fig 9)."""
    grid = summary.pivot(index="model", columns="domain", values="delta")
    lim = symmetric_limit(grid.to_numpy().reshape(-1))
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=list(grid.columns),
            y=list(grid.index),
            colorscale=DIVERGING,
            zmin=-lim,
            zmax=lim,
            colorbar={"title": "delta"},
            texttemplate="%{z:.4f}",
        )
    )
    fig.update_layout(
        title="Value change (tuned - base) per test domain",
        xaxis_title="test domain",
        yaxis_title="tuned model",
        template="plotly_white",
    )
    return fig


def quartile_figure(summary: pd.DataFrame) -> go.Figure:
    """Fraction of each label per value quartile (Q1 highest), one panel per model (Fig 17)."""
    models = list(dict.fromkeys(summary["model"]))
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    for c, m in enumerate(models, 1):
        for k, label in enumerate(dict.fromkeys(summary["label"])):
            s = summary[(summary["model"] == m) & (summary["label"] == label)]
            y = s["fraction"].to_numpy()
            fig.add_trace(
                go.Scatter(
                    x=[f"Q{q}" for q in s["quartile"]],
                    y=list(y),
                    mode="lines+markers",
                    name=str(label),
                    legendgroup=str(label),
                    showlegend=c == 1,
                    line_color=_PALETTE[k % len(_PALETTE)],
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": list(s["ci_hi"].to_numpy() - y),
                        "arrayminus": list(y - s["ci_lo"].to_numpy()),
                    },
                ),
                row=1,
                col=c,
            )
    fig.update_layout(
        title="Label fraction per quartile of the last-prompt-token value (Q1 = highest)",
        yaxis_title="fraction",
        template="plotly_white",
    )
    return fig


def steering_figure(summary: pd.DataFrame, per_target: pd.DataFrame | None = None) -> go.Figure:
    """Selection rate against alpha: the mean with its CI band, thin lines per word (Fig 14)."""
    fig = go.Figure()
    if per_target is not None:
        for word, s in per_target.groupby("target", sort=True):
            fig.add_trace(
                go.Scatter(
                    x=list(s["alpha"]),
                    y=list(s["selection_rate"]),
                    mode="lines",
                    name=str(word),
                    line={"width": 1, "color": "#bbbbbb"},
                    showlegend=False,
                    hovertext=str(word),
                )
            )
    x = list(summary["alpha"])
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=list(summary["ci_hi"]) + list(summary["ci_lo"])[::-1],
            fill="toself",
            line={"width": 0},
            fillcolor="rgba(31,78,156,0.2)",
            name="95% CI",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=list(summary["selection_rate"]),
            mode="lines+markers",
            name="selection rate",
            line_color=_PALETTE[0],
        )
    )
    fig.update_layout(
        title="Target selection while steering its tokens in the prompt",
        xaxis_title="alpha",
        yaxis_title="selection rate",
        template="plotly_white",
    )
    return fig
