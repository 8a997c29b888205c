"""Wall time of the main job (``value-lens demo``) from a cold start, per step.

The target: the default setting finishes within 10 minutes on a 2-core CPU with the embedded
SmolLM2-135M-Instruct (model loading included). ``--quick`` times the CI setting instead.

``--baseline-ref REF`` first runs the same setting at commit ``REF`` (a temporary git worktree,
a fresh subprocess) and records its wall time beside this tree's (``ratio_to_baseline``; the
one-pass demo's target is at most 0.7 against the commit before it).

Usage: python benchmarks/bench_demo.py [--quick] [--model tiny] [--out DIR] [--baseline-ref REF]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from value_lens.pipeline.demo import demo_config, run_demo

RESULTS = Path(__file__).parent / "results"
TARGET_S = 600.0


def _headline(out: Path) -> dict:
    """The answer's numbers: the controls at the best held-out layer (AUROC with CI) and the
    code suite's Cohen's d with its CI, plus the report's sentence."""
    import pandas as pd

    from value_lens.pipeline.report import value_sentence
    from value_lens.pipeline.rundir import read_meta
    from value_lens.viz.controls import control_table

    sweep = pd.read_csv(out / "sweep.csv")
    table = control_table(sweep)
    rows = {
        r.column: [round(r.auroc, 4), round(r.lo, 4), round(r.hi, 4)] for r in table.itertuples()
    }
    return {
        "best_layer": int(table["layer"].iloc[0]),
        "auroc_lo_hi": rows,
        "sentence": value_sentence(sweep),
        "code_suite": read_meta(out).get("code_suite"),
    }


def _baseline(ref: str, quick: bool) -> dict:
    """The demo's timing at commit ``ref``, run by that commit's own bench_demo.py."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(wt), ref],
                       check=True, capture_output=True)  # fmt: skip
        try:
            env = {**os.environ, "PYTHONPATH": str(wt)}
            cmd = [sys.executable, str(wt / "benchmarks" / "bench_demo.py")]
            subprocess.run(cmd + (["--quick"] if quick else []), cwd=wt, env=env, check=True)
            name = "bench_demo_quick.json" if quick else "bench_demo.json"
            got = json.loads((wt / "benchmarks" / "results" / name).read_text())
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(wt)],
                           check=False, capture_output=True)  # fmt: skip
    keep = ("wall_seconds", "process_cpu_seconds", "per_step_seconds", "load_average_1m_at_end")
    return {"ref": ref, **{k: got.get(k) for k in keep}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="time the reduced CI setting")
    ap.add_argument("--model", default=None, help="default: the embedded SmolLM2")
    ap.add_argument("--out", default=None, help="results folder (default: a fresh temp dir)")
    ap.add_argument("--baseline-ref", default=None, help="also time this commit, side by side")
    args = ap.parse_args()
    baseline = _baseline(args.baseline_ref, args.quick) if args.baseline_ref else None
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="value_lens_demo_"))
    if args.out and out.exists():
        shutil.rmtree(out)  # a cold run: nothing to resume
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    report = run_demo(args.model, out, quick=args.quick)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    steps = [json.loads(x) for x in (out / "steps.jsonl").read_text().splitlines()]
    prev, per_step = 0.0, {}
    for s in steps:
        per_step[s["step"]] = round(s["seconds"] - prev, 1)
        prev = s["seconds"]
    cfg = demo_config(quick=args.quick)
    headline = _headline(out)
    res = {
        "setting": "quick" if args.quick else "default",
        "model": args.model or "embedded SmolLM2-135M-Instruct",
        "wall_seconds": round(wall, 1),
        "process_cpu_seconds": round(cpu, 1),
        "ratio_to_10_minute_target": round(wall / TARGET_S, 3),
        "per_step_seconds": per_step,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],
        "config": dataclasses.asdict(cfg),
        "report_bytes": report.stat().st_size,
        "tokens": next((s.get("tokens") for s in steps if s["step"] == "data"), None),
        "headline": headline,
    }
    if baseline is not None:
        res["baseline"] = baseline
        res["ratio_to_baseline"] = round(wall / float(baseline["wall_seconds"]), 3)
        print(
            f"baseline {baseline['ref']}: {baseline['wall_seconds']} s; ratio {res['ratio_to_baseline']}"
        )
    print(
        f"demo ({res['setting']}, {res['model']}): {wall:.0f} s wall "
        f"= {res['ratio_to_10_minute_target']:.2f} x the 10-minute target"
    )
    for k, v in per_step.items():
        print(f"  {k:9s} {v:7.1f} s")
    print(json.dumps(headline, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "bench_demo_quick.json" if args.quick else "bench_demo.json"
    (RESULTS / name).write_text(json.dumps(res, indent=1, default=str) + "\n")
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
