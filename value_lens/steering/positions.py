"""Which token positions a steering hook touches: one pure function, KV-cache and padding aware.

A hook on the residual stream sees ``[B, T, D]`` where ``T`` is whatever the current forward
pass feeds: the whole (left-padded) prompt on the first generation step, then ``[B, 1, D]`` per
step under a KV cache, or the whole growing sequence when generation recomputes without a
cache. :func:`position_mask` turns a positions spec into a ``[B, T]`` boolean mask given

* ``offset``: how many stream positions earlier forward passes already processed (0 on the
  first step or on a full recompute; ``P + k - 1`` on cached step ``k``), and
* ``pads``: the number of left-padding slots in each row, and
* ``prompt_lens``: the number of real (non-pad) prompt tokens in each row.

Hook position ``t`` of row ``b`` is stream position ``offset + t`` and real-token index
``r = offset + t - pads[b]`` (``r < 0``: a pad slot, never steered). Specs:

* ``"all"``: every real token (the paper's intervention).
* ``"prompt"``: ``r < prompt_lens[b]``; ``"generated"``: ``r >= prompt_lens[b]``.
* ``"from:k"``: ``r >= k`` for ``k >= 0``; ``r >= prompt_lens[b] + k`` for ``k < 0`` (so
  ``"from:-1"`` is the last prompt token and everything generated).
* a boolean tensor ``[R]`` or ``[B, R]`` indexed by real-token index: ``True`` steers
  ``r < R`` where set; positions past ``R`` (e.g. generated ones) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import torch
from jaxtyping import Bool, Int

from value_lens.errors import InputError

__all__ = ["PositionSpec", "Positions", "parse_positions", "position_mask"]

PositionSpec = Union[str, torch.Tensor, "Positions"]
"""``"all"``, ``"prompt"``, ``"generated"``, ``"from:k"``, a bool mask, or a parsed Positions."""

_KINDS = ("all", "prompt", "generated")


@dataclass(frozen=True)
class Positions:
    """A validated positions spec (see the module docstring for the meaning of each kind)."""

    kind: Literal["all", "prompt", "generated", "from", "mask"]
    start: int = 0
    mask: torch.Tensor | None = None

    @property
    def needs_prompt_len(self) -> bool:
        """Whether the mask depends on where the prompt ends."""
        return self.kind in ("prompt", "generated") or (self.kind == "from" and self.start < 0)

    def __str__(self) -> str:
        if self.kind == "from":
            return f"from:{self.start}"
        if self.kind == "mask":
            assert self.mask is not None
            return f"mask{tuple(self.mask.shape)}"
        return self.kind


def parse_positions(spec: PositionSpec) -> Positions:
    """Validate a positions spec.

    >>> parse_positions("from:-2")
    Positions(kind='from', start=-2, mask=None)

    Raises:
        InputError: for an unknown spec string or a mask that is not 1-D/2-D boolean.
    """
    if isinstance(spec, Positions):
        return spec
    if isinstance(spec, torch.Tensor):
        if spec.dtype != torch.bool or spec.ndim not in (1, 2):
            raise InputError(
                f"a positions mask must be a bool tensor [T] or [B, T]; got dtype {spec.dtype} "
                f"and shape {tuple(spec.shape)}. Build it with e.g. `torch.zeros(T, dtype=bool)`."
            )
        return Positions("mask", mask=spec.detach().to("cpu"))
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s in _KINDS:
            return Positions(s)  # type: ignore[arg-type]
        if s.startswith("from:"):
            try:
                return Positions("from", start=int(s[5:]))
            except ValueError:
                pass
    raise InputError(
        f"unknown positions spec {spec!r}; use 'all', 'prompt', 'generated', 'from:k' "
        "(k an int, negative counts back from the end of the prompt), or a bool mask tensor"
    )


def position_mask(
    spec: PositionSpec,
    seq_len: int,
    *,
    prompt_lens: Int[torch.Tensor, " B"],
    offset: int = 0,
    pads: Int[torch.Tensor, " B"] | None = None,
) -> Bool[torch.Tensor, "B T"]:
    """The ``[B, seq_len]`` mask of hook positions to steer (pure; see the module docstring).

    Args:
        spec: the positions spec.
        seq_len: ``T``, the sequence length the hook sees in this forward pass.
        prompt_lens: real prompt tokens per row (excluding padding).
        offset: stream positions processed by earlier passes (the KV-cache length).
        pads: left-padding slots per row (default none).

    >>> lens = torch.tensor([3, 2])
    >>> position_mask("generated", 4, prompt_lens=lens, pads=torch.tensor([0, 1])).int().tolist()
    [[0, 0, 0, 1], [0, 0, 0, 1]]
    >>> position_mask("generated", 1, prompt_lens=lens, offset=4).int().tolist()  # a cached step
    [[1], [1]]
    """
    pos = parse_positions(spec)
    if seq_len < 0 or offset < 0:
        raise InputError(f"seq_len ({seq_len}) and offset ({offset}) must be non-negative")
    lens = torch.as_tensor(prompt_lens, dtype=torch.long).reshape(-1)
    pad = (
        torch.zeros_like(lens)
        if pads is None
        else torch.as_tensor(pads, dtype=torch.long).reshape(-1).to(lens.device)
    )
    if pad.shape != lens.shape:
        raise InputError(f"pads has {pad.numel()} rows but prompt_lens has {lens.numel()}")
    steps = torch.arange(offset, offset + seq_len, device=lens.device)
    real = steps[None, :] - pad[:, None]  # [B, T] real-token index, < 0 for pad slots
    valid = real >= 0
    if pos.kind == "all":
        return valid
    if pos.kind == "prompt":
        return valid & (real < lens[:, None])
    if pos.kind == "generated":
        return real >= lens[:, None]
    if pos.kind == "from":
        first = (
            lens[:, None] + pos.start
            if pos.start < 0
            else torch.full_like(lens[:, None], pos.start)
        )
        return valid & (real >= first.clamp(min=0))
    assert pos.mask is not None
    m = pos.mask.to(lens.device)
    if m.ndim == 1:
        m = m[None, :].expand(lens.numel(), -1)
    elif m.shape[0] != lens.numel():
        raise InputError(
            f"the positions mask has {m.shape[0]} rows but the batch has {lens.numel()}; "
            "pass a 1-D mask shared by all rows or one row per prompt"
        )
    width = m.shape[1]
    inside = valid & (real < width)
    gathered = torch.gather(m, 1, real.clamp(0, max(width - 1, 0))) if width else inside
    return inside & gathered
