"""Small sentence-level text edits shared by the criteria (internal)."""

from __future__ import annotations

import re
from random import Random

_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])")
# Capitalised words that are lowercased when a prefix is put in front of them.
_FUNCTION_WORDS = frozenset(
    "The This That These Those It Its In On At By For From A An Many Most Some Several "
    "Each Every Other Such They Their There Today Over During After Before Although While "
    "When Unlike Like Because As Since Although Despite Although".split()
)


def sentence_starts(text: str) -> list[int]:
    """Character offsets where sentences begin."""
    return [0, *(m.end() for m in _SENT_END.finditer(text))]


def sentence_ends(text: str) -> list[int]:
    """Offsets one past each sentence's final punctuation (the last is ``len(text.rstrip())``)."""
    starts = sentence_starts(text)
    ends = []
    for s in starts[1:]:
        j = s
        while j > 0 and text[j - 1].isspace():
            j -= 1
        ends.append(j)
    ends.append(len(text.rstrip()))
    return ends


def _proper_names() -> frozenset[str]:
    from value_lens.data.icrl.lexicons import LEXICONS

    return frozenset(
        w for _, ws in LEXICONS.values() for e in ws for w in e.split() if w[0].isupper()
    )


_PROPER = _proper_names()


def lower_first(s: str, context: str = "") -> str:
    """Lowercase a leading common word ("The river" -> "the river"); keep likely names.

    A word is kept capitalised when it is a known proper name, "I", or appears capitalised in
    the middle of a sentence elsewhere in ``context``.
    """
    m = re.match(r"[A-Za-z]+", s)
    if not m:
        return s
    w = m.group(0)
    if w in _FUNCTION_WORDS:
        return s[0].lower() + s[1:]
    if w == "I" or w in _PROPER or (len(w) > 1 and w.isupper()):
        return s
    if re.search(rf"[a-z,;]\s+{w}\b", context or s):
        return s
    return s[0].lower() + s[1:]


def prefix_sentence(text: str, prefix: str, rng: Random) -> str:
    """Put ``prefix`` (e.g. ``"By 1900, "``) in front of a random sentence."""
    starts = sentence_starts(text)
    starts = starts[1:] or starts  # keep some text before the edit when possible
    s = starts[rng.randrange(len(starts))]
    rest = text[s:]
    if prefix.rstrip().endswith(","):
        rest = lower_first(rest, text)
    return text[:s] + prefix + rest


def insert_sentence(text: str, sentence: str, rng: Random, *, allow_first: bool = False) -> str:
    """Insert a full sentence after a random sentence (never before the first by default)."""
    ends = sentence_ends(text)
    ends = ends[:-1] or ends  # keep some text after the edit when possible
    pos = ends[rng.randrange(len(ends))]
    if allow_first and rng.random() < 0.2:
        return sentence + " " + text
    return text[:pos] + " " + sentence + text[pos:]


def before_sentence_end(text: str, insert: str, rng: Random) -> str:
    """Insert ``insert`` just before the final punctuation of a random sentence."""
    ends = [e for e in sentence_ends(text) if e > 0 and text[e - 1] in ".!?"]
    ends = ends[:-1] or ends
    if not ends:
        return text.rstrip() + insert + "."
    e = ends[rng.randrange(len(ends))]
    return text[: e - 1] + insert + text[e - 1 :]


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def words(text: str, min_len: int = 5) -> list[re.Match[str]]:
    """Alphabetic words of at least ``min_len`` letters that do not start a sentence."""
    starts = set(sentence_starts(text))
    return [
        m
        for m in re.finditer(r"[A-Za-z]+", text)
        if len(m.group(0)) >= min_len and m.start() not in starts
    ]
