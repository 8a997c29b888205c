"""Generation and steering benchmark (issues 5, 13 and 23): value_lens ``generate`` against a
separate, plain HF ``generate`` on the same weights, each steering mode's overhead, and the cost of
a dose-response grid per token.

Configurations, each at batch 1 (4 chat prompts one by one) and batch 8 (the 4 prompts twice,
one batch), greedy, KV cache, every row forced to ``--tokens`` new tokens (``stop_at_eos=False``,
so all token counts are equal): ``plain_hf`` (a separately loaded HF model), ``bridge`` (the
bridge's own decoding loop), ``fast`` (HF ``generate`` on the bridge's HF modules,
:mod:`value_lens.core.fastpath`), ``fast`` steered on one layer and on every layer, and on one
layer in the modes of issue 23: ``fast_cap``, ``fast_rotate``, ``fast_conditional`` and (batch 8
only: 4 donor and 4 host rows in one batch, the same work as 8 unsteered rows)
``fast_transplant``. ``x_fast_unsteered`` is each configuration's median time over unsteered
``fast`` on the same rows (targets: 1.02 for cap, rotate and conditional; 1.05 for transplant).
``same_tokens`` records whether fast, bridge and plain HF produced identical tokens.

``--modes`` computes the steering modes' non-timing numbers instead (see
``benchmarks/_steer_modes.py``: each mode's A/B effect and reliability on SmolLM2, the transplant
against its constant-push control) and keeps the timings already in ``--out``.

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


def _fast_generation(model, axis, cal, layer, args) -> dict:
    """Plain HF ``generate`` (a separate model) vs value_lens ``generate`` on the bridge's loop and
    on the fast path, unsteered and steered on one and on all layers; batch 1 and 8, greedy, KV
    cache, every row forced to ``args.tokens`` new tokens; interleaved rounds, medians."""
    from value_lens.core.generate import generate
    from value_lens.core.model import load_hf, n_layers
    from value_lens.steering.steer import steer
    from value_lens.steering.strength import calibrate

    plain_hf = load_hf()[0] if args.model == "smollm" else None
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    one = steer(model, axis, layers=layer, alpha=0.5, unit="percent", calibration=cal)
    every = list(range(n_layers(model)))
    cal_all = calibrate(model, axis, texts=PROMPTS, layers=every)
    all_ = steer(model, axis, layers=every, alpha=0.5, unit="percent", calibration=cal_all)
    configs = {
        "bridge": dict(backend="bridge"),
        "fast": dict(backend="hf"),
        "fast_steer_1_layer": dict(backend="hf", steer=one),
        "fast_steer_all_layers": dict(backend="hf", steer=all_),
        **{
            f"fast_{k}": dict(backend="hf", steer=v)
            for k, v in _mode_steers(model, axis, layer, cal).items()
        },
        "fast_transplant": dict(backend="hf"),  # batch 8 only: 4 (donor, host) pairs, one batch
    }
    records, med_all, toks_all, same = [], {}, {}, {}
    for batch in args.batches:
        rows = (prompts * 2)[:8] if batch == 8 else prompts  # batch 8: the 4 prompts twice
        kw = dict(max_new_tokens=args.tokens, batch_size=batch, stop_at_eos=False)

        def run(name, rows=rows, kw=kw, batch=batch):
            t0 = time.perf_counter()
            if name == "plain_hf":
                out = _plain_hf(plain_hf or model.original_model, model, rows, batch, args.tokens)
            elif name == "fast_transplant":
                out = _transplanted(model, axis, layer, rows, kw)
            else:
                out = [g.output_ids.tolist() for g in generate(model, rows, **kw, **configs[name])]
            return time.perf_counter() - t0, out

        names = (["plain_hf"] if plain_hf is not None else []) + [
            n for n in configs if batch == 8 or n != "fast_transplant"
        ]
        for name in names:
            run(name)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in names}
        outs: dict[str, list] = {}
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t, out = run(name)
                times[name].append(t)
                outs[name] = out
        med = {k: statistics.median(v) for k, v in times.items()}
        ref = med.get("plain_hf", med["bridge"])
        n_tok = sum(len(x) for x in outs["fast"])
        same[str(batch)] = outs["fast"] == outs["bridge"] and (
            "plain_hf" not in outs or outs["plain_hf"] == outs["fast"]
        )
        for name in names:
            records.append(
                {
                    "batch": batch,
                    "config": name,
                    "median_s": med[name],
                    "x_plain_hf": med[name] / ref,
                    "x_fast_unsteered": med[name] / med["fast"],
                    "new_tokens": sum(len(x) for x in outs[name]),
                    "tokens_per_s": n_tok / med[name],
                    "load_avg_1m": os.getloadavg()[0],
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
            )
        med_all[str(batch)], toks_all[str(batch)] = med, n_tok
    return {"records": records, "median_seconds": med_all, "tokens": toks_all, "same_tokens": same}


def _mode_steers(model, axis, layer, cal) -> dict:
    """One-layer steerings in the newer modes, set to move some tokens but not all: a cap at the
    25th percentile of the projection on the prompts, a 10-degree rotation, and a 0.5% push
    conditioned on the projection's rolling mean crossing its median (so some rows trigger)."""
    from value_lens.analysis import stop
    from value_lens.analysis.monitor import monitor
    from value_lens.steering.condition import Condition
    from value_lens.steering.modes import calibrate_cap
    from value_lens.steering.steer import steer

    floor = calibrate_cap(model, axis, PROMPTS, quantile=0.25, layers=[layer])
    median = calibrate_cap(model, axis, PROMPTS, quantile=0.5, layers=[layer])[layer]
    rule = Condition(
        monitor(axis, layer, metric="projection", aggregate="mean:8"), stop.above("mean", median)
    )
    return {
        "cap": steer(model, axis, layers=layer, mode="cap", floor=floor),
        "rotate": steer(model, axis, layers=layer, mode="rotate", angle=10.0),
        "conditional": steer(
            model, axis, layers=layer, alpha=0.5, unit="percent", calibration=cal, when=rule
        ),
    }


