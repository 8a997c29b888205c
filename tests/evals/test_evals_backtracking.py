"""Backtracking suite: phrase detector, token positions, band curves, event-locked traces."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest

from tests._evals_helpers import (
    THINK_OFF,
    has_generate,
    hf_cosines,
    hf_span_mean,
    random_axis,
    turn,
)
from value_lens.errors import InputError
from value_lens.evals._common import cluster_mean_ci
from value_lens.evals.backtracking import (
    BACKTRACKING_GENERATION,
    DEFAULT_PHRASES,
    MATH_SYSTEM,
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
    assert found == [
        "Wait",
        "Hmm",
        "Let me recheck",
        "But wait",
        "Hold on",
        "Actually",
        "I made a mistake",
        "I think I was wrong",
        "On second thought",
        "Let me try again",
        "No, ",
        "Let me reconsider",
        "Let me rethink",
    ]
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


T975 = {2: 4.302653, 4: 2.776445, 5: 2.570582}  # Student t 97.5% quantiles (tables)


def test_band_curves_constructed():
    traces = [np.arange(1200, dtype=float), np.ones(600), np.zeros(300), np.full(550, 2.0)]
    df = band_curves(traces, [True, True, False, True], band=500)
    bt = df[df["backtracking"]].set_index("band_start")
    assert bt.loc[0, "n"] == 3 and bt.loc[500, "n"] == 3 and bt.loc[1000, "n"] == 1
    first = [np.arange(500).mean(), 1.0, 2.0]
    assert bt.loc[0, "mean"] == pytest.approx(np.mean(first))
    assert bt.loc[500, "mean"] == pytest.approx((np.arange(500, 1000).mean() + 1.0 + 2.0) / 3)
    assert np.isnan(bt.loc[1000, "ci_lo"])  # one rollout: no interval
    nb = df[~df["backtracking"]]
    assert list(nb["band_start"]) == [0] and nb["mean"].iloc[0] == 0.0
    half = T975[2] * np.std(first, ddof=1) / np.sqrt(3)  # each rollout its own cluster
    assert bt.loc[0, "ci_lo"] == pytest.approx(np.mean(first) - half)
    assert bt.loc[0, "ci_hi"] == pytest.approx(np.mean(first) + half)
    # two rollouts of one problem are one cluster: 2 clusters give no interval
    two = band_curves(traces, [True, True, False, True], band=500, clusters=[0, 0, 1, 1])
    row = two[two["backtracking"]].set_index("band_start").loc[0]
    assert row["n"] == 3 and row["n_clusters"] == 2 and np.isnan(row["ci_lo"])
    with pytest.raises(InputError, match="cluster labels"):
        band_curves(traces, [True] * 4, clusters=[0, 1])


def test_event_locked_partial_windows_by_hand():
    traces = [np.arange(10, dtype=float), np.arange(10, dtype=float) * 2]
    df = event_locked(traces, [[2, 8], [5]], window=3, complete=False).set_index("offset")
    # rollout 0 averages its two events first: ((2 + 8) / 2 + 10) / 2 at offset 0
    assert df.loc[0, "mean"] == pytest.approx(((2 + 8) / 2 + 10) / 2)
    assert (df.loc[0, "n"], df.loc[0, "n_events"]) == (2, 3)
    assert df.loc[3, "n_events"] == 2 and df.loc[3, "mean"] == pytest.approx((5 + 16) / 2)
    assert df.loc[-3, "n_events"] == 2 and df.loc[-3, "mean"] == pytest.approx((5 + 4) / 2)
    assert (df["n_events_skipped"] == 0).all()


def test_event_locked_complete_windows_avoid_a_spurious_dip():
    # the value rises with position; every event's own window rises too (value = position)
    ramp = np.arange(20, dtype=float)
    kept, cut = [10, 3, 16], [0, 19, 2, 17]  # 3 and 16 fit a +-3 window exactly; 2 and 17 do not
    events = [[e] for e in kept + cut]
    traces = [ramp] * len(events)
    full = event_locked(traces, events, window=3).set_index("offset")
    assert (full["n_events_skipped"] == 4).all() and (full["n"] == 3).all()
    assert (full["n_events"] == 3).all()
    half = T975[2] * np.std(kept, ddof=1) / np.sqrt(3)
    for off in range(-3, 4):
        assert full.loc[off, "mean"] == pytest.approx(np.mean(kept) + off)
        assert full.loc[off, "ci_lo"] == pytest.approx(np.mean(kept) + off - half)
        assert full.loc[off, "ci_hi"] == pytest.approx(np.mean(kept) + off + half)
    part = event_locked(traces, events, window=3, complete=False).set_index("offset")
    for off in range(-3, 4):  # each offset averages the events that reach it
        reach = [e + off for e in kept + cut if 0 <= e + off < 20]
        assert part.loc[off, "mean"] == pytest.approx(np.mean(reach))
        assert part.loc[off, "n_events"] == len(reach)
    # edge events enter on one side only: the mean falls across the event, no event's values do
    assert part.loc[1, "mean"] < part.loc[-1, "mean"]
    assert (part["n_events_skipped"] == 0).all()


def test_event_locked_confidence_interval_is_over_rollouts():
    # one rollout with 20 events and a dip to -1 after each, five flat rollouts with one event
    w = 2
    big = np.zeros(200)
    evs = [5 + 9 * k for k in range(20)]
    for e in evs:
        big[e : e + w + 1] = -1.0
    traces = [big] + [np.zeros(20)] * 5
    events = [evs] + [[10]] * 5
    df = event_locked(traces, events, window=w).set_index("offset")
    per_rollout = np.array([-1.0, 0, 0, 0, 0, 0])
    half = T975[5] * per_rollout.std(ddof=1) / np.sqrt(6)
    for off in (0, 1, 2):
        assert df.loc[off, "mean"] == pytest.approx(-1 / 6)  # events pooled would give -0.8
        assert (df.loc[off, "n"], df.loc[off, "n_events"]) == (6, 25)
        assert df.loc[off, "ci_lo"] == pytest.approx(-1 / 6 - half)
        assert df.loc[off, "ci_hi"] == pytest.approx(-1 / 6 + half)
    assert df.loc[-1, "mean"] == 0.0
    # clusters: the big rollout and one flat one are one problem. The mean stays the mean over
    # rollouts; the interval leaves out one problem at a time: without problem 0 the mean is
    # 0 / 4, without any other -1 / 5, so se = sqrt(4/5 * (0.16^2 + 4 * 0.04^2)) = 0.16
    by_problem = event_locked(traces, events, window=w, clusters=[0, 0, 1, 2, 3, 4])
    row = by_problem.set_index("offset").loc[0]
    assert (row["n"], row["n_clusters"]) == (6, 5) and row["mean"] == pytest.approx(-1 / 6)
    assert row["ci_lo"] == pytest.approx(-1 / 6 - T975[4] * 0.16)
    assert row["ci_hi"] == pytest.approx(-1 / 6 + T975[4] * 0.16)
    with pytest.raises(InputError, match="outside"):
        event_locked([np.zeros(3)], [[3]], window=1)


def _reply_text(text: str, *, thinking: bool = False) -> str:
    """The Qwen3 rendering of a scored rollout, written by hand (the suite's default chat)."""
    return (
        turn("system", MATH_SYSTEM)
        + turn("user", "Solve the problem.")
        + "<|im_start|>assistant\n"
        + ("" if thinking else THINK_OFF)
        + text
    )


def test_suite_values_are_hf_cosines_of_the_reply(tiny, tiny_hf):
    axis = random_axis(tiny, seed=3)
    texts = ["Actually 9 is wrong. Wait, it is 8, so the total is 8.", "Just 5, done."]
    res = run_backtracking_suite(tiny, axis, 0, texts=texts, window=1, progress=False)
    assert res.meta["enable_thinking"] is False and res.meta["metric"] == "cosine"
    assert res.table["n_events"].tolist() == [2, 0]
    # "Actually" is the reply's first token: its window does not fit, "Wait"'s does
    assert (res.meta["n_events"], res.meta["n_events_used"], res.meta["n_events_skipped"]) == (
        2,
        1,
        1,
    )
    for text, row in zip(texts, res.table.itertuples(), strict=True):
        full = _reply_text(text)
        start = len(full) - len(text)
        assert row.mean_value == pytest.approx(
            hf_span_mean(tiny_hf, full, start, len(full), axis, 0), abs=1e-4
        )
    full = _reply_text(texts[0])
    cos, offs = hf_cosines(tiny_hf, full, axis, 0)
    wait = int(np.flatnonzero(offs[:, 1] > len(full) - len(texts[0]) + texts[0].index("Wait"))[0])
    ev = res.extras["event_locked"].set_index("offset")
    for off in (-1, 0, 1):
        assert ev.loc[off, "mean"] == pytest.approx(float(cos[wait + off]), abs=1e-4)
        assert ev.loc[off, "n"] == 1


def test_suite_thinking_replies(tiny, tiny_hf):
    axis = random_axis(tiny, seed=4)
    texts = ["<think>\nHmm, 3 + 4 is 7.\n</think>\n\nIt is 7."]
    with pytest.raises(InputError, match="enable_thinking"):
        run_backtracking_suite(tiny, axis, 0, texts=texts, progress=False)
    on = BACKTRACKING_GENERATION.with_overrides(enable_thinking=True)
    res = run_backtracking_suite(tiny, axis, 0, texts=texts, gen=on, window=1, progress=False)
    assert res.meta["enable_thinking"] is True and res.table["n_events"].tolist() == [1]
    full = _reply_text(texts[0], thinking=True)
    want = hf_span_mean(tiny_hf, full, len(full) - len(texts[0]), len(full), axis, 0)
    assert res.table["mean_value"].iloc[0] == pytest.approx(want, abs=1e-4)


def test_suite_generates_with_the_thinking_flag(tiny, monkeypatch):
    bt_mod = importlib.import_module("value_lens.evals.backtracking")
    calls = []

    def fake_generate(_model, prompts, config, **_kw):
        calls.append(config)
        return [SimpleNamespace(text="Wait, it is 4.") for _ in prompts]

    monkeypatch.setattr(bt_mod, "generate", fake_generate)
    res = run_backtracking_suite(
        tiny, random_axis(tiny), 0, problems=["What is 2 + 2?"], n_rollouts=2, progress=False
    )
    assert [c.enable_thinking for c in calls] == [False]
    assert res.table["n_events"].tolist() == [1, 1] and res.meta["enable_thinking"] is False


def test_suite_intervals_resample_problems_not_rollouts(tiny, monkeypatch):
    """3 problems x 2 rollouts, backtracking in both rollouts of problem 0 and one of problem
    1: each table counts 3 backtracking rollouts from 2 problems (2 clusters, so no interval),
    not 3 independent rollouts."""
    bt_mod = importlib.import_module("value_lens.evals.backtracking")
    replies = iter(["Wait, it is 4.", "Hmm, 4.", "Wait, 6.", "So 6.", "Then 9.", "It is 9."])

    def fake_generate(_model, prompts, config, **_kw):  # noqa: ARG001
        return [SimpleNamespace(text=next(replies)) for _ in prompts]

    monkeypatch.setattr(bt_mod, "generate", fake_generate)
    probs = ["What is 2 + 2?", "What is 3 + 3?", "What is 4 + 5?"]
    res = run_backtracking_suite(
        tiny, random_axis(tiny), 0, problems=probs, n_rollouts=2, band=3, window=0, progress=False
    )
    assert res.meta["n_problems"] == 3 and res.table["problem"].tolist() == [0, 0, 1, 1, 2, 2]
    assert res.table["backtracking"].tolist() == [True, True, True, False, False, False]
    bands = res.extras["bands"]
    first = bands[bands["band_start"] == 0].set_index("backtracking")
    assert first.loc[True, "n"] == 3 and first.loc[True, "n_clusters"] == 2
    assert np.isnan(first.loc[True, "ci_lo"])  # 2 problems: no interval
    ev = res.extras["event_locked"].iloc[0]
    assert (ev["n"], ev["n_clusters"]) == (3, 2)
    s = res.summary.set_index("backtracking")
    assert (s.loc[True, "n"], s.loc[True, "n_problems"]) == (3, 2)
    all_means = res.table["mean_value"].to_numpy()
    by_problem = cluster_mean_ci(all_means, res.table["problem"].tolist())
    pooled = band_curves(
        [np.asarray([v]) for v in all_means],
        [True] * 6,
        band=3,
        clusters=res.table["problem"].tolist(),
    ).iloc[0]
    assert pooled["ci_lo"] == pytest.approx(by_problem["ci_lo"])
    assert pooled["n_clusters"] == 3 and pooled["n"] == 6


def test_suite_on_supplied_texts_tiny(tiny):
    texts = ["The sum is 7. Wait, no: it is 8. Hmm.", "Just 5, done.", "Actually 9."]
    res = run_backtracking_suite(
        tiny, random_axis(tiny), 1, texts=texts, band=5, window=4, progress=False
    )
    t = res.table
    assert t["n_events"].tolist() == [2, 0, 1]  # "no:" is not the phrase "No, "
    assert t["backtracking"].tolist() == [True, False, True]
    assert set(res.extras) == {"bands", "event_locked"}
    # "Hmm" is the first text's last word and "Actually" the third's first: both windows cut
    assert res.meta["n_events_skipped"] == 2
    assert res.extras["event_locked"].set_index("offset").loc[0, "n"] == 1
    part = run_backtracking_suite(
        tiny,
        random_axis(tiny),
        1,
        texts=texts,
        band=5,
        window=4,
        complete_windows=False,
        progress=False,
    )
    assert part.meta["n_events_skipped"] == 0
    assert part.extras["event_locked"].set_index("offset").loc[0, "n_events"] == 3
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
        pytest.skip("value_lens.core.generate has not landed yet")
    res = run_backtracking_suite(
        smollm,
        axis,
        20,
        problems=["What is 17 + 25?"],
        n_rollouts=2,
        gen=BACKTRACKING_GENERATION.with_overrides(max_new_tokens=40),
        progress=False,
    )
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
