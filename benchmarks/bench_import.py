"""Benchmark: the time of ``import value_lens``, against an earlier commit's.

Run:  python benchmarks/bench_import.py [--baseline-ref b3b39af] [--runs 15]

Each measurement is a fresh interpreter (``python -c``) timing the import with
``time.perf_counter`` inside it, alternating baseline and current tree; the baseline is checked
out into a temporary git worktree. Also recorded: how many ``value_lens`` modules the import
loads, whether plotly, pandas, trl or the CLI come with it, and the time to first use of
``value_lens.ValueAxis`` (the first real name a script touches). Figure of merit: the median
import time ratio current / baseline (target <= 0.5). Results go to
``benchmarks/results/bench_import.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t = time.perf_counter()
import value_lens
imported = time.perf_counter() - t
mods = sorted(m for m in sys.modules if m.startswith("value_lens"))
heavy = {k: k in sys.modules for k in ("plotly", "pandas", "trl", "value_lens.cli", "torch")}
t = time.perf_counter()
value_lens.ValueAxis
first_use = time.perf_counter() - t
print(json.dumps({"import_s": imported, "first_use_s": first_use, "n_modules": len(mods),
                  "loaded": heavy}))
"""


def _measure(tree: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, cwd=tree, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-ref", default="b3b39af")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_import.json"
    )
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="vl_base_")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(base), args.baseline_ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    try:
        for _ in (0, 1):  # warm the file cache of both trees
            _measure(base), _measure(ROOT)
        for r in range(args.runs):
            for name in ("baseline", "current") if r % 2 == 0 else ("current", "baseline"):
                runs[name].append(_measure(base if name == "baseline" else ROOT))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    med = {
        k: {f: statistics.median(x[f] for x in v) for f in ("import_s", "first_use_s")}
        for k, v in runs.items()
    }
    out = {
        "baseline_ref": args.baseline_ref,
        "runs": args.runs,
        "median": med,
        "ratio_import_current_over_baseline": med["current"]["import_s"]
        / med["baseline"]["import_s"],
        "target": 0.5,
        "modules": {k: v[-1]["n_modules"] for k, v in runs.items()},
        "loaded": {k: v[-1]["loaded"] for k, v in runs.items()},
        "load_average_1m_at_end": os.getloadavg()[0],
        "time": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps(out, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
