"""Criteria registry: checks, spans, edits and distractors on the packaged corpus."""

from __future__ import annotations

from random import Random

import pytest

from value_lens.data.icrl import CRITERIA, get_criteria, load_corpus
from value_lens.data.icrl.lexicons import inflections, plural
from value_lens.errors import InputError


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_fifty_criteria_fifteen_syntactic():
    kinds = [c.kind for c in CRITERIA.values()]
    assert len(CRITERIA) == 50
    assert kinds.count("syntactic") == 15 and kinds.count("semantic") == 35
    for c in CRITERIA.values():
        assert len(c.distractors) >= 5, c.name
        assert all(d.target == c.name and d.name != c.name for d in c.distractors)
        assert c.description


def test_packaged_corpus_shape(corpus):
    assert len(corpus) >= 200
    lengths = [len(p.text.split()) for p in corpus]
    assert min(lengths) >= 40 and max(lengths) <= 120
    assert len({p.topic for p in corpus}) > 100


@pytest.mark.parametrize("name", list(CRITERIA))
def test_apply_satisfies_and_distractors_never(name, corpus):
    c = CRITERIA[name]
    pool = [p.text for p in corpus if not c.check(p.text)]
    assert len(pool) >= 150, f"{name}: only {len(pool)} usable paragraphs"
    rng = Random(1)
    edited = [c.apply(t, rng) for t in pool]
    ok = sum(c.check(e) for e in edited)
    assert ok / len(pool) >= 0.95
    # minimal: the edit keeps most of the paragraph
    assert all(len(e) <= len(t) + 120 for e, t in zip(edited, pool, strict=True))
    for d in c.distractors:
        outs = [d.apply(t, rng) for t in pool]
        assert not any(c.check(o) for o in outs), (name, d.name)
        assert all(o != t for o, t in zip(outs, pool, strict=True))


@pytest.mark.parametrize("name", list(CRITERIA))
def test_spans_agree_with_check(name, corpus):
    c = CRITERIA[name]
    text = c.apply(corpus[3].text if not c.check(corpus[3].text) else corpus[5].text, Random(0))
    spans = c.spans(text)
    assert spans and c.check(text)
    assert all(0 <= s < e <= len(text) for s, e in spans)
    assert spans == sorted(spans)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("first_person", "Elizabeth I ruled England. World War I ended.", False),
        ("first_person", "As far as I know, it is old.", True),
        ("first_person", "The US economy grew.", False),
        ("first_person", "Our records show it.", True),
        ("number", "It was built in 1850.", True),
        ("dash", "A well-known site.", False),
        ("dash", "A site — old and famous.", True),
        ("ellipsis", "And then...", True),
        ("parentheses", "A note (in brackets).", True),
        ("parentheses", "An unmatched ( bracket.", False),
        ("ends_with_exclamation", "Wow! It is big.", False),
        ("ends_with_exclamation", "It is big!  ", True),
        ("starts_with_question", "Why? Because.", True),
        ("starts_with_question", "Because. Why?", False),
        ("animal", "Two wolves and three foxes.", True),
        ("animal", "The Foxes played.", True),
        ("body_part", "Her teeth were white.", True),
        ("body_part", "On the other hand, the back of the head.", False),
        ("month", "It may rain; in March it did.", True),
        ("month", "It may rain.", False),
        ("planet", "Life on Earth.", True),
        ("metal", "They lead the way.", False),
        ("colour", "A crimson flag.", True),
        ("vehicle", "Vincent van Gogh painted.", False),
        ("musical_instrument", "She played the French horn and two violins.", True),
    ],
)
def test_check_examples(name, text, expected):
    assert CRITERIA[name].check(text) is expected


def test_span_text_is_the_word():
    text = "Two wolves met a fox near the violins."
    got = [text[s:e] for s, e in CRITERIA["animal"].spans(text)]
    assert got == ["wolves", "fox"]
    assert [text[s:e] for s, e in CRITERIA["musical_instrument"].spans(text)] == ["violins"]


def test_inflections():
    assert plural("church") == ["churches"]
    assert plural("butterfly") == ["butterflies"]
    assert plural("french horn") == ["french horns"]
    assert set(plural("potato")) == {"potatoes", "potatos"}
    assert inflections("Paris") == {"Paris"}
    assert "mice" in inflections("mouse")


def test_unknown_criterion_error_names_it():
    with pytest.raises(InputError, match="colonn.*colon"):
        get_criteria(["colonn"])
    with pytest.raises(InputError, match="no criteria"):
        get_criteria([])
    assert [c.name for c in get_criteria("dash")] == ["dash"]


def test_distractor_refuses_when_impossible():
    d = CRITERIA["semicolon"].distractors[0]
    with pytest.raises(InputError, match="semicolon"):
        d.apply("A; b; c; d; e; f and more words here.", Random(0))
