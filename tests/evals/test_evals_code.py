"""Code suite: stdlib extraction, corruption guarantees, scoring windows, JSONL problems."""

from __future__ import annotations

import ast
import json
import random

import numpy as np
import pandas as pd
import pytest

from tests._evals_helpers import THINK_OFF, hf_cosines, hf_span_mean, random_axis, turn
from value_lens.errors import InputError
from value_lens.evals.code import (
    CODE_SYSTEM,
    CODE_USER,
    build_code_pairs,
    code_summary,
    load_code_problems,
    run_code_suite,
    stdlib_functions,
)
from value_lens.evals.corrupt import CORRUPTIONS, corrupt_code


@pytest.fixture(scope="module")
def functions():
    return stdlib_functions(60, seed=3)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def test_stdlib_functions_are_real_and_deterministic(functions):
    assert len(functions) == 60
    assert len({f["path"] for f in functions}) > 10
    assert all(_parses(f["code"]) and f["code"].startswith("def ") for f in functions)
    assert stdlib_functions(5, seed=3) == functions[:5]


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_every_corruption_changes_code_and_parses_as_promised(functions, kind):
    for f in functions:
        for seed in range(3):
            bad = corrupt_code(f["code"], kind, random.Random(seed))
            assert bad != f["code"]
            assert _parses(bad) == (kind != "syntax"), (kind, f["name"], bad)


def test_corruption_details():
    src = (
        "def scale(values, factor=2):\n"
        "    total = 0\n"
        "    for value in values:\n"
        "        total = total + value.size * factor\n"
        "    return dict(factor=factor, total=total)\n"
    )
    renamed = corrupt_code(src, "rename", 0)
    assert "value.size" not in renamed and ".size" in renamed  # attribute kept
    assert "dict(factor=" in renamed  # keyword argument kept
    tree = ast.parse(renamed)
    args = [a.arg for a in tree.body[0].args.args]
    assert all(len(a) == 1 for a in args)
    shuffled = corrupt_code(src, "shuffle", 1)
    assert sorted(shuffled.splitlines()) == sorted(src.splitlines())
    assert corrupt_code(src, "logic", 5) != src
    with pytest.raises(InputError, match="unknown corruption"):
        corrupt_code(src, "typo", 0)
    with pytest.raises(InputError, match="one function"):
        corrupt_code("x = 1\n", "logic", 0)
    with pytest.raises(InputError, match="does not parse"):
        corrupt_code("def f(:\n", "logic", 0)
    with pytest.raises(InputError, match="at least 2"):
        corrupt_code("def f():\n    return 1\n", "shuffle", 0)


def test_user_jsonl_and_suite_on_tiny(tiny, tmp_path):
    path = tmp_path / "p.jsonl"
    recs = [
        {
            "problem": "Return the larger of a and b.",
            "solution": "def larger(a, b):\n    if a > b:\n        return a\n    return b\n",
        },
        {
            "problem": "Sum a list.",
            "solution": "def total(items):\n    result = 0\n    for item in items:\n"
            "        result = result + item\n    return result\n",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    probs = load_code_problems(path)
    pairs = build_code_pairs(probs, seed=0)
    kinds = [p["kind"] for p in pairs]
    assert kinds.count("syntax") == 2 and kinds.count("logic") == 2
    res = run_code_suite(tiny, random_axis(tiny), 1, pairs, window=3, progress=False)
    t = res.table
    assert len(t) == len(pairs)
    for _, row in t.iterrows():
        p = pairs[_]
        f = row["first_change_char"]
        assert p["correct"][:f] == p["corrupted"][:f] and p["correct"][f] != p["corrupted"][f]
    assert t[["correct_whole", "corrupted_whole", "correct_window"]].notna().all().all()
    s = res.summary.set_index("kind")
    assert set(s.index) == {k for k in kinds}
    assert s["n_pairs"].to_dict() == {k: kinds.count(k) for k in kinds}
    (tmp_path / "bad.jsonl").write_text('{"problem": "x"}\n')
    with pytest.raises(InputError, match="solution"):
        load_code_problems(tmp_path / "bad.jsonl")


def test_code_summary_planted():
    table = pd.DataFrame(
        {
            "kind": ["logic"] * 4 + ["rename"] * 2,
            "correct_whole": [1.0, 2.0, 3.0, 4.0, 0.5, 0.5],
            "corrupted_whole": [0.0, 3.0, 1.0, 2.0, 0.25, 0.75],
            "correct_window": [1.0, 1.0, np.nan, 1.0, 0.0, 0.0],
            "corrupted_window": [0.0, 2.0, 5.0, 0.5, 1.0, 1.0],
        }
    )
    s = code_summary(table).set_index("kind")
    # logic, whole: correct higher in 3 of 4 pairs; means 2.5 vs 1.5, both sd sqrt(5/3);
    # differences [1, -1, 2, 2]: mean 1, sd sqrt(2)
    assert s.loc["logic", "pct_correct_higher_whole"] == pytest.approx(75.0)
    assert s.loc["logic", "d_unpaired_whole"] == pytest.approx(1.0 / np.sqrt(5 / 3))
    assert s.loc["logic", "d_paired_whole"] == pytest.approx(1.0 / np.sqrt(2))
    # logic, window: the NaN pair is dropped, correct higher in 2 of 3
    assert s.loc["logic", "pct_correct_higher_window"] == pytest.approx(200 / 3)
    assert s.loc["rename", "pct_correct_higher_whole"] == pytest.approx(50.0)
    assert s.loc["rename", "pct_correct_higher_window"] == 0.0
    assert s.loc["logic", "n_pairs"] == 4
    # 4 pairs of independent problems: the d interval is the jackknife t over them (by hand)
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 3.0, 1.0, 2.0])
    loo = [(np.delete(a - b, i)).mean() / np.delete(a - b, i).std(ddof=1) for i in range(4)]
    se = np.sqrt(3 / 4 * np.sum((np.array(loo) - np.mean(loo)) ** 2))
    half = 3.182446 * se  # t quantile, 3 degrees of freedom
    assert s.loc["logic", "d_paired_whole_lo"] == pytest.approx(1 / np.sqrt(2) - half)
    assert s.loc["logic", "d_paired_whole_hi"] == pytest.approx(1 / np.sqrt(2) + half)
    assert np.isnan(s.loc["rename", "d_paired_whole_lo"])  # 2 pairs: no interval
    lengths = table.assign(
        correct_tokens=[10, 10, 10, 10, 8, 8], corrupted_tokens=[10, 11, 10, 9, 5, 6]
    )
    s = code_summary(lengths).set_index("kind")
    assert (
        s.loc["logic", "token_change_mean"] == 0.0 and s.loc["logic", "token_change_share"] == 0.5
    )
    assert (
        s.loc["rename", "token_change_mean"] == -2.5
        and s.loc["rename", "token_change_share"] == 1.0
    )


