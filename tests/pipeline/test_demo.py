"""The main job: settings, resuming after a kill, and the quick run on the embedded SmolLM2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests._demo_data import SMALL_CORPUS
from tests._offline import external_urls
from value_lens.analysis.metrics import cohens_d
from value_lens.errors import InputError
from value_lens.pipeline.demo import FULL, PAPER, QUICK, demo_config, run_demo
from value_lens.pipeline.rundir import load_trace

STEPS = ["data", "stats", "axis", "sweep", "code", "heatmaps", "dose", "report"]


def _steps(out) -> list[str]:
    return [json.loads(x)["step"] for x in (out / "steps.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("corpus") / "small.txt"
    p.write_text(SMALL_CORPUS + "\n")
    return p


def test_settings():
    assert demo_config() is FULL and demo_config(quick=True) is QUICK
    assert demo_config(device="cuda") is PAPER and demo_config(device="cuda", paper=False) is FULL
    assert PAPER.heatmap_layer == 20 and PAPER.criteria == "all" and PAPER.n_splits == 10
    assert round(PAPER.train_fraction * 50) == 35  # the paper's 35 training criteria
    assert QUICK.criteria == "first:5" and FULL.criteria == "first:12"
    assert PAPER.code_problems == 225 and FULL.code_problems > QUICK.code_problems > 1
    with pytest.raises(InputError, match="not both"):
        demo_config(quick=True, paper=True)


def _expected_sentence(sweep: pd.DataFrame) -> list[str]:
    """What the report's sentence must say, worked out from sweep.csv alone: the best held-out
    layer, the verdict from rd_value's interval (above 0: value; below the 0.1 margin:
    position; else inconclusive) and its numbers."""
    row = sweep.loc[sweep["token_auroc_mean"].idxmax()]
    v, lo, hi = row["rd_value"], row["rd_value_ci_lo"], row["rd_value_ci_hi"]
    if lo > 0:
        verdict = "carries value information beyond position"
    elif hi < 0.1:
        verdict = "shows no value information beyond position"
    else:
        verdict = "cannot be told apart from position"
    ci = f"[{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else "(no interval)"
    return [
        f"At layer {int(row['layer'])} the axis {verdict}",
        f"is {v:.2f} {ci} within-turn sd",
        f"Held-out AUROC {row['token_auroc_mean']:.2f}",
    ]


def test_demo_on_tiny_resumes_after_a_kill(tmp_path, corpus):
    logs: list[str] = []
    path = run_demo(
        "tiny", tmp_path, quick=True, corpus=corpus, criteria="first:3", log=logs.append
    )
    assert path == tmp_path / "report.html" and _steps(tmp_path) == STEPS
    html = path.read_text()
    assert external_urls(html) == []
    for head in (
        "Held-out layer sweep",
        "a rewarded (+1) turn",
        "a failed (-1) turn",
        "Steering dose-response",
        "About this run",
        "Correct vs corrupted code",
    ):
        assert head in html
    success, title = load_trace(tmp_path / "trace-1-success.json")
    assert "Held-out criterion" in title and success.layers == [0, 1]
    sweep = pd.read_csv(tmp_path / "sweep.csv")
    assert sweep["layer"].tolist() == [0, 1]
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["demo"]["config"]["enable_thinking"] is False  # the paper's setting, recorded
    # the sweep ran on placebo-labelled data, and run.json names its CI for the report
    assert sweep["placebo_auroc"].notna().all() and sweep["did_auroc_mean"].notna().all()
    assert meta["sweep"]["ci"]["cluster"] == "group" and meta["sweep"]["ci"]["level"]
    # the first section: the sentence from sweep.csv's numbers and the control panel
    first = html[html.index("<h2>About this run</h2>") : html.index("<h2>", html.index("<h2>") + 4)]
    best = int(sweep.loc[sweep["token_auroc_mean"].idxmax(), "layer"])
    for part in _expected_sentence(sweep):
        assert part in first
    assert f"Value beyond position at layer {best}" in first
    assert f"Value axis and controls at layer {best}" in first
    matched = "axis, matched on place and turn length"  # in the panel where it has a value
    assert (matched in first) == bool(sweep["matched_auroc"].notna().any())
    for label in (
        "axis on placebo turns",
        "DiD axis (criterion minus placebo contrast)",
        "closeness to turn end",
        "position within the turn",
        "sign-aligned random direction",
    ):
        assert label in first
    # the code suite ran at the best held-out layer; its d is Cohen's d of the saved table
    code = pd.read_csv(tmp_path / "code.csv")
    head = meta["code_suite"]
    assert head["layer"] == best and head["n_pairs"] == len(code)
    d = float(cohens_d(code["correct_whole"], code["corrupted_whole"]))
    assert head["d"] == pytest.approx(d, rel=1e-12)
    assert head["d_ci_lo"] < head["d"] < head["d_ci_hi"] and head["n_problems"] == 4
    assert f"Cohen&#x27;s d = {d:.2f}" in first

    # simulate a kill after the sweep: later steps are missing from the log
    lines = (tmp_path / "steps.jsonl").read_text().splitlines()
    (tmp_path / "steps.jsonl").write_text("\n".join(lines[:4]) + "\n")
    stats_mtime = (tmp_path / "stats.safetensors").stat().st_mtime_ns
    logs.clear()
    run_demo("tiny", tmp_path, quick=True, corpus=corpus, criteria="first:3", log=logs.append)
    assert _steps(tmp_path) == STEPS
    assert (tmp_path / "stats.safetensors").stat().st_mtime_ns == stats_mtime
    assert not any("collecting" in x or "held-out sweep" in x for x in logs)
    assert any("code done" in x for x in logs) and any("dose done" in x for x in logs)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "code.csv"), code, check_like=True)

    # a kill after the code suite: a rerun does not score the code again
    lines = (tmp_path / "steps.jsonl").read_text().splitlines()
    (tmp_path / "steps.jsonl").write_text("\n".join(lines[:5]) + "\n")
    code_mtime = (tmp_path / "code.csv").stat().st_mtime_ns
    logs.clear()
    run_demo("tiny", tmp_path, quick=True, corpus=corpus, criteria="first:3", log=logs.append)
    assert _steps(tmp_path) == STEPS
    assert not any("code suite" in x or "code done" in x for x in logs)
    assert (tmp_path / "code.csv").stat().st_mtime_ns == code_mtime
    assert any("heatmaps done" in x for x in logs)

    with pytest.raises(InputError, match="other settings"):
        run_demo("tiny", tmp_path, quick=False, corpus=corpus, criteria="first:3", log=logs.append)


def test_code_headline_is_cohens_d_with_a_problem_bootstrap():
    """Planted: correct code reads 1 higher in every pair; a problem's pairs move together."""
    from value_lens.analysis.metrics import bootstrap_ci
    from value_lens.pipeline.read_steps import code_headline

    rng = np.random.default_rng(0)
    base = np.repeat(rng.normal(0, 1, 10), 4)  # 10 problems x 4 corruptions
    t = pd.DataFrame(
        {
            "problem_id": np.repeat(np.arange(10), 4),
            "kind": list("abcd") * 10,
            "correct_whole": base + 1.0,
            "corrupted_whole": base + rng.normal(0, 0.1, 40),
        }
    )
    h = code_headline(t, n_boot=300, seed=1)
    a, b = t["correct_whole"].to_numpy(), t["corrupted_whole"].to_numpy()
    pooled = np.sqrt(((a.var(ddof=1) + b.var(ddof=1)) * 39) / 78)  # hand formula, equal n
    assert h["d"] == pytest.approx((a.mean() - b.mean()) / pooled)
    assert (h["n_problems"], h["n_pairs"], h["pct_correct_higher"]) == (10, 40, 100.0)
    # the interval resamples problems, not pairs: wider than the pair bootstrap
    iid = bootstrap_ci(lambda x, y: float(cohens_d(x, y)), a, b, paired=True, n_boot=300, seed=1)
    assert h["d_ci_hi"] - h["d_ci_lo"] > iid[1] - iid[0]


