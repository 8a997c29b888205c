"""benchmarks/bench_decode.py --quick: the whole evaluation on the tiny model, in seconds."""

from __future__ import annotations

import json

import pytest
from _bench import load_benchmark


def test_decode_benchmark_quick_mode(tmp_path):
    bench = load_benchmark("bench_decode")
    out = tmp_path / "decode.json"
    res = bench.main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res, default=float))
    s = res["setting"]
    assert s["quick"] and s["level"] in (1, 2, 3, 4, 5)
    assert [r["level"] for r in res["calibration"]] == [1, 2, 3, 4, 5]
    names = {r["scorer"] for r in res["auroc"]}
    assert {"value", "logprob", "self_certainty", "deepconf_lowest8", "probe", "length"} <= names
    assert {"random_dirs", "value@0"} <= names
    rows = {r["method"]: r for r in res["best_of_k_argmax"]}
    n = s["n"]
    for r in rows.values():  # nobody beats the oracle; k = 1 is random selection for all
        assert r[f"k{n}"] <= rows["oracle"][f"k{n}"] + 1e-12
        assert r["k1"] == pytest.approx(rows["random"]["k1"], abs=1e-4)
    assert rows["random"][f"k{n}"] == pytest.approx(s["sample_accuracy"], abs=1e-4)
    assert {r["method"] for r in res["best_of_k_weighted_vote"]} >= {"value", "probe"}
    stops = res["early_stop"]
    assert {r["scorer"] for r in stops} == {"deepconf", "value", "logprob", "random_stop"}
    for r in stops:
        assert 0 <= r["tokens_saved"] <= 1
        assert r["tokens_saved_lo"] <= r["tokens_saved"] + 1e-9
    for name in ("deepconf", "value", "logprob", "random_stop"):  # higher percentile, more stops
        saved = [r["tokens_saved"] for r in stops if r["scorer"] == name]
        assert saved == sorted(saved)
