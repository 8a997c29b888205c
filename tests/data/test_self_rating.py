"""The self-rating builder: prompts at the chosen points, every answer counted, the states just
before the rating token labelled high vs low within each task type."""

import numpy as np
import pytest
import torch

import value_lens.data.self_rating as sr
from value_lens.core.generate import Generation
from value_lens.data.icrl import generate_scripted
from value_lens.data.rating_labels import RatingSplit, retest
from value_lens.data.tokens import AFTER, BEFORE, IGNORE
from value_lens.errors import InputError

CORPUS = [f"Topic {c} is studied widely. It has a long history, and many uses." for c in "ABCDEFGH"]


@pytest.fixture(scope="module")
def convs():
    return generate_scripted(2, seed=3, criteria=["colon", "dash"], corpus=CORPUS)


def test_icrl_points_sit_after_each_paragraphs_last_feedback(convs):
    pts = sr.icrl_points(convs)
    assert len(pts) == sum(c.num_paragraphs for c in convs)
    for p in pts:
        conv = next(c for c in convs if c.conversation_id == p.source_id)
        assert p.task == conv.reward_fn
        assert p.messages[-1] == {"role": "user", "content": sr.QUESTION}
        body = list(p.messages[:-1])
        assert body == conv.full_messages[: len(body)]  # a prefix of the conversation
        pos = p.meta["paragraph_position"]
        para = conv.paragraphs[pos - 1]
        assert p.meta["attempt"] == len(para.attempts)
        assert p.meta["last_reward"] == para.attempts[-1].reward
        # it ends with the feedback (+1/-1) to that last attempt
        assert body[-2]["role"] == "assistant" and body[-1]["content"] in ("+1", "-1")
        disc = conv.discovery_paragraph
        assert p.meta["discovered"] == (disc is not None and pos >= disc)
    every = sr.icrl_points(convs, every_attempt=True, task=lambda _c: "all")
    assert len(every) == sum(sum(c.trajectory) for c in convs)
    assert {p.task for p in every} == {"all"}


def test_rollout_points():
    pts = sr.rollout_points([[{"role": "user", "content": "hi"}]] * 2, ["t1", "t2"], ids=["a", "b"])
    assert [(p.task, p.source_id, p.messages[-1]["role"]) for p in pts] == [
        ("t1", "a", "user"),
        ("t2", "b", "user"),
    ]
    with pytest.raises(InputError, match="one task type"):
        sr.rollout_points([[{"role": "user", "content": "hi"}]], ["t1", "t2"])


ANSWERS = {  # (point, repeat) -> answer text; every status appears
    0: ["73", "70"],
    1: ["about 20", "25/100"],
    2: ["I can't rate that", "40"],
    3: ["banana", "150"],
    4: ["90", "95"],
    5: ["10", "15"],
}


def fake_generate(model, prompts, _config, *, seed=0, **_):
    """Answers from ANSWERS (point from the prompt's "task i", repeat from the seed)."""
    r = seed // 1000
    out = []
    for msgs in prompts:
        i = int(msgs[0]["content"].split()[1])
        text = " " + ANSWERS[i][r]
        ids = torch.tensor(model.tokenizer(text, add_special_tokens=False)["input_ids"])
        out.append(Generation(f"p{i}", text, torch.tensor([1, 2, 3 + i]), ids, False))
    return out


@pytest.fixture
def ratings(tiny, monkeypatch):
    monkeypatch.setattr(sr, "generate", fake_generate)
    msgs = [[{"role": "user", "content": f"task {i}"}] for i in range(6)]
    pts = sr.rollout_points(msgs, ["a", "a", "a", "b", "b", "b"])
    return sr.rate(tiny, pts, sr.RatingConfig(repeats=2, temperature=1.0))


