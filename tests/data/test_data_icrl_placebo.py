"""Placebo turns: failed attempts cut so that their sides match their own sequence's real turn,
and within-turn pseudo-cuts."""

from __future__ import annotations

import itertools

import pytest
import torch

from value_lens.data.icrl import generate_scripted, label
from value_lens.data.placebo import matched_cut, pseudo_cut, real_cut, rematch_placebo
from value_lens.data.tokens import (
    AFTER,
    BEFORE,
    IGNORE,
    PLACEBO_AFTER,
    PLACEBO_BEFORE,
    REWARD,
    LabelledTokens,
)
from value_lens.errors import InputError
from value_lens.testing import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def convs():
    return generate_scripted(4, seed=2, criteria=["colon", "animal", "dash", "month"])


def _attempts(conv):
    """message index -> attempt, built from the conversation's own structure."""
    index = conv.assistant_index()
    return {
        index[(p.paragraph_position, a.attempt)]: a
        for p in conv.paragraphs
        for a in p.attempts
        if (p.paragraph_position, a.attempt) in index
    }


def _sides(lab, s, e, before, after):
    """(tokens labelled ``before``, tokens labelled ``after``) in turn [s, e)."""
    return int((lab[s:e] == before).sum()), int((lab[s:e] == after).sum())


def _check_matched(data, tolerance):
    """Every placebo turn with a cut is labelled around it and matches its sequence's real turn."""
    n = 0
    for lab, meta in zip(data.labels, data.meta, strict=True):
        rb, ra = _sides(lab, meta["turn_start"], meta["turn_end"], BEFORE, AFTER)
        for t in meta["placebo_turns"]:
            s, e = t["turn_start"], t["turn_end"]
            if t["cut"] is None:
                assert not ((lab[s:e] == PLACEBO_BEFORE) | (lab[s:e] == PLACEBO_AFTER)).any()
                continue
            k0, k1 = t["cut"]
            assert (lab[s:k0] == PLACEBO_BEFORE).all() and (lab[k1 + 1 : e] == PLACEBO_AFTER).all()
            assert (lab[k0 : k1 + 1] == IGNORE).all()
            pb, pa = _sides(lab, s, e, PLACEBO_BEFORE, PLACEBO_AFTER)
            assert abs(pb - rb) <= tolerance and abs(pa - ra) <= tolerance, (pb, rb, pa, ra)
            n += 1
    return n


def test_placebo_turns_are_failed_attempts_matched_to_their_own_real_turn(convs, tok):
    plain = label(convs, tok)
    data, report = label(convs, tok, placebo=True, placebo_tolerance=6, return_report=True)
    by_id = {c.conversation_id: c for c in convs}
    for p_lab, lab, meta in zip(plain.labels, data.labels, data.meta, strict=True):
        for code in (BEFORE, AFTER, REWARD):  # real labels are untouched by placebo labelling
            assert torch.equal(p_lab == code, lab == code)
        attempts = _attempts(by_id[meta["conversation_id"]])
        for t in meta["placebo_turns"]:
            assert t["message_index"] < meta["message_index"]
            assert attempts[t["message_index"]].reward is False  # only failed attempts
    n = _check_matched(data, tolerance=6)
    unmatched = sum(t["cut"] is None for m in data.meta for t in m["placebo_turns"])
    assert n > 0 and unmatched > 0  # both happen on this data, and the drops are reported
    assert sum("placebo not matched" in r for _, _, r in report.dropped) == unmatched


def test_placebo_cuts_stay_matched_after_a_subset(convs, tok):
    """The old cuts were drawn from every real turn of a criterion, so keeping one turn per
    criterion left placebo cuts unlike the kept real turn; each is now paired within its sequence."""
    data = label(convs, tok, placebo=True, every_success=True)
    assert _check_matched(data.shortest_per_group(1), tolerance=5) > 0
    assert _check_matched(data.select_groups(["animal"]), tolerance=5) >= 0


