"""Backtracking phrases: where a text second-guesses itself.

:func:`find_backtracking` finds the paper's backtracking phrases (case-insensitive, whole words;
the list is configurable) as character spans. The dose-response metrics
(:mod:`value_lens.analysis.text_metrics`) count them, and the backtracking suite
(:mod:`value_lens.evals.backtracking`) locks traces to them.

Example:
    >>> find_backtracking("So x = 3. Wait, but wait... Actually no, I made a mistake.")
    [(10, 14, 'Wait'), (16, 24, 'But wait'), (28, 36, 'Actually'), (37, 41, 'No, '), (41, 57, 'I made a mistake')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from value_lens.errors import InputError

__all__ = ["DEFAULT_PHRASES", "find_backtracking"]

DEFAULT_PHRASES: tuple[str, ...] = (
    "Wait",
    "Actually",
    "Hmm",
    "Hold on",
    "But wait",
    "Let me reconsider",
    "Let me recheck",
    "Let me rethink",
    "Let me try again",
    "I made a mistake",
    "I think I was wrong",
    "On second thought",
    "No, ",
)
"""The paper's backtracking phrases (its ``count_backtracks`` list)."""


@lru_cache(maxsize=32)
def _pattern(phrases: tuple[str, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    if not phrases or any(not p.strip() for p in phrases):
        raise InputError("phrases must be a non-empty list of non-blank strings")
    parts = []
    for p in sorted(phrases, key=len, reverse=True):  # longest first: 'But wait' before 'Wait'
        tail = r"\b" if p[-1].isalnum() else ""
        head = r"\b" if p[0].isalnum() else ""
        parts.append(head + re.escape(p) + tail)
    canon = {p.lower(): p for p in phrases}
    return re.compile("|".join(parts), re.IGNORECASE), canon


def find_backtracking(
    text: str, phrases: Sequence[str] = DEFAULT_PHRASES
) -> list[tuple[int, int, str]]:
    """Non-overlapping backtracking phrases in ``text`` as ``(start, end, phrase)``.

    Matching is case-insensitive and on word boundaries (``'Wait'`` does not match
    ``'awaited'``); where phrases overlap the longest wins. ``phrase`` is the canonical entry of
    ``phrases`` and ``text[start:end].lower() == phrase.lower()``.
    """
    pat, canon = _pattern(tuple(phrases))
    return [(m.start(), m.end(), canon[m.group(0).lower()]) for m in pat.finditer(text)]
