"""Live value monitoring: read the axis on every token while the model writes, in the same pass.

``vl.generate(model, prompts, monitor=vl.monitor(axis, 20))`` installs one read-only hook per
monitored layer on ``blocks.{layer}.hook_resid_post``. Each forward pass of the KV-cached decoding
loop reports only its *new* positions: the whole (left-padded) prompt on the first step, then one
token per row. Nothing is run twice; :attr:`Generation.trace` is then a
:class:`~value_lens.analysis.readout.ValueTrace` over the prompt plus the kept new tokens, equal to
``vl.trace`` of the same ids up to float rounding. The hooks are installed after any
``steer=`` hooks, so at a layer where both act the monitor reads the steered residual.

After every new token a monitor with ``on_token`` or a stop rule (``generate(stop_when=...)``)
builds a :class:`MonitorEvent` (row, step, token, values per layer and the aggregates of the
``score_layer`` values over the new tokens so far, see :mod:`value_lens.analysis.stop`), calls
``on_token(event)`` and ends the row when a rule is met. The event of token ``t`` comes one step
late, from the forward pass that feeds ``t`` back in: a row's last kept token needs one decoding
step more than ``max_new_tokens``, whose token is dropped. A stopped row saves no compute in a
static batch, so the cost to report is the number of tokens generated (:func:`tokens_generated`).

>>> import torch, value_lens as vl
>>> from value_lens.testing import tiny_qwen3
>>> model = tiny_qwen3()
>>> axis = vl.ValueAxis(torch.randn(2, 64), model_id=model.cfg.model_name)
>>> g = vl.generate(model, "hi", monitor=monitor(axis, 1), max_new_tokens=4)[0]
>>> g.trace.cosine.shape == (1, g.prompt_ids.numel() + g.n_tokens)
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float

from value_lens.analysis.readout import ValueTrace
from value_lens.analysis.stop import Aggregator, Side, StopRule, Unit, parse_aggregate
from value_lens.core.conventions import hook_name, resolve_layers
from value_lens.core.protocols import HookedModel
from value_lens.errors import CalibrationError, InputError
from value_lens.fitting.axis import ValueAxis

__all__ = ["Monitor", "MonitorEvent", "monitor", "tokens_generated"]

Metric = Literal["cosine", "projection"]


@dataclass(frozen=True)
class MonitorEvent:
    """One new token of one row, as ``on_token`` and the stop rules see it.

    Attributes:
        row: the prompt's index in the ``generate`` call.
        step: the token's index among the row's new tokens (0-based).
        token_id, text: the token and its decoded text.
        values: ``{layer: value}`` (the monitor's metric) at every monitored layer.
        aggregates: ``{name: aggregate}`` over the row's ``score_layer`` values so far.
    """

    row: int
    step: int
    token_id: int
    text: str
    values: dict[int, float]
    aggregates: dict[str, float]


@dataclass(eq=False)
class Monitor:
    """A value monitor for ``generate(monitor=...)``: build it with :func:`monitor`.

    Attributes:
        axis, layers, metric, score_layer: what is read, where, and which layer's values the
            aggregates (and so the stop rules) see.
        aggregates: ``{name: (values) -> float}``.
        on_token: called with each :class:`MonitorEvent`, or ``None``.
        thresholds: ``{aggregate: threshold}`` set by :meth:`calibrate`.
        calibration: the record of the last :meth:`calibrate` (the rate controlled, the
            held-out rates), or ``None``.
    """

    axis: ValueAxis
    layers: list[int]
    metric: Metric
    score_layer: int
    aggregates: dict[str, Aggregator]
    on_token: Callable[[MonitorEvent], Any] | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    calibration: Any = None

    @property
    def threshold(self) -> float:
        """The calibrated threshold of the first aggregate (call :meth:`calibrate` first)."""
        first = next(iter(self.aggregates))
        if first not in self.thresholds:
            raise CalibrationError("this monitor is not calibrated; call mon.calibrate(...) first")
        return self.thresholds[first]

    def calibrate(
        self,
        model: HookedModel,
        neutral_texts: Sequence[Any],
        *,
        fpr: float = 0.01,
        direction: Side = "below",
        unit: Unit = "response",
        after: int = 0,
        held_out: Sequence[Any] | None = None,
    ) -> dict[str, float]:
        """Set each aggregate's threshold at false-positive rate ``fpr`` on neutral text.

        Every neutral text is read like a generation: each aggregate is evaluated after each of
        its tokens, and only tokens from position ``after`` on count (as in
        ``vl.stop.below(name, thr, after=after)``).

        * ``unit="response"`` (default): the threshold is the ``fpr`` quantile of each text's
          most extreme aggregate (its minimum for ``direction="below"``), so the rule
          ``vl.stop.below(name, mon.thresholds[name], after=after)`` stops fewer than ``fpr`` of
          the neutral texts: the rate a probe monitor reports.
        * ``unit="token"``: the ``fpr`` quantile of all tokens' aggregates pooled, which flags
          fewer than ``fpr`` of the neutral tokens but stops many more texts.

        With ``held_out`` neutral texts the rates are measured there, with intervals
        (:func:`~value_lens.analysis.stop.false_positive_rate`). The thresholds are returned
        and stored on the monitor; ``mon.calibration`` holds the full record
        (:class:`~value_lens.analysis.monitor_calibration.MonitorCalibration`, whose printout
        names the rate controlled).
        """
        from value_lens.analysis.monitor_calibration import calibrate_monitor

        self.calibration = calibrate_monitor(
            self,
            model,
            neutral_texts,
            fpr=fpr,
            direction=direction,
            unit=unit,
            after=after,
            held_out=held_out,
        )
        self.thresholds = dict(self.calibration.thresholds)
        return dict(self.thresholds)

    @contextlib.contextmanager
    def activate(
        self,
        model: HookedModel,
        *,
        prompt_lens: torch.Tensor,
        pads: torch.Tensor,
        rows: Sequence[int],
        max_new_tokens: int,
        stop_ids: Sequence[int],
        stop_when: Any,
    ) -> Iterator[_Run]:
        """Install the hooks for one ``generate`` batch (called by ``generate`` itself)."""
        self.axis.check_compatible(model)
        rules = [] if stop_when is None else _rules(stop_when)
        run = _Run(self, model, prompt_lens, pads, list(rows), max_new_tokens, stop_ids, rules)
        with model.hooks(fwd_hooks=run.hooks()):
            yield run


def _rules(stop_when: Any) -> list[StopRule]:
    rules = list(stop_when) if isinstance(stop_when, Sequence) else [stop_when]
    for r in rules:
        if not callable(r):
            raise InputError(f"stop_when takes vl.stop.below(...)-style rules, got {r!r}")
    return rules


class _Run:
    """One batch: per-layer value records, and the per-step criterion (events, stop rules)."""

    def __init__(
        self,
        mon: Monitor,
        model: HookedModel,
        prompt_lens: torch.Tensor,
        pads: torch.Tensor,
        rows: list[int],
        max_new: int,
        stop_ids: Sequence[int],
        rules: list[StopRule],
    ) -> None:
        self.mon, self.model, self.rows, self.max_new = mon, model, rows, max_new
        self.pads = pads.reshape(-1).long().cpu()
        self.width = int((prompt_lens.reshape(-1).cpu() + self.pads).max())
        self.stop_ids, self.rules = set(stop_ids), rules
        self.chunks: dict[int, list[torch.Tensor]] = {layer: [] for layer in mon.layers}
        self.seen = dict.fromkeys(mon.layers, 0)
        self.ruled: list[int | None] = [None] * len(rows)
        self.criterion: Any = None
        if mon.on_token is not None or rules:
            self.criterion = _criterion(self)

    def hooks(self) -> list[tuple[str, Callable[..., None]]]:
        return [(hook_name(layer), self._hook(layer)) for layer in self.mon.layers]

    def _hook(self, layer: int) -> Callable[..., None]:
        unit = self.mon.axis.direction(layer)
        cache: dict[torch.device, torch.Tensor] = {}

        def read(resid: torch.Tensor, hook: Any = None) -> None:  # noqa: ARG001 - TL contract
            seen, n = self.seen[layer], resid.shape[1]
            new = resid if seen == 0 or n == 1 else resid[:, seen:]  # no-cache: a full recompute
            self.seen[layer] = seen + new.shape[1] if seen else n
            u = cache.get(resid.device)
            if u is None:
                u = cache[resid.device] = unit.to(resid.device, torch.float32)
            h = new.float()
            p = h @ u
            self.chunks[layer].append(torch.stack([p / h.norm(dim=-1).clamp_min(1e-12), p], -1))

        return read

    def latest(self) -> torch.Tensor:
        """``[B, n_layers, 2]`` (cosine, projection) of the last position read at every layer."""
        return torch.stack([self.chunks[layer][-1][:, -1] for layer in self.mon.layers], 1).cpu()

    def stopped(self) -> list[int | None]:
        return list(self.ruled)

    def traces(self, token_ids: Sequence[torch.Tensor]) -> list[ValueTrace]:
        """Per row, the trace over ``token_ids[row]`` (its prompt then its kept new tokens)."""
        vals = torch.stack([torch.cat(self.chunks[la], 1) for la in self.mon.layers], 1).cpu()
        tok, out = self.model.tokenizer, []
        for j, ids in enumerate(token_ids):
            start = int(self.pads[j])
            v = vals[j, :, start : start + ids.numel()]
            if v.shape[1] != ids.numel():
                raise InputError(f"row {j}: {ids.numel()} tokens but {v.shape[1]} values read")
            offsets = torch.full((ids.numel(), 2), -1, dtype=torch.long)
            tokens = [tok.decode([i]) for i in ids.tolist()]
            mid = str(self.mon.axis.model_id)
            layers = list(self.mon.layers)
            out.append(ValueTrace(tokens, ids, layers, v[..., 0], v[..., 1], offsets, "", mid))
        return out


def _criterion(run: _Run) -> Any:
    from transformers import StoppingCriteria

    mon, metric = run.mon, 0 if run.mon.metric == "cosine" else 1
    score = mon.layers.index(mon.score_layer)
    active = [True] * len(run.rows)
    history: list[list[float]] = [[] for _ in run.rows]
    tok = run.model.tokenizer

    class _Step(StoppingCriteria):  # type: ignore[misc]
        calls = 0

        def __call__(self, input_ids: torch.Tensor, scores: Any, **kw: Any) -> torch.Tensor:  # noqa: ARG002
            i, self.calls = self.calls, self.calls + 1
            ids = input_ids[:, run.width :].cpu()
            vals = run.latest()[..., metric] if i >= 1 and any(active) else None
            for j in range(len(run.rows)):
                if active[j] and vals is not None:
                    if _event(j, i - 1, int(ids[j, i - 1]), vals[j]):
                        run.ruled[j], active[j] = i, False
                if active[j] and (int(ids[j, i]) in run.stop_ids or i >= run.max_new):
                    active[j] = False
            return torch.tensor([not a for a in active], device=input_ids.device)

    def _event(j: int, step: int, token: int, vals: torch.Tensor) -> bool:
        history[j].append(float(vals[score]))
        h = torch.tensor(history[j], dtype=torch.float64)
        ev = MonitorEvent(
            row=run.rows[j],
            step=step,
            token_id=token,
            text=tok.decode([token]),
            values={la: float(vals[k]) for k, la in enumerate(mon.layers)},
            aggregates={name: float(f(h)) for name, f in mon.aggregates.items()},
        )
        if mon.on_token is not None:
            mon.on_token(ev)
        return any(rule(ev) for rule in run.rules)

    return _Step()


def calibration_scores(
    mon: Monitor, model: HookedModel, texts: Sequence[Any], *, after: int = 0
) -> dict[str, Float[torch.Tensor, " N"]]:
    """Each aggregate after each token (from token ``after`` on) of each neutral text, pooled
    (the per-token view; :meth:`Monitor.calibrate` works per response by default)."""
    from value_lens.analysis.monitor_calibration import aggregate_traces

    pooled = {n: [x[after:] for x in xs] for n, xs in aggregate_traces(mon, model, texts).items()}
    if not any(x.size for x in pooled[next(iter(pooled))]):
        raise InputError(f"the neutral texts have no token at or after position {after}")
    return {n: torch.tensor(np.concatenate(x), dtype=torch.float64) for n, x in pooled.items()}


def monitor(
    axis: ValueAxis,
    layers: int | Iterable[int] | None = None,
    *,
    metric: Metric = "cosine",
    aggregate: str | Aggregator | Mapping[str, str | Aggregator] | None = None,
    on_token: Callable[[MonitorEvent], Any] | None = None,
    score_layer: int | None = None,
) -> Monitor:
    """A value monitor for ``vl.generate(model, prompts, monitor=...)``.

    Args:
        axis: the fitted axis; layers: where to read it (default: every fitted layer).
        metric: ``"cosine"`` (the paper's Eq. 2) or ``"projection"``; what events and
            aggregates see (the trace holds both).
        aggregate: ``{name: spec}`` with specs as in :mod:`value_lens.analysis.stop`
            (``"ema:0.9"``, ``"mean:32"``, ``"max:32"``, ``"min:32"`` or a callable); default
            ``{"ema": "ema:0.9"}``. One spec alone is named after its kind.
        on_token: called with a :class:`MonitorEvent` for every new token of every row.
        score_layer: the layer whose values feed the aggregates (default: the first layer).
    """
    sel = list(axis.layers) if layers is None else resolve_layers(layers, axis.n_layers)
    for layer in sel:
        axis.direction(layer)  # raises for unfitted layers
    if metric not in ("cosine", "projection"):
        raise InputError(f"metric must be 'cosine' or 'projection', got {metric!r}")
    specs: Mapping[str, str | Aggregator]
    if aggregate is None:
        specs = {"ema": "ema:0.9"}
    elif isinstance(aggregate, Mapping):
        specs = aggregate
    else:
        specs = {aggregate.partition(":")[0] if isinstance(aggregate, str) else "agg": aggregate}
    if not specs:
        raise InputError("aggregate must name at least one aggregator")
    score = sel[0] if score_layer is None else score_layer
    if score not in sel:
        raise InputError(f"score_layer {score} is not among the monitored layers {sel}")
    aggs = {str(n): parse_aggregate(s) for n, s in specs.items()}
    return Monitor(axis, sel, metric, score, aggs, on_token)


def tokens_generated(gens: Sequence[Any]) -> dict[str, Any]:
    """The cost of a (possibly early-stopped) run: new tokens per row and in total.

    >>> tokens_generated([])
    {'per_row': [], 'total': 0}
    """
    per_row = [int(g.n_tokens) for g in gens]
    return {"per_row": per_row, "total": sum(per_row)}
