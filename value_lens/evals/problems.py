"""Math problems with known answers for the confidence suite, and reading a reply's answer.

* :func:`arithmetic_problems`: procedural arithmetic and word problems, difficulty 1-5;
* :func:`load_math_problems`: user JSONL (e.g. AIME);
* :func:`parse_answer`: ``\\boxed{}`` or else the final number of a reply.

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

from value_lens.errors import InputError
from value_lens.evals._common import load_jsonl

__all__ = ["arithmetic_problems", "load_math_problems", "parse_answer"]

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
        return (
            f"A shop has {a} boxes with {b} pens in each box. It sells {c} pens. "
            "How many pens are left?",
            a * b - c,
        )
    if kind == 1:
        c = _term(rng, level)
        return (
            f"{name} reads {a} pages a day for {b} days and then {c} more pages. "
            "How many pages does {name} read in total?".replace("{name}", name),
            a * b + c,
        )
    c = _term(rng, level)
    return (
        f"{name} saves {a} dollars every week for {b} weeks, then spends {c} dollars. "
        "How many dollars are left? (The answer may be negative.)",
        a * b - c,
    )


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
        out.append(
            {
                "question": q,
                "answer": a,
                "difficulty": level,
                "kind": "arithmetic" if i % 2 == 0 else "word",
            }
        )
    return out


def load_math_problems(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """User problems from JSONL lines ``{"question": ..., "answer": ...}`` (numeric answers)."""
    out = []
    for i, r in enumerate(load_jsonl(path, ["question", "answer"])):
        gold = parse_answer(str(r["answer"]))
        if gold is None:
            raise InputError(f"{path}: record {i} has a non-numeric answer {r['answer']!r}")
        out.append(
            {
                "question": str(r["question"]),
                "answer": gold,
                "difficulty": r.get("difficulty"),
                "kind": r.get("kind", "user"),
            }
        )
    return out
