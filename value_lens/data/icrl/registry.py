"""The registry of the 50 hidden criteria and their wrong hypotheses (distractors).

Example:
    >>> from random import Random
    >>> c = CRITERIA["semicolon"]
    >>> c.kind, c.check("One; two."), c.check("One. Two.")
    ('syntactic', True, False)
    >>> c.check(c.apply("The river is long. It flows north.", Random(0)))
    True
    >>> d = c.distractors[0]
    >>> c.check(d.apply("The river is long. It flows north.", Random(0)))
    False
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from random import Random
from types import MappingProxyType
from typing import Literal

from value_lens.data.icrl import _text as T
from value_lens.data.icrl.criteria_semantic import SEMANTIC
from value_lens.data.icrl.criteria_syntactic import SYNTACTIC, Spec
from value_lens.errors import InputError

__all__ = ["CRITERIA", "RELEASED_NAMES", "Criterion", "Distractor", "get_criteria"]

Span = tuple[int, int]
Kind = Literal["syntactic", "semantic"]
_TRIES = 12
N_DISTRACTORS = 7


@dataclass(frozen=True)
class Distractor:
    """A wrong hypothesis about a criterion, with an edit that never satisfies it.

    Attributes:
        name: short id (another criterion's name, or a generic edit's name).
        description: the hypothesis in words, e.g. ``"include a colon"``.
    """

    name: str
    description: str
    target: str
    _edit: Callable[[str, Random], str] = field(repr=False)
    _check: Callable[[str], bool] = field(repr=False)

    def apply(self, paragraph: str, rng: Random) -> str:
        """Edit ``paragraph`` by this hypothesis; the result never satisfies the target.

        Raises:
            InputError: if no edit avoiding the target criterion was found for this paragraph.
        """
        for _ in range(_TRIES):
            out = self._edit(paragraph, rng)
            if out != paragraph and not self._check(out):
                return out
        raise InputError(
            f"distractor {self.name!r} of criterion {self.target!r} could not edit this "
            f"paragraph without satisfying the criterion: {paragraph[:60]!r}..."
        )


@dataclass(frozen=True)
class Criterion:
    """One hidden criterion of the game.

    Attributes:
        name: registry key, e.g. ``"semicolon"`` or ``"musical_instrument"``.
        kind: ``"syntactic"`` or ``"semantic"``.
        description: the rule in words ("include a semicolon").
        distractors: wrong hypotheses whose edits never satisfy this criterion.
    """

    name: str
    kind: Kind
    description: str
    _spec: Spec = field(repr=False)
    distractors: tuple[Distractor, ...] = ()

    def spans(self, text: str) -> list[Span]:
        """Character spans ``(start, end)`` of ``text`` that satisfy the criterion, in order."""
        return self._spec.spans(text)

    def check(self, text: str) -> bool:
        """Whether ``text`` satisfies the criterion."""
        return bool(self._spec.spans(text))

    def apply(self, paragraph: str, rng: Random) -> str:
        """A small natural edit of ``paragraph`` that satisfies the criterion."""
        out = paragraph
        for _ in range(_TRIES):
            out = self._spec.apply(paragraph, rng)
            if self.check(out):
                return out
        return out

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every string this criterion's edit can insert."""
        return self._spec.phrases


def _shorten(text: str, rng: Random) -> str:  # noqa: ARG001
    ends = T.sentence_ends(text)
    return text[: ends[-2]] if len(ends) > 1 else text


_CONCLUDE = ("This remains an active area of study.", "It is still widely discussed today.")
_LINKERS = ("Indeed, ", "Moreover, ", "Furthermore, ")

_GENERIC: dict[str, tuple[str, Callable[[str, Random], str], tuple[str, ...]]] = {
    "shorter": ("make the paragraph shorter", _shorten, ()),
    "conclusion": (
        "add a concluding sentence",
        lambda t, rng: t.rstrip() + " " + rng.choice(_CONCLUDE),
        _CONCLUDE,
    ),
    "linking_word": (
        "start a sentence with a linking word",
        lambda t, rng: T.prefix_sentence(t, rng.choice(_LINKERS), rng),
        _LINKERS,
    ),
    "plain_words": (
        "use simpler wording",
        lambda t, rng: (
            re.sub(r"\bapproximately\b", "about", t)
            if "approximately" in t
            else T.prefix_sentence(t, "Put simply, ", rng)
        ),
        ("Put simply, ",),
    ),
}


def _order(name: str, other: str) -> str:
    return hashlib.sha256(f"{name}|{other}".encode()).hexdigest()


