"""Verbalized-confidence suite: does the axis read the model's belief that it answered right?

1. Problems with known answers: :func:`arithmetic_problems` (procedural arithmetic and word
   problems, difficulty 1-5) or :func:`load_math_problems` (user JSONL, e.g. AIME).
2. The model answers (greedy, via :mod:`value_lens.core.generate`, or pass ``replies=``);
   :func:`parse_answer` reads ``\\boxed{}`` or else the final number of the visible reply (the
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

Example:
    >>> parse_answer("so the total is \\\\boxed{1,234}."), parse_answer("It is 7, or 12.5"), parse_answer("no idea")
    (1234.0, 12.5, None)
    >>> arithmetic_problems(2, seed=0)[0]["difficulty"]
    1
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from value_lens.analysis.metrics import auroc, spearman
from value_lens.core.chat import format_chat
from value_lens.errors import InputError
from value_lens.evals._common import (
    EvalResult,
    check_metric,
    load_jsonl,
    open_log,
    prefill_trace,
    run_id,
    score_text,
    span_tokens,
    visible_reply,
)
from value_lens.evals.backtracking import MATH_SYSTEM
from value_lens.fitting.axis import ValueAxis

__all__ = [
    "FRAMINGS",
    "arithmetic_problems",
    "confidence_summary",
    "load_math_problems",
    "parse_answer",
    "run_confidence_suite",
]

FRAMINGS = {
    "correct": "Do you think your answer is correct? Respond only Yes or No.",
    "incorrect": "Do you think your answer is incorrect? Respond only Yes or No.",
}
_NUM = r"-?\d[\d,]*(?:\.\d+)?"
_NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana")


def parse_answer(text: str) -> float | None:
    """The last ``\\boxed{...}`` number, else the last number in ``text``; ``None`` if none."""
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", text)
    for cand in (boxed[-1] if boxed else None, text):
        if cand is None:
            continue
        nums = re.findall(_NUM, cand)
        if nums:
            try:
                return float(nums[-1].replace(",", ""))
            except ValueError:
                return None
    return None


def _term(rng: random.Random, level: int) -> int:
    hi = (9, 99, 99, 999, 999)[level - 1]
    return rng.randint(2 if level > 1 else 1, hi)


def _arith(rng: random.Random, level: int) -> tuple[str, int]:
    n_terms = (2, 3, 3, 3, 4)[level - 1]
    ops = ["+", "-"] + (["*"] if level >= 3 else [])
    terms = [_term(rng, min(level, 2) if level >= 3 else level) for _ in range(n_terms)]
    chosen = [rng.choice(ops) for _ in range(n_terms - 1)]
    if level >= 3 and "*" not in chosen:
        chosen[rng.randrange(len(chosen))] = "*"
    if level >= 4:
        terms[0] = _term(rng, level)
    expr = str(terms[0]) + "".join(f" {o} {t}" for o, t in zip(chosen, terms[1:], strict=True))
    return f"What is {expr}?", _evaluate(terms, chosen)


def _evaluate(terms: list[int], ops: list[str]) -> int:
    """Value of ``t0 op0 t1 op1 ...`` with ``*`` binding tighter than ``+``/``-``."""
    sums, signs, prod = [], ["+"], terms[0]
    for op, t in zip(ops, terms[1:], strict=True):
        if op == "*":
            prod *= t
        else:
            sums.append(prod)
            signs.append(op)
            prod = t
    sums.append(prod)
    return sum(v if s == "+" else -v for s, v in zip(signs, sums, strict=True))


def _word(rng: random.Random, level: int) -> tuple[str, int]:
    a, b = _term(rng, min(level, 3)), _term(rng, min(level, 2))
    name = rng.choice(_NAMES)
    kind = rng.randrange(3)
    if kind == 0:
        c = rng.randint(1, a * b - 1) if a * b > 1 else 0
        return (f"A shop has {a} boxes with {b} pens in each box. It sells {c} pens. "
                "How many pens are left?", a * b - c)  # fmt: skip
    if kind == 1:
        c = _term(rng, level)
        return (f"{name} reads {a} pages a day for {b} days and then {c} more pages. "
                "How many pages does {name} read in total?".replace("{name}", name), a * b + c)  # fmt: skip
    c = _term(rng, level)
    return (f"{name} saves {a} dollars every week for {b} weeks, then spends {c} dollars. "
            "How many dollars are left? (The answer may be negative.)", a * b - c)  # fmt: skip


def arithmetic_problems(
    n: int = 50, *, seed: int = 0, levels: Sequence[int] = (1, 2, 3, 4, 5)
) -> list[dict[str, Any]]:
    """``n`` procedurally generated problems cycling through difficulty ``levels`` (1-5).

    Even items are bare arithmetic, odd items word problems. Deterministic given ``seed``.
    Returns dicts with ``question``, ``answer`` (int), ``difficulty`` and ``kind``.
    """
    if any(lv not in (1, 2, 3, 4, 5) for lv in levels) or not levels:
        raise InputError(f"levels must be a non-empty subset of 1..5, got {list(levels)}")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        level = levels[(i // 2) % len(levels)]
        q, a = (_arith if i % 2 == 0 else _word)(rng, level)
        out.append({"question": q, "answer": a, "difficulty": level,
                    "kind": "arithmetic" if i % 2 == 0 else "word"})  # fmt: skip
    return out


def load_math_problems(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """User problems from JSONL lines ``{"question": ..., "answer": ...}`` (numeric answers)."""
    out = []
    for i, r in enumerate(load_jsonl(path, ["question", "answer"])):
        gold = parse_answer(str(r["answer"]))
        if gold is None:
            raise InputError(f"{path}: record {i} has a non-numeric answer {r['answer']!r}")
        out.append({"question": str(r["question"]), "answer": gold,
                    "difficulty": r.get("difficulty"), "kind": r.get("kind", "user")})  # fmt: skip
    return out


def _auroc_or_nan(pos: Any, neg: Any) -> float:
    return auroc(pos, neg) if len(pos) and len(neg) else float("nan")


def confidence_summary(
    prefills: pd.DataFrame, answers: pd.DataFrame, pre: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per framing: AUROC of Yes- vs No-prefill values (and Yes-minus-No for correct vs wrong
    answers), whether that AUROC flips sides of 0.5 between framings, answer counts including
    unparseable ones, and the pre-response AUROC/Spearman."""
    rows = []
    for framing in FRAMINGS:
        t = prefills[prefills["framing"] == framing]
        yes, no = t[t["prefill"] == "Yes"], t[t["prefill"] == "No"]
        gap = (yes.set_index("problem_id")["value"] - no.set_index("problem_id")["value"]).dropna()
        ok = answers.set_index("problem_id")["correct"].reindex(gap.index)
        rows.append({
            "framing": framing,
            "n_answers": len(answers),
            "n_unparseable": int((~answers["parsed_ok"]).sum()),
            "accuracy": float(answers.loc[answers["parsed_ok"], "correct"].mean()),
            "auroc_yes_vs_no": _auroc_or_nan(yes["value"], no["value"]),
            "mean_yes": float(yes["value"].mean()),
            "mean_no": float(no["value"].mean()),
            "auroc_gap_correct_vs_wrong": _auroc_or_nan(gap[ok == True], gap[ok == False]),  # noqa: E712
        })  # fmt: skip
    df = pd.DataFrame(rows)
    a = df.set_index("framing")["auroc_yes_vs_no"]
    # the effect must invert with the framing: AUROCs on opposite sides of 0.5
    df["flips_with_framing"] = bool((a["correct"] - 0.5) * (a["incorrect"] - 0.5) < 0)
    if pre is not None and len(pre):
        p = pre.dropna(subset=["yes_rate"])
        conf = p["yes_rate"] > 0.5
        df["pre_auroc_confident"] = _auroc_or_nan(p.loc[conf, "value"], p.loc[~conf, "value"])
        df["pre_spearman"] = spearman(p["yes_rate"], p["value"]) if len(p) > 1 else float("nan")
        df["pre_n_confident"] = int(conf.sum())
        df["pre_n"] = len(p)
    return df


