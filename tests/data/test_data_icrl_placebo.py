"""Placebo turns: failed attempts labelled around a pseudo-reward cut matched to real turns."""

from __future__ import annotations

import pytest
import torch

from value_lens.data.icrl import generate_scripted, label
from value_lens.data.icrl.placebo import place_cut, relative_cut
from value_lens.data.tokens import AFTER, BEFORE, IGNORE, PLACEBO_AFTER, PLACEBO_BEFORE, REWARD
from value_lens.testing import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def convs():
    return generate_scripted(3, seed=2, criteria=["colon", "animal", "dash", "month"])


def _attempts(conv):
    """message index -> attempt, built from the conversation's own structure."""
    index = conv.assistant_index()
    return {
        index[(p.paragraph_position, a.attempt)]: a
        for p in conv.paragraphs
        for a in p.attempts
        if (p.paragraph_position, a.attempt) in index
    }


def test_cut_geometry():
    assert relative_cut(first=5, last=7, start=5, end=15) == (0.0, 0.2)
    assert place_cut((0.0, 0.2), start=100, end=110) == (100, 102)
    assert place_cut((0.99, 0.99), start=0, end=10) == (9, 9)  # never past the turn


def test_placebo_turns_are_failed_attempts_cut_like_real_turns(convs, tok):
    plain = label(convs, tok)
    data = label(convs, tok, placebo=True)
    by_id = {c.conversation_id: c for c in convs}
    n_placebo = 0
    real_cuts: dict[str, list[tuple[float, float]]] = {}
    for lab, meta, g in zip(data.labels, data.meta, data.groups, strict=True):
        reward = (lab == REWARD).nonzero().flatten()
        n = meta["turn_end"] - meta["turn_start"]
        real_cuts.setdefault(g, []).append(
            ((int(reward[0]) - meta["turn_start"]) / n, (int(reward[-1]) - meta["turn_start"]) / n)
        )
    for p_lab, lab, meta, g in zip(plain.labels, data.labels, data.meta, data.groups, strict=True):
        # real labels are untouched by placebo labelling
        for code in (BEFORE, AFTER, REWARD):
            assert torch.equal(p_lab == code, lab == code)
        attempts = _attempts(by_id[meta["conversation_id"]])
        covered = torch.zeros_like(lab, dtype=torch.bool)
        for t in meta["placebo_turns"]:
            n_placebo += 1
            assert t["message_index"] < meta["message_index"]
            assert attempts[t["message_index"]].reward is False  # only failed attempts
            s, e, (k0, k1) = t["turn_start"], t["turn_end"], t["cut"]
            assert (lab[s:k0] == PLACEBO_BEFORE).all() and (lab[k1 + 1 : e] == PLACEBO_AFTER).all()
            assert (lab[k0 : k1 + 1] == IGNORE).all()
            covered[s:e] = True
            # the cut sits where some real turn of this criterion has its reward (same rounding)
            n = e - s
            assert any(place_cut(c, start=s, end=e) == (k0, k1) for c in real_cuts[g]), n
        placebo_tokens = (lab == PLACEBO_BEFORE) | (lab == PLACEBO_AFTER)
        assert not (placebo_tokens & ~covered).any()
    assert n_placebo >= len(data)  # the scripted game fails before discovery


def test_every_failed_attempt_is_labelled_once(convs, tok):
    data = label(convs, tok, placebo=True, every_success=True)
    seen: set[tuple[str, int]] = set()
    for meta in data.meta:
        for t in meta["placebo_turns"]:
            key = (meta["conversation_id"], t["message_index"])
            assert key not in seen
            seen.add(key)
    assert seen


def test_placebo_is_seeded(convs, tok):
    a = label(convs, tok, placebo=True, placebo_seed=1)
    b = label(convs, tok, placebo=True, placebo_seed=1)
    c = label(convs, tok, placebo=True, placebo_seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.labels, b.labels, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.labels, c.labels, strict=True))


def test_turn_bounds_cover_real_and_placebo_turns(convs, tok):
    data = label(convs, tok, placebo=True)
    for i, meta in enumerate(data.meta):
        start, end = data.turn_bounds(i)
        labelled = data.labels[i] != IGNORE
        assert (start[labelled] >= 0).all()
        for t in [meta, *meta["placebo_turns"]]:
            s, e = t["turn_start"], t["turn_end"]
            assert (start[s:e] == s).all() and (end[s:e] == e).all()
