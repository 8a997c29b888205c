"""Shared pieces of the comparisons: prompts with options, chat rendering, span readouts.

Every chat is rendered with the model's own template and ``enable_thinking=False`` (the paper's
setting), and token selections are made from character spans of the rendered text (never by
searching the whole conversation for a string).

Example:
    >>> p = list_prompt(["kite", "lamp", "river"])
    >>> p.messages[-1]["content"]
    'Here are the items:\\n1. kite\\n2. lamp\\n3. river'
    >>> p.options
    ('kite', 'lamp', 'river')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from value_lens.core.chat import ChatText, format_chat
from value_lens.core.hooks import run_resid_hooks
from value_lens.core.model import encode, model_device
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError

__all__ = [
    "CompareResult",
    "OptionPrompt",
    "as_models",
    "as_prompts",
    "batch_readout",
    "fieller_ratio_ci",
    "mean_t_ci",
    "list_prompt",
    "render",
    "token_mask",
    "word_spans",
]

Message = Mapping[str, str]


@dataclass(frozen=True, eq=False)
class CompareResult:
    """What every comparison returns.

    Attributes:
        table: the tidy per-item rows (one row per model and prompt, sentence, ...).
        summary: the aggregate rows with their 95% bootstrap CIs.
        figure: a plotly figure of ``summary``.
        settings: the settings the comparison ran with (layer, metric, templates, ...).
        extras: further tidy tables (e.g. every option's score).
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    figure: Any
    settings: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class OptionPrompt:
    """A chat (ending with the user message that lists the options) and its options.

    ``target`` is the preferred item, when the prompt carries one.
    """

    messages: tuple[Message, ...]
    options: tuple[str, ...]
    target: str | None = None

    def __post_init__(self) -> None:
        if not self.messages or self.messages[-1].get("role") != "user":
            raise InputError("an option prompt's messages must end with the user message")
        if len(self.options) < 2:
            raise InputError(f"a prompt needs at least two options, got {list(self.options)}")
        if len(set(self.options)) != len(self.options):
            raise InputError(f"the options repeat an item: {list(self.options)}")
        if self.target is not None and self.target not in self.options:
            raise InputError(f"the target {self.target!r} is not among {list(self.options)}")


def list_prompt(
    options: Sequence[str],
    *,
    system: str | None = None,
    intro: str = "Here are the items:\n",
    target: str | None = None,
) -> OptionPrompt:
    """A numbered-list prompt in the paper's user format (``intro`` then one item a line)."""
    opts = tuple(str(o) for o in options)
    user = intro + "\n".join(f"{i}. {o}" for i, o in enumerate(opts, 1))
    msgs: list[Message] = [] if system is None else [{"role": "system", "content": system}]
    return OptionPrompt((*msgs, {"role": "user", "content": user}), opts, target)


def _as_prompt(p: Any, i: int) -> OptionPrompt:
    if isinstance(p, OptionPrompt):
        return p
    get = p.get if isinstance(p, Mapping) else lambda k, d=None: getattr(p, k, d)
    msgs = get("messages") or get("prompt")
    opts = get("options") or get("items")
    if msgs is None or opts is None:
        raise InputError(
            f"prompt {i} needs messages (or 'prompt') and options (or 'items'); build one with "
            "value_lens.compare.list_prompt(options)"
        )
    if isinstance(msgs, str):
        msgs = [{"role": "user", "content": msgs}]
    target = get("target") or get("preferred")
    return OptionPrompt(tuple(dict(m) for m in msgs), tuple(str(o) for o in opts), target)


def as_prompts(prompts: Sequence[Any]) -> list[OptionPrompt]:
    """Coerce OptionPrompts, mappings or objects with messages/options to OptionPrompts."""
    if isinstance(prompts, (str, Mapping)) or not len(prompts):
        raise InputError("pass a non-empty list of prompts")
    return [_as_prompt(p, i) for i, p in enumerate(prompts)]


def targets_for(prompts: Sequence[OptionPrompt], target: str | Sequence[str] | None) -> list[str]:
    """One target per prompt: ``target`` (one for all, or one each) or the prompts' own."""
    if target is None:
        if any(p.target is None for p in prompts):
            raise InputError("pass target= (the preferred item) or prompts that carry a target")
        return [str(p.target) for p in prompts]
    out = [target] * len(prompts) if isinstance(target, str) else [str(t) for t in target]
    if len(out) != len(prompts):
        raise InputError(f"{len(out)} targets for {len(prompts)} prompts; pass one per prompt")
    for i, (p, t) in enumerate(zip(prompts, out, strict=True)):
        if t not in p.options:
            raise InputError(f"prompt {i}: the target {t!r} is not among {list(p.options)}")
    return out


def as_models(models: Any) -> dict[str, Any]:
    """A name -> model mapping (a single model is named ``"model"``)."""
    if isinstance(models, Mapping):
        if not models:
            raise InputError("pass at least one model")
        return {str(k): v for k, v in models.items()}
    return {"model": models}


def render(
    model: HookedModel, messages: Sequence[Message], *, generation_prompt: bool = False
) -> ChatText:
    """The chat as the model's template renders it, thinking off."""
    return format_chat(
        model.tokenizer, messages, add_generation_prompt=generation_prompt, enable_thinking=False
    )


def word_spans(
    text: str, word: str, start: int = 0, end: int | None = None, *, ignore_case: bool = False
) -> list[tuple[int, int]]:
    """Character spans of every whole-word occurrence of ``word`` in ``text[start:end]``.

    >>> word_spans("a kite, kites and a Kite", "kite", ignore_case=True)
    [(2, 6), (20, 24)]
    """
    if not word:
        raise InputError("the word is empty")
    pattern = re.compile(
        r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE if ignore_case else 0
    )
    stop = len(text) if end is None else end
    return [(m.start(), m.end()) for m in pattern.finditer(text, start, stop)]


def token_mask(offsets: torch.Tensor, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Bool ``[T]`` mask of the tokens overlapping any character span."""
    m = torch.zeros(offsets.shape[0], dtype=torch.bool)
    for s, e in spans:
        m |= (offsets[:, 0] < e) & (offsets[:, 1] > s)
    return m


@dataclass(frozen=True)
class Encoded:
    ids: torch.Tensor
    offsets: torch.Tensor


def encode_all(model: HookedModel, texts: Sequence[str]) -> list[Encoded]:
    return [Encoded(*encode(model, t)) for t in texts]


def pad_right(model: HookedModel, seqs: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[B, max_len]`` ids, right-padded (causal attention: real positions are unaffected)."""
    pad = getattr(model.tokenizer, "pad_token_id", None)
    out = torch.full((len(seqs), max(s.numel() for s in seqs)), 0 if pad is None else int(pad))
    for i, s in enumerate(seqs):
        out[i, : s.numel()] = s
    return out


def batch_readout(
    model: HookedModel,
    axis: Any,
    layer: int,
    seqs: Sequence[torch.Tensor],
    *,
    metric: str = "cosine",
) -> list[np.ndarray]:
    """Per-token cosine (or projection) at ``layer`` of each sequence, one batched forward."""
    if metric not in {"cosine", "projection"}:
        raise InputError("metric must be 'cosine' or 'projection'")
    axis.check_compatible(model, check_model_id=False)
    dev = model_device(model)
    u = axis.direction(layer).to(dev).float()
    out: dict[str, torch.Tensor] = {}

    def read(_layer: int, resid: torch.Tensor) -> None:
        h = resid.float()
        p = h @ u
        out["v"] = (p / h.norm(dim=-1).clamp_min(1e-12) if metric == "cosine" else p).cpu()

    run_resid_hooks(model, pad_right(model, seqs).to(dev), {layer: read})
    if "v" not in out:
        raise InputError(
            f"the forward pass ended before blocks.{layer}.hook_resid_post ran (a hook left on "
            "the model that stops passes early?); call model.reset_hooks() and retry"
        )
    return [out["v"][i, : s.numel()].numpy().astype(np.float64) for i, s in enumerate(seqs)]


def span_mean(values: np.ndarray, mask: torch.Tensor, what: str) -> float:
    """Mean of ``values`` over a token mask, or an error that names the empty selection."""
    m = mask.numpy()[: values.size]
    if not m.any():
        raise InputError(f"no tokens cover {what}; check the text and the tokenizer's offsets")
    return float(values[m].mean())


def rate_ci(flags: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:  # noqa: ARG001
    """95% Clopper-Pearson interval of the share of true ``flags`` (independent prompts).

    Exact, so it holds its level at the 16 prompts of a category quartile, where a percentile
    bootstrap of a 10% rate covered 81% of the time (``tests/compare``). ``n_boot`` and
    ``seed`` are kept for the callers' signatures; nothing is resampled.

    >>> lo, hi = rate_ci(np.array([True] + [False] * 15), 0, 0)
    >>> round(lo, 4), round(hi, 4)
    (0.0016, 0.3023)
    """
    from value_lens.analysis.rates import binomial_rate

    f = np.asarray(flags).astype(float).reshape(-1)
    if f.size == 0:
        return float("nan"), float("nan")
    if not np.isin(f, (0.0, 1.0)).all():
        raise InputError("rate_ci takes 0/1 flags, one per prompt")
    r = binomial_rate(int(f.sum()), int(f.size))
    return r.lo, r.hi


def paired_diff_ci(
    a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, fn: Callable[..., Any] = np.mean
) -> tuple[float, float]:
    """95% CI of ``fn(b) - fn(a)`` with the items (prompts) paired.

    For the mean (the default) it is the t interval of the per-item differences (the
    leave-one-item-out jackknife of a mean), which covered 93-95% at 40 and 160 prompts where the
    percentile bootstrap covered 90% at 40; other ``fn`` use a paired percentile bootstrap of
    ``n_boot`` resamples.
    """
    from value_lens.analysis.intervals import jackknife_interval
    from value_lens.analysis.metrics import bootstrap_ci

    x, y = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if fn is np.mean:
        if x.size != y.size or x.size < 3:
            return float("nan"), float("nan")
        d = y - x
        loo = (d.sum() - d) / (d.size - 1)
        iv = jackknife_interval(float(d.mean()), loo)
        return iv.lo, iv.hi
    return bootstrap_ci(lambda u, v: fn(v) - fn(u), x, y, paired=True, n_boot=n_boot, seed=seed)


def mean_t_ci(values: Any, level: float = 0.95) -> tuple[float, float]:
    """The t interval of a mean of independent values (NaN with fewer than 3).

    >>> lo, hi = mean_t_ci([1.0, 2.0, 3.0, 4.0])
    >>> round(lo, 3), round(hi, 3)
    (0.446, 4.554)
    """
    from value_lens.analysis.intervals import jackknife_interval

    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size < 3:
        return float("nan"), float("nan")
    iv = jackknife_interval(float(v.mean()), (v.sum() - v) / (v.size - 1), level)
    return iv.lo, iv.hi


def fieller_ratio_ci(a: Any, b: Any, level: float = 0.95) -> tuple[float, float]:
    """Fieller's interval of ``mean(a) / mean(b)`` for two independent samples: every ``r`` with
    ``(mean a - r mean b)^2 <= t^2 (se_a^2 + r^2 se_b^2)``, t on ``min(n) - 1`` degrees of
    freedom. Unbounded (NaN, NaN) when ``mean(b)`` is not clearly away from 0, where no finite
    interval has the level.

    >>> lo, hi = fieller_ratio_ci([2.0, 2.2, 1.8, 2.0], [1.0, 1.1, 0.9, 1.0])
    >>> lo < 2.0 < hi
    True
    """
    from value_lens.analysis.intervals import t_quantile

    x, y = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if min(x.size, y.size) < 3:
        return float("nan"), float("nan")
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    t = t_quantile((1 + level) / 2, min(x.size, y.size) - 1)
    qa, qb, qc = my * my - t * t * vy, -2 * mx * my, mx * mx - t * t * vx
    disc = qb * qb - 4 * qa * qc
    if qa <= 0 or disc < 0:
        return float("nan"), float("nan")
    r1, r2 = (-qb - np.sqrt(disc)) / (2 * qa), (-qb + np.sqrt(disc)) / (2 * qa)
    return float(min(r1, r2)), float(max(r1, r2))
