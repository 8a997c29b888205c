"""Sufficient statistics of the residual stream, per layer, group and label.

:class:`ActivationStats` is what :func:`value_lens.collect_stats` streams activations into. Its
memory does not depend on the number of tokens. Stats are additive (``a + b`` equals collecting
over both datasets at once), which is what sharding and resuming rely on.

Contents (L layers, G groups, C classes, D = d_model):
    count     ``[G, C]`` tokens per group and label
    sum       ``[L, G, C, D]`` sums of residual vectors (fp64 by default)
    norm_sum  ``[L, G, C]`` sums of residual L2 norms (for %-of-norm strengths)
    moments   optional second moments for ridge regression (``xx [L, D, D]`` etc.)
    sample    optional reservoir of at most K token vectors per class, for the logistic probe

Everything indexed by group restricts exactly with :meth:`ActivationStats.select_groups`; the
pooled ``moments`` and ``sample`` cannot be restricted and are dropped there.

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

__all__ = ["MOMENTS_TARGETS", "ActivationStats", "Moments", "Reservoir"]

MOMENTS_TARGETS = {
    "after_vs_before": "1 for AFTER and 0 for BEFORE tokens; other labels left out",
    "targets": "the data's per-token float targets; tokens with a NaN target left out",
    "legacy_label_value": "the raw label value of every labelled token (REWARD counted as 2)",
}
"""Values of ``meta["moments_target"]``: what the regression target ``y`` of the moments is."""


@dataclass
class Moments:
    """Second moments over labelled tokens with a regression target ``y``.

    ``y`` is the token's float target when the data has targets, else 1 for ``AFTER`` and 0
    for ``BEFORE`` tokens; tokens without a target (NaN, or any other label) are left out.
    ``meta["moments_target"]`` of the stats says which (see :data:`MOMENTS_TARGETS`).
    """

    n: torch.Tensor  # [] float64
    x: Float[torch.Tensor, "L D"]
    y: torch.Tensor  # []
    yy: torch.Tensor  # []
    xy: Float[torch.Tensor, "L D"]
    xx: Float[torch.Tensor, "L D D"]

    def __add__(self, other: Moments) -> Moments:
        return Moments(*(a + b for a, b in zip(self.tensors(), other.tensors(), strict=True)))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.n, self.x, self.y, self.yy, self.xy, self.xx)


@dataclass
class Reservoir:
    """A uniform random sample of at most ``k`` tokens per class (same tokens in every layer).

    Every token gets a deterministic random key (from the seed and its sequence's content); the
    sample is the ``k`` smallest keys, so merging two reservoirs gives exactly the reservoir of
    the union.
    """

    k: int
    keys: Float[torch.Tensor, "C K"]  # +inf marks an empty slot
    x: Float[torch.Tensor, "L C K D"]

    def __add__(self, other: Reservoir) -> Reservoir:
        keys = torch.cat([self.keys, other.keys], dim=1)
        x = torch.cat([self.x, other.x], dim=2)
        order = keys.argsort(dim=1, stable=True)[:, : self.k]
        idx = order[None, :, :, None].expand(x.shape[0], -1, -1, x.shape[-1])
        return Reservoir(self.k, keys.gather(1, order), x.gather(2, idx))

    def class_sample(self, c: int) -> Float[torch.Tensor, "L N D"]:
        filled = torch.isfinite(self.keys[c])
        return self.x[:, c, filled]


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
    ) -> tuple[Float[torch.Tensor, "L G2 D"], list[str]]:
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
        idx = torch.tensor([self.groups.index(g) for g in groups], dtype=torch.long)
        return replace(
            self,
            groups=list(groups),
            count=self.count[idx],
            sum=self.sum[:, idx],
            norm_sum=self.norm_sum[:, idx],
            meta=dict(self.meta),
        )

    def select_groups(self, names: list[str]) -> ActivationStats:
        """Stats restricted to some groups (moments and sample are dropped: they are pooled).

        Counts, sums and norms are restricted exactly; ``meta["dataset_hash"]`` becomes a hash
        of the parent's hash and the chosen group names, so the subset is never mistaken for
        the full dataset.

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
        idx = torch.tensor([self.groups.index(n) for n in names], dtype=torch.long)
        meta = dict(self.meta)
        norm_sum = self.norm_sum[:, idx]
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
                norm_sum = torch.full_like(norm_sum, float("nan"))  # unknown per group
        return replace(
            self,
            groups=list(names),
            count=self.count[idx],
            sum=self.sum[:, idx],
            norm_sum=norm_sum,
            moments=None,
            sample=None,
            meta=meta,
        )

    # ------------------------------------------------------------------ algebra
    def __add__(self, other: ActivationStats) -> ActivationStats:
        if not isinstance(other, ActivationStats):
            return NotImplemented
        if self.layers != other.layers or self.d_model != other.d_model:
            raise InputError(
                f"cannot add stats of layers {self.layers} (d={self.d_model}) and "
                f"{other.layers} (d={other.d_model}); collect both with the same layers and model"
            )
        mid_a, mid_b = self.meta.get("model_id"), other.meta.get("model_id")
        if mid_a and mid_b and mid_a != mid_b:
            raise InputError(f"cannot add stats from different models ({mid_a} vs {mid_b})")
        groups = list(dict.fromkeys(self.groups + other.groups))
        classes = sorted(set(self.classes) | set(other.classes))
        L, G, C = len(self.layers), len(groups), len(classes)
        count = torch.zeros(G, C, dtype=torch.long)
        total = torch.zeros(L, G, C, self.d_model, dtype=self.sum.dtype)
        norm_sum = torch.zeros(L, G, C, dtype=torch.float64)
        for s in (self, other):
            gi = torch.tensor([groups.index(g) for g in s.groups], dtype=torch.long)
            ci = torch.tensor([classes.index(c) for c in s.classes], dtype=torch.long)
            count[gi[:, None], ci[None, :]] += s.count
            total[:, gi[:, None], ci[None, :]] += s.sum.to(total.dtype)
            norm_sum[:, gi[:, None], ci[None, :]] += s.norm_sum.to(norm_sum.dtype)
        moments = None
        if self.moments is not None and other.moments is not None:
            ta, tb = self.meta.get("moments_target"), other.meta.get("moments_target")
            if ta != tb:
                raise InputError(
                    f"cannot add moments with different regression targets ({ta} vs {tb}); "
                    "re-collect both with the same value_lens version and data kind"
                )
            moments = self.moments + other.moments
        sample = None
        if self.sample is not None and other.sample is not None:
            if self.classes != other.classes:
                raise InputError(
                    "reservoir samples can only be merged for stats with the same labels"
                )
            sample = self.sample + other.sample
        meta = dict(self.meta)
        meta["n_sequences"] = int(self.meta.get("n_sequences", 0)) + int(
            other.meta.get("n_sequences", 0)
        )
        if self.meta.get("norm_sum_pooled") or other.meta.get("norm_sum_pooled"):
            meta["norm_sum_pooled"] = True
        ga, gb = self.meta.get("group_sequences"), other.meta.get("group_sequences")
        if isinstance(ga, dict) and isinstance(gb, dict):
            meta["group_sequences"] = {
                g: int(ga.get(g, 0)) + int(gb.get(g, 0)) for g in groups if g in ga or g in gb
            }
        else:
            meta.pop("group_sequences", None)
        meta["dataset_hash"] = "+".join(
            sorted(
                {str(self.meta.get("dataset_hash", "")), str(other.meta.get("dataset_hash", ""))}
            )
        )
        return ActivationStats(
            self.layers,
            groups,
            classes,
            count,
            total,
            norm_sum,
            moments,
            sample,
            meta,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically save as safetensors + JSON metadata."""
        t: dict[str, torch.Tensor] = {
            "count": self.count,
            "sum": self.sum,
            "norm_sum": self.norm_sum,
        }
        if self.moments is not None:
            for name, v in zip(
                ("n", "x", "y", "yy", "xy", "xx"), self.moments.tensors(), strict=True
            ):
                t[f"moments.{name}"] = v
        if self.sample is not None:
            t["sample.keys"], t["sample.x"] = self.sample.keys, self.sample.x
        meta = {
            "layers": self.layers,
            "groups": self.groups,
            "classes": self.classes,
            "sample_k": None if self.sample is None else self.sample.k,
            "info": self.meta,
        }
        save_artifact(path, t, kind="ActivationStats", meta=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ActivationStats:
        """Load stats saved by :meth:`save` (older artifacts: see the module docs)."""
        t, meta = load_artifact(path, kind="ActivationStats")
        info = dict(meta.get("info", {}))
        moments = None
        if "moments.n" in t:
            moments = Moments(*(t[f"moments.{k}"] for k in ("n", "x", "y", "yy", "xy", "xx")))
            info.setdefault("moments_target", "legacy_label_value")
        sample = None
        if "sample.keys" in t:
            sample = Reservoir(int(meta["sample_k"]), t["sample.keys"], t["sample.x"])
        count, norm_sum = t["count"], t["norm_sum"]
        if norm_sum.ndim == 1:  # saved before norms were kept per group and label
            share = count.double() / max(int(count.sum()), 1)
            norm_sum = norm_sum.double()[:, None, None] * share[None]
            info["norm_sum_pooled"] = True
        return cls(
            [int(x) for x in meta["layers"]],
            list(meta["groups"]),
            [int(c) for c in meta["classes"]],
            count,
            t["sum"],
            norm_sum,
            moments,
            sample,
            info,
        )
