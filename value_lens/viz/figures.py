"""Figures of the layer sweep, the layer-cosine matrix and the code-correctness evaluation.

Every figure takes a tidy pandas table (one row per layer, pair, ...) and the names of the columns
to read, with defaults matching :func:`value_lens.analysis.sweep.layer_sweep` and the evaluation suites.
What is drawn is exactly what the table holds: no smoothing, no hidden aggregation.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"layer": [0, 1], "token_auroc_mean": [0.6, 0.8],
    ...                    "token_auroc_sd": [0.05, 0.02], "token_auroc_ci_lo": [0.5, 0.7],
    ...                    "token_auroc_ci_hi": [0.7, 0.9]})
    >>> fig = sweep_figure(df, baselines={})
    >>> list(fig.data[-1].y), list(fig.data[-2].y)  # the curve; its band is the CI
    ([0.6, 0.8], [0.7, 0.9, 0.7, 0.5])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from value_lens.analysis.sweep import SweepResult
from value_lens.errors import InputError
from value_lens.viz._traces import PALETTE as _PALETTE
from value_lens.viz._traces import (
    _band,
    _line_with_band,
    _sd_band,
    _titled,
    _unit_heatmap,
    require_columns,
)
from value_lens.viz.controls import CONTROLS, ci_columns, present

__all__ = [
    "DEFAULT_SWEEP_BASELINES",
    "SWEEP_CI_COLUMNS",
    "ci_label",
    "code_scatter_figure",
    "default_baselines",
    "layer_cosine_figure",
    "require_columns",
    "sweep_figure",
]

#: label -> (mean column, sd column or None) of the baselines that carry an sd, drawn when present
#: in the sweep table; the controls of :data:`value_lens.viz.controls.CONTROLS` follow them.
DEFAULT_SWEEP_BASELINES: dict[str, tuple[str, str | None]] = {
    "function-level score (paper's released metric), ± sd over splits": (
        "function_score_mean",
        "function_score_sd_splits",
    ),
}

#: the (lo, hi) columns of layer_sweep's cluster-bootstrap CI of the held-out token AUROC.
SWEEP_CI_COLUMNS = ("token_auroc_ci_lo", "token_auroc_ci_hi")

#: what ``token_auroc_sd`` is, in every label that shows it.
SD_OVER_SPLITS = "sd over overlapping splits (not a standard error)"


def ci_label(ci: SweepResult | Mapping[str, Any] | None) -> str:
    """E.g. "95% CI, jackknife over group", from a sweep's interval settings (a
    :class:`~value_lens.analysis.sweep.SweepResult` or its ``.ci``) when given; sweeps recorded
    before the jackknife (their ``ci`` has ``n_boot``) keep "cluster bootstrap".

    >>> ci_label({"level": 0.9, "cluster": "group"}), ci_label(None)
    ('90% CI, jackknife over group', 'CI, jackknife over clusters')
    >>> ci_label({"level": 0.95, "cluster": "sequence", "n_boot": 1000})
    '95% CI, cluster bootstrap over sequence'
    """
    meta = (ci.ci if isinstance(ci, SweepResult) else ci) or {}
    kind = "cluster bootstrap" if "n_boot" in meta else "jackknife"
    if "level" in meta and "cluster" in meta:
        return f"{meta['level']:.0%} CI, {kind} over {meta['cluster']}"
    return "CI, jackknife over clusters"


Baseline = tuple[str, str | None] | tuple[str, str, str]


def default_baselines(df: pd.DataFrame) -> dict[str, Baseline]:
    """The baselines :func:`sweep_figure` draws by default: the function-level score (± its sd
    over splits) and every control of :data:`~value_lens.viz.controls.CONTROLS` with a finite
    value in ``df``, each with its CI columns when ``df`` has them (the sign-aligned random
    directions: ± their sd when present, and their 95th percentile as a line of its own)."""
    out: dict[str, Baseline] = {}
    for label, (m, s) in DEFAULT_SWEEP_BASELINES.items():
        if present(df, m):
            out[label] = (m, s if s in df.columns else None)
    for c in CONTROLS[1:]:
        if not present(df, c.column):
            continue
        lo, hi = ci_columns(c.column)
        if c.upper is not None:
            out[c.label] = (c.column, "random_auroc_sd" if "random_auroc_sd" in df else None)
            if present(df, c.upper):
                out[f"{c.label}, 95th percentile"] = (c.upper, None)
        elif present(df, lo) and present(df, hi):
            out[c.label] = (c.column, lo, hi)
        else:
            out[c.label] = (c.column, None)
    return out


_SECONDARY = {c.column for c in CONTROLS if c.secondary}


def _baseline_traces(
    fig: go.Figure, df: pd.DataFrame, layer: str, base: Mapping[str, Baseline], ci_name: str
) -> None:
    """Each baseline's line with its band (CI or sd), dashed, secondary ones hidden."""
    dashes = ["dot", "dash", "dashdot", "longdash"]
    for i, (label, spec) in enumerate(base.items()):
        colour = _PALETTE[1 + i % (len(_PALETTE) - 1)]
        kw: dict[str, Any] = {"line": {"dash": dashes[i % len(dashes)]}}
        if spec[0] in _SECONDARY:
            kw["visible"] = "legendonly"
        if len(spec) == 3:
            band = (df[spec[1]], df[spec[2]])
            _line_with_band(
                fig, df[layer], df[spec[0]], band, label, colour, band_name=ci_name, **kw
            )
        else:
            sd = None if spec[1] is None else df[spec[1]]
            _band(fig, df[layer], df[spec[0]], sd, label, colour, **kw)


