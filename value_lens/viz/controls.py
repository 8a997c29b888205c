"""The sweep's answer at one layer: the value axis beside the controls that could explain it.

A held-out AUROC of the axis says little alone: in ICRL data AFTER tokens are also later in the
turn, so closeness to the turn end separates them too. :data:`CONTROLS` lists what
:func:`value_lens.analysis.sweep.layer_sweep` reports beside the axis (the difference-in-differences
axis, the AUROC matched on distance to the turn end, the AUROC on placebo turns, the position
scores, sign-aligned random directions and the shuffled-label null). :func:`control_table`
reads them at one layer (by default the best held-out one) with their intervals, and
:func:`control_panel_figure` draws that table as a forest plot.

Every column is optional: controls absent from the table (or NaN at every layer, as the DiD and
placebo columns are for data labelled without ``placebo=True``) are left out.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"layer": [0, 1], "token_auroc_mean": [0.6, 0.8],
    ...                    "token_auroc_ci_lo": [0.5, 0.7], "token_auroc_ci_hi": [0.7, 0.9],
    ...                    "end_proximity_auroc": [0.75, 0.75]})
    >>> control_table(df)[["control", "auroc", "lo", "hi"]].values.tolist()
    [['value axis', 0.8, 0.7, 0.9], ['closeness to turn end', 0.75, nan, nan]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from value_lens.errors import InputError

__all__ = [
    "CONTROLS",
    "Control",
    "best_layer",
    "ci_columns",
    "control_panel_figure",
    "control_table",
    "forest_figure",
    "layer_row",
]


@dataclass(frozen=True)
class Control:
    """One score of the sweep table: its column, how to label it and what it tests."""

    key: str
    label: str
    column: str
    reads: str
    upper: str | None = None  # a column drawn as the upper whisker instead of a CI (random p95)
    secondary: bool = False  # hidden by default in the per-layer figure (legend click shows it)


#: the scores shown beside the value axis, in display order (the axis first).
CONTROLS: tuple[Control, ...] = (
    Control("axis", "value axis", "token_auroc_mean", "held-out criteria, AFTER vs BEFORE tokens"),
    Control(
        "did",
        "DiD axis (criterion minus placebo contrast)",
        "did_auroc_mean",
        "axis fitted on criterion minus placebo-turn differences",
    ),
    Control(
        "between",
        "axis, pairs from two turns",
        "token_auroc_between",
        "AFTER vs BEFORE tokens of different turns only",
        secondary=True,
    ),
    Control(
        "within",
        "axis, pairs from one turn",
        "token_auroc_within",
        "AFTER vs BEFORE tokens of the same turn (any position score ranks these)",
        secondary=True,
    ),
    Control(
        "matched",
        "axis, matched on place and turn length",
        "matched_auroc",
        "AFTER vs BEFORE at the same distance from the turn start and to its end",
    ),
    Control(
        "did_matched",
        "DiD axis, matched on place and turn length",
        "did_matched_auroc",
        "the DiD axis at the same distance from the turn start and to its end",
        secondary=True,
    ),
    Control(
        "placebo",
        "axis on placebo turns",
        "placebo_auroc",
        "failed attempts cut like their real turn: position separates them as on real turns",
    ),
    Control(
        "did_placebo",
        "DiD axis on placebo turns",
        "did_placebo_auroc",
        "the DiD axis on the held-out placebo turns",
        secondary=True,
    ),
    Control(
        "end",
        "closeness to turn end",
        "end_proximity_auroc",
        "score = minus the tokens left in the turn (the position confound)",
    ),
    Control(
        "turn_position",
        "position within the turn",
        "turn_position_auroc",
        "score = token index from the turn start",
    ),
    Control(
        "relative_position",
        "relative position in the turn",
        "relative_position_auroc",
        "score = (index from turn start) / turn length",
        secondary=True,
    ),
    Control(
        "position",
        "token index",
        "position_auroc",
        "score = absolute token index (older sweep tables)",
        secondary=True,
    ),
    Control(
        "random",
        "sign-aligned random direction",
        "random_auroc_mean",
        "random unit directions oriented on the training criteria (mean; whisker: 95th percentile)",
        upper="random_auroc_p95",
    ),
    Control(
        "shuffled",
        "shuffled-label null",
        "shuffled_auroc_mean",
        "noise floor: BEFORE/AFTER labels permuted within sequences, refitted (not computed "
        "on the two-pass path)",
        secondary=True,
    ),
)


def ci_columns(column: str) -> tuple[str, str]:
    """The ``(lo, hi)`` CI columns of a score column: ``token_auroc_mean`` ->
    ``token_auroc_ci_lo/hi``, ``matched_auroc`` -> ``matched_auroc_ci_lo/hi``."""
    base = column.removesuffix("_mean")
    return f"{base}_ci_lo", f"{base}_ci_hi"


def present(df: pd.DataFrame, column: str | None) -> bool:
    """Whether ``df`` has ``column`` with at least one finite value."""
    return column is not None and column in df.columns and bool(np.isfinite(df[column]).any())


def best_layer(df: pd.DataFrame, *, score: str = "token_auroc_mean", layer: str = "layer") -> int:
    """The layer whose held-out ``score`` is highest (the first such layer on ties)."""
    if not isinstance(df, pd.DataFrame) or score not in df.columns or layer not in df.columns:
        raise InputError(f"best_layer needs a sweep table with columns {layer!r} and {score!r}")
    if not np.isfinite(df[score]).any():
        raise InputError(f"the sweep table's {score!r} has no finite value")
    return int(df.loc[df[score].idxmax(), layer])


def layer_row(df: pd.DataFrame, layer: int | None = None) -> tuple[int, pd.Series]:
    """``(layer, its row)`` of a sweep table (default the best held-out layer), or an error
    listing the table's layers."""
    at = best_layer(df) if layer is None else int(layer)
    rows = df[df["layer"] == at]
    if rows.empty:
        raise InputError(f"layer {at} is not in the sweep table (layers {df['layer'].tolist()})")
    return at, rows.iloc[0]


