"""Confidence suite: problem generation, answer parsing, Yes/No prefill readout, summaries."""

from __future__ import annotations

import importlib
import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from tests._evals_helpers import THINK_OFF, has_generate, hf_cosines, random_axis, turn
from value_lens.core.chat import format_chat
from value_lens.errors import InputError
from value_lens.evals.backtracking import MATH_SYSTEM
from value_lens.evals.confidence import (
    CONFIDENCE_GENERATION,
    FRAMINGS,
    confidence_summary,
    run_confidence_suite,
)
from value_lens.evals.problems import arithmetic_problems, load_math_problems, parse_answer


def test_parse_answer():
    assert parse_answer("So \\boxed{42}. Then 7.") == 42.0
    assert parse_answer("steps 3, 4 ... \\boxed{x = -12} ok") == -12.0
    assert parse_answer("The answer is 1,024.") == 1024.0
    assert parse_answer("first 3 then 2.5") == 2.5
    assert parse_answer("I cannot say.") is None
    assert parse_answer("\\boxed{}") is None


def test_arithmetic_problems_answers_and_difficulty():
    probs = arithmetic_problems(100, seed=1)
    assert probs == arithmetic_problems(100, seed=1)
    for p in probs:
        if p["kind"] == "arithmetic":  # check against Python's own arithmetic
            expr = re.fullmatch(r"What is (.*)\?", p["question"]).group(1)
            assert int(eval(expr)) == p["answer"]
    mags = {
        lv: np.mean([abs(p["answer"]) for p in probs if p["difficulty"] == lv])
        for lv in range(1, 6)
    }
    assert mags[1] < mags[2] < mags[4]
    with pytest.raises(InputError):
        arithmetic_problems(3, levels=[9])


def test_load_math_problems(tmp_path):
    path = tmp_path / "aime.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    assert load_math_problems(path)[0]["answer"] == 2.0
    path.write_text(json.dumps({"question": "?", "answer": "two"}) + "\n")
    with pytest.raises(InputError, match="non-numeric"):
        load_math_problems(path)


PROBS = [
    {"question": "What is 2 + 3?", "answer": 5},
    {"question": "What is 4 * 4?", "answer": 16},
    {"question": "What is 9 - 1?", "answer": 8},
]


# layer 0 = HF hidden_states[1]; the tiny model's hidden_states[2] is after the final norm
def _prefill_text(question: str, shown: str, framing: str, word: str, *, thinking: bool) -> str:
    """The Qwen3 rendering of a Yes/No prefill, written by hand."""
    return (
        turn("system", MATH_SYSTEM)
        + turn("user", question)
        + turn("assistant", shown)
        + turn("user", FRAMINGS[framing])
        + "<|im_start|>assistant\n"
        + ("" if thinking else THINK_OFF)
        + word
    )


def test_prefill_is_hf_cosine_right_after_the_empty_think_block(tiny, tiny_hf):
    axis = random_axis(tiny)
    replies = [
        "2 + 3 = \\boxed{5}",
        "<think>\nMaybe \\boxed{17}. Wait, 4 * 4 = 16.\n</think>\n\nSo 4 * 4 = 16.",  # Qwen3 reasoning
        "I do not know.",
    ]
    res = run_confidence_suite(tiny, axis, 0, PROBS, replies=replies, n_samples=0, progress=False)
    assert res.meta["enable_thinking"] is False and res.meta["metric"] == "cosine"
    ans = res.extras["answers"]
    assert ans["parsed"].tolist()[:2] == [5.0, 16.0]  # the visible reply, not the reasoning's 17
    assert ans["parsed_ok"].tolist() == [True, True, False]
    assert ans["correct"].tolist() == [True, True, False]
    assert len(res.table) == 2 * 2 * 2  # parseable problems x framings x prefills
    shown = ["2 + 3 = \\boxed{5}", "So 4 * 4 = 16."]  # Qwen3 drops earlier turns' reasoning
    for row in res.table.itertuples():
        text = _prefill_text(
            PROBS[row.problem_id]["question"],
            shown[row.problem_id],
            row.framing,
            row.prefill,
            thinking=False,
        )
        cos, _ = hf_cosines(tiny_hf, text, axis, 0)
        assert row.value == pytest.approx(float(cos[-1]), abs=1e-4)
    with pytest.raises(InputError, match="one per problem"):
        run_confidence_suite(tiny, axis, 0, PROBS, replies=replies[:2], n_samples=0, progress=False)