def sweep_figure(
    sweep: pd.DataFrame | SweepResult,
    *,
    ci_settings: Mapping[str, Any] | None = None,
    layer: str = "layer",
    mean: str = "token_auroc_mean",
    sd: str | None = "token_auroc_sd",
    ci: tuple[str, str] | None = SWEEP_CI_COLUMNS,
    baselines: Mapping[str, str | Baseline] | None = None,
    name: str = "value axis (held-out token AUROC)",
    title: str = "Held-out AUROC by layer",
    yaxis: str = "AUROC",
) -> go.Figure:
    """Per-layer metric with an uncertainty band, and baseline curves.

    The main band is the cluster CI (``ci`` columns, see
    :class:`value_lens.analysis.sweep.ClusterCI`) when ``df`` has them, else ± the ``sd`` column. The
    sd of :func:`~value_lens.analysis.sweep.layer_sweep` is over splits that share most training
    criteria, so it is not a standard error; the subtitle and the hover say which band is drawn.

    Args:
        sweep: a :class:`~value_lens.analysis.sweep.SweepResult` or its table (one row
            per layer).
        ci_settings: the bootstrap's settings named in the band's label (default: the
            result's ``.ci``; pass them with a bare table, e.g. one read back from disk).
        layer, mean, sd: column names (``sd=None``, or the default ``token_auroc_sd`` absent
            from ``df``: no sd band or sd in the hover).
        ci: the ``(lo, hi)`` columns of a confidence interval, used when present (``None``:
            never).
        baselines: label -> mean column, (mean column, sd column or None) or (mean column,
            CI low column, CI high column); default :func:`default_baselines` (the
            function-level score and the controls present in ``df``: DiD axis, matched and
            placebo AUROCs, position scores, random directions, shuffled null). Columns named
            explicitly must exist. Secondary controls (DiD matched/placebo, relative position,
            token index, shuffled null) start hidden; a click on the legend shows them.
        name, title, yaxis: labels.

    Returns:
        A figure whose last trace is the main curve (``x`` = layers, ``y`` = ``df[mean]``,
        ``customdata`` = sd, CI low, CI high per layer, NaN where absent); baselines come
        before it, each band just before its line.
    """
    if isinstance(sweep, SweepResult):
        df, ci_settings = sweep.table, sweep.ci if ci_settings is None else ci_settings
    else:
        df = sweep
    require_columns(df, [], "sweep_figure")
    if sd == "token_auroc_sd" and sd not in df.columns:
        sd = None  # the default sd column is optional (the CI is the band)
    if baselines is None:
        base: dict[str, Baseline] = default_baselines(df)
    else:
        base = {k: (v, None) if isinstance(v, str) else v for k, v in baselines.items()}
    cols = [layer, mean, sd] + [c for spec in base.values() for c in spec]
    df = require_columns(df, cols, "sweep_figure").sort_values(layer)
    use_ci = ci is not None and set(ci) <= set(df.columns) and df[list(ci)].notna().any().all()
    ci_name = ci_label(ci_settings)
    fig = go.Figure()
    _baseline_traces(fig, df, layer, base, ci_name)
    nan = np.full(len(df), np.nan)
    custom = np.stack(
        [
            nan if sd is None else df[sd].to_numpy(float),
            df[ci[0]].to_numpy(float) if use_ci and ci else nan,
            df[ci[1]].to_numpy(float) if use_ci and ci else nan,
        ],
        axis=1,
    )
    hover = f"layer %{{x}}<br>{name}: %{{y:.3f}}"
    if sd is not None:
        hover += f"<br>{SD_OVER_SPLITS}: %{{customdata[0]:.3f}}"
    if use_ci and ci:
        band: tuple[Any, Any] | None = (df[ci[0]], df[ci[1]])
        band_name = ci_name
        hover += f"<br>{band_name}: [%{{customdata[1]:.3f}}, %{{customdata[2]:.3f}}]"
        note = f"band: {band_name} (of the mean over splits)"
    elif sd is not None:
        band, band_name = _sd_band(df[mean], df[sd]), f"± {SD_OVER_SPLITS}"
        note = f"band: ± {SD_OVER_SPLITS}: the splits share most training criteria"
    else:
        band, band_name, note = None, "", ""
    _line_with_band(
        fig,
        df[layer],
        df[mean],
        band,
        name,
        _PALETTE[0],
        band_name=band_name,
        customdata=custom,
        hovertemplate=hover + "<extra></extra>",
    )
    fig.add_hline(y=0.5, line={"color": "#bbbbbb", "width": 1})
    full_title = f"{title}<br><sup>{note}</sup>" if note else title
    return _titled(
        fig, full_title, "layer (block output)", yaxis, legend={"orientation": "h", "y": -0.2}
    )


