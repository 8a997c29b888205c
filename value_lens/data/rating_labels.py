"""High vs low self-ratings as labelled tokens, and summaries of a set of ratings.

:func:`label_ratings` is :meth:`value_lens.data.self_rating.Ratings.labelled`'s work;
:func:`distribution` and :func:`retest` feed :meth:`~value_lens.data.self_rating.Ratings.summary`.

Example:
    >>> retest(np.array([[10.0, 20.0], [50.0, 50.0], [90.0, 80.0], [30.0, np.nan]]))["n_pairs"]
    3
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from value_lens.data.tokens import AFTER, BEFORE, IGNORE, LabelledTokens
from value_lens.errors import InputError

__all__ = ["RatingSplit", "distribution", "label_ratings", "retest"]


@dataclass(frozen=True)
class RatingSplit:
    """High vs low within a task type.

    ``mode="median"`` (default): low below the task's median rating, high above it, ties
    dropped. ``"tertiles"``: low at or below the lower tertile, high at or above the upper one
    (strict when they coincide). ``"fixed"``: low at or below ``low``, high at or above ``high``.

    >>> RatingSplit().thresholds(np.array([10.0, 50.0, 90.0]))
    (50.0, 50.0)
    """

    mode: str = "median"
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("median", "tertiles", "fixed"):
            raise InputError(f"mode must be 'median', 'tertiles' or 'fixed', got {self.mode!r}")
        if self.mode == "fixed" and not (
            self.low is not None and self.high is not None and self.low < self.high
        ):
            raise InputError("mode='fixed' needs thresholds low < high")

    def thresholds(self, r: np.ndarray) -> tuple[float, float]:
        if self.mode == "fixed":
            assert self.low is not None and self.high is not None
            return float(self.low), float(self.high)
        if self.mode == "median":
            m = float(np.median(r))
            return m, m
        lo, hi = np.quantile(r, [1 / 3, 2 / 3])
        return float(lo), float(hi)

    def side(self, v: float, lo: float, hi: float) -> int:
        """``AFTER`` (high), ``BEFORE`` (low) or ``IGNORE`` (between, or tied at the split)."""
        strict = self.mode == "median" or lo == hi
        if (v > hi) if strict else (v >= hi):
            return AFTER
        if (v < lo) if strict else (v <= lo):
            return BEFORE
        return IGNORE


def _sequence(
    p: Any, seq: torch.Tensor, side: int, rating: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """One labelled state: ids, labels (the last token), targets (the rating there), meta."""
    lab = torch.full((seq.numel(),), IGNORE, dtype=torch.long)
    lab[-1] = side
    tgt = torch.full((seq.numel(),), float("nan"))
    tgt[-1] = rating
    where = {"turn_start": seq.numel() - 1, "turn_end": seq.numel()}
    info = {"conversation_id": p.source_id, "step": p.step, "rating": rating}
    return seq, lab, tgt, {**info, **where, **dict(p.meta)}


def label_ratings(
    points: Sequence[Any],
    states: Mapping[int, torch.Tensor],
    vals: np.ndarray,
    split: RatingSplit,
) -> tuple[LabelledTokens, dict[str, Any]]:
    """The states just before the rating token, labelled high (``AFTER``) or low (``BEFORE``)
    within each task type (see :class:`RatingSplit`), and a report.

    ``points`` are the rated points (``task``, ``source_id``, ``step``, ``meta``), ``states``
    the token ids up to each point's state (by point index), ``vals`` the ``[points, repeats]``
    parsed ratings (NaN for none).

    One sequence per rated point with a parsed rating (repeat 0's answer decides where the
    rating token is; the rating is the mean over parsed repeats): its last token is the
    labelled state, ``targets`` holds the rating there, the group is the task type and
    ``meta`` the source (``conversation_id``, for cluster intervals), the rating and the
    point's progress facts. The report gives the thresholds per task, the counts of high,
    low and middle points, task types dropped for lacking a side, and points without a
    parsed rating.
    """
    has = np.isfinite(vals).any(axis=1)
    mean = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in vals])
    tasks = sorted({points[i].task for i in range(len(points)) if has[i]})
    ids, labels, groups, targets, metas = [], [], [], [], []
    report: dict[str, Any] = {"split": asdict(split), "thresholds": {}, "counts": {}}
    report.update(dropped_tasks=[], unrated_points=int((~has).sum()))
    for t in tasks:
        rows = [i for i in range(len(points)) if has[i] and points[i].task == t]
        lo, hi = split.thresholds(mean[rows])
        side = {i: split.side(mean[i], lo, hi) for i in rows}
        n_hi = sum(v == AFTER for v in side.values())
        n_lo = sum(v == BEFORE for v in side.values())
        report["thresholds"][t] = [lo, hi]
        report["counts"][t] = {"high": n_hi, "low": n_lo, "middle": len(rows) - n_hi - n_lo}
        if not n_hi or not n_lo:
            report["dropped_tasks"].append(t)
            continue
        for i in rows:
            if side[i] != IGNORE and i in states:
                seq, lab, tgt, meta = _sequence(points[i], states[i], side[i], float(mean[i]))
                ids.append(seq)
                labels.append(lab)
                groups.append(t)
                targets.append(tgt)
                metas.append(meta)
    if not ids:
        raise InputError(
            f"no task type has both high and low ratings ({report['counts']}); rate more "
            "points or use RatingSplit(mode='fixed', ...) thresholds that split the ratings"
        )
    return LabelledTokens(ids, labels, groups, targets=targets, meta=metas), report


def distribution(vals: np.ndarray) -> dict[str, Any]:
    """Summary of the parsed ratings: moments, quantiles, ties, a histogram by tens."""
    if vals.size == 0:
        return {"n": 0}
    counts = Counter(vals.tolist())
    hist, _ = np.histogram(vals, bins=np.linspace(0, 100, 11))
    q = np.quantile(vals, [0, 0.25, 0.5, 0.75, 1]).tolist()
    return {
        "n": int(vals.size),
        "mean": float(vals.mean()),
        "sd": float(vals.std(ddof=1)) if vals.size > 1 else float("nan"),
        "quantiles": dict(zip(("min", "q25", "median", "q75", "max"), q, strict=True)),
        "n_distinct": len(counts),
        "top_share": max(counts.values()) / vals.size,
        "top_values": [v for v, _ in counts.most_common(5)],
        "histogram_by_10": hist.tolist(),
    }


def retest(v: np.ndarray) -> dict[str, Any]:
    """Agreement of repeats 0 and 1 on the points where both parsed."""
    if v.shape[1] < 2:
        return {"n_pairs": 0}
    both = np.isfinite(v[:, 0]) & np.isfinite(v[:, 1])
    a, b = v[both, 0], v[both, 1]
    out: dict[str, Any] = {"n_pairs": int(both.sum())}
    if a.size >= 3:
        same = a.std() > 0 and b.std() > 0
        out["pearson"] = float(np.corrcoef(a, b)[0, 1]) if same else float("nan")
        out["mean_abs_diff"] = float(np.abs(a - b).mean())
        out["exact_agreement"] = float((a == b).mean())
        out["within_10"] = float((np.abs(a - b) <= 10).mean())
    return out
