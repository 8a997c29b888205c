"""Structural labelling: positions, alignment, BOS, context, drops, property tests."""

from __future__ import annotations

from random import Random
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from value_lens.core.chat import format_chat
from value_lens.data.icrl import CRITERIA, Conversation, generate_scripted, label, load_corpus
from value_lens.data.icrl.conversation import assistant_message
from value_lens.data.icrl.label import tokenize_with_offsets
from value_lens.data.tokens import AFTER, BEFORE, IGNORE, REWARD
from value_lens.errors import InputError
from value_lens.fitting.collect import collect_stats
from value_lens.testing import tiny_tokenizer

NAMES = ["colon", "dash", "first_person", "animal", "colour", "month", "fabric", "number"]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def convs():
    return generate_scripted(4, seed=1, criteria=NAMES)


def _check_structure(conv, ids, lab, tok, meta):
    """Labelled tokens lie only in the labelled assistant body; spans map to REWARD exactly.

    The oracle is the paper's rendering: the WHOLE conversation through the chat template. Each
    labelled sequence must be a prefix of its tokens, so the labelled turn sits in exactly the
    context the paper's single pass gave it (no think block the full conversation lacks).
    """
    chat = format_chat(tok, conv.full_messages, enable_thinking=False)
    text = chat.text
    ids2, offs = tokenize_with_offsets(tok, text, prepend_bos=False)
    assert ids2[: ids.numel()] == ids.tolist()
    ids2, offs = ids2[: ids.numel()], offs[: ids.numel()]
    span = chat.spans[meta["message_index"]]
    assert span.role == "assistant"
    body_start = text.index("</thinking>", span.start) + len("</thinking>")
    for j in torch.nonzero(lab != IGNORE).flatten().tolist():
        s, e = offs[j]
        assert body_start <= s and e <= span.end, "labelled token outside the assistant body"
        for other in chat.spans:
            if other.role in ("user", "system"):
                assert e <= other.start or s >= other.end, "labelled token in a user/system turn"
    return text, offs, body_start, span.end


def _hit(off, sp):
    return off[0] < sp[1] and off[1] > sp[0]


def test_labels_only_in_assistant_body(convs, tok):
    data = label(convs, tok)
    by_id = {c.conversation_id: c for c in convs}
    assert len(data) >= len(convs) - 2
    for i in range(len(data)):
        m = data.meta[i]
        conv = by_id[m["conversation_id"]]
        assert m["paragraph_position"] == conv.discovery_paragraph + 1
        assert data.groups[i] == conv.reward_fn
        ids, lab = data.input_ids[i], data.labels[i]
        text, offs, b0, b1 = _check_structure(conv, ids, lab, tok, m)
        # sequence ends with the labelled turn; turn_end is one past the body
        assert m["turn_end"] == max(torch.nonzero(lab != IGNORE).flatten().tolist()) + 1
        assert offs[m["turn_start"]][1] > b0 and offs[m["turn_end"] - 1][0] < b1
        r = torch.nonzero(lab == REWARD).flatten()
        assert (lab[: r[0]][lab[: r[0]] != IGNORE] == BEFORE).all()
        assert (lab[r[-1] + 1 :][lab[r[-1] + 1 :] != IGNORE] == AFTER).all()
        assert int((lab == BEFORE).sum()) >= 3 and int((lab == AFTER).sum()) >= 3
        # the assistant's paragraph is labelled, never the user's copy of it
        body = text[b0:b1].strip()
        crit = CRITERIA[conv.reward_fn]
        assert crit.check(body)
        abs_spans = [(b0 + a, b0 + b) for a, b in crit.spans(text[b0:b1])]
        assert all(any(_hit(offs[j], sp) for sp in abs_spans) for j in r.tolist())
        assert all(any(_hit(offs[j], sp) for j in r.tolist()) for sp in abs_spans)


def test_every_success_and_report(convs, tok):
    one = label(convs[:12], tok)
    many, rep = label(convs[:12], tok, every_success=True, return_report=True)
    assert len(many) > 2 * len(one)
    assert rep.kept == len(many)
    succ = sum(p.success for c in convs[:12] for p in c.paragraphs)
    assert rep.kept + len(rep.dropped) == succ
    assert all("too few tokens" in r for _, _, r in rep.dropped)


