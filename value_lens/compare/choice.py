"""Which option a model picks, read from log-likelihoods (paper Figs 12 and 14).

Each option is scored by ``log p(answer)``: the summed log-probability of the assistant reply
``answer.format(item=option)`` (default ``"I'd pick {item}."``) after the prompt, rendered with
thinking off, over the tokens that overlap the reply's characters. The model "selects" the
option with the highest score, so a small model's free text never needs parsing.

:func:`prompt_steering` adds ``alpha * unit`` at ``layer`` only at the option tokens inside the
last user message (an explicit bool position mask handed to
:func:`value_lens.steering.steer.steer`): by default the target's tokens, or every option's.

Example:
    >>> from value_lens.testing import tiny_qwen3
    >>> from value_lens.compare import list_prompt
    >>> model = tiny_qwen3()
    >>> res = selection_accuracy(model, [list_prompt(["kite", "lamp"])], "kite", n_boot=50)
    >>> res.table[["prompt", "option", "selected"]].shape
    (2, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from value_lens.compare.common import (
    CompareResult,
    OptionPrompt,
    as_models,
    as_prompts,
    encode_all,
    pad_right,
    paired_diff_ci,
    rate_ci,
    render,
    targets_for,
    token_mask,
    word_spans,
)
from value_lens.core.model import model_device
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError

__all__ = ["option_logliks", "option_masks", "prompt_steering", "selection_accuracy"]

DEFAULT_ANSWER = "I'd pick {item}."


def option_masks(
    model: HookedModel, prompt: OptionPrompt, items: Sequence[str], *, answer: str = DEFAULT_ANSWER
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Per option: its reply's token ids, the reply tokens and the ``items``' prompt tokens.

    The third mask marks every token of the last user message that overlaps a whole-word
    occurrence of one of ``items``.
    """
    if "{item}" not in answer:
        raise InputError(f"answer must contain '{{item}}', got {answer!r}")
    ids, replies, steered = [], [], []
    for o in prompt.options:
        chat = render(
            model, [*prompt.messages, {"role": "assistant", "content": answer.format(item=o)}]
        )
        (e,) = encode_all(model, [chat.text])
        user = chat.spans[chat.turns("user")[-1]]
        spans = [s for it in items for s in word_spans(chat.text, it, user.start, user.end)]
        if items and not spans:
            raise InputError(f"none of {list(items)} appears in the user message")
        reply = chat.spans[-1]
        ids.append(e.ids)
        replies.append(token_mask(e.offsets, [(reply.start, reply.end)]))
        steered.append(token_mask(e.offsets, spans))
    return ids, replies, steered


def option_logliks(
    model: HookedModel,
    prompt: OptionPrompt,
    *,
    answer: str = DEFAULT_ANSWER,
    steering: Any = None,
) -> list[float]:
    """``log p(answer(option) | prompt)`` per option, in one right-padded batch.

    ``steering`` is a context manager to run the forward under (e.g. a
    :class:`~value_lens.steering.steer.Steering` built on a ``[B, T]`` mask), or None.
    """
    ids, replies, _ = option_masks(model, prompt, [], answer=answer)
    return _logliks(model, ids, replies, steering)


def _logliks(
    model: HookedModel, ids: list[torch.Tensor], replies: list[torch.Tensor], steering: Any
) -> list[float]:
    tokens = pad_right(model, ids).to(model_device(model))
    with torch.no_grad():
        if steering is None:
            logits = model(tokens)
        else:
            with steering:
                logits = model(tokens)
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    out = []
    for b, (seq, m) in enumerate(zip(ids, replies, strict=True)):
        pos = torch.nonzero(m).reshape(-1)
        if pos.numel() == 0 or int(pos[0]) == 0:
            raise InputError("the reply has no tokens after the prompt to score")
        out.append(float(logp[b, pos - 1, seq[pos]].sum()))
    return out


def _rows(
    name: str, i: int, p: OptionPrompt, t: str, ll: list[float], **extra: Any
) -> list[dict[str, Any]]:
    pick = int(np.argmax(ll))
    return [
        {
            "model": name,
            "prompt": i,
            **extra,
            "option": o,
            "is_target": o == t,
            "loglik": v,
            "selected": k == pick,
        }
        for k, (o, v) in enumerate(zip(p.options, ll, strict=True))
    ]