def _transplanted(model, axis, layer, rows, kw) -> list:
    """Token ids of a transplant over (rows[0], rows[1]), (rows[2], rows[3]), ... in one batch,
    donors and hosts interleaved as the rows were (the same work as generating all rows)."""
    from value_lens.steering.transplant import transplant

    out = transplant(
        model,
        axis,
        rows[0::2],
        rows[1::2],
        layers=layer,
        lam=0.5,
        backend="hf",
        **{k: v for k, v in kw.items() if k != "batch_size"},
    )
    return [g.output_ids.tolist() for pair in zip(out.donors, out, strict=True) for g in pair]


def _carry_over(fast: dict, out: Path, args) -> None:
    """Keep the records of batch sizes not timed in this run from an earlier ``out`` of the same
    setup (each record carries its own ``measured_at`` and ``load_avg_1m``)."""
    if not out.is_file():
        return
    old = json.loads(out.read_text())
    if (old.get("max_new_tokens"), old.get("repeats")) != (args.tokens, args.repeats):
        return
    kept = [r for r in old.get("fast_generation", []) if r["batch"] not in args.batches]
    fast["records"] = sorted(kept + fast["records"], key=lambda r: r["batch"])
    for b, same in old.get("same_tokens", {}).items():
        fast["same_tokens"].setdefault(b, same)


def _plain_hf(hf, model, rows, batch, n_new):
    """Token ids from a plain HF ``generate`` over the same left-padded chat prompts."""
    import torch
    from transformers import GenerationConfig as HFConfig

    from value_lens.core.model import to_token_ids
    from value_lens.core.prompts import format_prompts

    texts = format_prompts(model, rows)
    gc = HFConfig(max_new_tokens=n_new, do_sample=False, eos_token_id=[], pad_token_id=0)
    out = []
    for start in range(0, len(texts), batch):
        ids = [to_token_ids(model, t).tolist() for t in texts[start : start + batch]]
        width = max(map(len, ids))
        tokens = torch.tensor([[0] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.no_grad():
            seqs = hf.generate(input_ids=tokens, attention_mask=mask, generation_config=gc)
        out += [s[width:].tolist() for s in seqs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="smollm", choices=["smollm", "tiny"])
    ap.add_argument("--axis", default=None, help="a saved ValueAxis (default: a random one)")
    ap.add_argument("--tokens", type=int, default=32, help="max_new_tokens per prompt")
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument(
        "--batches",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[1, 8],
        help="batch sizes to time, e.g. 8; the records of other batch sizes are kept from --out",
    )
    ap.add_argument("--out", default="benchmarks/results/bench_steer.json")
    ap.add_argument("--trend", action="store_true", help="also run a metric-trend dose grid")
    ap.add_argument("--trend-tokens", type=int, default=96)
    ap.add_argument("--trend-log", default=None, help="JSONL log for the trend grid (resumable)")
    ap.add_argument("--modes", action="store_true", help="the modes' non-timing numbers only")
    ap.add_argument("--ab-items", type=int, default=24, help="A/B items per behaviour (--modes)")
    ap.add_argument("--pairs", type=int, default=24, help="transplant pairs (--modes)")
    ap.add_argument("--parts", default="ab,transplant", help="--modes parts to run (comma list)")
    ap.add_argument("--save-axis", default=None, help="--modes: save the fitted axis here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from value_lens.analysis.text_metrics import METRICS
    from value_lens.core.generate import GenerationConfig
    from value_lens.core.model import d_model, model_id, n_layers
    from value_lens.fitting.axis import ValueAxis
    from value_lens.steering.dose import DOSE_GENERATION, DoseGrid, dose_response
    from value_lens.steering.strength import calibrate

    model = load(args.model)
    if args.modes:
        from _steer_modes import run_modes

        run_modes(model, args)
        return
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
    fast = _fast_generation(model, axis, cal, layer, args)
    _carry_over(fast, Path(args.out), args)
    fast_recs = [r for r in fast["records"] if r["config"] == "fast"]  # batch 1 when timed
    b1 = min(fast_recs, key=lambda r: r["batch"])
    per_tok_gen = b1["median_s"] / max(b1["new_tokens"], 1)

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

    result = {
        "model": model_id(model),
        "layer": layer,
        "max_new_tokens": args.tokens,
        "repeats": args.repeats,
        "fast_generation": fast["records"],
        "same_tokens": fast["same_tokens"],
        "dose_grid_seconds": grid_s,
        "dose_grid_new_tokens": grid_tokens,
        "dose_seconds_per_token": per_tok_grid,
        "plain_generate_seconds_per_token": per_tok_gen,
        "dose_per_token_ratio_to_plain_generate": per_tok_grid / per_tok_gen,
        "torch_threads": torch.get_num_threads(),
    }
    for r in fast["records"]:
        print(r)
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
    if out.is_file():  # the modes' numbers (--modes) are kept from the last run
        result.setdefault("modes", json.loads(out.read_text()).get("modes"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
