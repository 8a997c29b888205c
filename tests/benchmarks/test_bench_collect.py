"""Smoke test of benchmarks/bench_collect.py --moments on the tiny model (no timing claims)."""

import json

import pytest
from _bench import load_benchmark


def test_moments_mode_collects_the_plan_and_writes_ratios(monkeypatch, tmp_path):
    bench = load_benchmark("bench_collect")
    import value_lens.fitting.collect as collect

    plans = []
    real = collect.collect_stats

    def spy(*args, **kwargs):
        plans.append(kwargs.get("plan"))
        return real(*args, **kwargs)

    monkeypatch.setattr(collect, "collect_stats", spy)
    for mode in ("sums", "moments"):
        res = bench.worker(mode, 1024, "tiny")
        assert res["mode"] == mode and res["tokens"] == 1024 and res["cpu_s"] > 0
    assert plans[0] is None and plans[1].positions and plans[1].squares

    def fake(mode, n, _model):
        cpu = {"sums": 2.0, "moments": 3.0}[mode]
        return {"mode": mode, "tokens": n, "cpu_s": cpu, "wall_s": 1.0, "peak_rss_mb": 10.0}

    monkeypatch.setattr(bench, "_worker_run", fake)
    out = tmp_path / "m.json"
    summary = bench.moments(1024, "tiny", 2, out)
    assert summary["moments_cpu_ratio"] == pytest.approx(1.5)
    saved = json.loads(out.read_text())
    assert len(saved["runs"]["moments"]) == 2 and saved["summary"]["class_moment_bytes"] > 0
