"""``logistic``: a class-balanced L2 logistic probe AFTER vs BEFORE on the reservoir sample
(needs ``sample_per_class > 0``); a refit on some groups uses their tagged sample tokens."""

from __future__ import annotations

from typing import Any

import torch

from value_lens.data.tokens import AFTER, BEFORE
from value_lens.errors import InputError
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats

__all__ = ["FITTER", "LOGISTIC_SAMPLE", "logistic"]

#: token vectors sampled per label for ``method="logistic"`` (the probe's training set)
LOGISTIC_SAMPLE = 2000


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


FITTER = Fitter(
    "logistic",
    logistic,
    needs=CollectPlan(sample_per_class=LOGISTIC_SAMPLE),
    summary=f"L2 logistic probe on a sample of {LOGISTIC_SAMPLE} tokens per label",
)
