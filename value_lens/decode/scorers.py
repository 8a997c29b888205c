"""Scorers: one number per rollout, read from what its own decoding pass recorded.

A scorer turns the recorded :class:`~value_lens.decode.rollouts.Sample` objects of a run into
a ``[n_samples, n_columns]`` array (higher = more likely correct) and declares what it reads
(:class:`~value_lens.decode.rollouts.Needs`), so one set of rollouts serves them all:

* token scorers, a per-token signal over a token ``window`` reduced by ``agg``:
  :func:`value` (the value axis), :func:`mean_logprob`, :func:`self_certainty`
  (``KL(U || p)``, Kang et al. 2025) and :func:`group_confidence` (DeepConf's lowest group
  confidence, Fu et al. 2025);
* controls: :func:`length`, :func:`random_directions` (random unit directions at a layer,
  each sign-aligned with correctness on the training folds) and, for early stopping,
  :func:`random_stop` (i.i.d. noise per token);
* :func:`probe`: a logistic probe on the mean residual, the supervised upper bound.

Supervised scorers (``probe``, and the sign of ``length`` and ``random_directions``) are
*cross-fitted by problem*: the problems are dealt into folds and each sample is scored by a
fit on the other folds only, so no sample is scored by a model that saw its own problem. They
live in :mod:`value_lens.decode.supervised` and are re-exported here.

Windows: ``"all"``, ``"first:K"``, ``"last:K"`` or ``"offsets:16,32,48"`` (fixed token offsets,
not counted from the end: see the end-of-turn confound). Aggregates: ``"mean"``, ``"min"``,
``"max"``, ``"last"`` or ``"lowest:W"`` (the lowest mean of ``W`` consecutive tokens; the mean
of all of them when fewer). A sample with no token to score gets a score just below the lowest
scored sample of the run. A plain callable ``(sample) -> float`` also works as a scorer.

Example:
    >>> import torch
    >>> from value_lens.decode.rollouts import Sample
    >>> s = Sample(0, 0, "", torch.tensor([5, 6, 7]), False, None, 1.0,
    ...            token_stats={"confidence": torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)})
    >>> group_confidence(window=2).score([s]).tolist()
    [[1.5]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float

from value_lens.decode.rollouts import Needs, Sample, Scorer, fill_missing
from value_lens.decode.supervised import (
    crossfit_splits,
    fit_logistic,
    length,
    probe,
    random_directions,
)
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis

__all__ = [
    "Scorer",
    "TokenScorer",
    "as_scorer",
    "crossfit_splits",
    "fit_logistic",
    "group_confidence",
    "length",
    "mean_logprob",
    "probe",
    "random_directions",
    "random_stop",
    "self_certainty",
    "value",
]


def _window(spec: str, n: int) -> np.ndarray:
    kind, _, arg = spec.partition(":")
    try:
        if kind == "all" and not arg:
            return np.arange(n)
        if kind in ("first", "last") and int(arg) >= 1:
            k = int(arg)
            return np.arange(min(k, n)) if kind == "first" else np.arange(max(n - k, 0), n)
        if kind == "offsets":
            offs = [int(x) for x in arg.split(",")]
            if offs and min(offs) >= 0:
                return np.array([o for o in offs if o < n], dtype=np.int64)
    except ValueError:
        pass
    raise InputError(f"unknown window {spec!r}; use 'all', 'first:16', 'last:16' or 'offsets:8,16'")


def _group(agg: str) -> int | None:
    kind, _, arg = agg.partition(":")
    if kind in ("mean", "min", "max", "last") and not arg:
        return None
    if kind == "lowest" and arg.isdigit() and int(arg) >= 1:
        return int(arg)
    raise InputError(f"unknown agg {agg!r}; use 'mean', 'min', 'max', 'last' or 'lowest:32'")


def group_means(x: Float[torch.Tensor, " N"], w: int) -> Float[torch.Tensor, " K"]:
    """Means of every ``w`` consecutive values (one mean of all values when fewer than ``w``)."""
    if x.numel() < w:
        return x.mean().reshape(1) if x.numel() else x[:0]
    c = torch.cat([x.new_zeros(1), x.cumsum(0)])
    return (c[w:] - c[:-w]) / w


@dataclass(frozen=True, eq=False)
class TokenScorer:
    """A per-token signal over a token window, reduced to one number.

    Attributes:
        source: ``"cosine"`` or ``"projection"`` (the value axis at ``layer``) or a
            ``token_stats`` key (``"logprob"``, ``"self_certainty"``, ``"confidence"``,
            ``"entropy"``).
        layer: the axis layer (value sources only); axis: the value axis.
        window, agg: see the module docstring.
    """

    source: str
    layer: int | None = None
    window: str = "all"
    agg: str = "mean"
    axis: ValueAxis | None = None

    def __post_init__(self) -> None:
        _window(self.window, 1)
        _group(self.agg)
        if self.is_value and (self.axis is None or self.layer is None):
            raise InputError("a value source needs an axis and a layer")

    @property
    def is_value(self) -> bool:
        return self.source in ("cosine", "projection")

    @property
    def needs(self) -> Needs:
        if self.is_value:
            assert self.layer is not None
            return Needs(axis=self.axis, value_layers=frozenset({self.layer}))
        return Needs(token_stats=True)

    @property
    def group(self) -> int | None:
        """``W`` of a ``"lowest:W"`` aggregate (what early stopping runs on), else ``None``."""
        return _group(self.agg)

    def signal(self, s: Sample) -> Float[torch.Tensor, " N"]:
        """The per-token signal of one sample, over all its new tokens."""
        if self.is_value:
            assert self.layer is not None
            got = (s.cosine if self.source == "cosine" else s.projection).get(self.layer)
        else:
            got = s.token_stats.get(self.source)
        if got is None:
            raise InputError(f"sample has no {self.source!r} record; rerun with this scorer")
        return got.double()

    def one(self, s: Sample) -> float:
        x = self.signal(s)
        x = x[torch.as_tensor(_window(self.window, x.numel()), dtype=torch.long)]
        if x.numel() == 0:
            return float("nan")
        kind = self.agg.partition(":")[0]
        if kind == "lowest":
            return float(group_means(x, int(self.group or 1)).min())
        if kind == "last":
            return float(x[-1])
        if kind == "mean":
            return float(x.mean())
        return float(x.min() if kind == "min" else x.max())

    def score(self, samples: Sequence[Sample]) -> Float[np.ndarray, "N 1"]:
        return fill_missing(np.array([self.one(s) for s in samples], dtype=np.float64))[:, None]


def value(
    axis: ValueAxis,
    layer: int,
    *,
    window: str = "all",
    agg: str = "mean",
    metric: Literal["cosine", "projection"] = "cosine",
) -> TokenScorer:
    """The value axis at ``layer`` (higher = more on track), over ``window`` by ``agg``."""
    if metric not in ("cosine", "projection"):
        raise InputError(f"metric must be 'cosine' or 'projection', got {metric!r}")
    axis.direction(layer)  # raises for an unfitted layer
    return TokenScorer(metric, layer, window, agg, axis)


def mean_logprob() -> TokenScorer:
    """Mean log-probability of the sampled tokens (temperature-1 logits)."""
    return TokenScorer("logprob")


def self_certainty() -> TokenScorer:
    """Mean over tokens of ``KL(U || p)``, the distance of the next-token distribution from
    uniform (Kang et al. 2025)."""
    return TokenScorer("self_certainty")


def group_confidence(
    window: int = 32, agg: Literal["lowest", "tail", "mean"] = "lowest"
) -> TokenScorer:
    """DeepConf confidence (minus the mean top-20 log-probability per token) in groups of
    ``window`` tokens: the lowest group (``"lowest"``), the last ``window`` tokens (``"tail"``)
    or the mean over all tokens (``"mean"``)."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InputError(f"window must be an int >= 1, got {window!r}")
    if agg == "lowest":
        return TokenScorer("confidence", agg=f"lowest:{window}")
    if agg == "tail":
        return TokenScorer("confidence", window=f"last:{window}")
    if agg == "mean":
        return TokenScorer("confidence")
    raise InputError(f"agg must be 'lowest', 'tail' or 'mean', got {agg!r}")


