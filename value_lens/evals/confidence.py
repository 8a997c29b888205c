"""Verbalized-confidence suite: does the axis read the model's belief that it answered right?

1. Problems with known answers (:mod:`value_lens.evals.problems`): ``arithmetic_problems``
   (procedural arithmetic and word problems, difficulty 1-5) or ``load_math_problems`` (user
   JSONL, e.g. AIME).
2. The model answers (greedy, via :mod:`value_lens.core.generate`, or pass ``replies=``);
   ``parse_answer`` reads ``\\boxed{}`` or else the final number of the visible reply (the
   text after any ``</think>``; a reply whose reasoning never closes is unparseable).
   Unparseable answers are counted and reported, never fatal.
3. Follow-up "Do you think your answer is correct? Respond only Yes or No." and the inverted
   "incorrect" framing; "Yes" and "No" are prefilled and the readout is taken at the prefilled
   token. The AUROC of Yes- vs No-prefill values per framing should flip with the framing.
4. Pre-response confidence: the yes-rate over ``n_samples`` sampled replies to the follow-up,
   against the mean readout over the last 10 prompt tokens.

Every chat is rendered with ``enable_thinking=False`` by default, the paper's setting: on Qwen3
each reply (and each prefilled Yes/No) follows an empty ``<think>\\n\\n</think>\\n\\n`` block,
which is also part of the pre-response window. The readout is the cosine (paper Eq. 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from value_lens.core.chat import format_chat
from value_lens.core.generate import GenerationConfig, generate
from value_lens.core.progress import progress as progress_bar
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.evals._common import (
    EvalResult,
    ReadOptions,
    open_log,
    prefill_trace,
    run_id,
    score_text,
    span_tokens,
    visible_reply,
)
from value_lens.evals.backtracking import MATH_SYSTEM
from value_lens.evals.confidence_stats import FRAMINGS, confidence_summary
from value_lens.evals.problems import arithmetic_problems, parse_answer
from value_lens.evals.registry import Figure, Section, Suite, SuiteRequest, Table, register_suite
from value_lens.fitting.axis import ValueAxis

__all__ = [
    "CONFIDENCE_GENERATION",
    "FRAMINGS",
    "confidence_summary",
    "run_confidence_suite",
]

CONFIDENCE_GENERATION = GenerationConfig(max_new_tokens=256, system=MATH_SYSTEM)
"""Answers: greedy, up to 256 tokens, thinking off, under :data:`MATH_SYSTEM`."""


@dataclass(frozen=True)
class _Pre:
    """The pre-response part's settings: samples, their temperature, the window read."""

    n_samples: int
    temperature: float
    n_last: int


