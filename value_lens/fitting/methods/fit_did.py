"""``did``: difference in differences, the mean over groups of (AFTER - BEFORE) minus
(PLACEBO_AFTER - PLACEBO_BEFORE); needs placebo turns (``icrl.label(..., placebo=True)``). It
removes what real and placebo turns share, such as the drift with position in the turn."""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE
from value_lens.errors import InputError
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats

__all__ = ["FITTER", "did"]


def did(stats: ActivationStats, *, min_count: int = 1) -> tuple[torch.Tensor, dict[str, Any]]:
    """Mean over groups of (mean AFTER - mean BEFORE) - (mean PLACEBO_AFTER - mean PLACEBO_BEFORE).

    Only groups with all four labels count (``info["groups"]``; the others are listed in
    ``info["dropped_groups"]``).

    Example:
        >>> import torch
        >>> from value_lens.fitting.stats import ActivationStats
        >>> # one group; classes BEFORE, AFTER, PLACEBO_BEFORE, PLACEBO_AFTER; d = 2
        >>> sums = torch.tensor([[[[0.0, 0.0], [3.0, 1.0], [0.0, 0.0], [1.0, 1.0]]]])
        >>> s = ActivationStats([0], ["g"], [0, 1, 3, 4], torch.ones(1, 4, dtype=torch.long),
        ...                     sums, torch.ones(1, 1, 4))
        >>> did(s)[0].tolist()
        [[2.0, 0.0]]
    """
    if PLACEBO_BEFORE not in stats.classes or PLACEBO_AFTER not in stats.classes:
        raise InputError(
            "method='did' needs placebo turns: label with icrl.label(..., placebo=True) and "
            "collect the stats again"
        )
    real, g_real = stats.group_diffs(AFTER, BEFORE, min_count=min_count)
    fake, g_fake = stats.group_diffs(PLACEBO_AFTER, PLACEBO_BEFORE, min_count=min_count)
    both = [g for g in g_real if g in g_fake]
    if not both:
        raise InputError(
            "no group has both real and placebo turns with tokens on each side; label more "
            "conversations with placebo=True (failed attempts must precede the labelled turn)"
        )
    ir = [g_real.index(g) for g in both]
    ip = [g_fake.index(g) for g in both]
    dirs = (real[:, ir] - fake[:, ip]).mean(dim=1).float()
    dropped = sorted(set(g_real) - set(both))
    return dirs, {"groups": both, "dropped_groups": dropped}


FITTER = Fitter(
    "did",
    did,
    needs=CollectPlan(placebo=True),
    summary="difference in differences against placebo turns (label with placebo turns)",
)
