"""What a layer sweep runs with: :class:`SweepConfig` and its interval, :class:`ClusterCI`.

Example:
    >>> SweepConfig(n_splits=3).with_overrides(seed=2).seed
    2
    >>> ClusterCI().cluster
    'group'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from value_lens.errors import InputError

__all__ = ["SWEEP_METHODS", "ClusterCI", "SweepConfig", "sweep_methods"]

SweepMethod = str
SWEEP_METHODS: tuple[str, ...] = ("mean_diff", "pca_diff", "did")
"""The methods swept from the groups' difference vectors alone (one pass fits them all); any
other registered method is refitted per split from the statistics."""


def sweep_methods() -> tuple[str, ...]:
    """Every method a sweep accepts: the registered fitters (``did`` among them)."""
    from value_lens.fitting.methods import FITTERS

    return tuple(FITTERS)


@dataclass(frozen=True)
class ClusterCI:
    """The intervals ``*_ci_lo`` / ``*_ci_hi`` of a sweep: a leave-one-cluster-out jackknife.

    Each cluster is left out in turn; where the cluster is a criterion that trained a split,
    that split's direction is **refitted without it** (the refit is a change of weights over the
    groups' difference vectors: cheap), and every held-out score is recomputed on the rest. The
    interval is ``estimate +- t_{C-1} se`` (:mod:`value_lens.analysis.intervals`): it stays
    centred on its estimate and covered at least 90% of the time at 12 criteria in
    ``tests/analysis/test_sweep_coverage.py``.

    Attributes:
        cluster: the unit left out: ``"group"`` (the criterion, default: the claim is about
            held-out criteria, so the variance over which criteria trained the fit counts),
            ``"sequence"``, or a ``meta`` key shared by the sequences of one unit (e.g.
            ``"conversation_id"``; data where no sequence has it fall back to sequences). Units
            other than ``"group"`` keep each split's direction fixed.
        level: coverage of the interval.
    """

    cluster: str = "group"
    level: float = 0.95

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise InputError(f"ClusterCI needs 0 < level < 1, got {self.level}")


@dataclass(frozen=True)
class SweepConfig:
    """The settings a layer sweep's numbers depend on (defaults: the paper's protocol).

    Attributes:
        n_splits / n_train / seed: the splits (split ``s`` permutes the usable groups with
            ``numpy.random.default_rng([seed, s])`` and trains on the first ``n_train``); the
            seed also draws the random directions and the shuffled-label null.
        train_sets: explicit splits, one list of training criterion names per split (the other
            usable criteria are held out); replaces ``n_splits``/``n_train``.
        method: any registered fitting method: ``"mean_diff"`` (paper Eq. 1), ``"pca_diff"``
            and ``"did"`` (the difference-in-differences axis; needs
            ``icrl.label(..., placebo=True)`` data) come from the groups' difference vectors;
            every other method (``lda``, ``standardized``, ``mean_centred``, ``erased``, ...) is
            refitted per split from statistics collected with its needs, takes the two-pass
            path and has no shuffled-label null.
        n_random: random unit directions per layer for the chance baseline.
        n_shuffle: draws of the shuffled-label null (one-pass path only, else not computed).
        min_count: a group needs this many BEFORE and AFTER tokens to be used.
        ci: the intervals (:class:`ClusterCI`); ``None`` skips them (CI columns NaN).
        max_memory_gb: when the BEFORE/AFTER residuals of all layers fit in this many GB
            (``4 * N * L * d_model`` bytes) and no ``stats=`` is given, the model runs once and
            keeps them; otherwise twice (statistics, then projections). Results agree.
        placebo_tolerance: placebo turns are re-cut to match their sequence's real turn within
            this many tokens a side (:func:`value_lens.data.placebo.rematch_placebo`).
        rd_degree: order of the smooth position terms of the discontinuity
            (:func:`value_lens.analysis.discontinuity.position_basis`).
        rd_trend: ``"turn"`` (each turn its own linear trend in position, besides the shared
            smooth terms) or ``"shared"`` (see :meth:`value_lens.analysis.discontinuity.CutSums.of`).
        match_width: width in tokens of the position strata of ``matched_auroc`` (1: exact
            distance from the turn's start and to its end).
        min_matched_pairs / min_matched_turns: below this support ``matched_auroc`` is NaN
            ("not enough matched pairs").
        smallest_effect: the smallest jump, in within-turn sd, that the position verdict treats
            as worth finding (its equivalence margin).
    """

    n_splits: int = 10
    n_train: int = 35
    seed: int = 0
    train_sets: Sequence[Sequence[str]] | None = None  # stored as a tuple of tuples
    method: SweepMethod = "mean_diff"
    n_random: int = 16
    n_shuffle: int = 4
    min_count: int = 1
    ci: ClusterCI | None = ClusterCI()
    max_memory_gb: float = 1.0
    placebo_tolerance: int = 5
    rd_degree: int = 2
    rd_trend: Literal["turn", "shared"] = "turn"
    match_width: int = 1
    min_matched_pairs: int = 30
    min_matched_turns: int = 4
    smallest_effect: float = 0.1

    def __post_init__(self) -> None:
        if self.method not in sweep_methods():
            raise InputError(
                f"unknown sweep method {self.method!r}; choose a registered fitting method "
                f"{sorted(sweep_methods())} (add one with value_lens.fitting.register_fitter)"
            )
        if self.train_sets is None and (self.n_splits < 1 or self.n_train < 1):
            raise InputError("n_splits and n_train must be positive")
        if self.n_random < 0 or self.n_shuffle < 0:
            raise InputError("n_random and n_shuffle must be >= 0")
        if self.rd_degree < 1 or self.match_width < 1 or self.placebo_tolerance < 0:
            raise InputError("rd_degree and match_width must be >= 1, placebo_tolerance >= 0")
        if self.rd_trend not in ("turn", "shared"):
            raise InputError(f"rd_trend must be 'turn' or 'shared', got {self.rd_trend!r}")
        if self.smallest_effect <= 0:
            raise InputError("smallest_effect must be positive (a jump in within-turn sd)")
        if self.train_sets is not None and not isinstance(self.train_sets, str):
            sets = tuple(s if isinstance(s, str) else tuple(s) for s in self.train_sets)
            object.__setattr__(self, "train_sets", sets)

    def with_overrides(self, **overrides: Any) -> SweepConfig:
        """A copy with ``overrides`` applied; an unknown name raises an error listing the fields."""
        return _replace(self, overrides)


def _replace(config: Any, overrides: Mapping[str, Any]) -> Any:
    names = set(config.__dataclass_fields__)
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise InputError(
            f"{type(config).__name__} has no setting(s) {unknown}; its settings are {sorted(names)}"
        )
    return replace(config, **overrides) if overrides else config