def test_rematch_recuts_mismatched_placebo_turns_and_is_idempotent(convs, tok):
    data = label(convs, tok, placebo=True)
    # plant the old geometry: every placebo turn cut at 20% of its length, whatever the real turn
    labels = [lab.clone() for lab in data.labels]
    metas = []
    for lab, meta in zip(labels, data.meta, strict=True):
        turns = []
        for t in meta["placebo_turns"]:
            s, e = t["turn_start"], t["turn_end"]
            k = s + (e - s) // 5
            lab[s:e] = torch.where(
                (lab[s:e] == PLACEBO_BEFORE) | (lab[s:e] == PLACEBO_AFTER), IGNORE, lab[s:e]
            )
            lab[s:k], lab[k + 1 : e] = PLACEBO_BEFORE, PLACEBO_AFTER
            turns.append({**t, "cut": [k, k]})
        metas.append({**meta, "placebo_turns": turns})
    skewed = LabelledTokens(data.input_ids, labels, data.groups, meta=metas)
    fixed, report = rematch_placebo(skewed)
    assert report.kept == _check_matched(fixed, tolerance=5) > 0
    assert all(torch.equal(a, b) for a, b in zip(fixed.labels, data.labels, strict=True))
    again, _ = rematch_placebo(fixed)
    assert all(torch.equal(a, b) for a, b in zip(again.labels, fixed.labels, strict=True))
    assert "placebo turns matched" in report.describe()


@pytest.mark.parametrize("before,after,reward", [(5, 3, 1), (2, 9, 2), (7, 7, 3)])
def test_matched_cut_minimises_the_worst_side_like_brute_force(before, after, reward):
    for n, tol in itertools.product(range(reward + 2, 30), range(0, 5)):
        best = None
        for k0 in range(0, n - reward + 1):  # every placement of the span in a turn at 100
            b, a = k0, n - reward - k0
            dev = max(abs(b - before), abs(a - after))
            if dev <= tol and min(b, a) >= 1 and (best is None or dev < best[0]):
                best = (dev, k0)
        got = matched_cut(
            before=before, after=after, reward=reward, start=100, end=100 + n, tolerance=tol
        )
        if best is None:
            assert got is None
        else:
            k0, k1 = got
            assert k1 - k0 + 1 == reward
            b, a = k0 - 100, n - reward - (k0 - 100)
            assert max(abs(b - before), abs(a - after)) == best[0]
    with pytest.raises(InputError, match="reward >= 1"):
        matched_cut(before=1, after=1, reward=0, start=0, end=5)


def test_pseudo_cut_sits_in_the_before_span_in_the_real_ratio():
    for start, first, width, end in [(0, 40, 1, 60), (10, 30, 3, 90), (5, 9, 1, 12)]:
        last = first + width - 1
        cut = pseudo_cut(start=start, first=first, last=last, end=end)
        if first - start - width < 2:
            assert cut is None
            continue
        k0, k1 = cut
        assert start < k0 <= k1 < first - 1 and k1 - k0 + 1 == width
        pb, pa = k0 - start, first - 1 - k1
        rb, ra = first - start, end - 1 - last
        assert abs(pb / (pb + pa) - rb / (rb + ra)) < 1.5 / (pb + pa)


def test_real_cut_reads_reward_tokens_or_the_before_after_gap():
    lab = torch.tensor([-1, 0, 0, 2, 2, 1, 1, -1])
    assert real_cut(lab, 1, 7) == (3, 4)
    assert real_cut(torch.tensor([0, 0, 1, 1]), 0, 4) == (2, 1)  # adjacent: empty gap
    assert real_cut(torch.tensor([0, 0, 0]), 0, 3) is None


def test_every_failed_attempt_is_labelled_once(convs, tok):
    data = label(convs, tok, placebo=True, every_success=True)
    seen: set[tuple[str, int]] = set()
    for meta in data.meta:
        for t in meta["placebo_turns"]:
            key = (meta["conversation_id"], t["message_index"])
            assert key not in seen
            seen.add(key)
    assert seen


def test_turn_bounds_cover_real_and_placebo_turns(convs, tok):
    data = label(convs, tok, placebo=True)
    for i, meta in enumerate(data.meta):
        start, end = data.turn_bounds(i)
        labelled = data.labels[i] != IGNORE
        assert (start[labelled] >= 0).all()
        for t in [meta, *meta["placebo_turns"]]:
            s, e = t["turn_start"], t["turn_end"]
            assert (start[s:e] == s).all() and (end[s:e] == e).all()
