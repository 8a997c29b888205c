"""``lda``: shrinkage linear discriminant, ``v = ((1 - rho) S + rho m I)^-1 dmu``.

``dmu`` is the mean difference of Eq. 1 (mean over groups of AFTER - BEFORE); ``S`` is the
within-cell covariance of the BEFORE and AFTER tokens (every token centred on its own group and
label's mean, divided by the token count), ``m = tr(S) / D``. The shrinkage ``rho`` is chosen by

* ``"ledoit_wolf"`` (default): Ledoit & Wolf (2004), ``rho = min(b^2, d^2) / d^2`` with
  ``d^2 = |S - m I|_F^2`` and ``b^2 = (sum_t |y_t|^4 / n - |S|_F^2) / n`` over the cell-centred
  tokens ``y_t``, from the streamed fourth-moment sums;
* ``"heldout"``: the Gaussian likelihood of held-out groups' within-cell scatter, over a grid of
  ``rho``, groups held out in up to 5 folds (needs >= 2 groups);
* a number in ``[0, 1]``: that ``rho``.

``info`` records ``rho`` and the equivalent ridge ``lambda = rho m / (1 - rho)`` (the direction
is also ``(S + lambda I)^-1 dmu``) per layer. Needs the per-group class moments of BEFORE and
AFTER (:class:`~value_lens.fitting.moments.ClassMoments`), ``8 L G 2 D^2`` bytes.
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
    within_scatter,
)
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats

__all__ = ["FITTER", "RHO_GRID", "lda", "ledoit_wolf_rho"]

RHO_GRID = torch.logspace(-6, 0, 25, dtype=torch.float64)
"""The shrinkage values ``shrinkage="heldout"`` compares."""


def ledoit_wolf_rho(
    scatter: torch.Tensor, fourth: torch.Tensor, n: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rho, S)`` per layer from the within-cell scatter ``[L, D, D]`` and ``sum |y|^4``."""
    s = scatter / n
    d = s.shape[-1]
    m = torch.diagonal(s, dim1=-2, dim2=-1).sum(-1) / d
    fro = (s * s).sum(dim=(-2, -1))
    d2 = fro - d * m * m
    b2 = ((fourth / n - fro) / n).clamp_min(0)
    rho = torch.where(d2 > 0, torch.minimum(b2, d2) / d2.clamp_min(1e-300), torch.ones_like(d2))
    return rho, s


def _heldout_rho(
    stats: ActivationStats, groups: list[str], labels: tuple[int, int]
) -> torch.Tensor:
    """Per layer, the grid ``rho`` with the best Gaussian likelihood on held-out groups."""
    if len(groups) < 2:
        raise InputError("shrinkage='heldout' needs at least 2 groups with both labels")
    cm = stats.class_moments
    assert cm is not None
    folds = [groups[i::5] for i in range(min(5, len(groups)))]
    L = len(stats.layers)
    score = torch.zeros(L, RHO_GRID.numel(), dtype=torch.float64)
    for test in folds:
        train = [g for g in groups if g not in test]
        ctr, cte = (cell_moments(stats, cm, labels, gs) for gs in (train, test))
        n_tr, n_te = float(ctr.n.sum()), float(cte.n.sum())
        s_tr, s_te = within_scatter(ctr) / n_tr, within_scatter(cte) / n_te
        evals, evecs = torch.linalg.eigh(s_tr)
        m = evals.mean(-1, keepdim=True)
        proj = torch.einsum("ldi,lde,lei->li", evecs, s_te, evecs)  # diag of V' S_test V
        for j, rho in enumerate(RHO_GRID.tolist()):
            lam = ((1 - rho) * evals + rho * m).clamp_min(1e-300)
            ll = -0.5 * (lam.log().sum(-1) + (proj / lam).sum(-1))
            score[:, j] += n_te * ll
    return RHO_GRID[score.argmax(dim=1)]


def lda(
    stats: ActivationStats,
    *,
    pos: int = AFTER,
    neg: int = BEFORE,
    shrinkage: str | float = "ledoit_wolf",
    min_count: int = 1,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Shrinkage LDA of ``pos`` vs ``neg`` (see the module docs)."""
    labels = (neg, pos)
    cm = class_moments_of(stats, "lda", labels)
    diffs, groups = stats.group_diffs(pos, neg, min_count=min_count)
    dmu = diffs.mean(dim=1).double()
    cells = cell_moments(stats, cm, labels, groups)
    n = float(cells.n.sum())
    scatter = within_scatter(cells)
    rho_lw, s = ledoit_wolf_rho(scatter, centred_fourth(cells), n)
    if shrinkage == "ledoit_wolf":
        rho = rho_lw
    elif shrinkage == "heldout":
        rho = _heldout_rho(stats, groups, labels)
    elif isinstance(shrinkage, (int, float)) and 0 <= float(shrinkage) <= 1:
        rho = torch.full_like(rho_lw, float(shrinkage))
    else:
        raise InputError(
            f"shrinkage must be 'ledoit_wolf', 'heldout' or a number in [0, 1], got {shrinkage!r}"
        )
    d = s.shape[-1]
    m = torch.diagonal(s, dim1=-2, dim2=-1).sum(-1) / d
    eye = torch.eye(d, dtype=s.dtype)
    shrunk = (1 - rho)[:, None, None] * s + (rho * m)[:, None, None] * eye
    v = torch.linalg.solve(shrunk, dmu.unsqueeze(-1)).squeeze(-1)
    lam = torch.where(
        rho < 1, rho * m / (1 - rho).clamp_min(1e-300), torch.full_like(rho, torch.inf)
    )
    return v.float(), {
        "groups": groups,
        "pos": pos,
        "neg": neg,
        "shrinkage": shrinkage if isinstance(shrinkage, str) else "fixed",
        "rho": rho.tolist(),
        "lambda": lam.tolist(),
        "ledoit_wolf_rho": rho_lw.tolist(),
        "n_tokens": n,
    }


FITTER = Fitter(
    "lda",
    lda,
    needs=CollectPlan(class_moments=True),
    summary="shrinkage LDA (Ledoit-Wolf); collects per-criterion second moments (d_model^2 each)",
)
