"""The code suite's statistics: Cohen's d per corruption kind with intervals over problems, each
kind's length change in tokens, and the pooled headline.

The paper reports d per corruption kind; a single d pooled over kinds mixes corruptions whose
effects differ by a factor of five (shuffled lines against syntax errors), so it is kept as a
secondary figure. Every interval here resamples problems: a problem's correct and corrupted
versions (and, pooled, all its corruptions) are left out together (the leave-one-problem-out
jackknife t interval, :func:`value_lens.evals._common.jackknife_ci`).

Corruptions change length: renaming variables to single letters and syntax errors change the
number of tokens, so correct and corrupted code are position-matched only where a kind's token
change is 0. :func:`code_summary` reports it per kind.

Example:
    >>> import pandas as pd
    >>> t = pd.DataFrame({"problem_id": [0, 0, 1, 1, 2, 2], "kind": ["a", "b"] * 3,
    ...                   "correct_whole": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
    ...                   "corrupted_whole": [0.5, 0.0, 1.0, 1.5, 2.0, 2.5]})
    >>> h = code_headline(t)
    >>> round(h["d"], 3), h["n_problems"], h["n_pairs"], h["pct_correct_higher"]
    (0.82, 3, 6, 100.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from value_lens.analysis.metrics import cohens_d
from value_lens.evals._common import jackknife_ci

__all__ = ["code_headline", "code_sentence", "code_summary"]


def _d_ci(
    a: np.ndarray, b: np.ndarray, groups: list[Any], paired: bool, level: float
) -> tuple[float, float, float]:
    """(d, lo, hi): Cohen's d of ``a - b`` and its interval over problems (NaN bounds with
    fewer than 3 problems)."""
    if len(a) < 2:
        return float("nan"), float("nan"), float("nan")
    d = float(cohens_d(a, b, paired=paired))
    lo, hi = jackknife_ci(
        lambda x, y: float(cohens_d(x, y, paired=paired)), [a, b], [groups, groups], level
    )
    return d, lo, hi


def _where(t: pd.DataFrame, where: str, level: float) -> dict[str, Any]:
    if f"correct_{where}" not in t or f"corrupted_{where}" not in t:
        return {}
    t2 = t.dropna(subset=[f"correct_{where}", f"corrupted_{where}"])
    a, b = t2[f"correct_{where}"].to_numpy(float), t2[f"corrupted_{where}"].to_numpy(float)
    groups = t2["problem_id"].tolist() if "problem_id" in t2 else list(range(len(t2)))
    row: dict[str, Any] = {}
    for paired, name in ((False, "unpaired"), (True, "paired")):
        d, lo, hi = _d_ci(a, b, groups, paired, level)
        row |= {f"d_{name}_{where}": d, f"d_{name}_{where}_lo": lo, f"d_{name}_{where}_hi": hi}
    row[f"pct_correct_higher_{where}"] = 100.0 * float((a > b).mean()) if len(a) else np.nan
    return row


def code_summary(table: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Per corruption kind: Cohen's d (unpaired pooled-sd and paired), each with its ``level``
    interval over problems (``_lo``/``_hi``), and % correct > corrupted, for the whole-code mean
    and for the window after the first change; with token counts, the mean length change
    (corrupted minus correct, in tokens) and the share of pairs whose length differs."""
    rows = []
    for kind, t in table.groupby("kind", sort=False):
        row: dict[str, Any] = {"kind": kind, "n_pairs": len(t)}
        if "problem_id" in t:
            row["n_problems"] = int(t["problem_id"].nunique())
        for where in ("whole", "window"):
            row |= _where(t, where, level)
        if {"correct_tokens", "corrupted_tokens"} <= set(t.columns):
            change = (t["corrupted_tokens"] - t["correct_tokens"]).to_numpy(float)
            row["mean_tokens_correct"] = float(t["correct_tokens"].mean())
            row["token_change_mean"] = float(np.nanmean(change))
            row["token_change_share"] = float(np.mean(change != 0))
        rows.append(row)
    return pd.DataFrame(rows)


