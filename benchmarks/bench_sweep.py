"""Benchmark: cost of a k-split layer sweep relative to one collection pass, and the throughput
of each evaluation suite on SmolLM2-135M-Instruct.

Run:  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/bench_sweep.py [--quick]

The sweep runs two forward passes in total (collect_stats, then one projection pass) whatever
``n_splits`` is; the figure of merit is the refit time (all splits, all layers) as a fraction
of the collection pass (target < 5%), in CPU seconds (the wall clock is noisy on a shared
machine; both are recorded). Results go to ``benchmarks/results/bench_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from value_lens import ValueAxis, load_model
from value_lens.evals import run_backtracking_suite, run_code_suite, run_confidence_suite
from value_lens.model import d_model, model_id, n_layers
from value_lens.sweep import layer_sweep
from value_lens.tokens import LabelledTokens


def synthetic_icrl(n_groups: int, per_group: int, length: int, vocab: int) -> LabelledTokens:
    """ICRL-shaped data: a long ignored context, then a paragraph of BEFORE then AFTER tokens."""
    gen = torch.Generator().manual_seed(0)
    ids, labs, groups = [], [], []
    para = length // 3
    for g in range(n_groups):
        for _ in range(per_group):
            cut = int(torch.randint(para // 4, 3 * para // 4, (1,), generator=gen))
            lab = [-1] * (length - para) + [0] * cut + [2] + [1] * (para - cut - 1)
            ids.append(torch.randint(100, vocab, (length,), generator=gen))
            labs.append(torch.tensor(lab))
            groups.append(f"crit{g}")
    return LabelledTokens(ids, labs, groups)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--splits", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    q = args.quick
    data = synthetic_icrl(40, 1, 64 if q else 128, model.cfg.d_vocab)
    out: dict[str, object] = {"model": model_id(model), "n_layers": n_layers(model)}

    t = time.perf_counter()
    df = layer_sweep(model, data, n_splits=args.splits, n_train=35, progress=False)
    total = time.perf_counter() - t
    tm = df.attrs["timings"]
    sweep = {
        "n_sequences": len(data),
        "n_tokens": data.n_tokens,
        "n_labelled": df.attrs["n_tokens"],
        "n_splits": args.splits,
        "collect_s": tm["collect_s"],
        "project_s": tm["project_s"],
        "refit_s": tm["refit_s"],
        "total_s": total,
        "collect_cpu_s": tm["collect_cpu_s"],
        "project_cpu_s": tm["project_cpu_s"],
        "refit_cpu_s": tm["refit_cpu_s"],
        "refit_over_collect_cpu": tm["refit_cpu_s"] / tm["collect_cpu_s"],
        "project_over_collect_cpu": tm["project_cpu_s"] / tm["collect_cpu_s"],
        "refit_over_collect_wall": tm["refit_s"] / tm["collect_s"],
        "total_over_collect_wall": total / tm["collect_s"],
    }
    out["sweep"] = sweep

    gen = torch.Generator().manual_seed(0)
    axis = ValueAxis(torch.randn(n_layers(model), d_model(model), generator=gen),
                     model_id=model_id(model))  # fmt: skip
    layer = n_layers(model) * 2 // 3
    suites = {}
    t = time.perf_counter()
    res = run_code_suite(model, axis, layer, n_problems=2 if q else 5, progress=False)
    dt = time.perf_counter() - t
    suites["code"] = {"pairs": len(res.table), "seconds": dt, "pairs_per_s": len(res.table) / dt}
    texts = ["Let me add 17 and 25. That gives 42. Wait, let me recheck: 17 + 25 = 42. " * 6] * (
        2 if q else 6
    )
    t = time.perf_counter()
    res = run_backtracking_suite(model, axis, layer, texts=texts, progress=False)
    dt = time.perf_counter() - t
    n_tok = int(res.table["n_tokens"].sum())
    suites["backtracking_texts"] = {"rollouts": len(texts), "seconds": dt,
                                    "tokens_per_s": n_tok / dt}  # fmt: skip
    n_prob = 2 if q else 4
    t = time.perf_counter()
    res = run_confidence_suite(model, axis, layer, n_problems=n_prob, max_new_tokens=48,
                               n_samples=4, progress=False)  # fmt: skip
    dt = time.perf_counter() - t
    suites["confidence"] = {"problems": n_prob, "max_new_tokens": 48, "n_samples": 4,
                            "seconds": dt, "problems_per_s": n_prob / dt,
                            "n_unparseable": int(res.summary["n_unparseable"].iloc[0])}  # fmt: skip
    out["suites"] = suites

    print(f"sweep ({sweep['n_tokens']} tokens, {args.splits} splits, {n_layers(model)} layers):")
    for k in ("collect", "project", "refit"):
        print(f"  {k:8s} wall {sweep[k + '_s']:8.2f} s   cpu {sweep[k + '_cpu_s']:8.2f} s")
    print(f"  refit / collect (cpu) = {sweep['refit_over_collect_cpu']:.2%}   "
          f"projection pass / collect (cpu) = {sweep['project_over_collect_cpu']:.2f}x")  # fmt: skip
    for name, rec in suites.items():
        print(f"{name:20s} " + "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in rec.items()))  # fmt: skip
    path = Path(__file__).parent / "results" / "bench_sweep.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
