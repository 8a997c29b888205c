"""The algebra and persistence of :class:`~value_lens.fitting.stats.ActivationStats`, as functions
over its fields (``add_fields`` for ``a + b``, ``to_artifact`` / ``from_artifact`` for files).

They return the constructor's keyword arguments, so this module never imports the class.
"""

from __future__ import annotations

from typing import Any

import torch

from value_lens.errors import InputError
from value_lens.fitting.moments import ClassMoments, Moments, Reservoir

__all__ = ["add_fields", "from_artifact", "to_artifact"]


def _grid(s: Any, groups: list[str], classes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    gi = torch.tensor([groups.index(g) for g in s.groups], dtype=torch.long)
    ci = torch.tensor([classes.index(c) for c in s.classes], dtype=torch.long)
    return gi, ci


def _add_sample(a: Any, b: Any, groups: list[str]) -> Reservoir | None:
    if a.sample is None or b.sample is None:
        return None
    if a.classes != b.classes:
        raise InputError("reservoir samples can only be merged for stats with the same labels")
    parts = [s.sample.regroup(torch.tensor([groups.index(g) for g in s.groups])) for s in (a, b)]
    return parts[0] + parts[1]


def _add_class_moments(a: Any, b: Any, groups: list[str]) -> ClassMoments | None:
    if a.class_moments is None or b.class_moments is None:
        return None
    laid = [s.class_moments.layout(_grid(s, groups, s.classes)[0], len(groups)) for s in (a, b)]
    return laid[0] + laid[1]


def _add_moments(a: Any, b: Any) -> Moments | None:
    if a.moments is None or b.moments is None:
        return None
    ta, tb = a.meta.get("moments_target"), b.meta.get("moments_target")
    if ta != tb:
        raise InputError(
            f"cannot add moments with different regression targets ({ta} vs {tb}); "
            "re-collect both with the same value_lens version and data kind"
        )
    return a.moments + b.moments


def _merged_meta(a: Any, b: Any, groups: list[str]) -> dict[str, Any]:
    meta = dict(a.meta)
    meta["n_sequences"] = int(a.meta.get("n_sequences", 0)) + int(b.meta.get("n_sequences", 0))
    if a.meta.get("norm_sum_pooled") or b.meta.get("norm_sum_pooled"):
        meta["norm_sum_pooled"] = True
    ga, gb = a.meta.get("group_sequences"), b.meta.get("group_sequences")
    if isinstance(ga, dict) and isinstance(gb, dict):
        meta["group_sequences"] = {
            g: int(ga.get(g, 0)) + int(gb.get(g, 0)) for g in groups if g in ga or g in gb
        }
    else:
        meta.pop("group_sequences", None)
    hashes = {str(a.meta.get("dataset_hash", "")), str(b.meta.get("dataset_hash", ""))}
    meta["dataset_hash"] = "+".join(sorted(hashes))
    return meta


def add_fields(a: Any, b: Any) -> dict[str, Any]:
    """Constructor arguments of ``a + b``: the groups and labels of both, every sum added."""
    if a.layers != b.layers or a.d_model != b.d_model:
        raise InputError(
            f"cannot add stats of layers {a.layers} (d={a.d_model}) and "
            f"{b.layers} (d={b.d_model}); collect both with the same layers and model"
        )
    mid_a, mid_b = a.meta.get("model_id"), b.meta.get("model_id")
    if mid_a and mid_b and mid_a != mid_b:
        raise InputError(f"cannot add stats from different models ({mid_a} vs {mid_b})")
    groups = list(dict.fromkeys(a.groups + b.groups))
    classes = sorted(set(a.classes) | set(b.classes))
    L, G, C = len(a.layers), len(groups), len(classes)
    count = torch.zeros(G, C, dtype=torch.long)
    total = torch.zeros(L, G, C, a.d_model, dtype=a.sum.dtype)
    norm_sum = torch.zeros(L, G, C, dtype=torch.float64)
    both_sq = a.sq_sum is not None and b.sq_sum is not None
    sq = torch.zeros(L, G, C, a.d_model, dtype=torch.float64) if both_sq else None
    for s in (a, b):
        gi, ci = _grid(s, groups, classes)
        count[gi[:, None], ci[None, :]] += s.count
        total[:, gi[:, None], ci[None, :]] += s.sum.to(total.dtype)
        norm_sum[:, gi[:, None], ci[None, :]] += s.norm_sum.to(norm_sum.dtype)
        if sq is not None:
            sq[:, gi[:, None], ci[None, :]] += s.sq_sum
    return {
        "layers": a.layers,
        "groups": groups,
        "classes": classes,
        "count": count,
        "sum": total,
        "norm_sum": norm_sum,
        "moments": _add_moments(a, b),
        "sample": _add_sample(a, b, groups),
        "meta": _merged_meta(a, b, groups),
        "class_moments": _add_class_moments(a, b, groups),
        "sq_sum": sq,
    }


def to_artifact(s: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and JSON metadata of a stats object, for :func:`value_lens.core.io.save_artifact`."""
    t: dict[str, torch.Tensor] = {"count": s.count, "sum": s.sum, "norm_sum": s.norm_sum}
    if s.moments is not None:
        for name, v in zip(("n", "x", "y", "yy", "xy", "xx"), s.moments.tensors(), strict=True):
            t[f"moments.{name}"] = v
    if s.sample is not None:
        t["sample.keys"], t["sample.x"] = s.sample.keys, s.sample.x
        if s.sample.group is not None:
            t["sample.group"] = s.sample.group
    if s.sq_sum is not None:
        t["sq_sum"] = s.sq_sum
    cm = s.class_moments
    if cm is not None:
        t.update({f"class_moments.{k}": v for k, v in cm.tensors().items()})
    meta = {
        "layers": s.layers,
        "groups": s.groups,
        "classes": s.classes,
        "sample_k": None if s.sample is None else s.sample.k,
        "class_moment_labels": None if cm is None else list(cm.labels),
        "class_moment_features": None if cm is None else list(cm.features),
        "info": s.meta,
    }
    return t, meta


def from_artifact(t: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments from a saved artifact (older artifacts: see the stats module)."""
    info = dict(meta.get("info", {}))
    moments = None
    if "moments.n" in t:
        moments = Moments(*(t[f"moments.{k}"] for k in ("n", "x", "y", "yy", "xy", "xx")))
        info.setdefault("moments_target", "legacy_label_value")
    sample = None
    if "sample.keys" in t:
        sample = Reservoir(int(meta["sample_k"]), t["sample.keys"], t["sample.x"])
        sample.group = t.get("sample.group")
    count, norm_sum = t["count"], t["norm_sum"]
    if norm_sum.ndim == 1:  # saved before norms were kept per group and label
        share = count.double() / max(int(count.sum()), 1)
        norm_sum = norm_sum.double()[:, None, None] * share[None]
        info["norm_sum_pooled"] = True
    cm = None
    if meta.get("class_moment_labels") is not None:
        parts = {k.split(".", 1)[1]: v for k, v in t.items() if k.startswith("class_moments.")}
        labels = tuple(int(x) for x in meta["class_moment_labels"])
        cm = ClassMoments.from_tensors(labels, tuple(meta["class_moment_features"] or ()), parts)
    return {
        "layers": [int(x) for x in meta["layers"]],
        "groups": list(meta["groups"]),
        "classes": [int(c) for c in meta["classes"]],
        "count": count,
        "sum": t["sum"],
        "norm_sum": norm_sum,
        "moments": moments,
        "sample": sample,
        "meta": info,
        "class_moments": cm,
        "sq_sum": t.get("sq_sum"),
    }