def selection_accuracy(
    models: Any,
    prompts: Sequence[Any],
    target: str | Sequence[str] | None = None,
    *,
    answer: str = DEFAULT_ANSWER,
    n_boot: int = 1000,
    seed: int = 0,
) -> CompareResult:
    """How often each model's most likely reply names the target (Fig 12).

    Returns:
        table: one row per (model, prompt, option) with ``loglik`` and ``selected``.
        summary: per model ``accuracy`` with its bootstrap CI over prompts, ``chance``, and
        ``delta_accuracy`` against the first model with a paired CI.
    """
    ms, ps = as_models(models), as_prompts(prompts)
    tg = targets_for(ps, target)
    rows = []
    for name, model in ms.items():
        for i, (p, t) in enumerate(zip(ps, tg, strict=True)):
            rows += _rows(name, i, p, t, option_logliks(model, p, answer=answer))
    table = pd.DataFrame(rows)
    hits = table[table["is_target"]].sort_values(["model", "prompt"])
    chance = float(np.mean([1 / len(p.options) for p in ps]))
    ref = hits[hits["model"] == next(iter(ms))]["selected"].to_numpy()
    out = []
    for name in ms:
        h = hits[hits["model"] == name]["selected"].to_numpy()
        lo, hi = rate_ci(h, n_boot, seed)
        dlo, dhi = paired_diff_ci(ref, h, n_boot, seed)
        out.append(
            {
                "model": name,
                "n_prompts": h.size,
                "chance": chance,
                "accuracy": float(h.mean()),
                "ci_lo": lo,
                "ci_hi": hi,
                "delta_accuracy": float(h.mean() - ref.mean()),
                "delta_ci_lo": dlo,
                "delta_ci_hi": dhi,
            }
        )
    from value_lens.compare.figures import selection_figure

    summary = pd.DataFrame(out)
    settings = {"answer": answer, "enable_thinking": False, "n_boot": n_boot, "seed": seed}
    return CompareResult(table, summary, selection_figure(summary), settings)


def prompt_steering(
    model: HookedModel,
    axis: Any,
    layer: int,
    prompts: Sequence[Any],
    alphas: Sequence[float],
    target: str | Sequence[str] | None = None,
    *,
    steer_options: Literal["target", "all"] = "target",
    unit: Literal["raw", "percent", "sd"] = "percent",
    answer: str = DEFAULT_ANSWER,
    n_boot: int = 1000,
    seed: int = 0,
) -> CompareResult:
    """Selection rate of the target while steering only option tokens inside the prompt (Fig 14).

    Args:
        model: the model to steer (the paper uses the base model).
        axis: a ValueAxis (or a direction tensor, with ``unit="raw"``).
        layer: value_lens layer; ``alpha * unit`` is added to ``blocks.{layer}.hook_resid_post``
            (HF ``hidden_states[layer + 1]``) at the masked positions only.
        prompts, target: as in :func:`selection_accuracy`.
        alphas: the strengths, in ``unit``: ``"percent"`` of the layer's mean residual norm
            (the paper's figure; needs the axis's calibration), ``"raw"`` or ``"sd"``.
        steer_options: ``"target"`` steers the target's tokens in the user message; ``"all"``
            steers every option's.
        answer: the scored reply template.

    Returns:
        table: one row per (alpha, prompt, option) with ``loglik`` and ``selected``.
        summary: per alpha the target's ``selection_rate`` with its CI over prompts, and the
        change from the alpha closest to 0 with a paired CI. extras["per_target"]: the rate
        per (alpha, target word), the figure's thin lines.
    """
    from value_lens.steering.steer import steer

    if not len(alphas):
        raise InputError("pass at least one alpha")
    if steer_options not in ("target", "all"):
        raise InputError(f"steer_options must be 'target' or 'all', got {steer_options!r}")
    ps = as_prompts(prompts)
    tg = targets_for(ps, target)
    rows = []
    for i, (p, t) in enumerate(zip(ps, tg, strict=True)):
        items = [t] if steer_options == "target" else list(p.options)
        ids, replies, masks = option_masks(model, p, items, answer=answer)
        width = max(s.numel() for s in ids)
        mask = torch.zeros(len(ids), width, dtype=torch.bool)
        for b, m in enumerate(masks):
            mask[b, : m.numel()] = m
        for a in alphas:
            s = None
            if float(a) != 0.0:
                s = steer(
                    model,
                    axis,
                    layers=layer,
                    alpha=float(a),
                    positions=mask,
                    unit=unit,
                    check_model_id=False,
                )
            rows += _rows(
                "model", i, p, t, _logliks(model, ids, replies, s), alpha=float(a), target=t
            )
    table = pd.DataFrame(rows).drop(columns="model")
    summary, per_target = _steer_summary(table, alphas, n_boot, seed)
    from value_lens.compare.figures import steering_figure

    settings = {
        "layer": layer,
        "unit": unit,
        "steer_options": steer_options,
        "answer": answer,
        "enable_thinking": False,
        "n_boot": n_boot,
        "seed": seed,
    }
    return CompareResult(
        table, summary, steering_figure(summary, per_target), settings, {"per_target": per_target}
    )


def _steer_summary(
    table: pd.DataFrame, alphas: Sequence[float], n_boot: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    hits = table[table["is_target"]].sort_values(["alpha", "prompt"])
    zero = min((float(a) for a in alphas), key=abs)
    ref = hits[hits["alpha"] == zero]["selected"].to_numpy()
    out = []
    for a in dict.fromkeys(float(x) for x in alphas):
        h = hits[hits["alpha"] == a]["selected"].to_numpy()
        lo, hi = rate_ci(h, n_boot, seed)
        dlo, dhi = paired_diff_ci(ref, h, n_boot, seed)
        out.append(
            {
                "alpha": a,
                "n_prompts": h.size,
                "selection_rate": float(h.mean()),
                "ci_lo": lo,
                "ci_hi": hi,
                "delta_vs_zero": float(h.mean() - ref.mean()),
                "delta_ci_lo": dlo,
                "delta_ci_hi": dhi,
            }
        )
    per = (
        hits.groupby(["alpha", "target"], sort=True)["selected"]
        .agg(selection_rate="mean", n_prompts="size")
        .reset_index()
    )
    return pd.DataFrame(out), per
