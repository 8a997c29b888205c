"""``ablate``: remove the direction, ``h - fraction * (h . u) u``.

``fraction`` (the primary strength, unit-free) is the share of the projection removed: 1 (the
default) is a full ablation, 0 the identity, so a dose grid over fractions is a partial-ablation
dose-response.

Example:
    >>> import torch
    >>> Ablate()(torch.tensor([[[3.0, 4.0]]]), torch.tensor([0.0, 1.0])).tolist()
    [[[3.0, 0.0]]]
    >>> Ablate(fraction=0.5)(torch.tensor([[[3.0, 4.0]]]), torch.tensor([0.0, 1.0])).tolist()
    [[[3.0, 2.0]]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float

from value_lens.steering.operator import Operator, StrengthSpec, num, strength_field

__all__ = ["Ablate"]


@dataclass(frozen=True)
class Ablate(Operator):
    """Remove ``fraction`` of the projection on the direction (all of it by default)."""

    name: ClassVar[str] = "ablate"
    neutral: ClassVar[float | None] = 0.0
    fraction: StrengthSpec = strength_field(1.0, unit=False)

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        f = num(self.fraction)
        proj = (h @ u)[..., None]
        return h - (proj if f == 1.0 else f * proj) * u
