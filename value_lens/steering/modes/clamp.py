"""``clamp``: set the projection to ``alpha``, ``h + (alpha - h . u) u``.

A clamp target in ``"sd"`` is ``alpha`` projection sds from 0; in ``"percent"``, ``alpha``
percent of the layer's mean residual norm. No strength is the identity.

Example:
    >>> import torch
    >>> Clamp(alpha=1.0)(torch.tensor([[[3.0, 4.0]]]), torch.tensor([0.0, 1.0])).tolist()
    [[[3.0, 1.0]]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float

from value_lens.steering.operator import Operator, StrengthSpec, num, strength_field

__all__ = ["Clamp"]


@dataclass(frozen=True)
class Clamp(Operator):
    """Every steered token's projection becomes ``alpha``."""

    name: ClassVar[str] = "clamp"
    alpha: StrengthSpec = strength_field(0.0)

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        return h + (num(self.alpha) - (h @ u)[..., None]) * u
