"""``standardized``: the mean difference after per-dimension standardisation, sinks zeroed
(the construction of the "Value Transplant" paper).

Every dimension is divided by its sd over the BEFORE and AFTER tokens of the stats (one pooled
mean); dimensions whose sd exceeds ``sink_ratio`` (8) times the median sd are *sinks* and are
zeroed, as are constant ones. The standardised direction is ``u = mean_g (dmu_g / sd)`` (zero on
sinks). The axis stores its map back to residual space, ``sd * u`` (the displacement that moves
the z-scores by ``u``: the mean difference with the sinks zeroed), and reads residuals through a
:class:`~value_lens.fitting.transforms.Standardizer`: ``trace`` and ``project`` score
``cos(z, u)`` with ``z`` the standardised residual, and ``axis.readout.read_direction`` gives
``u``. ``info`` records the threshold, the median sd and the zeroed dimensions per layer. Needs
``CollectPlan(squares=True)`` (``L G C D`` numbers, cheap).
"""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE
from value_lens.errors import InputError
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats
from value_lens.fitting.transforms import Standardizer

__all__ = ["FITTER", "SINK_RATIO", "standardized", "token_sd"]

SINK_RATIO = 8.0
"""A dimension is a sink when its sd exceeds this many times the median sd (Value Transplant)."""


def token_sd(stats: ActivationStats, labels: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, sd)`` per layer and dimension over every token of ``labels`` (population sd)."""
    if stats.sq_sum is None:
        raise InputError(
            "method='standardized' needs per-dimension squared sums: collect_stats(..., "
            "plan=CollectPlan(squares=True))"
        )
    ci = [stats.class_index(c) for c in labels]
    n = float(stats.count[:, ci].sum())
    if n < 2:
        raise InputError(f"need at least 2 tokens of labels {list(labels)} to standardise")
    mean = stats.sum[:, :, ci].double().sum(dim=(1, 2)) / n
    var = stats.sq_sum[:, :, ci].sum(dim=(1, 2)) / n - mean * mean
    return mean, var.clamp_min(0).sqrt()


def standardized(
    stats: ActivationStats,
    *,
    pos: int = AFTER,
    neg: int = BEFORE,
    sink_ratio: float = SINK_RATIO,
    min_count: int = 1,
) -> tuple[torch.Tensor, dict[str, Any], Standardizer]:
    """The standardised mean difference with sinks zeroed (see the module docs)."""
    if not sink_ratio > 0:
        raise InputError(f"sink_ratio must be positive, got {sink_ratio}")
    mean, sd = token_sd(stats, (neg, pos))
    median = sd.median(dim=-1).values
    sink = sd > sink_ratio * median[:, None]
    keep = ~sink & (sd > 0)
    scale = torch.where(keep, sd, torch.zeros_like(sd))
    diffs, groups = stats.group_diffs(pos, neg, min_count=min_count)
    u = (diffs.double() / sd.clamp_min(1e-30)[:, None]).mean(dim=1) * keep
    info = {
        "groups": groups,
        "pos": pos,
        "neg": neg,
        "sink_ratio": sink_ratio,
        "median_sd": median.tolist(),
        "sink_dims": [torch.nonzero(r).flatten().tolist() for r in sink],
    }
    return (scale * u).float(), info, Standardizer(mean, scale)


FITTER = Fitter(
    "standardized",
    standardized,
    needs=CollectPlan(squares=True),
    summary="mean difference of per-dimension z-scores, sink dimensions (sd > 8x median) zeroed",
)
