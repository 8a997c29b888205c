"""``erased``: the mean difference after LEACE erasure of the position features.

The eraser (:class:`~value_lens.fitting.transforms.LeaceEraser`) is fitted on the BEFORE and
AFTER tokens of the stats from their second moments and their cross-moments with the position
features (:data:`value_lens.data.positions.POSITION_FEATURES`: tokens since the turn's start,
tokens to its end, and their logs). It is affine, so the mean difference of the erased
residuals is ``(I - A B^T) dmu`` with ``dmu`` the mean difference of Eq. 1; that is the axis
direction, and the eraser is saved with the axis so that ``trace`` and ``project`` erase before
projecting. On the tokens it was fitted on, the erased residuals, and so any readout of them,
have exactly zero covariance with every position feature.

The whitening uses the covariance of ``x`` shrunk towards ``tr/D I`` (``shrinkage``: Ledoit-Wolf
by default, computed exactly from the streamed fourth-moment sums, as the ``concept-erasure``
package shrinks by default; ``0`` for none). Shrinkage keeps the whitening full rank when there
are fewer tokens than dimensions; the erasure stays exact for any full-rank whitening (the
eraser is then the least-squares one in the shrunk metric). ``info`` records ``rho``. Needs
``CollectPlan(positions=True)`` (the class moments plus ``L G 2 D F`` cross-moments).
"""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE
from value_lens.errors import InputError
from value_lens.fitting.methods.common import (
    cell_moments,
    centred_fourth,
    class_moments_of,
    pooled_covariance,
)
from value_lens.fitting.methods.fit_lda import ledoit_wolf_rho
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats
from value_lens.fitting.transforms import LeaceEraser, leace

__all__ = ["FITTER", "erased", "position_covariance"]


def position_covariance(
    stats: ActivationStats, labels: tuple[int, ...], shrinkage: str | float = "ledoit_wolf"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, Cov(x, x), Cov(x, z), rho)`` per layer over every token of ``labels``, the
    covariance of ``x`` shrunk by ``rho`` towards ``tr/D I`` (Ledoit-Wolf, a fixed ``rho``, or
    ``0`` for none)."""
    cm = class_moments_of(stats, "erased", labels, positions=True)
    assert cm.xz is not None and cm.z is not None
    n, mean, cov = pooled_covariance(stats, cm, labels)
    if shrinkage == "ledoit_wolf":
        fourth = centred_fourth(cell_moments(stats, cm, labels, stats.groups), about=mean)
        rho = ledoit_wolf_rho(cov * n, fourth, n)[0]
    elif isinstance(shrinkage, (int, float)) and 0 <= float(shrinkage) <= 1:
        rho = torch.full((cov.shape[0],), float(shrinkage), dtype=cov.dtype)
    else:
        raise InputError(
            f"shrinkage must be 'ledoit_wolf' or a number in [0, 1], got {shrinkage!r}"
        )
    m = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype)
    cov = (1 - rho)[:, None, None] * cov + (rho * m)[:, None, None] * eye
    ki = torch.tensor([cm.label_index(c) for c in labels], dtype=torch.long)
    gi = torch.arange(len(stats.groups))
    zbar = cm.z[gi][:, ki].sum(dim=(0, 1)) / n
    xz = cm.xz[:, gi][:, :, ki].sum(dim=(1, 2)) / n
    return mean, cov, xz - mean[:, :, None] * zbar[None, None, :], rho


def erased(
    stats: ActivationStats,
    *,
    pos: int = AFTER,
    neg: int = BEFORE,
    shrinkage: str | float = "ledoit_wolf",
    min_count: int = 1,
) -> tuple[torch.Tensor, dict[str, Any], LeaceEraser]:
    """The mean difference of the position-erased residuals (see the module docs)."""
    labels = (neg, pos)
    mean, cov, cxz, rho = position_covariance(stats, labels, shrinkage)
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
    info.update(features=list(cm.features), rank=rank, shrinkage=shrinkage, rho=rho.tolist())
    return v.float(), info, LeaceEraser(mean, a, b, cm.features)


FITTER = Fitter(
    "erased",
    erased,
    needs=CollectPlan(positions=True),
    summary="mean difference after LEACE erasure of position in the turn (the eraser is saved)",
)
