"""``rotate``: angular steering (arXiv 2510.26243): turn ``h`` by ``angle`` degrees toward ``u``.

The rotation acts in the plane ``span(u, h)``. Write ``h = p u + r e`` with ``p = h . u``, ``r`` the
length of the rest and ``e`` its direction; the rotated vector is
``(p cos t + r sin t) u + (r cos t - p sin t) e``. Its norm is ``|h|`` exactly (up to float32
rounding); a positive angle turns ``h`` toward ``u`` (90 degrees takes a vector orthogonal to
``u`` onto ``u``), 0 is the identity, and 180 maps ``h`` to ``-h``, so its ``u`` component to its
negative. A token lying on the ``u`` line (``r = 0``) spans no plane and is left as it is. The
angle is in degrees whatever the steering's ``unit``; the direction is normalised here, so the
rotation is exact even with ``normalize=False``.

Example:
    >>> import torch
    >>> out = Rotate(angle=90.0)(torch.tensor([[[1.0, 0.0]]]), torch.tensor([0.0, 1.0]))
    >>> [round(x, 6) for x in out[0, 0].tolist()]
    [0.0, 1.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float

from value_lens.steering.operator import Operator, StrengthSpec, num, strength_field

__all__ = ["Rotate"]


@dataclass(frozen=True)
class Rotate(Operator):
    """Rotate every steered token by ``angle`` degrees in the plane of ``u`` and itself."""

    name: ClassVar[str] = "rotate"
    neutral: ClassVar[float | None] = 0.0
    angle: StrengthSpec = strength_field(0.0, unit=False)

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        t = math.radians(num(self.angle))
        if t == 0.0:
            return h
        u = u / u.norm()
        p = h @ u
        rest = h - p[..., None] * u
        r = rest.norm(dim=-1)
        c, s = math.cos(t), math.sin(t)
        along = p * c + r * s
        across = (r * c - p * s) / r.clamp_min(torch.finfo(h.dtype).tiny)
        out = along[..., None] * u + across[..., None] * rest
        return torch.where((r > 0)[..., None], out, h)
