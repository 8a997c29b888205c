"""Scripted generation: the paper's schedule, verification, determinism, resume, storage."""

from __future__ import annotations

import json

import pytest

from value_lens.data.icrl import (
    CRITERIA,
    Conversation,
    generate_scripted,
    load_conversations,
    load_corpus,
    save_conversations,
)
from value_lens.data.icrl.conversation import split_thinking
from value_lens.data.icrl.script import MOVE_ON
from value_lens.errors import InputError

NAMES = ["colon", "semicolon", "first_person", "musical_instrument", "month", "country"]


@pytest.fixture(scope="module")
def convs():
    return generate_scripted(8, seed=3, criteria=NAMES)


def test_schedule_invariants(convs):
    corpus = {p.id: p.text for p in load_corpus()}
    assert len(convs) == 8 * len(NAMES)
    for c in convs:
        crit = CRITERIA[c.reward_fn]
        n, d = c.num_paragraphs, c.discovery_paragraph
        assert 3 <= n <= 8 and 1 <= d <= n - 1
        assert c.trajectory == [len(p.attempts) for p in c.paragraphs]
        assert len({p.paragraph_index for p in c.paragraphs}) == n
        for p in c.paragraphs:
            assert p.original_text == corpus[p.paragraph_index]
            assert not crit.check(p.original_text)  # never a paragraph that already passes
            assert 1 <= len(p.attempts) <= 5
            for a in p.attempts:  # every +1 satisfies, every -1 fails
                assert crit.check(a.modified_text) is a.reward
                assert a.modified_text != p.original_text
            rewards = [a.reward for a in p.attempts]
            assert not any(rewards[:-1])
            if p.paragraph_position > d:
                assert rewards == [True]
                assert "realis" not in p.attempts[0].thinking
            elif p.paragraph_position == d:
                assert 2 <= len(rewards) <= 5 and rewards[-1]
            else:
                assert rewards[-1] or len(rewards) >= 2
            assert p.success == rewards[-1]


def test_schedule_statistics():
    convs = generate_scripted(60, seed=0, criteria=["dash"])
    pre = [p for c in convs for p in c.paragraphs if p.paragraph_position < c.discovery_paragraph]
    fail_rate = sum(not p.success for p in pre) / len(pre)
    assert 0.15 < fail_rate < 0.45  # p = 0.3
    assert {c.num_paragraphs for c in convs} == set(range(3, 9))
    thinking = {a.thinking for c in convs for p in c.paragraphs for a in p.attempts}
    assert len(thinking) > 40  # many phrasings, not one template


def test_messages_follow_the_protocol(convs):
    for c in convs[:10]:
        msgs = c.full_messages
        assert msgs[0]["role"] == "system" and "+1" in msgs[0]["content"]
        it = iter(msgs[1:])
        for p in c.paragraphs:
            m = next(it)
            assert m == {
                "role": "user",
                "content": f"Paragraph {p.paragraph_position}:\n\n{p.original_text}",
            }
            for i, a in enumerate(p.attempts):
                m = next(it)
                assert m["role"] == "assistant" and m["content"].startswith("<thinking>")
                thinking, off = split_thinking(m["content"])
                assert thinking == a.thinking and m["content"][off:] == a.modified_text
                fb = next(it)["content"]
                last = i == len(p.attempts) - 1
                assert fb == ("+1" if a.reward else (MOVE_ON if last else "-1"))
        assert next(it, None) is None


def test_deterministic_and_seed_dependent(convs):
    again = generate_scripted(8, seed=3, criteria=NAMES)
    assert [c.to_dict() for c in again] == [c.to_dict() for c in convs]
    other = generate_scripted(8, seed=4, criteria=NAMES)
    assert [c.to_dict() for c in other] != [c.to_dict() for c in convs]
    # a conversation does not depend on which others were generated alongside it
    alone = generate_scripted(8, seed=3, criteria=["month"])
    assert [c.to_dict() for c in alone] == [c.to_dict() for c in convs if c.reward_fn == "month"]


def test_resume_skips_finished(tmp_path, convs):
    out = tmp_path / "gen.jsonl"
    first = generate_scripted(3, seed=3, criteria=NAMES[:2], out=out)
    assert len(out.read_text().splitlines()) == 6
    # simulate a crash mid-write: torn final line
    with out.open("a") as fh:
        fh.write('{"format": "value_lens/icrl-conv')
    full = generate_scripted(8, seed=3, criteria=NAMES[:2], out=out)
    lines = out.read_text().splitlines()
    assert len(lines) == 16 and len({json.loads(x)["conversation_id"] for x in lines}) == 16
    by_id = {c.conversation_id: c for c in full}
    assert [by_id[c.conversation_id] for c in first] == first
    assert [c.to_dict() for c in full] == [c.to_dict() for c in convs[:16]]
    with pytest.raises(InputError, match="seed 3"):
        generate_scripted(8, seed=5, criteria=NAMES[:2], out=out)


def test_save_load_roundtrip_and_validation(tmp_path, convs):
    path = save_conversations(convs, tmp_path / "c.jsonl")
    back = load_conversations(path)
    assert back == convs
    rec = json.loads(path.read_text().splitlines()[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rec, "version": 99}) + "\n")
    with pytest.raises(InputError, match="version 99"):
        load_conversations(bad)
    bad.write_text(json.dumps({**rec, "trajectory": [1]}) + "\n")
    with pytest.raises(InputError, match="line 1.*trajectory"):
        load_conversations(bad)
    bad.write_text(json.dumps({**rec, "format": "other"}) + "\n")
    with pytest.raises(InputError, match="not a value_lens"):
        load_conversations(bad)
    bad.write_text("{not json\n")
    with pytest.raises(InputError, match="line 1"):
        load_conversations(bad)
    d = convs[0].to_dict()
    del d["paragraphs"][0]["attempts"][0]["modified_text"]
    with pytest.raises(InputError, match=convs[0].conversation_id):
        Conversation.from_dict(d)


def test_corpus_sources(tmp_path):
    texts = [f"Paragraph number {w} talks about rivers, hills and old towns." for w in "abcd"]
    txt = tmp_path / "c.txt"
    txt.write_text("\n\n".join(texts) + "\n")
    assert [p.text for p in load_corpus(txt)] == texts
    jl = tmp_path / "c.jsonl"
    jl.write_text(
        "".join(
            json.dumps({"id": f"x{i}", "topic": "t", "text": t}) + "\n" for i, t in enumerate(texts)
        )
    )
    assert [p.id for p in load_corpus(jl)] == ["x0", "x1", "x2", "x3"]
    assert load_corpus([{"text": t} for t in texts])[1].text == texts[1]
    with pytest.raises(InputError, match="at least 3"):
        load_corpus(texts[:2])
    with pytest.raises(InputError, match="fewer than 5 words"):
        load_corpus([*texts, "Too short."])
    with pytest.raises(InputError, match="does not exist"):
        load_corpus(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="at least 3"):
        load_corpus([])


def test_corpus_too_small_for_a_criterion():
    texts = ["It was built in 1850 and rebuilt in 1900 by the town council."] * 2 + [
        "The old mill stands by the river and grinds flour for the town."
    ] * 2
    texts = [f"{t} Item {i}." for i, t in enumerate(texts)]
    with pytest.raises(InputError, match="'number'"):
        generate_scripted(1, seed=0, criteria=["number"], corpus=texts)
    with pytest.raises(InputError, match="unknown criterion"):
        generate_scripted(1, seed=0, criteria=["nope"])
