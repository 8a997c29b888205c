"""``cap``: activation capping (Assistant Axis, arXiv 2601.10387): keep the projection in a band.

With ``p = h . u``, ``floor=tau`` moves only tokens below it, ``h + max(0, tau - p) u``, and
``ceiling=tau`` only tokens above it, ``h - max(0, p - tau) u``; both together keep ``p`` in
``[floor, ceiling]``. Every other token is left exactly as it was (bit-identical). ``tau`` is in
raw projection units unless ``unit=`` says otherwise (``"sd"``: projection sds from 0). The
primary strength (``alpha=``, a dose grid's strengths) is the floor, or the ceiling when only a
ceiling is given. The steering records how many tokens each layer moved
(:meth:`~value_lens.steering.steer.Steering.moved_tokens`).

:func:`calibrate_cap` sets ``tau`` per layer from a quantile of the projection on neutral text
("normal traffic").

Example:
    >>> import torch
    >>> h = torch.tensor([[[0.0, -2.0], [0.0, 3.0]]])
    >>> Cap(floor=1.0)(h, torch.tensor([0.0, 1.0])).tolist()
    [[[0.0, 1.0], [0.0, 3.0]]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float

from value_lens.core.hooks import run_resid_hooks
from value_lens.core.model import model_device, n_layers, to_token_ids
from value_lens.core.protocols import HookedModel
from value_lens.errors import CalibrationError, InputError
from value_lens.steering._resolve import AxisLike, at_layers
from value_lens.steering.operator import Operator, StrengthSpec, num, strength_field

__all__ = ["Cap", "calibrate_cap"]


@dataclass(frozen=True)
class Cap(Operator):
    """Move only the tokens whose projection crosses ``floor`` (from below) or ``ceiling``."""

    name: ClassVar[str] = "cap"
    floor: StrengthSpec | None = strength_field(None)
    ceiling: StrengthSpec | None = strength_field(None)

    @property
    def primary(self) -> str:
        return "ceiling" if self.floor is None and self.ceiling is not None else "floor"

    def check(self) -> None:
        if self.floor is None and self.ceiling is None:
            raise InputError(
                "mode 'cap' needs floor=tau and/or ceiling=tau (or alpha= for a floor)"
            )
        if (
            self.floor is not None
            and self.ceiling is not None
            and num(self.floor) > num(self.ceiling)
        ):
            raise InputError(f"cap floor {self.floor} is above its ceiling {self.ceiling}")

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        p = h @ u
        lo = None if self.floor is None else num(self.floor)
        hi = None if self.ceiling is None else num(self.ceiling)
        delta = p.clamp(min=lo, max=hi) - p  # exactly 0 where p is inside the band
        return torch.where((delta != 0)[..., None], h + delta[..., None] * u, h)


def calibrate_cap(
    model: HookedModel,
    axis: AxisLike,
    texts: Iterable[str],
    *,
    quantile: float = 0.05,
    layers: int | Sequence[int] | None = None,
    max_tokens: int = 512,
) -> dict[int, float]:
    """``{layer: tau}``: the ``quantile`` of the projection on the unit direction over ``texts``.

    Pass the result as ``floor=`` (a low quantile: the band normal text stays above) or
    ``ceiling=`` (a high one). As in :func:`~value_lens.steering.strength.calibrate`, the first
    token of each text is skipped (attention-sink tokens); each text is cut at ``max_tokens``.

    Args:
        model: the model the cap will steer.
        axis: a ValueAxis (or a direction tensor ``[d]`` / ``[n_layers, d]``).
        texts: neutral texts ("normal traffic").
        quantile: in (0, 1); e.g. 0.05 for a floor, 0.95 for a ceiling.
        layers: default the axis's fitted layers (all layers for a tensor).

    >>> from value_lens.testing import tiny_qwen3
    >>> m = tiny_qwen3()
    >>> taus = calibrate_cap(m, torch.ones(64), ["some neutral text", "and more"], layers=[1])
    >>> sorted(taus)
    [1]
    """
    if not 0 < quantile < 1:
        raise InputError(f"quantile must be in (0, 1), got {quantile}")
    chosen = _default_layers(model, axis) if layers is None else layers
    at = at_layers(axis, chosen, model=model)
    dev = model_device(model)
    units = {layer: v.to(dev, torch.float64) for layer, v in at.directions.items()}
    found: dict[int, list[torch.Tensor]] = {layer: [] for layer in units}

    def reader(layer: int, resid: torch.Tensor) -> None:
        found[layer].append((resid[0, 1:].to(torch.float64) @ units[layer]).cpu())

    texts = list(texts)
    if not texts:
        raise InputError("calibrate_cap got no texts; pass neutral texts")
    for text in texts:
        ids = to_token_ids(model, text)[:max_tokens]
        if ids.numel() >= 2:
            run_resid_hooks(model, ids[None].to(dev), dict.fromkeys(units, reader))
    out = {}
    for layer, chunks in found.items():
        if not chunks:
            raise CalibrationError("the cap texts have no tokens past the first; pass longer texts")
        p = torch.cat(chunks)
        out[layer] = float(torch.quantile(p, quantile))
        if not math.isfinite(out[layer]):
            raise CalibrationError(f"the projection at layer {layer} is not finite")
    return out


def _default_layers(model: HookedModel, axis: AxisLike) -> list[int]:
    fitted = getattr(axis, "layers", None)
    return list(fitted) if fitted else list(range(n_layers(model)))