def test_thinking_option_and_projection_option(tiny, tiny_hf):
    axis = random_axis(tiny, seed=1)
    replies = [
        "\\boxed{5}",
        "<think>\n16 or \\boxed{15}",
        "8",
    ]  # reply 1 never closes its reasoning
    on = CONFIDENCE_GENERATION.with_overrides(enable_thinking=True)
    res = run_confidence_suite(
        tiny, axis, 0, PROBS, replies=replies, n_samples=0, gen=on, progress=False
    )
    assert res.meta["enable_thinking"] is True
    assert res.extras["answers"]["parsed_ok"].tolist() == [True, False, True]
    row = res.table.iloc[0]
    text = _prefill_text(
        PROBS[0]["question"], replies[0], row["framing"], row["prefill"], thinking=True
    )
    cos, _ = hf_cosines(tiny_hf, text, axis, 0)
    assert row["value"] == pytest.approx(float(cos[-1]), abs=1e-4)
    proj = run_confidence_suite(
        tiny,
        axis,
        0,
        PROBS[:1],
        replies=replies[:1],
        n_samples=0,
        metric="projection",
        progress=False,
    )
    hf, tok = tiny_hf
    text = _prefill_text(PROBS[0]["question"], replies[0], "correct", "Yes", thinking=False)
    with torch.no_grad():
        h = hf(tok(text, return_tensors="pt")["input_ids"], output_hidden_states=True)
    want = float(h.hidden_states[1][0, -1] @ axis.direction(0))
    got = proj.table.set_index(["framing", "prefill"]).loc[("correct", "Yes"), "value"]
    assert proj.meta["metric"] == "projection" and got == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("thinking", [False, True])
def test_generation_gets_the_thinking_flag_and_pre_response_window(
    tiny, tiny_hf, monkeypatch, thinking
):
    conf_mod = importlib.import_module("value_lens.evals.confidence")
    calls = []

    def fake_generate(model, prompts, config, **_kw):
        calls.append(config)
        follow = prompts[0][-1]["content"] == FRAMINGS["correct"]
        outs = ["Yes", " no.", "yes!", "<think>\nhmm"] if follow else ["2 + 3 = \\boxed{5}"]
        texts = [outs[i % len(outs)] for i in range(len(prompts))]
        prompt = format_chat(
            model.tokenizer,
            prompts[0],
            add_generation_prompt=True,
            enable_thinking=config.enable_thinking,
        ).text
        return [SimpleNamespace(text=t, prompt=prompt) for t in texts]

    monkeypatch.setattr(conf_mod, "generate", fake_generate)
    axis = random_axis(tiny, seed=2)
    kw = {} if not thinking else {"gen": CONFIDENCE_GENERATION.with_overrides(enable_thinking=True)}
    res = run_confidence_suite(
        tiny, axis, 0, PROBS[:1], n_samples=4, n_last=6, progress=False, **kw
    )
    assert len(calls) == 2 and all(c.enable_thinking is thinking for c in calls)
    pre = res.extras["pre_response"].iloc[0]
    assert (pre["n_yes"], pre["n_no"]) == (2, 1) and pre["yes_rate"] == pytest.approx(2 / 3)
    prompt = (
        turn("system", MATH_SYSTEM)
        + turn("user", PROBS[0]["question"])
        + turn("assistant", "2 + 3 = \\boxed{5}")
        + turn("user", FRAMINGS["correct"])
        + "<|im_start|>assistant\n"
        + ("" if thinking else THINK_OFF)
    )
    cos, _ = hf_cosines(tiny_hf, prompt, axis, 0)
    assert pre["value"] == pytest.approx(float(cos[-6:].mean()), abs=1e-4)
    assert res.meta["enable_thinking"] is thinking