def test_code_suite_reads_hf_cosine_after_the_empty_think_block(tiny, tiny_hf):
    src = "def larger(first, second):\n    if first > second:\n        return first\n    return second\n"
    pairs = build_code_pairs([{"name": "larger", "problem": "Max.", "code": src}], ["logic"])
    axis = random_axis(tiny, seed=5)
    res = run_code_suite(tiny, axis, 0, pairs, window=3, progress=False)
    assert res.meta["enable_thinking"] is False and res.meta["metric"] == "cosine"
    row = res.table.iloc[0]
    for code, whole, win, n_tok in (
        (src, row["correct_whole"], row["correct_window"], row["correct_tokens"]),
        (
            pairs[0]["corrupted"],
            row["corrupted_whole"],
            row["corrupted_window"],
            row["corrupted_tokens"],
        ),
    ):
        head = (
            turn("system", CODE_SYSTEM)
            + turn("user", CODE_USER.format(problem="Max."))
            + "<|im_start|>assistant\n"
            + THINK_OFF
            + "```python\n"
        )
        full = head + code + "\n```"
        start, end = len(head), len(head) + len(code)
        assert whole == pytest.approx(hf_span_mean(tiny_hf, full, start, end, axis, 0), abs=1e-4)
        cos, offs = hf_cosines(tiny_hf, full, axis, 0)
        assert n_tok == int(((offs[:, 1] > start) & (offs[:, 0] < end)).sum())  # HF offsets
        after = np.flatnonzero((offs[:, 1] > start + row["first_change_char"]) & (offs[:, 0] < end))
        assert win == pytest.approx(float(cos[after[:3]].mean()), abs=1e-4)
    thinking = run_code_suite(tiny, axis, 0, pairs, window=3, enable_thinking=True, progress=False)
    assert thinking.meta["enable_thinking"] is True
    full = (
        turn("system", CODE_SYSTEM)
        + turn("user", CODE_USER.format(problem="Max."))
        + "<|im_start|>assistant\n```python\n"
        + src
        + "\n```"
    )
    start = full.index(src)
    want = hf_span_mean(tiny_hf, full, start, start + len(src), axis, 0)
    assert thinking.table["correct_whole"].iloc[0] == pytest.approx(want, abs=1e-4)


@pytest.mark.slow
def test_code_suite_end_to_end_smollm(smollm):
    res = run_code_suite(smollm, random_axis(smollm), 20, n_problems=2, progress=False)
    assert len(res.table) == 8
    assert list(res.summary["kind"]) == list(CORRUPTIONS)
    assert res.summary[["d_unpaired_whole", "d_paired_whole"]].notna().all().all()


def test_code_suite_resumes_from_log(tiny, tmp_path):
    src = "def larger(first, second):\n    if first > second:\n        return first\n    return second\n"
    pairs = build_code_pairs(
        [{"name": "larger", "problem": "Max.", "code": src}], ["logic", "rename"]
    )
    axis = random_axis(tiny)
    log = tmp_path / "code.jsonl"
    first = run_code_suite(tiny, axis, 1, pairs, log=log, progress=False).table
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    rec = json.loads(lines[0])
    rec["row"]["correct_whole"] = 123.0  # a finished item is read back, not recomputed
    log.write_text(json.dumps(rec) + "\n" + lines[1] + "\n")
    again = run_code_suite(tiny, axis, 1, pairs, log=log, progress=False).table
    assert again["correct_whole"].iloc[0] == 123.0
    assert again["corrupted_whole"].tolist() == first["corrupted_whole"].tolist()
    with pytest.raises(InputError, match="another run"):
        run_code_suite(tiny, axis, 0, pairs, log=log, progress=False)