def control_table(df: pd.DataFrame, layer: int | None = None) -> pd.DataFrame:
    """The axis and every control present in ``df`` at ``layer`` (default :func:`best_layer`).

    Returns:
        One row per score: ``control`` (label), ``column``, ``layer``, ``auroc``, ``lo`` and
        ``hi`` (the CI columns when the table has them, else NaN; for the random directions
        ``lo`` is NaN and ``hi`` is their 95th percentile), ``interval`` (what lo/hi are) and
        ``reads`` (what the score tests).
    """
    at, row = layer_row(df, layer)
    out = []
    for c in CONTROLS:
        if not present(df, c.column):
            continue
        lo_c, hi_c = ci_columns(c.column)
        if c.upper is not None:
            lo, hi = np.nan, float(row[c.upper]) if c.upper in df.columns else np.nan
            interval = "hi: 95th percentile over random directions"
        elif lo_c in df.columns and hi_c in df.columns:
            lo, hi, interval = float(row[lo_c]), float(row[hi_c]), "CI"
        else:
            lo, hi, interval = np.nan, np.nan, ""
        out.append(
            {
                "control": c.label,
                "column": c.column,
                "layer": at,
                "auroc": float(row[c.column]),
                "lo": lo,
                "hi": hi,
                "interval": interval,
                "reads": c.reads,
            }
        )
    return pd.DataFrame(out)


def control_panel_figure(
    df: pd.DataFrame, layer: int | None = None, *, ci_label: str = "CI"
) -> go.Figure:
    """A forest plot of :func:`control_table`: one row per score, its AUROC as a point and its
    interval as an error bar (random directions: the whisker reaches their 95th percentile).

    The trace's ``x`` are the table's ``auroc`` values, ``y`` its labels; ``error_x.array`` =
    ``hi - auroc`` and ``error_x.arrayminus`` = ``auroc - lo`` (0 where there is no bound).
    """
    t = control_table(df, layer)
    at = int(t["layer"].iloc[0])
    return forest_figure(
        t.rename(columns={"auroc": "value"}),
        highlight="token_auroc_mean",
        reference=0.5,
        title=f"Value axis and controls at layer {at}<br><sup>whiskers: {ci_label}; random "
        "directions: mean to 95th percentile</sup>",
        xlabel="held-out AUROC (AFTER vs BEFORE)",
    )


def forest_figure(
    t: pd.DataFrame, *, highlight: str, reference: float, title: str, xlabel: str
) -> go.Figure:
    """A forest plot of a table with ``control``, ``column``, ``value``, ``lo`` and ``hi``: one row
    per score, ``highlight``'s row in blue, a line at ``reference``."""
    x = t["value"].to_numpy(float)
    plus = np.nan_to_num(t["hi"].to_numpy(float) - x, nan=0.0)
    minus = np.nan_to_num(x - t["lo"].to_numpy(float), nan=0.0)
    colours = ["#1f4e9c" if c == highlight else "#555555" for c in t["column"]]
    fig = go.Figure(
        go.Scatter(
            x=x.tolist(),
            y=t["control"].tolist(),
            mode="markers",
            marker={"size": 10, "color": colours},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": plus.tolist(),
                "arrayminus": minus.tolist(),
                "thickness": 1.5,
            },
            customdata=np.stack([t["lo"], t["hi"]], axis=1),
            hovertemplate="%{y}: %{x:.3f}<br>interval [%{customdata[0]:.3f}, "
            "%{customdata[1]:.3f}]<extra></extra>",
            name=f"layer {int(t['layer'].iloc[0])}",
            showlegend=False,
        )
    )
    fig.add_vline(x=reference, line={"color": "#bbbbbb", "width": 1})
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": xlabel}},
        yaxis={"autorange": "reversed", "type": "category"},
        template="plotly_white",
        height=120 + 34 * len(t),
        margin={"l": 300},
    )
    return fig
