"""Behavioural metrics of one generated text, for steering dose-response sweeps.

* backtracking: presence and count of the paper's phrases
  (:func:`value_lens.analysis.phrases.find_backtracking`);
* length in tokens;
* yes-rate: 1 if the reply starts with "yes", 0 for "no", NaN otherwise;
* code, on the first python fenced block (an unterminated block counts): non-empty lines,
  ``#`` comment lines, and type hints counted with :mod:`ast` (argument and return annotations
  plus annotated assignments; NaN when the block does not parse); NaN without a block;
* degeneration: the 4-gram repetition rate of the token ids (1 - distinct/total), the zlib
  compression ratio of the text (compressed/raw bytes; low = repetitive), and a ``degenerate``
  flag when the repetition rate exceeds 0.5 or a text of at least 64 bytes compresses below 0.2.
"""

from __future__ import annotations

import ast
import math
import re
import zlib
from collections.abc import Sequence
from typing import Any

from value_lens.analysis.phrases import find_backtracking

__all__ = ["METRICS", "code_metrics", "repetition_rate", "text_metrics", "yes_no"]

METRICS: tuple[str, ...] = (
    "backtrack",
    "n_backtrack",
    "n_tokens",
    "yes",
    "code_lines",
    "comment_lines",
    "type_hints",
    "rep4",
    "compression",
    "hit_limit",
)
"""Metric columns a dose-response frame holds (``hit_limit`` comes from the generation)."""

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.I)
_YESNO = re.compile(r"^[\s\W_]*(yes|no)\b", re.IGNORECASE)


def yes_no(text: str) -> float:
    """1.0 for a reply starting with yes, 0.0 for no, NaN otherwise.

    >>> yes_no("**Yes**."), yes_no(" no way"), yes_no("Maybe")
    (1.0, 0.0, nan)
    """
    m = _YESNO.match(text)
    if m is None:
        return math.nan
    return 1.0 if m.group(1).lower() == "yes" else 0.0


def _type_hints(tree: ast.AST) -> int:
    n = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            n += 1
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            n += 1
        elif isinstance(node, ast.AnnAssign):
            n += 1
    return n


def code_metrics(text: str) -> dict[str, float]:
    """Lines, comment lines and type hints of the first python block (NaN if none).

    >>> code_metrics("```python\\n# add\\ndef f(x: int) -> int:\\n    return x\\n```")
    {'code_lines': 3.0, 'comment_lines': 1.0, 'type_hints': 2.0}
    """
    m = _FENCE.search(text)
    if m is None:
        return {"code_lines": math.nan, "comment_lines": math.nan, "type_hints": math.nan}
    code = m.group(1)
    lines = [ln.strip() for ln in code.splitlines() if ln.strip()]
    try:
        hints = float(_type_hints(ast.parse(code)))
    except (SyntaxError, ValueError):
        hints = math.nan
    return {
        "code_lines": float(len(lines)),
        "comment_lines": float(sum(ln.startswith("#") for ln in lines)),
        "type_hints": hints,
    }


def repetition_rate(ids: Sequence[int], n: int = 4) -> float:
    """Fraction of repeated n-grams: ``1 - distinct/total`` (0 for fewer than n tokens).

    >>> repetition_rate([1, 2, 1, 2, 1, 2], n=2)
    0.6
    """
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def text_metrics(text: str, ids: Sequence[int]) -> dict[str, Any]:
    """Every metric of one output (see the module docstring); ``ids`` are its token ids."""
    n_bt = len(find_backtracking(text))
    raw = text.encode("utf-8")
    comp = len(zlib.compress(raw, 9)) / len(raw) if raw else math.nan
    rep = repetition_rate(list(ids))
    return {
        "backtrack": float(n_bt > 0),
        "n_backtrack": float(n_bt),
        "n_tokens": float(len(ids)),
        "yes": yes_no(text),
        **code_metrics(text),
        "rep4": rep,
        "compression": comp,
        "degenerate": bool(rep > 0.5 or (len(raw) >= 64 and comp < 0.2)),
    }
