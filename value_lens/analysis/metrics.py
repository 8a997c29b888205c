"""Evaluation metrics: AUROC with ties, Cohen's d (unpaired and paired), Spearman, bootstrap CIs.

Pure numpy functions on 1-D array-likes (lists, numpy arrays or CPU tensors). NaNs and empty
inputs raise :class:`~value_lens.errors.InputError` instead of returning a silently wrong number.

Example:
    >>> auroc([3, 4, 5], [1, 2, 3])
    0.9444444444444444
    >>> d = cohens_d([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    >>> round(float(d), 3), d.kind
    (1.0, 'unpaired (pooled sd)')
    >>> spearman([1, 2, 3, 4], [10, 20, 30, 25])
    0.8
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np

from value_lens.analysis.clusters import as_vector as _vec
from value_lens.analysis.clusters import cluster_codes, cluster_counts
from value_lens.analysis.intervals import cluster_jackknife, jackknife_interval
from value_lens.errors import InputError

__all__ = [
    "CohensD",
    "auroc",
    "bootstrap_ci",
    "cohens_d",
    "percentile_ci",
    "rankdata",
    "spearman",
]


def rankdata(x: Any) -> np.ndarray:
    """1-based ranks with ties given their average rank (the 'average' method).

    >>> rankdata([10, 20, 20, 5]).tolist()
    [2.0, 3.5, 3.5, 1.0]
    """
    a = _vec(x, "x", min_len=0)
    order = np.argsort(a, kind="mergesort")
    xs = a[order]
    new = np.r_[True, xs[1:] != xs[:-1]] if a.size else np.zeros(0, dtype=bool)
    grp = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], a.size]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(a.size)
    ranks[order] = avg[grp]
    return ranks


def auroc(pos: Any, neg: Any) -> float:
    """Area under the ROC curve for scores of positives vs negatives.

    Equals P(score_pos > score_neg) + 0.5 P(tie), i.e. the Mann-Whitney U of the positives
    divided by ``len(pos) * len(neg)``. Ties get half credit, so a constant score gives 0.5.

    Args:
        pos: scores of the positive class (e.g. AFTER tokens).
        neg: scores of the negative class (e.g. BEFORE tokens).

    Raises:
        InputError: if either class is empty (the AUROC is undefined with one class).

    >>> auroc([1, 1], [1, 1])
    0.5
    """
    p = _vec(pos, "auroc: the positive class (one-class data has no AUROC)")
    n = _vec(neg, "auroc: the negative class (one-class data has no AUROC)")
    r = rankdata(np.concatenate([p, n]))
    u = r[: p.size].sum() - p.size * (p.size + 1) / 2.0
    return float(u / (p.size * n.size))


class CohensD(float):
    """A Cohen's d value that remembers which variant it is (``.kind``) and the sample sizes."""

    kind: str
    n: tuple[int, ...]

    def __new__(cls, value: float, kind: str, n: tuple[int, ...]) -> CohensD:
        obj = super().__new__(cls, value)
        obj.kind = kind
        obj.n = n
        return obj

    def __repr__(self) -> str:
        return f"CohensD({float(self):.4g}, kind={self.kind!r}, n={self.n})"


