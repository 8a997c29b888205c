"""Placebo cuts matched to the real turn they are compared with, and within-turn pseudo-cuts.

The paper's contrast (tokens after minus before the criterion-satisfying token) is confounded
with position: AFTER tokens always come later in the turn than BEFORE tokens. Two placebos share
that geometry but carry no reward:

* **Placebo turns**: a failed attempt of the same conversation (an earlier assistant turn that
  missed the criterion), cut at a pseudo-reward span of the real turn's reward length. The cut is
  placed so that the tokens before and after it match the **real turn of the same sequence** in
  number, the length difference split between the two sides (:func:`matched_cut`); a turn whose
  sides would differ by more than ``tolerance`` tokens is dropped and counted. Tokens before the
  cut are ``PLACEBO_BEFORE``, after it ``PLACEBO_AFTER``, the pseudo-reward span ``IGNORE``.
  Because each placebo turn is paired with its own sequence's real turn, a subset of the data
  (``subset``, ``select_groups``, ``shortest_per_group``) keeps matched cuts: no draw depends on
  other sequences. :func:`rematch_placebo` re-cuts placebo turns from their recorded spans
  (``meta["placebo_turns"]``), so data labelled elsewhere or by an older version is matched too;
  the layer sweep calls it.
* **Within-turn pseudo-cuts** (:func:`pseudo_cut`): the BEFORE span of a real turn split at a
  pseudo-reward span of the real reward's length, with its two sides in the real turn's proportion
  of BEFORE to AFTER tokens. Same turn, same depth in the conversation, no reward: the
  regression-discontinuity placebo. Its tokens keep their ``BEFORE`` label (they still belong to
  the real contrast); their role at the pseudo-cut, ``PSEUDO_BEFORE`` or ``PSEUDO_AFTER`` (see
  :mod:`value_lens.data.tokens`), is derived from the turn's geometry wherever it is needed.

Example:
    >>> matched_cut(before=40, after=30, reward=1, start=100, end=175)  # placebo 75 vs real 71
    (142, 142)
    >>> matched_cut(before=40, after=30, reward=1, start=100, end=200, tolerance=5) is None
    True
    >>> pseudo_cut(start=0, first=60, last=60, end=91)   # 59 BEFORE tokens split 2:1 (60 vs 30)
    (39, 39)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from value_lens.data.tokens import (
    AFTER,
    BEFORE,
    IGNORE,
    PLACEBO_AFTER,
    PLACEBO_BEFORE,
    REWARD,
    LabelledTokens,
)
from value_lens.errors import InputError

__all__ = [
    "DEFAULT_TOLERANCE",
    "PlaceboMatch",
    "matched_cut",
    "pseudo_cut",
    "real_cut",
    "rematch_placebo",
]

#: default largest difference, in tokens, between a placebo turn's side and its real turn's side
DEFAULT_TOLERANCE = 5


def matched_cut(
    *,
    before: int,
    after: int,
    reward: int,
    start: int,
    end: int,
    tolerance: int = DEFAULT_TOLERANCE,
    min_side_tokens: int = 1,
) -> tuple[int, int] | None:
    """Token indices ``(k0, k1)`` of a pseudo-reward span of ``reward`` tokens in turn
    ``[start, end)`` whose sides match a real turn's ``before`` and ``after`` counts.

    The length difference ``(end - start) - (before + reward + after)`` is split between the two
    sides (the odd token goes after), so each side differs from the real one by at most half of
    it, unless that leaves a side with fewer than ``min_side_tokens`` (then the nearest placement
    that does not: the worst side's difference is smallest there). ``None`` when a side would
    differ by more than ``tolerance`` tokens.
    """
    if min(before, after, tolerance) < 0 or reward < 1:
        raise InputError("matched_cut needs before, after, tolerance >= 0 and reward >= 1 (tokens)")
    room = (end - start) - reward  # tokens on the two sides together
    if room < 2 * min_side_tokens:
        return None
    diff = room - (before + after)
    b = before + diff // 2 if diff >= 0 else before - (-diff) // 2
    # the worst side's deviation is convex in b: the nearest placement that leaves both sides
    # min_side_tokens is the best one
    b = min(max(b, min_side_tokens), room - min_side_tokens)
    a = room - b
    if max(abs(b - before), abs(a - after)) > tolerance:
        return None
    return start + b, start + b + reward - 1


def real_cut(labels: torch.Tensor, start: int, end: int) -> tuple[int, int] | None:
    """``(k0, k1)``: the first and last REWARD token of turn ``[start, end)``, or, without REWARD
    labels, the gap between its last BEFORE and first AFTER token (``k1 = k0 - 1`` when they are
    adjacent). ``None`` if the turn lacks BEFORE or AFTER tokens."""
    lab = labels[start:end]
    reward = (lab == REWARD).nonzero().flatten()
    if reward.numel():
        return start + int(reward[0]), start + int(reward[-1])
    bef, aft = (lab == BEFORE).nonzero().flatten(), (lab == AFTER).nonzero().flatten()
    if not bef.numel() or not aft.numel():
        return None
    return start + int(bef[-1]) + 1, start + int(aft[0]) - 1


def pseudo_cut(*, start: int, first: int, last: int, end: int) -> tuple[int, int] | None:
    """The within-turn pseudo-cut of a real turn ``[start, end)`` with reward span
    ``[first, last]``: a span of the reward's length inside the BEFORE span ``[start, first)``,
    placed so that its two sides split the BEFORE tokens in the real turn's BEFORE:AFTER ratio.
    ``None`` when a side would be empty."""
    n_before, n_after, width = first - start, end - 1 - last, max(last - first + 1, 1)
    room = n_before - width
    if room < 2 or n_before + n_after == 0:
        return None
    b = round(room * n_before / (n_before + n_after))
    b = min(max(b, 1), room - 1)
    return start + b, start + b + width - 1


@dataclass
class PlaceboMatch:
    """What :func:`rematch_placebo` kept: matched placebo turns, and why the others were dropped."""

    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        drops = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items()))
        return f"{self.kept} placebo turns matched" + (f"; dropped {drops}" if drops else "")


def _relabel(lab: torch.Tensor, turn: dict[str, Any], cut: tuple[int, int] | None) -> None:
    s, e = int(turn["turn_start"]), int(turn["turn_end"])
    placebo = (lab[s:e] == PLACEBO_BEFORE) | (lab[s:e] == PLACEBO_AFTER)
    lab[s:e][placebo] = IGNORE
    if cut is not None:
        k0, k1 = cut
        lab[s:k0], lab[k0 : k1 + 1], lab[k1 + 1 : e] = PLACEBO_BEFORE, IGNORE, PLACEBO_AFTER


def match_sequence(
    lab: torch.Tensor,
    meta: dict[str, Any],
    *,
    tolerance: int,
    min_side_tokens: int,
    report: PlaceboMatch,
) -> list[dict[str, Any]]:
    """Cut sequence ``lab``'s placebo turns (``meta["placebo_turns"]``, in place) against its real
    turn (``meta["turn_start"]``/``["turn_end"]``); returns the updated turn records."""
    turns = [dict(t) for t in meta.get("placebo_turns", ())]
    real = None
    if "turn_start" in meta and "turn_end" in meta:
        real = real_cut(lab, int(meta["turn_start"]), int(meta["turn_end"]))
    for t in turns:
        cut = None
        if real is None:
            why = "no real turn to match in the sequence"
        else:
            s, e = int(meta["turn_start"]), int(meta["turn_end"])
            cut = matched_cut(
                before=real[0] - s,
                after=e - 1 - real[1],
                reward=max(real[1] - real[0] + 1, 1),
                start=int(t["turn_start"]),
                end=int(t["turn_end"]),
                tolerance=tolerance,
                min_side_tokens=min_side_tokens,
            )
            why = f"longer or shorter than the real turn by more than {2 * tolerance} tokens"
        _relabel(lab, t, cut)
        t["cut"] = None if cut is None else [cut[0], cut[1]]
        if cut is None:
            report.dropped[why] += 1
        else:
            report.kept += 1
    return turns


def rematch_placebo(
    data: LabelledTokens,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    min_side_tokens: int = 3,
) -> tuple[LabelledTokens, PlaceboMatch]:
    """A copy of ``data`` whose placebo turns are cut to match the real turn of their sequence.

    Placebo turns come from ``meta["placebo_turns"]`` (records with ``turn_start`` and
    ``turn_end``, as :func:`value_lens.data.icrl.label` writes them). Sequences without such
    records keep their labels. Idempotent: matched data comes back unchanged.

    Example:
        >>> d = LabelledTokens.from_lists(
        ...     [[7] * 20], [[-1] * 10 + [0, 0, 0, 2, 1, 1, 1, 1, 1, -1]], ["g"],
        ...     meta=[{"turn_start": 10, "turn_end": 19,
        ...            "placebo_turns": [{"turn_start": 0, "turn_end": 10}]}])
        >>> m, rep = rematch_placebo(d, min_side_tokens=1)
        >>> m.labels[0][:10].tolist(), rep.kept
        ([3, 3, 3, -1, 4, 4, 4, 4, 4, 4], 1)
    """
    report = PlaceboMatch()
    labels, metas = [], []
    for lab, meta in zip(data.labels, data.meta, strict=True):
        if not meta.get("placebo_turns"):
            labels.append(lab)
            metas.append(meta)
            continue
        new = lab.clone()
        turns = match_sequence(
            new, meta, tolerance=tolerance, min_side_tokens=min_side_tokens, report=report
        )
        labels.append(new)
        metas.append({**meta, "placebo_turns": turns})
    out = LabelledTokens(
        list(data.input_ids), labels, list(data.groups), targets=data.targets, meta=metas
    )
    return out, report
