"""What :func:`~value_lens.fitting.collect.collect_stats` keeps beyond the per-group sums.

A :class:`CollectPlan` is also how a fitting method states what it needs (see
:mod:`value_lens.fitting.methods`): plans combine with ``|``, a plan checks the data and the
memory before any forward pass, and :meth:`CollectPlan.missing` says what a set of statistics
lacks.

Example:
    >>> p = CollectPlan(moments=True) | CollectPlan(sample_per_class=50)
    >>> p.moments, p.sample_per_class
    (True, 50)
    >>> CollectPlan(positions=True).class_moments  # LEACE needs the second moments too
    True
    >>> (CollectPlan(max_moments_gb=64) | CollectPlan(class_moments=True)).max_moments_gb
    64
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from value_lens.data.positions import POSITION_FEATURES
from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE, LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.moments import class_moment_bytes

__all__ = ["MOMENTS_BUDGET_GB", "CollectPlan"]

MOMENTS_BUDGET_GB = 4.0
"""Default memory budget (GiB) of the per-group class moments."""


@dataclass(frozen=True)
class CollectPlan:
    """Statistics to keep beyond the per-group, per-label sums, counts and norms.

    Attributes:
        moments: pooled second moments of the tokens with a regression target (``ridge``, the
            projection sd).
        class_moments: per-group, per-label second moments of the ``moment_labels`` tokens
            (``lda``, ``erased``; :class:`~value_lens.fitting.moments.ClassMoments`), fp64.
        positions: also the cross-moments of those tokens with their position features
            (:data:`value_lens.data.positions.POSITION_FEATURES`); implies ``class_moments``.
        squares: per-group, per-label sums of squared coordinates (``standardized``).
        sample_per_class: a seeded uniform sample of this many tokens per label (``logistic``).
        placebo: the data must hold placebo turns (``did``); checked, nothing collected.
        moment_labels: the labels the class moments cover.
        max_moments_gb: refuse class moments that need more memory than this (GiB; ``None``:
            :data:`MOMENTS_BUDGET_GB`). Combining plans keeps the larger budget either names.
    """

    moments: bool = False
    class_moments: bool = False
    positions: bool = False
    squares: bool = False
    sample_per_class: int = 0
    placebo: bool = False
    moment_labels: tuple[int, ...] = (BEFORE, AFTER)
    max_moments_gb: float | None = None

    def __post_init__(self) -> None:
        if self.positions and not self.class_moments:
            object.__setattr__(self, "class_moments", True)
        object.__setattr__(self, "moment_labels", tuple(sorted(set(self.moment_labels))))
        if self.sample_per_class < 0:
            raise InputError(f"sample_per_class must be >= 0, got {self.sample_per_class}")
        if self.max_moments_gb is not None and not self.max_moments_gb > 0:
            raise InputError(f"max_moments_gb must be positive, got {self.max_moments_gb}")

    def __or__(self, other: CollectPlan) -> CollectPlan:
        flags = {
            f.name: getattr(self, f.name) or getattr(other, f.name)
            for f in fields(self)
            if f.type in ("bool", bool)
        }
        return CollectPlan(
            **flags,
            sample_per_class=max(self.sample_per_class, other.sample_per_class),
            moment_labels=tuple(set(self.moment_labels) | set(other.moment_labels)),
            max_moments_gb=max(
                (b for b in (self.max_moments_gb, other.max_moments_gb) if b is not None),
                default=None,
            ),
        )

    def check_data(self, data: LabelledTokens) -> None:
        """Raise before any forward pass when ``data`` cannot give what this plan needs."""
        have = set(data.label_counts())
        if self.placebo and not {PLACEBO_BEFORE, PLACEBO_AFTER} <= have:
            raise InputError(
                "this method needs placebo turns: label with icrl.label(..., placebo=True)"
            )
        if self.class_moments and not set(self.moment_labels) & have:
            raise InputError(
                f"the class moments cover labels {list(self.moment_labels)}, but the data has "
                f"only labels {sorted(have)}; set CollectPlan(moment_labels=...)"
            )

    def check_memory(self, *, layers: int, groups: int, d_model: int) -> None:
        """Refuse class moments whose ``layers x groups x labels x d_model^2`` fp64 numbers
        exceed ``max_moments_gb``, stating what they would need."""
        if not self.class_moments:
            return
        k = len(self.moment_labels)
        need = class_moment_bytes(layers=layers, groups=groups, labels=k, d_model=d_model)
        budget = MOMENTS_BUDGET_GB if self.max_moments_gb is None else self.max_moments_gb
        if need > budget * 2**30:
            per_layer = need / layers / 2**30
            raise InputError(
                f"the per-group second moments (lda, erased) need {need / 2**30:.2f} GiB: "
                f"8 bytes x {layers} layers x {groups} groups x {k} labels x d_model^2 "
                f"({d_model}^2), {per_layer:.2f} GiB per layer, over the budget of "
                f"{budget:g} GiB; collect fewer layers (layers=...) or groups, or "
                "raise CollectPlan(max_moments_gb=...)"
            )

    def missing(self, stats: Any) -> list[str]:
        """What ``stats`` lacks of this plan (empty when they serve it)."""
        out = []
        if self.moments and stats.moments is None:
            out.append("pooled second moments (moments=True)")
        cm = stats.class_moments
        if self.class_moments and (cm is None or not set(self.moment_labels) <= set(cm.labels)):
            out.append(f"class moments of labels {list(self.moment_labels)}")
        if self.positions and (cm is None or cm.features != POSITION_FEATURES):
            out.append("position cross-moments (positions=True)")
        if self.squares and stats.sq_sum is None:
            out.append("squared sums (squares=True)")
        k = self.sample_per_class
        if k and (stats.sample is None or stats.sample.k < k):
            out.append(f"a token sample of {k} per label (sample_per_class={k})")
        if self.placebo and not {PLACEBO_BEFORE, PLACEBO_AFTER} <= set(stats.classes):
            out.append("placebo turns (icrl.label(..., placebo=True))")
        return out

    def satisfied_by(self, stats: Any) -> bool:
        return not self.missing(stats)
