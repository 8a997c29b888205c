"""Does a tuned model's value move beyond its training prompts? (paper Figs 7b and 9).

:func:`word_delta`: natural sentences are prefilled as the assistant's reply (after a short user
turn, ``user="Write a sentence."``), and the value is the mean cosine over the tokens of every
whole-word, case-insensitive occurrence of the sentence's word. Delta = tuned - base per
sentence, for the preferred word(s) against every other word (the controls).

:func:`domain_matrix`: the mean value over the assistant content tokens of each domain's answers,
per model, and its change from the base model, domain by domain.

Example:
    >>> import torch
    >>> from value_lens.testing import tiny_qwen3
    >>> from value_lens.fitting.axis import ValueAxis
    >>> m = tiny_qwen3()
    >>> axis = ValueAxis(torch.randn(2, 64), model_id=m.cfg.model_name)
    >>> s = {"kite": ["A kite flew."], "lamp": ["The lamp is on."]}
    >>> res = word_delta(m, m, axis, 1, s, "kite", n_boot=20)
    >>> float(res.table["delta"].abs().max())
    0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from value_lens.compare.common import (
    CompareResult,
    as_models,
    batch_readout,
    encode_all,
    fieller_ratio_ci,
    mean_t_ci,
    paired_diff_ci,
    render,
    span_mean,
    token_mask,
    word_spans,
)
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError

__all__ = ["answer_values", "domain_matrix", "sentence_values", "word_delta"]


def sentence_values(
    model: HookedModel,
    axis: Any,
    layer: int,
    word: str,
    sentences: Sequence[str],
    *,
    user: str = "Write a sentence.",
    metric: str = "cosine",
) -> list[float]:
    """Mean value over ``word``'s tokens in each sentence prefilled as the assistant reply."""
    chats = [
        render(model, [{"role": "user", "content": user}, {"role": "assistant", "content": s}])
        for s in sentences
    ]
    enc = encode_all(model, [c.text for c in chats])
    vals = batch_readout(model, axis, layer, [e.ids for e in enc], metric=metric)
    out = []
    for s, c, e, v in zip(sentences, chats, enc, vals, strict=True):
        sp = c.spans[-1]
        spans = word_spans(c.text, word, sp.start, sp.end, ignore_case=True)
        if not spans:
            raise InputError(f"the word {word!r} does not appear in the sentence {s!r}")
        out.append(span_mean(v, token_mask(e.offsets, spans), repr(word)))
    return out


def word_delta(
    base: Any,
    tuned: Any,
    axis: Any,
    layer: int,
    sentences: Mapping[str, Sequence[str]],
    words: str | Sequence[str],
    *,
    user: str = "Write a sentence.",
    metric: str = "cosine",
    n_boot: int = 1000,
    seed: int = 0,
) -> CompareResult:
    """Tuned minus base value on the preferred word(s) against the control words (Fig 7b).

    Args:
        base, tuned: the two models.
        sentences: ``{word: [sentence containing the word, ...]}`` for the preferred and the
            control words.
        words: the preferred word(s); every other key of ``sentences`` is a control.

    Returns:
        table: one row per (word, sentence) with ``base``, ``tuned``, ``delta`` and ``role``.
        summary: one row per role with the mean delta and its 95% t interval, plus a
        ``ratio`` row (preferred / control mean delta, Fieller's interval). Preferred
        sentences are the units of their interval; control words count as whole words (their
        sentences are not independent).
    """
    pref = [words] if isinstance(words, str) else list(words)
    missing = [w for w in pref if w not in sentences]
    if not pref or missing:
        raise InputError(f"the preferred words {missing or pref} need sentences in `sentences`")
    controls = [w for w in sentences if w not in pref]
    if not controls:
        raise InputError("`sentences` holds no control word; add sentences for other words")
    rows = []
    for w, sents in sentences.items():
        if not sents:
            raise InputError(f"no sentences for the word {w!r}")
        b = sentence_values(base, axis, layer, w, sents, user=user, metric=metric)
        t = sentence_values(tuned, axis, layer, w, sents, user=user, metric=metric)
        rows += [
            {
                "word": w,
                "role": "preferred" if w in pref else "control",
                "sentence": i,
                "base": bv,
                "tuned": tv,
                "delta": tv - bv,
            }
            for i, (bv, tv) in enumerate(zip(b, t, strict=True))
        ]
    table = pd.DataFrame(rows)
    summary = _delta_summary(table, n_boot, seed)
    from value_lens.compare.figures import word_delta_figure

    settings = {
        "layer": layer,
        "user": user,
        "metric": metric,
        "enable_thinking": False,
        "n_boot": n_boot,
        "seed": seed,
        "preferred": pref,
    }
    return CompareResult(table, summary, word_delta_figure(summary), settings)


