"""Conditional steering (CAST, arXiv 2409.05907): steer a row only where a monitor rule fires.

A :class:`Condition` is a value monitor (:func:`value_lens.analysis.monitor.monitor`: the axis it
reads, its ``score_layer``, metric and aggregates) plus a rule (``vl.stop.below`` /
``vl.stop.above``, or any callable on a :class:`~value_lens.analysis.monitor.MonitorEvent`) and
where the rule is read:

* ``read="prompt"``: the aggregates run once over each row's prompt tokens, in the prompt pass.
  A row the rule fires on is steered throughout (at the selected positions), the others never.
* ``read="live"`` (a latch): after every generated token, as the monitor's stop rules are (the
  aggregates over the row's generated tokens so far). The first time the rule fires the row
  latches on and is steered from that token on, whatever the value does later.

Timing. The condition is read at ``blocks.{score_layer}.hook_resid_post``, before any steering
of that hook point by the same steering. A steered layer at or after ``score_layer`` sees the
latch flip in the same forward pass, so it steers the triggering token itself (with
``read="prompt"``, the prompt too); a layer before it has already run, so it starts one token
later (with ``read="prompt"``, at the first generated token). The rule is the same under the KV
cache and without it. Rows the rule never fires on meet hooks that return the residual untouched:
their generation is bit-identical to an unsteered one.

Each row's trigger, the relative index of the token whose value fired the rule (``-1``: the
prompt's last token; ``None``: never), is in
:meth:`~value_lens.steering.steer.Steering.trigger_steps`. The rule sees a ``MonitorEvent`` whose
``step`` is the index of the latest value among those the aggregates read (so ``after=`` counts
tokens in both modes), whose ``row`` is the row in its batch and whose ``token_id`` is ``-1``
(the hook reads activations, not tokens). One condition state lives per ``generate`` batch or
per ``with`` block.

Example:
    >>> import torch, value_lens as vl
    >>> from value_lens.testing import tiny_qwen3
    >>> model = tiny_qwen3()
    >>> axis = vl.ValueAxis(torch.randn(2, 64), model_id=model.cfg.model_name)
    >>> cond = Condition(vl.monitor(axis, 1, aggregate="max:1"), vl.stop.above("max", 9.0))
    >>> s = vl.steer(model, axis, layers=1, alpha=8.0, when=cond)
    >>> g = vl.generate(model, ["hi", "yo"], steer=s, max_new_tokens=3)
    >>> s.trigger_steps(g)  # a cosine never exceeds 9: no row is steered
    [None, None]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float

from value_lens.analysis.monitor import MonitorEvent
from value_lens.analysis.stop import StopRule
from value_lens.core.conventions import hook_name
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError
from value_lens.steering._hook import RunRecord, stream
from value_lens.steering.operator import StepContext

__all__ = ["Condition", "make_gate"]

_NEVER = 1 << 40


@dataclass(frozen=True)
class Condition:
    """When to steer a row: ``rule`` on ``monitor``'s aggregates, read on the prompt or live.

    Attributes:
        monitor: a :func:`value_lens.analysis.monitor.monitor` (axis, ``score_layer``, metric,
            aggregates); its on_token callback and thresholds are not used here.
        rule: e.g. ``vl.stop.below("ema", monitor.threshold)``.
        read: ``"live"`` (default; latches at the first token it fires on) or ``"prompt"``.
    """

    monitor: Any
    rule: StopRule
    read: Literal["prompt", "live"] = "live"

    def __post_init__(self) -> None:
        missing = [
            a
            for a in ("axis", "score_layer", "metric", "aggregates")
            if not hasattr(self.monitor, a)
        ]
        if missing:
            raise InputError(
                f"a Condition reads a value monitor (vl.monitor(axis, layer, aggregate=...)); "
                f"this object has no {missing}"
            )
        if not callable(self.rule):
            raise InputError(
                f"the condition's rule must be callable (vl.stop.above(...)), got {self.rule!r}"
            )
        if self.read not in ("prompt", "live"):
            raise InputError(f"read must be 'prompt' or 'live', got {self.read!r}")

    @property
    def layer(self) -> int:
        """The layer the condition is read at (the monitor's ``score_layer``)."""
        return int(self.monitor.score_layer)

    def check(self, model: HookedModel) -> None:
        """The monitor's axis must fit ``model``."""
        self.monitor.axis.check_compatible(model)

    def __repr__(self) -> str:
        return f"Condition({self.rule!r}, read={self.read!r}, layer={self.layer})"


class _Gate:
    """One activation's condition state: the read-only hook and each row's latch."""

    def __init__(self, cond: Condition, run: RunRecord, prompt_lens: Any, pads: Any) -> None:
        self.cond, self.run = cond, run
        self.stream = stream(prompt_lens, pads)
        self.trigger: list[int | None] = []
        self.history: list[list[float]] = []
        self.seen = 0  # generated positions read so far
        self.decided = False
        self.unit = cond.monitor.axis.direction(cond.layer).to(torch.float32)
        self.cache: dict[torch.device, torch.Tensor] = {}

    def hook(self) -> tuple[str, Any]:
        return hook_name(self.cond.layer), self.read

    def read(self, resid: torch.Tensor, hook: Any = None) -> None:  # noqa: ARG002 - TL contract
        batch, seq_len = resid.shape[0], resid.shape[1]
        offset, lens, pads = self.stream.locate(batch, seq_len)
        if not self.trigger:
            self.trigger = [None] * batch
            self.history = [[] for _ in range(batch)]
            self.run.trigger = self.trigger
        if self.cond.read == "prompt":
            if not self.decided:
                self._prompt(resid, offset, lens, pads)
            return
        widths = lens + pads
        if bool((widths != widths[0]).any()):
            raise InputError("a live condition needs left-padded rows of one width (generate's)")
        gen0 = offset - int(widths[0])  # generated index of hook position 0
        first = max(self.seen - gen0, -gen0, 0)
        if first >= seq_len:
            return
        if all(t is not None for t in self.trigger):
            self.seen = gen0 + seq_len
            return
        vals = self._values(resid[:, first:])
        for j in range(vals.shape[1]):
            for b in range(batch):
                if self.trigger[b] is None:
                    self.history[b].append(float(vals[b, j]))
                    if self._fires(b, gen0 + first + j, self.history[b]):
                        self.trigger[b] = gen0 + first + j
        self.seen = gen0 + seq_len

    def _prompt(
        self, resid: torch.Tensor, offset: int, lens: torch.Tensor, pads: torch.Tensor
    ) -> None:
        vals = self._values(resid)
        real = offset + torch.arange(resid.shape[1])[None, :] - pads[:, None]
        for b in range(resid.shape[0]):
            v = vals[b][(real[b] >= 0) & (real[b] < lens[b])].tolist()
            if v and self._fires(b, len(v) - 1, v):
                self.trigger[b] = -1
        self.decided = True

    def _values(self, resid: Float[torch.Tensor, "B T D"]) -> Float[torch.Tensor, "B T"]:
        """The monitor's metric (as :mod:`value_lens.analysis.monitor` computes it), on CPU."""
        u = self.cache.get(resid.device)
        if u is None:
            u = self.cache[resid.device] = self.unit.to(resid.device)
        h = resid.float()
        p = h @ u
        if self.cond.monitor.metric == "cosine":
            p = p / h.norm(dim=-1).clamp_min(1e-12)
        return p.double().cpu()

    def _fires(self, row: int, step: int, values: list[float]) -> bool:
        h = torch.tensor(values, dtype=torch.float64)
        mon = self.cond.monitor
        ev = MonitorEvent(
            row=row,
            step=step,
            token_id=-1,
            text="",
            values={self.cond.layer: values[-1]},
            aggregates={name: float(f(h)) for name, f in mon.aggregates.items()},
        )
        return bool(self.cond.rule(ev))

    def allowed(self, layer: int, ctx: StepContext, seq_len: int) -> Bool[torch.Tensor, "B T"]:
        """Positions a hook at ``layer`` may steer in this pass (see the module docstring)."""
        gen = ctx.generated(seq_len)
        if not self.trigger:  # nothing read yet: a layer below the condition's, first pass
            return torch.zeros_like(gen, dtype=torch.bool)
        before = layer < self.cond.layer
        start = []
        for t in self.trigger:
            if t is None:
                start.append(_NEVER)
            elif self.cond.read == "prompt":
                start.append(0 if before else -_NEVER)
            else:
                start.append(t + 1 if before else t)
        return gen >= torch.tensor(start, dtype=torch.long)[:, None]


def make_gate(cond: Condition, run: RunRecord, prompt_lens: Any, pads: Any) -> _Gate:
    """The per-activation state of ``cond``, writing each row's trigger into ``run``."""
    return _Gate(cond, run, prompt_lens, pads)
