"""Readout transforms saved with an axis: what :func:`value_lens.trace` and :func:`value_lens.project`
apply to a residual before projecting it on the axis.

* :class:`LeaceEraser` (``method="erased"``): LEACE (Belrose et al. 2023), the least-squares
  affine eraser that makes the position features linearly unreadable,
  ``r(x) = x - A B^T (x - mean)``. With ``W`` the (pseudo-)inverse square root of the
  covariance of ``x`` and ``U`` an orthonormal basis of the column space of
  ``W Cov(x, z)``, ``A = W^+ U`` and ``B = W U`` (:func:`leace`), so that
  ``Cov(r(x), z) = 0`` exactly on the tokens it was fitted on. The readout direction is the
  axis direction itself.
* :class:`Standardizer` (``method="standardized"``): per-dimension z-scores,
  ``z = (x - center) / scale`` with the sink dimensions (``scale = 0``) zeroed; the readout
  direction is the axis direction divided by ``scale`` (the standardised direction).

Every tensor has one row per model layer (zeros for layers without a fit), kept in fp64.

Example:
    >>> import torch
    >>> cov = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))
    >>> cxz = torch.tensor([[2.0], [0.0]], dtype=torch.float64)
    >>> a, b = leace(cov, cxz)
    >>> (cxz - a @ (b.T @ cxz)).abs().max().item() < 1e-12   # Cov(r(x), z) = 0
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Float

from value_lens.errors import ArtifactError

__all__ = ["READOUTS", "LeaceEraser", "Readout", "Standardizer", "leace", "readout_from_artifact"]


def leace(
    cov_xx: Float[torch.Tensor, "D D"], cov_xz: Float[torch.Tensor, "D F"], *, rtol: float = 1e-10
) -> tuple[Float[torch.Tensor, "D F"], Float[torch.Tensor, "D F"]]:
    """The LEACE eraser's factors ``(A, B)``: ``r(x) = x - A B^T (x - E[x])`` (fp64).

    Directions of ``cov_xx`` with eigenvalues below ``rtol`` times the largest count as null
    (the pseudo-inverse square root); columns of ``A``/``B`` beyond the rank of ``W Cov(x, z)``
    are zero.
    """
    cov_xx, cov_xz = cov_xx.double(), cov_xz.double()
    evals, evecs = torch.linalg.eigh((cov_xx + cov_xx.T) / 2)
    top = float(evals.max().clamp_min(0))
    keep = evals > rtol * top if top > 0 else torch.zeros_like(evals, dtype=torch.bool)
    v, e = evecs[:, keep], evals[keep]
    w = v @ torch.diag(e.rsqrt()) @ v.T  # W = Cov^(-1/2) on its range
    w_pinv = v @ torch.diag(e.sqrt()) @ v.T
    m = w @ cov_xz
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    smax = float(s.max()) if s.numel() else 0.0
    u = u * (s > rtol * smax).to(u.dtype) if smax > 0 else torch.zeros_like(u)
    return w_pinv @ u, w @ u


@dataclass(frozen=True, eq=False)
class LeaceEraser:
    """A per-layer LEACE eraser (see the module docs); ``features`` names what it erases."""

    mean: Float[torch.Tensor, "L D"]
    a: Float[torch.Tensor, "L D F"]
    b: Float[torch.Tensor, "L D F"]
    features: tuple[str, ...] = ()
    kind: ClassVar[str] = "leace"

    def apply(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """``r(h)`` at ``layer`` for residuals ``h [..., D]`` (in ``h``'s dtype and device)."""
        m, a, b = (t[layer].to(h.device, h.dtype) for t in (self.mean, self.a, self.b))
        return h - ((h - m) @ b) @ a.T

    def read_direction(self, v: torch.Tensor, layer: int) -> torch.Tensor:  # noqa: ARG002
        return v

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "a": self.a, "b": self.b}

    def info(self) -> dict[str, Any]:
        return {"features": list(self.features)}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], info: dict[str, Any]) -> LeaceEraser:
        return cls(t["mean"], t["a"], t["b"], tuple(info.get("features", ())))

    def expand(self, idx: torch.Tensor, n_layers: int) -> LeaceEraser:
        """Rows for ``n_layers`` layers, these rows at ``idx`` (others zero: no erasure)."""
        mean, a, b = (_expand(t, idx, n_layers) for t in self.tensors().values())
        return LeaceEraser(mean, a, b, self.features)


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-dimension z-scores; dimensions with ``scale == 0`` (sinks, constants) read as 0."""

    center: Float[torch.Tensor, "L D"]
    scale: Float[torch.Tensor, "L D"]
    kind: ClassVar[str] = "standardize"

    def _inverse(self, layer: int, like: torch.Tensor) -> torch.Tensor:
        s = self.scale[layer].to(like.device, like.dtype)
        return torch.where(s > 0, 1.0 / s.clamp_min(1e-30), torch.zeros_like(s))

    def apply(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        c = self.center[layer].to(h.device, h.dtype)
        return (h - c) * self._inverse(layer, h)

    def read_direction(self, v: torch.Tensor, layer: int) -> torch.Tensor:
        """The standardised direction ``u = v / scale`` of a raw-space direction ``v``."""
        return v * self._inverse(layer, v)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"center": self.center, "scale": self.scale}

    def info(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], info: dict[str, Any]) -> Standardizer:  # noqa: ARG003
        return cls(t["center"], t["scale"])

    def expand(self, idx: torch.Tensor, n_layers: int) -> Standardizer:
        return Standardizer(*(_expand(t, idx, n_layers) for t in self.tensors().values()))


Readout = LeaceEraser | Standardizer
READOUTS: dict[str, Any] = {"leace": LeaceEraser, "standardize": Standardizer}
"""Readout transform kinds by the name saved in an axis file."""


def _expand(t: torch.Tensor, idx: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.zeros((n, *t.shape[1:]), dtype=torch.float64)
    out[idx] = t.double()
    return out


def readout_from_artifact(
    kind: str, tensors: dict[str, torch.Tensor], info: dict[str, Any]
) -> Readout:
    """Rebuild a saved readout transform (``kind`` from the file's metadata)."""
    if kind not in READOUTS:
        raise ArtifactError(
            f"this axis file uses readout transform {kind!r}, which this value_lens does not "
            f"know (known: {sorted(READOUTS)}); upgrade value_lens"
        )
    return READOUTS[kind].from_tensors(tensors, info)  # type: ignore[no-any-return]
