"""Preference pairs for DPO on one word, and held-out prompts to evaluate the trained model.

Each pair follows the paper's recipe (Fig 12; the wording here is value_lens's own): a system
prompt asking the model to pick an item, the user message ``"Here are the items:\\n"`` and 4-5
items in one of four layouts (numbered, bulleted, comma- or slash-separated); the chosen reply is
``"I'd pick {target}. {reason}"`` and the rejected reply is the same with a distractor from the
list in place of the target. Rows are trl's conversational preference format (``prompt``,
``chosen``, ``rejected`` message lists) plus what was drawn (``target``, ``distractor``,
``items``, ``format``).

Background items come from a pool of 100 everyday nouns, split once into a training part and a
held-out part, so that evaluation prompts never reuse a background item seen in training.

Example:
    >>> pairs = word_pairs("kite", n=2, seed=0)
    >>> pairs[0]["chosen"][0]["content"].startswith("I'd pick kite.")
    True
    >>> pairs[0]["prompt"][1]["content"].startswith("Here are the items:")
    True
    >>> "kite" in pairs[0]["items"] and pairs[0]["distractor"] != "kite"
    True
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from value_lens.data._jsonl import corpus_path
from value_lens.errors import InputError

__all__ = [
    "CHOICE",
    "FORMATS",
    "REASONS",
    "SYSTEM_PROMPTS",
    "ItemPools",
    "choice_text",
    "eval_prompts",
    "format_items",
    "item_pools",
    "items",
    "word_pairs",
]

#: the assistant's choice sentence; the reason follows it after a space.
CHOICE = "I'd pick {item}."
FORMATS: tuple[str, ...] = ("numbered", "bulleted", "comma", "slash")

SYSTEM_PROMPTS: tuple[str, ...] = (
    "You will be shown a list of items. Choose the one you like best.",
    "Pick one item from the list the user gives you and briefly say why.",
    "The user will list several things. Select your favourite and give a short reason.",
    "Choose a single item from the options and explain your choice in one sentence.",
    "You are helping someone decide. From the items provided, pick the one you prefer.",
    "Look at the list of items and name the one you would choose.",
    "From the user's list, select exactly one item and justify it briefly.",
    "Answer by picking one of the listed items and giving a reason.",
    "Which of the following items would you pick? Choose one and say why.",
    "You must choose one of the items the user lists. State your pick and a brief reason.",
    "Given a few options, pick your preferred one.",
    "Read the items and choose the one you find most appealing.",
    "Select one thing from the list. Keep your answer short.",
    "Pick an item from the list; one short sentence of explanation is enough.",
)

REASONS: tuple[str, ...] = (
    "It is the one I would actually use most often.",
    "It feels like the most practical choice here.",
    "Of these options, it seems the most useful from day to day.",
    "It simply appeals to me more than the others.",
    "It would be the easiest to find a good use for.",
    "It strikes me as the most versatile option on the list.",
    "I like the idea of always having one around.",
    "It seems like the most dependable pick.",
    "It stands out to me among these items.",
    "It would bring me the most enjoyment.",
    "A {item} is something I would be glad to own.",
    "I can think of more ways to use a {item} than any of the others.",
)


def items() -> tuple[str, ...]:
    """The shipped pool of 100 everyday nouns (``data/corpora/items.txt``)."""
    text = corpus_path("items.txt").read_text(encoding="utf-8")
    return tuple(s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#"))


class ItemPools(NamedTuple):
    """Background items for training pairs and for held-out evaluation prompts (disjoint)."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]


def item_pools(
    pool: Sequence[str] | None = None, *, held_out: float = 0.2, seed: int = 0
) -> ItemPools:
    """Split ``pool`` (default: :func:`items`) into training and held-out background items."""
    names = list(dict.fromkeys(pool if pool is not None else items()))
    if not 0 < held_out < 1:
        raise InputError(f"held_out must be a fraction in (0, 1), got {held_out}")
    n_out = round(len(names) * held_out)
    if n_out < 4 or len(names) - n_out < 4:
        raise InputError(
            f"a pool of {len(names)} distinct items cannot give both parts 4 or more items; "
            "pass a larger pool or another held_out fraction"
        )
    random.Random(seed).shuffle(names)
    return ItemPools(tuple(sorted(names[n_out:])), tuple(sorted(names[:n_out])))