def code_headline(table: pd.DataFrame, *, level: float = 0.95) -> dict[str, Any]:
    """The code suite's headline: Cohen's d (unpaired, pooled sd) of the whole-code readout,
    correct minus corrupted, **per corruption kind** (``by_kind``) with intervals over problems,
    and the d pooled over every pair (secondary; interval over problems, all corruptions of a
    problem left out together)."""
    t = table.dropna(subset=["correct_whole", "corrupted_whole"])
    a, b = t["correct_whole"].to_numpy(float), t["corrupted_whole"].to_numpy(float)
    d, lo, hi = _d_ci(a, b, t["problem_id"].tolist(), False, level)
    kinds = []
    for _, r in code_summary(t, level=level).iterrows():
        rec = {
            "kind": r["kind"],
            "d": r["d_unpaired_whole"],
            "d_ci_lo": r["d_unpaired_whole_lo"],
            "d_ci_hi": r["d_unpaired_whole_hi"],
            "n_pairs": int(r["n_pairs"]),
            "pct_correct_higher": r["pct_correct_higher_whole"],
        }
        if "token_change_mean" in r:
            rec["token_change_mean"] = r["token_change_mean"]
        kinds.append({k: (float(v) if isinstance(v, np.floating) else v) for k, v in rec.items()})
    return {
        "d": d,
        "d_kind": "unpaired (pooled sd)",
        "d_ci_lo": lo,
        "d_ci_hi": hi,
        "level": level,
        "ci": "leave-one-problem-out jackknife t interval",
        "ci_cluster": "problem",
        "n_problems": int(t["problem_id"].nunique()),
        "n_pairs": len(t),
        "pct_correct_higher": 100.0 * float((a > b).mean()),
        "readout": "mean cosine over the whole code",
        "by_kind": kinds,
    }


def _fmt(lo: float, hi: float) -> str:
    return "no interval (fewer than 3 problems)" if not np.isfinite(lo) else f"[{lo:.2f}, {hi:.2f}]"


def code_sentence(code: dict[str, Any]) -> str:
    """The code suite's sentence from its headline record (``run.json``'s ``code_suite``).

    >>> print(code_sentence({"layer": 3, "d": 0.5, "d_ci_lo": 0.1, "d_ci_hi": 0.9,
    ...                      "level": 0.95, "n_problems": 12, "n_pairs": 48,
    ...                      "pct_correct_higher": 70.0}))  # doctest: +NORMALIZE_WHITESPACE
    On code at layer 3, pooled over every corruption: Cohen's d = 0.50 (95% CI [0.10, 0.90],
    over 12 problems, 48 pairs; the interval excludes 0); correct > corrupted in 70% of pairs.
    """
    d, lo, hi = float(code["d"]), float(code["d_ci_lo"]), float(code["d_ci_hi"])
    level = f"{code['level']:.0%}"
    kinds = code.get("by_kind") or []
    parts = []
    if kinds:
        per = "; ".join(
            f"{k['kind']} {float(k['d']):.2f} {_fmt(float(k['d_ci_lo']), float(k['d_ci_hi']))}"
            for k in kinds
        )
        parts.append(
            f"On code at layer {code['layer']}, Cohen's d of correct minus corrupted code (whole-"
            f"code mean, {level} intervals over problems) per corruption: {per}."
        )
        moved = [
            f"{k['kind']} {float(k['token_change_mean']):+.1f}"
            for k in kinds
            if "token_change_mean" in k
        ]
        if moved:
            parts.append(
                "Mean length change of the corrupted copy, in tokens: "
                + ", ".join(moved)
                + "; where it is not 0 the two versions are not matched on position."
            )
        lead = "Pooled over every corruption (secondary)"
    else:
        lead = f"On code at layer {code['layer']}, pooled over every corruption"
    zero = ""
    if np.isfinite(lo):
        zero = "; the interval excludes 0" if lo > 0 or hi < 0 else "; the interval includes 0"
    ci = f"{level} CI {_fmt(lo, hi)}"
    parts.append(
        f"{lead}: Cohen's d = {d:.2f} ({ci}, over {code['n_problems']} problems, "
        f"{code['n_pairs']} pairs{zero}); correct > corrupted in "
        f"{code['pct_correct_higher']:.0f}% of pairs."
    )
    return " ".join(parts)
