"""Per-token position features inside a labelled turn, from the labels and the turn metadata.

These are what a position-erased axis (``method="erased"``) makes linearly unreadable:

* ``since_start``: tokens since the turn's first token (0 for the first);
* ``to_end``: tokens left in the turn after this one (0 for the last);
* ``log_since_start`` / ``log_to_end``: ``log(1 + x)`` of each.

Turns come from :meth:`~value_lens.data.tokens.LabelledTokens.turn_bounds` (the labelled turn
from ``meta["turn_start"]`` / ``meta["turn_end"]``, placebo turns from ``meta["placebo_turns"]``,
else the span of the labelled tokens). BEFORE and AFTER tokens end at
:meth:`~value_lens.data.tokens.LabelledTokens.turn_end`, as the sweep's position controls do.
Tokens in no turn get NaN.

Example:
    >>> from value_lens.data.tokens import LabelledTokens
    >>> d = LabelledTokens.from_lists([[1, 2, 3, 4]], [[-1, 0, 2, 1]], ["g"],
    ...                               meta=[{"turn_start": 1, "turn_end": 4}])
    >>> position_features(d, 0)[:, :2].tolist()
    [[nan, nan], [0.0, 2.0], [1.0, 1.0], [2.0, 0.0]]
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from value_lens.data.tokens import AFTER, BEFORE, LabelledTokens

__all__ = ["POSITION_FEATURES", "position_features"]

POSITION_FEATURES: tuple[str, ...] = ("since_start", "to_end", "log_since_start", "log_to_end")


def position_features(data: LabelledTokens, i: int) -> Float[torch.Tensor, "T 4"]:
    """The :data:`POSITION_FEATURES` of every token of sequence ``i`` (fp64; NaN off any turn)."""
    start, end = data.turn_bounds(i)
    lab = data.labels[i]
    real = (lab == BEFORE) | (lab == AFTER)
    end = torch.where(real, torch.tensor(data.turn_end(i)), end)
    t = torch.arange(lab.numel())
    since = (t - start).double()
    to_end = (end - 1 - t).double()
    feats = torch.stack([since, to_end, since.log1p(), to_end.log1p()], dim=1)
    outside = (start < 0) | (since < 0) | (to_end < 0)
    return feats.masked_fill(outside[:, None], float("nan"))
