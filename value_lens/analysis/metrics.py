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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from value_lens.errors import InputError

__all__ = [
    "ClusterAUROC",
    "CohensD",
    "auroc",
    "bootstrap_ci",
    "cluster_codes",
    "cluster_counts",
    "cohens_d",
    "percentile_ci",
    "rankdata",
    "spearman",
]


def _vec(x: Any, name: str, *, min_len: int = 1) -> np.ndarray:
    """A finite float64 1-D array, or a clear error."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size < min_len:
        raise InputError(f"{name} needs at least {min_len} value(s), got {a.size}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contains NaN or Inf; drop those entries first")
    return a


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


def cluster_codes(*labels: Any) -> tuple[list[np.ndarray], int]:
    """Integer cluster codes ``0..C-1`` for one or more aligned label arrays, and ``C``.

    Codes follow the sorted order of the distinct labels over all arrays together, so a
    label means the same cluster in every array.

    >>> codes, n = cluster_codes(["b", "a"], ["a", "c", "c"])
    >>> [c.tolist() for c in codes], n
    ([[1, 0], [0, 2, 2]], 3)
    """
    arrs = [np.asarray(g).reshape(-1) for g in labels]
    try:
        uniq, inv = np.unique(np.concatenate(arrs), return_inverse=True)
    except TypeError:
        raise InputError(
            "cluster labels must be comparable (all strings or all numbers); convert them "
            "with str() first"
        ) from None
    cuts = np.cumsum([a.size for a in arrs])[:-1]
    return [c.astype(np.int64) for c in np.split(inv.reshape(-1), cuts)], int(uniq.size)


def cluster_counts(n_clusters: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """For each of ``n_boot`` cluster resamples, how often each cluster is drawn.

    Each resample draws ``n_clusters`` clusters with replacement; the counts sum to
    ``n_clusters``. The stream is a function of ``(n_clusters, seed)`` only, so
    :func:`bootstrap_ci` and :func:`value_lens.analysis.sweep.layer_sweep` draw the same resamples.

    Example:
        >>> [c.tolist() for c in cluster_counts(3, 2, seed=0)]
        [[0, 2, 1], [3, 0, 0]]
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)


