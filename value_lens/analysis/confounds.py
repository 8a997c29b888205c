"""Is the value axis more than a position detector? Position-matched and placebo controls.

In an ICRL turn every AFTER token comes after every BEFORE token, so any direction that tracks
position within the turn separates them on held-out criteria. :func:`value_lens.analysis.sweep.layer_sweep`
therefore scores, on each split's held-out tokens:

* **position baselines**: the score is the token's position in its turn (``t - turn_start``,
  ``turn_position_auroc``), that position over the turn's length (``relative_position_auroc``)
  or minus the tokens left to the turn's end (``end_proximity_auroc``);
* **matched AUROC** (:func:`matched_auroc`): the axis's AUROC over AFTER/BEFORE pairs at the
  *same exact distance to the end of their turn* only. Strata are exact distances (pass coarser
  ``stratum`` labels, e.g. ``to_end // 4``, to bin); each stratum counts with its
  ``n_pos * n_neg`` pairs, so the result is the fraction of within-stratum pairs ranked right.
  A direction that only tracks position scores 0.5;
* **placebo AUROC**: the axis on placebo turns (failed attempts cut at a pseudo-reward position,
  ``icrl.label(..., placebo=True)``): PLACEBO_AFTER vs PLACEBO_BEFORE. Position separates them
  as well as it separates real turns; value does not (about 0.5);
* the **difference-in-differences axis** (``did_*``): the same scores for
  ``mean_g[(AFTER - BEFORE) - (PLACEBO_AFTER - PLACEBO_BEFORE)]`` fitted on the training
  criteria, which cancels what real and placebo turns share.

:func:`value_beyond_position` turns those numbers into one sentence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from value_lens.analysis.clusters import ClusterAUROC
from value_lens.analysis.metrics import percentile_ci
from value_lens.errors import InputError

__all__ = [
    "SplitPool",
    "did_weights",
    "matched_auroc",
    "position_scores",
    "value_beyond_position",
]


def matched_auroc(pos: Any, neg: Any, pos_stratum: Any, neg_stratum: Any) -> float:
    """AUROC over positive/negative pairs in the same stratum only (NaN if there are none).

    Equals ``sum_s U_s / sum_s n_pos_s n_neg_s`` with ``U_s`` the Mann-Whitney count (ties
    half) within stratum ``s``: each stratum is weighted by its number of pairs.

    Example:
        >>> # stratum 0: 3 > 2 (a win); stratum 1: 1 < 5 (a loss); stratum 2 has no positive
        >>> matched_auroc([3, 1], [2, 5, 9], pos_stratum=[0, 1], neg_stratum=[0, 1, 2])
        0.5
    """
    cp, cn = np.zeros(np.size(pos), dtype=np.int64), np.zeros(np.size(neg), dtype=np.int64)
    return ClusterAUROC.of(
        pos, neg, pos_cluster=cp, neg_cluster=cn, pos_stratum=pos_stratum, neg_stratum=neg_stratum
    ).auroc()


def position_scores(position: Any, start: Any, to_end: Any) -> dict[str, np.ndarray]:
    """The position baselines' scores per token (higher = predicted AFTER).

    ``turn_position``: ``t - turn_start``; ``relative_position``: that over the turn's length
    ``turn_end - turn_start``; ``end_proximity``: ``-(turn_end - t)``; ``position``: the
    absolute token index in the sequence (mostly measures how long the conversation is).

    Example:
        >>> {k: v.tolist() for k, v in position_scores([12, 13], [10, 10], [3, 2]).items()}
        ... # doctest: +NORMALIZE_WHITESPACE
        {'turn_position': [2.0, 3.0], 'relative_position': [0.4, 0.6],
         'end_proximity': [-3.0, -2.0], 'position': [12.0, 13.0]}
    """
    t, s, e = (np.asarray(a, dtype=np.float64) for a in (position, start, to_end))
    return {
        "turn_position": t - s,
        "relative_position": (t - s) / np.maximum(t - s + e, 1.0),
        "end_proximity": -e,
        "position": t,
    }


def did_weights(size: int, n_groups: int, train: np.ndarray) -> np.ndarray | None:
    """Coefficients of the DiD direction ``mean_g (d_g - p_g)`` over ``train`` on the basis
    ``[d_1..d_G, p_1..p_G, ...]`` (``None`` when ``train`` is empty).

    Example:
        >>> did_weights(5, 2, np.array([1])).tolist()
        [0.0, 1.0, 0.0, -1.0, 0.0]
    """
    if len(train) == 0:
        return None
    w = np.zeros(size)
    w[train], w[n_groups + train] = 1.0 / len(train), -1.0 / len(train)
    return w


class SplitPool:
    """Per-layer, per-split AUROCs of one metric and their cluster-bootstrap resamples.

    The summary averages over the splits where the metric is defined, and its CI is the
    percentile interval of that average over resamples (every split resampled with the same
    cluster draws, as ``token_auroc_ci_lo/hi``).
    """

    def __init__(self, n_layers: int, n_splits: int, draws: np.ndarray | None) -> None:
        self.draws = draws
        self.point = np.full((n_layers, n_splits), np.nan)
        n_boot = 0 if draws is None else len(draws)
        self.boot = np.full((n_layers, n_splits, n_boot), np.nan)

    def add(self, k: int, s: int, parts: ClusterAUROC | None) -> float:
        """Record split ``s`` at layer index ``k`` (``None``: undefined there); the AUROC."""
        if parts is None:
            return math.nan
        self.point[k, s] = parts.auroc()
        if self.draws is not None:
            self.boot[k, s] = parts.resample(self.draws)
        return float(self.point[k, s])

    def summary(self, k: int, level: float) -> tuple[float, float, float]:
        """``(mean over splits, ci_lo, ci_hi)`` at layer index ``k`` (NaN where undefined)."""
        ok = np.isfinite(self.point[k])
        if not ok.any():
            return (math.nan,) * 3
        mean = float(self.point[k, ok].mean())
        if self.draws is None:
            return mean, math.nan, math.nan
        boot = self.boot[k, ok].mean(0)
        if not np.isfinite(boot).any():
            return mean, math.nan, math.nan
        return (mean, *percentile_ci(boot, level))


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.2f}"


def value_beyond_position(df: pd.DataFrame, layer: int | None = None) -> str:
    """One sentence: does the axis carry value information beyond position, and how much?

    Reads a :func:`~value_lens.analysis.sweep.layer_sweep` table at ``layer`` (default: the layer with
    the best held-out ``token_auroc_mean``). The verdict rests on ``matched_auroc`` (AUROC over
    pairs at equal distance to the turn's end): value beyond position if its CI lies above 0.5
    (or, without a CI, it exceeds 0.55), none if it covers 0.5; the share of the held-out
    AUROC's distance from 0.5 that survives matching says how much. Placebo turns and the
    DiD axis are quoted when the data had them.

    Example:
        >>> df = pd.DataFrame({"layer": [3], "token_auroc_mean": [0.9], "matched_auroc": [0.8],
        ...     "matched_auroc_ci_lo": [0.7], "matched_auroc_ci_hi": [0.85],
        ...     "placebo_auroc": [0.52], "did_auroc_mean": [0.88], "did_matched_auroc": [0.79]})
        >>> print(value_beyond_position(df))  # doctest: +NORMALIZE_WHITESPACE
        At layer 3 the axis carries value information beyond position: its held-out AUROC of
        0.90 is 0.80 [0.70, 0.85] over AFTER/BEFORE pairs at equal distance to the turn's end
        (0.5 = position only; 75% of its margin over chance survives), placebo turns score
        0.52 against 0.90 on real turns, and the difference-in-differences axis scores 0.88
        (0.79 position-matched).
    """
    if df.empty or "token_auroc_mean" not in df or "matched_auroc" not in df:
        raise InputError("value_beyond_position needs a layer_sweep table (with matched_auroc)")
    if layer is None:
        row = df.loc[df["token_auroc_mean"].idxmax()]
    elif layer in set(df["layer"]):
        row = df.loc[df["layer"] == layer].iloc[0]
    else:
        raise InputError(f"layer {layer} is not in the sweep; it has {list(df['layer'])}")
    get = lambda k: float(row.get(k, math.nan))  # noqa: E731
    tok, m, lo, hi = (
        get(k)
        for k in ("token_auroc_mean", "matched_auroc", "matched_auroc_ci_lo", "matched_auroc_ci_hi")
    )
    has_ci = np.isfinite(lo) and np.isfinite(hi)
    above = lo > 0.5 if has_ci else m > 0.55
    below = hi < 0.5 if has_ci else m < 0.45
    if not np.isfinite(m):
        verdict = "cannot be checked for value information beyond position (no matched pairs)"
    elif above:
        verdict = "carries value information beyond position"
    elif below:
        verdict = "ranks BEFORE above AFTER once position is matched (no value beyond position)"
    else:
        verdict = "shows no value information beyond position"
    ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if has_ci else ""
    share = (m - 0.5) / (tok - 0.5) if abs(tok - 0.5) > 1e-9 else math.nan
    kept = (
        f"; {max(share, 0.0):.0%} of its margin over chance survives" if np.isfinite(share) else ""
    )
    out = (
        f"At layer {int(row['layer'])} the axis {verdict}: its held-out AUROC of {_fmt(tok)} is "
        f"{_fmt(m)}{ci} over AFTER/BEFORE pairs at equal distance to the turn's end "
        f"(0.5 = position only{kept})"
    )
    plc, did, did_m = get("placebo_auroc"), get("did_auroc_mean"), get("did_matched_auroc")
    if not np.isfinite(plc):
        return out + (
            ", and no placebo turns were labelled (icrl.label(..., placebo=True) adds the "
            "placebo and difference-in-differences controls)."
        )
    return out + (
        f", placebo turns score {_fmt(plc)} against {_fmt(tok)} on real turns, and the "
        f"difference-in-differences axis scores {_fmt(did)} ({_fmt(did_m)} position-matched)."
    )
