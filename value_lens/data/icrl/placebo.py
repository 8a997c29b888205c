"""Placebo turns: failed attempts labelled around a pseudo-reward position.

The paper's contrast (tokens after minus before the criterion-satisfying token) is confounded
with position: AFTER tokens always come later in the turn than BEFORE tokens. A placebo turn is
an attempt that did **not** satisfy the criterion, cut at a pseudo-reward position drawn so that
its relative position in the turn matches the real labelled turns of the same criterion. Its
tokens before the cut are ``PLACEBO_BEFORE`` and after it ``PLACEBO_AFTER``; the pseudo-reward
tokens are ``IGNORE``. A direction that only tracks position separates placebo turns as well as
real ones; a value direction should not separate them.

Placebo turns are the failed attempts that precede a labelled turn, so they already sit in its
token sequence: they cost no extra forward pass. Each failed attempt is labelled once per
conversation, in the first labelled sequence that contains it.

Example:
    >>> cut = relative_cut(first=3, last=4, start=2, end=12)   # reward tokens 3..4 of turn 2..12
    >>> cut
    (0.1, 0.2)
    >>> place_cut(cut, start=20, end=40)                       # same relative place, 20 tokens
    (22, 24)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from random import Random
from typing import Any

import torch

from value_lens.data.tokens import IGNORE, PLACEBO_AFTER, PLACEBO_BEFORE, REWARD

__all__ = ["apply_placebo", "criterion_cuts", "place_cut", "relative_cut"]

Cut = tuple[float, float]


def relative_cut(*, first: int, last: int, start: int, end: int) -> Cut:
    """Relative position in ``[start, end)`` of a turn's first and last reward token."""
    n = end - start
    return (first - start) / n, (last - start) / n


def place_cut(cut: Cut, *, start: int, end: int) -> tuple[int, int]:
    """Token indices ``(k0, k1)`` of the pseudo-reward span at relative position ``cut``."""
    n = end - start
    k0 = start + min(n - 1, math.floor(cut[0] * n))
    k1 = max(k0, start + min(n - 1, math.floor(cut[1] * n)))
    return k0, k1


def apply_placebo(
    labels: torch.Tensor,
    candidates: Sequence[tuple[int, int, int]],
    cuts: Sequence[Cut],
    *,
    rng: Random,
    min_side_tokens: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Label each candidate turn ``(message_index, start, end)`` in place around a drawn cut.

    ``cuts`` are the real turns' relative cuts for this criterion; one is drawn per candidate.
    Returns the ``placebo_turns`` meta records and the reasons of the candidates left out.
    """
    turns: list[dict[str, Any]] = []
    dropped: list[str] = []
    for mi, start, end in candidates:
        k0, k1 = place_cut(cuts[rng.randrange(len(cuts))], start=start, end=end)
        if min(k0 - start, end - 1 - k1) < min_side_tokens:
            dropped.append(f"placebo too short: {k0 - start} before, {end - 1 - k1} after")
            continue
        labels[start:k0] = PLACEBO_BEFORE
        labels[k0 : k1 + 1] = IGNORE
        labels[k1 + 1 : end] = PLACEBO_AFTER
        turns.append({"message_index": mi, "turn_start": start, "turn_end": end, "cut": [k0, k1]})
    return turns, dropped


def criterion_cuts(
    labels: Sequence[torch.Tensor], metas: Sequence[Mapping[str, Any]], groups: Sequence[str]
) -> dict[str, list[Cut]]:
    """The relative reward cuts of every real labelled turn, per criterion."""
    out: dict[str, list[Cut]] = {}
    for lab, meta, g in zip(labels, metas, groups, strict=True):
        reward = (lab == REWARD).nonzero().flatten()
        cut = relative_cut(
            first=int(reward[0]),
            last=int(reward[-1]),
            start=int(meta["turn_start"]),
            end=int(meta["turn_end"]),
        )
        out.setdefault(g, []).append(cut)
    return out
