"""Is the value axis more than a position detector? The position design and its verdict.

In an ICRL turn every AFTER token comes after every BEFORE token, so any direction that tracks
position within the turn separates them on held-out criteria. The sweep
(:func:`value_lens.analysis.sweep.layer_sweep`) therefore reports, for the axis, the DiD axis,
the position baselines and random directions:

* **the difference in discontinuities** (``rd_*``; :mod:`value_lens.analysis.discontinuity`):
  the jump of the score at the reward token net of smooth trends in tokens since the turn's
  start and to its end and of a fixed effect per turn (``rd_jump``), minus the same jump at
  placebo cuts with the same geometry (``rd_placebo_jump``: failed attempts cut to match their
  own sequence's real turn; ``rd_pseudo_jump``: the real turn's BEFORE span cut at a pseudo
  reward). ``rd_value = rd_jump - rd_placebo_jump`` is the headline: value beyond position, in
  within-turn sd of the score, with a paired leave-one-criterion-out interval;
* **position baselines**: the score is the token's position in its turn (``turn_position``),
  that position over the turn's length (``relative_position``), minus the tokens left to the
  turn's end (``end_proximity``) or the absolute index (``position``);
* **matched AUROC** (:func:`matched_auroc`): the AUROC over AFTER/BEFORE pairs in the same
  position stratum only, strata being exact tokens since the start *and* to the end (so equal
  turn length and place: a score that is any function of those two is exactly at 0.5);
* **placebo AUROC**: the axis on placebo turns, and the baselines there, to see whether the
  placebo is comparable;
* **between- and within-turn AUROCs**: the held-out AUROC split into pairs from two different
  turns and pairs from one turn (which any position score ranks almost perfectly).

:func:`value_beyond_position` turns ``rd_value`` and its interval into a :class:`PositionVerdict`.

Example:
    >>> position_scores([12, 13], [10, 10], [3, 2])["relative_position"].tolist()
    [0.4, 0.6]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from value_lens.analysis.clusters import ClusterAUROC
from value_lens.analysis.discontinuity import Discontinuity, discontinuity
from value_lens.errors import InputError

__all__ = [
    "BASELINES",
    "Discontinuity",
    "PositionVerdict",
    "did_weights",
    "discontinuity",
    "matched_auroc",
    "position_scores",
    "position_strata",
    "value_beyond_position",
]

BASELINES = ("turn_position", "relative_position", "end_proximity", "position")


def position_strata(since_start: Any, to_end: Any, width: int = 1) -> np.ndarray:
    """Stratum keys on both distances: tokens since the turn's start and to its end, binned by
    ``width`` tokens (1: exact, hence equal turn length and equal place in it).

    >>> position_strata([0, 0, 4], [9, 8, 5]).tolist() == [9, 8, (4 << 32) + 5]
    True
    """
    a = np.asarray(since_start, dtype=np.int64).reshape(-1)
    b = np.asarray(to_end, dtype=np.int64).reshape(-1)
    return (a // width) * (1 << 32) + b // width


def matched_auroc(
    pos: Any,
    neg: Any,
    *,
    pos_since: Any,
    pos_to_end: Any,
    neg_since: Any,
    neg_to_end: Any,
    width: int = 1,
) -> tuple[float, int]:
    """AUROC over positive/negative pairs in the same position stratum only, and the pair count.

    Strata are :func:`position_strata` of both distances, so with ``width=1`` only tokens at the
    same place in turns of the same length are compared and a score that depends on position
    alone ties: exactly 0.5. Each stratum counts with its ``n_pos * n_neg`` pairs; NaN without
    a pair.

    Example:
        >>> # a pure since-start score: positives and negatives at equal (since, to_end) tie
        >>> matched_auroc([3, 5], [3, 9], pos_since=[3, 5], pos_to_end=[2, 1],
        ...               neg_since=[3, 9], neg_to_end=[2, 0])
        (0.5, 1)
    """
    sp = position_strata(pos_since, pos_to_end, width)
    sn = position_strata(neg_since, neg_to_end, width)
    cp, cn = np.zeros(sp.size, dtype=np.int64), np.zeros(sn.size, dtype=np.int64)
    parts = ClusterAUROC.of(
        pos, neg, pos_cluster=cp, neg_cluster=cn, pos_stratum=sp, neg_stratum=sn
    )
    keys, inv = np.unique(np.concatenate([sp, sn]), return_inverse=True)
    n_p = np.bincount(inv[: sp.size], minlength=keys.size)
    n_n = np.bincount(inv[sp.size :], minlength=keys.size)
    return parts.auroc(), int((n_p * n_n).sum())


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


Verdict = Literal["value", "position", "inconclusive"]


@dataclass(frozen=True)
class PositionVerdict:
    """Value beyond position at one layer, from the difference in discontinuities.

    Attributes:
        verdict: ``"value"`` (the interval of ``rd_value`` lies above 0), ``"position"`` (it
            excludes every jump larger than ``smallest_effect``: an equivalence test) or
            ``"inconclusive"``.
        layer / estimate / ci_lo / ci_hi: the layer and ``rd_value`` with its interval, in
            within-turn sd of the score.
        smallest_effect: the equivalence margin.
        placebo: what the real jump was compared with (``"placebo turns"`` or ``"pseudo-cuts"``).
        sentence: the verdict in words, with its controls.
    """

    verdict: Verdict
    layer: int
    estimate: float
    ci_lo: float
    ci_hi: float
    smallest_effect: float
    placebo: str
    sentence: str

    def __str__(self) -> str:
        return self.sentence


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"


def _row(table: pd.DataFrame, layer: int | None) -> pd.Series:
    if table.empty or "rd_value" not in table or "token_auroc_mean" not in table:
        raise InputError(
            "value_beyond_position needs a layer_sweep result (with rd_value); rerun the sweep"
        )
    if layer is None:
        return table.loc[table["token_auroc_mean"].idxmax()]
    if layer not in set(table["layer"]):
        raise InputError(f"layer {layer} is not in the sweep; it has {list(table['layer'])}")
    return table.loc[table["layer"] == layer].iloc[0]


def _controls(get: Any) -> str:
    m, pairs = get("matched_auroc"), get("matched_n_pairs")
    matched = (
        f"matched AUROC {_fmt(m)} [{_fmt(get('matched_auroc_ci_lo'))}, "
        f"{_fmt(get('matched_auroc_ci_hi'))}] (position baselines there: "
        f"{_fmt(get('end_proximity_matched_auroc'))}, {_fmt(get('turn_position_matched_auroc'))})"
        if np.isfinite(m)
        else f"not enough matched pairs for a matched AUROC ({_fmt(pairs, 0)} pairs a split)"
    )
    return (
        f"Held-out AUROC {_fmt(get('token_auroc_mean'))}: {_fmt(get('token_auroc_between'))} "
        f"between turns, {_fmt(get('token_auroc_within'))} within turns; {matched}; placebo "
        f"turns {_fmt(get('placebo_auroc'))} (end proximity there "
        f"{_fmt(get('placebo_end_proximity_auroc'))}, on real turns "
        f"{_fmt(get('end_proximity_auroc'))}); random directions' rd_value p95 "
        f"{_fmt(get('rd_value_random_p95'))}."
    )


def value_beyond_position(
    result: Any, layer: int | None = None, *, smallest_effect: float | None = None
) -> PositionVerdict:
    """The verdict on value beyond position at ``layer`` (default: the best held-out layer).

    Reads ``rd_value`` (the real turns' jump at the reward token minus the placebo turns'
    jump, or the pseudo-cuts' when the data have no placebo turns) and its interval from a
    :class:`~value_lens.analysis.sweep.SweepResult` or its table. ``smallest_effect`` (default
    the sweep's ``SweepConfig.smallest_effect``, else 0.1 within-turn sd) is the margin of the
    equivalence test behind ``"position"``. The AUROC controls are quoted as descriptions.

    Example:
        >>> df = pd.DataFrame({"layer": [3], "token_auroc_mean": [0.9], "rd_value": [0.02],
        ...     "rd_value_ci_lo": [-0.3], "rd_value_ci_hi": [0.34], "rd_placebo_jump": [0.5]})
        >>> v = value_beyond_position(df)
        >>> v.verdict, v.sentence.split(":")[0]
        ('inconclusive', 'At layer 3 the axis cannot be told apart from position')
    """
    table = getattr(result, "table", result)
    if smallest_effect is None:
        smallest_effect = float(getattr(getattr(result, "config", None), "smallest_effect", 0.1))
    row = _row(table, layer)
    get = lambda k: float(row.get(k, math.nan))  # noqa: E731
    est, lo, hi = get("rd_value"), get("rd_value_ci_lo"), get("rd_value_ci_hi")
    placebo = "placebo turns" if np.isfinite(get("rd_placebo_jump")) else "pseudo-cuts"
    if np.isfinite(lo) and lo > 0:
        verdict: Verdict = "value"
        head = "carries value information beyond position"
    elif np.isfinite(hi) and hi < smallest_effect:
        verdict = "position"
        head = "shows no value information beyond position" + (
            " (the placebo jump exceeds the real one)" if hi < -smallest_effect else ""
        )
    else:
        verdict = "inconclusive"
        head = "cannot be told apart from position"
    ci = f"[{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(lo) else "(no interval)"
    few = (
        " Fewer than 10 held-out clusters in a split: read the interval with care."
        if bool(row.get("few_clusters", False))
        else ""
    )
    sentence = (
        f"At layer {int(row['layer'])} the axis {head}: the jump at the reward token net of "
        f"position, minus the jump at {placebo} cut alike, is {_fmt(est)} {ci} within-turn sd "
        f"(smallest effect of interest {smallest_effect:g}; 'position' needs the interval below "
        f"it). {_controls(get)}{few}"
    )
    return PositionVerdict(
        verdict, int(row["layer"]), est, lo, hi, float(smallest_effect), placebo, sentence
    )
