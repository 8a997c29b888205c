"""One row of a sweep's table per layer: every score averaged over splits, with its interval.

A score's estimate is its mean over the splits where it is defined; its interval comes from the
same mean with each cluster left out (:func:`value_lens.analysis.intervals.jackknife_interval`).

Example:
    >>> COLUMNS["axis_token"], COLUMNS["axis_rd_value"]
    ('token_auroc_mean', 'rd_value')
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from value_lens.analysis.confounds import BASELINES
from value_lens.analysis.intervals import jackknife_interval
from value_lens.analysis.sweep.layer import Context, LayerScores

__all__ = ["COLUMNS", "layer_row"]

#: score name -> table column (``_mean`` columns get ``_ci_lo``/``_ci_hi`` without the suffix)
COLUMNS: dict[str, str] = {
    "axis_token": "token_auroc_mean",
    "axis_between": "token_auroc_between",
    "axis_within": "token_auroc_within",
    "axis_matched": "matched_auroc",
    "axis_placebo": "placebo_auroc",
    "axis_rd_jump": "rd_jump",
    "axis_rd_placebo_jump": "rd_placebo_jump",
    "axis_rd_pseudo_jump": "rd_pseudo_jump",
    "axis_rd_value": "rd_value",
    "axis_rd_value_pseudo": "rd_value_pseudo",
    "did_token": "did_auroc_mean",
    "did_between": "did_auroc_between",
    "did_within": "did_auroc_within",
    "did_matched": "did_matched_auroc",
    "did_placebo": "did_placebo_auroc",
    "did_rd_jump": "did_rd_jump",
    "did_rd_value": "did_rd_value",
    **{f"{b}_token": f"{b}_auroc" for b in BASELINES},
    **{f"{b}_matched": f"{b}_matched_auroc" for b in BASELINES},
    **{f"{b}_placebo": f"placebo_{b}_auroc" for b in BASELINES},
    **{f"{b}_rd_jump": f"{b}_rd_jump" for b in BASELINES},
    **{f"{b}_rd_value": f"{b}_rd_value" for b in BASELINES},
}
#: scores that get an interval (the others are descriptions)
WITH_CI = {
    "axis_token",
    "axis_between",
    "axis_within",
    "axis_matched",
    "axis_placebo",
    "axis_rd_jump",
    "axis_rd_placebo_jump",
    "axis_rd_pseudo_jump",
    "axis_rd_value",
    "axis_rd_value_pseudo",
    "did_token",
    "did_matched",
    "did_placebo",
    "did_rd_value",
    *(f"{b}_token" for b in BASELINES[:3]),
}


def _nanmean(x: np.ndarray, axis: int = 0) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _summary(scores: LayerScores, name: str, level: float | None) -> tuple[float, float, float]:
    points = np.array([s.point.get(name, np.nan) for s in scores.splits], dtype=np.float64)
    if not np.isfinite(points).any():
        return (np.nan,) * 3
    mean = float(_nanmean(points))
    if level is None or name not in WITH_CI:
        return mean, np.nan, np.nan
    loo = np.stack([s.loo.get(name, np.full(1, np.nan)) for s in scores.splits])
    loo = np.where(np.isfinite(points)[:, None], loo, np.nan)
    iv = jackknife_interval(mean, _nanmean(loo), level)
    return mean, iv.lo, iv.hi


def _sd(x: Any, ddof: int = 1) -> float:
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.std(ddof=ddof)) if a.size > ddof else float("nan")


def layer_row(ctx: Context, scores: LayerScores, layer: int) -> dict[str, Any]:
    """The table row of one layer."""
    level = ctx.cfg.ci.level if ctx.cfg.ci is not None else None
    row: dict[str, Any] = {"layer": layer}
    for name, col in COLUMNS.items():
        mean, lo, hi = _summary(scores, name, level)
        stem = col.removesuffix("_mean")
        row[col] = mean
        if name in WITH_CI:
            row[f"{stem}_ci_lo"], row[f"{stem}_ci_hi"] = lo, hi
        if name == "axis_token":
            row["token_auroc_sd"] = _sd([s.point["axis_token"] for s in scores.splits])
    per_dir = _nanmean(scores.random, axis=0)  # [R]: each direction's mean over splits
    fn = [float(w.mean()) for w in scores.wins]
    rd_rand = _nanmean(scores.random_rd, axis=0)
    row.update(
        {
            "function_score_mean": float(np.mean(fn)),
            "function_score_sd_splits": _sd(fn),
            "function_score_sd_all_scores": _sd(np.concatenate(scores.wins), ddof=0),
            "random_auroc_mean": float(np.mean(per_dir)) if per_dir.size else np.nan,
            "random_auroc_sd": _sd(per_dir),
            "random_auroc_p95": float(np.quantile(per_dir, 0.95)) if per_dir.size else np.nan,
            "rd_value_random_mean": float(np.nanmean(rd_rand))
            if np.isfinite(rd_rand).any()
            else np.nan,
            "rd_value_random_p95": float(np.nanquantile(rd_rand, 0.95))
            if np.isfinite(rd_rand).any()
            else np.nan,
            "shuffled_auroc_mean": float(_nanmean(scores.shuffled.reshape(-1), axis=0))
            if np.isfinite(scores.shuffled).any()
            else np.nan,
        }
    )
    return row | _counts(ctx)


def _counts(ctx: Context) -> dict[str, Any]:
    n_tr = [len(t) for t in ctx.splits]
    G = int(ctx.has_placebo.size)
    tests = [t.size for t in ctx.tests]
    return {
        "matched_n_pairs": float(np.mean([p for p, _ in ctx.support])),
        "matched_n_turns": float(np.mean([t for _, t in ctx.support])),
        "n_splits": len(ctx.splits),
        "n_train_groups": n_tr[0] if len(set(n_tr)) == 1 else float(np.mean(n_tr)),
        "n_test_groups": G - n_tr[0] if len(set(n_tr)) == 1 else G - float(np.mean(n_tr)),
        "n_test_clusters_min": int(min(tests)),
        "ci_clusters": ctx.design.n_clusters,
        "few_clusters": bool(min(tests) < 10),
    }
