"""Steering reliability per prompt (Tan et al., arXiv 2407.12404; Braun, arXiv 2602.17881).

The average dose-response slope hides prompts that move the wrong way. Per prompt (or A/B item)
and metric, :func:`prompt_curves` fits

* ``slope``: the OLS slope of the metric on strength over every observation of that prompt
  (all strengths and seeds; degenerate outputs left out), per ``per`` units of strength;
* ``spearman``: the Spearman correlation of the prompt's per-strength means with strength (1 =
  a monotone increasing curve; NaN when the means are constant);
* ``delta_at_max``: the mean at the largest strength minus the mean at the reference strength
  (0 when the grid has it, else its smallest strength).

:func:`reliability` summarises the prompts per group (e.g. layer x metric, or mode x behaviour):
the mean slope with a t interval over prompts; the *anti-steerable* fraction, the share of
prompts whose slope has the sign opposite to the mean slope (slope < 0 where the mean is > 0),
with a Wilson interval over prompts; the mean Spearman; and ``delta_at_max`` with a t interval.
Prompts are the independent units (seeds are averaged inside each prompt first), so the intervals
are over prompts. A prompt's sign is that of its observed slope, so with noisy outputs a prompt
whose true slope is positive can count as anti-steerable: the fraction estimates how often a
prompt *of this population under this design* moves the wrong way (with no effect at all it is
about one half).

Example:
    >>> import pandas as pd
    >>> f = pd.DataFrame({"prompt_id": ["a"] * 3 + ["b"] * 3, "alpha": [0.0, 1.0, 2.0] * 2,
    ...                   "y": [0.0, 1.0, 2.0, 0.0, -1.0, -1.5]})
    >>> pp = prompt_curves(f, ["y"], by=())
    >>> pp[["prompt_id", "slope", "spearman", "delta_at_max"]].values.tolist()
    [['a', 1.0, 1.0, 2.0], ['b', -0.75, -1.0, -1.5]]
    >>> r = reliability(pp, by=("metric",)).iloc[0]
    >>> float(r["mean_slope"]), float(r["anti_frac"]), int(r["n_prompts"])
    (0.125, 0.5, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from value_lens.analysis.intervals import t_quantile
from value_lens.analysis.metrics import spearman
from value_lens.analysis.text_metrics import METRICS
from value_lens.errors import InputError

__all__ = ["dose_slopes", "prompt_curves", "reliability", "wilson_interval"]

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``k / n`` (95% by default).

    >>> tuple(round(x, 4) for x in wilson_interval(2, 10))
    (0.0567, 0.5098)
    """
    if n <= 0:
        return (math.nan, math.nan)
    lo, hi = _wilson(np.array([float(k)]), np.array([float(n)]), z)
    return (float(lo[0]), float(hi[0]))


def _ols_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if sxx <= 0:
        return math.nan, math.nan
    slope = float(dx @ (y - y.mean())) / sxx
    return slope, float(y.mean() - slope * x.mean())


def _curve(x: np.ndarray, y: np.ndarray, per: float, ref: float | None) -> dict[str, Any]:
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    slope, intercept = _ols_slope(x, y) if x.size >= 2 else (math.nan, math.nan)
    levels = np.unique(x)
    means = np.array([y[x == a].mean() for a in levels])
    rho = spearman(levels, means) if levels.size >= 2 else math.nan
    base = ref if ref is not None and ref in levels else (levels.min() if levels.size else None)
    delta = (
        float(means[-1] - means[levels == base][0])
        if base is not None and levels.size >= 2
        else math.nan
    )
    return {
        "slope": slope * per,
        "intercept": intercept,
        "spearman": rho,
        "delta_at_max": delta,
        "n_points": int(x.size),
        "n_strengths": int(levels.size),
    }


