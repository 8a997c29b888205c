"""bench_sweep_position runs end to end on the tiny model (HEAD against itself: a ratio near 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_sweep_position_smoke(tmp_path):
    out = tmp_path / "b.json"
    subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_sweep_position.py",
            "--quick",
            "--rounds",
            "1",
            "--splits",
            "2",
            "--baseline-ref",
            "HEAD",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    res = json.loads(out.read_text())
    assert set(res["rounds"]) == {"baseline", "current"}
    for side in res["rounds"].values():
        assert len(side) == 1 and side[0]["total_cpu_s"] > 0 and side[0]["n_tokens"] > 0
    assert res["ratio_current_over_baseline"] > 0 and res["baseline_ref"] == "HEAD"
