"""Benchmark: the sweep with the position design (difference in discontinuities, matched
placebos, two-sided matching, leave-one-criterion-out refits) against the sweep of an earlier
commit, on the same data, model and settings.

Run:  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/bench_sweep_position.py \
          [--baseline-ref b3b39af] [--rounds 3] [--quick]

The baseline is checked out into a temporary git worktree; each round runs the baseline and
the current tree in fresh subprocesses (alternating which goes first), each timing
``layer_sweep`` alone in CPU seconds (``time.process_time``) on SmolLM2-135M (``--quick``: the
tiny random Qwen3) over the same synthetic ICRL data with placebo turns. Figure of merit: the
median ratio current / baseline of the whole sweep (target <= 1.3; the forward pass should
dominate), and each side's refit share. Results go to
``benchmarks/results/bench_sweep_position.json``.
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

# runs inside a subprocess with PYTHONPATH at the tree to time; prints one JSON line
CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from value_lens.data.tokens import LabelledTokens
from value_lens.analysis.sweep import layer_sweep
quick, splits = sys.argv[1] == "1", int(sys.argv[2])
if quick:
    from value_lens.testing import tiny_qwen3
    model = tiny_qwen3()
else:
    from value_lens import load_model
    model = load_model()
gen = torch.Generator().manual_seed(0)
n_groups, length = 40, 64 if quick else 128
ids, labs, groups, meta = [], [], [], []
para = length // 3
for g in range(n_groups):
    cut = int(torch.randint(para // 4, 3 * para // 4, (1,), generator=gen))
    lab = [-1] * (length - para) + [0] * cut + [2] + [1] * (para - cut - 1)
    s0 = para // 2
    lab[s0 : s0 + para] = [3] * cut + [-1] + [4] * (para - cut - 1)
    meta.append({"turn_start": length - para, "turn_end": length,
                 "placebo_turns": [{"turn_start": s0, "turn_end": s0 + para,
                                    "cut": [s0 + cut, s0 + cut]}]})
    ids.append(torch.randint(100, model.cfg.d_vocab, (length,), generator=gen))
    labs.append(torch.tensor(lab))
    groups.append(f"crit{g}")
data = LabelledTokens(ids, labs, groups, meta=meta)
layer_sweep(model, data, n_splits=2, n_train=35, layers=[0], progress=False)  # warm-up
c = time.process_time()
sw = layer_sweep(model, data, n_splits=splits, n_train=35, progress=False)
total = time.process_time() - c
print(json.dumps({"total_cpu_s": total, "refit_cpu_s": sw.timings["refit_cpu_s"],
                  "n_columns": int(sw.table.shape[1]), "n_tokens": sw.n_tokens}))
"""


def _run(tree: Path, quick: bool, splits: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "1" if quick else "0", str(splits)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-ref", default="b3b39af", help="the commit of 'today's sweep'")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="the tiny model (a smoke run)")
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "bench_sweep_position.json",
    )
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="vl_base_")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(base), args.baseline_ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
    try:
        for r in range(args.rounds):
            order = ("baseline", "current") if r % 2 == 0 else ("current", "baseline")
            for name in order:
                tree = base if name == "baseline" else ROOT
                runs[name].append(_run(tree, args.quick, args.splits))
                print(r, name, json.dumps(runs[name][-1]), flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    med = {k: statistics.median(x["total_cpu_s"] for x in v) for k, v in runs.items()}
    out = {
        "model": "tiny random Qwen3" if args.quick else "SmolLM2-135M-Instruct",
        "baseline_ref": args.baseline_ref,
        "n_splits": args.splits,
        "rounds": runs,
        "median_total_cpu_s": med,
        "ratio_current_over_baseline": med["current"] / med["baseline"],
        "target": 1.3,
        "load_average_1m_at_end": os.getloadavg()[0],
        "time": time.strftime("%Y-%m-%d %H:%M"),
    }
    print("ratio current / baseline:", round(out["ratio_current_over_baseline"], 3))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
