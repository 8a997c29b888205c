"""Scoring every split of a sweep at one layer (the sweep's inner loop).

:class:`Context` holds what all layers share (splits, the position design, the held-out tokens
of every split); :func:`score_layer` builds the layer's score matrix ``Y`` and the cuts'
regression sums once, then scores each split: the axis and the DiD axis with their refits
(:mod:`value_lens.analysis.sweep.score`), the position baselines, the sign-aligned random
directions and the shuffled-label null.

Example:
    >>> Context.columns(2, 3)   # [diffs | placebo diffs | random | baselines | extra]
    {'diffs': slice(0, 2, None), 'placebo': slice(2, 4, None), 'random': slice(4, 7, None), 'baselines': slice(7, 11, None), 'extra': slice(11, 11, None)}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from value_lens.analysis.confounds import BASELINES, did_weights, position_scores
from value_lens.analysis.discontinuity import CutSums
from value_lens.analysis.metrics import auroc
from value_lens.analysis.sweep.config import SweepConfig
from value_lens.analysis.sweep.design import Cut, Design
from value_lens.analysis.sweep.explicit import Explicit
from value_lens.analysis.sweep.score import Family, Held, SplitScores, auroc_scores, rd_scores
from value_lens.analysis.sweep.splits import split_weights
from value_lens.analysis.sweep.tokens import TokenProjections

__all__ = ["Context", "LayerScores", "score_layer"]


@dataclass(frozen=True)
class Context:
    """What every layer of a sweep shares.

    Attributes:
        cfg: the sweep's settings.
        tp: the tokens (labels, groups, positions) without their projections.
        design: the real, placebo and pseudo cuts and the clusters.
        splits: training group indices per split.
        has_placebo: ``[G]`` groups with placebo turns (the DiD axis trains on those).
        n_shuffle: draws of the shuffled-label null in the projections (0 on the two-pass path).
        n_random: random directions.
        held: per split, the held-out tokens of each cut.
        tests: per split, the held-out cluster codes.
        support: per split, (pairs, turns) within position strata of the real cut.
        baselines: ``[N, 4]`` the position baselines' scores.
        baseline_scores: per split, the baselines' scores, filled by the first layer scored
            (position alone does not depend on the layer).
        explicit: the method's refitted directions when it is not a weighting of the groups'
            differences (:mod:`value_lens.analysis.sweep.explicit`), else ``None``.
        ex_start / rand_start: where that block and the random directions start among the
            projections' columns (``rand_start`` 0: right after the ``(2 + S) G`` core rows).
    """

    cfg: SweepConfig
    tp: TokenProjections
    design: Design
    splits: list[np.ndarray]
    has_placebo: np.ndarray
    n_shuffle: int
    n_random: int
    held: list[dict[str, Held]] = field(default_factory=list)
    tests: list[np.ndarray] = field(default_factory=list)
    support: list[tuple[int, int]] = field(default_factory=list)
    baselines: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    baseline_scores: dict[int, SplitScores] = field(default_factory=dict)
    explicit: Explicit | None = None
    ex_start: int = 0
    rand_start: int = 0

    @classmethod
    def create(
        cls, cfg: SweepConfig, tp: TokenProjections, design: Design, **kw: object
    ) -> Context:
        """The context, with each split's held-out tokens and the baselines' scores."""
        ctx = cls(cfg, tp, design, **kw)  # type: ignore[arg-type]
        G = int(ctx.has_placebo.size)
        group_of = np.zeros(design.n_clusters, dtype=np.int64)
        group_of[design.cluster] = tp.group
        for train in ctx.splits:
            test_groups = np.setdiff1d(np.arange(G), train)
            held_tok = np.isin(tp.group, test_groups)
            held = {
                name: Held.of(cut, held_tok[cut.idx], design.cluster, cfg.match_width)
                for name, cut in (
                    ("real", design.real),
                    ("placebo", design.placebo),
                    ("pseudo", design.pseudo),
                )
            }
            ctx.held.append(held)
            ctx.tests.append(np.flatnonzero(np.isin(group_of, test_groups)))
            ctx.support.append(held["real"].support())
        b = position_scores(tp.position, tp.start, tp.to_end)
        object.__setattr__(ctx, "baselines", np.stack([b[n] for n in BASELINES], axis=1))
        if not ctx.rand_start:
            object.__setattr__(ctx, "rand_start", (2 + ctx.n_shuffle) * G)
        return ctx

    @staticmethod
    def columns(n_groups: int, n_random: int, n_extra: int = 0) -> dict[str, slice]:
        """Where each kind of score sits in ``Y``'s columns."""
        G, R = n_groups, n_random
        b = 2 * G + R + len(BASELINES)
        return {
            "diffs": slice(0, G),
            "placebo": slice(G, 2 * G),
            "random": slice(2 * G, 2 * G + R),
            "baselines": slice(2 * G + R, b),
            "extra": slice(b, b + n_extra),
        }

    def axis_column(self, key: tuple[int, int | None]) -> int | None:
        """The ``Y`` column of an explicit method's fit (``None`` where that fit is absent)."""
        if self.explicit is None or key not in self.explicit.cols:
            return None
        G = int(self.has_placebo.size)
        return Context.columns(G, self.n_random)["extra"].start + self.explicit.cols[key]

    def enough_matched(self, s: int) -> bool:
        pairs, turns = self.support[s]
        return pairs >= self.cfg.min_matched_pairs and turns >= self.cfg.min_matched_turns