def layer_cosine_figure(
    matrix: Any,
    layers: Sequence[int] | None = None,
    *,
    title: str = "Cosine between layer directions",
) -> go.Figure:
    """Heatmap of the cosine between the directions of every pair of layers.

    Args:
        matrix: ``[k, k]`` tensor/array, a square DataFrame (index = columns = layers), or a
            :class:`~value_lens.fitting.axis.ValueAxis` (its :meth:`layer_cosine_matrix`).
        layers: the ``k`` layer labels (default: the DataFrame index, the axis' layers, or 0..k-1).
    """
    from value_lens.fitting.axis import ValueAxis

    if isinstance(matrix, ValueAxis):
        layers = list(matrix.layers) if layers is None else layers
        matrix = matrix.layer_cosine_matrix()
    if isinstance(matrix, pd.DataFrame):
        layers = list(matrix.index) if layers is None else layers
        matrix = matrix.to_numpy()
    m = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise InputError(f"the cosine matrix must be square, got shape {m.shape}")
    layers = list(range(m.shape[0])) if layers is None else list(layers)
    if len(layers) != m.shape[0]:
        raise InputError(f"{len(layers)} layer labels for a {m.shape[0]}x{m.shape[0]} matrix")
    return _unit_heatmap(
        m,
        layers,
        layers,
        colorbar="cosine",
        hovertemplate="layers %{y} and %{x}<br>cosine %{z:.3f}<extra></extra>",
        title=title,
        x_title="layer",
        y_title="layer",
        yaxis={"autorange": "reversed", "scaleanchor": "x"},
    )


def code_scatter_figure(
    df: pd.DataFrame,
    *,
    kind: str = "kind",
    correct: str = "correct_whole",
    corrupted: str = "corrupted_whole",
    title: str = "Value of correct vs corrupted code",
    cols: int = 4,
) -> go.Figure:
    """Per-item scatter of correct (x) vs corrupted (y) value, one panel per corruption kind.

    Points below the diagonal are items where the correct code scores higher. Each panel's title
    gives the fraction of such items. The defaults read the table of
    :func:`value_lens.evals.run_code_suite` (whole-code means; pass
    ``correct="correct_window", corrupted="corrupted_window"`` for the window after the change).
    """
    df = require_columns(df, [kind, correct, corrupted], "code_scatter_figure")
    kinds = list(dict.fromkeys(df[kind].tolist()))
    ncols = min(cols, len(kinds))
    nrows = -(-len(kinds) // ncols)
    titles = []
    for k in kinds:
        sub = df[df[kind] == k]
        titles.append(
            f"{k}: correct > corrupted {100 * (sub[correct] > sub[corrupted]).mean():.0f}%"
        )
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles, shared_xaxes=False)
    lo = float(np.nanmin(df[[correct, corrupted]].to_numpy()))
    hi = float(np.nanmax(df[[correct, corrupted]].to_numpy()))
    for i, k in enumerate(kinds):
        sub = df[df[kind] == k]
        r, c = i // ncols + 1, i % ncols + 1
        fig.add_trace(
            go.Scatter(
                x=list(sub[correct]),
                y=list(sub[corrupted]),
                mode="markers",
                name=str(k),
                marker={"size": 5, "color": _PALETTE[i % len(_PALETTE)], "opacity": 0.7},
                showlegend=False,
            ),
            row=r,
            col=c,
        )
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                line={"color": "#999", "dash": "dot"},
                hoverinfo="skip",
                showlegend=False,
            ),
            row=r,
            col=c,
        )
        fig.update_xaxes(title_text="correct", row=r, col=c)
        fig.update_yaxes(title_text="corrupted", row=r, col=c)
    fig.update_layout(
        title={"text": title},
        template="plotly_white",
        height=320 * nrows,
        width=max(420, 300 * ncols),
    )
    return fig