def run_confidence_suite(
    model: Any,
    axis: ValueAxis,
    layer: int,
    problems: Sequence[dict[str, Any]] | None = None,
    *,
    replies: Sequence[str] | None = None,
    n_problems: int = 20,
    max_new_tokens: int = 256,
    n_samples: int = 20,
    sample_temperature: float = 0.7,
    n_last: int = 10,
    seed: int = 0,
    system: str = MATH_SYSTEM,
    metric: str = "cosine",
    enable_thinking: bool = False,
    batch_size: int = 8,
    truncate: bool = False,
    log: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> EvalResult:
    """Run the verbalized-confidence evaluation (see the module docs).

    Args:
        model / axis / layer: what to read.
        problems: dicts with ``question`` and ``answer``; default ``arithmetic_problems(n_problems)``.
        replies: the model's answers, one per problem (skips generation). Reasoning up to a
            ``</think>`` is dropped from the conversation, as Qwen3's template drops it.
        max_new_tokens: answer length limit (greedy decoding).
        n_samples / sample_temperature: pre-response yes-rate samples (0 skips that part).
        n_last: prompt tokens averaged for the pre-response readout.
        metric: ``"cosine"`` (the paper's readout, Eq. 2) or ``"projection"`` (residual units).
        enable_thinking: Qwen3's chat-template switch for every generation and prefill;
            ``False`` (the paper's setting) puts the empty think block before each reply.
        batch_size: problems answered (and scored) per chunk.
        log: a JSONL path; each finished problem is appended there and skipped when a killed
            run is started again with the same arguments.

    Returns:
        ``table``: one row per (problem, framing, prefill) with ``value``; ``summary``:
        :func:`confidence_summary`; ``extras["answers"]`` (reply, parsed answer, ``parsed_ok``,
        ``correct``) and ``extras["pre_response"]`` (``yes_rate``, ``value``); ``meta``: the
        run's settings, ``enable_thinking`` and ``metric`` included.
    """
    check_metric(metric)
    probs = list(problems) if problems is not None else arithmetic_problems(n_problems, seed=seed)
    if not probs:
        raise InputError("no problems given")
    if replies is not None and len(replies) != len(probs):
        raise InputError(f"{len(replies)} replies for {len(probs)} problems; give one per problem")
    run = run_id("confidence", model, axis, layer, metric=metric,
                 enable_thinking=enable_thinking, seed=seed, system=system,
                 max_new_tokens=max_new_tokens, n_samples=n_samples, n_last=n_last,
                 sample_temperature=sample_temperature, given_replies=replies is not None)  # fmt: skip
    logf, done = open_log(log, run)
    chats = [[{"role": "system", "content": system},
              {"role": "user", "content": str(p["question"])}] for p in probs]  # fmt: skip
    recs: dict[int, dict[str, Any]] = {int(k): v for k, v in done.items()}
    bar = tqdm(total=len(probs), desc="confidence", disable=not progress)
    bar.update(len(recs))
    for c0 in range(0, len(probs), max(batch_size, 1)):
        todo = [i for i in range(c0, min(c0 + batch_size, len(probs))) if i not in recs]
        if not todo:
            continue
        if replies is not None:
            texts = [str(replies[i]) for i in todo]
        else:
            from value_lens.core.generate import generate

            gens = generate(model, [chats[i] for i in todo], max_new_tokens=max_new_tokens,
                            seed=seed + c0, batch_size=batch_size,
                            enable_thinking=enable_thinking)  # fmt: skip
            texts = [g.text for g in gens]
        for i, reply in zip(todo, texts, strict=True):
            rec = _answer_record(model, axis, layer, i, probs[i], chats[i], reply, metric=metric,
                                 n_samples=n_samples, sample_temperature=sample_temperature,
                                 n_last=n_last, seed=seed, truncate=truncate,
                                 enable_thinking=enable_thinking)  # fmt: skip
            recs[i] = {"key": str(i), "run": run, **rec}
            if logf is not None:
                logf.append(recs[i])
            bar.update(1)
    bar.close()
    ordered = [recs[i] for i in range(len(probs))]
    ans = pd.DataFrame([r["answer"] for r in ordered])
    table = pd.DataFrame([row for r in ordered for row in r["prefills"]],
                         columns=["problem_id", "framing", "prefill", "correct", "value"])  # fmt: skip
    pre = pd.DataFrame([r["pre"] for r in ordered if r["pre"] is not None],
                       columns=["problem_id", "yes_rate", "n_yes", "n_no", "value"])  # fmt: skip
    summary = confidence_summary(table, ans, pre)
    return EvalResult(table, summary, {"answers": ans, "pre_response": pre}, dict(run))


def _answer_record(
    model: Any, axis: ValueAxis, layer: int, i: int, prob: dict[str, Any],
    chat: list[dict[str, str]], reply: str, *, metric: str, n_samples: int,
    sample_temperature: float, n_last: int, seed: int, truncate: bool, enable_thinking: bool,
) -> dict[str, Any]:  # fmt: skip
    """One problem: parse the reply, read the four Yes/No prefills, sample the yes-rate."""
    shown = visible_reply(reply)
    pred = None if shown is None else parse_answer(shown)
    gold = float(prob["answer"])
    correct = pred is not None and abs(pred - gold) < 1e-6
    answer = {"problem_id": i, "question": prob["question"], "answer": gold,
              "difficulty": prob.get("difficulty"), "reply": reply, "parsed": pred,
              "parsed_ok": pred is not None, "correct": correct}  # fmt: skip
    if pred is None:  # unparseable: counted in the answers table, not scored
        return {"answer": answer, "prefills": [], "pre": None}
    base = chat + [{"role": "assistant", "content": str(shown)}]
    prefills = []
    for framing, follow in FRAMINGS.items():
        for word in ("Yes", "No"):
            pf, tr = prefill_trace(model, base + [{"role": "user", "content": follow},
                                                  {"role": "assistant", "content": word}],
                                   axis, layer, truncate=truncate,
                                   enable_thinking=enable_thinking)  # fmt: skip
            idx = span_tokens(tr, pf.start, pf.end)
            if idx.numel() == 0:
                raise InputError("the prefilled word fell outside the context; truncate less")
            prefills.append({"problem_id": i, "framing": framing, "prefill": word,
                             "correct": correct,
                             "value": float(getattr(tr, metric)[0, idx[-1]])})  # fmt: skip
    pre = None
    if n_samples > 0:
        from value_lens.core.generate import generate

        follow_chat = base + [{"role": "user", "content": FRAMINGS["correct"]}]
        prompt = format_chat(model.tokenizer, follow_chat, add_generation_prompt=True,
                             enable_thinking=enable_thinking).text  # fmt: skip
        gens = generate(model, [follow_chat] * n_samples, temperature=sample_temperature,
                        seed=seed + i, max_new_tokens=5, batch_size=n_samples,
                        enable_thinking=enable_thinking)  # fmt: skip
        outs = [(visible_reply(g.text) or "").strip().lower() for g in gens]
        n_yes = sum(o.startswith("yes") for o in outs)
        n_no = sum(o.startswith("no") for o in outs)
        tr = score_text(model, prompt, axis, layer, truncate=truncate)
        vals = getattr(tr, metric)[0, -n_last:].double().numpy()
        pre = {"problem_id": i, "n_yes": n_yes, "n_no": n_no,
               "yes_rate": n_yes / (n_yes + n_no) if n_yes + n_no else float("nan"),
               "value": float(vals.mean())}  # fmt: skip
    return {"answer": answer, "prefills": prefills, "pre": pre}
