"""The position design of a sweep: which tokens sit around which cut, and their clusters.

Three cuts are read off the same held-out tokens (:class:`Cut`):

* ``real``: BEFORE vs AFTER tokens around the reward token of each labelled turn;
* ``placebo``: PLACEBO_BEFORE vs PLACEBO_AFTER tokens of failed attempts, cut to match their
  sequence's real turn (:func:`value_lens.data.placebo.rematch_placebo`);
* ``pseudo``: a real turn's BEFORE tokens around its within-turn pseudo-cut
  (:func:`value_lens.data.placebo.pseudo_cut`): PSEUDO_BEFORE vs PSEUDO_AFTER, with the pseudo
  turn ending at the real reward token.

Each cut carries, per token, tokens since its turn's start and to its turn's end, and a turn id
(the fixed effect of the discontinuity and the unit of the within/between-turn AUROC split).
:func:`cluster_codes_of` gives the unit the intervals leave out.

Example:
    >>> c = Cut(np.array([0, 1]), np.array([False, True]), np.array([0, 3]), np.array([4, 1]),
    ...         np.array([7, 7]))
    >>> c.take(np.array([False, True])).idx.tolist()
    [1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from value_lens.analysis.clusters import cluster_codes
from value_lens.analysis.sweep.tokens import TokenProjections
from value_lens.data.placebo import pseudo_cut, real_cut
from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE, LabelledTokens
from value_lens.errors import InputError

__all__ = ["Cut", "Design", "build_design", "cluster_codes_of"]


@dataclass(frozen=True)
class Cut:
    """The tokens of one cut design (``idx`` into the sweep's tokens) and their geometry."""

    idx: np.ndarray
    after: np.ndarray
    since: np.ndarray
    to_end: np.ndarray
    turn: np.ndarray

    def take(self, keep: np.ndarray) -> Cut:
        """The tokens ``keep`` (a mask over this cut's tokens)."""
        return Cut(
            self.idx[keep], self.after[keep], self.since[keep], self.to_end[keep], self.turn[keep]
        )

    @property
    def n_turns(self) -> int:
        return int(np.unique(self.turn).size)

    def has_both_sides(self) -> bool:
        return bool(self.after.any() and (~self.after).any())


@dataclass(frozen=True)
class Design:
    """The three cuts over the sweep's tokens, and the cluster of every token.

    Attributes:
        real / placebo / pseudo: the cuts (:class:`Cut`).
        cluster: ``[N]`` cluster code of every token (``0..n_clusters-1``).
        n_clusters: the number of clusters.
        unit: what a cluster is (``"group"``, ``"sequence"`` or a ``meta`` key).
    """

    real: Cut
    placebo: Cut
    pseudo: Cut
    cluster: np.ndarray
    n_clusters: int
    unit: str


def _real(tp: TokenProjections) -> Cut:
    m = np.flatnonzero(np.isin(tp.label, (BEFORE, AFTER)))
    return Cut(m, tp.label[m] == AFTER, tp.position[m] - tp.start[m], tp.to_end[m], tp.seq[m])


def _placebo(tp: TokenProjections) -> Cut:
    m = np.flatnonzero(np.isin(tp.label, (PLACEBO_BEFORE, PLACEBO_AFTER)))
    turn = tp.seq[m].astype(np.int64) * (1 << 32) + tp.start[m]
    return Cut(m, tp.label[m] == PLACEBO_AFTER, tp.position[m] - tp.start[m], tp.to_end[m], turn)


def _pseudo(data: LabelledTokens, tp: TokenProjections, real: Cut) -> Cut:
    """BEFORE tokens of every real turn with a pseudo-cut, around it."""
    keep = np.zeros(real.idx.size, dtype=bool)
    after = np.zeros(real.idx.size, dtype=bool)
    to_end = np.zeros(real.idx.size, dtype=np.int64)
    pos, seq = tp.position[real.idx], tp.seq[real.idx]
    for i in np.unique(seq):
        rows = np.flatnonzero((seq == i) & ~real.after)
        if rows.size == 0:
            continue
        s = int(tp.start[real.idx[rows[0]]])
        e = s + int(real.since[rows[0]] + real.to_end[rows[0]])
        cut = real_cut(data.labels[int(i)], s, e)
        pc = None if cut is None else pseudo_cut(start=s, first=cut[0], last=cut[1], end=e)
        if cut is None or pc is None:
            continue
        t = pos[rows]
        side = (t < pc[0]) | ((t > pc[1]) & (t < cut[0]))
        keep[rows[side]], after[rows[side]] = True, t[side] > pc[1]
        to_end[rows] = cut[0] - t
    return Cut(real.idx[keep], after[keep], real.since[keep], to_end[keep], real.turn[keep])


def cluster_codes_of(
    data: LabelledTokens, tp: TokenProjections, unit: str
) -> tuple[np.ndarray, int, str]:
    """Cluster code of every token, the count, and what a cluster is.

    ``unit`` is ``"group"`` (codes = the tokens' group indices), ``"sequence"``, or a ``meta``
    key whose value is shared by the sequences of one cluster (e.g. ``"conversation_id"``). When
    no sequence has that key, each sequence is its own cluster (reported as ``"sequence"``).
    """
    if unit == "group":
        return tp.group.astype(np.int64), int(tp.group.max()) + 1 if tp.group.size else 0, unit
    if unit == "sequence" or all(unit not in m for m in data.meta):
        labels: np.ndarray = tp.seq
        unit = "sequence"
    else:
        missing = [i for i, m in enumerate(data.meta) if unit not in m]
        if missing:
            raise InputError(
                f"{len(missing)} sequences (e.g. {missing[:3]}) have no meta[{unit!r}] while "
                f"others do; set it on every sequence or pick another cluster (e.g. 'group')"
            )
        labels = np.array([str(m[unit]) for m in data.meta])[tp.seq]
    (codes,), n = cluster_codes(labels)
    return codes, n, unit


def build_design(data: LabelledTokens, tp: TokenProjections, unit: str) -> Design:
    """The real, placebo and pseudo cuts of ``tp``'s tokens, and their clusters."""
    real = _real(tp)
    codes, n, unit = cluster_codes_of(data, tp, unit)
    return Design(real, _placebo(tp), _pseudo(data, tp, real), codes, n, unit)
