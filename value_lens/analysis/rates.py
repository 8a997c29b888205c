"""Measured rates with their intervals: a share of independent units (Clopper-Pearson), or a share
of tokens clustered in texts (leave-one-text-out jackknife).

Used to report the false-positive rate of a calibrated stop rule on held-out neutral text
(:func:`value_lens.analysis.stop.false_positive_rate`). The Clopper-Pearson interval inverts
two one-sided binomial tests, so it covers the true rate at least ``level`` of the time for
every ``n`` and rate; it is computed here by bisection on the exact binomial tail (no scipy).

Example:
    >>> r = binomial_rate(3, 200)
    >>> r.rate, round(r.lo, 4), round(r.hi, 4)
    (0.015, 0.0031, 0.0432)
    >>> print(r)
    1.5% (3 of 200 responses) [0.3%, 4.3%], 95% Clopper-Pearson
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from value_lens.analysis.intervals import jackknife_interval
from value_lens.errors import InputError

__all__ = ["Rate", "binomial_rate", "binomial_tail", "clustered_rate"]


@dataclass(frozen=True)
class Rate:
    """A measured share with its interval.

    Attributes:
        rate: ``flagged / n``; flagged, n: the counts (tokens for ``unit="token"``).
        lo, hi: the interval at ``level``; method: how it was computed.
        unit: what was counted (``"response"`` or ``"token"``); clusters: texts behind a
            token rate (0 for a response rate).
    """

    rate: float
    flagged: int
    n: int
    lo: float
    hi: float
    level: float
    method: str
    unit: str
    clusters: int = 0

    def __str__(self) -> str:
        per = f"{self.flagged} of {self.n} {self.unit}s"
        if self.clusters:
            per += f" in {self.clusters} texts"
        return (
            f"{self.rate:.1%} ({per}) [{self.lo:.1%}, {self.hi:.1%}], "
            f"{self.level:.0%} {self.method}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a flat record (for a table or JSON)."""
        return dict(self.__dict__)


def binomial_tail(k: int, n: int, p: float, upper: bool) -> float:
    """``P(X >= k)`` (``upper``) or ``P(X <= k)`` for ``X ~ Binomial(n, p)``, exactly.

    >>> round(binomial_tail(1, 2, 0.5, upper=True), 6), binomial_tail(2, 2, 0.5, upper=False)
    (0.75, 1.0)
    """
    if p <= 0.0:
        return 1.0 if (not upper or k <= 0) else 0.0
    if p >= 1.0:
        return 1.0 if (upper or k >= n) else 0.0
    j = np.arange(k, n + 1) if upper else np.arange(0, k + 1)
    if j.size == 0:
        return 0.0
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    logc = logfact[n] - logfact[j] - logfact[n - j]
    logp = logc + j * math.log(p) + (n - j) * math.log1p(-p)
    top = float(logp.max())
    return float(min(1.0, math.exp(top) * np.exp(logp - top).sum()))


def _solve(f: Any, target: float, increasing: bool) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        above = f(mid) > target
        if above == increasing:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def binomial_rate(k: int, n: int, *, level: float = 0.95, unit: str = "response") -> Rate:
    """``k`` flagged of ``n`` independent units, with the Clopper-Pearson interval."""
    if n < 1 or not 0 <= k <= n:
        raise InputError(f"need 0 <= flagged <= n and n >= 1, got {k} of {n}")
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level}")
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else _solve(lambda p: binomial_tail(k, n, p, True), a, True)
    hi = 1.0 if k == n else _solve(lambda p: binomial_tail(k, n, p, False), a, False)
    return Rate(k / n, k, n, lo, hi, level, "Clopper-Pearson", unit)


def clustered_rate(flags: Sequence[Any], *, level: float = 0.95, unit: str = "token") -> Rate:
    """The share of flagged items pooled over clusters (one 0/1 array per text), with the
    leave-one-cluster-out jackknife t interval (clipped to [0, 1])."""
    arrs = [np.asarray(f, dtype=bool).reshape(-1) for f in flags]
    k = np.array([a.sum() for a in arrs], dtype=np.float64)
    m = np.array([a.size for a in arrs], dtype=np.float64)
    if m.sum() == 0:
        raise InputError("no items to count")
    rate = float(k.sum() / m.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = (k.sum() - k) / (m.sum() - m)
    iv = jackknife_interval(rate, loo, level)
    lo, hi = (max(0.0, iv.lo), min(1.0, iv.hi)) if np.isfinite(iv.lo) else (np.nan, np.nan)
    return Rate(
        rate, int(k.sum()), int(m.sum()), lo, hi, level, "cluster jackknife", unit, len(arrs)
    )