@pytest.mark.slow
def test_quick_demo_on_the_embedded_model(smollm, tmp_path):
    torch.manual_seed(0)
    path = run_demo(smollm, tmp_path, quick=True, log=lambda _: None)
    html = path.read_text()
    assert external_urls(html) == [] and "HuggingFaceTB/SmolLM2-135M-Instruct" in html
    assert _steps(tmp_path) == STEPS
    sweep = pd.read_csv(tmp_path / "sweep.csv")
    assert sweep["layer"].tolist() == list(range(30))
    assert sweep["token_auroc_mean"].between(0, 1).all()
    dose = pd.read_csv(tmp_path / "dose.csv")
    assert sorted(set(dose["alpha"])) == [-16.8, 0.0, 16.8] and (dose["unit"] == "percent").all()
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["heatmap_layer"] in range(30)


def test_turn_traces_from_one_pass_equal_separate_passes(tiny):
    from value_lens.fitting.axis import ValueAxis
    from value_lens.pipeline.read_steps import turn_traces

    msgs = [
        {"role": "system", "content": "Play the paragraph game."},
        {"role": "user", "content": "Paragraph 1:\n\nThe river is long."},
        {"role": "assistant", "content": "<thinking>Try a dash.</thinking>\n\nThe river - long."},
        {"role": "user", "content": "-1"},
        {"role": "assistant", "content": "<thinking>A colon?</thinking>\n\nThe river: long."},
    ]
    axis = ValueAxis(
        torch.randn(2, 64, generator=torch.Generator().manual_seed(0)), model_id=tiny.cfg.model_name
    )
    first, last = turn_traces(tiny, axis, msgs, [2, 4])
    (alone,) = turn_traces(tiny, axis, msgs, [2])
    assert first.tokens == alone.tokens and "".join(last.tokens).endswith("The river: long.")
    torch.testing.assert_close(first.cosine, alone.cosine, rtol=1e-4, atol=1e-5)


