"""``erased``: the mean difference after LEACE erasure of the position features.

The eraser (:class:`~value_lens.fitting.transforms.LeaceEraser`) is fitted on the BEFORE and
AFTER tokens of the stats from their second moments and their cross-moments with the position
features (:data:`value_lens.data.positions.POSITION_FEATURES`: tokens since the turn's start,
tokens to its end, and their logs). It is affine, so the mean difference of the erased
residuals is ``(I - A B^T) dmu`` with ``dmu`` the mean difference of Eq. 1; that is the axis
direction, and the eraser is saved with the axis so that ``trace`` and ``project`` erase before
projecting. On the tokens it was fitted on, the erased residuals, and so any readout of them,
have exactly zero covariance with every position feature. Needs
``CollectPlan(positions=True)`` (the class moments plus ``L G 2 D F`` cross-moments).
"""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE
from value_lens.fitting.methods.common import class_moments_of, pooled_covariance
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats
from value_lens.fitting.transforms import LeaceEraser, leace

__all__ = ["FITTER", "erased", "position_covariance"]


def position_covariance(
    stats: ActivationStats, labels: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, Cov(x, x), Cov(x, z))`` per layer over every token of ``labels``."""
    cm = class_moments_of(stats, "erased", labels, positions=True)
    assert cm.xz is not None and cm.z is not None
    n, mean, cov = pooled_covariance(stats, cm, labels)
    ki = torch.tensor([cm.label_index(c) for c in labels], dtype=torch.long)
    gi = torch.arange(len(stats.groups))
    zbar = cm.z[gi][:, ki].sum(dim=(0, 1)) / n
    xz = cm.xz[:, gi][:, :, ki].sum(dim=(1, 2)) / n
    return mean, cov, xz - mean[:, :, None] * zbar[None, None, :]


def erased(
    stats: ActivationStats, *, pos: int = AFTER, neg: int = BEFORE, min_count: int = 1
) -> tuple[torch.Tensor, dict[str, Any], LeaceEraser]:
    """The mean difference of the position-erased residuals (see the module docs)."""
    labels = (neg, pos)
    mean, cov, cxz = position_covariance(stats, labels)
    factors = [leace(cov[i], cxz[i]) for i in range(len(stats.layers))]
    a = torch.stack([f[0] for f in factors])
    b = torch.stack([f[1] for f in factors])
    diffs, groups = stats.group_diffs(pos, neg, min_count=min_count)
    dmu = diffs.double().mean(dim=1)
    v = dmu - torch.einsum("ldf,lef,le->ld", a, b, dmu)
    cm = stats.class_moments
    assert cm is not None
    rank = [int((f[0].abs().sum(0) > 0).sum()) for f in factors]
    info = {"groups": groups, "pos": pos, "neg": neg}
    info.update(features=list(cm.features), rank=rank)
    return v.float(), info, LeaceEraser(mean, a, b, cm.features)


FITTER = Fitter(
    "erased",
    erased,
    needs=CollectPlan(positions=True),
    summary="mean difference after LEACE erasure of position in the turn (the eraser is saved)",
)
