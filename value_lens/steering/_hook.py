"""The steering hook: one ``fn(tensor, *, hook)`` per steered layer, and what each activation did.

How a hook knows the KV-cache step: each hook keeps a small stream record (:class:`Stream`). A
forward pass with ``T > 1`` positions, or the first pass, starts at stream position 0 (a prompt,
or a full recompute when generating without a cache). A single-position pass after earlier
passes continues the stream at the number of positions already seen (one cached decoding step).
Prompt lengths and padding come from :func:`value_lens.core.generate.generate`; without them the
hook assumes no padding and takes the first pass of each sequence to be the prompt, which is
right for single-prompt ``model.generate`` with its default KV cache. Each hook is called once
per forward pass, so per-hook records need no coordination.

Every hook writes into the :class:`RunRecord` of its activation (one ``generate`` batch, or one
``with`` block): per layer and row, the change the operator made to each token's projection on
the direction (so the tokens it moved and its summed push), once per token (a recomputing pass
adds only its new positions when the prompt geometry is known); and, for a conditional
steering, each row's trigger. Recording costs one subtraction and one matrix-vector product per
pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Float

from value_lens.errors import AxisMismatchError, InputError
from value_lens.steering.operator import Operator, StepContext
from value_lens.steering.positions import Positions, position_mask

__all__ = ["Gate", "HookFn", "LayerSteer", "RunRecord", "Stream", "make_hook", "stream"]

HookFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class LayerSteer:
    """Everything one hook needs, resolved once: where, along what, and how.

    Attributes:
        layer, hook: the value_lens layer and the hook point carrying it.
        direction: ``[d_model]`` float32 (unit length unless ``normalize=False``).
        alpha, raw: the primary strength as given (in the steering's unit) and in raw units
            (0.0 for a mode without one).
        op: the operator with every strength resolved for this layer, in raw units.
    """

    layer: int
    hook: str
    direction: Float[torch.Tensor, " D"]
    alpha: float
    raw: float
    op: Operator


@runtime_checkable
class Gate(Protocol):
    """A per-row condition (:mod:`value_lens.steering.condition`): which positions may be
    steered at ``layer`` in this pass."""

    def allowed(self, layer: int, ctx: StepContext, seq_len: int) -> Bool[torch.Tensor, "B T"]: ...


class Stream:
    """Where in the token stream each forward pass starts (see the module docstring)."""

    def __init__(self, prompt_lens: torch.Tensor | None, pads: torch.Tensor | None) -> None:
        self.given = prompt_lens is not None
        self.prompt_lens = None if prompt_lens is None else prompt_lens.reshape(-1).long().cpu()
        self.pads = None if pads is None else pads.reshape(-1).long().cpu()
        if self.pads is None and self.prompt_lens is not None:
            self.pads = torch.zeros_like(self.prompt_lens)
        self.processed = 0
        self.high = 0  # stream positions already counted (given geometry only)
        self.new_from = 0  # first hook position of the current pass not seen before

    def locate(self, batch: int, seq_len: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        regrouped = (
            not self.given and self.prompt_lens is not None and self.prompt_lens.numel() != batch
        )
        fresh = self.processed == 0 or seq_len > 1 or regrouped
        offset = 0 if fresh else self.processed
        if self.given:
            assert self.prompt_lens is not None and self.pads is not None
            if self.prompt_lens.numel() != batch:
                raise InputError(
                    f"the steering was activated for {self.prompt_lens.numel()} rows but the "
                    f"forward pass has {batch}; use value_lens.core.generate(..., steer=...) or "
                    "`with steering:` for plain forward passes"
                )
            self.new_from = max(0, self.high - offset)
            self.high = max(self.high, offset + seq_len)
        elif fresh:
            self.prompt_lens = torch.full((batch,), seq_len, dtype=torch.long)
            self.pads = torch.zeros(batch, dtype=torch.long)
        assert self.prompt_lens is not None and self.pads is not None
        self.processed = offset + seq_len
        return offset, self.prompt_lens, self.pads


def stream(prompt_lens: Any, pads: Any) -> Stream:
    """A fresh :class:`Stream` from optional prompt lengths and left padding."""
    return Stream(
        None if prompt_lens is None else torch.as_tensor(prompt_lens),
        None if pads is None else torch.as_tensor(pads),
    )


class RunRecord:
    """What one activation did (see the module docstring). Each pass adds the change along the
    direction of its new positions, ``[B, T]`` on the model's device; nothing is reduced (or
    synchronised) until it is read.

    Attributes:
        rows: rows of the batch (0 until the first pass).
        dp: layer -> the per-pass changes of the projection (``[B, T]`` each).
        trigger: per row, the relative token index whose value fired the condition (``-1``:
            the prompt's last token; ``None``: never), or ``None`` without a condition.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.dp: dict[int, list[torch.Tensor]] = {}
        self.trigger: list[int | None] | None = None

    def note(
        self,
        layer: int,
        change: Float[torch.Tensor, "B T D"],
        u: Float[torch.Tensor, " D"],
    ) -> None:
        self.dp.setdefault(layer, []).append(change @ u)

    def per_row(self, layer: int) -> dict[str, list[float]]:
        """Per row at ``layer``: ``moved`` (tokens whose projection the operator changed),
        ``push`` and ``push_abs`` (the summed change and its absolute value); zeros if never hit."""
        if not self.dp.get(layer):
            return {k: [0.0] * self.rows for k in ("moved", "push", "push_abs")}
        dp = torch.cat([x.double() for x in self.dp[layer]], dim=1).cpu()
        return {
            "moved": (dp != 0).sum(1).double().tolist(),
            "push": dp.sum(1).tolist(),
            "push_abs": dp.abs().sum(1).tolist(),
        }


def _mask(
    pos: Positions, gate: Gate | None, layer: int, ctx: StepContext, seq_len: int
) -> Bool[torch.Tensor, "B T"] | None:
    """The positions to steer in this pass (``None``: all of them, no mask needed)."""
    mask = None
    # "all" needs no mask past the first pass (padding only precedes the prompt) or without
    # padding: decoding steps skip building one
    if not (pos.kind == "all" and (ctx.offset > 0 or not bool(ctx.pads.any()))):
        mask = position_mask(
            pos, seq_len, prompt_lens=ctx.prompt_lens, offset=ctx.offset, pads=ctx.pads
        )
    if gate is not None:
        allowed = gate.allowed(layer, ctx, seq_len)
        mask = allowed if mask is None else mask & allowed
    return mask


def make_hook(
    s: LayerSteer, pos: Positions, strm: Stream, run: RunRecord, gate: Gate | None = None
) -> HookFn:
    """The ``fn(tensor, *, hook)`` that applies ``s.op`` at the positions ``pos`` (and ``gate``)
    select, in float32, rounding back to the model's dtype once."""
    d = s.direction.shape[0]
    cache: dict[torch.device, torch.Tensor] = {}

    def hook_fn(resid: torch.Tensor, hook: Any = None) -> torch.Tensor:  # noqa: ARG001 - TL contract
        if resid.ndim != 3 or resid.shape[-1] != d:
            raise AxisMismatchError(
                f"the steering direction has d_model {d} but the hooked activation has shape "
                f"{tuple(resid.shape)}; use an axis fitted on this model"
            )
        batch, seq_len, _ = resid.shape
        offset, lens, pads = strm.locate(batch, seq_len)
        run.rows = batch
        ctx = StepContext(s.layer, offset, lens, pads)
        mask = _mask(pos, gate, s.layer, ctx, seq_len)
        if mask is not None and not bool(mask.any()):
            return resid
        u = cache.get(resid.device)
        if u is None:
            u = cache[resid.device] = s.direction.to(resid.device, torch.float32)
        # fp32 throughout, one rounding back to the model dtype: a bf16 projection would leave
        # about 0.4% of it behind after an ablation
        h = resid.float()
        new = s.op.apply(h, u, ctx)
        if mask is not None:
            new = torch.where(mask.to(resid.device)[..., None], new, h)
        run.note(s.layer, (new - h)[:, strm.new_from :], u)
        return new.to(resid.dtype)

    return hook_fn
