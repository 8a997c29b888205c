"""Shard files and their manifests: names, completeness and agreement checks.

Shard ``rank`` of ``world`` lives at ``shard-RRRRR-of-WWWWW.safetensors``; its statistics carry
a manifest in ``meta["shard"]``. Temporary files of an interrupted write start with a dot and
never match the name, so they are never read as shards.

Example:
    >>> shard_path("run", 1, 4).name
    'shard-00001-of-00004.safetensors'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from value_lens.errors import ArtifactError, InputError

__all__ = ["SHARED", "check_manifest", "check_manifests", "list_shards", "shard_path"]

_NAME = re.compile(r"^shard-(\d{5})-of-(\d{5})\.safetensors$")
#: manifest fields that every shard of one collection must share
SHARED = ("model_id", "dataset_hash", "layers", "convention", "dtype", "options", "plan")


def shard_path(out: str | os.PathLike[str], rank: int, world: int) -> Path:
    """Where shard ``rank`` of ``world`` lives under ``out``."""
    return Path(out) / f"shard-{rank:05d}-of-{world:05d}.safetensors"


def list_shards(folder: str | os.PathLike[str]) -> list[Path]:
    """The shard files of one complete collection under ``folder``, in rank order."""
    folder = Path(folder)
    found: dict[int, Path] = {}
    worlds = set()
    for p in sorted(folder.glob("shard-*.safetensors")):
        m = _NAME.match(p.name)
        if m is not None:
            worlds.add(int(m.group(2)))
            found[int(m.group(1))] = p
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
    return [found[r] for r in range(world)]


def check_manifest(found: Any, expected: dict[str, Any], path: Path) -> None:
    """A finished shard about to be reused must come from the same collection and rank."""
    if not isinstance(found, dict):
        raise ArtifactError(f"{path} has no shard manifest; delete it and collect again")
    for key in (*SHARED, "rank"):
        if found.get(key) != expected.get(key):
            raise ArtifactError(
                f"{path} was collected with a different {key} ({found.get(key)!r}, now "
                f"{expected.get(key)!r}); use a new out= folder or delete the old shards"
            )


def check_manifests(manifests: list[Any], paths: list[Path]) -> dict[str, Any]:
    """Every shard has a manifest, claims its own rank, and agrees with shard 0; returns it."""
    for r, (man, path) in enumerate(zip(manifests, paths, strict=True)):
        if not isinstance(man, dict):
            raise ArtifactError(f"{path} has no shard manifest; collect it again")
        if man.get("rank") != r:
            raise ArtifactError(
                f"{path} claims rank {man.get('rank')}: a duplicate or renamed shard; delete it "
                "and collect that rank again"
            )
        for key in SHARED:
            if man.get(key) != manifests[0].get(key):
                raise ArtifactError(
                    f"shards 0 and {r} in {path.parent} differ in {key} "
                    f"({manifests[0].get(key)!r} vs {man.get(key)!r}); they come from different "
                    "collections"
                )
    return dict(manifests[0])
