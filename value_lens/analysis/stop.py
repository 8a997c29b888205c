"""Aggregators and stop rules for :func:`value_lens.analysis.monitor.monitor`.

An *aggregator* maps one row's values so far (a 1-D float64 tensor over its new tokens, oldest
first) to one number: ``(values) -> float``. The built-in ones are written as strings in
``monitor(aggregate=...)``: ``"ema:0.9"`` (exponential moving average with that decay),
``"mean:32"``, ``"max:32"`` and ``"min:32"`` (over the last 32 values, or all of them while
fewer). Any other callable of that shape can be passed as is.

A *stop rule* maps a :class:`~value_lens.analysis.monitor.MonitorEvent` to ``True`` when the row
should end after that token: :func:`below` and :func:`above` compare one aggregate with a
threshold, for example the one :meth:`~value_lens.analysis.monitor.Monitor.calibrate` sets at a
fixed false-positive rate on neutral text (:func:`calibrate_threshold`).

**Which rate.** A stop rule ends a response if *any* of its tokens crosses the threshold, so the
rate that matters is per response: the share of neutral responses stopped. That is what
:func:`calibrate_threshold` controls by default (``unit="response"``: the ``fpr`` quantile of
each neutral text's most extreme aggregate from token ``after`` on). ``unit="token"`` controls
the share of neutral *tokens* flagged instead, which on 100-token texts lets far more than
``fpr`` of the responses be stopped. :func:`false_positive_rate` measures either rate on
held-out neutral texts, with an interval (:mod:`value_lens.analysis.rates`).

>>> import torch
>>> parse_aggregate("ema:0.5")(torch.tensor([1.0, 0.0, 0.0]))
0.25
>>> below("ema", -0.05, after=2)
below('ema', -0.05, after=2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float

from value_lens.analysis.rates import Rate, binomial_rate, clustered_rate
from value_lens.errors import InputError

__all__ = [
    "Aggregator",
    "StopRule",
    "Unit",
    "above",
    "below",
    "calibrate_threshold",
    "ema",
    "false_positive_rate",
    "parse_aggregate",
    "rolling_max",
    "rolling_mean",
    "rolling_min",
    "threshold_at_fpr",
]

Aggregator = Callable[[torch.Tensor], float]
StopRule = Callable[[Any], bool]
Side = Literal["below", "above"]
Unit = Literal["response", "token"]


@dataclass(frozen=True)
class _Ema:
    decay: float

    def __call__(self, values: Float[torch.Tensor, " N"]) -> float:
        """``e_0 = v_0``, ``e_t = decay * e_(t-1) + (1 - decay) * v_t``; the last ``e_t``."""
        n = values.numel()
        if n == 0:
            raise InputError("an aggregate needs at least one value")
        k = torch.arange(n - 1, -1, -1, dtype=torch.float64)
        w = (1 - self.decay) * self.decay**k
        w[0] = self.decay ** (n - 1)  # the first value seeds the average
        return float((w * values.double()).sum())


@dataclass(frozen=True)
class _Window:
    window: int
    how: Literal["mean", "max", "min"]

    def __call__(self, values: Float[torch.Tensor, " N"]) -> float:
        if values.numel() == 0:
            raise InputError("an aggregate needs at least one value")
        tail = values[-self.window :].double()
        if self.how == "mean":
            return float(tail.mean())
        return float(tail.max() if self.how == "max" else tail.min())


def ema(decay: float = 0.9) -> Aggregator:
    """Exponential moving average, seeded with the first value (``decay`` in [0, 1))."""
    if not 0 <= decay < 1:
        raise InputError(f"the EMA decay must be in [0, 1), got {decay}")
    return _Ema(float(decay))


def _window(window: int, how: Literal["mean", "max", "min"]) -> Aggregator:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InputError(f"a rolling window must be an int >= 1, got {window!r}")
    return _Window(window, how)


def rolling_mean(window: int) -> Aggregator:
    """Mean of the last ``window`` values."""
    return _window(window, "mean")


def rolling_max(window: int) -> Aggregator:
    """Max of the last ``window`` values."""
    return _window(window, "max")


def rolling_min(window: int) -> Aggregator:
    """Min of the last ``window`` values."""
    return _window(window, "min")


def parse_aggregate(spec: str | Aggregator) -> Aggregator:
    """An aggregator from ``"ema:DECAY"``, ``"mean:W"``, ``"max:W"``, ``"min:W"`` or a callable."""
    if not isinstance(spec, str):
        if not callable(spec):
            raise InputError(f"an aggregate is a spec string or a callable, got {spec!r}")
        return spec
    kind, _, arg = spec.partition(":")
    try:
        if kind == "ema":
            return ema(float(arg) if arg else 0.9)
        if kind in ("mean", "max", "min"):
            return _window(int(arg), kind)  # type: ignore[arg-type]
    except ValueError:
        pass
    raise InputError(
        f"unknown aggregate {spec!r}; use 'ema:0.9', 'mean:32', 'max:32', 'min:32' or a "
        "callable (values) -> float"
    )


@dataclass(frozen=True)
class _Threshold:
    side: Side
    name: str
    threshold: float
    after: int

    def __call__(self, event: Any) -> bool:
        if event.step < self.after:
            return False
        try:
            x = event.aggregates[self.name]
        except KeyError:
            raise InputError(
                f"the stop rule reads aggregate {self.name!r}, but the monitor computes "
                f"{sorted(event.aggregates)}; add it to monitor(aggregate=...)"
            ) from None
        return bool(x < self.threshold if self.side == "below" else x > self.threshold)

    def __repr__(self) -> str:
        return f"{self.side}({self.name!r}, {self.threshold:g}, after={self.after})"


def _rule(side: Side, name: str, threshold: float, after: int) -> StopRule:
    if not math.isfinite(threshold):
        raise InputError(f"the stop threshold must be finite, got {threshold}")
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise InputError(f"after must be an int >= 0, got {after!r}")
    return _Threshold(side, name, float(threshold), after)


def below(name: str, threshold: float, *, after: int = 0) -> StopRule:
    """Stop a row at the first token (step >= ``after``, 0-based) whose aggregate ``name``
    is strictly below ``threshold``."""
    return _rule("below", name, threshold, after)


def above(name: str, threshold: float, *, after: int = 0) -> StopRule:
    """Stop a row at the first token (step >= ``after``) whose aggregate is strictly above."""
    return _rule("above", name, threshold, after)


def threshold_at_fpr(
    values: Sequence[float] | np.ndarray | torch.Tensor, fpr: float, side: Side
) -> float:
    """The threshold that flags at most a share ``fpr`` of ``values`` (neutral-text scores).

    ``"below"``: the order statistic ``sorted(values)[floor(fpr * (n - 1))]``, so strictly
    fewer than ``fpr * n`` values lie below it; ``"above"``: the mirror image.

    >>> threshold_at_fpr([float(i) for i in range(101)], 0.05, "below")
    5.0
    """
    x = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        raise InputError("calibration needs at least one value, all finite")
    if not 0 < fpr < 1:
        raise InputError(f"fpr must be in (0, 1), got {fpr}")
    if side not in ("below", "above"):
        raise InputError(f"side must be 'below' or 'above', got {side!r}")
    s = x.sort().values
    k = math.floor(fpr * (x.numel() - 1))
    return float(s[k] if side == "below" else s[x.numel() - 1 - k])


def _traces(aggregates: Sequence[Any], after: int) -> list[np.ndarray]:
    """Each text's aggregates from token ``after`` on (texts with none left out)."""
    if isinstance(aggregates, (str, bytes)) or len(aggregates) == 0:
        raise InputError("aggregates must be a non-empty list of 1-D arrays, one per text")
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise InputError(f"after must be an int >= 0, got {after!r}")
    out = []
    for i, a in enumerate(aggregates):
        x = np.asarray(a, dtype=np.float64)
        if x.ndim != 1:
            raise InputError(f"aggregates[{i}] has shape {x.shape}; give one 1-D array per text")
        if not np.isfinite(x).all():
            raise InputError(f"aggregates[{i}] holds NaN or Inf")
        if x.size > after:
            out.append(x[after:])
    if not out:
        raise InputError(f"no text has a token at or after position {after}; lower after=")
    return out


