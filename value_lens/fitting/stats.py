"""Sufficient statistics of the residual stream, per layer, group and label.

:class:`ActivationStats` is what :func:`value_lens.collect_stats` streams activations into. Its
memory does not depend on the number of tokens. Stats are additive (``a + b`` equals collecting
over both datasets at once), which is what sharding and resuming rely on.

Contents (L layers, G groups, C classes, D = d_model):
    count     ``[G, C]`` tokens per group and label
    sum       ``[L, G, C, D]`` sums of residual vectors (fp64 by default)
    norm_sum  ``[L, G, C]`` sums of residual L2 norms (for %-of-norm strengths)
    moments   optional pooled second moments for ridge regression (``xx [L, D, D]`` etc.)
    sample    optional reservoir of at most K token vectors per class, for the logistic probe
    class_moments  optional per-group, per-label second moments (LDA, LEACE; see
              :mod:`value_lens.fitting.moments`)
    sq_sum    optional ``[L, G, C, D]`` sums of squared coordinates (per-dimension sd)

Everything indexed by group restricts exactly with :meth:`ActivationStats.select_groups`, the
class moments and a group-tagged sample included; the pooled ``moments`` (and an untagged
sample from older versions) cannot be restricted and are dropped there.

Artifacts saved before norms were kept per group hold a pooled ``norm_sum [L]``. They still
load: the pooled norm is spread over groups and labels in proportion to their token counts (so
:meth:`ActivationStats.mean_norm` of the whole is exact) and ``meta["norm_sum_pooled"]`` is
set; selecting groups from such stats gives NaN norms (unknown) rather than a wrong number, so
``unit="percent"`` steering with an axis fitted on them asks for a calibration.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from jaxtyping import Float, Int

from value_lens.core.io import load_artifact, save_artifact
from value_lens.data.tokens import PLACEBO_AFTER, PLACEBO_BEFORE
from value_lens.errors import InputError
from value_lens.fitting.manifest import check_manifests, list_shards
from value_lens.fitting.moments import ClassMoments, Moments, Reservoir
from value_lens.fitting.stats_ops import add_fields, from_artifact, to_artifact

__all__ = ["MOMENTS_TARGETS", "ActivationStats", "ClassMoments", "Moments", "Reservoir"]

MOMENTS_TARGETS = {
    "after_vs_before": "1 for AFTER and 0 for BEFORE tokens; other labels left out",
    "targets": "the data's per-token float targets; tokens with a NaN target left out",
    "legacy_label_value": "the raw label value of every labelled token (REWARD counted as 2)",
}
"""Values of ``meta["moments_target"]``: what the regression target ``y`` of the moments is."""


@dataclass
class ActivationStats:
    """Per-layer, per-group, per-label sums of residual-stream vectors. See the module docs."""

    layers: list[int]
    groups: list[str]
    classes: list[int]
    count: Int[torch.Tensor, "G C"]
    sum: Float[torch.Tensor, "L G C D"]
    norm_sum: Float[torch.Tensor, "L G C"]
    moments: Moments | None = None
    sample: Reservoir | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    class_moments: ClassMoments | None = None
    sq_sum: Float[torch.Tensor, "L G C D"] | None = None

    def __post_init__(self) -> None:
        L, G, C = len(self.layers), len(self.groups), len(self.classes)
        if tuple(self.count.shape) != (G, C) or tuple(self.sum.shape[:3]) != (L, G, C):
            raise InputError(
                f"count must be [groups, classes] = [{G}, {C}] and sum [layers, groups, classes, "
                f"d_model] = [{L}, {G}, {C}, D]; got {tuple(self.count.shape)} and "
                f"{tuple(self.sum.shape)}"
            )
        if tuple(self.norm_sum.shape) != (L, G, C):
            raise InputError(
                f"norm_sum must be [layers, groups, classes] = [{L}, {G}, {C}] (norms summed per "
                f"group and label), got {tuple(self.norm_sum.shape)}"
            )
        if self.sq_sum is not None and self.sq_sum.shape != self.sum.shape:
            raise InputError(f"sq_sum must have the shape of sum, {tuple(self.sum.shape)}")
        cm = self.class_moments
        if cm is not None and tuple(cm.xx.shape[:2]) != (L, G):
            raise InputError(
                f"class moments must be [layers, groups, ...] = [{L}, {G}, ...], got "
                f"{tuple(cm.xx.shape)}"
            )

    # ------------------------------------------------------------------ shape facts
    @property
    def d_model(self) -> int:
        return int(self.sum.shape[-1])

    @property
    def n_tokens(self) -> int:
        return int(self.count.sum())

    def layer_index(self, layer: int) -> int:
        if layer not in self.layers:
            from value_lens.errors import LayerError

            raise LayerError(
                f"layer {layer} was not collected; these stats hold layers {self.layers}"
            )
        return self.layers.index(layer)

    def class_index(self, label: int) -> int:
        if label not in self.classes:
            raise InputError(
                f"label {label} has no tokens in these stats; labels present: {self.classes}"
            )
        return self.classes.index(label)

    def means(self) -> Float[torch.Tensor, "L G C D"]:
        """Mean vector per layer, group and label (NaN where a group has no such tokens)."""
        c = self.count.to(self.sum.dtype)[None, :, :, None]
        return self.sum / c

    def mean_norm(self, labels: list[int] | None = None) -> Float[torch.Tensor, " L"]:
        """Mean residual L2 norm per layer over these stats' tokens (the %-of-norm unit).

        ``labels`` restricts it to tokens with those labels (default: every labelled token).
        """
        ci = (
            list(range(len(self.classes)))
            if labels is None
            else list(map(self.class_index, labels))
        )
        n = int(self.count[:, ci].sum())
        return self.norm_sum[:, :, ci].sum(dim=(1, 2)) / max(n, 1)

    def turn_mean_norm(self) -> Float[torch.Tensor, " L"]:
        """Mean residual norm of the labelled turns' tokens: placebo turns left out.

        The ``unit="percent"`` scale, so labelling placebo turns never changes a strength.
        """
        placebo = {PLACEBO_BEFORE, PLACEBO_AFTER}
        if not placebo & set(self.classes):
            return self.mean_norm()
        return self.mean_norm([c for c in self.classes if c not in placebo])

    def group_diffs(
        self, pos: int = 1, neg: int = 0, *, min_count: int = 1
    ) -> tuple[Float[torch.Tensor, "L K D"], list[str]]:
        """Per-group (mean of ``pos`` tokens - mean of ``neg`` tokens), for usable groups only."""
        ip, ineg = self.class_index(pos), self.class_index(neg)
        ok = (self.count[:, ip] >= min_count) & (self.count[:, ineg] >= min_count)
        if not bool(ok.any()):
            raise InputError(
                f"no group has at least {min_count} tokens of both label {pos} and label {neg}; "
                "the data has one class only (check the labelling)"
            )
        m = self.means()
        diffs = m[:, ok, ip] - m[:, ok, ineg]
        return diffs, [g for g, k in zip(self.groups, ok.tolist(), strict=True) if k]

    @classmethod
    def merge(cls, folder: str | os.PathLike[str]) -> ActivationStats:
        """Sum the shard files under ``folder`` (:mod:`value_lens.fitting.shards`), after
        checking that every shard is there and that their manifests agree."""
        paths = list_shards(folder)
        parts = [cls.load(p) for p in paths]
        first = check_manifests([p.meta.get("shard") for p in parts], paths)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        total = total.with_groups(list(first["groups"]))
        total.meta.pop("shard", None)
        total.meta.update(
            dataset_hash=first["dataset_hash"],
            n_sequences=first["n_sequences"],
            merged_shards={"world": len(paths), "plan": first["plan"]},
        )
        return total

    def with_groups(self, groups: list[str]) -> ActivationStats:
        """The same statistics with the groups in the order ``groups`` (all must be present)."""
        if sorted(groups) != sorted(self.groups):
            raise InputError(f"these stats hold groups {sorted(self.groups)}, not {sorted(groups)}")
        out = self._restrict(groups)
        out.moments = self.moments  # the same tokens: pooled sums stay valid
        if self.sample is not None and self.sample.group is None:
            out.sample = self.sample
        return out

    def _restrict(self, names: list[str]) -> ActivationStats:
        """Everything indexed by group, restricted to (and ordered as) ``names``; pooled moments
        dropped, the sample kept only when its tokens carry group tags."""
        idx = torch.tensor([self.groups.index(n) for n in names], dtype=torch.long)
        sample = self.sample
        if sample is not None:
            new = torch.full((len(self.groups),), -1, dtype=torch.long)
            new[idx] = torch.arange(len(names))
            sample = None if sample.group is None else sample.regroup(new)
        cm = self.class_moments
        return replace(
            self,
            groups=list(names),
            count=self.count[idx],
            sum=self.sum[:, idx],
            norm_sum=self.norm_sum[:, idx],
            moments=None,
            sample=sample,
            meta=dict(self.meta),
            class_moments=None if cm is None else cm.select(idx),
            sq_sum=None if self.sq_sum is None else self.sq_sum[:, idx],
        )

    def select_groups(self, names: list[str]) -> ActivationStats:
        """Stats restricted to some groups: everything kept per group is restricted exactly (the
        class moments and a group-tagged token sample included); pooled moments are dropped.

        ``meta["dataset_hash"]`` becomes a hash of the parent's hash and the chosen group names,
        so the subset is never mistaken for the full dataset.

        Example:
            >>> import torch
            >>> s = ActivationStats([0], ["a", "b"], [0], torch.tensor([[10], [10]]),
            ...     torch.zeros(1, 2, 1, 3), torch.tensor([[[10.0], [1000.0]]]))
            >>> s.mean_norm().item(), s.select_groups(["a"]).mean_norm().item()
            (50.5, 1.0)
        """
        missing = [n for n in names if n not in self.groups]
        if missing:
            raise InputError(f"groups {missing} are not in these stats; known: {self.groups}")
        if len(set(names)) != len(names):
            raise InputError(f"group names repeat in {names}; give each group once")
        out = self._restrict(list(names))
        meta = out.meta
        if set(names) != set(self.groups):
            parent = str(meta.get("dataset_hash", ""))
            if parent:
                key = f"{parent}|select_groups|{json.dumps(sorted(set(names)))}"
                meta["dataset_hash"] = hashlib.sha256(key.encode()).hexdigest()
                meta["parent_dataset_hash"] = parent
            meta["dataset"] = f"groups {sorted(set(names))} of: {meta.get('dataset', '?')}"
            per_group = meta.get("group_sequences")
            if isinstance(per_group, dict):
                meta["group_sequences"] = {g: per_group.get(g, 0) for g in names}
                meta["n_sequences"] = sum(int(v) for v in meta["group_sequences"].values())
            else:
                meta.pop("n_sequences", None)
            if meta.get("norm_sum_pooled"):
                out.norm_sum = torch.full_like(out.norm_sum, float("nan"))  # unknown per group
        return out

    # ------------------------------------------------------------------ algebra
    def __add__(self, other: ActivationStats) -> ActivationStats:
        if not isinstance(other, ActivationStats):
            return NotImplemented
        return ActivationStats(**add_fields(self, other))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically save as safetensors + JSON metadata."""
        tensors, meta = to_artifact(self)
        save_artifact(path, tensors, kind="ActivationStats", meta=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ActivationStats:
        """Load stats saved by :meth:`save` (older artifacts: see the module docs)."""
        t, meta = load_artifact(path, kind="ActivationStats")
        return cls(**from_artifact(t, meta))