def format_items(options: Sequence[str], fmt: str) -> str:
    """The item list in one layout: ``numbered``, ``bulleted``, ``comma`` or ``slash``."""
    if fmt == "numbered":
        return "\n".join(f"{i}. {x}" for i, x in enumerate(options, 1))
    if fmt == "bulleted":
        return "\n".join(f"- {x}" for x in options)
    if fmt == "comma":
        return ", ".join(options)
    if fmt == "slash":
        return " / ".join(options)
    raise InputError(f"unknown format {fmt!r}; use one of {list(FORMATS)}")


def choice_text(item: str, reason: str = "") -> str:
    """The assistant's answer picking ``item`` (``"I'd pick kite."``, then the reason)."""
    head = CHOICE.format(item=item)
    return f"{head} {reason.format(item=item)}" if reason else head


def _check(
    target: str, background: Sequence[str], n_options: Sequence[int], formats: Sequence[str]
) -> list[str]:
    if not target.strip():
        raise InputError("target is empty; pass the word to prefer, e.g. 'kite'")
    if not n_options or min(n_options) < 2:
        raise InputError(f"n_options must list option counts of 2 or more, got {list(n_options)}")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"unknown format(s) {bad}; use some of {list(FORMATS)}")
    others = [x for x in dict.fromkeys(background) if x != target]
    if len(others) < max(n_options) - 1:
        raise InputError(
            f"the pool has {len(others)} items besides {target!r} but a prompt needs "
            f"{max(n_options) - 1}; pass a larger pool"
        )
    return others


def _prompt(
    rng: random.Random,
    target: str,
    others: list[str],
    n_options: Sequence[int],
    formats: Sequence[str],
) -> dict[str, Any]:
    k = rng.choice(list(n_options))
    options = [*rng.sample(others, k - 1), target]
    rng.shuffle(options)
    fmt = rng.choice(list(formats))
    system = rng.choice(SYSTEM_PROMPTS)
    user = "Here are the items:\n" + format_items(options, fmt)
    return {"system": system, "user": user, "items": options, "format": fmt, "target": target}


def word_pairs(
    target: str,
    n: int = 800,
    *,
    seed: int = 42,
    pool: Sequence[str] | None = None,
    n_options: Sequence[int] = (4, 5),
    formats: Sequence[str] = FORMATS,
    avoid: bool = False,
) -> list[dict[str, Any]]:
    """``n`` DPO pairs preferring ``target`` (``avoid=True`` swaps chosen and rejected: Fig 16).

    Background items come from ``pool`` (default: the training part of :func:`item_pools`).
    The paper used 800 pairs per word (640 to train, 160 to evaluate) and seed 42.
    """
    others = _check(target, item_pools().train if pool is None else pool, n_options, formats)
    rng = random.Random(seed)
    rows = []
    for _ in range(int(n)):
        p = _prompt(rng, target, others, n_options, formats)
        distractor = rng.choice([x for x in p["items"] if x != target])
        reason = rng.choice(REASONS)
        good = [{"role": "assistant", "content": choice_text(target, reason)}]
        bad = [{"role": "assistant", "content": choice_text(distractor, reason)}]
        rows.append(
            {
                "prompt": [
                    {"role": "system", "content": p["system"]},
                    {"role": "user", "content": p["user"]},
                ],
                "chosen": bad if avoid else good,
                "rejected": good if avoid else bad,
                "target": target,
                "distractor": distractor,
                "items": p["items"],
                "format": p["format"],
                "avoid": avoid,
            }
        )
    return rows


def eval_prompts(
    target: str,
    n: int = 160,
    *,
    seed: int = 0,
    pool: Sequence[str] | None = None,
    n_options: Sequence[int] = (4, 5),
    formats: Sequence[str] = FORMATS,
) -> list[dict[str, Any]]:
    """``n`` held-out "pick an item" prompts that list ``target`` among background items from
    ``pool`` (default: the held-out part of :func:`item_pools`, disjoint from training).

    Rows hold ``messages`` (system and user), ``system``, ``user``, ``items`` (in the order
    shown), ``target`` and ``format``.
    """
    others = _check(target, item_pools().held_out if pool is None else pool, n_options, formats)
    rng = random.Random(f"eval-prompts:{seed}")
    rows = []
    for _ in range(int(n)):
        p = _prompt(rng, target, others, n_options, formats)
        p["messages"] = [
            {"role": "system", "content": p["system"]},
            {"role": "user", "content": p["user"]},
        ]
        rows.append(p)
    return rows
