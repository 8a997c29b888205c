"""``ridge``: ridge regression of the per-token target on the residual, from second moments.

Without explicit targets the target is AFTER=1 vs BEFORE=0 (REWARD and other labels left out).
The pooled moments (``moments=True``) serve a fit on all the data; a refit on some groups
(:meth:`~value_lens.fitting.methods.registry.Fitter.refit`) uses the per-group class moments of
BEFORE and AFTER instead, which give the same regression for the AFTER=1 / BEFORE=0 target.
"""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE
from value_lens.errors import InputError
from value_lens.fitting.methods.common import cell_moments, class_moments_of
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.moments import Moments
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats

__all__ = ["FITTER", "ridge"]


def _from_class_moments(stats: ActivationStats) -> Moments:
    """Pooled moments of the AFTER=1 / BEFORE=0 regression, from per-group class moments."""
    cm = class_moments_of(stats, "ridge", (BEFORE, AFTER))
    c = cell_moments(stats, cm, (BEFORE, AFTER), stats.groups)
    sums = torch.einsum("gk,lgkd->lgkd", c.n, c.mean)  # per-cell vector sums
    n_after = c.n[:, 1].sum()
    return Moments(
        c.n.sum(),
        sums.sum(dim=(1, 2)),
        n_after,
        n_after,
        sums[:, :, 1].sum(1),
        c.xx.sum(dim=(1, 2)),
    )


def ridge(stats: ActivationStats, *, alpha: float = 1e-2) -> tuple[torch.Tensor, dict[str, Any]]:
    """Ridge weights of target ~ residual (centred), from second moments.

    The penalty is ``alpha`` times the mean per-dimension variance. The target is what
    :func:`~value_lens.collect_stats` accumulated: the data's targets, else AFTER=1 / BEFORE=0.
    """
    m = stats.moments
    target = stats.meta.get("moments_target")
    if m is None and stats.class_moments is None:
        raise InputError(
            "method='ridge' needs second moments: collect_stats(..., moments=True) (or the "
            "per-group class moments, for refits on some groups)"
        )
    if m is None:
        m, target = _from_class_moments(stats), "after_vs_before (class moments)"
    elif target == "legacy_label_value":
        raise InputError(
            "these moments were collected by an older value_lens that regressed on the raw "
            "label value (REWARD tokens as 2); re-collect with collect_stats(..., moments=True)"
        )
    n = float(m.n)
    if n < 2:
        raise InputError("ridge needs at least 2 tokens with a finite target")
    mu, ybar = m.x / n, m.y / n
    cov = m.xx / n - mu[:, :, None] * mu[:, None, :]
    cxy = m.xy / n - mu * ybar
    d = cov.shape[-1]
    lam = alpha * torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1) / d
    eye = torch.eye(d, dtype=cov.dtype)
    w = torch.linalg.solve(cov + lam[:, None, None] * eye, cxy.unsqueeze(-1)).squeeze(-1)
    return w.float(), {"alpha": alpha, "n_tokens": n, "target": target}


FITTER = Fitter(
    "ridge",
    ridge,
    needs=CollectPlan(moments=True),
    split_needs=CollectPlan(class_moments=True),
    summary="ridge regression of AFTER=1/BEFORE=0 (or the data's targets); collects second moments",
)
