"""In-process data parallelism over ``torch.distributed`` (NCCL on GPUs, gloo on CPUs).

Under ``torchrun`` (or any initialised process group), ``collect_stats(..., distributed=True)``
makes every rank collect the shard of the
data that :class:`~value_lens.fitting.shards.ShardPlan` gives it, lays its sums out in the full
data's groups and labels, and all-reduces them (fp64 sums, int64 counts); reservoir samples are
gathered and merged in rank order. Every rank returns the same statistics, equal to a
single-process collection up to fp64 round-off (counts and samples exactly).

Example (two processes; see ``tests/fitting/test_distributed.py``)::

    torchrun --nproc-per-node 2 -m value_lens build --out run/
    # or, in Python, inside an initialised process group:
    stats = vl.collect_stats(model, data, distributed=True)
"""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.moments import ClassMoments, Moments
from value_lens.fitting.shards import ShardPlan
from value_lens.fitting.stats import ActivationStats

__all__ = [
    "all_reduce_stats",
    "all_reduce_sum",
    "is_distributed",
    "rank_and_world",
    "require_distributed",
]


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def require_distributed() -> None:
    """Raise unless a process group is initialised."""
    if not is_distributed():
        raise InputError(
            "distributed=True needs an initialised torch.distributed process group; launch with "
            "torchrun (or call torch.distributed.init_process_group) first"
        )


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process (``(0, 1)`` outside a process group)."""
    if not is_distributed():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def all_reduce_stats(
    part: ActivationStats, data: LabelledTokens, plan: ShardPlan
) -> ActivationStats:
    """Sum every rank's ``part`` (its shard of ``data`` under ``plan``) across the process group.

    Sums and counts are laid out in the whole data's groups and labels, then all-reduced;
    reservoir samples are gathered and merged in rank order. Every rank gets the same result.
    """
    require_distributed()
    dist = torch.distributed
    world = dist.get_world_size()
    groups, classes = data.group_names, sorted(data.label_counts())
    full = _layout(part, groups, classes)
    count, total, norm_sum = (all_reduce_sum(t) for t in (full.count, full.sum, full.norm_sum))
    moments = None
    if full.moments is not None:
        moments = Moments(*(all_reduce_sum(t) for t in full.moments.tensors()))
    cm = full.class_moments
    if cm is not None:
        cm = ClassMoments.from_tensors(
            cm.labels, cm.features, {k: all_reduce_sum(v) for k, v in cm.tensors().items()}
        )
    sq = None if full.sq_sum is None else all_reduce_sum(full.sq_sum)
    sample = None
    if full.sample is not None:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, full.sample)
        sample = gathered[0]
        for other in gathered[1:]:
            sample = sample + other
    meta = dict(part.meta)
    meta.update(
        dataset_hash=data.fingerprint(),
        n_sequences=len(data),
        distributed={"world": world, "plan": plan.digest()},
    )
    meta.pop("group_sequences", None)
    return ActivationStats(
        full.layers, groups, classes, count, total, norm_sum, moments, sample, meta, cm, sq
    )


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the process group, returned on ``t``'s device (the collective runs on
    the current CUDA device under NCCL, on the CPU otherwise)."""
    dist = torch.distributed
    dev = torch.device("cpu")
    if dist.get_backend() == "nccl":
        dev = torch.device("cuda", torch.cuda.current_device())
    moved = t.to(dev)
    dist.all_reduce(moved, op=dist.ReduceOp.SUM)
    return moved.to(t.device)


def _layout(part: ActivationStats, groups: list[str], classes: list[int]) -> ActivationStats:
    """``part`` zero-filled into the full data's groups and labels (a rank may lack some)."""
    L, G, C, D = len(part.layers), len(groups), len(classes), part.d_model
    count = torch.zeros(G, C, dtype=torch.long)
    total = torch.zeros(L, G, C, D, dtype=part.sum.dtype)
    norm_sum = torch.zeros(L, G, C, dtype=torch.float64)
    gi = torch.tensor([groups.index(g) for g in part.groups], dtype=torch.long)
    ci = torch.tensor([classes.index(c) for c in part.classes], dtype=torch.long)
    count[gi[:, None], ci[None, :]] = part.count
    total[:, gi[:, None], ci[None, :]] = part.sum
    norm_sum[:, gi[:, None], ci[None, :]] = part.norm_sum.to(torch.float64)
    sq = None
    if part.sq_sum is not None:
        sq = torch.zeros(L, G, C, D, dtype=torch.float64)
        sq[:, gi[:, None], ci[None, :]] = part.sq_sum
    sample = part.sample
    if sample is not None and part.classes != classes:
        raise InputError(
            "a rank's shard lacks some labels, so its token sample cannot be merged; give every "
            "shard every label (more sequences per rank) or collect without sample_per_class"
        )
    if sample is not None:
        sample = sample.regroup(gi)
    cm = None if part.class_moments is None else part.class_moments.layout(gi, G)
    return ActivationStats(
        part.layers,
        groups,
        classes,
        count,
        total,
        norm_sum,
        part.moments,
        sample,
        part.meta,
        cm,
        sq,
    )
