"""Direction-fitting strategies: plain functions from :class:`ActivationStats` to directions.

Each returns ``(directions [L, D] float32, info)`` for the stats' layers. Register new ones in
:data:`FITTERS`; :meth:`ValueAxis.fit` looks methods up there.

* ``mean_diff``: the paper's Eq. 1, the mean over groups of (mean AFTER - mean BEFORE).
* ``pca_diff``: the top principal axis of the per-group differences (uncentred), sign-aligned
  with their mean and scaled to the mean's projection on it.
* ``ridge``: ridge regression of the per-token target on the residual (needs ``moments=True``);
  without explicit targets the target is AFTER=1 vs BEFORE=0 (REWARD and other labels left out).
* ``logistic``: an L2 logistic probe AFTER vs BEFORE on the reservoir sample
  (needs ``sample_per_class > 0``).
* ``did``: difference in differences, the mean over groups of (AFTER - BEFORE) minus
  (PLACEBO_AFTER - PLACEBO_BEFORE); needs placebo turns (``icrl.label(..., placebo=True)``). It
  removes what real and placebo turns share, such as the drift with position in the turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE
from value_lens.errors import InputError
from value_lens.fitting.stats import ActivationStats

__all__ = ["FITTERS", "did", "logistic", "mean_diff", "pca_diff", "ridge"]

Fitter = Callable[..., tuple[torch.Tensor, dict[str, Any]]]


def mean_diff(
    stats: ActivationStats, *, pos: int = AFTER, neg: int = BEFORE, min_count: int = 1
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Mean over groups of (mean of ``pos`` tokens - mean of ``neg`` tokens)."""
    diffs, groups = stats.group_diffs(pos, neg, min_count=min_count)
    return diffs.mean(dim=1).float(), {"groups": groups, "pos": pos, "neg": neg}


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


def ridge(stats: ActivationStats, *, alpha: float = 1e-2) -> tuple[torch.Tensor, dict[str, Any]]:
    """Ridge weights of target ~ residual (centred), from second moments.

    The penalty is ``alpha`` times the mean per-dimension variance. The target is what
    :func:`~value_lens.collect_stats` accumulated: the data's targets, else AFTER=1 / BEFORE=0.
    """
    m = stats.moments
    if m is None:
        raise InputError("method='ridge' needs second moments: collect_stats(..., moments=True)")
    target = stats.meta.get("moments_target")
    if target == "legacy_label_value":
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


def logistic(
    stats: ActivationStats,
    *,
    pos: int = AFTER,
    neg: int = BEFORE,
    l2: float = 1e-3,
    max_iter: int = 100,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Class-balanced L2 logistic regression ``pos`` vs ``neg`` on the reservoir sample (LBFGS)."""
    if stats.sample is None:
        raise InputError(
            "method='logistic' needs token samples: collect_stats(..., sample_per_class=2000)"
        )
    xp = stats.sample.class_sample(stats.class_index(pos)).double()
    xn = stats.sample.class_sample(stats.class_index(neg)).double()
    if xp.shape[1] < 2 or xn.shape[1] < 2:
        raise InputError("the logistic probe needs at least 2 sampled tokens of each class")
    out = []
    for li in range(xp.shape[0]):
        x = torch.cat([xp[li], xn[li]])
        y = torch.cat([torch.ones(xp.shape[1]), torch.zeros(xn.shape[1])]).double()
        wts = torch.where(y > 0, 0.5 / xp.shape[1], 0.5 / xn.shape[1])
        mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
        z = (x - mu) / sd
        w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure(
            z: torch.Tensor = z,
            y: torch.Tensor = y,
            wts: torch.Tensor = wts,
            w: torch.Tensor = w,
            b: torch.Tensor = b,
            opt: Any = opt,
        ) -> torch.Tensor:
            opt.zero_grad()
            loss = (
                wts
                * torch.nn.functional.binary_cross_entropy_with_logits(
                    z @ w + b, y, reduction="none"
                )
            ).sum()
            loss = loss + l2 * (w * w).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        out.append((w.detach() / sd).float())
    return torch.stack(out), {
        "pos": pos,
        "neg": neg,
        "l2": l2,
        "n_pos": int(xp.shape[1]),
        "n_neg": int(xn.shape[1]),
    }


FITTERS: dict[str, Fitter] = {
    "mean_diff": mean_diff,
    "pca_diff": pca_diff,
    "ridge": ridge,
    "logistic": logistic,
    "did": did,
}
