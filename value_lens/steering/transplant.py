"""Value transplant (Jiang & Roger, 2026): move a host's live projection toward a donor's.

:func:`transplant` runs donor and host prompts as pairs in one left-padded batch and one
KV-cached decoding pass. At every steered position of a host row, at each steered layer,

    h_H += lam * (s_D - s_H) * u

where ``u`` is the unit axis direction, ``s_H = h_H . u`` the host's projection and ``s_D`` the
projection of its paired donor row *at the same position of the same forward pass and layer*,
read live (donor rows are never changed). Positions pair up by column of the batch:

* generated tokens pair by generated-token index (every row of a batch is at the same decoding
  step);
* prompt positions (steered only with ``positions="all"``, ``"prompt"`` or ``"from:k"``; the
  default ``"generated"`` leaves prompts alone) pair from the end: the host's last prompt token
  with the donor's last, and so on; a host prompt token with no donor token at that distance
  from the end (a longer host prompt) is left alone.

A pair is transplanted only while both rows are writing: from the token at which the donor or
the host produced its stop token, the host is left alone (the donor's projection after its own
end is not a reply). Watching for stop tokens takes one more decoding step (as a monitored
``generate`` does); with ``stop_at_eos=False`` no row stops and the step is saved. The constant-push control of matched average size (``control=True``)
reruns the same batch with each host pushed by a constant ``alpha * u`` per layer, ``alpha``
being the mean of ``lam * (s_D - s_H)`` over that host's transplanted tokens; donors stay
unsteered in both runs.

Example:
    >>> import torch, value_lens as vl
    >>> from value_lens.testing import tiny_qwen3
    >>> model = tiny_qwen3()
    >>> axis = vl.ValueAxis(torch.randn(2, 64), model_id=model.cfg.model_name)
    >>> out = transplant(model, axis, ["honest donor"], ["cheating host"], layers=1, lam=1.0,
    ...                  max_new_tokens=4)
    >>> len(out), len(out.donors), list(out.pushes.columns)[:3]
    (1, 1, ['host', 'layer', 'moved'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import torch
from jaxtyping import Float

from value_lens.core.generate import Generation, GenerationConfig, generate
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.steering._resolve import AxisLike
from value_lens.steering.operator import Operator, StepContext, StrengthSpec, num, strength_field
from value_lens.steering.positions import PositionSpec
from value_lens.steering.steer import Steering, steer

__all__ = ["RowPush", "Transplant", "Transplanted", "transplant"]

_NEVER = 1 << 40


class PairEnds:
    """Per (donor, host) pair: the generated-token index at which it stops being transplanted."""

    def __init__(self, n_pairs: int) -> None:
        self.rows = [_NEVER] * n_pairs


def _pairs(h: torch.Tensor) -> None:
    if h.shape[0] % 2:
        raise InputError(
            f"a transplant batch holds (donor, host) row pairs; got {h.shape[0]} rows. Use "
            "vl.transplant(...), which builds the pairs"
        )


@dataclass(frozen=True)
class Transplant(Operator):
    """``h_H += lam (s_D - s_H) u`` on the odd rows, reading the even row before each.

    Not a registered mode: it needs rows in (donor, host) pairs, which :func:`transplant` builds.
    """

    name: ClassVar[str] = "transplant"
    neutral: ClassVar[float | None] = 0.0
    lam: StrengthSpec = strength_field(1.0, unit=False)
    ends: PairEnds | None = field(default=None, compare=False, repr=False)

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        """One plain forward pass over unpadded pairs (every position a prompt position)."""
        b, t = h.shape[0], h.shape[1]
        full = torch.full((b,), t, dtype=torch.long)
        return self.apply(h, u, StepContext(-1, 0, full, torch.zeros_like(full)))

    def apply(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"], ctx: StepContext
    ) -> Float[torch.Tensor, "B T D"]:
        _pairs(h)
        seq_len = h.shape[1]
        ok = ctx.real(seq_len)[0::2] >= 0  # the donor has a real token at that column
        if self.ends is not None:
            ends = torch.tensor(self.ends.rows, dtype=torch.long)[:, None]
            ok &= ctx.generated(seq_len)[1::2] < ends
        p = h @ u
        push = num(self.lam) * (p[0::2] - p[1::2]) * ok.to(h.device)
        delta = torch.zeros_like(p)
        delta[1::2] = push
        return h + delta[..., None] * u


@dataclass(frozen=True)
class RowPush(Operator):
    """A constant push per row of the batch, ``h_b + alphas[b] u`` (the transplant's control)."""

    name: ClassVar[str] = "row_push"
    alphas: tuple[float, ...] = ()

    def __call__(
        self, h: Float[torch.Tensor, "B T D"], u: Float[torch.Tensor, " D"]
    ) -> Float[torch.Tensor, "B T D"]:
        if h.shape[0] != len(self.alphas):
            raise InputError(f"RowPush has {len(self.alphas)} strengths for {h.shape[0]} rows")
        a = torch.tensor(self.alphas, dtype=h.dtype, device=h.device)
        return h + a[:, None, None] * u


class _Watch:
    """The ``generate(monitor=...)`` slot: reads each new token to end pairs at a stop token,
    and passes a user's monitor through."""

    def __init__(self, ends: PairEnds, inner: Any) -> None:
        self.ends, self.inner = ends, inner

    @contextlib.contextmanager
    def activate(self, model: Any, **kw: Any) -> Iterator[Any]:
        width = int((kw["prompt_lens"] + kw["pads"]).max())
        inner = self.inner.activate(model, **kw) if self.inner else contextlib.nullcontext()
        with inner as run:
            yield _WatchRun(self.ends, width, set(kw["stop_ids"]), run, len(kw["rows"]))


class _WatchRun:
    def __init__(self, ends: PairEnds, width: int, stop: set[int], inner: Any, n: int) -> None:
        from transformers import StoppingCriteria

        self.inner, self.n = inner, n
        inner_crit = None if inner is None else inner.criterion

        class _Ends(StoppingCriteria):  # type: ignore[misc]
            def __call__(self, input_ids: torch.Tensor, scores: Any, **kw: Any) -> torch.Tensor:
                step = input_ids.shape[1] - 1 - width
                last = input_ids[:, -1].tolist()
                for row, tok in enumerate(last):
                    if tok in stop and ends.rows[row // 2] > step:
                        ends.rows[row // 2] = step
                if inner_crit is not None:
                    return inner_crit(input_ids, scores, **kw)
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        self.criterion = _Ends()

    def stopped(self) -> list[int | None]:
        return [None] * self.n if self.inner is None else self.inner.stopped()

    def traces(self, token_ids: Sequence[torch.Tensor]) -> list[Any]:
        return [None] * self.n if self.inner is None else self.inner.traces(token_ids)


class Transplanted(list[Generation]):
    """The host rows' generations (a list, as ``generate`` returns), plus:

    Attributes:
        donors: the donor rows' generations (from the same pass).
        pushes: one row per (host, layer): ``moved`` (tokens transplanted), ``mean_push`` (mean of
            ``lam (s_D - s_H)`` over them) and ``mean_abs_push``.
        steering: the transplant's :class:`~value_lens.steering.steer.Steering`.
        control: with ``control=True``, the hosts under the matched constant push, else None.
    """

    def __init__(
        self,
        hosts: Sequence[Generation],
        donors: Sequence[Generation],
        pushes: pd.DataFrame,
        steering: Steering,
        control: Sequence[Generation] | None = None,
    ) -> None:
        super().__init__(hosts)
        self.donors = list(donors)
        self.pushes = pushes
        self.steering = steering
        self.control = None if control is None else list(control)


def _push_table(st: Steering) -> pd.DataFrame:
    rep = st.report()
    rep = rep[rep["row"] % 2 == 1].copy()
    rep["host"] = rep["row"] // 2
    n = rep["moved"].where(rep["moved"] > 0)
    rep["mean_push"] = (rep["push"] / n).fillna(0.0)
    rep["mean_abs_push"] = (rep["push_abs"] / n).fillna(0.0)
    return rep[["host", "layer", "moved", "mean_push", "mean_abs_push"]].reset_index(drop=True)


def _paired(donors: Sequence[Any], hosts: Sequence[Any]) -> list[Any]:
    donors, hosts = list(donors), list(hosts)
    if not hosts:
        raise InputError("transplant needs at least one host prompt")
    if len(donors) == 1:
        donors = donors * len(hosts)
    if len(donors) != len(hosts):
        raise InputError(
            f"got {len(donors)} donor prompts for {len(hosts)} hosts; pass one donor per host "
            "(or a single donor for all)"
        )
    return [x for pair in zip(donors, hosts, strict=True) for x in pair]


def transplant(
    model: GenerativeModel,
    axis: AxisLike,
    donor_prompts: Sequence[Any],
    host_prompts: Sequence[Any],
    *,
    layers: int | Sequence[int],
    lam: float = 1.0,
    positions: PositionSpec = "generated",
    config: GenerationConfig | None = None,
    control: bool = False,
    monitor: Any = None,
    token_stats: bool = False,
    **overrides: Any,
) -> Transplanted:
    """Generate each host with its donor's live projection transplanted (module docstring).

    Args:
        model: a TransformerBridge.
        axis: the axis (a ValueAxis fitted on ``model`` or a direction tensor).
        donor_prompts, host_prompts: prompts as ``generate`` takes them, one donor per host (or
            one donor for every host).
        layers: the layers to transplant at; lam: the fraction of the gap closed per layer.
        positions: which host positions are moved (default ``"generated"``).
        config, overrides: generation settings as in ``generate`` (``max_new_tokens=...``);
            ``batch_size`` is set to hold every pair in one batch.
        control: also run the matched constant-push control (``result.control``).
        monitor: a ``vl.monitor`` reading every row of the transplant pass and of the control
            (row order: donor 0, host 0, donor 1, ...).
        token_stats: fill each generation's ``token_stats`` (as ``generate`` does).

    Returns:
        A :class:`Transplanted` list of the hosts' generations.
    """
    prompts = _paired(donor_prompts, host_prompts)
    cfg = (config or GenerationConfig()).with_overrides(**overrides, batch_size=len(prompts))
    ends = PairEnds(len(prompts) // 2)
    op = Transplant(lam=lam, ends=ends)
    st = steer(model, axis, layers=layers, mode=op, positions=positions)
    # the watch ends pairs at stop tokens; it costs one decoding step (generate's monitor step),
    # so it runs only when rows can stop or a monitor was asked for
    watch = _Watch(ends, monitor) if cfg.stop_at_eos or monitor is not None else None
    gens = generate(model, prompts, cfg, steer=st, monitor=watch, token_stats=token_stats)
    pushes = _push_table(st)
    ctrl = None
    if control:
        steers = []
        for layer in st.layers:
            per = pushes[pushes["layer"] == layer].sort_values("host")["mean_push"].tolist()
            alphas = tuple(a for m in per for a in (0.0, float(m)))
            steers.append(
                steer(model, axis, layers=layer, mode=RowPush(alphas), positions=positions)
            )
        ctrl = generate(
            model, prompts, cfg, steer=steers, monitor=monitor, token_stats=token_stats
        )[1::2]
    return Transplanted(gens[1::2], gens[0::2], pushes, st, ctrl)