def test_turn_traces_read_each_turn_as_in_the_whole_conversation(tiny):
    """Success and failure turns sit in the same context as in the full conversation: the
    success turn is not rendered as a final turn (no empty think block on one side only)."""
    from value_lens.analysis.readout import trace
    from value_lens.core.chat import format_chat
    from value_lens.fitting.axis import ValueAxis
    from value_lens.pipeline.read_steps import turn_traces

    msgs = [
        {"role": "user", "content": "Paragraph 1:\n\nThe river is long."},
        {"role": "assistant", "content": "<thinking>Try a dash.</thinking>\n\nThe river - long."},
        {"role": "user", "content": "-1"},
        {"role": "assistant", "content": "<thinking>A colon?</thinking>\n\nThe river: long."},
        {"role": "user", "content": "+1"},
        {"role": "user", "content": "Paragraph 2:\n\nThe hill is high."},
    ]
    axis = ValueAxis(
        torch.randn(2, 64, generator=torch.Generator().manual_seed(1)),
        model_id=tiny.cfg.model_name,
    )
    fail, success = turn_traces(tiny, axis, msgs, [1, 3])
    chat = format_chat(tiny.tokenizer, msgs)
    whole = trace(tiny, chat.text, axis)
    for tr, index in ((fail, 1), (success, 3)):
        mask = whole.char_span_mask(chat.spans[index].start, chat.spans[index].end)
        assert tr.token_ids.tolist() == whole.token_ids[mask].tolist()
        torch.testing.assert_close(tr.cosine, whole.cosine[:, mask], rtol=1e-4, atol=1e-5)


def test_demo_takes_one_forward_pass_when_the_residuals_fit_and_matches_two(tmp_path, corpus):
    """Under the memory budget the stats step's single pass gives the statistics and the sweep
    (the sweep step reuses it); with a zero budget the demo collects, then projects. Statistics
    and sweep agree to fp32 rounding (the shuffled-label null exists on the one-pass path only)."""
    from value_lens import ActivationStats

    logs: dict[str, list[str]] = {"one": [], "two": []}
    for name, budget in (("one", None), ("two", 0.0)):
        run_demo(
            "tiny",
            tmp_path / name,
            quick=True,
            corpus=corpus,
            criteria="first:3",
            memory_budget_gb=budget,
            log=logs[name].append,
        )
    assert any("one forward pass: the labelled residuals" in x for x in logs["one"])
    assert any("two forward passes" in x for x in logs["two"])
    assert not any("collecting statistics" in x for x in logs["one"])
    passes = {
        name: [json.loads(x) for x in (tmp_path / name / "steps.jsonl").read_text().splitlines()]
        for name in logs
    }
    sweep_rec = {n: next(r for r in recs if r["step"] == "sweep") for n, recs in passes.items()}
    assert sweep_rec["one"]["forward_passes"] == 1 and sweep_rec["two"]["forward_passes"] == 2
    one, two = (ActivationStats.load(tmp_path / n / "stats.safetensors") for n in logs)
    assert torch.equal(one.count, two.count) and one.layers == two.layers
    torch.testing.assert_close(one.sum, two.sum, rtol=1e-5, atol=1e-4)
    a, b = (pd.read_csv(tmp_path / n / "sweep.csv") for n in logs)
    cols = [c for c in a.columns if c != "shuffled_auroc_mean"]
    pd.testing.assert_frame_equal(a[cols], b[cols], atol=1e-5, rtol=1e-5)
    assert a["shuffled_auroc_mean"].notna().all() and b["shuffled_auroc_mean"].isna().all()