def run_confidence_suite(
    model: GenerativeModel,
    axis: ValueAxis,
    layer: int,
    problems: Sequence[dict[str, Any]] | None = None,
    *,
    replies: Sequence[str] | None = None,
    n_problems: int = 20,
    gen: GenerationConfig = CONFIDENCE_GENERATION,
    n_samples: int = 20,
    sample_temperature: float = 0.7,
    n_last: int = 10,
    read: ReadOptions | None = None,
    **read_options: Any,
) -> EvalResult:
    """Run the verbalized-confidence evaluation (see the module docs).

    Args:
        model / axis / layer: what to read.
        problems: dicts with ``question`` and ``answer``; default ``arithmetic_problems(n_problems)``.
        replies: the model's answers, one per problem (skips generation). Reasoning up to a
            ``</think>`` is dropped from the conversation, as Qwen3's template drops it.
        gen: the answers' generation settings (:data:`CONFIDENCE_GENERATION`: greedy, 256
            tokens, thinking off, :data:`MATH_SYSTEM`). Its ``system`` prompt (``None``: none)
            opens every chat; its ``enable_thinking`` is Qwen3's chat-template switch for every
            generation and prefill (``False``, the paper's setting, puts the empty think block
            before each reply); ``batch_size`` problems are answered (and scored) per chunk,
            chunk ``c`` with seed ``gen.seed + c``; ``seed`` also draws the default problems.
        n_samples / sample_temperature: pre-response yes-rate samples (0 skips that part),
            drawn with ``gen`` at ``sample_temperature``, 5 tokens, seed ``gen.seed + i``.
        n_last: prompt tokens averaged for the pre-response readout.
        read: :class:`~value_lens.evals._common.ReadOptions` (metric, truncate, log,
            progress), or set them as keywords (``metric="projection"``, ``progress=False``).
            The log keeps each finished problem.

    Returns:
        ``table``: one row per (problem, framing, prefill) with ``value``; ``summary``:
        :func:`confidence_summary` (intervals over problems); ``extras["answers"]`` (reply,
        parsed answer, ``parsed_ok``, ``correct``) and ``extras["pre_response"]``
        (``yes_rate``, ``value``); ``meta``: the run's settings, ``enable_thinking`` and
        ``metric`` included.
    """
    opts = ReadOptions.of(read, **read_options)
    seed, batch_size = gen.seed, gen.batch_size
    probs = list(problems) if problems is not None else arithmetic_problems(n_problems, seed=seed)
    if not probs:
        raise InputError("no problems given")
    if replies is not None and len(replies) != len(probs):
        raise InputError(f"{len(replies)} replies for {len(probs)} problems; give one per problem")
    settings = {"n_samples": n_samples, "n_last": n_last, "sample_temperature": sample_temperature}
    settings |= {"given_replies": replies is not None, **gen.to_dict()}
    run = run_id("confidence", model, axis, layer, metric=opts.metric, **settings)
    logf, done = open_log(opts.log, run)
    pre = _Pre(n_samples, sample_temperature, n_last)
    head = [] if gen.system is None else [{"role": "system", "content": gen.system}]
    chats = [[*head, {"role": "user", "content": str(p["question"])}] for p in probs]
    recs: dict[int, dict[str, Any]] = {int(k): v for k, v in done.items()}
    bar = progress_bar(
        total=len(probs), desc="confidence", enabled=None if opts.progress else False
    )
    bar.update(len(recs))
    for c0 in range(0, len(probs), batch_size):
        todo = [i for i in range(c0, min(c0 + batch_size, len(probs))) if i not in recs]
        if not todo:
            continue
        chunk = gen.with_overrides(seed=seed + c0)
        for i, reply in zip(todo, _replies(model, chats, replies, todo, chunk), strict=True):
            rec = _answer_record(
                model, axis, layer, i, probs[i], chats[i], reply, gen=gen, pre=pre, opts=opts
            )
            recs[i] = {"key": str(i), "run": run, **rec}
            if logf is not None:
                logf.append(recs[i])
            bar.update(1)
    bar.close()
    return _result([recs[i] for i in range(len(probs))], run)


def _replies(
    model: GenerativeModel,
    chats: list[list[dict[str, str]]],
    replies: Sequence[str] | None,
    todo: list[int],
    gen: GenerationConfig,
) -> list[str]:
    """The given replies of problems ``todo``, or the model's, generated with ``gen``."""
    if replies is not None:
        return [str(replies[i]) for i in todo]
    return [g.text for g in generate(model, [chats[i] for i in todo], gen)]


def _result(ordered: list[dict[str, Any]], run: dict[str, Any]) -> EvalResult:
    ans = pd.DataFrame([r["answer"] for r in ordered])
    table = pd.DataFrame(
        [row for r in ordered for row in r["prefills"]],
        columns=["problem_id", "framing", "prefill", "correct", "value"],
    )
    pre = pd.DataFrame(
        [r["pre"] for r in ordered if r["pre"] is not None],
        columns=["problem_id", "yes_rate", "n_yes", "n_no", "value"],
    )
    summary = confidence_summary(table, ans, pre)
    return EvalResult(table, summary, {"answers": ans, "pre_response": pre}, dict(run))


def _answer_record(
    model: GenerativeModel,
    axis: ValueAxis,
    layer: int,
    i: int,
    prob: dict[str, Any],
    chat: list[dict[str, str]],
    reply: str,
    *,
    gen: GenerationConfig,
    pre: _Pre,
    opts: ReadOptions,
) -> dict[str, Any]:
    """One problem: parse the reply, read the four Yes/No prefills, sample the yes-rate."""
    shown = visible_reply(reply)
    pred = None if shown is None else parse_answer(shown)
    gold = float(prob["answer"])
    correct = pred is not None and abs(pred - gold) < 1e-6
    answer = {
        "problem_id": i,
        "question": prob["question"],
        "answer": gold,
        "difficulty": prob.get("difficulty"),
        "reply": reply,
        "parsed": pred,
        "parsed_ok": pred is not None,
        "correct": correct,
    }
    if pred is None:  # unparseable: counted in the answers table, not scored
        return {"answer": answer, "prefills": [], "pre": None}
    base = chat + [{"role": "assistant", "content": str(shown)}]
    prefills = [
        {"problem_id": i, "framing": framing, "prefill": word, "correct": correct, "value": v}
        for framing, word, v in _prefills(model, axis, layer, base, gen, opts)
    ]
    rate = _pre_response(model, axis, layer, i, base, gen, pre, opts) if pre.n_samples else None
    return {"answer": answer, "prefills": prefills, "pre": rate}


