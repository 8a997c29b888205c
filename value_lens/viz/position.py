"""Value beyond position at one layer: the discontinuities at the reward token and at the
placebo cuts, and their difference (what :func:`value_lens.analysis.confounds.value_beyond_position`
reads), as a table and a forest plot in within-turn sd of the score.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"layer": [2], "token_auroc_mean": [0.8], "rd_jump": [0.5],
    ...                    "rd_jump_ci_lo": [0.3], "rd_jump_ci_hi": [0.7], "rd_value": [0.1],
    ...                    "rd_value_ci_lo": [-0.2], "rd_value_ci_hi": [0.4]})
    >>> discontinuity_table(df)[["control", "value", "lo"]].values.tolist()
    [['axis: jump at the reward token', 0.5, 0.3], ['axis: value beyond position (reward minus placebo jump)', 0.1, -0.2]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from value_lens.errors import InputError
from value_lens.viz.controls import Control, ci_columns, forest_figure, layer_row, present

__all__ = ["JUMPS", "discontinuity_figure", "discontinuity_table"]

#: the discontinuities shown, in display order
JUMPS: tuple[Control, ...] = (
    Control(
        "rd_jump",
        "axis: jump at the reward token",
        "rd_jump",
        "jump at the reward token net of each turn's level and trend and smooth position",
    ),
    Control(
        "rd_placebo_jump",
        "axis: jump at placebo turns' cuts",
        "rd_placebo_jump",
        "failed attempts cut like their sequence's real turn",
    ),
    Control(
        "rd_pseudo_jump",
        "axis: jump at within-turn pseudo-cuts",
        "rd_pseudo_jump",
        "the real turn's BEFORE span cut at a pseudo-reward: same depth, no reward",
    ),
    Control(
        "rd_value",
        "axis: value beyond position (reward minus placebo jump)",
        "rd_value",
        "the verdict's estimate: difference in discontinuities",
    ),
    Control(
        "rd_value_pseudo",
        "axis: reward minus pseudo-cut jump",
        "rd_value_pseudo",
        "the same difference against the pseudo-cuts",
    ),
    Control(
        "did_rd_value",
        "DiD axis: value beyond position",
        "did_rd_value",
        "the difference in discontinuities of the DiD axis",
    ),
    Control(
        "relative_position_rd_value",
        "relative position: value beyond position",
        "relative_position_rd_value",
        "a pure position score: the design's null (0)",
    ),
    Control(
        "random",
        "sign-aligned random directions",
        "rd_value_random_mean",
        "random directions oriented on the training criteria (mean; whisker: 95th pct)",
        upper="rd_value_random_p95",
    ),
)


def discontinuity_table(df: pd.DataFrame, layer: int | None = None) -> pd.DataFrame:
    """The discontinuities present in ``df`` at ``layer`` (default the best held-out layer):
    ``control``, ``column``, ``layer``, ``value`` (within-turn sd), ``lo``, ``hi``, ``reads``."""
    at, row = layer_row(df, layer)
    out = []
    for c in JUMPS:
        if not present(df, c.column):
            continue
        lo_c, hi_c = ci_columns(c.column)
        if c.upper is not None:
            lo, hi = np.nan, float(row.get(c.upper, np.nan))
        else:
            lo, hi = float(row.get(lo_c, np.nan)), float(row.get(hi_c, np.nan))
        out.append(
            {
                "control": c.label,
                "column": c.column,
                "layer": at,
                "value": float(row[c.column]),
                "lo": lo,
                "hi": hi,
                "reads": c.reads,
            }
        )
    return pd.DataFrame(out)


def discontinuity_figure(
    df: pd.DataFrame, layer: int | None = None, *, smallest_effect: float = 0.1
) -> go.Figure:
    """A forest plot of :func:`discontinuity_table` with the equivalence margin shaded."""
    t = discontinuity_table(df, layer)
    if t.empty:
        raise InputError("this sweep table has no discontinuity columns (rd_*); rerun the sweep")
    fig = forest_figure(
        t,
        highlight="rd_value",
        reference=0.0,
        title=f"Value beyond position at layer {int(t['layer'].iloc[0])}<br><sup>jumps in "
        f"within-turn sd of the score; shaded: |jump| < {smallest_effect:g}, the smallest "
        "effect of interest</sup>",
        xlabel="jump at the cut (within-turn sd)",
    )
    fig.add_vrect(
        x0=-smallest_effect, x1=smallest_effect, fillcolor="#dddddd", opacity=0.4, line_width=0
    )
    return fig
