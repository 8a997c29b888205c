"""The jump of a score at a cut, net of smooth position trends: a regression discontinuity.

For tokens of turns cut at a (real, placebo or pseudo) reward token, fit

    score = jump * AFTER + f(tokens since the turn's start) + g(tokens to the turn's end)
            + a fixed effect per turn + noise

with ``f`` and ``g`` shared by all turns: ``a`` (since start, linear) and ``log1p(a)``,
``log1p(b)`` up to ``degree`` (``b``: tokens to the end). The reward tokens themselves are not
in the data. The turn effects absorb everything constant within a turn (its depth in the
conversation, its length, its criterion); the smooth terms absorb ramps along the turn; what is
left at the cut is the jump. It is reported in units of the score's within-turn sd.

A position signal that ``f + g`` cannot express (e.g. relative position ``a / (a + b)``) leaves a
bias in the jump. The same bias appears at a placebo cut with the same geometry, so the
**difference in discontinuities** (real jump minus placebo jump, :meth:`Discontinuity.minus`)
cancels it: that is the estimate of value beyond position.

Intervals: the leave-one-cluster-out jackknife (clusters: criteria in the sweep) with a t
quantile on ``C - 1`` degrees of freedom (:mod:`value_lens.analysis.intervals`); the paired
difference leaves each cluster out of both fits at once. The regression is linear in the score,
so :class:`CutSums` keeps per-cluster sufficient statistics of many scores at once and every
refit (a cluster left out, another direction) is a small solve.

Example:
    >>> rng = np.random.default_rng(0)
    >>> turn = np.repeat(np.arange(24), 30); a = np.tile(np.arange(30), 24)
    >>> cut = np.repeat(rng.integers(8, 22, 24), 30); after = a > cut
    >>> score = 0.05 * a + 1.0 * after + rng.normal(0, 1, a.size)
    >>> d = discontinuity(score, after=after, since_start=a, to_end=30 - a, turn=turn,
    ...                   cluster=turn // 2, standardize=False)
    >>> d.n_clusters, d.ci_lo < 1.0 < d.ci_hi
    (12, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from value_lens.analysis.intervals import jackknife_interval
from value_lens.analysis.metrics import percentile_ci
from value_lens.errors import InputError

__all__ = ["CutSums", "Discontinuity", "discontinuity", "position_basis"]


def position_basis(since_start: Any, to_end: Any, degree: int = 2) -> np.ndarray:
    """``[N, 1 + 2 degree]`` smooth position terms: ``a / 100``, ``log1p(a)**k``,
    ``log1p(b)**k`` for ``k = 1..degree`` (``a`` tokens since the turn's start, ``b`` to its end).

    A linear term in ``b`` is left out: within a turn ``a + b`` is constant, so it is the turn
    effect minus ``a``.
    """
    if degree < 1:
        raise InputError(f"degree must be >= 1, got {degree}")
    a = np.asarray(since_start, dtype=np.float64).reshape(-1)
    b = np.asarray(to_end, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or (a < 0).any() or (b < 0).any():
        raise InputError("since_start and to_end need one non-negative value per token")
    la, lb = np.log1p(a), np.log1p(b)
    cols = (
        [a / 100.0] + [la**k for k in range(1, degree + 1)] + [lb**k for k in range(1, degree + 1)]
    )
    return np.stack(cols, axis=1)


def _codes(x: Any, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(x).reshape(-1)
    if arr.size != n:
        raise InputError(f"{name} needs one value per token ({n}), got {arr.size}")
    uniq, inv = np.unique(arr, return_inverse=True)
    return uniq, inv.reshape(-1)


@dataclass(frozen=True)
class CutSums:
    """Per-cluster sufficient statistics of the within-turn regression, for ``K`` scores at once.

    Attributes:
        clusters: the cluster labels, sorted (``[C]``).
        xtx / xty: ``[C, p, p]`` and ``[C, p, K]`` cross products of the design (AFTER first)
            and the scores, both net of each turn's level (and trend, see :meth:`of`).
        yty: ``[C, K, K]`` cross products of the scores net of each turn's level (the
            within-turn variance the jump is scaled by).
        n / n_turns: ``[C]`` tokens and turns per cluster.
        per_turn: parameters each turn takes (1: a level; 2: a level and a trend).
    """

    clusters: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yty: np.ndarray
    n: np.ndarray
    n_turns: np.ndarray
    per_turn: int = 1
    _summed: dict[bytes, tuple[np.ndarray, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def _sum(self, keep: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(xtx, xty, yty)`` summed over the clusters weighted by ``keep`` (remembered)."""
        key = keep.tobytes()
        if key not in self._summed:
            self._summed[key] = (
                np.tensordot(keep, self.xtx, axes=1),
                np.tensordot(keep, self.xty, axes=1),
                np.tensordot(keep, self.yty, axes=1),
            )
        return self._summed[key]

    @classmethod
    def of(
        cls,
        scores: Any,
        *,
        after: Any,
        since_start: Any,
        to_end: Any,
        turn: Any,
        cluster: Any,
        degree: int = 2,
        trend: str = "turn",
    ) -> CutSums:
        """The statistics of ``scores`` (``[N]`` or ``[N, K]``); turns must nest in clusters.

        ``trend="turn"`` gives every turn its own linear trend in position (besides its own
        level), so any position signal that is linear within each turn (a ramp from the turn's
        start of any slope, relative position, a ramp steeper deeper in the conversation) is
        absorbed exactly; ``"shared"`` fits one trend for all turns.
        """
        if trend not in ("turn", "shared"):
            raise InputError(f"trend must be 'turn' or 'shared', got {trend!r}")
        y = np.asarray(scores, dtype=np.float64)
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        n = y.shape[0]
        if not np.isfinite(y).all():
            raise InputError("the scores contain NaN or Inf; drop those tokens first")
        aft = np.asarray(after, dtype=bool).reshape(-1)
        if aft.size != n:
            raise InputError(f"after needs one value per token ({n}), got {aft.size}")
        basis = position_basis(since_start, to_end, degree)
        if trend == "turn":
            basis = basis[:, 1:]  # the raw trend in a is each turn's own
        x = np.column_stack([aft.astype(np.float64), basis])
        _, t = _codes(turn, "turn", n)
        labels, c = _codes(cluster, "cluster", n)
        turn_cluster = np.full(int(t.max()) + 1 if n else 0, -1)
        turn_cluster[t] = c
        if n and (turn_cluster[t] != c).any():
            raise InputError("every turn must lie in one cluster (turns nest in clusters)")
        by_turn = _ByTurn(t)
        yd = y - by_turn.mean(y)
        a = np.asarray(since_start, dtype=np.float64).reshape(-1, 1)
        xd = by_turn.detrend(x, a) if trend == "turn" else x - by_turn.mean(x)
        yr = by_turn.detrend(y, a) if trend == "turn" else yd
        C = labels.size
        xtx = np.zeros((C, x.shape[1], x.shape[1]))
        xty = np.zeros((C, x.shape[1], y.shape[1]))
        yty = np.zeros((C, y.shape[1], y.shape[1]))
        for k in range(C):
            m = c == k
            xtx[k], xty[k], yty[k] = xd[m].T @ xd[m], xd[m].T @ yr[m], yd[m].T @ yd[m]
        n_c = np.bincount(c, minlength=C).astype(np.float64)
        turns_c = np.bincount(turn_cluster, minlength=C).astype(np.float64)
        return cls(labels, xtx, xty, yty, n_c, turns_c, 2 if trend == "turn" else 1)

    def jumps(self, weights: Any, keep: Any, *, standardize: bool = True) -> np.ndarray:
        """The jump of the score ``scores @ weights[j]`` on the clusters ``keep[j]`` (0/1 or
        counts, ``[J, C]``), for each ``j`` (``weights``: ``[K]`` or ``[J, K]``); NaN where the
        jump is not identified (AFTER collinear with position, no within-turn variance)."""
        keep = np.atleast_2d(np.asarray(keep, dtype=np.float64))
        w = np.asarray(weights, dtype=np.float64)
        w = np.broadcast_to(w, (keep.shape[0], w.shape[-1]))
        C, p, K = self.xty.shape
        # the sums over clusters once per distinct ``keep`` row (refits share theirs, and
        # so do the scores of one split: kept in ``_summed``)
        rows, inv = np.unique(keep, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        summed = [self._sum(r) for r in rows]
        xtx = np.stack([x for x, _, _ in summed])[inv]
        xtyw = np.empty((w.shape[0], p))
        ss = np.empty(w.shape[0])
        for u, (_, xty, yty) in enumerate(summed):
            j = inv == u
            xtyw[j] = w[j] @ xty.T
            ss[j] = ((w[j] @ yty) * w[j]).sum(1)
        dof = keep @ self.n - keep @ self.n_turns
        dof_fit = keep @ self.n - self.per_turn * (keep @ self.n_turns) - xtx.shape[1]
        beta0 = _first_coef(xtx, xtyw)
        sd = np.sqrt(np.maximum(ss, 0.0) / np.maximum(dof, 1.0)) if standardize else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out = beta0 / sd
        return np.where((dof_fit > 0) & np.isfinite(out), out, np.nan)


def _first_coef(xtx: np.ndarray, xty: np.ndarray) -> np.ndarray:
    """``[J]`` AFTER coefficients of the normal equations ``xtx[j] b = xty[j]`` (NaN where AFTER
    is not identified: no variance left once position is accounted for)."""
    rest = np.linalg.pinv(xtx[:, 1:, 1:], rcond=1e-10)
    cross = np.einsum("jp,jpq->jq", xtx[:, 0, 1:], rest)
    schur = xtx[:, 0, 0] - np.einsum("jq,jq->j", cross, xtx[:, 1:, 0])
    num = xty[:, 0] - np.einsum("jq,jq->j", cross, xty[:, 1:])
    ok = (xtx[:, 0, 0] > 0) & (schur > 1e-8 * np.maximum(xtx[:, 0, 0], 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, num / schur, np.nan)


class _ByTurn:
    """Per-turn means and linear trends of token arrays (turn codes ``0..T-1``)."""

    def __init__(self, t: np.ndarray) -> None:
        self.t, self.order = t, np.argsort(t, kind="stable")
        counts = np.bincount(t)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.count = counts.astype(np.float64)[:, None]

    def sums(self, v: np.ndarray) -> np.ndarray:
        return np.add.reduceat(v[self.order], self.starts, axis=0)

    def mean(self, v: np.ndarray) -> np.ndarray:
        """Each token's turn mean of ``v`` (``[N, K]``)."""
        return (self.sums(v) / self.count)[self.t]

    def detrend(self, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``v`` net of each turn's own least-squares line in ``a`` (``[N, 1]``)."""
        vc, ac = v - self.mean(v), a - self.mean(a)
        saa = self.sums(ac * ac)
        slope = np.divide(
            self.sums(ac * vc), saa, out=np.zeros((saa.size, v.shape[1])), where=saa > 1e-12
        )
        return vc - slope[self.t] * ac


@dataclass(frozen=True)
class Discontinuity:
    """A jump at the cut with its jackknife interval over clusters.

    Attributes:
        jump: the AFTER coefficient, in within-turn sd of the score (raw units when fitted with
            ``standardize=False``).
        ci_lo / ci_hi: the interval at ``level`` (jackknife t on ``n_clusters - 1`` df; a
            percentile cluster bootstrap with ``interval="bootstrap"``); NaN with < 3 clusters.
        se: the jackknife standard error.
        n_turns / n_clusters / n_tokens: what the fit used.
        clusters / loo: each cluster's label and the jump without it (for paired differences).
        level: the interval's coverage.
    """

    jump: float
    ci_lo: float
    ci_hi: float
    se: float
    n_turns: int
    n_clusters: int
    n_tokens: int
    clusters: tuple[Any, ...] = ()
    loo: tuple[float, ...] = ()
    level: float = 0.95

    def minus(self, other: Discontinuity) -> Discontinuity:
        """``self - other`` with a paired jackknife: each cluster left out of both fits at once
        (a cluster only one side has leaves the other side's jump unchanged).

        Example:
            >>> a = Discontinuity(1.0, 0, 2, 0.5, 6, 3, 60, ("x", "y", "z"), (0.9, 1.1, 1.0))
            >>> b = Discontinuity(0.4, 0, 1, 0.2, 6, 3, 60, ("x", "y", "w"), (0.5, 0.3, 0.4))
            >>> d = a.minus(b)
            >>> d.clusters, [round(v, 2) for v in d.loo]   # w only on b's side, z only on a's
            (('w', 'x', 'y', 'z'), [0.6, 0.4, 0.8, 0.6])
        """
        mine, theirs = (
            dict(zip(self.clusters, self.loo, strict=True)),
            dict(zip(other.clusters, other.loo, strict=True)),
        )
        labels = tuple(sorted(set(mine) | set(theirs), key=str))
        loo = tuple(mine.get(c, self.jump) - theirs.get(c, other.jump) for c in labels)
        point = self.jump - other.jump
        iv = jackknife_interval(point, loo, self.level)
        return Discontinuity(
            point,
            iv.lo,
            iv.hi,
            iv.se,
            self.n_turns + other.n_turns,
            iv.n_clusters,
            self.n_tokens + other.n_tokens,
            labels,
            loo,
            self.level,
        )


def discontinuity(
    score: Any,
    *,
    after: Any,
    since_start: Any,
    to_end: Any,
    turn: Any,
    cluster: Any,
    degree: int = 2,
    trend: str = "turn",
    standardize: bool = True,
    level: float = 0.95,
    interval: str = "jackknife",
    n_boot: int = 1000,
    seed: int = 0,
) -> Discontinuity:
    """The jump of ``score`` at the cut (``after`` = token after it), net of smooth position.

    Args:
        score: one value per token (e.g. a direction's cosine, or any readout).
        after: whether the token comes after its turn's cut (reward tokens already left out).
        since_start / to_end: tokens since the turn's first token, and to one past its last.
        turn: the token's turn (any labels); each turn gets a fixed effect.
        cluster: the unit the interval leaves out (e.g. the criterion); turns nest in clusters.
        degree: the order of the ``log1p`` terms of the smooth position trends.
        trend: ``"turn"`` (default): each turn also gets its own linear trend in position, so
            position signals linear within each turn are absorbed exactly; ``"shared"``: one
            trend for all turns (more power, less robust).
        standardize: report the jump in within-turn sd of the score (else raw units).
        level: the interval's coverage.
        interval: ``"jackknife"`` (default: it covered at 12 clusters in the coverage tests)
            or ``"bootstrap"`` (percentile, ``n_boot`` cluster resamples seeded by ``seed``).

    Returns:
        A :class:`Discontinuity`; :meth:`Discontinuity.minus` gives the difference in
        discontinuities against a placebo cut.
    """
    sums = CutSums.of(
        score,
        after=after,
        since_start=since_start,
        to_end=to_end,
        turn=turn,
        cluster=cluster,
        degree=degree,
        trend=trend,
    )
    C = sums.clusters.size
    keep = np.vstack([np.ones((1, C)), 1.0 - np.eye(C)])
    vals = sums.jumps(np.ones(1), keep, standardize=standardize)
    point, loo = float(vals[0]), vals[1:]
    if interval == "jackknife":
        iv = jackknife_interval(point, loo, level)
        lo, hi, se = iv.lo, iv.hi, iv.se
    elif interval == "bootstrap":
        rng = np.random.default_rng(seed)
        draws = np.stack([np.bincount(rng.integers(0, C, C), minlength=C) for _ in range(n_boot)])
        boot = sums.jumps(np.ones(1), draws, standardize=standardize)
        lo, hi = percentile_ci(boot, level) if np.isfinite(boot).any() else (math.nan, math.nan)
        se = float(np.nanstd(boot, ddof=1))
    else:
        raise InputError(f"interval must be 'jackknife' or 'bootstrap', got {interval!r}")
    return Discontinuity(
        point,
        lo,
        hi,
        se,
        int(sums.n_turns.sum()),
        C,
        int(sums.n.sum()),
        tuple(sums.clusters.tolist()),
        tuple(float(v) for v in loo),
        level,
    )
