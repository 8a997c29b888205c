"""Plotly building blocks shared by the figure modules: a palette, column checks, lines with
shaded bands, titled layouts and the diverging unit heatmap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from value_lens.errors import InputError
from value_lens.viz._style import DIVERGING

__all__ = ["PALETTE", "require_columns"]

PALETTE = ["#1f4e9c", "#888888", "#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e"]


def require_columns(df: Any, columns: Sequence[str | None], what: str) -> pd.DataFrame:
    """Check that ``df`` is a DataFrame holding ``columns`` (``None`` entries are skipped)."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{what} needs a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise InputError(
            f"{what}: the table lacks column(s) {missing}; it has {list(df.columns)}. "
            "Pass the right column names as arguments."
        )
    if df.empty:
        raise InputError(f"{what}: the table is empty")
    return df


def _ci_band(
    fig: go.Figure,
    x: Any,
    lo: Any,
    hi: Any,
    color: str,
    *,
    name: str | None = None,
    visible: Any = None,
    **where: Any,
) -> None:
    """A shaded band between ``lo`` and ``hi`` (no line, no legend entry, no hover)."""
    xs = list(x)
    fig.add_trace(
        go.Scatter(
            x=xs + xs[::-1],
            y=list(hi) + list(lo)[::-1],
            fill="toself",
            fillcolor=color,
            opacity=0.18,
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            name=name,
            visible=visible,
        ),
        **where,
    )


def _titled(fig: go.Figure, title: str, x_title: str, y_title: str, **layout: Any) -> go.Figure:
    """Set the figure title, the two axis titles and the white template (plus ``layout``)."""
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": x_title}},
        yaxis={"title": {"text": y_title}},
        template="plotly_white",
        **layout,
    )
    return fig


def _unit_heatmap(
    z: Any,
    x: Sequence[Any],
    y: Sequence[Any],
    *,
    colorbar: str,
    hovertemplate: str,
    title: str,
    x_title: str,
    y_title: str,
    yaxis: Mapping[str, Any] | None = None,
    **kw: Any,
) -> go.Figure:
    """A heatmap on the diverging scale over [-1, 1] with categorical axes labelled by ``x``, ``y``."""
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(v) for v in x],
            y=[str(v) for v in y],
            colorscale=DIVERGING,
            zmin=-1,
            zmax=1,
            zmid=0,
            colorbar={"title": {"text": colorbar}},
            hovertemplate=hovertemplate,
            **kw,
        )
    )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": x_title}, "type": "category"},
        yaxis={"title": {"text": y_title}, "type": "category", **(yaxis or {})},
        template="plotly_white",
    )
    return fig


def _band(fig: go.Figure, x: Any, mean: Any, sd: Any, name: str, color: str, **kw: Any) -> None:
    """A line with a shaded ±sd band (the band is skipped when ``sd`` is None)."""
    band = None if sd is None else _sd_band(mean, sd)
    _line_with_band(fig, x, mean, band, name, color, band_name="± sd", **kw)


def _line_with_band(
    fig: go.Figure,
    x: Any,
    mean: Any,
    band: tuple[Any, Any] | None,
    name: str,
    color: str,
    *,
    band_name: str,
    **kw: Any,
) -> None:
    """A line with a shaded band between ``band = (lo, hi)`` (skipped when ``band`` is None)."""
    row = kw.pop("row", None)
    col = kw.pop("col", None)
    where = {"row": row, "col": col} if row is not None else {}
    if band is not None:
        _ci_band(
            fig,
            x,
            band[0],
            band[1],
            color,
            name=f"{name} {band_name}",
            visible=kw.get("visible"),
            **where,
        )
    fig.add_trace(
        go.Scatter(
            x=list(x),
            y=list(mean),
            mode="lines+markers",
            name=name,
            line={"color": color, **kw.pop("line", {})},
            **kw,
        ),
        **where,
    )


def _sd_band(mean: Any, sd: Any) -> tuple[np.ndarray, np.ndarray]:
    m, s = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    return m - s, m + s
