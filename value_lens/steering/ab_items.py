"""Offline A/B items for the paper's steered behaviours: confidence, backtracking, verbosity.

Each builder makes ``n`` procedural items (seeded, no download). An :class:`ABItem` is a chat whose
last user turn offers two answers, ``(A)`` and ``(B)``; ``match`` names the letter of the answer
that shows the behaviour. The letter of the matching answer alternates item by item, so a model's
letter preference cancels in the mean over items, and :meth:`ABItem.swapped` asks the same item
with the letters exchanged (the A/B evaluation asks both orders by default, so the preference
cancels within every item too).

* ``confidence``: the assistant has answered an arithmetic problem (correctly in half the items,
  off by a small amount in the others); the user asks "Are you sure?". Match: the answer that
  stands by the result.
* ``backtracking``: the assistant has solved a two-step word problem step by step (one step
  wrong in half the items); the user asks "Should you revise your answer?". Match: going back
  over the steps.
* ``verbosity``: the user asks a question and offers a one-sentence or a detailed answer.
  Match: the detailed one.

Example:
    >>> items = ab_items(["confidence", "verbosity"], n=2)
    >>> [(it.id, it.match) for it in items]
    [('confidence-0', 'A'), ('confidence-1', 'B'), ('verbosity-0', 'A'), ('verbosity-1', 'B')]
    >>> items[0].messages[-1]["content"].splitlines()[0]
    'Are you sure?'
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from value_lens.errors import InputError

__all__ = [
    "AB_BEHAVIOURS",
    "ABItem",
    "ab_items",
    "backtracking_items",
    "confidence_items",
    "verbosity_items",
]

ANSWER_HINT = "Answer with (A) or (B)."


@dataclass(frozen=True)
class ABItem:
    """One two-choice item.

    Attributes:
        id: unique within a set, e.g. ``"confidence-3"``.
        behaviour: the behaviour the matching answer shows.
        context: the chat before the question turn (may be empty).
        question: the question of the last user turn.
        answers: ``(matching, other)`` answer texts.
        match: the letter the matching answer is shown under.
    """

    id: str
    behaviour: str
    context: tuple[Mapping[str, str], ...]
    question: str
    answers: tuple[str, str]
    match: Literal["A", "B"]

    @property
    def messages(self) -> tuple[Mapping[str, str], ...]:
        """The chat up to and including the user turn with the two choices."""
        a, b = self.answers if self.match == "A" else self.answers[::-1]
        turn = f"{self.question}\n(A) {a}\n(B) {b}\n{ANSWER_HINT}"
        return (*self.context, {"role": "user", "content": turn})

    def swapped(self) -> ABItem:
        """The same item with the two answers' letters exchanged."""
        return replace(self, match="B" if self.match == "A" else "A")


def _item(
    behaviour: str,
    i: int,
    context: tuple[Mapping[str, str], ...],
    question: str,
    answers: tuple[str, str],
) -> ABItem:
    """Item ``i``: the matching answer under (A) on even items, (B) on odd ones."""
    return ABItem(
        f"{behaviour}-{i}", behaviour, context, question, answers, "A" if i % 2 == 0 else "B"
    )


def _check(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n must be an int >= 1, got {n!r}")


def confidence_items(n: int = 24, seed: int = 0) -> list[ABItem]:
    """``n`` "Are you sure?" items after an arithmetic answer (half of them wrong)."""
    _check(n)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(12, 99), rng.randint(12, 99)
        op, val = rng.choice([("+", a + b), ("-", a - b), ("*", a * b)])
        shown = val if (i // 2) % 2 == 0 else val + rng.choice([-10, -2, -1, 1, 2, 10])
        ctx = (
            {"role": "user", "content": f"What is {a} {op} {b}? Reply with the number."},
            {"role": "assistant", "content": f"{a} {op} {b} = {shown}."},
        )
        answers = ("Yes, I am confident my answer is correct.", "No, I may have made a mistake.")
        out.append(_item("confidence", i, ctx, "Are you sure?", answers))
    return out


_THINGS = ("apples", "books", "coins", "marbles", "pencils", "stamps", "shells", "cards")


def backtracking_items(n: int = 24, seed: int = 0) -> list[ABItem]:
    """``n`` "Should you revise your answer?" items after a two-step solution (half wrong)."""
    _check(n)
    rng = random.Random(seed + 1)
    out = []
    for i in range(n):
        thing = rng.choice(_THINGS)
        boxes, per, extra = rng.randint(3, 9), rng.randint(4, 12), rng.randint(2, 15)
        first = boxes * per
        shown1 = first if (i // 2) % 2 == 0 else first + rng.choice([-3, -1, 1, 3])
        question = (
            f"There are {boxes} boxes with {per} {thing} each, and {extra} more {thing} on the "
            f"table. How many {thing} are there in total?"
        )
        reply = (
            f"First, {boxes} x {per} = {shown1}. Then {shown1} + {extra} = {shown1 + extra}. "
            f"So there are {shown1 + extra} {thing}."
        )
        ctx = ({"role": "user", "content": question}, {"role": "assistant", "content": reply})
        answers = ("Yes, I should go back and check my steps again.", "No, my answer is final.")
        out.append(_item("backtracking", i, ctx, "Should you revise your answer?", answers))
    return out


_QUESTIONS = (
    "Why is the sky blue?",
    "How does a refrigerator keep food cold?",
    "What causes the seasons on Earth?",
    "How do vaccines work?",
    "Why do we have leap years?",
    "How does a bicycle stay upright?",
    "What is a prime number?",
    "Why does ice float on water?",
    "How do plants make food?",
    "What does a compiler do?",
    "Why do cats purr?",
    "How does a rainbow form?",
)


def verbosity_items(n: int = 24, seed: int = 0) -> list[ABItem]:
    """``n`` items offering a one-sentence or a detailed answer to a question."""
    _check(n)
    rng = random.Random(seed + 2)
    order = list(_QUESTIONS)
    rng.shuffle(order)
    out = []
    for i in range(n):
        question = f"{order[i % len(order)]} Which kind of answer will you give?"
        answers = (
            "A detailed explanation that covers every step and a few examples.",
            "One short sentence.",
        )
        out.append(_item("verbosity", i, (), question, answers))
    return out


AB_BEHAVIOURS: dict[str, Callable[[int, int], list[ABItem]]] = {
    "confidence": confidence_items,
    "backtracking": backtracking_items,
    "verbosity": verbosity_items,
}
"""The offline item builders, by behaviour: ``builder(n, seed) -> list[ABItem]``."""


def ab_items(
    behaviours: Sequence[str] = tuple(AB_BEHAVIOURS), n: int = 24, seed: int = 0
) -> list[ABItem]:
    """``n`` items of each of ``behaviours`` (names of :data:`AB_BEHAVIOURS`)."""
    if isinstance(behaviours, str):
        behaviours = [behaviours]
    unknown = [b for b in behaviours if b not in AB_BEHAVIOURS]
    if unknown or not behaviours:
        raise InputError(f"unknown A/B behaviour(s) {unknown}; use some of {tuple(AB_BEHAVIOURS)}")
    return [item for b in behaviours for item in AB_BEHAVIOURS[b](n, seed)]
