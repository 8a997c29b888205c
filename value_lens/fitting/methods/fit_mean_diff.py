"""``mean_diff``: the paper's Eq. 1, the mean over groups of (mean AFTER - mean BEFORE)."""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE
from value_lens.fitting.methods.common import mean_weights
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.stats import ActivationStats

__all__ = ["FITTER", "mean_diff"]


def mean_diff(
    stats: ActivationStats, *, pos: int = AFTER, neg: int = BEFORE, min_count: int = 1
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Mean over groups of (mean of ``pos`` tokens - mean of ``neg`` tokens)."""
    diffs, groups = stats.group_diffs(pos, neg, min_count=min_count)
    return diffs.mean(dim=1).float(), {"groups": groups, "pos": pos, "neg": neg}


FITTER = Fitter(
    "mean_diff",
    mean_diff,
    sweep_weights=mean_weights,
    summary="the paper's mean over criteria of (mean AFTER - mean BEFORE)",
)