def test_confidence_summary_planted():
    rows = []
    vals = {
        "correct": ([0.9, 0.8, 0.7], [0.1, 0.85, 0.2]),
        "incorrect": ([0.125, 0.25, 0.375], [0.5, 0.625, 0.25]),
    }
    for framing, (yes, no) in vals.items():
        for pid in range(3):
            rows += [
                {"problem_id": pid, "framing": framing, "prefill": "Yes", "value": yes[pid]},
                {"problem_id": pid, "framing": framing, "prefill": "No", "value": no[pid]},
            ]
    prefills = pd.DataFrame(rows)
    answers = pd.DataFrame(
        {
            "problem_id": [0, 1, 2, 3],
            "parsed_ok": [True, True, True, False],
            "correct": [True, False, True, False],
        }
    )
    pre = pd.DataFrame(
        {
            "problem_id": [0, 1, 2, 3],
            "yes_rate": [0.9, 0.2, 0.6, np.nan],
            "value": [0.3, 0.1, 0.2, 5.0],
        }
    )
    s = confidence_summary(prefills, answers, pre).set_index("framing")
    # P(yes > no) + P(tie) / 2 over the 9 pairs, by hand: 7 of 9, and 1.5 of 9
    assert s.loc["correct", "auroc_yes_vs_no"] == pytest.approx(7 / 9)
    assert s.loc["incorrect", "auroc_yes_vs_no"] == pytest.approx(1.5 / 9)
    assert bool(s.loc["correct", "flips_with_framing"]) is True
    assert s.loc["correct", "mean_no"] == pytest.approx((0.1 + 0.85 + 0.2) / 3)
    # Yes-minus-No gaps: correct framing [0.8, -0.05, 0.5], incorrect [-0.375, -0.375, 0.125]
    assert s.loc["correct", "auroc_gap_correct_vs_wrong"] == pytest.approx(1.0)
    assert s.loc["incorrect", "auroc_gap_correct_vs_wrong"] == pytest.approx(0.75)  # one tie
    assert s.loc["correct", "n_answers"] == 4 and s.loc["correct", "n_unparseable"] == 1
    assert s.loc["correct", "accuracy"] == pytest.approx(2 / 3)
    assert s.loc["correct", "pre_auroc_confident"] == pytest.approx(1.0)
    assert s.loc["correct", "pre_spearman"] == pytest.approx(1.0)
    assert (s.loc["correct", "pre_n"], s.loc["correct", "pre_n_confident"]) == (3, 2)
    # the Yes/No interval leaves out a problem's Yes and No together, on the logit scale (by
    # hand): without problem 0, yes [0.8, 0.7] vs no [0.85, 0.2] -> 2 of 4; without 1, 4 of 4
    # (clipped at 1 - 1e-4); without 2, yes [0.9, 0.8] vs no [0.1, 0.85] -> 3 of 4
    logit = [0.0, np.log(0.9999 / 0.0001), np.log(3.0)]
    se = np.sqrt(2 / 3 * np.sum((np.array(logit) - np.mean(logit)) ** 2))
    mid = np.log((7 / 9) / (2 / 9))
    lo, hi = mid - 4.302653 * se, mid + 4.302653 * se  # t quantile, 2 degrees of freedom
    assert s.loc["correct", "auroc_yes_vs_no_lo"] == pytest.approx(1 / (1 + np.exp(-lo)))
    assert s.loc["correct", "auroc_yes_vs_no_hi"] == pytest.approx(1 / (1 + np.exp(-hi)))
    same = prefills.copy()
    same.loc[same["framing"] == "incorrect", "value"] = same.loc[
        same["framing"] == "correct", "value"
    ].to_numpy()
    assert not confidence_summary(same, answers)["flips_with_framing"].any()


@pytest.mark.slow
def test_confidence_end_to_end_smollm(smollm):
    if not has_generate():
        pytest.skip("value_lens.core.generate has not landed yet")
    res = run_confidence_suite(
        smollm,
        random_axis(smollm),
        20,
        n_problems=3,
        gen=CONFIDENCE_GENERATION.with_overrides(max_new_tokens=40),
        n_samples=3,
        progress=False,
    )
    assert len(res.extras["answers"]) == 3
    n_ok = int(res.extras["answers"]["parsed_ok"].sum())
    assert len(res.table) == 4 * n_ok
    assert len(res.summary) == 2 and "n_unparseable" in res.summary
    assert len(res.extras["pre_response"]) == n_ok


def test_confidence_resumes_from_log(tiny, tmp_path):
    axis = random_axis(tiny)
    probs = [
        {"question": "What is 2 + 3?", "answer": 5},
        {"question": "What is 1 + 1?", "answer": 2},
    ]
    replies = ["\\boxed{5}", "\\boxed{3}"]
    log = tmp_path / "conf.jsonl"
    kw = {
        "replies": replies,
        "n_samples": 0,
        "gen": CONFIDENCE_GENERATION.with_overrides(batch_size=1),
        "log": log,
        "progress": False,
    }
    first = run_confidence_suite(tiny, axis, 1, probs, **kw)
    assert len(log.read_text().splitlines()) == 2
    again = run_confidence_suite(tiny, axis, 1, probs, **kw)
    assert again.table.equals(first.table)
    assert again.extras["answers"]["correct"].tolist() == [True, False]