def _check(direction: str, unit: str) -> None:
    if direction not in ("below", "above"):
        raise InputError(f"direction must be 'below' or 'above', got {direction!r}")
    if unit not in ("response", "token"):
        raise InputError(f"unit must be 'response' or 'token', got {unit!r}")


def calibrate_threshold(
    aggregates: Sequence[Any],
    fpr: float,
    direction: Side = "below",
    unit: Unit = "response",
    after: int = 0,
) -> float:
    """The threshold of a ``direction`` stop rule at false-positive rate ``fpr`` on neutral text.

    ``aggregates`` holds one 1-D array per neutral text: its aggregate after each token (what
    the stop rule sees). Only tokens from position ``after`` on count, as with
    ``below(..., after=after)``.

    * ``unit="response"`` (default): each text contributes its most extreme aggregate (its
      minimum for ``"below"``, its maximum for ``"above"``), and the threshold is their ``fpr``
      order statistic (:func:`threshold_at_fpr`): fewer than ``fpr`` of the neutral texts would
      have been stopped.
    * ``unit="token"``: every token's aggregate is pooled; fewer than ``fpr`` of the neutral
      tokens are flagged, but a text is stopped if any one of its tokens is.

    >>> calibrate_threshold([[0.0, -1.0], [0.5, 0.2], [0.3, 0.1], [0.4, 0.6]], 0.25)
    -1.0
    >>> calibrate_threshold([[0.0, -1.0], [0.5, 0.2], [0.3, 0.1], [0.4, 0.6]], 0.25, unit="token")
    0.0
    """
    _check(direction, unit)
    xs = _traces(aggregates, after)
    if unit == "token":
        return threshold_at_fpr(np.concatenate(xs), fpr, direction)
    ext = [x.min() if direction == "below" else x.max() for x in xs]
    return threshold_at_fpr(ext, fpr, direction)


def false_positive_rate(
    aggregates: Sequence[Any],
    threshold: float,
    direction: Side = "below",
    unit: Unit = "response",
    after: int = 0,
    level: float = 0.95,
) -> Rate:
    """The share of held-out neutral responses (or tokens) that a ``direction`` rule at
    ``threshold`` flags, with an interval.

    ``unit="response"``: a text counts once, flagged if any token from ``after`` on crosses;
    the interval is Clopper-Pearson (texts are independent). ``unit="token"``: the share of
    flagged tokens, with a leave-one-text-out jackknife interval (a text's tokens move
    together, so they are not independent draws).

    >>> r = false_positive_rate([[0.0, -1.0], [0.5, 0.2], [0.3, 0.1], [0.4, 0.6]], 0.15)
    >>> r.flagged, r.n, r.unit
    (2, 4, 'response')
    """
    _check(direction, unit)
    xs = _traces(aggregates, after)

    def hit(x: np.ndarray) -> np.ndarray:
        return np.asarray(x < threshold if direction == "below" else x > threshold)

    if unit == "response":
        flags = np.array([bool(hit(x).any()) for x in xs])
        return binomial_rate(int(flags.sum()), flags.size, level=level, unit="response")
    return clustered_rate([hit(x) for x in xs], level=level, unit="token")
