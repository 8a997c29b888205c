"""Sharded, resumable collection: one launcher-agnostic protocol of plans, manifests and files.

The statistics are sums, so collection splits by data with no approximation. A
:class:`ShardPlan` assigns every sequence to one of ``world`` shards, balanced by token count
and deterministic (the same data always gives the same plan). :func:`collect_shard` collects one
shard and writes it atomically as ``shard-RRRRR-of-WWWWW.safetensors`` with a manifest (model
id, dataset hash, layers, layer convention, dtype, value_lens version, the collection options
and the plan); a rerun finds a finished shard with a matching manifest and reads it instead of
collecting again. :func:`merge_shards` checks that every shard is present and that the
manifests agree, then sums the shards in rank order and restores the data's group order.

The same files serve ``torchrun`` ranks, SLURM array tasks and Ray workers: each worker runs
``collect_stats(model, data, shard=(rank, world), out=DIR)`` and one job merges.

Example:
    >>> from value_lens.data.tokens import LabelledTokens
    >>> data = LabelledTokens.from_lists([[1] * 9, [2] * 5, [3] * 4, [4] * 3],
    ...                                  [[0] * 9, [1] * 5, [0] * 4, [1] * 3], list("abab"))
    >>> plan = ShardPlan.create(data, world=2)
    >>> plan.indices(0), plan.indices(1), plan.tokens
    ([0], [1, 2, 3], (9, 12))
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from value_lens._version import __version__
from value_lens.core.conventions import CONVENTION
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import ArtifactError, InputError
from value_lens.fitting.stats import ActivationStats

__all__ = ["ShardPlan", "collect_shard", "merge_shards", "missing_shards", "shard_path"]

_NAME = re.compile(r"^shard-(\d{5})-of-(\d{5})\.safetensors$")
#: manifest fields that every shard of one collection must share
_SHARED = ("model_id", "dataset_hash", "layers", "convention", "dtype", "options", "plan")


@dataclass(frozen=True)
class ShardPlan:
    """Which shard each sequence belongs to (``assignment[i]``), for ``world`` shards."""

    world: int
    assignment: tuple[int, ...]
    tokens: tuple[int, ...]

    @classmethod
    def create(cls, data: LabelledTokens, world: int) -> ShardPlan:
        """Longest sequences first, each to the shard with the fewest tokens (ties: lowest)."""
        if not isinstance(world, int) or world < 1:
            raise InputError(f"world must be a positive int, got {world!r}")
        if world > len(data):
            raise InputError(
                f"{world} shards for {len(data)} sequences would leave shards empty; use at most "
                f"{len(data)} shards"
            )
        sizes = [int(x.numel()) for x in data.input_ids]
        load = [0] * world
        assignment = [0] * len(sizes)
        for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
            r = min(range(world), key=lambda r: (load[r], r))
            assignment[i] = r
            load[r] += sizes[i]
        return cls(world, tuple(assignment), tuple(load))

    def indices(self, rank: int) -> list[int]:
        """The sequences of shard ``rank``, in data order."""
        if not 0 <= rank < self.world:
            raise InputError(f"rank {rank} is outside [0, {self.world})")
        return [i for i, r in enumerate(self.assignment) if r == rank]

    def digest(self) -> str:
        """A short hash of the assignment (shards of one plan share it)."""
        text = json.dumps([self.world, list(self.assignment)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_path(out: str | os.PathLike[str], rank: int, world: int) -> Path:
    """Where shard ``rank`` of ``world`` lives under ``out``."""
    return Path(out) / f"shard-{rank:05d}-of-{world:05d}.safetensors"


def _manifest(
    model_id: str, data: LabelledTokens, plan: ShardPlan, rank: int, kw: dict[str, Any]
) -> dict[str, Any]:
    layers = kw.get("layers")
    options = {k: kw[k] for k in ("moments", "sample_per_class", "seed", "truncate") if k in kw}
    return {
        "model_id": model_id,
        "dataset_hash": data.fingerprint(),
        "groups": data.group_names,
        "n_sequences": len(data),
        "layers": None if layers is None else sorted({int(x) for x in _as_list(layers)}),
        "convention": CONVENTION,
        "dtype": str(kw.get("dtype", torch.float64)),
        "value_lens": __version__,
        "options": options,
        "plan": {"world": plan.world, "digest": plan.digest()},
        "rank": rank,
    }


def _as_list(layers: Any) -> list[int]:
    return [layers] if isinstance(layers, int) else list(layers)


def collect_shard(
    model: Any,
    data: LabelledTokens,
    *,
    shard: tuple[int, int],
    out: str | os.PathLike[str],
    **collect_kwargs: Any,
) -> ActivationStats:
    """Collect shard ``shard = (rank, world)`` of ``data`` into ``out`` (or reuse it).

    ``collect_kwargs`` go to :func:`~value_lens.fitting.collect.collect_stats`. A finished shard
    whose manifest matches is read back, not recollected; one that does not match raises.
    """
    from value_lens.core.model import model_id
    from value_lens.fitting.collect import collect_stats

    rank, world = _check_shard(shard)
    plan = ShardPlan.create(data, world)
    manifest = _manifest(model_id(model), data, plan, rank, collect_kwargs)
    path = shard_path(out, rank, world)
    if path.exists():
        done = ActivationStats.load(path)
        _check_manifest(done.meta.get("shard"), manifest, path)
        return done
    part = collect_stats(model, data.subset(plan.indices(rank)), **collect_kwargs)
    part.meta["shard"] = manifest
    path.parent.mkdir(parents=True, exist_ok=True)
    part.save(path)
    return part


def _check_shard(shard: Any) -> tuple[int, int]:
    try:
        rank, world = (int(x) for x in shard)
    except (TypeError, ValueError):
        raise InputError(f"shard must be (rank, world), got {shard!r}") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"shard (rank, world) needs 0 <= rank < world, got {shard!r}")
    return rank, world


def _check_manifest(found: Any, expected: dict[str, Any], path: Path) -> None:
    if not isinstance(found, dict):
        raise ArtifactError(f"{path} has no shard manifest; delete it and collect again")
    for key in (*_SHARED, "rank"):
        if found.get(key) != expected.get(key):
            raise ArtifactError(
                f"{path} was collected with a different {key} ({found.get(key)!r}, now "
                f"{expected.get(key)!r}); use a new out= folder or delete the old shards"
            )


def missing_shards(out: str | os.PathLike[str], world: int) -> list[int]:
    """Ranks whose shard file is not in ``out`` yet (the resume list)."""
    return [r for r in range(world) if not shard_path(out, r, world).exists()]


def merge_shards(out: str | os.PathLike[str]) -> ActivationStats:
    """Sum the shards under ``out`` after checking they are complete and agree."""
    folder = Path(out)
    found: dict[int, tuple[int, Path]] = {}
    worlds = set()
    for p in sorted(folder.glob("shard-*.safetensors")):
        m = _NAME.match(p.name)
        if m is None:
            continue
        rank, world = int(m.group(1)), int(m.group(2))
        worlds.add(world)
        found[rank] = (world, p)
    if not found:
        raise InputError(f"no shard files in {folder}; run collect_stats(..., out={str(folder)!r})")
    if len(worlds) != 1:
        raise ArtifactError(
            f"{folder} mixes shards of plans with {sorted(worlds)} shards; keep one collection "
            "per folder"
        )
    (world,) = worlds
    missing = [r for r in range(world) if r not in found]
    if missing:
        raise InputError(
            f"{folder} lacks shard(s) {missing} of {world}; run those ranks again (finished "
            "shards are reused)"
        )
    parts = [ActivationStats.load(found[r][1]) for r in range(world)]
    manifests: list[dict[str, Any]] = []
    for r, part in enumerate(parts):
        man = part.meta.get("shard")
        if not isinstance(man, dict):
            raise ArtifactError(f"{found[r][1]} has no shard manifest; collect it again")
        manifests.append(man)
    first = manifests[0]
    for r, (man, part) in enumerate(zip(manifests, parts, strict=True)):
        if man.get("rank") != r:
            raise ArtifactError(
                f"{found[r][1]} claims rank {man.get('rank')}: a duplicate or renamed shard; "
                "delete it and collect that rank again"
            )
        for key in _SHARED:
            if man.get(key) != first.get(key):
                raise ArtifactError(
                    f"shards 0 and {r} in {folder} differ in {key} ({first.get(key)!r} vs "
                    f"{man.get(key)!r}); they come from different collections"
                )
        if part.layers != parts[0].layers:
            raise ArtifactError(f"shards 0 and {r} in {folder} hold different layers")
    total = _sum(parts)
    total = reorder_groups(total, list(first["groups"]))
    total.meta.pop("shard", None)
    total.meta["dataset_hash"] = first["dataset_hash"]
    total.meta["n_sequences"] = first["n_sequences"]
    total.meta["merged_shards"] = {"world": world, "plan": first["plan"]}
    return total


def _sum(parts: Iterable[ActivationStats]) -> ActivationStats:
    it = iter(parts)
    total = next(it)
    for p in it:
        total = total + p
    return total


def reorder_groups(stats: ActivationStats, groups: list[str]) -> ActivationStats:
    """The same statistics with groups in the order ``groups`` (every group must be present)."""
    if sorted(groups) != sorted(stats.groups):
        raise ArtifactError(
            f"the shards hold groups {sorted(stats.groups)} but the data has {sorted(groups)}"
        )
    idx = torch.tensor([stats.groups.index(g) for g in groups], dtype=torch.long)
    return ActivationStats(
        stats.layers,
        list(groups),
        stats.classes,
        stats.count[idx],
        stats.sum[:, idx],
        stats.norm_sum[:, idx],
        stats.moments,
        stats.sample,
        dict(stats.meta),
    )
