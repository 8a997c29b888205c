"""Preference pairs and held-out prompts: determinism, the four layouts, the chosen/rejected
contract and the disjointness of training and evaluation background items."""

from __future__ import annotations

import re

import pytest

from value_lens.data import preference as pref
from value_lens.errors import InputError


def _parse(user: str, fmt: str) -> list[str]:
    """Items read back from a user message (written independently of format_items)."""
    head = "Here are the items:\n"
    assert user.startswith(head)
    body = user[len(head) :]
    if fmt == "numbered":
        lines = body.split("\n")
        assert [int(re.match(r"(\d+)\. ", ln).group(1)) for ln in lines] == list(
            range(1, len(lines) + 1)
        )
        return [ln.split(". ", 1)[1] for ln in lines]
    if fmt == "bulleted":
        return [ln.removeprefix("- ") for ln in body.split("\n") if ln.startswith("- ")]
    sep = {"comma": ", ", "slash": " / "}[fmt]
    assert "\n" not in body
    return body.split(sep)


def test_pairs_are_deterministic_given_the_seed():
    assert pref.word_pairs("kite", n=20, seed=7) == pref.word_pairs("kite", n=20, seed=7)
    assert pref.word_pairs("kite", n=20, seed=7) != pref.word_pairs("kite", n=20, seed=8)
    assert pref.eval_prompts("kite", n=10, seed=1) == pref.eval_prompts("kite", n=10, seed=1)


def test_pairs_follow_the_papers_format():
    pairs = pref.word_pairs("kite", n=400, seed=42)
    assert {p["format"] for p in pairs} == set(pref.FORMATS)
    assert {p["prompt"][0]["content"] for p in pairs} == set(pref.SYSTEM_PROMPTS)
    assert {len(p["items"]) for p in pairs} == {4, 5}
    for p in pairs:
        system, user = p["prompt"]
        assert (system["role"], user["role"]) == ("system", "user")
        assert _parse(user["content"], p["format"]) == p["items"]
        assert p["items"].count("kite") == 1 and len(set(p["items"])) == len(p["items"])
        assert p["distractor"] in p["items"] and p["distractor"] != "kite"
        (chosen,), (rejected,) = p["chosen"], p["rejected"]
        assert chosen["role"] == rejected["role"] == "assistant"
        assert chosen["content"].startswith("I'd pick kite. ")
        assert rejected["content"] == chosen["content"].replace("kite", p["distractor"])
        reason = chosen["content"].removeprefix("I'd pick kite. ")
        assert reason in {r.format(item="kite") for r in pref.REASONS}


def test_avoid_swaps_chosen_and_rejected():
    prefer = pref.word_pairs("lamp", n=30, seed=3)
    avoid = pref.word_pairs("lamp", n=30, seed=3, avoid=True)
    for a, b in zip(prefer, avoid, strict=True):
        assert (a["chosen"], a["rejected"]) == (b["rejected"], b["chosen"])
        assert b["rejected"][0]["content"].startswith("I'd pick lamp.")


def test_evaluation_background_items_never_appear_in_training():
    pools = pref.item_pools()
    assert set(pools.train).isdisjoint(pools.held_out)
    assert set(pools.train) | set(pools.held_out) == set(pref.items())
    assert len(pref.items()) == 100 and len(pools.held_out) == 20
    for target in ("kite", pools.held_out[0], pools.train[0]):
        train_bg = {x for p in pref.word_pairs(target, n=300) for x in p["items"]} - {target}
        eval_rows = pref.eval_prompts(target, n=160)
        eval_bg = {x for p in eval_rows for x in p["items"]} - {target}
        assert train_bg and eval_bg and train_bg.isdisjoint(eval_bg)
        assert all(p["items"].count(target) == 1 for p in eval_rows)


def test_eval_prompts_carry_their_messages_and_layout():
    for p in pref.eval_prompts("violin", n=40, seed=2):
        assert p["messages"] == [
            {"role": "system", "content": p["system"]},
            {"role": "user", "content": p["user"]},
        ]
        assert _parse(p["user"], p["format"]) == p["items"] and p["target"] == "violin"


def test_item_pools_split_a_user_pool_deterministically():
    pool = [f"thing{i}" for i in range(30)]
    a, b = pref.item_pools(pool, held_out=0.3, seed=5), pref.item_pools(pool, held_out=0.3, seed=5)
    assert a == b and len(a.held_out) == 9 and set(a.train) | set(a.held_out) == set(pool)
    assert pref.item_pools(pool, held_out=0.3, seed=6) != a


def test_errors_name_the_fix():
    with pytest.raises(InputError, match="larger pool"):
        pref.word_pairs("kite", n=1, pool=["kite", "lamp", "cup"])
    with pytest.raises(InputError, match="use some of"):
        pref.word_pairs("kite", n=1, formats=("table",))
    with pytest.raises(InputError, match="empty"):
        pref.word_pairs(" ", n=1)
    with pytest.raises(InputError, match="2 or more"):
        pref.eval_prompts("kite", n=1, n_options=(1,))
    with pytest.raises(InputError, match="4 or more"):
        pref.item_pools(["a", "b", "c", "d", "e"])
    with pytest.raises(InputError, match="use one of"):
        pref.format_items(["a", "b"], "table")