@dataclass
class LayerScores:
    """One layer's per-split scores, random-direction AUROCs [splits, R], shuffled-null AUROCs
    [splits, S] and function scores (per split: held-out criteria won)."""

    splits: list[SplitScores]
    random: np.ndarray
    random_rd: np.ndarray
    shuffled: np.ndarray
    wins: list[np.ndarray]


def _y(ctx: Context, proj: np.ndarray, norm: np.ndarray, G: int, k: int) -> np.ndarray:
    """``[N, K]``: cosines (up to a scale per direction) with the basis and the random
    directions, the baselines' scores, then an explicit method's readouts at layer ``k``."""
    safe = np.maximum(norm, 1e-12)[:, None]
    R0 = ctx.rand_start
    parts = [proj[:, : 2 * G] / safe, proj[:, R0 : R0 + ctx.n_random] / safe, ctx.baselines]
    ex = ctx.explicit
    if ex is not None:
        block = proj[:, ctx.ex_start : ctx.ex_start + ex.n].astype(np.float64)
        parts.append((block + ex.offset[k][None, :]) / safe)
    return np.concatenate(parts, axis=1).astype(np.float64)


def _sums(cut: Cut, Y: np.ndarray, design: Design, cfg: SweepConfig) -> CutSums | None:
    if not cut.has_both_sides():
        return None
    return CutSums.of(
        Y[cut.idx],
        after=cut.after,
        since_start=cut.since,
        to_end=cut.to_end,
        turn=cut.turn,
        cluster=design.cluster[cut.idx],
        degree=cfg.rd_degree,
        trend=cfg.rd_trend,
    )


def _families(ctx: Context, gram: np.ndarray, train: np.ndarray, K: int, s: int) -> list[Family]:
    """The axis and the DiD axis of a split, each with its refits without one training group."""
    G, method = ctx.has_placebo.size, ctx.cfg.method
    refit = ctx.design.unit == "group"

    def pad(w: np.ndarray | None) -> np.ndarray | None:
        return None if w is None else np.concatenate([w, np.zeros(K - w.size)])

    def unit(col: int | None) -> np.ndarray | None:
        if col is None:
            return None
        e = np.zeros(K)
        e[col] = 1.0
        return e

    def axis(tr: np.ndarray) -> np.ndarray | None:
        if ctx.explicit is not None:
            drop = np.setdiff1d(train, tr)
            return unit(ctx.axis_column((s, int(drop[0]) if drop.size else None)))
        if method == "did":
            return pad(did_weights(2 * G, G, tr[ctx.has_placebo[tr]]))
        return None if tr.size == 0 else pad(split_weights(gram[:G, :G], tr, method, 2 * G))

    def did(tr: np.ndarray) -> np.ndarray | None:
        return pad(did_weights(2 * G, G, tr[ctx.has_placebo[tr]]))

    out = []
    for name, fit in (("axis", axis), ("did", did)):
        w = fit(train)
        if w is None:
            continue
        drops = {int(c): fit(train[train != c]) for c in train} if refit else {}
        out.append(Family(name, w, drops))
    return out


