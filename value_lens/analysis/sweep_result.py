"""What a layer sweep runs with (:class:`SweepConfig`, :class:`ClusterCI`) and what it returns
(:class:`SweepResult`: the per-layer table plus its splits, clusters, timings and settings).

Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"layer": [3, 4], "token_auroc_mean": [0.7, 0.9]})
    >>> sw = SweepResult(table, SweepConfig(n_splits=2), layers=[3, 4], groups=["a", "b"])
    >>> sw.best_layer, sw.settings["n_splits"], sw.settings["ci"]
    (4, 2, None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from value_lens.errors import InputError

__all__ = ["SWEEP_METHODS", "ClusterCI", "SweepConfig", "SweepResult", "cosine_matrix"]

SweepMethod = Literal["mean_diff", "pca_diff", "did"]
SWEEP_METHODS: tuple[SweepMethod, ...] = ("mean_diff", "pca_diff", "did")


@dataclass(frozen=True)
class ClusterCI:
    """The cluster bootstrap behind ``token_auroc_ci_lo`` / ``token_auroc_ci_hi``.

    Each resample draws as many clusters as the data has, with replacement (seeded by the
    sweep's ``seed``); every drawn cluster brings all its tokens, every split's held-out
    AUROC is recomputed on them and averaged over splits, as ``token_auroc_mean`` is.

    Attributes:
        cluster: the resampled unit: a ``meta`` key shared by the sequences of one unit
            (default ``"conversation_id"``, as :func:`value_lens.data.icrl.label` records;
            data where no sequence has the key fall back to one cluster per sequence),
            ``"sequence"``, or ``"group"`` (whole criteria).
        n_boot: resamples.
        level: coverage of the percentile interval.
    """

    cluster: str = "conversation_id"
    n_boot: int = 1000
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.n_boot < 1 or not 0 < self.level < 1:
            raise InputError(f"ClusterCI needs n_boot >= 1 and 0 < level < 1, got {self}")


@dataclass(frozen=True)
class SweepConfig:
    """The settings a layer sweep's numbers depend on (defaults: the paper's protocol).

    Attributes:
        n_splits / n_train / seed: the splits (split ``s`` permutes the usable groups with
            ``numpy.random.default_rng([seed, s])`` and trains on the first ``n_train``); the
            seed also draws the random directions and the bootstrap's resamples.
        train_sets: explicit splits, one list of training criterion names per split (the other
            usable criteria are held out); replaces ``n_splits``/``n_train``.
        method: ``"mean_diff"`` (paper Eq. 1), ``"pca_diff"`` or ``"did"`` (the
            difference-in-differences axis; needs ``icrl.label(..., placebo=True)`` data).
        n_random: random unit directions per layer for the chance baseline.
        n_shuffle: draws of the shuffled-label null (one-pass path only, else NaN).
        min_count: a group needs this many BEFORE and AFTER tokens to be used.
        ci: the cluster bootstrap (:class:`ClusterCI`); ``None`` skips it (CI columns NaN).
        max_memory_gb: when the BEFORE/AFTER residuals of all layers fit in this many GB
            (``4 * N * L * d_model`` bytes) and no ``stats=`` is given, the model runs once and
            keeps them; otherwise twice (statistics, then projections). Results agree.
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

    def __post_init__(self) -> None:
        if self.method not in SWEEP_METHODS:
            raise InputError(
                f"layer_sweep supports methods {SWEEP_METHODS} (directions in the span of the "
                f"groups' differences); got {self.method!r}. Fit other methods with "
                "ValueAxis.fit"
            )
        if self.train_sets is None and (self.n_splits < 1 or self.n_train < 1):
            raise InputError("n_splits and n_train must be positive")
        if self.n_random < 0 or self.n_shuffle < 0:
            raise InputError("n_random and n_shuffle must be >= 0")
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


@dataclass(frozen=True)
class SweepResult:
    """One layer sweep: the per-layer ``table`` and everything needed to read it.

    Attributes:
        table: one row per layer (columns documented in
            :func:`value_lens.analysis.sweep.layer_sweep`); the figures of :mod:`value_lens.viz`
            take it.
        config: the :class:`SweepConfig` it ran with.
        layers: the swept layers, in table order.
        groups: the usable criteria (sorted), indexed by the splits' training sets.
        cosine: ``[L, L]`` cosines of the all-criteria directions (see :meth:`cosine_matrix`).
        splits: per split and layer: ``token_auroc``, ``function_score``, ``train_groups``.
        ci: the bootstrap's settings and clusters (``cluster``, ``n_boot``, ``level``,
            ``n_clusters``, ``seed``), or ``None`` when skipped.
        n_tokens / n_placebo_tokens: labelled BEFORE/AFTER tokens, and placebo tokens.
        timings: wall and CPU seconds spent collecting, projecting and refitting.
    """

    table: pd.DataFrame
    config: SweepConfig = SweepConfig()
    layers: Sequence[int] = ()
    groups: Sequence[str] = ()
    cosine: np.ndarray | None = None
    splits: Sequence[Mapping[str, Any]] = ()
    ci: Mapping[str, Any] | None = None
    n_tokens: int = 0
    n_placebo_tokens: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def best_layer(self) -> int:
        """The layer with the highest held-out ``token_auroc_mean``."""
        t = self.table
        if t.empty or "token_auroc_mean" not in t or t["token_auroc_mean"].isna().all():
            raise InputError("this sweep table has no finite token_auroc_mean to pick a layer by")
        return int(t.loc[t["token_auroc_mean"].idxmax(), "layer"])

    @property
    def settings(self) -> dict[str, Any]:
        """JSON-ready settings: the config's fields, the bootstrap's ``ci``, token counts,
        ``layers`` and ``groups`` (what a results folder records next to the table)."""
        cfg = asdict(self.config)
        cfg["train_sets"] = (
            None if self.config.train_sets is None else [list(s) for s in self.config.train_sets]
        )
        return {
            **cfg,
            "ci": None if self.ci is None else dict(self.ci),
            "n_tokens": self.n_tokens,
            "n_placebo_tokens": self.n_placebo_tokens,
            "layers": list(self.layers),
            "groups": list(self.groups),
        }

    def cosine_matrix(self) -> pd.DataFrame:
        """The layer x layer cosine matrix, labelled by layer."""
        return cosine_matrix(self)


def cosine_matrix(sweep: SweepResult) -> pd.DataFrame:
    """The layer x layer cosines of a sweep's all-criteria directions, labelled by layer."""
    if not isinstance(sweep, SweepResult) or sweep.cosine is None:
        raise InputError(
            "cosine_matrix needs the SweepResult that layer_sweep returned (not its table)"
        )
    layers = list(sweep.layers)
    return pd.DataFrame(np.asarray(sweep.cosine), index=layers, columns=layers)
