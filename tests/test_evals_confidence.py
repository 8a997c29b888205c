"""Confidence suite: problem generation, answer parsing, Yes/No prefill readout, summaries."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests._evals_helpers import has_generate, random_axis
from value_lens.errors import InputError
from value_lens.evals._common import prefill
from value_lens.evals.backtracking import MATH_SYSTEM
from value_lens.evals.confidence import (
    FRAMINGS,
    arithmetic_problems,
    load_math_problems,
    parse_answer,
    run_confidence_suite,
)
from value_lens.readout import trace


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
    mags = {lv: np.mean([abs(p["answer"]) for p in probs if p["difficulty"] == lv])
            for lv in range(1, 6)}  # fmt: skip
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


def test_suite_with_supplied_replies_tiny(tiny):
    axis = random_axis(tiny)
    probs = [{"question": "What is 2 + 3?", "answer": 5}, {"question": "What is 4 * 4?", "answer": 16},
             {"question": "What is 9 - 1?", "answer": 8}]  # fmt: skip
    replies = ["2 + 3 = \\boxed{5}", "4 * 4 = \\boxed{15}", "I do not know."]
    res = run_confidence_suite(tiny, axis, 1, probs, replies=replies, n_samples=0, progress=False)
    ans = res.extras["answers"]
    assert ans["parsed_ok"].tolist() == [True, True, False]
    assert ans["correct"].tolist() == [True, False, False]
    assert len(res.table) == 2 * 2 * 2  # parseable problems x framings x prefills
    s = res.summary.set_index("framing")
    assert s.loc["correct", "n_unparseable"] == 1 and s.loc["correct", "accuracy"] == 0.5
    assert 0 <= s.loc["incorrect", "auroc_yes_vs_no"] <= 1
    a_c, a_i = s.loc["correct", "auroc_yes_vs_no"], s.loc["incorrect", "auroc_yes_vs_no"]
    assert s.loc["correct", "flips_with_framing"] == ((a_c - 0.5) * (a_i - 0.5) < 0)
    # the value is read at the prefilled token: recompute one by hand
    row = res.table.iloc[0]
    msgs = [{"role": "system", "content": MATH_SYSTEM},
            {"role": "user", "content": probs[0]["question"]},
            {"role": "assistant", "content": replies[0]},
            {"role": "user", "content": FRAMINGS[row["framing"]]},
            {"role": "assistant", "content": row["prefill"]}]  # fmt: skip
    pf = prefill(tiny.tokenizer, msgs)
    tr = trace(tiny, pf.text, axis, [1])
    assert pf.text.endswith(row["prefill"])
    assert row["value"] == pytest.approx(float(tr.projection[0, -1]), abs=1e-5)
    with pytest.raises(InputError, match="one per problem"):
        run_confidence_suite(tiny, axis, 1, probs, replies=replies[:2], n_samples=0,
                             progress=False)  # fmt: skip


@pytest.mark.slow
def test_confidence_end_to_end_smollm(smollm):
    if not has_generate():
        pytest.skip("value_lens.generate has not landed yet")
    res = run_confidence_suite(smollm, random_axis(smollm), 20, n_problems=3, max_new_tokens=40,
                               n_samples=3, progress=False)  # fmt: skip
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
    kw = {"replies": replies, "n_samples": 0, "batch_size": 1, "log": log, "progress": False}
    first = run_confidence_suite(tiny, axis, 1, probs, **kw)
    assert len(log.read_text().splitlines()) == 2
    again = run_confidence_suite(tiny, axis, 1, probs, **kw)
    assert again.table.equals(first.table)
    assert again.extras["answers"]["correct"].tolist() == [True, False]