def score_layer(
    ctx: Context,
    proj: np.ndarray,
    norm: np.ndarray,
    gram: np.ndarray,
    rand_dot: np.ndarray,
    k: int = 0,
) -> LayerScores:
    """Every split's scores at one layer (``proj``/``norm``/``gram``: that layer's projections
    and basis Gram matrix; ``k``: its index among the swept layers)."""
    G = int(ctx.has_placebo.size)
    Y = _y(ctx, proj, norm, G, k)
    K, C, cols = Y.shape[1], ctx.design.n_clusters, Context.columns(G, ctx.n_random)
    d = ctx.design
    sums = {
        "real": _sums(d.real, Y, d, ctx.cfg),
        "placebo": _sums(d.placebo, Y, d, ctx.cfg),
        "pseudo": _sums(d.pseudo, Y, d, ctx.cfg),
    }
    out = LayerScores(
        [],
        np.full((len(ctx.splits), ctx.n_random), np.nan),
        np.full((len(ctx.splits), ctx.n_random), np.nan),
        np.full((len(ctx.splits), ctx.n_shuffle), np.nan),
        [],
    )
    for s, train in enumerate(ctx.splits):
        sc = SplitScores()
        fams = _families(ctx, gram, train, K, s)
        for fam in fams:
            auroc_scores(sc, fam, Y, ctx.held[s], C, ctx.enough_matched(s))
            rd_scores(sc, fam, sums, ctx.tests[s], C)
        if s not in ctx.baseline_scores:  # position alone: the same at every layer
            base = SplitScores()
            for j, name in enumerate(BASELINES):
                e = np.zeros(K)
                e[cols["baselines"].start + j] = 1.0
                auroc_scores(base, Family(name, e), Y, ctx.held[s], C, ctx.enough_matched(s))
                rd_scores(base, Family(name, e), sums, ctx.tests[s], C)
            ctx.baseline_scores[s] = base
        sc.point.update(ctx.baseline_scores[s].point)
        sc.loo.update(ctx.baseline_scores[s].loo)
        out.splits.append(sc)
        out.wins.append(_group_dots(ctx, gram, fams, s)[np.setdiff1d(np.arange(G), train)] > 0)
        _random(out, s, ctx, Y, sums, rand_dot[train].mean(0), cols["random"])
        _shuffled(out, s, ctx, proj, norm, gram, train)
    return out


def _group_dots(ctx: Context, gram: np.ndarray, fams: list[Family], s: int) -> np.ndarray:
    """``[G]``: each group's difference vector dotted with split ``s``'s axis direction."""
    G = int(ctx.has_placebo.size)
    ex = ctx.explicit
    if ex is not None:
        return gram[:G, ctx.ex_start + ex.cols[(s, None)]]
    axis = next(f for f in fams if f.name == "axis").weights[: 2 * G]
    return gram[:G, : 2 * G] @ axis


def _random(
    out: LayerScores,
    s: int,
    ctx: Context,
    Y: np.ndarray,
    sums: dict[str, CutSums | None],
    align: np.ndarray,
    cols: slice,
) -> None:
    """Sign-aligned random directions (oriented by mean_g(d_g . r) over the training groups):
    held-out token AUROC and difference in discontinuities, points only."""
    held = ctx.held[s]["real"]
    a = held.cut.after
    keep = np.zeros(ctx.design.n_clusters)
    keep[ctx.tests[s]] = 1.0
    W = np.zeros((ctx.n_random, Y.shape[1]))
    W[np.arange(ctx.n_random), cols.start + np.arange(ctx.n_random)] = np.where(
        align < 0, -1.0, 1.0
    )
    for r in range(ctx.n_random):
        score = (Y[:, cols.start + r] * W[r, cols.start + r])[held.cut.idx]
        if a.any() and (~a).any():
            out.random[s, r] = auroc(score[a], score[~a])
    real, plc = sums["real"], sums["placebo"] or sums["pseudo"]
    if real is not None and plc is not None and ctx.n_random:
        k_r, k_p = keep[real.clusters.astype(int)], keep[plc.clusters.astype(int)]
        out.random_rd[s] = real.jumps(W, np.tile(k_r, (ctx.n_random, 1))) - plc.jumps(
            W, np.tile(k_p, (ctx.n_random, 1))
        )


def _shuffled(
    out: LayerScores,
    s: int,
    ctx: Context,
    proj: np.ndarray,
    norm: np.ndarray,
    gram: np.ndarray,
    train: np.ndarray,
) -> None:
    """The shuffled-label null: the same fit on vectors whose labels were permuted within each
    sequence (a noise floor: permuting within a sequence destroys position too)."""
    G = int(ctx.has_placebo.size)
    if ctx.explicit is not None:
        return  # the fitter, not a weighting of the groups' vectors: no shuffled refit
    held = ctx.held[s]["real"]
    a = held.cut.after
    M = (2 + ctx.n_shuffle) * G
    did_train = train[ctx.has_placebo[train]]
    for r in range(ctx.n_shuffle):
        blk = slice((2 + r) * G, (3 + r) * G)
        ws = np.zeros(M)
        if ctx.cfg.method == "did":
            if did_train.size == 0:
                continue
            ws[blk.start + did_train] = 1.0 / len(did_train)
        else:
            ws[blk] = split_weights(gram[blk, blk], train, ctx.cfg.method)
        if ws @ gram[:M, :M] @ ws <= 1e-12 * (ws**2 @ np.diag(gram[:M, :M])):
            continue  # the permuted vectors cancel: no direction (NaN)
        score = (proj[held.cut.idx, :M] @ ws) / np.maximum(norm[held.cut.idx], 1e-12)
        out.shuffled[s, r] = auroc(score[a], score[~a])
