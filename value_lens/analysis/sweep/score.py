"""Scoring one split of a layer sweep: held-out AUROCs and discontinuities, each with its
leave-one-cluster-out values.

Every score is linear in a per-token matrix ``Y`` (``[N, K]``: the tokens' cosines with each
group's difference vector and placebo difference vector up to one scale per direction, the random
directions' cosines, then the position baselines), so a direction is a weight vector over its
columns. A criterion left out of a split's training set changes the weights (:class:`Family`);
one left out of its held-out set changes which tokens count. For each score this module returns
the split's value and its value with each cluster left out; :mod:`value_lens.analysis.sweep.table`
averages them over splits and turns them into intervals.

Example:
    >>> fam = Family("axis", np.array([0.5, 0.5, 0.0]), {0: np.array([0.0, 1.0, 0.0])})
    >>> list(fam.variants())   # the full weights first, then each refit by the group left out
    [None, 0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from value_lens.analysis.clusters import ClusterAUROC, column_aurocs, group_wins
from value_lens.analysis.discontinuity import CutSums
from value_lens.analysis.sweep.design import Cut

__all__ = ["Family", "Held", "SplitScores", "auroc_scores", "rd_scores"]

#: the AUROCs of a direction family: (name, cut, stratified, part)
AUROCS = (
    ("token", "real", False, "all"),
    ("between", "real", False, "between"),
    ("within", "real", False, "within"),
    ("matched", "real", True, "all"),
    ("placebo", "placebo", False, "all"),
)


@dataclass(frozen=True)
class Family:
    """A direction and its refits: ``weights`` over ``Y``'s columns, and ``drop[c]`` the weights
    with training cluster ``c`` left out (``None``: nothing left to fit)."""

    name: str
    weights: np.ndarray
    drop: dict[int, np.ndarray | None] = field(default_factory=dict)

    def variants(self) -> dict[int | None, np.ndarray | None]:
        """``None`` -> the full weights, then each refit by the cluster it leaves out."""
        out: dict[int | None, np.ndarray | None] = {None: self.weights}
        for c, w in self.drop.items():
            out[c] = w
        return out


@dataclass(frozen=True)
class Held:
    """One split's held-out tokens of a cut, with turn codes and their clusters."""

    cut: Cut
    turn_code: np.ndarray
    turn_cluster: np.ndarray
    strata: np.ndarray

    @classmethod
    def of(cls, cut: Cut, keep: np.ndarray, cluster: np.ndarray, width: int) -> Held:
        c = cut.take(keep)
        _, code = np.unique(c.turn, return_inverse=True)
        code = code.reshape(-1)
        turn_cluster = np.zeros(int(code.max()) + 1 if code.size else 0, dtype=np.int64)
        turn_cluster[code] = cluster[c.idx]
        strata = (c.since // width).astype(np.int64) * (1 << 32) + c.to_end // width
        return cls(c, code, turn_cluster, strata)

    def parts(self, score: np.ndarray, stratified: bool) -> ClusterAUROC | None:
        """Pair counts of AFTER vs BEFORE scores by turn (within position strata if asked)."""
        a = self.cut.after
        if not a.any() or a.all():
            return None
        s = score[self.cut.idx]
        st = {"pos_stratum": self.strata[a], "neg_stratum": self.strata[~a]} if stratified else {}
        return ClusterAUROC.of(
            s[a], s[~a], pos_cluster=self.turn_code[a], neg_cluster=self.turn_code[~a], **st
        )

    def support(self) -> tuple[int, int]:
        """Pairs within position strata, and turns with a token in a stratum with both sides."""
        a = self.cut.after
        keys, inv = np.unique(self.strata, return_inverse=True)
        n_pos = np.bincount(inv[a], minlength=keys.size)
        n_neg = np.bincount(inv[~a], minlength=keys.size)
        both = (n_pos > 0) & (n_neg > 0)
        return int((n_pos * n_neg).sum()), int(np.unique(self.turn_code[both[inv]]).size)


@dataclass
class SplitScores:
    """One split's scores: ``point[name]`` and ``loo[name]`` (``[C]``, the value with each
    cluster left out; the point where leaving it out changes nothing)."""

    point: dict[str, float] = field(default_factory=dict)
    loo: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, name: str, point: float, loo: np.ndarray | None = None) -> None:
        self.point[name] = point
        if loo is not None:
            self.loo[name] = loo


def _part(parts: ClusterAUROC | None, which: str, weights: np.ndarray | None = None) -> float:
    if parts is None:
        return float("nan")
    w = np.ones(parts.clusters.max() + 1) if weights is None else weights
    fn: Callable[..., np.ndarray] = {
        "all": parts.resample,
        "between": parts.between,
        "within": parts.within,
    }[which]
    return float(fn(w))


