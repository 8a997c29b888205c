"""benchmarks/bench_decode.py --quick: the whole evaluation on the tiny model, in seconds; and
benchmarks/bench_monitor_fpr.py --quick, whose live stop rule must end exactly the held-out
generations its offline per-response rate counts."""

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
    assert s["quick"] and s["level"] in (1, 2, 3, 4, 5) and s["warmup"] == 3
    assert [r["level"] for r in res["calibration"]] == [1, 2, 3, 4, 5]
    names = {r["scorer"] for r in res["auroc"]}
    assert {"value", "logprob", "self_certainty", "deepconf_lowest8", "probe", "length"} <= names
    assert {"random_dirs", "value@0"} <= names
    rows = {r["method"]: r for r in res["best_of_k_argmax"]}
    n = s["best_of_k_n"]
    for r in rows.values():  # nobody beats the oracle; k = 1 is random selection for all
        assert r[f"k{n}"] <= rows["oracle"][f"k{n}"] + 1e-12
        assert r["k1"] == pytest.approx(rows["random"]["k1"], abs=1e-4)
    paired = {r["method"]: r for r in res["best_of_k_argmax_paired"]}
    for m, r in paired.items():  # the paired difference is the difference of the two curves
        assert r["vs_random"] == pytest.approx(rows[m][f"k{n}"] - rows["random"][f"k{n}"], abs=2e-4)
        assert r["vs_majority"] == pytest.approx(
            rows[m][f"k{n}"] - rows["majority"][f"k{n}"], abs=2e-4
        )
    assert {r["method"] for r in res["best_of_k_weighted_vote"]} >= {"value", "probe"}
    stops = res["early_stop"]
    assert {r["scorer"] for r in stops} == {"deepconf", "value", "logprob", "random_stop"}
    for r in stops:
        assert 0 <= r["tokens_saved"] <= 1 and r["warmup"] == 3
        assert r["tokens_saved_lo"] <= r["tokens_saved"] + 1e-9
    for name in ("deepconf", "value", "logprob", "random_stop"):  # higher percentile, more stops
        saved = [r["tokens_saved"] for r in stops if r["scorer"] == name]
        assert saved == sorted(saved)
    budget = res["early_stop_equal_budget"]
    assert {r["scorer"] for r in budget} == {"deepconf", "value", "logprob", "random_stop"}
    assert {r["tokens_saved"] for r in budget} == {0.05, 0.1}
    for r in budget:
        if r["scorer"] == "random_stop" and "vs_random" in r:
            assert r["vs_random"] == 0.0  # itself
        if "accuracy" in r and "vs_majority" in r and r["scorer"] != "random_stop":
            assert "vs_matched" in r  # every scorer has its length-matched control


def test_monitor_fpr_benchmark_quick_mode(tmp_path):
    bench = load_benchmark("bench_monitor_fpr")
    res = bench.main(["--quick", "--out", str(tmp_path / "m.json")])
    assert {r["material"] for r in res["rates"]} == {"texts", "generations"}
    assert {(r["fpr"], r["calibrated_per"]) for r in res["rates"]} == {
        (f, u) for f in (0.01, 0.05) for u in ("response", "token")
    }
    for r in res["rates"]:
        assert r["per_response_lo"] <= r["held_out_per_response"] <= r["per_response_hi"]
    for r in res["live"]:  # the live rule ends exactly the rows the offline rate counts
        assert r["live_stopped_share"] == pytest.approx(r["offline_per_response"])
