"""Scripted, seeded conversations that follow the paper's schedule.

Schedule (per conversation): 3-8 paragraphs; a discovery paragraph ``d`` in ``[1, n-1]``.
Paragraphs before ``d`` apply wrong hypotheses (distractors): with probability 0.3 one fails
throughout (2-5 failures), otherwise it fails 1-4 times then succeeds (the success applies the
hypothesis and happens to satisfy the rule). Paragraph ``d`` fails 1-4 times, then succeeds with
"starting to realise" thinking. Later paragraphs succeed at once with confident thinking. Every
+1 turn is checked to satisfy the criterion and every -1 turn to fail it.

Example:
    >>> corpus = [f"Topic {i} is studied widely. It has a long history, and many uses." for i in range(9)]
    >>> convs = generate_scripted(2, seed=0, criteria=["semicolon"], corpus=corpus)
    >>> [c.conversation_id for c in convs]
    ['semicolon__conv00', 'semicolon__conv01']
    >>> convs[0].paragraphs[convs[0].discovery_paragraph].attempts[0].reward
    True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from random import Random

from value_lens.core.io import JsonlLog
from value_lens.data.icrl.conversation import (
    Attempt,
    Conversation,
    ParagraphResult,
    assistant_message,
    from_record,
    record,
)
from value_lens.data.icrl.corpus import MIN_CORPUS, CorpusSource, Paragraph, load_corpus
from value_lens.data.icrl.prompts import game_system_prompt, thinking
from value_lens.data.icrl.registry import Criterion, Distractor, get_criteria
from value_lens.errors import InputError

__all__ = ["MAX_ATTEMPTS", "generate_scripted", "plan_outcomes"]

MIN_PARAGRAPHS, MAX_PARAGRAPHS, MAX_ATTEMPTS = 3, 8, 5
MOVE_ON = "Moving on to the next paragraph."


def _rng(seed: int, *parts: object) -> Random:
    h = hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).digest()
    return Random(int.from_bytes(h[:8], "little"))


def plan_outcomes(rng: Random, position: int, discovery: int) -> list[bool]:
    """Scripted pass/fail sequence of one paragraph (1-based ``position``)."""
    if position > discovery:
        return [True]
    if position == discovery:
        return [False] * rng.randint(1, MAX_ATTEMPTS - 1) + [True]
    if rng.random() < 0.3:
        return [False] * rng.randint(2, MAX_ATTEMPTS)
    return [False] * rng.randint(1, MAX_ATTEMPTS - 1) + [True]


def eligible(crit: Criterion, corpus: Sequence[Paragraph]) -> list[int]:
    """Indices of corpus paragraphs that do not already satisfy ``crit``."""
    return [i for i, p in enumerate(corpus) if not crit.check(p.text)]


def _wrong_edit(
    crit: Criterion, hyps: list[Distractor], start: int, text: str, rng: Random
) -> tuple[Distractor, str]:
    for j in range(len(hyps)):
        d = hyps[(start + j) % len(hyps)]
        try:
            return d, d.apply(text, rng)
        except InputError:
            continue
    raise InputError(f"no distractor of {crit.name!r} can edit paragraph {text[:60]!r}...")


def _one(
    crit: Criterion, corpus: Sequence[Paragraph], pool: list[int], idx: int, seed: int
) -> Conversation:
    rng = _rng(seed, crit.name, idx)
    n = min(rng.randint(MIN_PARAGRAPHS, MAX_PARAGRAPHS), len(pool))
    discovery = rng.randint(1, n - 1)
    chosen = rng.sample(pool, n)
    hyps = rng.sample(list(crit.distractors), len(crit.distractors))
    hyp_i = 0
    history: list[dict[str, str]] = []
    results = []
    for pos, ci in enumerate(chosen, 1):
        text = corpus[ci].text
        history.append({"role": "user", "content": f"Paragraph {pos}:\n\n{text}"})
        plan = plan_outcomes(rng, pos, discovery)
        attempts: list[Attempt] = []
        for a, should_pass in enumerate(plan, 1):
            slots = {"k": pos, "rule": crit.description}
            if pos > discovery:
                think, out = thinking("confident", rng, **slots), crit.apply(text, rng)
            elif pos == discovery and should_pass:
                think, out = thinking("discover", rng, **slots), crit.apply(text, rng)
            else:
                d, out = _wrong_edit(crit, hyps, hyp_i, text, rng)
                hyp_i += 1
                think = thinking("explore" if a == 1 else "retry", rng, hyp=d.description, **slots)
                if should_pass:  # the guess happens to satisfy the hidden rule as well
                    out = crit.apply(out, rng)
            ok = crit.check(out)
            if ok != should_pass:
                raise InputError(
                    f"criterion {crit.name!r}: scripted {'+1' if should_pass else '-1'} turn on "
                    f"paragraph {corpus[ci].id!r} could not be made to "
                    f"{'pass' if should_pass else 'fail'}; remove that paragraph from the corpus"
                )
            attempts.append(Attempt(a, think, out, ok, should_pass, True))
            history.append({"role": "assistant", "content": assistant_message(think, out)})
            last = a == len(plan)
            history.append(
                {"role": "user", "content": "+1" if ok else ("-1" if not last else MOVE_ON)}
            )
        success = attempts[-1].reward
        results.append(
            ParagraphResult(
                pos, corpus[ci].id, text, attempts, success, len(attempts) if success else None
            )
        )
    messages = [{"role": "system", "content": game_system_prompt(n, MAX_ATTEMPTS)}, *history]
    return Conversation(
        f"{crit.name}__conv{idx:02d}",
        crit.name,
        n,
        discovery,
        [len(r.attempts) for r in results],
        results,
        messages,
        {"source": "scripted", "seed": seed, "kind": crit.kind},
    )


def generate_scripted(
    n_per_criterion: int,
    *,
    seed: int,
    corpus: CorpusSource = None,
    criteria: Iterable[str] | None = None,
    out: str | os.PathLike[str] | None = None,
) -> list[Conversation]:
    """Generate ``n_per_criterion`` scripted conversations for each criterion.

    Args:
        n_per_criterion: conversations per criterion.
        seed: the whole data set is a pure function of the seed, corpus and criteria; each
            conversation has its own stream, so a resumed run gives the same data.
        corpus: paragraphs (see :func:`~value_lens.data.icrl.corpus.load_corpus`); ``None`` =
            the packaged corpus. Paragraphs that already satisfy a criterion are not used for it.
        criteria: criterion names (default: all 50).
        out: optional JSONL path; finished conversations are appended as they are made, and a
            rerun with the same arguments skips those already there.

    Returns:
        The conversations, grouped by criterion in the order given.

    Raises:
        InputError: for an unknown criterion, a too-small corpus, or a log written with
            another seed.
    """
    if n_per_criterion < 1:
        raise InputError(f"n_per_criterion must be >= 1, got {n_per_criterion}")
    crits = get_criteria(criteria)
    paras = load_corpus(corpus)
    log = JsonlLog(out, key="conversation_id") if out is not None else None
    done: dict[str, Conversation] = {}
    if log is not None:
        for n, rec in enumerate(log, 1):
            if rec.get("meta", {}).get("seed") != seed:
                raise InputError(
                    f"{out} holds conversations made with seed {rec.get('meta', {}).get('seed')}, "
                    f"not {seed}; pass another out= path or the same seed"
                )
            conv = from_record(rec, where=f"{out} line {n}")
            done[conv.conversation_id] = conv
    convs = []
    for crit in crits:
        pool = eligible(crit, paras)
        if len(pool) < MIN_CORPUS:
            raise InputError(
                f"criterion {crit.name!r}: only {len(pool)} corpus paragraph(s) do not already "
                f"satisfy it; at least {MIN_CORPUS} are needed. Add more paragraphs"
            )
        for idx in range(n_per_criterion):
            cid = f"{crit.name}__conv{idx:02d}"
            if cid in done:
                convs.append(done[cid])
                continue
            conv = _one(crit, paras, pool, idx, seed)
            if log is not None:
                log.append(record(conv))
            convs.append(conv)
    return convs
