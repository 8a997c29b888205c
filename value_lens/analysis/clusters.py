"""Cluster resampling: cluster codes, resample counts, and AUROC pair counts by cluster.

Tokens of one conversation are not independent, so their confidence intervals resample whole
clusters. :func:`cluster_counts` is the one stream of resamples that
:func:`value_lens.analysis.metrics.bootstrap_ci` and :func:`value_lens.analysis.sweep.layer_sweep`
share; :class:`ClusterAUROC` turns a token-level AUROC into pair counts between clusters, so each
resample costs two small matrix products instead of a re-sort.

Example:
    >>> codes, n = cluster_codes(["b", "a"], ["a", "c", "c"])
    >>> [c.tolist() for c in codes], n
    ([[1, 0], [0, 2, 2]], 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from value_lens.errors import InputError

__all__ = [
    "ClusterAUROC",
    "as_vector",
    "cluster_codes",
    "cluster_counts",
    "column_aurocs",
    "group_wins",
]


def as_vector(x: Any, name: str, *, min_len: int = 1) -> np.ndarray:
    """A finite float64 1-D array, or a clear error."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size < min_len:
        raise InputError(f"{name} needs at least {min_len} value(s), got {a.size}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contains NaN or Inf; drop those entries first")
    return a


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
    :func:`value_lens.analysis.metrics.bootstrap_ci` and
    :func:`value_lens.analysis.sweep.layer_sweep` draw the same resamples.

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
    counts ``w`` (0/1 weights leave clusters out) has AUROC ``w' pairs w / ((w . n_pos)
    (w . n_neg))`` less the pairs between two copies of one cluster: no re-sorting per resample.
    :meth:`within` and :meth:`between` split it into pairs of one cluster (with turns as
    clusters: within-turn pairs) and pairs of two. Build it with :meth:`of`.

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
        p, n = as_vector(pos, "the positive class"), as_vector(neg, "the negative class")
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
        return float(self.resample(self._ones()))

    def _ones(self) -> np.ndarray:
        return np.ones(int(self.clusters.max()) + 1) if self.clusters.size else np.ones(0)

    def _terms(self, counts: Any) -> tuple[Any, ...]:
        """``(all, within)`` numerators and denominators under cluster counts ``[..., C]``.

        ``all`` counts every pair between the drawn copies (``w' pairs w``); ``within`` counts each
        copy's own pairs once (``sum_a w_a pairs[a, a]``). The pairs between two copies of one
        cluster (``(w_a^2 - w_a) pairs[a, a]``) are neither: they are not pairs of one turn, and
        not pairs of two different ones.
        """
        w = np.asarray(counts, dtype=np.float64)[..., self.clusters]
        diag, own = np.diagonal(self.pairs), self._own_pairs()
        num_all = ((w @ self.pairs) * w).sum(-1)
        if self.strata_pos is None or self.strata_neg is None:
            den_all = (w @ self.n_pos) * (w @ self.n_neg)
        else:
            den_all = ((w @ self.strata_pos.T) * (w @ self.strata_neg.T)).sum(-1)
        copies = w * w - w  # ordered pairs of two distinct copies of one cluster
        return num_all - copies @ diag, den_all - copies @ own, w @ diag, w @ own

    def _own_pairs(self) -> np.ndarray:
        """``[C]`` comparable pairs within each cluster (within each stratum when stratified)."""
        if self.strata_pos is None or self.strata_neg is None:
            return self.n_pos * self.n_neg
        return (self.strata_pos * self.strata_neg).sum(0)

    def resample(self, counts: Any) -> np.ndarray:
        """AUROC under cluster counts ``[..., C]`` indexed by cluster code (NaN: no pair).

        Pairs between two copies of one drawn cluster are left out (see :meth:`within`).
        """
        num, den, _, _ = self._terms(counts)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(num / den)

    def within(self, counts: Any = None) -> np.ndarray:
        """AUROC over pairs of one cluster (a positive and a negative of the same turn) only."""
        _, _, num, den = self._terms(self._ones() if counts is None else counts)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(num / den)

    def between(self, counts: Any = None) -> np.ndarray:
        """AUROC over pairs of two different clusters only (no pair of one cluster, nor of two
        copies of one cluster)."""
        num, den, num_in, den_in = self._terms(self._ones() if counts is None else counts)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((num - num_in) / (den - den_in))


def column_aurocs(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """``[J]`` AUROC of each column of ``pos`` (``[P, J]``) against ``neg`` (``[N, J]``), ties
    counted half: average ranks per column, all columns in one sort.

    Example:
        >>> column_aurocs(np.array([[3.0, 1.0], [1.0, 1.0]]), np.array([[2.0, 1.0]])).tolist()
        [0.5, 0.5]
    """
    x = np.concatenate([pos, neg])
    n, p = x.shape[0], pos.shape[0]
    if p == 0 or n == p:
        return np.full(x.shape[1], np.nan)
    order = np.argsort(x, axis=0, kind="mergesort")
    xs = np.take_along_axis(x, order, axis=0)
    new = np.ones(xs.shape, dtype=bool)
    new[1:] = xs[1:] != xs[:-1]
    idx = np.arange(n)[:, None]
    start = np.maximum.accumulate(np.where(new, idx, 0), axis=0)
    last = np.ones(xs.shape, dtype=bool)
    last[:-1] = new[1:]
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[::-1], axis=0)[::-1]
    ranks = np.empty_like(xs)
    np.put_along_axis(ranks, order, (start + end) / 2.0 + 1.0, axis=0)
    u = ranks[:p].sum(0) - p * (p + 1) / 2.0
    return u / (p * (n - p))


def group_wins(
    pos: np.ndarray, neg: np.ndarray, pos_group: np.ndarray, neg_group: np.ndarray
) -> tuple[np.ndarray, float]:
    """``([J] wins, pairs)`` over positive/negative pairs of the same group only (ties half),
    for every column of ``pos`` (``[P, J]``) and ``neg`` (``[N, J]``) at once.

    Example:
        >>> w, n = group_wins(np.array([[3.0], [1.0]]), np.array([[2.0], [5.0]]),
        ...                   np.array([0, 1]), np.array([0, 1]))
        >>> w.tolist(), n
        ([1.0], 2.0)
    """
    wins = np.zeros(pos.shape[1])
    pairs = 0.0
    for g in np.intersect1d(pos_group, neg_group):
        a, b = pos[pos_group == g], neg[neg_group == g]
        d = a[:, None, :] - b[None, :, :]
        wins += (d > 0).sum((0, 1)) + 0.5 * (d == 0).sum((0, 1))
        pairs += a.shape[0] * b.shape[0]
    return wins, pairs
