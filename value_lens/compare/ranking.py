"""Where the preferred item ranks in value among a prompt's options (paper Figs 7a, 13, 15, 16).

``position="assistant"`` (Figs 7a/15): every option is prefilled *alone* as the assistant's
answer (``answer="{item}"``; pass ``answer="I'd pick {item}."`` for a sentence) after the prompt,
and scored by the mean cosine at ``layer`` over the item's tokens in that answer.
``position="user"`` (Fig 13): one pass over the prompt; each option is scored by the mean
cosine over its tokens inside the last user message (every whole-word occurrence).

Rank 1 is the highest value; ties count in the target's favour (rank = 1 + the number of
options scoring strictly higher). The axis is applied to every model as fitted (the model id is
not checked, since the tuned model's is expected to differ; the width and depth are).

Example:
    >>> import torch
    >>> from value_lens.testing import tiny_qwen3
    >>> from value_lens.fitting.axis import ValueAxis
    >>> from value_lens.compare import list_prompt
    >>> model = tiny_qwen3()
    >>> axis = ValueAxis(torch.randn(2, 64), model_id=model.cfg.model_name)
    >>> res = preference_rank({"base": model}, axis, 1, [list_prompt(["kite", "lamp"])], "kite",
    ...                       n_boot=50)
    >>> int(res.table["rank"].iloc[0]) in (1, 2)
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from value_lens.compare.common import (
    CompareResult,
    OptionPrompt,
    as_models,
    as_prompts,
    batch_readout,
    encode_all,
    paired_diff_ci,
    rate_ci,
    render,
    span_mean,
    targets_for,
    token_mask,
    word_spans,
)
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError

__all__ = ["assistant_scores", "preference_rank", "rank_of", "user_scores"]


def rank_of(scores: Sequence[float], index: int) -> int:
    """1 + the number of scores strictly above ``scores[index]`` (rank 1 = highest).

    >>> rank_of([0.1, 0.5, 0.3], 2), rank_of([0.2, 0.2], 1)
    (2, 1)
    """
    s = np.asarray(scores, dtype=np.float64)
    return int(1 + (s > s[index]).sum())


def _check_answer(answer: str) -> tuple[str, str]:
    if answer.count("{item}") != 1:
        raise InputError(f"answer must hold '{{item}}' exactly once, got {answer!r}")
    head, tail = answer.split("{item}")
    return head, tail


def assistant_scores(
    model: HookedModel,
    axis: Any,
    layer: int,
    prompt: OptionPrompt,
    *,
    answer: str = "{item}",
    metric: str = "cosine",
) -> list[float]:
    """Each option prefilled alone as the assistant answer: mean value over the item's tokens."""
    head, tail = _check_answer(answer)
    chats = [
        render(model, [*prompt.messages, {"role": "assistant", "content": head + o + tail}])
        for o in prompt.options
    ]
    enc = encode_all(model, [c.text for c in chats])
    vals = batch_readout(model, axis, layer, [e.ids for e in enc], metric=metric)
    out = []
    for o, c, e, v in zip(prompt.options, chats, enc, vals, strict=True):
        start = c.spans[-1].start + len(head)
        out.append(span_mean(v, token_mask(e.offsets, [(start, start + len(o))]), repr(o)))
    return out


def user_scores(
    model: HookedModel, axis: Any, layer: int, prompt: OptionPrompt, *, metric: str = "cosine"
) -> list[float]:
    """Each option's mean value over its tokens inside the last user message (one pass)."""
    chat = render(model, prompt.messages, generation_prompt=True)
    user = chat.spans[chat.turns("user")[-1]]
    (e,) = encode_all(model, [chat.text])
    (v,) = batch_readout(model, axis, layer, [e.ids], metric=metric)
    out = []
    for o in prompt.options:
        spans = word_spans(chat.text, o, user.start, user.end)
        if not spans:
            raise InputError(f"the option {o!r} does not appear in the user message")
        out.append(span_mean(v, token_mask(e.offsets, spans), repr(o)))
    return out


