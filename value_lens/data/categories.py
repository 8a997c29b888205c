"""Prompts labelled by category, for comparing models on quartiles of value at the last prompt
token (the paper's Fig 17 on Chatbot Arena prompts).

The paper's labels came from a Claude judge answering three yes/no questions per prompt; offline,
value_lens labels with transparent keyword rules (:func:`rule_labels`). A small shipped set
(``data/corpora/category_prompts.jsonl``, written for value_lens) covers JSON/structured
extraction, open-ended creative requests, politically sensitive questions and plain factual
questions; user prompts come as JSONL with their own labels, or labelled by the rules.

Example:
    >>> rule_labels("Extract the dates from this text as JSON: ...")["information_extraction"]
    True
    >>> rule_labels("Write a short poem about rain.")["open_ended"]
    True
    >>> rule_labels("Should the death penalty be abolished?")["politically_sensitive"]
    True
"""

from __future__ import annotations

import os
import re
from typing import Any

from value_lens.core.io import read_jsonl
from value_lens.data._jsonl import corpus_path
from value_lens.errors import InputError

__all__ = ["LABELS", "category_prompts", "load_category_prompts", "rule_labels"]

LABELS: tuple[str, ...] = ("information_extraction", "open_ended", "politically_sensitive")
_EXAMPLE = (
    '{"prompt": "List every city named in this text as JSON: ...", '
    '"information_extraction": true, "open_ended": false, "politically_sensitive": false}'
)

_EXTRACT = re.compile(
    r"\b(extract|pull out|parse|tabulate|list (?:all|every|each)|find (?:all|every)|"
    r"identify (?:all|every|each)|json|csv|key-value|structured)\b",
    re.IGNORECASE,
)
_OPEN = re.compile(
    r"^(?:please\s+)?(?:write|compose|imagine|invent|brainstorm|describe|create|design|tell me a "
    r"story|come up with|suggest)\b|\b(?:what do you think|in your view|your opinion|what if|"
    r"how might)\b",
    re.IGNORECASE,
)
_POLITICAL = re.compile(
    r"\b(abortion|gun control|immigration|immigrants?|death penalty|capital punishment|taiwan|"
    r"palestin\w*|israel\w*|elections?|democrats?|republicans?|socialism|communism|capitalism|"
    r"affirmative action|minimum wage|refugees?|border wall|monarchy|nationalism|sanctions|"
    r"president|prime minister|political parties|left-wing|right-wing|secession|annex\w*|"
    r"sovereign\w*|wealth tax)\b",
    re.IGNORECASE,
)


def rule_labels(prompt: str) -> dict[str, bool]:
    """Keyword-rule labels of one prompt (``LABELS``).

    - ``information_extraction``: asks to extract, parse, list or tabulate, or names a structured
      format (JSON, CSV, key-value);
    - ``open_ended``: a creative or opinion request (starts with write/compose/imagine/...,
      or asks "what do you think", "what if", ...) that is not an extraction;
    - ``politically_sensitive``: names a contested political topic from a fixed lexicon.
    """
    extraction = bool(_EXTRACT.search(prompt))
    return {
        "information_extraction": extraction,
        "open_ended": bool(_OPEN.search(prompt.strip())) and not extraction,
        "politically_sensitive": bool(_POLITICAL.search(prompt)),
    }


def category_prompts() -> list[dict[str, Any]]:
    """The shipped prompts: ``prompt``, ``family`` and one bool per label in ``LABELS``."""
    return load_category_prompts(corpus_path("category_prompts.jsonl"))


def _as_bool(value: Any, where: str, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"{where}: {key} is {value!r}; write true or false (or 1 or 0)")


def load_category_prompts(
    path: str | os.PathLike[str], *, missing: str = "error"
) -> list[dict[str, Any]]:
    """Prompts with category labels from JSONL lines such as ``_EXAMPLE``.

    Args:
        path: the JSONL file; every line needs ``prompt``; other keys are kept.
        missing: what to do with a label a line lacks: ``"error"`` (default) or ``"rules"``
            (fill it with :func:`rule_labels`).
    """
    if missing not in ("error", "rules"):
        raise InputError(f"missing must be 'error' or 'rules', got {missing!r}")
    out = []
    for no, r in enumerate(read_jsonl(path, ["prompt"], example=_EXAMPLE), 1):
        where = f"{path}: record {no}"
        if not isinstance(r["prompt"], str) or not r["prompt"].strip():
            raise InputError(f"{where}: prompt must be a non-empty string")
        absent = [k for k in LABELS if k not in r]
        if absent and missing == "error":
            raise InputError(
                f"{where} lacks label(s) {absent}; add them as true/false, or pass "
                "missing='rules' to fill them with value_lens's keyword rules"
            )
        rules = rule_labels(r["prompt"]) if absent else {}
        rec = dict(r)
        for k in LABELS:
            rec[k] = rules[k] if k in absent else _as_bool(r[k], where, k)
        out.append(rec)
    return out
