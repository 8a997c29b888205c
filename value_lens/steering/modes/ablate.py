"""``ablate``: remove the direction, ``h - (h . u) u``; it takes no strength.

Example:
    >>> import torch
    >>> Ablate()(torch.tensor([[[3.0, 4.0]]]), torch.tensor([0.0, 1.0])).tolist()
    [[[3.0, 0.0]]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float

from value_lens.steering.operator import Operator

__all__ = ["Ablate"]


@dataclass(frozen=True)
class Ablate(Operator):
    """Set the projection on the direction to zero (``alpha=`` is ignored)."""

    name: ClassVar[str] = "ablate"

    def __call__(
        self, h: Float[torch.Tensor, "B T d"], u: Float[torch.Tensor, " d"]
    ) -> Float[torch.Tensor, "B T d"]:
        return h - (h @ u)[..., None] * u