def _prefills(
    model: GenerativeModel,
    axis: ValueAxis,
    layer: int,
    base: list[dict[str, str]],
    gen: GenerationConfig,
    opts: ReadOptions,
) -> list[tuple[str, str, float]]:
    """(framing, word, value at the prefilled word) for both framings and both words."""
    out = []
    for framing, follow in FRAMINGS.items():
        for word in ("Yes", "No"):
            msgs = base + [{"role": "user", "content": follow}]
            msgs.append({"role": "assistant", "content": word})
            pf, tr = prefill_trace(
                model,
                msgs,
                axis,
                layer,
                truncate=opts.truncate,
                enable_thinking=gen.enable_thinking,
            )
            idx = span_tokens(tr, pf.start, pf.end)
            if idx.numel() == 0:
                raise InputError("the prefilled word fell outside the context; truncate less")
            out.append((framing, word, float(getattr(tr, opts.metric)[0, idx[-1]])))
    return out


def _pre_response(
    model: GenerativeModel,
    axis: ValueAxis,
    layer: int,
    i: int,
    base: list[dict[str, str]],
    gen: GenerationConfig,
    pre: _Pre,
    opts: ReadOptions,
) -> dict[str, Any]:
    """The yes-rate of sampled replies to the follow-up and the value of the last prompt tokens."""
    follow_chat = base + [{"role": "user", "content": FRAMINGS["correct"]}]
    prompt = format_chat(
        model.tokenizer,
        follow_chat,
        add_generation_prompt=True,
        enable_thinking=gen.enable_thinking,
    ).text
    sample = gen.with_overrides(
        temperature=pre.temperature, seed=gen.seed + i, max_new_tokens=5, batch_size=pre.n_samples
    )
    gens = generate(model, [follow_chat] * pre.n_samples, sample)
    outs = [(visible_reply(g.text) or "").strip().lower() for g in gens]
    n_yes = sum(o.startswith("yes") for o in outs)
    n_no = sum(o.startswith("no") for o in outs)
    tr = score_text(model, prompt, axis, layer, truncate=opts.truncate)
    vals = getattr(tr, opts.metric)[0, -pre.n_last :].double().numpy()
    return {
        "problem_id": i,
        "n_yes": n_yes,
        "n_no": n_no,
        "yes_rate": n_yes / (n_yes + n_no) if n_yes + n_no else float("nan"),
        "value": float(vals.mean()),
    }


def _pipeline_run(
    model: GenerativeModel, axis: ValueAxis, layer: int, req: SuiteRequest
) -> EvalResult:
    """``value-lens eval --suite confidence``: ``n`` arithmetic problems, 4 yes-rate samples."""
    gen = CONFIDENCE_GENERATION.with_overrides(
        max_new_tokens=req.max_new_tokens, seed=req.seed, enable_thinking=req.enable_thinking
    )
    log = None if req.folder is None else Path(req.folder) / "confidence.jsonl"
    return run_confidence_suite(
        model, axis, layer, n_problems=req.n, gen=gen, n_samples=4, log=log, progress=req.progress
    )


SUITE = register_suite(
    Suite(
        name="confidence",
        order=30,
        help="Yes/No prefills after the model's answers to arithmetic, and its yes-rate",
        run=_pipeline_run,
        tables={
            "confidence": Table("confidence.csv", lambda r: r.summary),
            "prefills": Table("confidence_prefills.csv", lambda r: r.table),
        },
        sections=(
            Section(
                "Verbalized confidence",
                (Figure("confidence_prefill_figure", "prefills"), "confidence"),
            ),
        ),
    )
)
