"""benchmarks/bench_steer.py on the tiny model: every configuration decodes the same, forced-length
tokens, and re-timing one batch size keeps the other's records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(out: Path, *extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_steer.py"), "--model", "tiny"]
    cmd += ["--repeats", "1", "--tokens", "6", "--out", str(out), *extra]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True, timeout=600)
    return json.loads(out.read_text())


def test_bench_steer_smoke_equal_tokens_and_carry_over(tmp_path):
    out = tmp_path / "steer.json"
    res = _run(out)
    recs = res["fast_generation"]
    configs = {"bridge", "fast", "fast_steer_1_layer", "fast_steer_all_layers"}
    for batch, rows in ((1, 4), (8, 8)):
        mine = [r for r in recs if r["batch"] == batch]
        assert {r["config"] for r in mine} == configs
        assert {r["new_tokens"] for r in mine} == {rows * 6}  # forced: no row stops early
        fast = next(r for r in mine if r["config"] == "fast")
        assert fast["x_fast_unsteered"] == 1.0
    assert res["same_tokens"] == {"1": True, "8": True}
    first = [r for r in recs if r["batch"] == 1]
    again = _run(out, "--batches", "8")
    assert [r for r in again["fast_generation"] if r["batch"] == 1] == first
    assert {r["batch"] for r in again["fast_generation"]} == {1, 8}
