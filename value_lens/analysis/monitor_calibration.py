"""Calibrating a value monitor's stop thresholds on neutral text, and checking them on held-out text.

:meth:`value_lens.analysis.monitor.Monitor.calibrate` reads every neutral text like a
generation (each aggregate after each of its tokens, :func:`aggregate_traces`), sets each
aggregate's threshold with :func:`value_lens.analysis.stop.calibrate_threshold` (per response
by default: the share of neutral texts a stop rule would end), and, given held-out neutral
texts, measures the rate it controls there (and the other unit's rate) with an interval
(:func:`value_lens.analysis.stop.false_positive_rate`). The result is a
:class:`MonitorCalibration`, whose printout names the rate controlled.

Example:
    >>> from value_lens.analysis.rates import binomial_rate
    >>> cal = MonitorCalibration({"ema": -0.02}, 0.01, "response", "below", 0, 200,
    ...                          {"ema": {"response": binomial_rate(3, 200)}})
    >>> print(cal)  # doctest: +NORMALIZE_WHITESPACE
    stop below the threshold at a per-response false-positive rate of 1% (the share of neutral
    texts stopped; set on 200 texts, from token 0 on)
      ema < -0.02; held out: per response 1.5% (3 of 200 responses) [0.3%, 4.3%], 95%
      Clopper-Pearson
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from value_lens.analysis.rates import Rate
from value_lens.analysis.readout import trace
from value_lens.analysis.stop import Side, Unit, calibrate_threshold, false_positive_rate
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError

__all__ = ["MonitorCalibration", "aggregate_traces", "calibrate_monitor"]

_WHAT = {
    "response": "per-response false-positive rate of {fpr:g}% (the share of neutral texts stopped",
    "token": "per-token false-positive rate of {fpr:g}% (the share of neutral tokens flagged; "
    "more of the texts would be stopped",
}


@dataclass(frozen=True)
class MonitorCalibration:
    """What :meth:`~value_lens.analysis.monitor.Monitor.calibrate` set and measured.

    Attributes:
        thresholds: ``{aggregate: threshold}``.
        fpr, unit: the rate controlled: ``fpr`` of the neutral responses (``"response"``) or of
            the neutral tokens (``"token"``).
        direction, after: the stop rule's side and first counted step.
        n_texts: neutral texts calibrated on.
        held_out: ``{aggregate: {"response": Rate, "token": Rate}}`` measured on held-out
            neutral texts (empty when none were given).
    """

    thresholds: dict[str, float]
    fpr: float
    unit: Unit
    direction: Side
    after: int
    n_texts: int
    held_out: dict[str, dict[str, Rate]] = field(default_factory=dict)

    def __str__(self) -> str:
        what = _WHAT[self.unit].format(fpr=100 * self.fpr)
        head = (
            f"stop {self.direction} the threshold at a {what}; set on {self.n_texts} texts, "
            f"from token {self.after} on)"
        )
        sign = "<" if self.direction == "below" else ">"
        lines = [head]
        for name, thr in self.thresholds.items():
            line = f"  {name} {sign} {thr:.4g}"
            rates = self.held_out.get(name, {})
            if rates:
                shown = [f"per {u} {r}" for u, r in sorted(rates.items())]
                line += "; held out: " + "; ".join(shown)
            lines.append(line)
        return "\n".join(lines)

    def table(self) -> list[dict[str, Any]]:
        """One record per aggregate and held-out unit (for a CSV or JSON)."""
        rows = []
        for name, thr in self.thresholds.items():
            base = {"aggregate": name, "threshold": thr, "fpr": self.fpr, "unit": self.unit}
            base |= {"direction": self.direction, "after": self.after, "n_texts": self.n_texts}
            for r in self.held_out.get(name, {}).values():
                rows.append(base | {f"held_out_{k}": v for k, v in r.to_dict().items()})
            if name not in self.held_out:
                rows.append(base)
        return rows


def aggregate_traces(
    mon: Any, model: HookedModel, texts: Sequence[Any]
) -> dict[str, list[np.ndarray]]:
    """``{aggregate: [per text: its value after each token]}``: each neutral text read like a
    generation at the ``score_layer`` of ``mon`` (a :class:`~value_lens.analysis.monitor.
    Monitor`) with its metric."""
    if isinstance(texts, str) or len(texts) == 0:
        raise InputError("calibrate takes a non-empty list of neutral texts")
    import torch

    out: dict[str, list[np.ndarray]] = {n: [] for n in mon.aggregates}
    for text in texts:
        tr = trace(model, text, mon.axis, [mon.score_layer])
        v = getattr(tr, mon.metric)[0].to(torch.float64)
        for name, f in mon.aggregates.items():
            out[name].append(np.array([float(f(v[: t + 1])) for t in range(v.numel())]))
    return out


def calibrate_monitor(
    mon: Any,
    model: HookedModel,
    texts: Sequence[Any],
    *,
    fpr: float,
    direction: Side,
    unit: Unit,
    after: int,
    held_out: Sequence[Any] | None,
) -> MonitorCalibration:
    """Thresholds on ``texts`` and, with ``held_out`` texts, their measured rates there."""
    traces = aggregate_traces(mon, model, texts)
    thr = {
        n: calibrate_threshold(x, fpr, direction=direction, unit=unit, after=after)
        for n, x in traces.items()
    }
    rates: dict[str, dict[str, Rate]] = {}
    if held_out is not None:
        test = aggregate_traces(mon, model, held_out)
        for n, x in test.items():
            rates[n] = {
                u: false_positive_rate(x, thr[n], direction=direction, unit=u, after=after)  # type: ignore[arg-type]
                for u in ("response", "token")
            }
    return MonitorCalibration(thr, float(fpr), unit, direction, after, len(texts), rates)
