"""Statistics shared by the methods: pooled and within-cell second moments from
:class:`~value_lens.fitting.moments.ClassMoments`, and the span weights of the mean difference.

A *cell* is one (group, label) pair; "within-cell" quantities centre every token on its own
cell's mean, which removes both the label difference and every group's own offset.

Example:
    >>> import numpy as np
    >>> mean_weights(np.eye(3), np.array([0, 2])).tolist()
    [0.5, 0.0, 0.5]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float

from value_lens.errors import InputError
from value_lens.fitting.moments import ClassMoments
from value_lens.fitting.stats import ActivationStats

__all__ = [
    "CellMoments",
    "cell_moments",
    "centred_fourth",
    "class_moments_of",
    "mean_weights",
    "pca_weights",
    "pooled_covariance",
    "within_scatter",
]


def mean_weights(gram: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Weights of ``mean_diff`` over the group differences: ``1/n`` on the training groups."""
    w = np.zeros(gram.shape[0])
    w[train] = 1.0 / len(train)
    return w


def pca_weights(gram: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Weights of ``pca_diff``: the top right singular vector of the training differences,
    ``d_train' u / s`` with ``u`` the top eigenvector of their Gram matrix, sign-aligned with
    their mean (the overall scale does not affect cosines)."""
    w = np.zeros(gram.shape[0])
    g = gram[np.ix_(train, train)]
    evals, evecs = np.linalg.eigh(g)
    u = evecs[:, -1] / np.sqrt(max(evals[-1], 1e-300))
    w[train] = -u if (g @ u).sum() < 0 else u
    return w


def class_moments_of(
    stats: ActivationStats, method: str, labels: tuple[int, ...], *, positions: bool = False
) -> ClassMoments:
    """The stats' class moments, checked to cover ``labels`` (and positions), else a clear error."""
    cm = stats.class_moments
    fix = f"collect_stats(..., plan=value_lens.fitting.methods.needs({method!r}))"
    if cm is None or not set(labels) <= set(cm.labels):
        raise InputError(
            f"method={method!r} needs per-group second moments of labels {list(labels)}; "
            f"collect them with {fix}"
        )
    if positions and cm.xz is None:
        raise InputError(f"method={method!r} needs the position cross-moments; collect with {fix}")
    return cm


@dataclass
class CellMoments:
    """Per layer and cell (group g, label k of ``labels``): counts, means and raw sums."""

    n: Float[torch.Tensor, "G K"]
    mean: Float[torch.Tensor, "L G K D"]
    xx: Float[torch.Tensor, "L G K D D"]
    x4: Float[torch.Tensor, "L G K"]
    x2x: Float[torch.Tensor, "L G K D"]


def cell_moments(
    stats: ActivationStats, cm: ClassMoments, labels: tuple[int, ...], groups: list[str]
) -> CellMoments:
    """The cells of ``groups`` and ``labels`` (means NaN-free: empty cells have mean 0)."""
    gi = torch.tensor([stats.groups.index(g) for g in groups], dtype=torch.long)
    ki = torch.tensor([cm.label_index(c) for c in labels], dtype=torch.long)
    ci = torch.tensor([stats.class_index(c) for c in labels], dtype=torch.long)
    n = stats.count[gi][:, ci].double()
    s = stats.sum[:, gi][:, :, ci].double()
    mean = s / n.clamp_min(1)[None, :, :, None]

    def pick(t: torch.Tensor) -> torch.Tensor:
        return t[:, gi][:, :, ki]

    return CellMoments(n, mean, pick(cm.xx), pick(cm.x4), pick(cm.x2x))


def within_scatter(c: CellMoments) -> Float[torch.Tensor, "L D D"]:
    """``sum over cells of sum_t (x_t - mean_cell)(x_t - mean_cell)^T`` per layer."""
    m = c.mean
    outer = torch.einsum("gk,lgkd,lgke->lde", c.n, m, m)
    return c.xx.sum(dim=(1, 2)) - outer


def centred_fourth(c: CellMoments, about: torch.Tensor | None = None) -> Float[torch.Tensor, " L"]:
    """``sum_t |x_t - m|^4`` per layer from the raw sums, with ``m`` each token's cell mean, or
    ``about`` (``[L, D]``, one centre per layer) when given: the ``b`` of Ledoit-Wolf.

    Expanding ``|x - m|^2 = a - 2 b + |m|^2`` (``a = |x|^2``, ``b = x . m``) leaves sums of
    ``a^2``, ``a x``, ``x x^T``, ``a`` and ``x``, which the class moments and the stats hold.
    """
    m = c.mean if about is None else about[:, None, None, :].expand_as(c.mean)
    sq = (m * m).sum(-1)  # |m|^2 [L, G, K]
    quad = torch.einsum("lgkd,lgkde,lgke->lgk", m, c.xx, m)  # sum b^2 = m' XX m
    tr = torch.diagonal(c.xx, dim1=-2, dim2=-1).sum(-1)  # sum a
    cross = (m * c.x2x).sum(-1)  # sum a b = m' sum |x|^2 x
    lin = (m * c.mean).sum(-1) * c.n[None]  # sum b = m' (n mean)
    total = c.x4 - 4 * cross + 4 * quad + 2 * sq * tr - 4 * sq * lin + c.n[None] * sq * sq
    return total.sum(dim=(1, 2))


def pooled_covariance(
    stats: ActivationStats, cm: ClassMoments, labels: tuple[int, ...]
) -> tuple[float, Float[torch.Tensor, "L D"], Float[torch.Tensor, "L D D"]]:
    """``(n, mean, covariance)`` over every token of ``labels`` in the stats (one mean)."""
    c = cell_moments(stats, cm, labels, stats.groups)
    n = float(c.n.sum())
    if n < 2:
        raise InputError(f"need at least 2 tokens of labels {list(labels)}, got {n:g}")
    mean = torch.einsum("gk,lgkd->ld", c.n, c.mean) / n
    cov = c.xx.sum(dim=(1, 2)) / n - mean[:, :, None] * mean[:, None, :]
    return n, mean, cov