def auroc_scores(
    out: SplitScores,
    fam: Family,
    Y: np.ndarray,
    held: dict[str, Held],
    n_clusters: int,
    enough_matched: bool,
) -> None:
    """The AUROCs of ``fam`` (names ``{fam.name}_{token,between,within,matched,placebo}``).

    The full weights go through :class:`ClusterAUROC` (so each held-out cluster can be left out
    of the pairs); the refits, one per training cluster left out, are scored all at once
    (:func:`_refit_aurocs`).
    """
    built = _built(held, Y @ fam.weights, enough_matched)
    refits = _refit_aurocs(fam, Y, held, enough_matched)
    for name, cut, st, part in AUROCS:
        parts = built[(cut, st)]
        point = _part(parts, part)
        loo = np.full(n_clusters, point)
        if parts is not None:
            for c in np.unique(held[cut].turn_cluster):  # a held-out cluster left out
                loo[c] = _part(parts, part, (held[cut].turn_cluster != c).astype(float))
        for c, v in refits.get(name, {}).items():
            loo[c] = v
        out.add(f"{fam.name}_{name}", point, loo)


def _refit_aurocs(
    fam: Family, Y: np.ndarray, held: dict[str, Held], enough_matched: bool
) -> dict[str, dict[int, float]]:
    """Every AUROC of every refit of ``fam``, in one pass over the held-out tokens."""
    drops = [c for c, w in fam.drop.items() if w is not None]
    out: dict[str, dict[int, float]] = {name: {} for name, *_ in AUROCS}
    for c, w in fam.drop.items():
        if w is None:
            for name in out:
                out[name][c] = float("nan")
    if not drops:
        return out
    W = np.stack([fam.drop[c] for c in drops], axis=1)  # type: ignore[misc]
    real = held["real"]
    a = real.cut.after
    if a.any() and (~a).any():
        S = Y[real.cut.idx] @ W
        pooled = column_aurocs(S[a], S[~a])
        n_pairs = float(a.sum() * (~a).sum())
        tw, tp = group_wins(S[a], S[~a], real.turn_code[a], real.turn_code[~a])
        values = {"token": pooled, "within": tw / tp if tp else np.full(len(drops), np.nan)}
        rest = n_pairs - tp
        values["between"] = (pooled * n_pairs - tw) / rest if rest else np.full(len(drops), np.nan)
        if enough_matched:
            mw, mp = group_wins(S[a], S[~a], real.strata[a], real.strata[~a])
            values["matched"] = mw / mp if mp else np.full(len(drops), np.nan)
        for name, v in values.items():
            out[name].update(zip(drops, v.tolist(), strict=True))
    plc = held["placebo"]
    pa = plc.cut.after
    if pa.any() and (~pa).any():
        S = Y[plc.cut.idx] @ W
        out["placebo"].update(zip(drops, column_aurocs(S[pa], S[~pa]).tolist(), strict=True))
    return out


def _built(held: dict[str, Held], score: np.ndarray, enough_matched: bool) -> dict:
    """The pair counts each AUROC of :data:`AUROCS` reads, for one score."""
    return {
        ("real", False): held["real"].parts(score, False),
        ("real", True): held["real"].parts(score, True) if enough_matched else None,
        ("placebo", False): held["placebo"].parts(score, False),
    }


def rd_scores(
    out: SplitScores,
    fam: Family,
    sums: dict[str, CutSums | None],
    test_clusters: np.ndarray,
    n_clusters: int,
) -> None:
    """Discontinuities of ``fam`` at the real, placebo and pseudo cuts and the two differences
    (``{fam.name}_rd_{jump,placebo_jump,pseudo_jump,value,value_pseudo}``); ``rd_value`` is the
    real jump minus the placebo turns' jump, or minus the pseudo-cuts' without placebo turns."""
    rows: list[tuple[int | None, np.ndarray, np.ndarray]] = []
    base = np.zeros(n_clusters)
    base[test_clusters] = 1.0
    for drop, w in fam.variants().items():
        if w is not None:
            rows.append((drop, w, base))
    for c in test_clusters:
        keep = base.copy()
        keep[c] = 0.0
        rows.append((int(c), fam.weights, keep))
    jumps = {}
    for cut, s in sums.items():
        if s is None:
            jumps[cut] = np.full(len(rows), np.nan)
            continue
        keep = np.stack([_align(k, s) for _, _, k in rows])
        jumps[cut] = s.jumps(np.stack([w for _, w, _ in rows]), keep)
    # value beyond position: against placebo turns where the data have them, else pseudo-cuts
    against = jumps["placebo"] if sums["placebo"] is not None else jumps["pseudo"]
    names = {
        "rd_jump": jumps["real"],
        "rd_placebo_jump": jumps["placebo"],
        "rd_pseudo_jump": jumps["pseudo"],
        "rd_value": jumps["real"] - against,
        "rd_value_pseudo": jumps["real"] - jumps["pseudo"],
    }
    for name, v in names.items():
        loo = np.full(n_clusters, v[0])
        for (drop, _, _), x in zip(rows[1:], v[1:], strict=True):
            loo[drop] = x
        out.add(f"{fam.name}_{name}", float(v[0]), loo)


def _align(keep: np.ndarray, sums: CutSums) -> np.ndarray:
    """Cluster weights (indexed by cluster code) in the order of ``sums.clusters``."""
    return keep[sums.clusters.astype(np.int64)]
