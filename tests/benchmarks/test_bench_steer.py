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
    configs |= {"fast_cap", "fast_rotate", "fast_conditional"}  # each mode's overhead
    for batch, rows in ((1, 4), (8, 8)):
        mine = [r for r in recs if r["batch"] == batch]
        # the transplant runs 4 (donor, host) pairs in one batch: batch 8 only
        assert {r["config"] for r in mine} == configs | (
            {"fast_transplant"} if batch == 8 else set()
        )
        assert {r["new_tokens"] for r in mine} == {rows * 6}  # forced: no row stops early
        fast = next(r for r in mine if r["config"] == "fast")
        assert fast["x_fast_unsteered"] == 1.0
    assert res["same_tokens"] == {"1": True, "8": True}
    first = [r for r in recs if r["batch"] == 1]
    out.write_text(json.dumps({**res, "modes": {"kept": True}}))  # as --modes leaves it
    again = _run(out, "--batches", "8")
    assert again["modes"] == {"kept": True}  # a timing run keeps the modes' numbers
    assert [r for r in again["fast_generation"] if r["batch"] == 1] == first
    assert {r["batch"] for r in again["fast_generation"]} == {1, 8}


def test_bench_steer_modes_numbers_keep_the_timings(tmp_path):
    out = tmp_path / "steer.json"
    out.write_text(json.dumps({"fast_generation": [{"batch": 8, "config": "fast"}]}))
    res = _run(out, "--modes", "--ab-items", "2", "--pairs", "2")
    assert res["fast_generation"] == [{"batch": 8, "config": "fast"}]  # timings kept
    modes = res["modes"]
    assert set(modes["ab"]["modes"]) == {"add", "ablate", "clamp", "cap", "rotate"}
    for m in modes["ab"]["modes"].values():
        assert m["summary"] and m["reliability"] and m["equal_strength"] is not None
    arms = modes["transplant"]["lam"]["1.0"]
    assert {"transplant", "control", "transplant_minus_control"} <= set(arms)