def test_every_answer_is_counted(ratings):
    s = ratings.summary()
    assert s["n_answers"] == 12 and s["n_skipped"] == 0
    assert s["status"] == {"ok": 9, "refusal": 1, "no_number": 1, "out_of_range": 1}
    assert s["refusal_rate"] == pytest.approx(1 / 12)
    assert s["unparsed_rate"] == pytest.approx(3 / 12)
    v = ratings.values()
    np.testing.assert_array_equal(
        v, [[73, 70], [20, 25], [np.nan, 40], [np.nan, np.nan], [90, 95], [10, 15]]
    )
    # test-retest on the 4 points where both repeats parsed
    a, b = np.array([73, 20, 90, 10.0]), np.array([70, 25, 95, 15.0])
    assert s["retest"]["n_pairs"] == 4
    assert s["retest"]["pearson"] == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert s["retest"]["mean_abs_diff"] == pytest.approx(4.5)
    assert s["retest"]["within_10"] == 1.0 and s["retest"]["exact_agreement"] == 0.0
    assert s["distribution"]["n"] == 9 and s["distribution"]["quantiles"]["max"] == 95.0


def test_state_is_just_before_the_rating_token(ratings, tiny):
    rec = next(r for r in ratings.records if r.point == 1 and r.repeat == 0)  # " about 20"
    tok = tiny.tokenizer
    assert not any(ch.isdigit() for ch in tok.decode(rec.output_ids[: rec.rating_at].tolist()))
    assert tok.decode([int(rec.output_ids[rec.rating_at])]).strip().startswith("2")
    assert rec.rating_at > 0  # " about" comes first
    state = rec.state_ids()
    assert torch.equal(state[:3], rec.prompt_ids)
    assert torch.equal(state[3:], rec.output_ids[: rec.rating_at])


def test_labelled_high_vs_low_within_task(ratings):
    data, report = ratings.labelled()
    # task a: means 71.5, 22.5, 40 -> median 40: 71.5 high, 22.5 low, 40 tied (dropped)
    # task b: 92.5, 12.5 (point 3 unrated) -> median 52.5
    assert report["thresholds"] == {"a": [40.0, 40.0], "b": [52.5, 52.5]}
    assert report["counts"]["a"] == {"high": 1, "low": 1, "middle": 1}
    assert report["unrated_points"] == 1 and report["dropped_tasks"] == []
    got = {(m["step"], data.groups[i]): int(data.labels[i][-1]) for i, m in enumerate(data.meta)}
    assert got == {(0, "a"): AFTER, (1, "a"): BEFORE, (4, "b"): AFTER, (5, "b"): BEFORE}
    for i in range(len(data)):
        assert (data.labels[i][:-1] == IGNORE).all()
        assert data.targets[i][-1] == pytest.approx(data.meta[i]["rating"])
        assert data.meta[i]["turn_end"] == data.input_ids[i].numel()
    # a task with one side only is dropped and reported
    data2, report2 = ratings.labelled(RatingSplit(mode="fixed", low=30, high=80))
    assert report2["dropped_tasks"] == ["a"] and set(data2.groups) == {"b"}
    with pytest.raises(InputError, match="no task type has both"):
        ratings.labelled(RatingSplit(mode="fixed", low=5, high=99))


def test_split_rules():
    r = np.array([10.0, 20, 30, 40, 50, 60])
    t = RatingSplit(mode="tertiles")
    lo, hi = t.thresholds(r)
    assert [t.side(v, lo, hi) for v in r] == [BEFORE, BEFORE, IGNORE, IGNORE, AFTER, AFTER]
    with pytest.raises(InputError, match="low < high"):
        RatingSplit(mode="fixed", low=50, high=50)
    with pytest.raises(InputError, match="mode"):
        RatingSplit(mode="quartiles")
    assert retest(np.array([[1.0], [2.0]])) == {"n_pairs": 0}
    with pytest.raises(InputError, match="temperature"):
        sr.RatingConfig(repeats=2)


def test_rate_runs_the_model_end_to_end(tiny, convs):
    tiny.cfg.n_ctx, old = 8192, tiny.cfg.n_ctx
    try:
        pts = sr.icrl_points(convs[:1])[:2]
        r = sr.rate(tiny, pts, sr.RatingConfig(max_new_tokens=4, repeats=2, temperature=1.0))
    finally:
        tiny.cfg.n_ctx = old
    assert len(r.records) == 4 and r.skipped == []
    for rec in r.records:
        assert 0 < rec.output_ids.numel() <= 4
        assert rec.parsed.status in ("ok", "refusal", "no_number", "out_of_range")
