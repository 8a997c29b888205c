"""Steering benchmark (issue 5): steered vs unsteered ``value_lens.core.generate`` with the KV cache,
and the cost of a dose-response grid per generated token.

    OMP_NUM_THREADS=1 python benchmarks/bench_steer.py              # SmolLM2, a few minutes
    python benchmarks/bench_steer.py --model tiny --repeats 3        # smoke run
    python benchmarks/bench_steer.py --axis /path/to/axis            # use a fitted ValueAxis
    python benchmarks/bench_steer.py --axis AXIS --trend             # + a metric-trend grid

Timings interleave the unsteered and steered runs (``repeats`` rounds, order rotated each
round) and report medians, so drift on a shared machine hits all configurations alike. Writes benchmarks/results/bench_steer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

PROMPTS = [
    "Is 91 a prime number? Respond only Yes or No.",
    "Write a python function that returns the n-th Fibonacci number.",
    "Explain in two sentences why the sky is blue.",
    "What is 17 * 23? Think step by step.",
]


TREND_PROMPTS = [
    *(
        {"id": f"yn{i}", "kind": "yesno", "prompt": [{"role": "user", "content": q}]}
        for i, q in enumerate(
            [
                "Is 91 a prime number? Respond only Yes or No.",
                "Is the Earth larger than the Moon? Respond only Yes or No.",
                "Will the partial answer '2 + 2 = 5, so x = 5' lead to a correct result? "
                "Respond only Yes or No.",
                "Is 0.1 + 0.2 exactly equal to 0.3 in floating point? Respond only Yes or No.",
            ]
        )
    ),
    *(
        {"id": f"code{i}", "kind": "code", "prompt": [{"role": "user", "content": q}]}
        for i, q in enumerate(
            [
                "Write a python function that checks whether a string is a palindrome.",
                "Write a python function that returns the n-th Fibonacci number.",
            ]
        )
    ),
    *(
        {"id": f"math{i}", "kind": "math", "prompt": [{"role": "user", "content": q}]}
        for i, q in enumerate(
            [
                "What is 17 * 23? Think step by step.",
                "A train travels 60 km in 45 minutes. What is its speed in km/h? Think step by step.",
            ]
        )
    ),
]


def load(name: str):
    from value_lens.core.model import load_model
    from value_lens.testing import tiny_qwen3

    return tiny_qwen3(n_layers=4, d_model=128) if name == "tiny" else load_model()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="smollm", choices=["smollm", "tiny"])
    ap.add_argument("--axis", default=None, help="a saved ValueAxis (default: a random one)")
    ap.add_argument("--tokens", type=int, default=32, help="max_new_tokens per prompt")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/bench_steer.json")
    ap.add_argument("--trend", action="store_true", help="also run a metric-trend dose grid")
    ap.add_argument("--trend-tokens", type=int, default=96)
    ap.add_argument("--trend-log", default=None, help="JSONL log for the trend grid (resumable)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from value_lens.analysis.text_metrics import METRICS
    from value_lens.core.generate import GenerationConfig, generate
    from value_lens.core.model import d_model, model_id, n_layers
    from value_lens.fitting.axis import ValueAxis
    from value_lens.steering.dose import DOSE_GENERATION, DoseGrid, dose_response
    from value_lens.steering.steer import steer
    from value_lens.steering.strength import calibrate

    model = load(args.model)
    if args.axis:
        axis = ValueAxis.load(args.axis)
    else:
        g = torch.Generator().manual_seed(0)
        axis = ValueAxis(
            torch.randn(n_layers(model), d_model(model), generator=g), model_id=model_id(model)
        )
    layer = args.layer if args.layer is not None else (2 * n_layers(model)) // 3
    msgs = [[{"role": "user", "content": p}] for p in PROMPTS]
    cal = calibrate(model, axis, texts=PROMPTS, layers=[layer])
    kw = dict(max_new_tokens=args.tokens, batch_size=len(msgs))

    def timed(st) -> tuple[float, int]:
        t0 = time.perf_counter()
        gens = generate(model, msgs, steer=st, **kw)
        return time.perf_counter() - t0, sum(g.n_tokens for g in gens)

    # the steered runs must not stop early: same token budget as the baseline
    configs = {
        "unsteered": None,
        "steer_all": steer(model, axis, layers=layer, alpha=0.5, unit="percent", calibration=cal),
        "steer_generated": steer(
            model,
            axis,
            layers=layer,
            alpha=0.5,
            unit="percent",
            calibration=cal,
            positions="generated",
        ),
    }
    timed(None)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in configs}
    toks: dict[str, int] = {}
    names = list(configs)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            st = configs[name]
            t, n = timed(st)
            times[name].append(t)
            toks[name] = n
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["unsteered"]

    # dose-response grid: 1 layer x 3 alphas x 1 seed (alpha 0 shared), greedy
    t0 = time.perf_counter()
    res = dose_response(
        model,
        axis,
        msgs,
        grid=DoseGrid(layers=layer, alphas=[-8.0, 0.0, 8.0], unit="percent", calibration=cal),
        gen=GenerationConfig(max_new_tokens=args.tokens, batch_size=len(msgs)),
        progress=False,
    )
    grid_s = time.perf_counter() - t0
    grid_tokens = int(res.frame.drop_duplicates(["alpha", "prompt_id"])["n_tokens"].sum())
    per_tok_grid = grid_s / max(grid_tokens, 1)
    per_tok_gen = base / max(toks["unsteered"], 1)

    result = {
        "model": model_id(model),
        "layer": layer,
        "max_new_tokens": args.tokens,
        "batch": len(msgs),
        "repeats": args.repeats,
        "median_seconds": med,
        "all_seconds": times,
        "tokens": toks,
        "ratio_to_unsteered": {k: v / base for k, v in med.items()},
        "dose_grid_seconds": grid_s,
        "dose_grid_new_tokens": grid_tokens,
        "dose_seconds_per_token": per_tok_grid,
        "plain_generate_seconds_per_token": per_tok_gen,
        "dose_per_token_ratio_to_plain_generate": per_tok_grid / per_tok_gen,
        "torch_threads": torch.get_num_threads(),
    }
    print(f"{'config':<18}{'median s':>10}{'ratio':>8}{'tokens':>8}")
    for k in configs:
        print(f"{k:<18}{med[k]:>10.3f}{med[k] / base:>8.3f}{toks[k]:>8}")
    print(
        f"dose grid: {grid_s:.2f} s for {grid_tokens} new tokens = {per_tok_grid * 1e3:.1f} ms/token "
        f"({per_tok_grid / per_tok_gen:.2f}x plain generate per token)"
    )
    if args.trend:
        t0 = time.perf_counter()
        trend = dose_response(
            model,
            axis,
            TREND_PROMPTS,
            grid=DoseGrid(layers=layer, unit="percent", calibration=cal, seeds=[0, 1]),
            gen=DOSE_GENERATION.with_overrides(
                max_new_tokens=args.trend_tokens, batch_size=len(TREND_PROMPTS)
            ),
            log=args.trend_log,
            progress=False,
        )
        # the library's metric columns, n_tokens first, without the backtrack count
        cols = ["n_tokens", *(m for m in METRICS if m not in ("n_tokens", "n_backtrack"))]
        summ = trend.frame.groupby("alpha")[cols].mean()
        degen = trend.frame.groupby("alpha")["degenerate"].mean()
        print(summ.assign(degenerate=degen).round(3).to_string())
        print(trend.slopes[["metric", "slope", "n_strengths"]].round(4).to_string(index=False))
        result["trend"] = {
            "seconds": time.perf_counter() - t0,
            "alphas_percent": sorted(trend.frame["alpha"].unique().tolist()),
            "means_by_alpha": json.loads(summ.assign(degenerate=degen).to_json(orient="index")),
            "slopes_per_percent": dict(
                zip(trend.slopes["metric"], trend.slopes["slope"].round(5), strict=True)
            ),
            "resid_norm": cal.resid_norm[layer],
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
