"""The supervised scorers and the controls, cross-fitted by problem.

The problems are dealt into folds at random (:func:`crossfit_splits`); every sample is scored by
a fit on the other folds only, so no sample is ever scored by a model that saw its own problem:

* :func:`probe`: class-balanced L2 logistic regression on the mean residual over the new tokens
  (standardised on the training folds), the supervised upper bound;
* :func:`length`: the number of new tokens, its sign taken from the training folds;
* :func:`random_directions`: ``k`` random unit directions (mean cosine over the new tokens),
  each sign-aligned with correctness on the training folds. An unaligned random direction
  scores 0.5 AUROC by symmetry and so could never fail as a control.

All three are re-exported by :mod:`value_lens.decode.scorers`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float

from value_lens.decode.rollouts import Needs, Sample, Scorer, fill_missing
from value_lens.errors import InputError

__all__ = ["crossfit_splits", "fit_logistic", "length", "probe", "random_directions"]


def crossfit_splits(
    problems: Sequence[int] | np.ndarray, folds: int, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` sample indices per fold, the problems dealt into ``folds`` folds at
    random (fewer when there are fewer problems); no problem is on both sides.

    Example:
        >>> [(a.tolist(), b.tolist()) for a, b in crossfit_splits([0, 0, 1, 1], 2)]
        [([2, 3], [0, 1]), ([0, 1], [2, 3])]
    """
    pid = np.asarray(problems)
    uniq = np.unique(pid)
    if uniq.size < 2:
        raise InputError("cross-fitting needs at least 2 problems")
    k = min(int(folds), uniq.size)
    if k < 2:
        raise InputError(f"folds must be >= 2, got {folds}")
    order = np.random.default_rng(seed).permutation(uniq.size)
    fold_of = dict(zip(uniq[order].tolist(), (np.arange(uniq.size) % k).tolist(), strict=True))
    f = np.array([fold_of[p] for p in pid.tolist()])
    for i in range(k):
        yield np.flatnonzero(f != i), np.flatnonzero(f == i)


def _arrays(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([s.problem for s in samples]),
        np.array([s.correct for s in samples], dtype=np.float64),
    )


def _aligned(raw: np.ndarray, samples: Sequence[Sample], folds: int, seed: int) -> np.ndarray:
    """Each column times the sign of (mean on correct - mean on incorrect) in the training folds."""
    pid, y = _arrays(samples)
    out = np.empty_like(raw)
    for train, test in crossfit_splits(pid, folds, seed):
        pos, neg = raw[train][y[train] > 0.5], raw[train][y[train] <= 0.5]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: no sign
            diff = np.nanmean(pos, 0) - np.nanmean(neg, 0) if len(pos) and len(neg) else None
        sign = np.ones(raw.shape[1]) if diff is None else np.where(diff < 0, -1.0, 1.0)
        out[test] = raw[test] * sign
    return out


@dataclass(frozen=True, eq=False)
class _Length:
    align: bool
    folds: int
    seed: int

    @property
    def needs(self) -> Needs:
        return Needs()

    def score(self, samples: Sequence[Sample]) -> Float[np.ndarray, "N 1"]:
        raw = np.array([[float(s.n_tokens)] for s in samples])
        return _aligned(raw, samples, self.folds, self.seed) if self.align else raw


def length(*, align: bool = True, folds: int = 5, seed: int = 0) -> Scorer:
    """Number of new tokens; with ``align``, its sign set on the training folds (longer or
    shorter is better, whichever the other problems show)."""
    return _Length(align, folds, seed)


@dataclass(frozen=True, eq=False)
class _Random:
    k: int
    layer: int
    folds: int
    seed: int

    @property
    def needs(self) -> Needs:
        return Needs(hidden_layers=frozenset({self.layer}))

    def directions(self, d_model: int) -> Float[torch.Tensor, "K D"]:
        """The ``k`` unit directions (a function of ``seed`` and ``d_model`` only)."""
        g = torch.Generator().manual_seed(self.seed)
        d = torch.randn(self.k, d_model, generator=g, dtype=torch.float64)
        return d / d.norm(dim=1, keepdim=True)

    def score(self, samples: Sequence[Sample]) -> Float[np.ndarray, "N K"]:
        u = torch.stack([s.unit_mean[self.layer].double() for s in samples])
        raw = (u @ self.directions(u.shape[1]).T).numpy()
        return np.stack(
            [fill_missing(c) for c in _aligned(raw, samples, self.folds, self.seed).T], 1
        )


def random_directions(k: int = 10, layer: int = 0, *, seed: int = 0, folds: int = 5) -> Scorer:
    """``k`` random unit directions at ``layer`` (mean cosine over the new tokens), each
    sign-aligned on the training folds: the control the value axis must beat."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be an int >= 1, got {k!r}")
    return _Random(k, layer, folds, seed)


def fit_logistic(
    x: Float[torch.Tensor, "N D"], y: Float[torch.Tensor, " N"], l2: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-balanced L2 logistic regression on standardised ``x``: ``(w, b, mu, sd)``."""
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    z = (x - mu) / sd
    n_pos = float(y.sum())
    wts = torch.where(y > 0.5, 0.5 / max(n_pos, 1.0), 0.5 / max(len(y) - n_pos, 1.0))
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y, reduction="none")
        loss = (wts * bce).sum() + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach(), mu, sd


@dataclass(frozen=True, eq=False)
class _Probe:
    layer: int
    folds: int
    l2: float
    seed: int

    @property
    def needs(self) -> Needs:
        return Needs(hidden_layers=frozenset({self.layer}))

    def score(self, samples: Sequence[Sample]) -> Float[np.ndarray, "N 1"]:
        pid, y = _arrays(samples)
        x = torch.stack([s.hidden_mean[self.layer].double() for s in samples])
        ok = torch.isfinite(x).all(1).numpy()
        out = np.full(len(samples), np.nan)
        for train, test in crossfit_splits(pid, self.folds, self.seed):
            tr, te = train[ok[train]], test[ok[test]]
            yt = torch.as_tensor(y[tr] > 0.5, dtype=torch.float64)
            if len(te) == 0:
                continue
            if len(tr) == 0 or yt.min() == yt.max():  # one class: no information
                out[te] = 0.0
                continue
            w, b, mu, sd = fit_logistic(x[tr], yt, self.l2)
            out[te] = (((x[te] - mu) / sd) @ w + b).numpy()
        return fill_missing(out)[:, None]


def probe(
    layer: int,
    *,
    crossfit: Literal["problem"] = "problem",
    folds: int = 5,
    l2: float = 1e-2,
    seed: int = 0,
) -> Scorer:
    """A logistic probe on the mean residual over the new tokens at ``layer``, predicting the
    checker's verdict, cross-fitted by problem (``folds`` folds): the supervised upper bound."""
    if crossfit != "problem":
        raise InputError("the probe is cross-fitted by problem only (crossfit='problem')")
    return _Probe(layer, folds, float(l2), seed)
