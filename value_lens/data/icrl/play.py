"""On-policy play: the loaded model plays the game itself, the checker gives the feedback.

All conversations advance together: every step asks the model for the next attempt of each
unfinished conversation in one batched :func:`value_lens.core.generate.generate` call. The outcome of
each attempt is whatever the checker says about the model's paragraph (the text after
``</thinking>``, or the whole reply if the model wrote no tags), so per-paragraph outcomes and
the discovery point describe what actually happened.

Discovery point: the paragraph ``d`` such that ``d`` was eventually solved and every later
paragraph (at least one) was solved at the first attempt; ``None`` if the run has no such point.

Example:
    >>> from value_lens.testing import tiny_qwen3
    >>> corpus = [f"Topic {c} is studied widely. It has a long history, and many uses." for c in "ABCD"]
    >>> convs = play(tiny_qwen3(), 1, seed=0, criteria=["colon"], corpus=corpus,
    ...              max_new_tokens=3, n_paragraphs=3, max_attempts=1)
    >>> convs[0].num_paragraphs, convs[0].meta["source"]
    (3, 'onpolicy')
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from value_lens.core.chat import format_chat
from value_lens.core.io import JsonlLog
from value_lens.core.model import n_ctx
from value_lens.core.protocols import GenerativeModel
from value_lens.data.icrl.conversation import (
    Attempt,
    Conversation,
    ParagraphResult,
    from_record,
    record,
    split_thinking,
)
from value_lens.data.icrl.corpus import MIN_CORPUS, CorpusSource, Paragraph, load_corpus
from value_lens.data.icrl.prompts import game_system_prompt
from value_lens.data.icrl.registry import Criterion, get_criteria
from value_lens.data.icrl.script import MAX_PARAGRAPHS, MIN_PARAGRAPHS, MOVE_ON, _rng, eligible
from value_lens.errors import InputError

__all__ = ["discovery_point", "play"]


def discovery_point(paragraphs: list[ParagraphResult]) -> int | None:
    """1-based discovery paragraph derived from what happened (see module docstring)."""
    q = len(paragraphs)
    while q > 0 and paragraphs[q - 1].success and len(paragraphs[q - 1].attempts) == 1:
        q -= 1
    # paragraphs[q:] all succeeded first try; the discovery is paragraph q (1-based)
    if q == 0 or q == len(paragraphs) or not paragraphs[q - 1].success:
        return None
    return q


@dataclass
class _Game:
    crit: Criterion
    idx: int
    texts: list[Paragraph]
    messages: list[dict[str, str]]
    results: list[ParagraphResult] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    pos: int = 1
    tokens: int = 0
    replies: int = 0
    stopped: str = ""

    @property
    def done(self) -> bool:
        return bool(self.stopped) or self.pos > len(self.texts)


def _new(
    crit: Criterion,
    idx: int,
    pool: list[Paragraph],
    seed: int,
    n_paragraphs: int | None,
    max_attempts: int,
) -> _Game:
    rng = _rng(seed, "play", crit.name, idx)
    n = n_paragraphs or rng.randint(MIN_PARAGRAPHS, MAX_PARAGRAPHS)
    texts = rng.sample(pool, min(n, len(pool)))
    msgs = [
        {"role": "system", "content": game_system_prompt(len(texts), max_attempts)},
        {"role": "user", "content": f"Paragraph 1:\n\n{texts[0].text}"},
    ]
    return _Game(crit, idx, texts, msgs)


def _step(g: _Game, reply: str, n_tokens: int, max_attempts: int) -> None:
    think, off = split_thinking(reply)
    body = reply[off:].strip()
    ok = bool(body) and g.crit.check(body)
    g.attempts.append(Attempt(len(g.attempts) + 1, think, body, ok))
    g.tokens += n_tokens
    g.replies += 1
    g.messages.append({"role": "assistant", "content": reply})
    last = ok or len(g.attempts) >= max_attempts
    g.messages.append({"role": "user", "content": "+1" if ok else ("-1" if not last else MOVE_ON)})
    if last:
        p = g.texts[g.pos - 1]
        g.results.append(
            ParagraphResult(g.pos, p.id, p.text, g.attempts, ok, len(g.attempts) if ok else None)
        )
        g.attempts = []
        g.pos += 1
        if g.pos <= len(g.texts):
            g.messages.append(
                {"role": "user", "content": f"Paragraph {g.pos}:\n\n{g.texts[g.pos - 1].text}"}
            )


def _finish(g: _Game, seed: int, settings: dict[str, Any]) -> Conversation:
    msgs = list(g.messages)
    if g.pos <= len(g.texts):  # stopped early: drop the unfinished paragraph and its attempts
        head = f"Paragraph {g.pos}:"
        cut = max(
            i for i, m in enumerate(msgs) if m["role"] == "user" and m["content"].startswith(head)
        )
        msgs = msgs[:cut]
    return Conversation(
        f"{g.crit.name}__conv{g.idx:02d}",
        g.crit.name,
        len(g.results),
        discovery_point(g.results),
        [len(r.attempts) for r in g.results],
        g.results,
        msgs,
        {
            "source": "onpolicy",
            "seed": seed,
            "kind": g.crit.kind,
            "generated_tokens": g.tokens,
            "stopped": g.stopped,
            "planned_paragraphs": len(g.texts),
            **settings,
        },
    )


def play(
    model: GenerativeModel,
    n_per_criterion: int,
    *,
    seed: int,
    criteria: Iterable[str] | None = None,
    corpus: CorpusSource = None,
    max_new_tokens: int = 256,
    enable_thinking: bool | None = False,
    batch_size: int = 8,
    temperature: float = 0.7,
    max_attempts: int = 5,
    n_paragraphs: int | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> list[Conversation]:
    """Let ``model`` play ``n_per_criterion`` games per criterion.

    Args:
        model: a chat TransformerBridge.
        n_per_criterion: games per criterion.
        seed: sampling and paragraph-choice seed (same arguments = same games).
        criteria: criterion names (default: all 50).
        corpus: paragraphs (default: the packaged corpus).
        max_new_tokens: token budget per reply.
        enable_thinking: Qwen3's template switch; ``False`` (the paper's) by default,
            ``None`` = template default. Recorded in every conversation's ``meta``.
        batch_size: replies per forward batch.
        temperature: sampling temperature (0 = greedy; the paper's role-play used 0.7).
        max_attempts: attempts per paragraph.
        n_paragraphs: paragraphs per game (default: seeded 3-8).
        out: optional JSONL log; finished games are appended and skipped on a rerun (the
            remaining games may then sample differently, as batches are composed differently).
        progress: show a progress bar per step.

    Returns:
        One conversation per game. A game whose next prompt would not fit the model's context
        stops early (``meta["stopped"] == "context"``) with the paragraphs completed so far
        (the unfinished paragraph is left out).
    """
    from value_lens.core.generate import generate

    if n_per_criterion < 1 or max_attempts < 1 or max_new_tokens < 1:
        raise InputError("n_per_criterion, max_attempts and max_new_tokens must all be >= 1")
    crits = get_criteria(criteria)
    paras = load_corpus(corpus)
    settings = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "max_attempts": max_attempts,
        "enable_thinking": enable_thinking,
    }
    log = JsonlLog(out, key="conversation_id") if out is not None else None
    done: dict[str, Conversation] = {}
    if log is not None:
        for n, rec in enumerate(log, 1):
            if rec.get("meta", {}).get("seed") != seed:
                raise InputError(f"{out} holds games played with another seed; use a new out= path")
            if rec.get("meta", {}).get("enable_thinking", enable_thinking) != enable_thinking:
                raise InputError(
                    f"{out} holds games played with enable_thinking="
                    f"{rec['meta']['enable_thinking']}; use a new out= path"
                )
            c = from_record(rec, where=f"{out} line {n}")
            done[c.conversation_id] = c
    games: list[_Game] = []
    order: list[str] = []
    for crit in crits:
        pool = [paras[i] for i in eligible(crit, paras)]
        if len(pool) < MIN_CORPUS:
            raise InputError(f"criterion {crit.name!r}: only {len(pool)} usable corpus paragraphs")
        for idx in range(n_per_criterion):
            cid = f"{crit.name}__conv{idx:02d}"
            order.append(cid)
            if cid not in done:
                games.append(_new(crit, idx, pool, seed, n_paragraphs, max_attempts))
    tok, limit = model.tokenizer, n_ctx(model)
    step = 0
    while True:
        active = [g for g in games if not g.done]
        for g in active:
            text = format_chat(
                tok, g.messages, add_generation_prompt=True, enable_thinking=enable_thinking
            ).text
            if len(tok(text, add_special_tokens=False)["input_ids"]) + max_new_tokens + 1 > limit:
                g.stopped = "context"
        active = [g for g in active if not g.done]
        for g in games:
            if g.stopped and g.replies == 0:
                raise InputError(
                    f"game {g.crit.name}__conv{g.idx:02d}: the first prompt plus max_new_tokens="
                    f"{max_new_tokens} does not fit the model context {limit}; lower max_new_tokens"
                )
        for g in [g for g in games if g.stopped and f"{g.crit.name}__conv{g.idx:02d}" not in done]:
            conv = _finish(g, seed, settings)
            done[conv.conversation_id] = conv
            if log is not None:
                log.append(record(conv))
        if not active:
            break
        gens = generate(
            model,
            [g.messages for g in active],
            seed=seed * 1_000_003 + step,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            enable_thinking=enable_thinking,
            progress=progress,
        )
        for g, gen in zip(active, gens, strict=True):
            _step(g, gen.text, gen.n_tokens, max_attempts)
            if g.done:
                conv = _finish(g, seed, settings)
                done[conv.conversation_id] = conv
                if log is not None:
                    log.append(record(conv))
        step += 1
    return [done[c] for c in order]
