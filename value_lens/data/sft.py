"""Chat rows for supervised fine-tuning from value_lens's procedural problem families, and a
seeded train / held-out split (the paper trains on 80% of a domain and reads value on the rest).

Two kinds of problem dicts are accepted, as the evaluation suites produce them:

- maths, ``{"question", "answer"}`` (:func:`value_lens.evals.confidence.arithmetic_problems`,
  :func:`value_lens.evals.confidence.load_math_problems`): the answer is ``"The answer is N."``;
- code, ``{"problem", "code"}`` (:func:`value_lens.evals.code.stdlib_functions`,
  :func:`value_lens.evals.code.load_code_problems`): the answer is the function in a Python block.

Example:
    >>> rows = sft_rows([{"question": "What is 2 + 3?", "answer": 5}])
    >>> [m["content"] for m in rows[0]["messages"]]
    ['What is 2 + 3?', 'The answer is 5.']
    >>> rows[0]["domain"]
    'math'
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from value_lens.errors import InputError

__all__ = ["sft_rows", "split_rows"]


def _answer(p: dict[str, Any], i: int) -> tuple[str, str, str]:
    if "question" in p and "answer" in p:
        ans = p["answer"]
        if isinstance(ans, float) and ans.is_integer():
            ans = int(ans)
        return str(p["question"]), f"The answer is {ans}.", "math"
    if "problem" in p and "code" in p:
        code = str(p["code"]).rstrip("\n")
        return str(p["problem"]), f"```python\n{code}\n```", "code"
    raise InputError(
        f"problem {i} has keys {sorted(p)}; a maths problem needs 'question' and 'answer', a code "
        "problem 'problem' and 'code' (see vl.evals.confidence.arithmetic_problems, "
        "vl.evals.code.stdlib_functions)"
    )


def sft_rows(
    problems: Sequence[dict[str, Any]], *, system: str | None = None, domain: str | None = None
) -> list[dict[str, Any]]:
    """One chat row per problem: ``messages`` (optional system, user, assistant) and ``domain``
    (``domain`` if given, else ``"math"`` or ``"code"``)."""
    if not problems:
        raise InputError(
            "no problems; generate some, e.g. vl.evals.confidence.arithmetic_problems(100)"
        )
    rows = []
    for i, p in enumerate(problems):
        question, answer, kind = _answer(p, i)
        msgs = [{"role": "system", "content": system}] if system else []
        msgs += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        rows.append({"messages": msgs, "domain": domain or kind})
    return rows


def split_rows(
    rows: Sequence[dict[str, Any]], *, train: float = 0.8, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A seeded shuffle cut into (training rows, held-out rows); each part keeps at least one."""
    if not 0 < train < 1:
        raise InputError(f"train must be a fraction in (0, 1), got {train}")
    if len(rows) < 2:
        raise InputError(f"need at least 2 rows to split, got {len(rows)}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = min(max(round(len(rows) * train), 1), len(rows) - 1)
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]