def _delta_summary(table: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:  # noqa: ARG001
    """Mean delta of the preferred sentences and of the control words (t intervals: sentences,
    and whole control words, as the independent units) and their ratio (Fieller's interval;
    NaN when the control mean is not clearly away from 0)."""
    p = table.loc[table["role"] == "preferred", "delta"].to_numpy()
    c = table[table["role"] == "control"].groupby("word")["delta"].mean().to_numpy()
    pm, cm = float(p.mean()), float(c.mean())
    rows = [
        ("preferred", pm, mean_t_ci(p), p.size),
        ("control", cm, mean_t_ci(c), c.size),
        ("ratio", pm / cm if cm != 0 else float("nan"), fieller_ratio_ci(p, c), p.size),
    ]
    return pd.DataFrame(
        [
            {"statistic": k, "value": v, "ci_lo": lo, "ci_hi": hi, "n": n}
            for k, v, (lo, hi), n in rows
        ]
    )


def _as_messages(item: Any, i: int) -> list[Mapping[str, str]]:
    if isinstance(item, Mapping):
        if "messages" in item:
            return list(item["messages"])
        q = item.get("question", item.get("prompt"))
        a = item.get("answer", item.get("completion"))
        if q is not None and a is not None:
            return [{"role": "user", "content": str(q)}, {"role": "assistant", "content": str(a)}]
    elif isinstance(item, Sequence) and not isinstance(item, str):
        if len(item) == 2 and all(isinstance(x, str) for x in item):
            return [{"role": "user", "content": item[0]}, {"role": "assistant", "content": item[1]}]
        if item and all(isinstance(x, Mapping) for x in item):
            return list(item)
    raise InputError(
        f"item {i} must be chat messages, {{'messages': [...]}}, {{'question', 'answer'}} or a "
        "(question, answer) pair"
    )


def answer_values(
    model: HookedModel, axis: Any, layer: int, items: Sequence[Any], *, metric: str = "cosine"
) -> list[float]:
    """Mean value over every assistant message's content tokens, per conversation."""
    chats = [render(model, _as_messages(it, i)) for i, it in enumerate(items)]
    enc = encode_all(model, [c.text for c in chats])
    vals = batch_readout(model, axis, layer, [e.ids for e in enc], metric=metric)
    out = []
    for i, (c, e, v) in enumerate(zip(chats, enc, vals, strict=True)):
        spans = [(c.spans[j].start, c.spans[j].end) for j in c.turns("assistant")]
        if not spans:
            raise InputError(f"item {i} has no assistant message")
        out.append(span_mean(v, token_mask(e.offsets, spans), f"item {i}'s answer"))
    return out


def domain_matrix(
    models: Any,
    domains: Mapping[str, Sequence[Any]],
    axis: Any,
    layer: int,
    *,
    trained: Mapping[str, str] | None = None,
    metric: str = "cosine",
    n_boot: int = 1000,
    seed: int = 0,
) -> CompareResult:
    """Value change (model - base) on each domain's answers (Fig 9).

    Args:
        models: ``{name: model}``; the first is the base.
        domains: ``{domain: [conversation, ...]}`` (chat messages, ``{"messages": ...}``,
            ``{"question", "answer"}`` or ``(question, answer)``); held-out items.
        trained: ``{model name: the domain it was tuned on}``, to mark the diagonal.

    Returns:
        table: one row per (model, domain, item) with ``value``. summary: one row per
        (tuned model, domain): ``mean``, ``base_mean``, ``delta`` and a paired bootstrap CI
        over the items, ``trained`` (the model's own domain).
    """
    ms = as_models(models)
    if len(ms) < 2:
        raise InputError("pass the base model first and at least one tuned model")
    if not domains:
        raise InputError("pass at least one domain")
    tr = dict(trained or {})
    rows = [
        {"model": name, "domain": d, "item": i, "value": v}
        for name, model in ms.items()
        for d, items in domains.items()
        for i, v in enumerate(answer_values(model, axis, layer, items, metric=metric))
    ]
    table = pd.DataFrame(rows)
    base = next(iter(ms))
    out = []
    for name in list(ms)[1:]:
        for d in domains:
            a = table[(table["model"] == base) & (table["domain"] == d)]["value"].to_numpy()
            b = table[(table["model"] == name) & (table["domain"] == d)]["value"].to_numpy()
            lo, hi = paired_diff_ci(a, b, n_boot, seed)
            out.append(
                {
                    "model": name,
                    "domain": d,
                    "trained": tr.get(name) == d,
                    "n": a.size,
                    "mean": float(b.mean()),
                    "base_mean": float(a.mean()),
                    "delta": float(b.mean() - a.mean()),
                    "ci_lo": lo,
                    "ci_hi": hi,
                }
            )
    summary = pd.DataFrame(out)
    from value_lens.compare.figures import domain_figure

    settings = {
        "layer": layer,
        "metric": metric,
        "base": base,
        "enable_thinking": False,
        "n_boot": n_boot,
        "seed": seed,
    }
    return CompareResult(table, summary, domain_figure(summary), settings)
