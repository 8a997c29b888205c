"""``add``: the paper's intervention, ``h + alpha * u`` at every steered position.

``alpha`` is in the steering's unit (raw, percent of the mean residual norm, or projection sds);
``alpha = 0`` is the identity.

Example:
    >>> import torch
    >>> Add(alpha=2.0)(torch.zeros(1, 1, 2), torch.tensor([0.0, 1.0])).tolist()
    [[[0.0, 2.0]]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float

from value_lens.steering.operator import Operator, StrengthSpec, num, strength_field

__all__ = ["Add"]


@dataclass(frozen=True)
class Add(Operator):
    """Push every steered token by ``alpha`` along the direction."""

    name: ClassVar[str] = "add"
    neutral: ClassVar[float | None] = 0.0
    alpha: StrengthSpec = strength_field(0.0)

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        return h + num(self.alpha) * u