def test_min_side_tokens_drops(convs, tok):
    _, rep = label(convs, tok, min_side_tokens=3, return_report=True)
    strict, rep2 = label(convs, tok, min_side_tokens=40, return_report=True)
    assert len(rep2.dropped) > len(rep.dropped)
    for i in range(len(strict)):
        assert int((strict.labels[i] == BEFORE).sum()) >= 40
    excl = generate_scripted(3, seed=0, criteria=["ends_with_exclamation"])
    with pytest.raises(InputError, match="too few tokens"):
        label(excl, tok)  # the reward is the last character: nothing after it
    data = label(excl, tok, min_side_tokens=0)
    assert len(data) == 3


def test_bos_and_context_with_model(convs, tok):
    fake = SimpleNamespace(
        tokenizer=tok, cfg=SimpleNamespace(n_ctx=100_000, default_prepend_bos=True)
    )
    tok_bos = tiny_tokenizer()
    tok_bos.bos_token = "<|endoftext|>"
    fake.tokenizer = tok_bos
    plain = label(convs[:3], tok)
    with_bos = label(convs[:3], fake)
    bos_id = tok_bos.bos_token_id
    for a, b, la, lb in zip(
        plain.input_ids, with_bos.input_ids, plain.labels, with_bos.labels, strict=True
    ):
        assert b[0] == bos_id and torch.equal(b[1:], a)
        assert lb[0] == IGNORE and torch.equal(lb[1:], la)
    small = SimpleNamespace(
        tokenizer=tok, cfg=SimpleNamespace(n_ctx=200, default_prepend_bos=False)
    )
    with pytest.raises(InputError, match=convs[0].conversation_id):
        label(convs[:1], small)


SHORT = [
    f"Town {c} sits by a river. It has an old bridge, a mill and a market." for c in "ABCDEFGHIJ"
]


def test_feeds_collect_stats(tiny):
    convs = generate_scripted(1, seed=0, criteria=["colon", "animal"], corpus=SHORT)
    data, rep = label(convs, tiny, drop_too_long=True, return_report=True)
    assert all(len(x) <= tiny.cfg.n_ctx for x in data.input_ids)
    assert all("too long" in r for _, _, r in rep.dropped)
    stats = collect_stats(tiny, data, layers=[0, 1], progress=False)
    assert set(stats.groups) == set(data.groups)
    counts = data.label_counts()
    assert int(stats.count.sum()) >= counts[BEFORE] + counts[AFTER]


def test_unknown_criterion_and_unalignable(convs, tok):
    d = convs[0].to_dict()
    d["reward_fn"] = "not_a_rule"
    bad = Conversation.from_dict(d)
    with pytest.raises(InputError, match="not_a_rule"):
        label([bad], tok)
    with pytest.raises(InputError, match="line up"):
        label(convs[:1], tok, spans=lambda _c, _p, body: [(len(body) + 50, len(body) + 60)])


def _conversation(body: str, name: str) -> Conversation:
    first = "The first paragraph is about a quiet town near the hills."
    msgs = [
        {"role": "system", "content": "Play the game."},
        {"role": "user", "content": f"Paragraph 1:\n\n{first}"},
        {"role": "assistant", "content": assistant_message("Guess.", first + " More.")},
        {"role": "user", "content": "+1"},
        {"role": "user", "content": f"Paragraph 2:\n\n{body}"},
        {"role": "assistant", "content": assistant_message("I know the rule.", body)},
        {"role": "user", "content": "+1"},
    ]
    d = {
        "conversation_id": "prop__conv00",
        "reward_fn": name,
        "num_paragraphs": 2,
        "discovery_paragraph": 1,
        "trajectory": [1, 1],
        "full_messages": msgs,
        "paragraphs": [
            {
                "paragraph_position": 1,
                "original_text": first,
                "attempts": [
                    {"thinking": "Guess.", "modified_text": first + " More.", "reward": True}
                ],
            },
            {
                "paragraph_position": 2,
                "original_text": body,
                "attempts": [
                    {"thinking": "I know the rule.", "modified_text": body, "reward": True}
                ],
            },
        ],
    }
    return Conversation.from_dict(d)


_WORDS = [
    "the",
    "river",
    "old",
    "town",
    "violin",
    "fox",
    "wolves",
    "red",
    "March",
    "silk",
    "I",
    "we",
    "1850",
    "a",
    "bridge",
    "and",
    "of",
    "hills",
    "music",
    "Paris",
]
_PUNCT = [" ", " ", " ", ", ", "; ", ": ", " — ", ". ", "! ", " (", ") ", "...", " & ", "/", "% "]


