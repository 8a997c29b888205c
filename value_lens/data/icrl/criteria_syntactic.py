"""The 15 syntactic criteria: a character-level checker, its spans and a minimal edit.

Every criterion is one :class:`Spec`: ``spans(text)`` returns the character spans that satisfy
it (the criterion holds iff there is at least one), ``apply(text, rng)`` makes a small natural
edit that satisfies it, and ``phrases`` lists every string that edit can insert (used to pick
distractors that can never satisfy another criterion by accident).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from value_lens.data.icrl import _text as T

__all__ = ["SYNTACTIC", "Spec"]

Span = tuple[int, int]


@dataclass(frozen=True)
class Spec:
    """What a criterion module provides for one criterion."""

    description: str
    spans: Callable[[str], list[Span]]
    apply: Callable[[str, Random], str]
    phrases: tuple[str, ...]


def _finder(pattern: str, flags: int = 0) -> Callable[[str], list[Span]]:
    rx = re.compile(pattern, flags)
    return lambda text: [m.span() for m in rx.finditer(text)]


def _prefixer(options: tuple[str, ...]) -> Callable[[str, Random], str]:
    return lambda text, rng: T.prefix_sentence(text, rng.choice(options), rng)


def _appender(options: tuple[str, ...]) -> Callable[[str, Random], str]:
    return lambda text, rng: T.insert_sentence(text, rng.choice(options), rng)


_COLON = ("In short: ", "Notably: ", "Key point: ")
_NUMBER = ("By 1900, ", "Since 1850, ", "Around 1700, ", "Over 200 years later, ")
_EMOJI = ("🌍", "✨", "📚", "🔍", "🌿")
_PERCENT = ("In roughly 80% of accounts, ", "According to about 70% of sources, ")
_DOLLAR = (
    "Research on the subject has received over $2 million in funding.",
    "Related projects have cost more than $5 million so far.",
)
_PARENS = (" (broadly speaking)", " (in most accounts)", " (as is often noted)")
_FIRST_PERSON = ("As far as I know, ", "In my view, ", "As we now know, ")
_QUESTIONS = (
    "Have you ever wondered how this came to be? ",
    "What makes this subject notable? ",
    "Why does this matter? ",
    "How did all of this begin? ",
)


def _emoji(text: str, rng: Random) -> str:
    ends = T.sentence_ends(text)
    ends = ends[:-1] or ends
    e = ends[rng.randrange(len(ends))]
    return text[:e] + " " + rng.choice(_EMOJI) + text[e:]


def _quote(text: str, rng: Random) -> str:
    ws = T.words(text, 5) or T.words(text, 2)
    if not ws:
        return '"' + text.strip() + '"'
    m = rng.choice(ws)
    return text[: m.start()] + '"' + m.group(0) + '"' + text[m.end() :]


def _join(text: str, rng: Random, sep: str) -> str | None:
    starts = T.sentence_starts(text)[1:]
    ends = T.sentence_ends(text)[:-1]
    pairs = [(e, s) for e, s in zip(ends, starts, strict=True) if text[e - 1] == "."]
    if not pairs:
        return None
    e, s = rng.choice(pairs)
    return text[: e - 1] + sep + T.lower_first(text[s:], text)


def _semicolon(text: str, rng: Random) -> str:
    return _join(text, rng, "; ") or T.before_sentence_end(text, "; so it remains", rng)


def _dash(text: str, rng: Random) -> str:
    commas = [m.start() for m in re.finditer(r", ", text)]
    if commas and rng.random() < 0.7:
        c = rng.choice(commas)
        return text[:c] + " — " + text[c + 2 :]
    return _join(text, rng, " — ") or T.before_sentence_end(text, " — to this day", rng)


def _ellipsis(text: str, rng: Random) -> str:
    ends = [e for e in T.sentence_ends(text) if e > 0 and text[e - 1] == "."]
    ends = ends[:-1] or ends
    if not ends:
        return text.rstrip() + "..."
    e = rng.choice(ends)
    return text[: e - 1] + "..." + text[e:]


def _replace_word(text: str, rng: Random, word: str, new: str) -> str | None:
    hits = [m.start() for m in re.finditer(rf" {word} ", text)]
    if not hits:
        return None
    h = rng.choice(hits)
    return text[:h] + new + text[h + len(word) + 2 :]


def _ampersand(text: str, rng: Random) -> str:
    return _replace_word(text, rng, "and", " & ") or T.before_sentence_end(text, " & more", rng)


def _slash(text: str, rng: Random) -> str:
    return (
        _replace_word(text, rng, "and", " and/or ")
        or _replace_word(text, rng, "or", "/")
        or T.prefix_sentence(text, "Historically/traditionally, ", rng)
    )


def _exclaim(text: str, rng: Random) -> str:  # noqa: ARG001
    body = text.rstrip()
    if body.endswith("...") or body.endswith("…"):
        body = body.rstrip(".…")
    elif body and body[-1] in ".?;:,":
        body = body[:-1]
    return body + "!"


def _ask(text: str, rng: Random) -> str:
    return rng.choice(_QUESTIONS) + text.lstrip()


_EXCLUDED_I_BEFORE = re.compile(r"[A-Z][a-z]+ $")
_STARTERS = {"As", "Then", "When", "If", "So", "But", "And", "Here", "Now", "Today", "Yet"}


def _first_person(text: str) -> list[Span]:
    out = []
    for m in re.finditer(
        r"(?<![A-Za-z0-9'])(I|[Mm]e|[Mm]y|[Mm]ine|[Mm]yself|[Ww]e|[Uu]s|[Oo]urs?|"
        r"[Oo]urselves)(?![A-Za-z0-9])",
        text,
    ):
        if m.group(0) == "I":
            prev = _EXCLUDED_I_BEFORE.search(text[: m.start()])
            if prev and prev.group(0).strip() not in _STARTERS:
                continue  # a regnal or ordinal numeral: "Elizabeth I", "World War I"
            if text[m.end() : m.end() + 1] in ("'", "’") and text[m.end() + 1 : m.end() + 2] == "s":
                continue
        out.append(m.span())
    return out


def _ends_exclaim(text: str) -> list[Span]:
    body = text.rstrip()
    return [(len(body) - 1, len(body))] if body.endswith("!") else []


def _starts_question(text: str) -> list[Span]:
    m = re.search(r"[.!?]", text)
    return [m.span()] if m and m.group(0) == "?" else []


_EMOJI_RX = r"[\U0001F300-\U0001FAFF\U0001F000-\U0001F2FF\u2600-\u27BF]"

SYNTACTIC: dict[str, Spec] = {
    "colon": Spec("include a colon", _finder(r":"), _prefixer(_COLON), (":",)),
    "number": Spec(
        "include a number written in digits",
        _finder(r"\d+(?:[.,]\d+)*"),
        _prefixer(_NUMBER),
        _NUMBER,
    ),
    "emoji": Spec("include an emoji", _finder(_EMOJI_RX), _emoji, _EMOJI),
    "quotation_mark": Spec("include a quotation mark", _finder(r"[\"“”„«»]"), _quote, ('"',)),
    "semicolon": Spec("include a semicolon", _finder(r";"), _semicolon, ("; so it remains",)),
    "dash": Spec("include a dash", _finder(r"[—–]| - |--"), _dash, (" — to this day",)),
    "ellipsis": Spec("include an ellipsis", _finder(r"\.\.\.|…"), _ellipsis, ("...",)),
    "ampersand": Spec("include an ampersand", _finder(r"&"), _ampersand, (" & more",)),
    "slash": Spec(
        "include a slash", _finder(r"/"), _slash, ("and/or", "Historically/traditionally, ")
    ),
    "percent": Spec("include a percent sign", _finder(r"%"), _prefixer(_PERCENT), _PERCENT),
    "dollar": Spec("include a dollar sign", _finder(r"\$"), _appender(_DOLLAR), _DOLLAR),
    "parentheses": Spec(
        "include a phrase in parentheses",
        _finder(r"\([^()]*\)"),
        lambda t, rng: T.before_sentence_end(t, rng.choice(_PARENS), rng),
        _PARENS,
    ),
    "first_person": Spec(
        "use a first-person word (I, me, my, we, our)",
        _first_person,
        _prefixer(_FIRST_PERSON),
        _FIRST_PERSON,
    ),
    "ends_with_exclamation": Spec("end with an exclamation mark", _ends_exclaim, _exclaim, ("!",)),
    "starts_with_question": Spec("start with a question", _starts_question, _ask, _QUESTIONS),
}
