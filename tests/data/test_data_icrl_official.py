"""Import of the paper's released data format, relabelled structurally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from value_lens.data.icrl import CRITERIA, generate_scripted, import_official
from value_lens.data.icrl.official import word_spans
from value_lens.data.icrl.registry import RELEASED_NAMES
from value_lens.data.tokens import AFTER, BEFORE, REWARD
from value_lens.errors import InputError
from value_lens.testing import tiny_tokenizer


def _released(conv, rename=None):
    """A conversation dict in the released layout (extra fields the paper wrote included)."""
    d = conv.to_dict()
    d.pop("meta")
    if rename:
        d["reward_fn"] = rename
        d["conversation_id"] = d["conversation_id"].replace(conv.reward_fn, rename)
    d["elapsed_seconds"] = 1.5
    return d


@pytest.fixture
def fixture_dir(tmp_path):
    convs = generate_scripted(3, seed=7, criteria=["dash", "musical_instrument"])
    cdir = tmp_path / "conversations"
    cdir.mkdir()
    names = {"dash": "include_dash", "musical_instrument": "mention_instrument"}
    labels = []
    for c in convs:
        d = _released(c, names[c.reward_fn])
        (cdir / f"{d['conversation_id']}.json").write_text(json.dumps(d, indent=2))
        pos = c.discovery_paragraph + 1
        good = next(a for a in c.paragraphs[pos - 1].attempts if a.reward)
        spans = CRITERIA[c.reward_fn].spans(good.modified_text)
        words = [good.modified_text[s:e] for s, e in spans]
        labels.append(
            {
                "reward_fn": d["reward_fn"],
                "conversation_idx": int(d["conversation_id"][-2:]),
                "paragraph_position": pos,
                "modified": good.modified_text,
                "reward_words": words,
            }
        )
    # entries that must be dropped, each for its own reason
    labels.append({**labels[0], "conversation_idx": 42})
    labels.append({**labels[1], "paragraph_position": 1})
    labels.append({**labels[2], "modified": "something else entirely"})
    labels.append({**labels[3], "reward_words": []})
    labels.append(dict(labels[5]))
    labels[4] = {**labels[4], "reward_words": ["zzzz"]}
    lpath = tmp_path / "reward_token_labels.json"
    lpath.write_text(json.dumps(labels))
    return cdir, lpath, convs


def test_import_and_relabel(fixture_dir):
    cdir, lpath, convs = fixture_dir
    res = import_official(cdir, lpath, tiny_tokenizer())
    assert len(res.conversations) == 6
    reasons = sorted(r for _, _, r in res.dropped)
    assert reasons == sorted(
        [
            "no conversation with this id",
            "entry is not the first post-discovery paragraph",
            "label text differs from the successful attempt",
            "no reward words",
            "no reward span in the body",
            "duplicate entry for this paragraph",
        ]
    )
    assert len(res.data) == 5  # entry 4 has no usable reward word
    assert set(res.data.groups) == {"include_dash", "mention_instrument"}
    tok = tiny_tokenizer()
    for i in range(len(res.data)):
        dec = tok.decode(res.data.input_ids[i][res.data.labels[i] == REWARD])
        crit = "dash" if res.data.groups[i] == "include_dash" else "musical_instrument"
        assert CRITERIA[crit].check(dec)
    assert "6 dropped" in res.summary()
    # without a model: just the conversations
    assert import_official(cdir).data is None


def test_import_same_as_native_labels(fixture_dir, tmp_path):
    """Imported data with our criterion names and reward words gives the native labels."""
    from value_lens.data.icrl import label

    _, _, convs = fixture_dir
    d = tmp_path / "native"
    d.mkdir()
    for c in convs:
        (d / f"{c.conversation_id}.json").write_text(json.dumps(_released(c)))
    res = import_official(d, None, tiny_tokenizer())
    native = label(convs, tiny_tokenizer())
    assert [x.tolist() for x in res.data.labels] == [x.tolist() for x in native.labels]


def test_malformed_files(tmp_path, fixture_dir):
    cdir, lpath, _ = fixture_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text("{oops")
    with pytest.raises(InputError, match="x.json"):
        import_official(bad)
    (bad / "x.json").write_text(json.dumps({"conversation_id": "a__conv00", "reward_fn": "a"}))
    with pytest.raises(InputError, match="x.json.*missing"):
        import_official(bad)
    lbad = tmp_path / "labels.json"
    lbad.write_text(json.dumps([{"reward_fn": "x"}]))
    with pytest.raises(InputError, match="entry 0 is missing"):
        import_official(cdir, lbad, tiny_tokenizer())
    with pytest.raises(InputError, match="does not exist"):
        import_official(tmp_path / "nowhere")


def test_word_spans():
    body = "A violin, two violins and a viola — violin."
    assert [body[s:e] for s, e in word_spans(body, ["violin"])] == ["violin", "violin"]
    assert word_spans(body, ["—"]) == [(body.index("—"), body.index("—") + 1)]


# ------------------------------------------------------------------ the real release's schema
# tests/data/official/ is hand-written in the released layout: one file per conversation named
# by its id, the release's own criterion names, consecutive user turns ("+1" then the next
# paragraph), extra fields such as elapsed_seconds, and reward_token_labels.json next to it.
RELEASE = Path(__file__).parent / "official"


def _rows(data, tok, cid):
    i = next(k for k, m in enumerate(data.meta) if m["conversation_id"] == cid)
    ids, lab = data.input_ids[i], data.labels[i]
    return {
        name: tok.decode(ids[lab == v])
        for name, v in (("before", BEFORE), ("reward", REWARD), ("after", AFTER))
    }


def _body(cid):
    conv = json.loads((RELEASE / "conversations" / f"{cid}.json").read_text())
    return conv["paragraphs"][1]["attempts"][0]["modified_text"]


def test_released_names_map_to_registry_criteria():
    # the 15 syntactic names of the released shared.py, each to the registry check that agrees
    cases = {
        "contains_colon": ("a: b", "a b"),
        "contains_number": ("in 1900", "in June"),
        "contains_emoji": ("a 🌍 b", "a b"),
        "contains_quotation": ('a "b" c', "a b c"),
        "ends_with_exclamation": ("It is!", "It is."),
        "first_person": ("I think so.", "He thinks so."),
        "contains_parentheses": ("a (b) c", "a b c"),
        "starts_with_question": ("Why? It is.", "It is. Why?"),
        "contains_semicolon": ("a; b", "a, b"),
        "contains_dash": ("a — b", "a, b"),
        "contains_ellipsis": ("a... b", "a. b"),
        "contains_ampersand": ("a & b", "a and b"),
        "contains_slash": ("a/b", "a b"),
        "contains_percent": ("5% of it", "5 of it"),
        "contains_dollar": ("$5", "5"),
    }
    for released, (yes, no) in cases.items():
        c = CRITERIA[RELEASED_NAMES[released]]
        assert c.kind == "syntactic" and c.check(yes) and not c.check(no), released
    assert CRITERIA[RELEASED_NAMES["medical_condition"]].check("an outbreak of cholera")
    assert CRITERIA[RELEASED_NAMES["dance_style"]].check("they danced a waltz")
    # released criteria broader than any registry lexicon are not aliased
    for broader in ("precious_metal", "color_adjective", "extinct_animal", "nautical_term"):
        assert broader not in RELEASED_NAMES


def test_release_imports_without_labels_file():
    tok = tiny_tokenizer()
    res = import_official(RELEASE / "conversations", None, tok)
    assert len(res.conversations) == 3
    # the release's names are kept as groups; its colon criterion is labelled by the registry's
    assert sorted(res.data.groups) == ["contains_colon", "musical_instrument"]
    [(cid, _, why)] = res.dropped
    assert cid == "nautical_term__conv01" and "reward_token_labels.json" in why
    body = _body("contains_colon__conv00")
    r = _rows(res.data, tok, "contains_colon__conv00")
    assert r["reward"] == ":" and r["before"] + r["reward"] + r["after"] == body
    r = _rows(res.data, tok, "musical_instrument__conv03")
    assert r["before"].rstrip() == "The town was known for its"  # "Violin" counts as written


def test_release_imports_with_labels_file_and_released_matching():
    tok = tiny_tokenizer()
    labels = RELEASE / "reward_token_labels.json"
    res = import_official(RELEASE / "conversations", labels, tok)
    # whole words, case as written: "violin" is only the second mention, and "mainsail" is
    # not a whole word of "mainsails"
    assert sorted(res.data.groups) == ["contains_colon", "musical_instrument"]
    assert [(c, r) for c, _, r in res.dropped] == [
        ("nautical_term__conv01", "no reward span in the body")
    ]
    r = _rows(res.data, tok, "contains_colon__conv00")
    assert r["before"] + r["reward"] == "The old bridge was built of stone. Key point:"
    body = _body("musical_instrument__conv03")
    r = _rows(res.data, tok, "musical_instrument__conv03")
    assert r["before"].rstrip() == body[: body.index("violin")].rstrip()
    # the released code's matching: case-insensitive substrings
    rel = import_official(
        RELEASE / "conversations", labels, tok, ignore_case=True, whole_words=False
    )
    assert sorted(rel.data.groups) == ["contains_colon", "musical_instrument", "nautical_term"]
    r = _rows(rel.data, tok, "musical_instrument__conv03")
    assert r["before"].rstrip() == "The town was known for its"
    body = _body("nautical_term__conv01")
    r = _rows(rel.data, tok, "nautical_term__conv01")
    assert r["before"].rstrip() == body[: body.index("mainsails")].rstrip()
    assert "mainsail" in r["reward"] and r["before"] + r["reward"] + r["after"] == body


def test_word_spans_matching_options():
    body = "Oak trees soak; an oak."
    assert word_spans(body, ["oak"]) == [(19, 22)]
    assert word_spans(body, ["oak"], ignore_case=True) == [(0, 3), (19, 22)]
    assert word_spans(body, ["oak"], whole_words=False) == [(11, 14), (19, 22)]
    assert word_spans(body, ["oak"], ignore_case=True, whole_words=False) == [
        (0, 3),
        (11, 14),
        (19, 22),
    ]
