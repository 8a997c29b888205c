"""The method table on the demo's data (issue 22 item 3): which direction detects and which steers.

Builds the demo's ICRL data on SmolLM2-135M (criteria ``first:12``, 3 conversations each, the
shortest labelled turn of each criterion kept, placebo turns matched), then runs
:func:`value_lens.compare.methods.method_table` over every registered method: one statistics
pass and one projection pass for all sweeps (5 splits, 8 training criteria each, 16 random
directions), each axis fitted on every criterion, and a dose-response at each method's best
held-out layer on the demo's steering prompts at -8.4, 0 and +8.4 percent of the layer's mean
residual norm (T=0.7, 64 new tokens). Results, not timings: the table, each method's sweep table
and the settings go to ``benchmarks/results/bench_methods.json``.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/bench_methods.py
    python benchmarks/bench_methods.py --model tiny --criteria first:4 --prompts 1   # smoke
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

SWEEP_COLUMNS = (
    "layer",
    "token_auroc_mean",
    "token_auroc_ci_lo",
    "token_auroc_ci_hi",
    "rd_value",
    "rd_value_ci_lo",
    "rd_value_ci_hi",
    "placebo_auroc",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"])
    ap.add_argument("--criteria", default="first:12")
    ap.add_argument("--per-criterion", type=int, default=3)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=4, help="steering prompts (0: none)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "bench_methods.json"
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from value_lens.analysis.sweep import SweepConfig
    from value_lens.compare.methods import MethodTableConfig, method_table
    from value_lens.core.generate import GenerationConfig
    from value_lens.pipeline import steps
    from value_lens.pipeline.options import STEER_PROMPTS, load_model_option, parse_criteria
    from value_lens.pipeline.sweep_steps import train_count

    model = load_model_option(None if args.model == "smollm2" else "tiny")
    with tempfile.TemporaryDirectory() as tmp:
        data = steps.build_data(
            model,
            tmp,
            n_per_criterion=args.per_criterion,
            criteria=parse_criteria(args.criteria),
            seed=args.seed,
            keep_per_criterion=1,
        ).tokens
    n_groups = len(set(data.groups))
    sweep = SweepConfig(n_splits=args.splits, n_train=train_count(n_groups, None), seed=args.seed)
    cfg = MethodTableConfig(
        sweep=sweep,
        gen=GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.9),
    )
    prompts = [[{"role": "user", "content": p}] for p in STEER_PROMPTS[: args.prompts]]
    t0 = time.perf_counter()
    res = method_table(model, data, prompts, cfg, batch_size=4)
    wall = time.perf_counter() - t0
    table = res.table
    print(table.T.to_string(), flush=True)
    result: dict[str, Any] = {
        "model": args.model,
        "settings": {
            **vars(args),
            "out": str(args.out),
            "n_criteria": n_groups,
            "n_train": sweep.n_train,
            "alphas": list(cfg.alphas),
            "metrics": list(cfg.metrics),
            "n_tokens": len(data),
        },  # fmt: skip
        "wall_s": wall,
        "table": json.loads(table.to_json(orient="records")),
        "sweeps": {  # per layer, the columns the table reads
            m: json.loads(sw.table[list(SWEEP_COLUMNS)].to_json(orient="records"))
            for m, sw in res.sweeps.items()
        },
        "passes": next(iter(res.sweeps.values())).timings.get("passes"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.out} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
