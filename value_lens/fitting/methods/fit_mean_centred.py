"""``mean_centred``: the target mean minus the mean over all labelled tokens (Jorgensen et al.,
arXiv 2312.03813): ``v = E[h | target] - E[h]``.

Both means pool the tokens of every group in the stats (token-weighted); the reference is every
labelled token (REWARD and placebo labels included) unless ``reference`` names the labels.
Only the per-group sums are needed, so a refit on some groups is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from value_lens.data.tokens import AFTER
from value_lens.errors import InputError
from value_lens.fitting.methods.registry import Fitter
from value_lens.fitting.stats import ActivationStats

__all__ = ["FITTER", "mean_centred"]


def mean_centred(
    stats: ActivationStats, *, target: int = AFTER, reference: Sequence[int] | None = None
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Mean of the ``target`` tokens minus the mean of the ``reference`` (default: all) tokens.

    Example:
        >>> import torch
        >>> s = ActivationStats([0], ["g"], [0, 1], torch.tensor([[1, 3]]),
        ...     torch.tensor([[[[0.0, 0.0], [3.0, 3.0]]]]), torch.ones(1, 1, 2))
        >>> mean_centred(s)[0].tolist()  # (1, 1) - (3, 3) / 4
        [[0.25, 0.25]]
    """
    ti = stats.class_index(target)
    ri = [stats.class_index(c) for c in (stats.classes if reference is None else reference)]
    n_t, n_r = float(stats.count[:, ti].sum()), float(stats.count[:, ri].sum())
    if n_t == 0 or n_r == 0:
        raise InputError(f"mean_centred needs tokens of label {target} and of the reference")
    mu_t = stats.sum[:, :, ti].double().sum(1) / n_t
    mu_r = stats.sum[:, :, ri].double().sum(dim=(1, 2)) / n_r
    ref = list(stats.classes) if reference is None else list(reference)
    info = {"target": target, "reference": ref, "n_target": n_t, "n_reference": n_r}
    return (mu_t - mu_r).float(), info


FITTER = Fitter(
    "mean_centred",
    mean_centred,
    summary="mean of AFTER tokens minus the mean of all labelled tokens (mean-centring)",
)