def _assert_exact(data, tok, name):
    ids, lab = data.input_ids[0], data.labels[0]
    text = tok.decode(ids)  # the tiny tokenizer round-trips bytes exactly
    _, offs = tokenize_with_offsets(tok, text, prepend_bos=False)
    m = data.meta[0]
    b0 = offs[m["turn_start"]][0]
    b1 = offs[m["turn_end"] - 1][1]
    spans = [(b0 + s, b0 + e) for s, e in CRITERIA[name].spans(text[b0:b1].lstrip())]
    shift = len(text[b0:b1]) - len(text[b0:b1].lstrip())
    spans = [(s + shift, e + shift) for s, e in spans]
    reward = set(torch.nonzero(lab == REWARD).flatten().tolist())
    overlapping = {j for j, (s, e) in enumerate(offs) for ss, se in spans if s < se and e > ss}
    assert reward == overlapping  # every reward word's tokens, and no other token
    runs, cur = [], []
    for j in sorted(reward):
        if cur and j != cur[-1] + 1:
            runs.append(cur)
            cur = []
        cur.append(j)
    runs.append(cur)
    covered = "".join(tok.decode(ids[r[0] : r[-1] + 1]) for r in runs)
    for s, e in spans:
        assert text[s:e] in covered
    words = [text[s:e] for s, e in spans]
    for r in runs:
        dec = tok.decode(ids[r[0] : r[-1] + 1])
        assert any(w in dec for w in words)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tokens=st.lists(
        st.tuples(st.sampled_from(_WORDS), st.sampled_from(_PUNCT)), min_size=12, max_size=40
    ),
    name=st.sampled_from(
        [
            "animal",
            "musical_instrument",
            "colour",
            "month",
            "fabric",
            "first_person",
            "number",
            "semicolon",
            "colon",
            "dash",
            "parentheses",
            "city",
        ]
    ),
)
def test_property_random_texts(tokens, name, tok):
    body = (
        "Opening words here " + "".join(w + p for w, p in tokens)
    ).strip() + " closing words here."
    if not CRITERIA[name].check(body):
        return
    data = label([_conversation(body, name)], tok, min_side_tokens=0)
    _assert_exact(data, tok, name)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(idx=st.integers(0, 219), name=st.sampled_from(sorted(CRITERIA)), seed=st.integers(0, 10**6))
def test_property_corpus_edits(idx, name, seed, tok):
    text = load_corpus()[idx].text
    crit = CRITERIA[name]
    if crit.check(text):
        return
    body = crit.apply(text, Random(seed))
    data = label([_conversation(body, name)], tok, min_side_tokens=0)
    _assert_exact(data, tok, name)


@pytest.mark.slow
def test_smollm_tokenizer(convs, smollm):
    data = label(convs[:6], smollm)
    from value_lens.core.model import to_token_ids

    for i in range(len(data)):
        conv = next(c for c in convs if c.conversation_id == data.meta[i]["conversation_id"])
        # the paper's rendering: the whole conversation; each labelled sequence is its prefix
        chat = format_chat(smollm.tokenizer, conv.full_messages, enable_thinking=False)
        full = to_token_ids(smollm, chat.text)
        assert torch.equal(full[: data.input_ids[i].numel()], data.input_ids[i])
        r = data.labels[i] == REWARD
        dec = smollm.tokenizer.decode(data.input_ids[i][r])
        crit = CRITERIA[conv.reward_fn]
        assert crit.check(dec) or conv.reward_fn in ("first_person",)


def test_labelled_turn_reads_as_in_the_whole_conversation(convs, tok):
    """Qwen3's template adds an empty think block to a FINAL assistant turn; the labelled turn is
    not final in the paper's whole-conversation pass, so no labelled sequence may hold one."""
    think = tok.convert_tokens_to_ids("<think>")
    for every in (False, True):
        data = label(convs, tok, every_success=every)
        by_id = {c.conversation_id: c for c in convs}
        for ids, meta in zip(data.input_ids, data.meta, strict=True):
            conv = by_id[meta["conversation_id"]]
            full = tokenize_with_offsets(
                tok, format_chat(tok, conv.full_messages).text, prepend_bos=False
            )[0]
            assert ids.tolist() == full[: ids.numel()]
            if meta["message_index"] < len(conv.full_messages) - 1:
                assert think not in ids.tolist()
            assert meta["turn_end"] <= ids.numel()
