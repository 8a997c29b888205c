"""Import of the paper's released data format, relabelled structurally."""

from __future__ import annotations

import json

import pytest

from value_lens.data.icrl import CRITERIA, generate_scripted, import_official
from value_lens.data.icrl.official import word_spans
from value_lens.errors import InputError
from value_lens.testing import tiny_tokenizer
from value_lens.tokens import REWARD


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