@dataclass(frozen=True, eq=False)
class _Noise(TokenScorer):
    seed: int = 0

    @property
    def needs(self) -> Needs:
        return Needs()

    def signal(self, s: Sample) -> Float[torch.Tensor, " N"]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 100_003 * s.problem + s.index)
        return torch.randn(s.n_tokens, generator=g, dtype=torch.float64)


def random_stop(window: int = 32, *, seed: int = 0) -> TokenScorer:
    """The random-stop control of early stopping: an i.i.d. N(0, 1) signal per token (seeded by
    ``seed``, the problem and the sample) in groups of ``window``, so it stops at random.

    It is not blind to length: a longer rollout has more groups, so its lowest group is lower
    and it is stopped more often. Where length predicts correctness this control stops the
    long (often wrong) rollouts and so looks better than chance; compare with
    :func:`value_lens.decode.budget.matched_random` as well, which stops at a rule's own token
    counts on rollouts dealt at random.

    >>> from value_lens.decode.rollouts import Sample
    >>> s = Sample(3, 1, "", torch.tensor([5, 6, 7, 8]), False, None, 1.0)
    >>> random_stop(2).signal(s).shape, random_stop(2).signal(s).equal(random_stop(2).signal(s))
    (torch.Size([4]), True)
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InputError(f"window must be an int >= 1, got {window!r}")
    return _Noise("noise", agg=f"lowest:{window}", seed=seed)


@dataclass(frozen=True, eq=False)
class _Callable:
    fn: Callable[[Sample], float]

    @property
    def needs(self) -> Needs:
        return Needs()

    def score(self, samples: Sequence[Sample]) -> Float[np.ndarray, "N 1"]:
        return fill_missing(np.array([float(self.fn(s)) for s in samples], dtype=np.float64))[
            :, None
        ]


def as_scorer(x: Any) -> Scorer:
    """A scorer as is; a plain callable ``(sample) -> float`` wrapped into one."""
    if isinstance(x, Scorer):
        return x
    if callable(x):
        return _Callable(x)
    raise InputError(f"a scorer is a value_lens.decode.scorers object or a callable, got {x!r}")
