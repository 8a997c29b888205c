"""Sweeping a method whose direction is not in the span of the per-group differences.

``mean_diff`` and ``pca_diff`` are weights over the groups' difference vectors
(``Fitter.sweep_weights``), so a sweep refits them from a Gram matrix. Any other registered
method (``lda``, ``standardized``, ``mean_centred``, ``erased``, ``ridge``, ``logistic``, a
user's) is refitted by the fitter itself on each split's training groups,
``Fitter.refit(stats, train)``, and once more without each training group for the jackknife;
every such direction becomes one more row of the basis the tokens are projected on.

A method read through a transform (``erased``: the LEACE eraser; ``standardized``: z-scores) is
affine in the residual: ``T(h) . r = h . u + c`` with ``u = T_lin' r`` and ``c = T(0) . r``.
The sweep scores ``(h . u + c) / ||h||``: the method's own readout of ``h`` divided by the raw
residual norm, as every sweep score is (``ValueAxis.project`` divides by ``||T(h)||`` instead).

Example:
    >>> import torch
    >>> u, c = readout_line(torch.tensor([1.0, 2.0], dtype=torch.float64), None, 0)
    >>> u.tolist(), c
    ([1.0, 2.0], 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from value_lens.errors import InputError
from value_lens.fitting.methods.registry import Fitter, as_directions
from value_lens.fitting.stats import ActivationStats

__all__ = ["Explicit", "fit_explicit", "readout_line"]

Key = tuple[int, int | None]
"""(split, dropped training group or ``None`` for the split's own fit)."""


@dataclass(frozen=True)
class Explicit:
    """A method's refitted directions as extra basis rows.

    Attributes:
        name: the method.
        rows: ``[L, E, D]`` each fit's linear readout direction ``u`` (fp64).
        offset: ``[L, E]`` each fit's readout constant ``c``.
        cols: which row holds which fit, by (split, dropped group or ``None``).
        full: ``[L, D]`` the fit on every group (the cosine matrix's directions).
    """

    name: str
    rows: torch.Tensor
    offset: np.ndarray
    cols: dict[Key, int]
    full: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.rows.shape[1])


def readout_line(v: torch.Tensor, readout: object, i: int) -> tuple[torch.Tensor, float]:
    """``(u, c)`` with ``T(h) . r = h . u + c`` at row ``i`` (``r``: the direction ``v`` as
    the readout reads it); ``(v, 0)`` without a transform."""
    if readout is None:
        return v.double(), 0.0
    v = v.double()
    r = readout.read_direction(v, i)  # type: ignore[attr-defined]
    zero = torch.zeros(1, v.numel(), dtype=torch.float64)
    c = float((readout.apply(zero, i) @ r)[0])  # type: ignore[attr-defined]
    u = readout.apply(torch.eye(v.numel(), dtype=torch.float64), i) @ r - c  # type: ignore[attr-defined]
    return u, c


def _lines(fitter: Fitter, stats: ActivationStats, rows: list[int]) -> tuple[torch.Tensor, list]:
    dirs, _, readout = as_directions(fitter.fit(stats), fitter.name)
    out = [readout_line(dirs[i], readout, i) for i in rows]
    return torch.stack([u for u, _ in out]), [c for _, c in out]


def fit_explicit(
    fitter: Fitter,
    stats: ActivationStats,
    groups: Sequence[str],
    splits: Sequence[np.ndarray],
    layers: Sequence[int],
    *,
    refit: bool = True,
) -> Explicit:
    """Every split's fit of ``fitter`` (and, with ``refit``, its fits without each training
    group) at ``layers``, from ``stats`` (which must hold what ``fitter.per_split_needs``
    names)."""
    missing = [layer for layer in layers if layer not in stats.layers]
    if missing:
        raise InputError(
            f"the statistics hold layers {stats.layers}, not {missing}; collect them at every "
            "swept layer"
        )
    rows = [stats.layers.index(layer) for layer in layers]
    cols: dict[Key, int] = {}
    us: list[torch.Tensor] = []
    cs: list[list[float]] = []
    for s, train in enumerate(splits):
        drops: list[int | None] = [None, *(int(c) for c in train)] if refit else [None]
        for drop in drops:
            keep = [groups[int(g)] for g in train if drop is None or int(g) != drop]
            if not keep:
                continue
            u, c = _lines(fitter, stats.select_groups(keep), rows)
            cols[(s, drop)] = len(us)
            us.append(u)
            cs.append(c)
    full, _ = _lines(fitter, stats.select_groups(list(groups)), rows)
    if not us:
        raise InputError(f"no split of the sweep has training groups to fit {fitter.name!r} on")
    return Explicit(
        fitter.name,
        torch.stack(us, dim=1),
        np.array(cs, dtype=np.float64).T,
        cols,
        full,
    )
