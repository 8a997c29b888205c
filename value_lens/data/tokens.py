"""Labelled token sequences: the input format of collection, fitting and sweeps.

Each sequence has token ids, one integer label per token and one group id (for ICRL data, the
hidden criterion). Labels: ``IGNORE=-1``, ``BEFORE=0``, ``AFTER=1``, ``REWARD=2``, and for
placebo turns (failed attempts cut at a pseudo-reward span matched to the sequence's real turn,
:mod:`value_lens.data.placebo`) ``PLACEBO_BEFORE=3`` and ``PLACEBO_AFTER=4``; any other
non-negative integer is a further class. ``PSEUDO_BEFORE=5`` and ``PSEUDO_AFTER=6`` name the roles
of a real turn's BEFORE tokens around its within-turn pseudo-cut
(:func:`value_lens.data.placebo.pseudo_cut`): those tokens keep the label ``BEFORE`` in
``labels`` (they belong to the real contrast too), and the roles are derived from the turn's
geometry where a placebo analysis needs them. An optional float ``target`` per token (NaN = none)
feeds ridge regression onto a continuous value.

Example:
    >>> import torch
    >>> data = LabelledTokens.from_lists(
    ...     [[5, 6, 7, 8]], [[IGNORE, BEFORE, AFTER, AFTER]], ["colon"])
    >>> data.n_tokens, data.groups
    (4, ['colon'])
    >>> data.label_counts()
    {0: 1, 1: 2}
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int

from value_lens.errors import InputError

__all__ = [
    "AFTER",
    "BEFORE",
    "IGNORE",
    "LABEL_NAMES",
    "PLACEBO_AFTER",
    "PLACEBO_BEFORE",
    "PSEUDO_AFTER",
    "PSEUDO_BEFORE",
    "REWARD",
    "LabelledTokens",
]

IGNORE, BEFORE, AFTER, REWARD = -1, 0, 1, 2
PLACEBO_BEFORE, PLACEBO_AFTER = 3, 4
#: roles of BEFORE tokens around a real turn's within-turn pseudo-cut (never stored in ``labels``)
PSEUDO_BEFORE, PSEUDO_AFTER = 5, 6
LABEL_NAMES = {
    IGNORE: "ignore",
    BEFORE: "before",
    AFTER: "after",
    REWARD: "reward",
    PLACEBO_BEFORE: "placebo_before",
    PLACEBO_AFTER: "placebo_after",
    PSEUDO_BEFORE: "pseudo_before",
    PSEUDO_AFTER: "pseudo_after",
}


@dataclass
class LabelledTokens:
    """Variable-length token sequences with per-token labels and one group id per sequence.

    Attributes:
        input_ids: one ``[T_i]`` int64 tensor per sequence.
        labels: one ``[T_i]`` int64 tensor per sequence (``IGNORE`` tokens are never read).
        groups: one group name per sequence; mean-difference fitting pools tokens per group.
        targets: optional ``[T_i]`` float32 tensors of a continuous per-token target (NaN = none).
        meta: optional JSON-able dict per sequence (e.g. conversation id, turn end token index).
    """

    input_ids: list[Int[torch.Tensor, " _T"]]
    labels: list[Int[torch.Tensor, " _T"]]
    groups: list[str]
    targets: list[Float[torch.Tensor, " _T"]] | None = None
    meta: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.input_ids)
        if len(self.labels) != n or len(self.groups) != n:
            raise InputError(
                f"input_ids, labels and groups need one entry per sequence; got "
                f"{n}, {len(self.labels)} and {len(self.groups)}"
            )
        self.input_ids = [torch.as_tensor(x, dtype=torch.long).reshape(-1) for x in self.input_ids]
        self.labels = [torch.as_tensor(x, dtype=torch.long).reshape(-1) for x in self.labels]
        self.groups = [str(g) for g in self.groups]
        for i, (ids, lab) in enumerate(zip(self.input_ids, self.labels, strict=True)):
            if ids.numel() == 0:
                raise InputError(f"sequence {i} has no tokens; drop it before building the data")
            if ids.shape != lab.shape:
                raise InputError(
                    f"sequence {i}: {ids.numel()} tokens but {lab.numel()} labels; "
                    "give exactly one label per token"
                )
            if int(lab.min()) < IGNORE:
                raise InputError(
                    f"sequence {i} has label {int(lab.min())}; labels are -1 (ignore) or >= 0"
                )
        if self.targets is not None:
            if len(self.targets) != n:
                raise InputError("targets need one tensor per sequence")
            self.targets = [
                torch.as_tensor(t, dtype=torch.float32).reshape(-1) for t in self.targets
            ]
            for i, (t, ids) in enumerate(zip(self.targets, self.input_ids, strict=True)):
                if t.shape != ids.shape:
                    raise InputError(f"sequence {i}: targets must have one value per token")
        if not self.meta:
            self.meta = [{} for _ in range(n)]
        elif len(self.meta) != n:
            raise InputError("meta needs one dict per sequence")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_lists(
        cls,
        input_ids: Sequence[Sequence[int]],
        labels: Sequence[Sequence[int]],
        groups: Sequence[Any],
        **kwargs: Any,
    ) -> LabelledTokens:
        return cls(
            [torch.tensor(x, dtype=torch.long) for x in input_ids],
            [torch.tensor(x, dtype=torch.long) for x in labels],
            list(groups),
            **kwargs,
        )

    @classmethod
    def concat(cls, parts: Iterable[LabelledTokens]) -> LabelledTokens:
        parts = list(parts)
        if not parts:
            raise InputError("nothing to concatenate")
        has_t = [p.targets is not None for p in parts]
        if any(has_t) and not all(has_t):
            raise InputError("cannot concatenate data with and without targets")
        return cls(
            [x for p in parts for x in p.input_ids],
            [x for p in parts for x in p.labels],
            [g for p in parts for g in p.groups],
            targets=[t for p in parts for t in (p.targets or [])] if all(has_t) else None,
            meta=[m for p in parts for m in p.meta],
        )

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_tokens(self) -> int:
        return sum(int(x.numel()) for x in self.input_ids)

    @property
    def group_names(self) -> list[str]:
        """Distinct groups in order of first appearance."""
        return list(dict.fromkeys(self.groups))

    def label_counts(self) -> dict[int, int]:
        """Token count per label (IGNORE excluded)."""
        c: Counter[int] = Counter()
        for lab in self.labels:
            vals, counts = torch.unique(lab[lab != IGNORE], return_counts=True)
            c.update(dict(zip(vals.tolist(), counts.tolist(), strict=True)))
        return dict(sorted(c.items()))

    def subset(self, indices: Iterable[int]) -> LabelledTokens:
        idx = list(indices)
        return LabelledTokens(
            [self.input_ids[i] for i in idx],
            [self.labels[i] for i in idx],
            [self.groups[i] for i in idx],
            targets=None if self.targets is None else [self.targets[i] for i in idx],
            meta=[self.meta[i] for i in idx],
        )

    def select_groups(self, names: Iterable[str]) -> LabelledTokens:
        """The sequences whose group is in ``names``."""
        keep = set(map(str, names))
        unknown = keep - set(self.groups)
        if unknown:
            raise InputError(f"unknown group(s) {sorted(unknown)}; known: {self.group_names}")
        return self.subset(i for i, g in enumerate(self.groups) if g in keep)

    def shortest_per_group(self, keep: int | None) -> LabelledTokens:
        """The ``keep`` shortest sequences of every group (all if ``keep`` is None), in data order.

        Example:
            >>> d = LabelledTokens.from_lists([[1, 2, 3], [1], [4, 5]], [[0, 1, 1], [0], [0, 1]],
            ...                               ["a", "a", "b"])
            >>> [x.tolist() for x in d.shortest_per_group(1).input_ids]
            [[1], [4, 5]]
        """
        if keep is None:
            return self
        if keep < 1:
            raise InputError(f"keep must be a positive number of sequences per group, got {keep}")
        by_group: dict[str, list[tuple[int, int]]] = {}
        for i, (ids, g) in enumerate(zip(self.input_ids, self.groups, strict=True)):
            by_group.setdefault(g, []).append((ids.numel(), i))
        return self.subset(sorted(i for rows in by_group.values() for _, i in sorted(rows)[:keep]))

    def turn_end(self, i: int) -> int:
        """Token index one past the end of sequence i's labelled turn.

        ``meta[i]["turn_end"]`` when the data builder recorded it, else one past the last
        labelled token. Used by the end-of-turn position control.
        """
        if "turn_end" in self.meta[i]:
            return int(self.meta[i]["turn_end"])
        nz = (self.labels[i] != IGNORE).nonzero()
        return int(nz[-1]) + 1 if nz.numel() else int(self.labels[i].numel())

    def turn_bounds(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(start, end)`` per token of sequence i: the token span of the turn each labelled
        token belongs to (``-1`` for tokens in no labelled turn).

        Turns come from ``meta[i]``: ``turn_start``/``turn_end`` for the labelled turn and
        ``placebo_turns`` (a list of ``{"turn_start", "turn_end"}``) for placebo turns. Without
        them, the labelled tokens form one turn from the first to one past the last. Within-turn
        position is ``t - start``; relative position ``(t - start) / (end - start)``.

        Example:
            >>> d = LabelledTokens.from_lists([[1, 2, 3, 4, 5]], [[-1, 0, 2, 1, 1]], ["g"],
            ...                               meta=[{"turn_start": 1, "turn_end": 5}])
            >>> [x.tolist() for x in d.turn_bounds(0)]
            [[-1, 1, 1, 1, 1], [-1, 5, 5, 5, 5]]
        """
        n = int(self.labels[i].numel())
        start = torch.full((n,), -1, dtype=torch.long)
        end = torch.full((n,), -1, dtype=torch.long)
        meta = self.meta[i]
        turns = [(meta["turn_start"], meta["turn_end"])] if "turn_start" in meta else []
        turns += [(t["turn_start"], t["turn_end"]) for t in meta.get("placebo_turns", ())]
        if not turns:
            nz = (self.labels[i] != IGNORE).nonzero().flatten()
            if nz.numel():
                turns = [(int(nz[0]), int(nz[-1]) + 1)]
        for s, e in turns:
            start[int(s) : int(e)] = int(s)
            end[int(s) : int(e)] = int(e)
        return start, end

    def fingerprint(self) -> str:
        """SHA-256 of ids, labels and groups: the dataset hash stored in fitted axes."""
        h = hashlib.sha256()
        for ids, lab, g in zip(self.input_ids, self.labels, self.groups, strict=True):
            h.update(g.encode() + b"\0")
            h.update(ids.numpy().tobytes())
            h.update(lab.numpy().tobytes())
        return h.hexdigest()

    def describe(self) -> str:
        counts = {LABEL_NAMES.get(k, str(k)): v for k, v in self.label_counts().items()}
        return (
            f"{len(self)} sequences, {self.n_tokens} tokens, {len(self.group_names)} groups, "
            f"labels {json.dumps(counts)}"
        )