def cohens_d(a: Any, b: Any, *, paired: bool = False) -> CohensD:
    """Standardised mean difference ``a - b``.

    * ``paired=False``: unpaired d, ``(mean a - mean b) / s_pooled`` with
      ``s_pooled**2 = ((n_a-1) var_a + (n_b-1) var_b) / (n_a + n_b - 2)``.
    * ``paired=True``: paired d (often written d_z), ``mean(a - b) / sd(a - b)``; needs
      ``len(a) == len(b)`` with ``a[i]`` and ``b[i]`` measured on the same item.

    The result is a float carrying ``.kind`` (``'unpaired (pooled sd)'`` or
    ``'paired (sd of differences)'``). A zero denominator gives ``inf``/``nan`` like numpy.

    >>> float(cohens_d([2, 4, 6], [1, 2, 3], paired=True))
    2.0
    """
    x, y = _vec(a, "cohens_d: a", min_len=2), _vec(b, "cohens_d: b", min_len=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        if paired:
            if x.size != y.size:
                raise InputError(
                    f"paired Cohen's d needs equal lengths (one pair per item); got {x.size} "
                    f"and {y.size}. Use paired=False for independent samples"
                )
            diff = x - y
            d = diff.mean() / diff.std(ddof=1)
            return CohensD(float(d), "paired (sd of differences)", (x.size,))
        pooled = ((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1)) / (
            x.size + y.size - 2
        )
        d = (x.mean() - y.mean()) / np.sqrt(pooled)
    return CohensD(float(d), "unpaired (pooled sd)", (x.size, y.size))


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks; handles ties).

    Returns NaN when either input is constant (the correlation is undefined).
    """
    a, b = _vec(x, "spearman: x", min_len=2), _vec(y, "spearman: y", min_len=2)
    if a.size != b.size:
        raise InputError(f"spearman needs equal lengths, got {a.size} and {b.size}")
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def _cluster_groups(groups: Any, arrs: list[np.ndarray], paired: bool) -> list[Any]:
    """One label array per data array (a single flat array is shared when that is unambiguous)."""
    flat = isinstance(groups, np.ndarray) and groups.ndim == 1
    flat = flat or (len(groups) > 0 and np.ndim(groups[0]) == 0)
    if flat:
        if not (paired or len(arrs) == 1):
            raise InputError(
                "groups= needs one label array per array (e.g. groups=[pos_ids, neg_ids]); a "
                "single label array is only accepted with paired=True or one array"
            )
        out = [groups] * len(arrs)
    else:
        out = list(groups)
    if len(out) != len(arrs):
        raise InputError(f"groups= has {len(out)} label arrays for {len(arrs)} arrays")
    for i, (g, a) in enumerate(zip(out, arrs, strict=True)):
        if np.asarray(g).reshape(-1).size != a.size:
            raise InputError(
                f"groups[{i}] has {np.asarray(g).size} labels for {a.size} values; give one "
                "cluster label (e.g. a conversation id) per value"
            )
    return out


def bootstrap_ci(
    metric_fn: Callable[..., Any],
    *arrays: Any,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    paired: bool = False,
    groups: Sequence[Any] | np.ndarray | None = None,
    method: Literal["auto", "percentile", "jackknife"] = "auto",
) -> tuple[float, float]:
    """Confidence interval of ``metric_fn(*arrays)``: percentile bootstrap, or for clusters the
    leave-one-cluster-out jackknife.

    Tokens of one conversation (or one criterion) are not independent: resampling them one by
    one (``groups=None``) treats every token as a separate observation and gives intervals far
    too narrow for token-level AUROCs. Pass ``groups=`` to treat whole clusters as the unit.
    With clusters the default (``method="auto"``) is the jackknife t interval of
    :func:`value_lens.analysis.intervals.jackknife_interval`: a percentile cluster bootstrap
    duplicates clusters, and for pair statistics such as the AUROC the pairs between two copies
    of one cluster then count as within-cluster pairs, which pushes the interval off its estimate
    (and with few clusters it under-covers).

    Args:
        metric_fn: called with one resampled copy of each array, e.g. :func:`auroc`.
        arrays: the samples. With ``paired=False`` each array is resampled independently;
            with ``paired=True`` all arrays must have one length and are resampled with the
            same indices (right for paired statistics).
        n_boot: number of bootstrap resamples.
        seed: seed of the resampling generator (deterministic).
        ci: coverage, e.g. 0.95 for the 2.5% and 97.5% percentiles.
        paired: see ``arrays``.
        groups: cluster labels. One label array per array (aligned with it, e.g.
            ``[conversation_of_pos, conversation_of_neg]`` for ``auroc(pos, neg)``), or one
            label array shared by all arrays when ``paired=True`` or there is one array. A
            cluster is removed (jackknife) or drawn (bootstrap) with all its values in every
            array, so the positives and negatives come from the same clusters.
        method: ``"auto"`` (jackknife with ``groups``, NaN bounds when fewer than 3 clusters
            leave the metric defined; percentile bootstrap without ``groups``),
            ``"jackknife"`` (needs ``groups`` and 3 such clusters, else an error) or ``"percentile"``
            (with ``groups``: each resample draws as many clusters as there are, with
            replacement, every drawn cluster contributing all its values).

    Returns:
        ``(lo, hi)``. Bootstrap resamples (or left-out clusters) where the metric is not finite
        or raises :class:`~value_lens.errors.InputError` (e.g. a class left empty) are dropped.

    >>> lo, hi = bootstrap_ci(auroc, [3, 4, 5, 6], [1, 2, 3, 4], n_boot=200)
    >>> 0.5 < lo <= hi <= 1.0
    True
    >>> conv = [0, 0, 1, 1, 2, 2]  # three conversations, two positives and two negatives each
    >>> lo, hi = bootstrap_ci(auroc, [3, 4, 5, 6, 2, 9], [1, 2, 3, 4, 5, 0], groups=[conv, conv])
    >>> round(lo, 3) < round(auroc([3, 4, 5, 6, 2, 9], [1, 2, 3, 4, 5, 0]), 3) < round(hi, 3)
    True
    """
    if not arrays:
        raise InputError("bootstrap_ci needs at least one array to resample")
    if not 0 < ci < 1:
        raise InputError(f"ci must lie in (0, 1), got {ci}")
    if n_boot < 1:
        raise InputError(f"n_boot must be positive, got {n_boot}")
    arrs = [_vec(a, f"bootstrap_ci: array {i}") for i, a in enumerate(arrays)]
    if paired and len({a.size for a in arrs}) != 1:
        raise InputError("paired=True needs arrays of one length; use paired=False")
    if method not in ("auto", "percentile", "jackknife"):
        raise InputError(f"method must be 'auto', 'percentile' or 'jackknife', got {method!r}")
    if method == "jackknife" and groups is None:
        raise InputError("method='jackknife' needs groups= (the clusters to leave out)")
    vals = np.empty(n_boot)
    if groups is not None:
        codes, n_clusters = cluster_codes(*_cluster_groups(groups, arrs, paired))
        if method != "percentile":
            loo = cluster_jackknife(metric_fn, arrs, codes, n_clusters)
            iv = jackknife_interval(float(metric_fn(*arrs)), loo, ci)
            if not np.isfinite(iv.lo) and method == "auto":
                return math.nan, math.nan  # fewer than 3 clusters: no interval to give
            if not np.isfinite(iv.lo):
                raise InputError(
                    f"the cluster jackknife needs at least 3 clusters where the metric is defined "
                    f"without them; got {iv.n_clusters} of {n_clusters}. Use more clusters or "
                    "method='percentile'"
                )
            return iv.lo, iv.hi
        draws = cluster_counts(n_clusters, n_boot, seed)
        samples: Iterator[list[np.ndarray]] = (
            [np.repeat(a, w[c]) for a, c in zip(arrs, codes, strict=True)] for w in draws
        )
    else:
        samples = _iid_samples(arrs, n_boot, seed, paired)
    for k, sample in enumerate(samples):
        try:
            vals[k] = float(metric_fn(*sample))
        except InputError:
            vals[k] = np.nan
    return percentile_ci(vals, ci)


def _iid_samples(
    arrs: list[np.ndarray], n_boot: int, seed: int, paired: bool
) -> Iterator[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        if paired:
            idx = rng.integers(0, arrs[0].size, arrs[0].size)
            yield [a[idx] for a in arrs]
        else:
            yield [a[rng.integers(0, a.size, a.size)] for a in arrs]


def percentile_ci(values: Any, ci: float = 0.95) -> tuple[float, float]:
    """The central ``ci`` percentile interval of bootstrap ``values`` (non-finite ones dropped).

    >>> percentile_ci([0.0, 1.0, 2.0, 3.0, 4.0], 0.5)
    (1.0, 3.0)
    """
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise InputError("the metric was undefined on every bootstrap resample")
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(vals, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
