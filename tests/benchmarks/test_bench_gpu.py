"""benchmarks/bench_gpu.py's CPU smoke mode: the same code path as on the GPU, tiny shapes."""

from __future__ import annotations

import json

import pytest
from _bench import load_benchmark


def test_gpu_benchmark_smoke_mode(tmp_path):
    bench = load_benchmark("bench_gpu")
    out = tmp_path / "gpu.json"
    res = bench.main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert res["shard_merge_equal_2_vs_1"] is True  # 2 merged shards == 1 rank
    c = res["collect"]
    assert c["ratio_vs_plain_forward"] == pytest.approx(
        c["tokens_per_s"] / c["plain_forward_tokens_per_s"]
    )
    assert {(r["batch"], r["mode"]) for r in res["generation"]} == {
        (1, "unsteered"),
        (1, "steered_1_layer"),
        (16, "unsteered"),
        (16, "steered_1_layer"),
    }
    ext = res["paper_scale_extrapolated_s"]
    assert ext["collect_1M_tokens"] == pytest.approx(1e6 / c["tokens_per_s"])
