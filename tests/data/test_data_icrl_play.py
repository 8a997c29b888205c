"""On-policy play on the tiny model and SmolLM2, the derived discovery point, splits."""

from __future__ import annotations

import pytest

from value_lens.data.icrl import (
    CRITERIA,
    Attempt,
    ParagraphResult,
    criterion_splits,
    discovery_point,
    label,
    load_conversations,
    load_corpus,
    play,
)
from value_lens.data.icrl.conversation import split_thinking
from value_lens.errors import InputError

SHORT = [
    f"Town {c} sits by a river. It has an old bridge, a mill and a market." for c in "ABCDEFGH"
]


def _para(pos, rewards):
    atts = [Attempt(i + 1, "", "x", r) for i, r in enumerate(rewards)]
    ok = rewards[-1]
    return ParagraphResult(pos, pos, "x", atts, ok, len(atts) if ok else None)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ([[False, True], [True], [True]], 1),
        ([[False, False], [False, True], [True]], 2),
        ([[True], [True], [True]], None),  # no failure: nothing was discovered
        ([[False, True], [True], [False, True]], None),
        ([[False, False], [True], [True]], None),  # failed throughout, then lucky first tries
        ([[False, True], [False, True]], None),
    ],
)
def test_discovery_point(pattern, expected):
    assert discovery_point([_para(i + 1, r) for i, r in enumerate(pattern)]) == expected


def test_play_tiny_end_to_end(tiny, tmp_path):
    kw = dict(
        seed=0,
        criteria=["colon", "animal"],
        corpus=SHORT,
        max_new_tokens=6,
        n_paragraphs=3,
        max_attempts=2,
        batch_size=4,
    )
    out = tmp_path / "play.jsonl"
    convs = play(tiny, 2, out=out, **kw)
    assert [c.conversation_id for c in convs] == [
        "colon__conv00",
        "colon__conv01",
        "animal__conv00",
        "animal__conv01",
    ]
    for c in convs:
        c.validate()
        assert c.meta["source"] == "onpolicy" and c.meta["generated_tokens"] > 0
        crit = CRITERIA[c.reward_fn]
        asst = [m for m in c.full_messages if m["role"] == "assistant"]
        atts = [a for p in c.paragraphs for a in p.attempts]
        assert len(asst) == len(atts)
        for m, a in zip(asst, atts, strict=True):  # the recorded reward is the checker's verdict
            _, off = split_thinking(m["content"])
            assert a.modified_text == m["content"][off:].strip()
            assert a.reward == (bool(a.modified_text) and crit.check(a.modified_text))
        assert c.discovery_paragraph == discovery_point(c.paragraphs)
    assert load_conversations(out) == convs
    assert all(c.meta["enable_thinking"] is False for c in convs)  # the paper's setting
    with pytest.raises(InputError, match="enable_thinking"):
        play(tiny, 2, out=out, enable_thinking=True, **kw)
    again = play(tiny, 2, **kw)  # same seed, same games
    assert [c.to_dict() for c in again] == [c.to_dict() for c in convs]
    resumed = play(tiny, 2, out=out, **kw)  # everything already done: nothing regenerated
    assert resumed == convs and len(out.read_text().splitlines()) == 4


def test_play_context_limit(tiny):
    with pytest.raises(InputError, match="max_new_tokens"):
        play(tiny, 1, seed=0, criteria=["colon"], corpus=SHORT, max_new_tokens=5000)
    # a context that fits the first reply only: the game stops and keeps what it finished
    from value_lens.core.chat import format_chat
    from value_lens.data.icrl.play import _new
    from value_lens.data.icrl.registry import CRITERIA as C

    g = _new(C["colon"], 0, load_corpus(SHORT), 0, 3, 2)
    first = format_chat(
        tiny.tokenizer, g.messages, add_generation_prompt=True, enable_thinking=False
    ).text
    n_first = len(tiny.tokenizer(first, add_special_tokens=False)["input_ids"])
    old = tiny.cfg.n_ctx
    tiny.cfg.n_ctx = n_first + 4 + 3
    try:
        (conv,) = play(
            tiny,
            1,
            seed=0,
            criteria=["colon"],
            corpus=SHORT,
            max_new_tokens=4,
            n_paragraphs=3,
            max_attempts=2,
        )
    finally:
        tiny.cfg.n_ctx = old
    assert conv.meta["stopped"] == "context" and conv.meta["planned_paragraphs"] == 3
    assert conv.num_paragraphs <= 1
    conv.validate()
    assert sum(m["role"] == "assistant" for m in conv.full_messages) == sum(conv.trajectory)


@pytest.mark.slow
def test_play_smollm(smollm):
    convs = play(
        smollm,
        1,
        seed=0,
        criteria=["colon", "number"],
        corpus=SHORT,
        max_new_tokens=16,
        n_paragraphs=2,
        max_attempts=1,
        batch_size=2,
    )
    assert [c.num_paragraphs for c in convs] == [2, 2]
    for c in convs:
        c.validate()
        assert c.meta["generated_tokens"] > 0
        assert all(
            a.reward == (bool(a.modified_text) and CRITERIA[c.reward_fn].check(a.modified_text))
            for p in c.paragraphs
            for a in p.attempts
        )
    data = label(convs, smollm, every_success=True, min_side_tokens=0, allow_empty=True)
    assert all(g in ("colon", "number") for g in data.groups)


def test_criterion_splits():
    names = list(CRITERIA)
    splits = criterion_splits(names, n_splits=10, n_train=35, seed=0)
    assert len(splits) == 10
    for train, test in splits:
        assert len(train) == 35 and len(test) == 15
        assert sorted(train + test) == sorted(names)
    assert len({tuple(t) for _, t in splits}) == 10
    assert criterion_splits(names, n_splits=3, n_train=35, seed=0) == splits[:3]
    assert criterion_splits(names, n_splits=3, n_train=35, seed=1) != splits[:3]
    with pytest.raises(InputError, match="at most 4"):
        criterion_splits(names[:5], n_train=35)
