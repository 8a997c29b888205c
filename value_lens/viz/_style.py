"""Shared colour and layout choices of the value_lens figures (internal).

One signed, zero-centred scale everywhere: red below zero, white at zero, blue above, so "higher
value" always reads as blue whichever figure it appears in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["DIVERGING", "rgb_for", "symmetric_limit"]

# plotly's RdBu runs red (low) -> white -> blue (high); the same stops are used for the HTML views.
DIVERGING = "RdBu"
_NEG = (178, 24, 43)
_MID = (247, 247, 247)
_POS = (33, 102, 172)


def symmetric_limit(values: Iterable[float], vmax: float | None = None) -> float:
    """The colour limit: ``vmax`` if given, else the largest finite ``|value|`` (1 if none)."""
    if vmax is not None:
        if not math.isfinite(vmax) or vmax <= 0:
            from value_lens.errors import InputError

            raise InputError(f"vmax must be a positive finite number, got {vmax}")
        return float(vmax)
    finite = [abs(float(v)) for v in values if math.isfinite(float(v))]
    m = max(finite, default=0.0)
    return m if m > 0 else 1.0


def rgb_for(value: float, vmax: float) -> tuple[int, int, int]:
    """The RGB colour of ``value`` on a scale symmetric around zero (clipped at ``±vmax``).

    Example:
        >>> rgb_for(0.0, 1.0), rgb_for(1.0, 1.0), rgb_for(-5.0, 1.0)
        ((247, 247, 247), (33, 102, 172), (178, 24, 43))
    """
    if not math.isfinite(value):
        return (200, 200, 200)
    t = max(-1.0, min(1.0, value / vmax))
    end = _POS if t >= 0 else _NEG
    a = abs(t)
    return tuple(round(m + (e - m) * a) for m, e in zip(_MID, end, strict=True))  # type: ignore[return-value]
