"""Figures of the backtracking evaluation and of steering: band curves, the event-locked trace,
dose-response curves and the layer x metric slope heatmap.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"metric": ["lines", "lines"], "layer": [20, 21], "slope": [-0.6, 0.1]})
    >>> fig = slope_heatmap_figure(df)
    >>> fig.data[0].z.tolist()
    [[-1.0], [0.16666666666666669]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from value_lens.errors import InputError
from value_lens.viz._traces import PALETTE as _PALETTE
from value_lens.viz._traces import _band, _ci_band, _titled, _unit_heatmap, require_columns

__all__ = [
    "backtracking_band_figure",
    "confidence_prefill_figure",
    "dose_response_figure",
    "event_locked_figure",
    "slope_heatmap_figure",
]


def backtracking_band_figure(
    df: pd.DataFrame,
    *,
    x: str = "band_end",
    group: str = "backtracking",
    mean: str = "mean",
    ci_low: str | None = "ci_lo",
    ci_high: str | None = "ci_hi",
    count: str | None = "n",
    title: str = "Mean value per token band",
) -> go.Figure:
    """Mean value per token band, one line per group (e.g. backtracking vs not), with 95% CI.

    One line per distinct ``df[group]``, drawn in the order the groups first appear; the band is
    drawn when both CI columns are given. The hover shows the count when ``count`` is given.
    """
    need = [x, group, mean, ci_low, ci_high] + ([count] if count in df.columns else [])
    df = require_columns(df, need, "backtracking_band_figure")
    fig = go.Figure()
    for i, (g, sub) in enumerate(df.groupby(group, sort=False)):
        sub = sub.sort_values(x)
        color = _PALETTE[(2 * i) % len(_PALETTE)]
        if ci_low is not None and ci_high is not None:
            _ci_band(fig, sub[x], sub[ci_low], sub[ci_high], color)
        custom = sub[count].to_numpy() if count in sub.columns else None
        fig.add_trace(
            go.Scatter(
                x=list(sub[x]),
                y=list(sub[mean]),
                mode="lines+markers",
                name=f"{group}={g}",
                line={"color": color},
                customdata=custom,
                hovertemplate="%{x}: %{y:.4f}"
                + (" (n=%{customdata})" if custom is not None else "")
                + "<extra></extra>",
            )
        )
    return _titled(fig, title, "token band (end)", "mean value")


def event_locked_figure(
    df: pd.DataFrame,
    *,
    offset: str = "offset",
    mean: str = "mean",
    ci_low: str | None = "ci_lo",
    ci_high: str | None = "ci_hi",
    group: str | None = None,
    title: str = "Value around backtracking events",
) -> go.Figure:
    """Mean value at each token offset from an event (offset 0 = the event's first token)."""
    lo = ci_low if ci_low in df.columns else None
    hi = ci_high if ci_high in df.columns else None
    df = require_columns(df, [offset, mean, lo, hi, group], "event_locked_figure")
    fig = go.Figure()
    groups = df.groupby(group, sort=False) if group else [("event", df)]
    for i, (g, sub) in enumerate(groups):
        sub = sub.sort_values(offset)
        color = _PALETTE[(2 * i) % len(_PALETTE)]
        if lo and hi:
            _ci_band(fig, sub[offset], sub[lo], sub[hi], color)
        fig.add_trace(
            go.Scatter(
                x=list(sub[offset]),
                y=list(sub[mean]),
                mode="lines",
                name=str(g),
                line={"color": color},
            )
        )
    fig.add_vline(x=0, line={"color": "#999", "dash": "dot"})
    return _titled(fig, title, "tokens from event", "mean value")


def dose_response_figure(
    df: pd.DataFrame,
    metrics: Sequence[str],
    *,
    x: str = "alpha",
    layer: str | None = "layer",
    exclude: str | None = "degenerate",
    x_title: str | None = None,
    title: str = "Dose-response",
    cols: int = 3,
    prompt: str | None = "prompt_id",
) -> go.Figure:
    """Mean ± standard error of each metric against steering strength, one panel per metric,
    with every prompt's own curve drawn thin behind it (the spread across prompts).

    Rows of ``df`` are single observations (one generation each, as in
    :func:`value_lens.steering.dose.dose_response`'s ``frame``) or already one row per strength; they are
    averaged per (layer, strength), one line per layer. When ``df`` has the ``prompt`` column,
    each prompt's mean per strength (over seeds) is a thin line in its layer's colour, so prompts
    that move against the mean (anti-steerable ones) show; ``prompt=None`` leaves them out. Rows
    flagged in the boolean column ``exclude`` (degenerate outputs) are left out, as the slopes
    leave them out. The x axis is the strength; its title says "% of residual norm" when
    ``df["unit"]`` is ``"percent"``.
    """
    if not metrics:
        raise InputError("dose_response_figure needs at least one metric column")
    has_layer = layer is not None and layer in df.columns
    df = require_columns(df, [x, *metrics, layer if has_layer else None], "dose_response_figure")
    if exclude is not None and exclude in df.columns:
        df = df[~df[exclude].astype(bool)]
    if x_title is None:
        units = set(df["unit"]) if "unit" in df.columns else set()
        x_title = {
            "percent": "strength (% of residual norm)",
            "sd": "strength (sd of projection)",
            "raw": "strength (raw residual units)",
        }.get(units.pop() if len(units) == 1 else "", "strength")
    ncols = min(cols, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=list(metrics))
    groups = list(df.groupby(layer, sort=True)) if has_layer else [("all", df)]
    for j, metric in enumerate(metrics):
        r, c = j // ncols + 1, j % ncols + 1
        for i, (lay, sub) in enumerate(groups):
            vals = pd.to_numeric(sub[metric], errors="coerce").astype(float)
            agg = vals.groupby(sub[x], sort=True).agg(["mean", "std", "count"])
            sem = (agg["std"] / np.sqrt(agg["count"])).fillna(0.0)
            _band(
                fig,
                agg.index,
                agg["mean"],
                sem if (agg["count"] > 1).any() else None,
                f"layer {lay}" if has_layer else metric,
                _PALETTE[i % len(_PALETTE)],
                row=r,
                col=c,
                legendgroup=str(lay),
                showlegend=j == 0,
            )
            if prompt is not None and prompt in sub.columns:
                _prompt_lines(fig, sub, vals, x, prompt, _PALETTE[i % len(_PALETTE)], r, c)
        fig.update_xaxes(title_text=x_title, row=r, col=c)
    fig.update_layout(title={"text": title}, template="plotly_white", height=320 * nrows)
    return fig


def _prompt_lines(
    fig: go.Figure,
    sub: pd.DataFrame,
    vals: pd.Series,
    x: str,
    prompt: str,
    color: str,
    row: int,
    col: int,
) -> None:
    """One thin line per prompt: its mean per strength (the dose figure's spread)."""
    per = vals.groupby([sub[prompt], sub[x]], sort=True).mean()
    for pid, curve in per.groupby(level=0, sort=True):
        fig.add_trace(
            go.Scatter(
                x=list(curve.index.get_level_values(1)),
                y=list(curve.to_numpy()),
                mode="lines",
                line={"color": color, "width": 1},
                opacity=0.3,
                name=f"prompt {pid}",
                showlegend=False,
                hovertemplate=f"prompt {pid}: %{{y:.4g}}<extra></extra>",
            ),
            row=row,
            col=col,
        )


def slope_heatmap_figure(
    df: pd.DataFrame,
    *,
    layer: str = "layer",
    metric: str = "metric",
    slope: str = "slope",
    title: str = "Dose-response slope by layer and metric",
) -> go.Figure:
    """Layer x metric heatmap of OLS slopes; colour normalised per metric, raw value printed.

    ``df`` is long (columns ``layer``, ``metric``, ``slope``) or wide (one row per layer, one
    column per metric, with ``layer`` as a column or the index). The colour of each cell is its
    slope divided by the largest ``|slope|`` of its metric (column), so every metric uses the
    full scale; the text is the raw slope. Missing cells stay blank.
    """
    if isinstance(df, pd.DataFrame) and metric in df.columns and slope in df.columns:
        df = require_columns(df, [layer, metric, slope], "slope_heatmap_figure")
        wide = df.pivot_table(
            index=layer, columns=metric, values=slope, aggfunc="first", sort=False, dropna=False
        )
        wide = wide.sort_index()
    elif isinstance(df, pd.DataFrame):
        wide = df.set_index(layer) if layer in df.columns else df
        wide = wide.sort_index()
    else:
        raise InputError(f"slope_heatmap_figure needs a DataFrame, got {type(df).__name__}")
    raw = wide.to_numpy(dtype=float)
    if raw.size == 0:
        raise InputError("slope_heatmap_figure: the table is empty")
    scale = np.max(np.abs(np.nan_to_num(raw, nan=0.0)), axis=0, initial=0.0)
    scale[~(scale > 0)] = 1.0
    z = raw / scale
    text = np.where(np.isfinite(raw), np.vectorize(lambda v: f"{v:+.3g}")(np.nan_to_num(raw)), "")
    return _unit_heatmap(
        z,
        list(wide.columns),
        list(wide.index),
        colorbar="slope / max |slope| of metric",
        hovertemplate="layer %{y}, %{x}<br>slope %{text}<extra></extra>",
        title=title,
        x_title="metric",
        y_title="layer",
        text=text,
        texttemplate="%{text}",
    )


def confidence_prefill_figure(
    df: pd.DataFrame,
    *,
    framing: str = "framing",
    prefill: str = "prefill",
    value: str = "value",
    title: str = "Value at the prefilled Yes / No answer, per framing",
) -> go.Figure:
    """Distribution of the value at a prefilled "Yes" vs "No", one group per framing.

    Reads :func:`value_lens.evals.run_confidence_suite`'s ``table`` (one row per problem,
    framing and prefill). One box (with every point) per prefill answer, grouped by framing: if
    the axis tracks confidence, "Yes" sits above "No" under the "correct?" framing and the order
    flips under "incorrect?".
    """
    df = require_columns(df, [framing, prefill, value], "confidence_prefill_figure")
    fig = go.Figure()
    for i, (answer, sub) in enumerate(df.groupby(prefill, sort=True)):
        fig.add_trace(
            go.Box(
                x=[str(f) for f in sub[framing]],
                y=list(sub[value]),
                name=str(answer),
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": _PALETTE[2 * i % 7]},
            )
        )
    return _titled(fig, title, "framing", "value at the prefilled token", boxmode="group")
