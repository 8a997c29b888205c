"""Reading a 0-100 progress rating out of a model's free-text answer, counting what fails.

:func:`parse_rating` never guesses silently: every answer gets a ``status`` (``"ok"``,
``"refusal"``, ``"no_number"`` or ``"out_of_range"``) and, when a number was read, the
``form`` it came in. In order, it looks for

* a fraction, ``"73/100"`` or ``"7 out of 10"`` (scaled to 0-100);
* a range, ``"60-70"``, ``"60 to 70"`` or ``"between 60 and 70"`` (its midpoint);
* a percentage, ``"70%"``;
* else the first number, ``"73"`` or ``"about 70"`` (``form="approximate"`` after words such as
  about, around, roughly); a decimal between 0 and 1 (``"0.5"``, ``"1.0"``) is read on a 0-1
  scale and scaled to 0-100 (``form="unit_interval"``; SmolLM2 answers so at times), while an
  integer is always on the 0-100 scale (``"1"`` is 1).

Without a digit, an answer that declines (can't, cannot, unable, won't, sorry, as an AI ...) is a
``"refusal"``; otherwise a number written in words up to one hundred (``"seventy-five"``) is
read, and an answer with none is ``"no_number"``. A number outside 0-100 is
``"out_of_range"``. The scale itself (``"from 0 to 100"``, ``"a 0-100 scale"``), as a model
echoing the question writes it (even cut short, ``"on a scale from 0 to 1"``), is removed
first.

Example:
    >>> [parse_rating(t).value for t in ("73", "73/100", "about 70", "I can't rate")]
    [73.0, 73.0, 70.0, None]
    >>> parse_rating("I can't rate").status, parse_rating("banana").status
    ('refusal', 'no_number')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["STATUSES", "ParsedRating", "parse_rating"]

STATUSES = ("ok", "refusal", "no_number", "out_of_range")

_NUM = r"(\d+(?:\.\d+)?)"
_FRACTION = re.compile(_NUM + r"\s*(?:/|out of)\s*" + _NUM)
_RANGE = re.compile(r"(?:between\s+)?" + _NUM + r"\s*(?:-|–|—|to|and)\s*" + _NUM + r"(?!\s*/)")
_PERCENT = re.compile(_NUM + r"\s*(?:%|percent)")
_PLAIN = re.compile(r"(?<![\d.])-?" + _NUM)
_APPROX = re.compile(r"\b(about|around|approximately|roughly|maybe|perhaps|nearly|almost|~)\s*$")
# the scale itself, echoed from the question ("on a scale from 0 to 100"), is no rating
_SCALE = re.compile(
    r"\bscale\s+(?:of\s+|from\s+)?\d+(?:\.\d+)?\s*(?:-|–|to)\s*(?:\d+(?:\.\d+)?)?"
    r"|\b(?:from|between)\s+0\s*(?:-|–|to|and)\s*100\b|\b0\s*(?:-|–|to)\s*100\s+scale\b"
)
_REFUSAL = re.compile(
    r"\b(can't|cannot|can not|unable|won't|will not|not able|refuse|sorry|as an ai|"
    r"don't know|do not know|not sure|impossible|no way to)\b"
)
_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_TENS_RX = "(" + "|".join(_TENS) + r")(?:[\s-](" + "|".join(_UNITS[1:10]) + "))?"
_WORDS = re.compile(
    r"\b(one hundred|a hundred|hundred|" + _TENS_RX + "|" + "|".join(_UNITS) + r")\b"
)


@dataclass(frozen=True)
class ParsedRating:
    """One answer read as a rating: ``value`` in [0, 100] when ``status == "ok"``, else None."""

    value: float | None
    status: str
    form: str = ""
    raw: str = ""


def _words(text: str) -> float | None:
    m = _WORDS.search(text)
    if m is None:
        return None
    word = m.group(1)
    if "hundred" in word:
        return 100.0
    if m.group(2):
        return float(
            20 + 10 * _TENS.index(m.group(2)) + (_UNITS.index(m.group(3)) if m.group(3) else 0)
        )
    return float(_UNITS.index(word))


def _read(text: str) -> tuple[float, str] | None:
    """``(value, form)`` of the first rating-like number in ``text``, or None."""
    m = _FRACTION.search(text)
    if m and float(m.group(2)) > 0:
        return 100.0 * float(m.group(1)) / float(m.group(2)), "fraction"
    m = _RANGE.search(text)
    if m and float(m.group(1)) <= float(m.group(2)):
        return (float(m.group(1)) + float(m.group(2))) / 2, "range"
    m = _PERCENT.search(text)
    if m:
        return float(m.group(1)), "percent"
    m = _PLAIN.search(text)
    if m:
        v = float(m.group(0))
        if "." in m.group(0) and 0 <= v <= 1:
            return 100.0 * v, "unit_interval"
        approx = _APPROX.search(text[: m.start()]) is not None
        return v, "approximate" if approx else "plain"
    return None


def parse_rating(text: str) -> ParsedRating:
    """Read a 0-100 rating from ``text`` (see the module docs for the rules)."""
    low = " ".join(text.lower().replace("’", "'").split())
    low = _SCALE.sub(" ", low)
    got = _read(low)
    if got is None and _REFUSAL.search(low):
        return ParsedRating(None, "refusal", "", text)
    if got is None:
        w = _words(low)
        if w is None:
            return ParsedRating(None, "no_number", "", text)
        got = (w, "words")
    value, form = got
    if not 0.0 <= value <= 100.0:
        return ParsedRating(None, "out_of_range", form, text)
    return ParsedRating(value, "ok", form, text)
