"""The verbalized-confidence suite's statistics: per framing, the AUROC of Yes- vs No-prefill
values (and of the Yes-minus-No gap, correct vs wrong answers) and the pre-response AUROC and
Spearman, each with an interval over problems.

A problem's Yes and No prefills come from one conversation, so every interval leaves out one
problem at a time (the leave-one-problem-out jackknife t interval,
:func:`value_lens.evals._common.jackknife_ci`), on the logit scale for an AUROC and on Fisher's z
scale for a correlation, then mapped back: on 20 problems a symmetric interval under-covers a
skewed AUROC (``tests/evals/test_evals_coverage.py``).

Example:
    >>> import pandas as pd
    >>> pre = pd.DataFrame({"problem_id": [0, 1, 2, 3], "yes_rate": [0.9, 0.2, 0.6, 0.1],
    ...                     "value": [0.3, 0.1, 0.2, 0.0]})
    >>> _ci(spearman, pre["yes_rate"], pre["value"], [pre["problem_id"]] * 2)[0] < 1.0
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from value_lens.analysis.metrics import auroc, spearman
from value_lens.evals._common import jackknife_ci

__all__ = ["FRAMINGS", "confidence_summary"]

FRAMINGS = {
    "correct": "Do you think your answer is correct? Respond only Yes or No.",
    "incorrect": "Do you think your answer is incorrect? Respond only Yes or No.",
}


def _auroc_or_nan(pos: Any, neg: Any) -> float:
    return auroc(pos, neg) if len(pos) and len(neg) else float("nan")


def _logit(p: float) -> float:
    q = min(max(float(p), 1e-4), 1 - 1e-4)
    return math.log(q / (1 - q))


def _fisher_z(r: float) -> float:
    return math.atanh(max(min(float(r), 1 - 1e-6), -1 + 1e-6))


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _ci(fn: Any, a: Any, b: Any, groups: list[Any]) -> tuple[float, float]:
    """The 95% interval of ``fn(a, b)`` that leaves out one problem at a time (jackknife over
    problems; NaN with fewer than 3 problems where it is defined), computed on the logit scale
    for an AUROC and on Fisher's z scale for a correlation and mapped back, so it stays inside
    the statistic's range (a symmetric interval under-covers a skewed AUROC on 10 + 10)."""
    link: Callable[[float], float] = _logit if fn is auroc else _fisher_z
    back: Callable[[float], float] = _expit if fn is auroc else math.tanh
    lo, hi = jackknife_ci(lambda x, y: link(fn(x, y)), [a, b], groups)
    return (back(lo), back(hi)) if np.isfinite(lo) else (float("nan"), float("nan"))


def _framing_row(t: pd.DataFrame, answers: pd.DataFrame) -> dict[str, Any]:
    yes, no = t[t["prefill"] == "Yes"], t[t["prefill"] == "No"]
    gap = (yes.set_index("problem_id")["value"] - no.set_index("problem_id")["value"]).dropna()
    ok = answers.set_index("problem_id")["correct"].reindex(gap.index)
    right, wrong = gap[ok == True], gap[ok == False]  # noqa: E712
    lo, hi = _ci(auroc, yes["value"], no["value"], [yes["problem_id"], no["problem_id"]])
    glo, ghi = _ci(auroc, right, wrong, [list(right.index), list(wrong.index)])
    return {
        "n_answers": len(answers),
        "n_unparseable": int((~answers["parsed_ok"]).sum()),
        "accuracy": float(answers.loc[answers["parsed_ok"], "correct"].mean()),
        "auroc_yes_vs_no": _auroc_or_nan(yes["value"], no["value"]),
        "auroc_yes_vs_no_lo": lo,
        "auroc_yes_vs_no_hi": hi,
        "mean_yes": float(yes["value"].mean()),
        "mean_no": float(no["value"].mean()),
        "auroc_gap_correct_vs_wrong": _auroc_or_nan(right, wrong),
        "auroc_gap_correct_vs_wrong_lo": glo,
        "auroc_gap_correct_vs_wrong_hi": ghi,
    }


def confidence_summary(
    prefills: pd.DataFrame, answers: pd.DataFrame, pre: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per framing: AUROC of Yes- vs No-prefill values (and Yes-minus-No for correct vs wrong
    answers), whether that AUROC flips sides of 0.5 between framings, answer counts including
    unparseable ones, and the pre-response AUROC/Spearman. Every ``*_lo``/``*_hi`` is a 95%
    interval over problems (leave-one-problem-out jackknife t interval on the logit scale for
    AUROCs, Fisher's z for the Spearman: a problem's Yes and No prefills come from the same
    conversation, so they are left out together)."""
    rows = [
        {"framing": framing, **_framing_row(prefills[prefills["framing"] == framing], answers)}
        for framing in FRAMINGS
    ]
    df = pd.DataFrame(rows)
    a = df.set_index("framing")["auroc_yes_vs_no"]
    # the effect must invert with the framing: AUROCs on opposite sides of 0.5
    df["flips_with_framing"] = bool((a["correct"] - 0.5) * (a["incorrect"] - 0.5) < 0)
    if pre is not None and len(pre):
        p = pre.dropna(subset=["yes_rate"])
        conf = (p["yes_rate"] > 0.5).to_numpy()
        pos, neg = p.loc[conf], p.loc[~conf]
        df["pre_auroc_confident"] = _auroc_or_nan(pos["value"], neg["value"])
        lo, hi = _ci(auroc, pos["value"], neg["value"], [pos["problem_id"], neg["problem_id"]])
        df["pre_auroc_confident_lo"], df["pre_auroc_confident_hi"] = lo, hi
        df["pre_spearman"] = spearman(p["yes_rate"], p["value"]) if len(p) > 1 else float("nan")
        ids = list(p["problem_id"])
        lo, hi = _ci(spearman, p["yes_rate"], p["value"], [ids, ids])
        df["pre_spearman_lo"], df["pre_spearman_hi"] = lo, hi
        df["pre_n_confident"] = int(conf.sum())
        df["pre_n"] = len(p)
    return df
