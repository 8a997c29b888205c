"""What a layer sweep returns: :class:`SweepResult`, the per-layer table plus its splits,
clusters, timings and settings.

Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"layer": [3, 4], "token_auroc_mean": [0.7, 0.9]})
    >>> sw = SweepResult(table, SweepConfig(n_splits=2), layers=[3, 4], groups=["a", "b"])
    >>> sw.best_layer, sw.settings["n_splits"], sw.settings["ci"]
    (4, 2, None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from value_lens.analysis.sweep.config import SweepConfig
from value_lens.errors import InputError
from value_lens.fitting.stats import ActivationStats

__all__ = ["SweepResult", "cosine_matrix"]


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
        ci: the intervals' settings and clusters (``cluster``, ``level``, ``n_clusters``,
            ``method``), or ``None`` when skipped.
        n_tokens / n_placebo_tokens: labelled BEFORE/AFTER tokens, and placebo tokens.
        placebo: how the placebo turns were matched to their real turns (kept, dropped).
        timings: wall and CPU seconds spent collecting, projecting and refitting, and
            ``passes``: 1 when the labelled residuals fit ``max_memory_gb`` (one forward pass),
            else 2.
        stats: the statistics of the data at the swept layers: derived from the kept residuals
            on the one-pass path, collected on the two-pass path (the given ``stats=`` when
            passed); ``None`` under ``torch.distributed``'s one-pass path.
    """

    table: pd.DataFrame
    config: SweepConfig = SweepConfig()
    layers: Sequence[int] = ()
    groups: Sequence[str] = ()
    cosine: np.ndarray | None = None
    splits: Sequence[Mapping[str, object]] = ()
    ci: Mapping[str, object] | None = None
    n_tokens: int = 0
    n_placebo_tokens: int = 0
    placebo: Mapping[str, object] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    stats: ActivationStats | None = field(default=None, repr=False, compare=False)

    @property
    def best_layer(self) -> int:
        """The layer with the highest held-out ``token_auroc_mean``."""
        t = self.table
        if t.empty or "token_auroc_mean" not in t or t["token_auroc_mean"].isna().all():
            raise InputError("this sweep table has no finite token_auroc_mean to pick a layer by")
        return int(t.loc[t["token_auroc_mean"].idxmax(), "layer"])

    @property
    def settings(self) -> dict[str, object]:
        """JSON-ready settings: the config's fields, the intervals' ``ci``, token counts,
        placebo matching, ``layers`` and ``groups`` (what a results folder records next to the
        table)."""
        cfg = asdict(self.config)
        cfg["train_sets"] = (
            None if self.config.train_sets is None else [list(s) for s in self.config.train_sets]
        )
        return {
            **cfg,
            "ci": None if self.ci is None else dict(self.ci),
            "n_tokens": self.n_tokens,
            "n_placebo_tokens": self.n_placebo_tokens,
            "placebo_matching": dict(self.placebo),
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