@dataclass(frozen=True)
class ClusterAUROC:
    """AUROC of positives vs negatives, split into pair counts between clusters.

    ``pairs[a, b]`` is the Mann-Whitney count (wins + half ties) of the positives of cluster
    ``clusters[a]`` against the negatives of cluster ``clusters[b]``, so a cluster resample with
    counts ``w`` has AUROC ``w' pairs w / ((w . n_pos) (w . n_neg))``: no re-sorting per resample.
    Build it with :meth:`of`.

    **Stratified** (``pos_stratum``/``neg_stratum`` given to :meth:`of`): only pairs within one
    stratum count, so the AUROC is the fraction of *within-stratum* pairs ranked right
    (each stratum weighted by its ``n_pos * n_neg`` pairs); ``strata_pos``/``strata_neg``
    (``[S, C]`` counts) give the resampled denominator ``sum_s (w . n_pos_s) (w . n_neg_s)``.

    Example:
        >>> parts = ClusterAUROC.of([3, 1], [2, 0], pos_cluster=[0, 1], neg_cluster=[0, 1])
        >>> parts.auroc(), parts.resample([[2, 0], [0, 2]]).tolist()
        (0.75, [1.0, 1.0])
        >>> ClusterAUROC.of([3, 1], [2, 0], pos_cluster=[0, 0], neg_cluster=[0, 0],
        ...                 pos_stratum=[0, 1], neg_stratum=[1, 0]).auroc()  # pairs (3,0), (1,2)
        0.5
    """

    clusters: np.ndarray
    pairs: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray
    strata_pos: np.ndarray | None = None
    strata_neg: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        pos: Any,
        neg: Any,
        *,
        pos_cluster: Any,
        neg_cluster: Any,
        pos_stratum: Any = None,
        neg_stratum: Any = None,
    ) -> ClusterAUROC:
        """Pair counts of ``auroc(pos, neg)`` by cluster (non-negative integer cluster codes),
        optionally within strata only (one stratum label per score on both sides)."""
        p, n = _vec(pos, "the positive class"), _vec(neg, "the negative class")
        cp, cn = np.asarray(pos_cluster).reshape(-1), np.asarray(neg_cluster).reshape(-1)
        if cp.size != p.size or cn.size != n.size:
            raise InputError("pos_cluster and neg_cluster need one cluster code per score")
        ids, inv = np.unique(np.concatenate([cp, cn]), return_inverse=True)
        ip, ineg = inv[: p.size], inv[p.size :]
        k = ids.size
        stratified = pos_stratum is not None or neg_stratum is not None
        if stratified:
            sp, sn = np.asarray(pos_stratum).reshape(-1), np.asarray(neg_stratum).reshape(-1)
            if sp.size != p.size or sn.size != n.size:
                raise InputError("pos_stratum and neg_stratum need one stratum label per score")
            n_str, sinv = np.unique(np.concatenate([sp, sn]), return_inverse=True)
            # exact integer keys: stratum-major, then the dense rank of the score
            _, rank = np.unique(np.concatenate([p, n]), return_inverse=True)
            span = int(rank.max()) + 2
            key = sinv.astype(np.float64) * span + rank
            p_key, n_key, p_floor = key[: p.size], key[p.size :], sinv[: p.size] * float(span)
        else:
            p_key, n_key, p_floor = p, n, np.full(p.size, -np.inf)
        order = np.argsort(n_key, kind="mergesort")
        ns, nc = n_key[order], ineg[order]
        # negatives below each positive (ties count half): 0.5 * (cum[lo] + cum[hi]) per cluster,
        # with cum[j, b] the number of cluster-b negatives among the j lowest; minus those of
        # lower strata (cum[st]) when stratified
        lo, hi = np.searchsorted(ns, p_key, "left"), np.searchsorted(ns, p_key, "right")
        st = np.searchsorted(ns, p_floor, "left")
        porder = np.argsort(ip, kind="mergesort")
        rows, starts = np.unique(ip[porder], return_index=True)
        lo, hi, st = lo[porder], hi[porder], st[porder]
        pairs = np.zeros((k, k))
        step = max(1, 4_000_000 // (n.size + 1))  # bounds the [n_neg, step] cumulative counts
        for b0 in range(0, k, step):
            cols = np.arange(b0, min(k, b0 + step))
            cum = np.zeros((n.size + 1, cols.size))
            np.cumsum(nc[:, None] == cols[None, :], axis=0, out=cum[1:])
            below = cum[lo] + cum[hi] - 2 * cum[st]
            pairs[np.ix_(rows, cols)] = 0.5 * np.add.reduceat(below, starts, axis=0)
        n_pos = np.bincount(ip, minlength=k).astype(np.float64)
        n_neg = np.bincount(ineg, minlength=k).astype(np.float64)
        if not stratified:
            return cls(ids, pairs, n_pos, n_neg)
        S = n_str.size
        s_pos = np.zeros((S, k))
        s_neg = np.zeros((S, k))
        np.add.at(s_pos, (sinv[: p.size], ip), 1.0)
        np.add.at(s_neg, (sinv[p.size :], ineg), 1.0)
        return cls(ids, pairs, n_pos, n_neg, s_pos, s_neg)

    def auroc(self) -> float:
        """The AUROC of all the data (every cluster drawn once); NaN if no pair is comparable."""
        return float(self.resample(np.ones(int(self.clusters.max()) + 1)))

    def resample(self, counts: Any) -> np.ndarray:
        """AUROC under cluster counts ``[..., C]`` indexed by cluster code (NaN: a class is empty)."""
        w = np.asarray(counts, dtype=np.float64)[..., self.clusters]
        with np.errstate(divide="ignore", invalid="ignore"):
            num = ((w @ self.pairs) * w).sum(-1)
            if self.strata_pos is None or self.strata_neg is None:
                return np.asarray(num / ((w @ self.n_pos) * (w @ self.n_neg)))
            den = ((w @ self.strata_pos.T) * (w @ self.strata_neg.T)).sum(-1)
            return np.asarray(num / den)


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
    groups: Sequence[Any] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric_fn(*arrays)``.

    Tokens of one conversation (or one criterion) are not independent: resampling them one by
    one (``groups=None``) treats every token as a separate observation and gives intervals far
    too narrow for token-level AUROCs. Pass ``groups=`` to resample whole clusters instead.

    Args:
        metric_fn: called with one resampled copy of each array, e.g. :func:`auroc`.
        arrays: the samples. With ``paired=False`` each array is resampled independently;
            with ``paired=True`` all arrays must have one length and are resampled with the
            same indices (right for paired statistics).
        n_boot: number of bootstrap resamples.
        seed: seed of the resampling generator (deterministic).
        ci: coverage, e.g. 0.95 for the 2.5% and 97.5% percentiles.
        paired: see ``arrays``.
        groups: cluster bootstrap. One label array per array (aligned with it, e.g.
            ``[conversation_of_pos, conversation_of_neg]`` for ``auroc(pos, neg)``), or one
            label array shared by all arrays when ``paired=True`` or there is one array. Each
            resample draws as many clusters as there are, with replacement, from the clusters
            of all arrays together; every drawn cluster contributes all its values to every
            array, so the positives and negatives are rebuilt from the drawn clusters. With
            one value per cluster this is the ordinary bootstrap of the pooled values.

    Returns:
        ``(lo, hi)``. Resamples where the metric is not finite (or raises
        :class:`~value_lens.errors.InputError`, e.g. a class left empty) are dropped.

    >>> lo, hi = bootstrap_ci(auroc, [3, 4, 5, 6], [1, 2, 3, 4], n_boot=200)
    >>> 0.5 < lo <= hi <= 1.0
    True
    >>> conv = [0, 0, 1, 1]  # two conversations, each with two positives and two negatives
    >>> bootstrap_ci(auroc, [3, 4, 5, 6], [1, 2, 3, 4], groups=[conv, conv], n_boot=200)
    (0.875, 1.0)
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
    vals = np.empty(n_boot)
    if groups is not None:
        codes, n_clusters = cluster_codes(*_cluster_groups(groups, arrs, paired))
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
