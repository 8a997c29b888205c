"""Sharded, resumable collection: one launcher-agnostic protocol of plans, manifests and files.

The statistics are sums, so collection splits by data with no approximation. A
:class:`ShardPlan` assigns every sequence to one of ``world`` shards, balanced by token count
and deterministic (the same data always gives the same plan). ``collect_stats(model, data, shard=(rank, world), out=DIR)`` collects one
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
    ([0, 3], [1, 2], (12, 9))
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch

from value_lens._version import __version__
from value_lens.core.conventions import CONVENTION
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.manifest import check_manifest, shard_path
from value_lens.fitting.stats import ActivationStats

__all__ = [
    "ShardPlan",
    "check_shard",
    "existing_shard",
    "merge_shards",
    "missing_shards",
    "save_shard",
    "shard_manifest",
    "shard_path",
]


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


def shard_manifest(
    model_id: str, data: LabelledTokens, plan: ShardPlan, rank: int, kw: dict[str, Any]
) -> dict[str, Any]:
    layers = kw.get("layers")
    options: dict[str, Any] = {
        k: kw[k] for k in ("moments", "sample_per_class", "seed", "truncate") if k in kw
    }
    if kw.get("plan") is not None:
        options["plan"] = json.loads(json.dumps(asdict(kw["plan"])))
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


def existing_shard(out: str | os.PathLike[str], manifest: dict[str, Any]) -> ActivationStats | None:
    """The finished shard this manifest describes, if ``out`` holds it (checked), else None."""
    path = shard_path(out, manifest["rank"], manifest["plan"]["world"])
    if not path.exists():
        return None
    done = ActivationStats.load(path)
    check_manifest(done.meta.get("shard"), manifest, path)
    return done


def save_shard(
    part: ActivationStats, manifest: dict[str, Any], out: str | os.PathLike[str]
) -> ActivationStats:
    """Write one collected shard atomically, its manifest in ``meta["shard"]``."""
    part.meta["shard"] = manifest
    path = shard_path(out, manifest["rank"], manifest["plan"]["world"])
    path.parent.mkdir(parents=True, exist_ok=True)
    part.save(path)
    return part


def check_shard(shard: Any) -> tuple[int, int]:
    try:
        rank, world = (int(x) for x in shard)
    except (TypeError, ValueError):
        raise InputError(f"shard must be (rank, world), got {shard!r}") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"shard (rank, world) needs 0 <= rank < world, got {shard!r}")
    return rank, world


def missing_shards(out: str | os.PathLike[str], world: int) -> list[int]:
    """Ranks whose shard file is not in ``out`` yet (the resume list)."""
    return [r for r in range(world) if not shard_path(out, r, world).exists()]


def merge_shards(out: str | os.PathLike[str]) -> ActivationStats:
    """Sum the shards under ``out``: the same as :meth:`ActivationStats.merge`."""
    return ActivationStats.merge(out)
