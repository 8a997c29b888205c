"""Sampling ``n`` rollouts per problem in one set of decoding passes, and what each one records.

One :func:`value_lens.core.generate.generate` call per batch of rows records everything every
scorer needs, in the same KV-cached pass that writes the tokens:

* the value axis on every new token, through the monitor
  (:func:`value_lens.analysis.monitor.monitor`, :attr:`Sample.cosine` / :attr:`Sample.projection`);
* the per-token statistics of the logits that picked each token
  (``generate(token_stats=True)``: log-probability, entropy, self-certainty, DeepConf
  confidence; :attr:`Sample.token_stats`);
* the mean residual (and mean unit residual) over the new tokens at the hidden-state layers
  that probes and random directions read, through a read-only hook
  (:attr:`Sample.hidden_mean`, :attr:`Sample.unit_mean`).

The hook reads the residual of new token ``t`` in the forward pass that feeds ``t`` back in
(the monitor's convention, whose extra decoding step also reads the last kept token); the
prompt pass is skipped, so left padding never enters.

Each batch is one ``generate`` call of ``config.batch_size`` rows seeded ``config.seed + b``;
the rows are the problems in order, each repeated ``n`` times.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from jaxtyping import Int

from value_lens.analysis.monitor import monitor
from value_lens.core.conventions import hook_name
from value_lens.core.generate import GenerationConfig, generate
from value_lens.core.model import d_model, model_id, n_layers
from value_lens.core.progress import progress as progress_bar
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis

__all__ = [
    "Needs",
    "Sample",
    "Scorer",
    "Task",
    "default_prompt",
    "fill_missing",
    "rollout",
]


@dataclass(frozen=True)
class Needs:
    """What a scorer reads from a rollout (merged over scorers with ``|``).

    Attributes:
        axis: the value axis the monitor reads (one per run).
        value_layers: layers of ``axis`` to read on every new token.
        hidden_layers: layers whose mean residual over the new tokens is recorded.
        token_stats: whether the per-token logit statistics are needed.
    """

    axis: ValueAxis | None = None
    value_layers: frozenset[int] = frozenset()
    hidden_layers: frozenset[int] = frozenset()
    token_stats: bool = False

    def __or__(self, other: Needs) -> Needs:
        if self.axis is not None and other.axis is not None and self.axis is not other.axis:
            if not torch.equal(self.axis.directions, other.axis.directions):
                raise InputError(
                    "the value scorers use different axes; one run reads one axis (monitor), "
                    "so score each axis in its own best_of_n call"
                )
        return Needs(
            self.axis if self.axis is not None else other.axis,
            self.value_layers | other.value_layers,
            self.hidden_layers | other.hidden_layers,
            self.token_stats or other.token_stats,
        )


@dataclass(frozen=True, eq=False)
class Sample:
    """One rollout of one problem and what was recorded while it was written.

    Attributes:
        problem: the problem's index; index: the sample's index within its problem.
        text: the new text; output_ids: ``[n]`` new token ids (stop token excluded).
        hit_limit: the token budget ran out before a stop token.
        answer: the vote key the task's ``answer`` read from ``text`` (``None``: no answer).
        correct: the checker's verdict (1.0 / 0.0, or a fraction).
        cosine, projection: ``{layer: [n]}`` the value axis on each new token.
        token_stats: ``{name: [n]}`` logit statistics of each new token.
        hidden_mean, unit_mean: ``{layer: [d_model]}`` the mean residual and the mean of
            ``h / |h|`` over the new tokens (NaN when there are none). ``u . unit_mean`` is
            the mean cosine with a unit direction ``u``.
        prompt_ids: the prompt's token ids (no padding).
    """

    problem: int
    index: int
    text: str
    output_ids: Int[torch.Tensor, " N"]
    hit_limit: bool
    answer: Any
    correct: float
    cosine: dict[int, torch.Tensor] = field(default_factory=dict)
    projection: dict[int, torch.Tensor] = field(default_factory=dict)
    token_stats: dict[str, torch.Tensor] = field(default_factory=dict)
    hidden_mean: dict[int, torch.Tensor] = field(default_factory=dict)
    unit_mean: dict[int, torch.Tensor] = field(default_factory=dict)
    prompt_ids: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def n_tokens(self) -> int:
        """Number of new tokens."""
        return int(self.output_ids.numel())


def default_prompt(problem: Any) -> Any:
    """A problem's prompt: ``problem["prompt"]`` as given, ``problem["question"]`` as one user
    message, a string or a message list as is."""
    if isinstance(problem, Mapping):
        if "prompt" in problem:
            return problem["prompt"]
        if "question" in problem:
            return [{"role": "user", "content": str(problem["question"])}]
        raise InputError("a problem dict needs a 'prompt' or a 'question'; or pass prompt=")
    return problem


@dataclass(frozen=True)
class Task:
    """How to prompt, read and check a problem.

    Attributes:
        check: ``(problem, text) -> bool`` (or a fraction): is this reply correct?
        answer: ``(text) -> key`` for votes (``None`` abstains); default the stripped text.
        prompt: ``(problem) -> prompt`` for ``generate``; default :func:`default_prompt`.
    """

    check: Callable[[Any, str], Any]
    answer: Callable[[str], Hashable | None] | None = None
    prompt: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if not callable(self.check):
            raise InputError("check= must be a callable (problem, text) -> bool")

    def answer_of(self, text: str) -> Hashable | None:
        return text.strip() if self.answer is None else self.answer(text)

    def prompt_of(self, problem: Any) -> Any:
        return (self.prompt or default_prompt)(problem)


@runtime_checkable
class Scorer(Protocol):
    """What :func:`value_lens.decode.run.best_of_n` needs from a scorer."""

    @property
    def needs(self) -> Needs: ...

    def score(self, samples: Sequence[Sample]) -> np.ndarray: ...


def fill_missing(col: np.ndarray) -> np.ndarray:
    """NaN (nothing to score) -> just below the lowest finite score."""
    ok = np.isfinite(col)
    floor = float(col[ok].min()) - 1.0 if ok.any() else 0.0
    return np.where(ok, col, floor)


class _HiddenReader:
    """Read-only hooks: the residual of each new position at ``layers`` (prompt pass skipped)."""

    def __init__(self, layers: Sequence[int], d: int) -> None:
        self.layers, self.d = list(layers), d
        self.steps: dict[int, list[torch.Tensor]] = {la: [] for la in self.layers}
        self.calls = dict.fromkeys(self.layers, 0)

    def hooks(self) -> list[tuple[str, Callable[..., None]]]:
        return [(hook_name(la), self._hook(la)) for la in self.layers]

    def _hook(self, layer: int) -> Callable[..., None]:
        def read(resid: torch.Tensor, hook: Any = None) -> None:  # noqa: ARG001 - TL contract
            self.calls[layer] += 1
            if self.calls[layer] > 1:  # the newest position: the token fed back in
                self.steps[layer].append(resid[:, -1].detach().float().cpu())

        return read

    def means(self, row: int, n: int) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        mean, unit = {}, {}
        for la in self.layers:
            got = len(self.steps[la])
            if got < n:
                raise InputError(f"layer {la}: {n} new tokens but {got} residuals read")
            if n == 0:
                mean[la] = unit[la] = torch.full((self.d,), float("nan"))
                continue
            h = torch.stack([s[row] for s in self.steps[la][:n]])
            mean[la] = h.mean(0)
            unit[la] = (h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)).mean(0)
        return mean, unit


def _monitor_axis(model: GenerativeModel, needs: Needs) -> tuple[ValueAxis, list[int]] | None:
    """The axis and layers to monitor; a placeholder axis when only hidden states are read
    (the monitor's extra step is what reads the last kept token)."""
    if needs.value_layers:
        if needs.axis is None:
            raise InputError("a value scorer needs an axis")
        return needs.axis, sorted(needs.value_layers)
    if needs.hidden_layers:
        ones = torch.ones(n_layers(model), d_model(model))
        return ValueAxis(ones, model_id=model_id(model)), [min(needs.hidden_layers)]
    return None


def _batches(rows: list[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def rollout(
    model: GenerativeModel,
    problems: Sequence[Any],
    n: int,
    needs: Needs,
    task: Task,
    config: GenerationConfig,
    *,
    progress: bool = False,
    store: Any = None,
) -> list[Sample]:
    """``n`` samples of every problem with what ``needs`` asks for, in problem order.

    ``store``: a :class:`~value_lens.decode.store.RolloutStore` of this run: each finished batch
    is saved there, and batches it already holds are read back instead of generated.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n must be an int >= 1, got {n!r}")
    if len(problems) == 0:
        raise InputError("problems is empty")
    if n > 1 and config.temperature == 0:
        raise InputError("greedy decoding gives n identical samples; set temperature > 0")
    watched = _monitor_axis(model, needs)
    rows = [(p, s) for p in range(len(problems)) for s in range(n)]
    batches = list(_batches(rows, config.batch_size))
    if progress:
        batches = list(progress_bar(batches, desc="rollouts", unit="batch"))
    saved = store
    out: list[Sample] = []
    for b, batch in enumerate(batches):
        if saved is not None and saved.has(b):
            out += saved.load(b, problems, task)
            continue
        prompts = [task.prompt_of(problems[p]) for p, _ in batch]
        cfg = config.with_overrides(batch_size=len(batch), seed=config.seed + b)
        reader = _HiddenReader(sorted(needs.hidden_layers), d_model(model))
        extra: dict[str, Any] = {"token_stats": True} if needs.token_stats else {}
        if watched is not None:
            extra["monitor"] = monitor(watched[0], watched[1])
        with contextlib.ExitStack() as stack:
            if reader.layers:
                stack.enter_context(model.hooks(fwd_hooks=reader.hooks()))
            gens = generate(model, prompts, cfg, **extra)
        done = [
            _sample(problems[p], p, s, j, g, needs, reader, task)
            for j, ((p, s), g) in enumerate(zip(batch, gens, strict=True))
        ]
        if saved is not None:
            saved.save(b, done)
        out += done
    return out


def _sample(
    problem: Any,
    p: int,
    s: int,
    row: int,
    g: Any,
    needs: Needs,
    reader: _HiddenReader,
    task: Task,
) -> Sample:
    n_new, start = g.n_tokens, int(g.prompt_ids.numel())
    cos: dict[int, torch.Tensor] = {}
    proj: dict[int, torch.Tensor] = {}
    for la in sorted(needs.value_layers):
        r = g.trace.row(la)
        cos[la] = g.trace.cosine[r, start:].double()
        proj[la] = g.trace.projection[r, start:].double()
    stats: dict[str, torch.Tensor] = {}
    if needs.token_stats:
        got = getattr(g, "token_stats", None)
        if not got:
            raise InputError("generate returned no token_stats; this value_lens is too old")
        stats = {k: torch.as_tensor(v, dtype=torch.float64).reshape(-1) for k, v in got.items()}
    mean, unit = reader.means(row, n_new) if reader.layers else ({}, {})
    return Sample(
        problem=p,
        index=s,
        text=g.text,
        output_ids=g.output_ids,
        hit_limit=bool(g.hit_limit),
        answer=task.answer_of(g.text),
        correct=float(task.check(problem, g.text)),
        cosine=cos,
        projection=proj,
        token_stats=stats,
        hidden_mean=mean,
        unit_mean=unit,
        prompt_ids=g.prompt_ids,
    )