def _distractors(name: str, spec: Spec, kinds: Mapping[str, str]) -> tuple[Distractor, ...]:
    """Wrong hypotheses for ``name``: other criteria and generic edits that cannot satisfy it."""

    def safe(phrases: Iterable[str]) -> bool:
        return not any(spec.spans(p) for p in phrases)

    specs = {**SYNTACTIC, **SEMANTIC}
    same = sorted(
        (o for o in specs if o != name and kinds[o] == kinds[name]), key=lambda o: _order(name, o)
    )
    other = sorted((o for o in specs if kinds[o] != kinds[name]), key=lambda o: _order(name, o))
    chosen: list[Distractor] = []

    def add(dname: str, desc: str, edit: Callable[[str, Random], str]) -> None:
        chosen.append(Distractor(dname, desc, name, edit, lambda t: bool(spec.spans(t))))

    for pool, quota in ((same, 4), (other, 2)):
        for o in pool:
            if sum(d.name in pool for d in chosen) >= quota:
                break
            if safe(specs[o].phrases):
                add(o, specs[o].description, specs[o].apply)
    for g, (desc, edit, ph) in sorted(_GENERIC.items(), key=lambda kv: _order(name, kv[0])):
        if len(chosen) >= N_DISTRACTORS:
            break
        if safe(ph):
            add(g, desc, edit)
    return tuple(chosen)


def _build() -> Mapping[str, Criterion]:
    kinds = {**{n: "syntactic" for n in SYNTACTIC}, **{n: "semantic" for n in SEMANTIC}}
    out = {}
    for name, spec in {**SYNTACTIC, **SEMANTIC}.items():
        kind: Kind = "syntactic" if kinds[name] == "syntactic" else "semantic"
        out[name] = Criterion(name, kind, spec.description, spec, _distractors(name, spec, kinds))
    return MappingProxyType(out)


CRITERIA: Mapping[str, Criterion] = _build()


#: Criterion names of the paper's released data (``reward_fn`` of its conversation files, from
#: ``construction/shared.py`` and the released files at commit 44ad182) -> the registry criterion
#: that tests the same thing. All 15 syntactic names map; of the 35 semantic ones only those whose
#: concept a registry lexicon covers (never a broader one: ``precious_metal`` is not ``metal``,
#: ``color_adjective`` not ``colour``, ``extinct_animal`` not ``animal``). The character checks
#: differ in small ways: the registry's ``dash`` also accepts ``--``, ``quotation_mark`` also
#: accepts ``„«»``, ``parentheses`` needs a closed pair, and ``ends_with_exclamation`` /
#: ``starts_with_question`` mark only the final ``!`` / first-sentence ``?``.
RELEASED_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "contains_colon": "colon",
        "contains_number": "number",
        "contains_emoji": "emoji",
        "contains_quotation": "quotation_mark",
        "ends_with_exclamation": "ends_with_exclamation",
        "first_person": "first_person",
        "contains_parentheses": "parentheses",
        "starts_with_question": "starts_with_question",
        "contains_semicolon": "semicolon",
        "contains_dash": "dash",
        "contains_ellipsis": "ellipsis",
        "contains_ampersand": "ampersand",
        "contains_slash": "slash",
        "contains_percent": "percent",
        "contains_dollar": "dollar",
        "musical_instrument": "musical_instrument",
        "gemstone": "gemstone",
        "fabric_type": "fabric",
        "weather_phenomenon": "weather",
        "dance_style": "dance",
        "medical_condition": "illness",
        "body_part": "body_part",
        "emotion_word": "emotion",
        "furniture_item": "furniture",
        "vehicle_type": "vehicle",
        "geometric_shape": "shape",
        "mythological_figure": "mythical_creature",
    }
)


def get_criteria(names: Iterable[str] | None = None) -> list[Criterion]:
    """The criteria called ``names`` (all 50 when ``None``), in the order given.

    Raises:
        InputError: for an unknown name (with the closest known names).
    """
    if names is None:
        return list(CRITERIA.values())
    if isinstance(names, str):
        names = [names]
    out = []
    for n in names:
        if n not in CRITERIA:
            close = difflib.get_close_matches(str(n), list(CRITERIA), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise InputError(
                f"unknown criterion {n!r}{hint} Known criteria: see value_lens.data.icrl.CRITERIA"
            )
        out.append(CRITERIA[n])
    if not out:
        raise InputError("no criteria given; pass at least one name from CRITERIA")
    return out
