"""Per-token projections of a layer sweep, and how ranks of a process group share them.

:class:`TokenProjections` holds what a sweep keeps of every labelled token (its projections,
norm, label, group and position). Under ``torch.distributed`` each rank runs the model over
its :class:`~value_lens.fitting.shards.ShardPlan` share of the sequences; a :class:`RankShare`
gathers the ranks' tokens back into the order one process would have produced (batch by batch,
row by row, position by position), so the sweep's permutation null and every score come out
as in one process, and :func:`value_lens.fitting.distributed.all_reduce_sum` adds the ranks' partial sums.

Example:
    >>> order = sequence_order([3, 5, 4], batch_size=2)
    >>> order.tolist()  # one process runs the longest sequence first
    [2, 0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from value_lens.data.tokens import LabelledTokens
from value_lens.fitting.collect import checked_sequences, iter_batches
from value_lens.fitting.distributed import rank_and_world, require_distributed
from value_lens.fitting.shards import ShardPlan

__all__ = ["MAX_BATCH_TOKENS", "RankShare", "TokenProjections", "sequence_order"]

#: default token budget of one projection batch (``max_batch_tokens``)
MAX_BATCH_TOKENS = 16384


@dataclass
class TokenProjections:
    """Per-token projections of every BEFORE/AFTER (and placebo) token onto a basis, per layer.

    Attributes:
        proj: ``[L, N, K]`` float32 ``h_t . basis_k`` (computed in fp32 like the residual).
        norm: ``[L, N]`` float32 ``|h_t|``.
        label: ``[N]`` BEFORE, AFTER, PLACEBO_BEFORE or PLACEBO_AFTER.
        group: ``[N]`` index into the sweep's group list.
        position: ``[N]`` token index within its sequence.
        to_end: ``[N]`` tokens from the token to the end of its turn (``turn_end - position``).
        seq: ``[N]`` index of the token's sequence in the data.
        start: ``[N]`` index of the first token of the token's turn
            (:meth:`~value_lens.data.tokens.LabelledTokens.turn_bounds`).
    """

    proj: np.ndarray
    norm: np.ndarray
    label: np.ndarray
    group: np.ndarray
    position: np.ndarray
    to_end: np.ndarray
    seq: np.ndarray
    start: np.ndarray

    def take(self, keep: np.ndarray, proj: np.ndarray | None = None) -> TokenProjections:
        """The tokens ``keep`` (a mask or indices), with ``proj`` replacing the projections."""
        return TokenProjections(
            proj=self.proj[:, keep] if proj is None else proj,
            norm=self.norm[:, keep],
            label=self.label[keep],
            group=self.group[keep],
            position=self.position[keep],
            to_end=self.to_end[keep],
            seq=self.seq[keep],
            start=self.start[keep],
        )

    @classmethod
    def concat(cls, parts: list[TokenProjections]) -> TokenProjections:
        """The tokens of ``parts``, one after the other (token axis: 1 for ``proj``/``norm``)."""
        kw = {}
        for f in fields(cls):
            arrays = [getattr(p, f.name) for p in parts]
            kw[f.name] = np.concatenate(arrays, axis=0 if arrays[0].ndim == 1 else 1)
        return cls(**kw)


def sequence_order(
    lengths: list[int], batch_size: int, max_batch_tokens: int | None = MAX_BATCH_TOKENS
) -> np.ndarray:
    """Each sequence's place in a one-process pass (:func:`~value_lens.fitting.collect.iter_batches`)."""
    flat = [i for batch in iter_batches(lengths, batch_size, max_batch_tokens) for i in batch]
    order = np.empty(len(lengths), dtype=np.int64)
    order[flat] = np.arange(len(flat))
    return order


@dataclass(frozen=True)
class RankShare:
    """This rank's sequences (``indices``) and every sequence's place in a one-process pass."""

    rank: int
    indices: list[int]
    order: np.ndarray

    @classmethod
    def create(
        cls,
        data: LabelledTokens,
        limit: int,
        *,
        batch_size: int,
        truncate: bool,
        max_batch_tokens: int | None = MAX_BATCH_TOKENS,
    ) -> RankShare:
        """This rank's share under :meth:`ShardPlan.create` for the initialised process group."""
        require_distributed()
        rank, world = rank_and_world()
        lengths = [int(s.numel()) for s in checked_sequences(data, limit, truncate=truncate)]
        plan = ShardPlan.create(data, world)
        return cls(rank, plan.indices(rank), sequence_order(lengths, batch_size, max_batch_tokens))

    def gather(self, local: TokenProjections) -> tuple[TokenProjections, np.ndarray]:
        """Every rank's tokens in one-process order, and where this rank's tokens went in it."""
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, local)
        every = TokenProjections.concat(parts)
        key = np.lexsort((every.position, self.order[every.seq]))
        where = np.empty_like(key)
        where[key] = np.arange(key.size)
        start = sum(p.label.size for p in parts[: self.rank])
        return every.take(key), where[start : start + local.label.size]

    def gather_rows(self, local: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
        """``[L, n, K]`` from every rank's ``[L, n_rank, K]`` tokens placed at its ``rows``."""
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, (rows, local))
        out = np.zeros((local.shape[0], n, local.shape[2]), dtype=local.dtype)
        for r, p in parts:
            out[:, r] = p
        return out