def preference_rank(
    models: Any,
    axis: Any,
    layer: int,
    prompts: Sequence[Any],
    target: str | Sequence[str] | None = None,
    *,
    position: Literal["assistant", "user"] = "assistant",
    answer: str = "{item}",
    metric: str = "cosine",
    n_boot: int = 1000,
    seed: int = 0,
) -> CompareResult:
    """The target's value rank among each prompt's options, per model.

    Args:
        models: ``{name: model}`` (the first is the reference for the paired differences), or
            one model.
        axis: the ValueAxis (fitted on the base model).
        layer: value_lens layer (paper L21 = 20).
        prompts: OptionPrompts (see :func:`~value_lens.compare.list_prompt`), or mappings with
            ``messages``/``prompt`` and ``options``/``items`` (and optionally ``target``).
        target: the preferred item (one for all prompts, one per prompt, or None to use the
            prompts' own ``target``).
        position: ``"assistant"`` (prefill each option alone) or ``"user"`` (the option's
            tokens in the prompt, Fig 13).
        answer: the assistant prefill for ``position="assistant"``, with ``{item}`` once.
        metric: ``"cosine"`` (the paper's readout) or ``"projection"``.
        n_boot, seed: the percentile bootstrap over prompts.

    Returns:
        table: one row per (model, prompt): ``rank`` in ``[1, n_options]``, ``first``,
        ``last``, the target's value and the top option. summary: one row per model with
        ``rate_first`` (the paper's statistic) and its CI, ``chance`` (mean of 1/n_options),
        ``rate_last`` (Fig 16's avoid-model statistic) with its CI, ``mean_rank``, and
        ``delta_rate_first`` against the first model with a paired CI.
        extras["scores"]: every option's value.
    """
    if position not in ("assistant", "user"):
        raise InputError(f"position must be 'assistant' or 'user', got {position!r}")
    ms = as_models(models)
    ps = as_prompts(prompts)
    tg = targets_for(ps, target)
    rows, scores = [], []
    for name, model in ms.items():
        for i, (p, t) in enumerate(zip(ps, tg, strict=True)):
            s = (
                assistant_scores(model, axis, layer, p, answer=answer, metric=metric)
                if position == "assistant"
                else user_scores(model, axis, layer, p, metric=metric)
            )
            k = p.options.index(t)
            r = rank_of(s, k)
            rows.append(
                {
                    "model": name,
                    "prompt": i,
                    "target": t,
                    "n_options": len(p.options),
                    "rank": r,
                    "first": r == 1,
                    "last": rank_of([-x for x in s], k) == 1,
                    "target_value": s[k],
                    "top_option": p.options[int(np.argmax(s))],
                }
            )
            scores += [
                {"model": name, "prompt": i, "option": o, "is_target": o == t, "value": v}
                for o, v in zip(p.options, s, strict=True)
            ]
    table = pd.DataFrame(rows)
    summary = _summary(table, list(ms), n_boot, seed)
    from value_lens.compare.figures import rank_figure

    settings = {
        "layer": layer,
        "position": position,
        "answer": answer,
        "metric": metric,
        "enable_thinking": False,
        "n_boot": n_boot,
        "seed": seed,
    }
    return CompareResult(
        table, summary, rank_figure(summary), settings, {"scores": pd.DataFrame(scores)}
    )


def _summary(table: pd.DataFrame, names: list[str], n_boot: int, seed: int) -> pd.DataFrame:
    ref = table[table["model"] == names[0]].sort_values("prompt")
    out = []
    for name in names:
        t = table[table["model"] == name].sort_values("prompt")
        first, last = t["first"].to_numpy(), t["last"].to_numpy()
        lo, hi = rate_ci(first, n_boot, seed)
        llo, lhi = rate_ci(last, n_boot, seed)
        row: Mapping[str, Any] = {
            "model": name,
            "n_prompts": len(t),
            "chance": float((1.0 / t["n_options"]).mean()),
            "rate_first": float(first.mean()),
            "rate_first_ci_lo": lo,
            "rate_first_ci_hi": hi,
            "rate_last": float(last.mean()),
            "rate_last_ci_lo": llo,
            "rate_last_ci_hi": lhi,
            "mean_rank": float(t["rank"].mean()),
        }
        row = dict(row)
        if name == names[0]:
            row |= {"delta_rate_first": 0.0, "delta_ci_lo": np.nan, "delta_ci_hi": np.nan}
        else:
            a, b = ref["first"].to_numpy(), first
            dlo, dhi = paired_diff_ci(a, b, n_boot, seed)
            row |= {"delta_rate_first": float(b.mean() - a.mean()), "delta_ci_lo": dlo}
            row["delta_ci_hi"] = dhi
        out.append(row)
    return pd.DataFrame(out)
