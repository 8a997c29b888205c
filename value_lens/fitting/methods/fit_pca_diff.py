"""``pca_diff``: the top principal axis of the per-group differences (uncentred), sign-aligned
with their mean and scaled to the mean's projection on it."""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE
from value_lens.errors import InputError
from value_lens.fitting.methods.common import pca_weights
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.stats import ActivationStats

__all__ = ["FITTER", "pca_diff"]


def pca_diff(
    stats: ActivationStats, *, pos: int = AFTER, neg: int = BEFORE, min_count: int = 1
) -> tuple[torch.Tensor, dict[str, Any]]:
    """First principal axis of the per-group difference vectors (needs >= 2 groups)."""
    diffs, groups = stats.group_diffs(pos, neg, min_count=min_count)
    if len(groups) < 2:
        raise InputError("pca_diff needs at least 2 groups with both labels; use mean_diff")
    _, _, vh = torch.linalg.svd(diffs.double(), full_matrices=False)
    top = vh[:, 0]  # [L, D] unit vectors
    mean = diffs.double().mean(dim=1)
    scale = (mean * top).sum(-1, keepdim=True)
    return (top * scale).float(), {"groups": groups, "pos": pos, "neg": neg}


FITTER = Fitter(
    "pca_diff",
    pca_diff,
    sweep_weights=pca_weights,
    summary="top principal axis of the per-criterion differences",
)
