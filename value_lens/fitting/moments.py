"""Optional statistics beyond the per-group sums, each additive like the sums themselves.

* :class:`Moments`: pooled second moments of the tokens with a regression target (ridge, the
  projection sd); pooled over groups, so a group selection drops them.
* :class:`ClassMoments`: second moments per layer, group and label of the tokens of a few labels
  (BEFORE and AFTER by default), with the fourth-moment sums that Ledoit-Wolf shrinkage needs and,
  optionally, cross-moments with per-token position features (for LEACE). Everything is kept per
  group, so a selection of groups (a sweep's training split) restricts them exactly.
* :class:`Reservoir`: a uniform token sample per label; with group tags a selection keeps the
  selected groups' tokens (still a uniform sample of them).

Memory of :class:`ClassMoments`: ``L x G x K x D^2`` fp64 numbers (L layers, G groups, K labels,
D = d_model), which :func:`class_moment_bytes` computes and collection checks against a budget.

Example:
    >>> class_moment_bytes(layers=1, groups=12, labels=2, d_model=4096) / 2**30
    3.0
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from jaxtyping import Float

from value_lens.errors import InputError

__all__ = ["ClassMoments", "Moments", "Reservoir", "class_moment_bytes"]


def class_moment_bytes(*, layers: int, groups: int, labels: int, d_model: int) -> int:
    """Bytes of the fp64 second moments ``xx [L, G, K, D, D]`` (the dominant term)."""
    return 8 * layers * groups * labels * d_model * d_model


@dataclass
class Moments:
    """Second moments over labelled tokens with a regression target ``y``.

    ``y`` is the token's float target when the data has targets, else 1 for ``AFTER`` and 0
    for ``BEFORE`` tokens; tokens without a target (NaN, or any other label) are left out.
    ``meta["moments_target"]`` of the stats says which (see
    :data:`value_lens.fitting.stats.MOMENTS_TARGETS`).
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


# group axis of each ClassMoments tensor (the rest are indexed [L, G, ...] or [G, ...])
_GROUP_DIM = {"xx": 1, "x4": 1, "x2x": 1, "z": 0, "zz": 0, "xz": 1}


@dataclass
class ClassMoments:
    """Per layer, group and label, sums over the tokens of ``labels`` (fp64).

    Attributes:
        labels: the K labels whose tokens are summed (their counts and vector sums are the
            stats' ``count`` and ``sum``).
        xx: ``[L, G, K, D, D]`` sums of ``x x^T``.
        x4: ``[L, G, K]`` sums of ``|x|^4``; x2x: ``[L, G, K, D]`` sums of ``|x|^2 x`` (with
            ``xx`` they give the cell-centred fourth moment of Ledoit-Wolf shrinkage).
        features: names of the F position features, or ``()`` when none were collected.
        z: ``[G, K, F]`` sums of the features; zz: ``[G, K, F, F]`` of ``z z^T``;
            xz: ``[L, G, K, D, F]`` of ``x z^T``.
    """

    labels: tuple[int, ...]
    xx: Float[torch.Tensor, "L G K D D"]
    x4: Float[torch.Tensor, "L G K"]
    x2x: Float[torch.Tensor, "L G K D"]
    features: tuple[str, ...] = ()
    z: torch.Tensor | None = None
    zz: torch.Tensor | None = None
    xz: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors by name (position cross-moments only when collected)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                out[f.name] = v
        return out

    @classmethod
    def from_tensors(
        cls, labels: tuple[int, ...], features: tuple[str, ...], t: dict[str, torch.Tensor]
    ) -> ClassMoments:
        opt = (t.get("z"), t.get("zz"), t.get("xz"))
        return cls(tuple(labels), t["xx"], t["x4"], t["x2x"], tuple(features), *opt)

    def _map(self, fn: object) -> ClassMoments:
        changes = {k: fn(k, v) for k, v in self.tensors().items()}  # type: ignore[operator]
        return replace(self, **changes)

    def select(self, idx: torch.Tensor) -> ClassMoments:
        """The moments of groups ``idx`` (in that order)."""
        return self._map(lambda k, v: v.index_select(_GROUP_DIM[k], idx))

    def layout(self, gi: torch.Tensor, n_groups: int) -> ClassMoments:
        """Zero-filled into ``n_groups`` groups, group ``j`` of these going to ``gi[j]``."""

        def put(k: str, v: torch.Tensor) -> torch.Tensor:
            dim = _GROUP_DIM[k]
            shape = list(v.shape)
            shape[dim] = n_groups
            return torch.zeros(shape, dtype=v.dtype).index_copy(dim, gi, v)

        return self._map(put)

    def __add__(self, other: ClassMoments) -> ClassMoments:
        if self.labels != other.labels or self.features != other.features:
            raise InputError(
                f"cannot add class moments of labels {self.labels} / features {self.features} "
                f"and {other.labels} / {other.features}; collect both with the same plan"
            )
        theirs = other.tensors()
        return self._map(lambda k, v: v + theirs[k])

    def label_index(self, label: int) -> int:
        if label not in self.labels:
            raise InputError(
                f"the class moments hold labels {list(self.labels)}, not {label}; collect them "
                f"with CollectPlan(moment_labels=...) naming it"
            )
        return self.labels.index(label)


@dataclass
class Reservoir:
    """A uniform random sample of at most ``k`` tokens per class (same tokens in every layer).

    Every token gets a deterministic random key (from the seed and its sequence's content); the
    sample is the ``k`` smallest keys, so merging two reservoirs gives exactly the reservoir of
    the union. ``group`` (``[C, K]``, -1 for an empty slot) tags each token with the index of its
    group in the stats, so a group selection keeps exactly the selected groups' tokens; samples
    saved before tags existed have ``group=None`` and are dropped by a selection.
    """

    k: int
    keys: Float[torch.Tensor, "C K"]  # +inf marks an empty slot
    x: Float[torch.Tensor, "L C K D"]
    group: torch.Tensor | None = None

    def __add__(self, other: Reservoir) -> Reservoir:
        keys = torch.cat([self.keys, other.keys], dim=1)
        x = torch.cat([self.x, other.x], dim=2)
        order = keys.argsort(dim=1, stable=True)[:, : self.k]
        idx = order[None, :, :, None].expand(x.shape[0], -1, -1, x.shape[-1])
        group = None
        if self.group is not None and other.group is not None:
            group = torch.cat([self.group, other.group], dim=1).gather(1, order)
        return Reservoir(self.k, keys.gather(1, order), x.gather(2, idx), group)

    def class_sample(self, c: int) -> Float[torch.Tensor, "L N D"]:
        filled = torch.isfinite(self.keys[c])
        return self.x[:, c, filled]

    def regroup(self, mapping: torch.Tensor) -> Reservoir:
        """Group tags renumbered: old index ``j`` becomes ``mapping[j]`` (-1 drops the token)."""
        if self.group is None:
            return self
        ext = torch.cat([mapping.long(), torch.tensor([-1])])  # index -1 -> stays empty
        group = ext[self.group]
        keys = torch.where(group >= 0, self.keys, torch.full_like(self.keys, float("inf")))
        return Reservoir(self.k, keys, self.x, group)
