"""The method table as a reader sees it: one row per fitting method, each number with its interval.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"method": ["mean_diff"], "layer": [3], "token_auroc_mean": [0.81],
    ...                    "token_auroc_ci_lo": [0.7], "token_auroc_ci_hi": [0.9]})
    >>> method_table_view(df)["AUROC"].tolist()
    ['0.81 [0.70, 0.90]']
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["METHOD_NOTE", "method_table_view"]

METHOD_NOTE = (
    "Each method at its best held-out layer. AUROC: held-out criteria, all token pairs, and its "
    "parts between two turns and within one turn. rd_value: the jump at the reward token minus "
    "the jump at the placebo turns' cut, in within-turn sd (0: position alone). cos: with the "
    "mean-difference direction. Slopes: change of the behaviour metric per 1% of the layer's "
    "mean residual norm, every method pushed by the same norm (steer_norm), t interval over "
    "prompts. Intervals: leave-one-criterion-out jackknife with refits."
)

#: (label, column stem) shown with an interval, in order
_WITH_CI = (
    ("AUROC", "token_auroc"),
    ("between", "token_auroc_between"),
    ("within", "token_auroc_within"),
    ("rd_value", "rd_value"),
)


def _fmt(x: float, lo: float, hi: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if any(v is None or math.isnan(float(v)) for v in (lo, hi)):
        return f"{x:.2f}"
    return f"{x:.2f} [{lo:.2f}, {hi:.2f}]"


def method_table_view(df: pd.DataFrame) -> pd.DataFrame:
    """Formatted columns of a ``methods.csv`` (:func:`value_lens.compare.methods.method_rows`)."""
    out = pd.DataFrame({"method": df["method"], "layer": df["layer"]})
    for label, stem in _WITH_CI:
        col = f"{stem}_mean" if f"{stem}_mean" in df else stem
        if col not in df:
            continue
        lo, hi = df.get(f"{stem}_ci_lo"), df.get(f"{stem}_ci_hi")
        out[label] = [
            _fmt(float(df[col].iloc[i]),
                 math.nan if lo is None else float(lo.iloc[i]),
                 math.nan if hi is None else float(hi.iloc[i]))
            for i in range(len(df))
        ]  # fmt: skip
    for col in ("random_auroc_p95", "cos_mean_diff", "steer_norm"):
        if col in df:
            out[col] = df[col].round(3)
    for col in df.columns:
        if col.endswith("_slope"):
            m = col.removesuffix("_slope")
            out[f"{m} slope"] = [
                _fmt(float(df[col].iloc[i]), float(df[f"{col}_lo"].iloc[i]),
                     float(df[f"{col}_hi"].iloc[i]))
                for i in range(len(df))
            ]  # fmt: skip
    return out