def prompt_curves(
    frame: pd.DataFrame,
    metrics: Sequence[str],
    *,
    x: str = "alpha",
    prompt: str = "prompt_id",
    by: Sequence[str] = ("layer",),
    exclude: str | None = "degenerate",
    per: float = 1.0,
    reference: float | None = 0.0,
) -> pd.DataFrame:
    """One row per (``by``..., prompt, metric): slope, intercept, spearman, delta_at_max,
    n_points, n_strengths (see the module docstring). ``per`` scales the slope (per ``per``
    units of strength); ``reference`` is the strength ``delta_at_max`` is measured from."""
    need = [x, prompt, *by]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InputError(f"prompt_curves needs the columns {missing}")
    df = frame
    if exclude is not None and exclude in df.columns:
        df = df[~df[exclude].astype(bool)]
    rows = []
    for key, g in df.groupby([*by, prompt], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        xs = pd.to_numeric(g[x], errors="coerce").to_numpy(dtype=float)
        for metric in metrics:
            if metric not in g.columns:
                continue
            ys = pd.to_numeric(g[metric], errors="coerce").to_numpy(dtype=float)
            rec = dict(zip([*by, prompt], key, strict=True))
            rows.append({**rec, "metric": metric, **_curve(xs, ys, per, reference)})
    cols = [*by, prompt, "metric", "slope", "intercept", "spearman", "delta_at_max"]
    return pd.DataFrame(rows, columns=[*cols, "n_points", "n_strengths"])


def _t_stats(v: pd.Series, keys: pd.Series) -> pd.DataFrame:
    """Per group: mean, t-interval bounds and count of the finite values (vectorised)."""
    v = v.where(np.isfinite(v.to_numpy(dtype=float)))
    g = v.groupby(keys, sort=True)
    mean, sd, n = g.mean(), g.std(ddof=1), g.count()
    qs = {k: t_quantile(0.975, float(k) - 1) if k >= 2 else math.nan for k in n.unique()}
    q = n.map(qs)
    half = q * sd / np.sqrt(n.where(n > 0))
    return pd.DataFrame({"mean": mean, "lo": mean - half, "hi": mean + half, "n": n})


def _wilson(k: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        den = 1 + z * z / n
        mid = (p + z * z / (2 * n)) / den
        half = z / den * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.clip(mid - half, 0.0, 1.0), np.clip(mid + half, 0.0, 1.0)


def reliability(
    per_prompt: pd.DataFrame, *, by: Sequence[str] = ("layer", "metric")
) -> pd.DataFrame:
    """Per group of ``by``: the mean slope (t interval over prompts), the anti-steerable
    fraction (Wilson interval), the mean Spearman and the mean ``delta_at_max`` (t interval).

    The anti-steerable fraction takes the sign of the mean slope as given; read it where the
    mean slope's interval excludes 0 (with no effect at all, about half the prompts are on
    each side and the sign itself is noise)."""
    missing = [c for c in (*by, "slope", "spearman", "delta_at_max") if c not in per_prompt]
    if missing:
        raise InputError(f"reliability needs prompt_curves output; missing columns {missing}")
    df = per_prompt.reset_index(drop=True)
    keys = (
        pd.Series(0, index=df.index)
        if not by
        else pd.Series(list(zip(*(df[c] for c in by), strict=True)), index=df.index)
    )
    slope = df["slope"].astype(float)
    st = _t_stats(slope, keys)
    sign = np.sign(st["mean"].fillna(0.0))
    opposite = np.sign(slope) == -keys.map(sign)
    k = opposite[np.isfinite(slope)].groupby(keys[np.isfinite(slope)], sort=True).sum()
    k = k.reindex(st.index, fill_value=0).to_numpy(dtype=float)
    n = st["n"].to_numpy(dtype=float)
    lo, hi = _wilson(k, n)
    defined = (sign != 0).to_numpy() & (n > 0)
    dl = _t_stats(df["delta_at_max"].astype(float), keys)
    rho = df["spearman"].astype(float)
    out = pd.DataFrame(
        {
            "n_prompts": st["n"].to_numpy(dtype=int),
            "mean_slope": st["mean"].to_numpy(),
            "slope_lo": st["lo"].to_numpy(),
            "slope_hi": st["hi"].to_numpy(),
            "anti_frac": np.where(defined, k / np.where(n > 0, n, 1), np.nan),
            "anti_lo": np.where(defined, lo, np.nan),
            "anti_hi": np.where(defined, hi, np.nan),
            "spearman_mean": rho.groupby(keys, sort=True).mean().to_numpy(),
            "delta_at_max": dl["mean"].to_numpy(),
            "delta_lo": dl["lo"].to_numpy(),
            "delta_hi": dl["hi"].to_numpy(),
        }
    )
    for i, c in enumerate(by):
        out.insert(i, c, [key[i] for key in st.index])
    return out


def dose_slopes(
    frame: pd.DataFrame,
    metrics: Sequence[str] = METRICS,
    *,
    per: float = 1.0,
    max_degenerate: float = 0.5,
    min_strengths: int = 3,
) -> pd.DataFrame:
    """OLS slope of each metric's per-alpha mean against alpha, per layer (paper Fig. 11).

    Degenerate outputs are excluded; an alpha whose outputs are more than ``max_degenerate``
    degenerate is dropped, and a slope needs ``min_strengths`` surviving alphas (else NaN).
    Each surviving alpha's mean counts once. Slopes are per ``per`` units of alpha.

    >>> f = pd.DataFrame({"layer": 0, "alpha": [-1.0, 0.0, 1.0] * 2, "degenerate": False,
    ...                   "n_tokens": [12, 10, 8, 12, 10, 8]})
    >>> dose_slopes(f, ["n_tokens"])[["layer", "metric", "slope", "n_strengths"]].values.tolist()
    [[0, 'n_tokens', -2.0, 3]]
    """
    rows = []
    for layer, g in frame.groupby("layer"):
        frac_bad = g.groupby("alpha")["degenerate"].mean()
        keep = frac_bad[frac_bad <= max_degenerate].index
        ok = g[g["alpha"].isin(keep) & ~g["degenerate"]]
        for metric in metrics:
            if metric not in g:
                continue
            means = ok.groupby("alpha")[metric].apply(
                lambda s: float(pd.to_numeric(s, errors="coerce").astype(float).mean())
            )
            means = means[np.isfinite(means.to_numpy(dtype=float))]
            slope = intercept = math.nan
            if len(means) >= max(min_strengths, 2):
                x = means.index.to_numpy(dtype=float)
                y = means.to_numpy(dtype=float)
                dx = x - x.mean()
                if float(dx @ dx) > 0:
                    slope = float(dx @ (y - y.mean()) / (dx @ dx))
                    intercept = float(y.mean() - slope * x.mean())
                    slope *= per
            rows.append(
                {
                    "layer": int(layer),
                    "metric": metric,
                    "slope": float(slope),
                    "per": per,
                    "intercept": float(intercept),
                    "n_strengths": int(len(means)),
                }
            )
    return pd.DataFrame(rows)
