"""Backtracking suite: phrase detector, token positions, band curves, event-locked traces."""

from __future__ import annotations

import numpy as np
import pytest

from tests._evals_helpers import has_generate, random_axis
from value_lens.errors import InputError
from value_lens.evals.backtracking import (
    DEFAULT_PHRASES,
    band_curves,
    event_locked,
    find_backtracking,
    run_backtracking_suite,
    token_positions,
)
from value_lens.testing import tiny_tokenizer

TEXT = (
    "First, 3 + 4 = 7. WAIT, that is not it. Hmm, let me RECHECK. But wait: hold on. "
    "Actually I made a mistake; I think I was wrong. On second thought, let me try again. "
    "No, the answer is 8. Let me reconsider and rethink. Let me rethink it."
)


def test_detector_spans_decode_back_to_phrases():
    hits = find_backtracking(TEXT)
    found = [p for _, _, p in hits]
    assert found == ["Wait", "Hmm", "Let me recheck", "But wait", "Hold on", "Actually",
                     "I made a mistake", "I think I was wrong", "On second thought",
                     "Let me try again", "No, ", "Let me reconsider", "Let me rethink"]  # fmt: skip
    for s, e, p in hits:
        assert TEXT[s:e].lower() == p.lower()
    assert set(found) == set(DEFAULT_PHRASES)


def test_detector_word_boundaries_and_custom_list():
    assert find_backtracking("awaiting Hmmm actually_x Nope, noisy; Snow, rain") == []
    assert find_backtracking("Oops. oops!", phrases=["Oops"]) == [(0, 4, "Oops"), (6, 10, "Oops")]
    with pytest.raises(InputError):
        find_backtracking("x", phrases=[])


def test_token_positions_decode_back():
    tok = tiny_tokenizer()
    enc = tok(TEXT, add_special_tokens=False, return_offsets_mapping=True)
    hits = find_backtracking(TEXT)
    pos = token_positions(enc["offset_mapping"], hits)
    assert len(pos) == len(hits)
    for p, (s, _, phrase) in zip(pos, hits, strict=True):
        span = tok.decode(enc["input_ids"][p : p + len(phrase) + 2])
        assert phrase.lower().strip() in span.lower()
        a, b = enc["offset_mapping"][p]
        assert a <= s < b


def test_band_curves_constructed():
    traces = [np.arange(1200, dtype=float), np.ones(600), np.zeros(300)]
    df = band_curves(traces, [True, True, False], band=500)
    bt = df[df["backtracking"]].set_index("band_start")
    assert bt.loc[0, "n"] == 2 and bt.loc[500, "n"] == 2 and bt.loc[1000, "n"] == 1
    assert bt.loc[0, "mean"] == pytest.approx((np.arange(500).mean() + 1.0) / 2)
    assert bt.loc[500, "mean"] == pytest.approx((np.arange(500, 1000).mean() + 1.0) / 2)
    assert np.isnan(bt.loc[1000, "ci_lo"])
    nb = df[~df["backtracking"]]
    assert list(nb["band_start"]) == [0] and nb["mean"].iloc[0] == 0.0
    assert bt.loc[0, "ci_lo"] < bt.loc[0, "mean"] < bt.loc[0, "ci_hi"]


def test_event_locked_constructed():
    traces = [np.arange(10, dtype=float), np.arange(10, dtype=float) * 2]
    df = event_locked(traces, [[2, 8], [5]], window=3).set_index("offset")
    assert df.loc[0, "mean"] == pytest.approx((2 + 8 + 10) / 3) and df.loc[0, "n"] == 3
    assert df.loc[3, "n"] == 2  # 8 + 3 is past the first trace's end
    assert df.loc[-3, "n"] == 1 + 0 + 1 - 0  # 2 - 3 < 0 is skipped


def test_suite_on_supplied_texts_tiny(tiny):
    texts = ["The sum is 7. Wait, no: it is 8. Hmm.", "Just 5, done.", "Actually 9."]
    res = run_backtracking_suite(tiny, random_axis(tiny), 1, texts=texts, band=5, window=4,
                                 progress=False)  # fmt: skip
    t = res.table
    assert t["n_events"].tolist() == [2, 0, 1]  # "no:" is not the phrase "No, "
    assert t["backtracking"].tolist() == [True, False, True]
    assert (t["n_tokens"] > 0).all() and t["mean_value"].notna().all()
    assert set(res.extras) == {"bands", "event_locked"}
    assert res.extras["event_locked"].set_index("offset").loc[0, "n"] == 3
    with pytest.raises(InputError, match="either"):
        run_backtracking_suite(tiny, random_axis(tiny), 1, progress=False)
    with pytest.raises(InputError, match="context"):
        run_backtracking_suite(tiny, random_axis(tiny), 1, texts=["wait " * 3000], progress=False)


@pytest.mark.slow
def test_suite_end_to_end_smollm(smollm):
    axis = random_axis(smollm)
    texts = ["Let me compute 12 * 3 = 36. Wait, I made a mistake: it is 36 anyway.", "It is 4."]
    res = run_backtracking_suite(smollm, axis, 20, texts=texts, progress=False)
    assert res.table["backtracking"].tolist() == [True, False]
    if not has_generate():
        pytest.skip("value_lens.generate has not landed yet")
    res = run_backtracking_suite(smollm, axis, 20, problems=["What is 17 + 25?"], n_rollouts=2,
                                 max_new_tokens=40, progress=False)  # fmt: skip
    assert len(res.table) == 2 and len(res.extras["bands"]) >= 1


def test_backtracking_resumes_from_log(tiny, tmp_path):
    axis = random_axis(tiny)
    log = tmp_path / "bt.jsonl"
    texts = ["Wait, 3.", "Fine."]
    first = run_backtracking_suite(tiny, axis, 1, texts=texts, log=log, progress=False)
    assert len(log.read_text().splitlines()) == 2
    again = run_backtracking_suite(tiny, axis, 1, texts=texts, log=log, progress=False)
    assert again.table["mean_value"].tolist() == first.table["mean_value"].tolist()
    assert again.extras["event_locked"].equals(first.extras["event_locked"])
