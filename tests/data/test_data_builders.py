"""Shipped sentences, category prompts and SFT rows, and the validation of user files."""

from __future__ import annotations

import json
import re

import pytest

from value_lens.data import categories as cat
from value_lens.data import sentences as sent
from value_lens.data.sft import sft_rows, split_rows
from value_lens.errors import InputError
from value_lens.evals.confidence import arithmetic_problems


def _jsonl(tmp_path, lines, name="f.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return p


# ------------------------------------------------------------------ sentences
def test_shipped_sentences_use_their_word():
    data = sent.word_sentences()
    assert len(data) == 10 and all(len(v) == 20 for v in data.values())
    for word, texts in data.items():
        assert len(set(texts)) == 20
        for t in texts:
            a, b = sent.word_span(t, word)
            assert t[a:b].lower() == word
            assert re.search(rf"\b{word}\b", t, re.IGNORECASE)


def test_word_span_matches_whole_words_only():
    assert sent.word_span("Kites and a Kite.", "kite") == (12, 16)
    with pytest.raises(InputError, match="does not contain"):
        sent.word_span("Two kites.", "kite")


def test_user_sentences_load_and_are_validated(tmp_path):
    good = _jsonl(
        tmp_path,
        [
            {"word": "owl", "sentence": "An owl hooted."},
            {"word": "owl", "sentence": "The Owl slept."},
        ],
    )
    assert sent.load_word_sentences(good) == {"owl": ["An owl hooted.", "The Owl slept."]}
    bad = _jsonl(
        tmp_path,
        [{"word": "owl", "sentence": "An owl."}, {"word": "owl", "sentence": "Two owls."}],
        "bad.jsonl",
    )
    with pytest.raises(InputError, match=r"record 2.*does not use the word 'owl'"):
        sent.load_word_sentences(bad)
    with pytest.raises(InputError, match=r"line 2 lacks key\(s\) \['sentence'\]"):
        sent.load_word_sentences(_jsonl(tmp_path, [{"word": "a", "sentence": "a"}, {"word": "a"}]))
    with pytest.raises(InputError, match="not valid JSON"):
        sent.load_word_sentences(_jsonl(tmp_path, ["{word: owl}"]))
    with pytest.raises(InputError, match="shipped words are"):
        sent.word_sentences(["owl"])
    with pytest.raises(InputError, match="list of strings"):
        sent.check_sentences({"owl": "An owl."})  # type: ignore[dict-item]


# ------------------------------------------------------------------ categories
def test_shipped_labels_are_the_rules_and_fit_each_family():
    rows = cat.category_prompts()
    assert len(rows) >= 60
    expected = {  # (information_extraction, open_ended, politically_sensitive); None = either
        "extraction": (True, False, False),
        "open_ended": (False, True, False),
        "political": (False, None, True),
        "factual": (False, False, False),
    }
    assert {r["family"] for r in rows} == set(expected)
    for r in rows:
        assert {k: r[k] for k in cat.LABELS} == cat.rule_labels(r["prompt"])
        got = tuple(r[k] for k in cat.LABELS)
        assert all(e is None or e == g for e, g in zip(expected[r["family"]], got, strict=True))


@pytest.mark.parametrize(
    ("prompt", "labels"),
    [
        ("Parse this receipt into CSV: milk 1.10", (True, False, False)),
        ("Write a JSON schema for a cat.", (True, False, False)),
        ("Compose a sonnet about autumn.", (False, True, False)),
        ("Is Taiwan a country?", (False, False, True)),
        ("What do you think about the election?", (False, True, True)),
        ("How many days are in a leap year?", (False, False, False)),
    ],
)
def test_rule_labels_on_hand_labelled_prompts(prompt, labels):
    assert tuple(cat.rule_labels(prompt)[k] for k in cat.LABELS) == labels


def test_user_category_prompts_are_validated(tmp_path):
    full = {
        "prompt": "Is Taiwan a country?",
        "information_extraction": 0,
        "open_ended": False,
        "politically_sensitive": 1,
        "source": "me",
    }
    (rec,) = cat.load_category_prompts(_jsonl(tmp_path, [full]))
    assert rec["politically_sensitive"] is True and rec["information_extraction"] is False
    assert rec["source"] == "me"
    partial = _jsonl(tmp_path, [{"prompt": "Extract the dates as JSON: 1 May", "open_ended": True}])
    with pytest.raises(InputError, match=r"lacks label\(s\).*missing='rules'"):
        cat.load_category_prompts(partial)
    (filled,) = cat.load_category_prompts(partial, missing="rules")
    assert filled["information_extraction"] is True and filled["open_ended"] is True
    yes = _jsonl(tmp_path, [{**full, "open_ended": "yes"}], "yes.jsonl")
    with pytest.raises(InputError, match="record 1: open_ended is 'yes'; write true or false"):
        cat.load_category_prompts(yes)
    with pytest.raises(InputError, match="does not exist"):
        cat.load_category_prompts(tmp_path / "nope.jsonl")


# ------------------------------------------------------------------ SFT rows
def test_sft_rows_from_the_arithmetic_family_carry_the_right_answer():
    problems = arithmetic_problems(12, seed=3)
    rows = sft_rows(problems, system="Answer briefly.")
    for p, r in zip(problems, rows, strict=True):
        s, u, a = r["messages"]
        assert (s["role"], u["role"], a["role"]) == ("system", "user", "assistant")
        assert u["content"] == p["question"] and r["domain"] == "math"
        assert int(re.fullmatch(r"The answer is (-?\d+)\.", a["content"]).group(1)) == p["answer"]


def test_sft_rows_from_code_problems_and_user_domains():
    (row,) = sft_rows([{"problem": "Add.", "code": "def add(a, b):\n    return a + b\n"}])
    assert row["messages"][-1]["content"] == "```python\ndef add(a, b):\n    return a + b\n```"
    assert row["domain"] == "code"
    assert sft_rows([{"question": "q", "answer": 2.0}], domain="gsm")[0]["domain"] == "gsm"
    assert sft_rows([{"question": "q", "answer": 2.0}])[0]["messages"][-1]["content"].endswith(
        " 2."
    )
    with pytest.raises(InputError, match="'question' and 'answer'"):
        sft_rows([{"prompt": "x"}])


def test_split_rows_is_a_seeded_partition():
    rows = [{"i": i} for i in range(50)]
    train, held = split_rows(rows, seed=1)
    assert len(train) == 40 and len(held) == 10
    assert sorted(r["i"] for r in train + held) == list(range(50))
    assert split_rows(rows, seed=1) == (train, held) and split_rows(rows, seed=2) != (train, held)
    with pytest.raises(InputError, match="fraction"):
        split_rows(rows, train=1.0)
