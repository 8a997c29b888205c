"""Benchmark: cost of a k-split layer sweep relative to one collection pass, and the throughput
of each evaluation suite on SmolLM2-135M-Instruct.

Run:  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/bench_sweep.py [--quick]

Whatever ``n_splits`` is, the sweep runs one forward pass when the labelled residuals fit in
memory (``single_pass``) and two otherwise (``two_pass``: collect_stats, then a projection
pass; forced here with ``max_memory_gb=0``); with precomputed ``stats=`` (``with_stats``) it
skips the collection and runs one projection pass (``forward_passes`` counts the sequences
through the embedding, divided by the number of sequences). Figures of merit, in CPU seconds
against one plain ``collect_stats`` pass over the same data (the wall clock is noisy on a shared
machine): the whole sweep, the refits of all splits and layers including the cluster-bootstrap
CI (target < 5%), the collection time with ``stats=`` (about 0), and the CI's share
(``ci_cpu_s``: refit with the default 1000 resamples minus refit with ``ci=None``).
``--no-suites`` re-times the sweep only and keeps the suites' figures from the last full run.
Results go to ``benchmarks/results/bench_sweep.json`` (or ``--out``).

``--controls`` instead times the position controls (issue 11): the sweep over data with placebo
turns (every control: matched, placebo and DiD columns, shuffled-label null, sign-aligned random
directions) against the same data with the placebo labels removed (the controls that need them
are NaN), in CPU seconds; target ratio <= 1.3. Results go to
``benchmarks/results/bench_sweep_controls.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from value_lens import ValueAxis, load_model
from value_lens.analysis.sweep import ClusterCI, SweepConfig, layer_sweep
from value_lens.core.model import d_model, model_id, n_layers
from value_lens.data.tokens import LabelledTokens
from value_lens.evals import run_backtracking_suite, run_code_suite, run_confidence_suite
from value_lens.evals.confidence import CONFIDENCE_GENERATION
from value_lens.fitting.collect import collect_stats


def synthetic_icrl(
    n_groups: int, per_group: int, length: int, vocab: int, placebo: bool = False
) -> LabelledTokens:
    """ICRL-shaped data: a long ignored context, then a paragraph of BEFORE then AFTER tokens.

    With ``placebo``, a paragraph of the context (a failed attempt) is labelled PLACEBO_BEFORE
    / PLACEBO_AFTER around a pseudo-cut, as ``icrl.label(..., placebo=True)`` does.
    """
    gen = torch.Generator().manual_seed(0)
    ids, labs, groups, meta = [], [], [], []
    para = length // 3
    for g in range(n_groups):
        for _ in range(per_group):
            cut = int(torch.randint(para // 4, 3 * para // 4, (1,), generator=gen))
            lab = [-1] * (length - para) + [0] * cut + [2] + [1] * (para - cut - 1)
            m: dict[str, object] = {"turn_start": length - para, "turn_end": length}
            if placebo:
                s0 = para // 2
                lab[s0 : s0 + para] = [3] * cut + [-1] + [4] * (para - cut - 1)
                m["placebo_turns"] = [
                    {"turn_start": s0, "turn_end": s0 + para, "cut": [s0 + cut] * 2}
                ]
            ids.append(torch.randint(100, vocab, (length,), generator=gen))
            labs.append(torch.tensor(lab))
            groups.append(f"crit{g}")
            meta.append(m)
    return LabelledTokens(ids, labs, groups, meta=meta)


def bench_controls(model: object, quick: bool, splits: int, path: Path) -> None:
    """CPU seconds of the sweep with every control vs without the placebo ones."""
    n_layers_ = n_layers(model)
    out: dict[str, object] = {"model": model_id(model), "n_layers": n_layers_, "n_splits": splits}
    for name, placebo in (("without_placebo", False), ("with_controls", True)):
        data = synthetic_icrl(40, 1, 64 if quick else 128, model.cfg.d_vocab, placebo)  # type: ignore[attr-defined]
        layer_sweep(model, data, n_splits=2, n_train=35, layers=[0], progress=False)  # warm-up
        c = time.process_time()
        sw = layer_sweep(model, data, n_splits=splits, n_train=35, progress=False)
        total = time.process_time() - c
        tm = sw.timings
        out[name] = {
            "n_sequences": len(data),
            "n_tokens": data.n_tokens,
            "n_labelled": sw.n_tokens,
            "n_placebo": sw.n_placebo_tokens,
            "total_cpu_s": total,
            "collect_cpu_s": tm["collect_cpu_s"],
            "refit_cpu_s": tm["refit_cpu_s"],
            "did_auroc_mean_nan": bool(sw.table["did_auroc_mean"].isna().all()),
        }
        print(name, json.dumps(out[name]), flush=True)
    w, wo = out["with_controls"], out["without_placebo"]
    out["ratio_total_cpu"] = w["total_cpu_s"] / wo["total_cpu_s"]  # type: ignore[index]
    out["ratio_refit_cpu"] = w["refit_cpu_s"] / wo["refit_cpu_s"]  # type: ignore[index]
    print("ratio (with controls / without):", out["ratio_total_cpu"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--no-suites", action="store_true", help="time the sweep only")
    ap.add_argument("--controls", action="store_true", help="time the position controls only")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "bench_sweep.json"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    q = args.quick
    if args.controls:
        res = Path(__file__).parent / "results" / "bench_sweep_controls.json"
        bench_controls(model, q, args.splits, res)
        return
    data = synthetic_icrl(40, 1, 64 if q else 128, model.cfg.d_vocab)
    out: dict[str, object] = {"model": model_id(model), "n_layers": n_layers(model)}

    # the reference: one plain collection pass over the same data
    c = time.process_time()
    stats = collect_stats(model, data, progress=False)
    collect_ref = time.process_time() - c
    sweep: dict[str, object] = {
        "n_sequences": len(data),
        "n_tokens": data.n_tokens,
        "n_splits": args.splits,
        "collect_pass_cpu_s": collect_ref,
    }
    seen = [0]
    hook = model.embed.register_forward_hook(
        lambda _m, _a, o: seen.__setitem__(0, seen[0] + o.shape[0])
    )
    runs = (
        ("single_pass", 1.0, None, ClusterCI()),
        ("two_pass", 0.0, None, ClusterCI()),
        ("with_stats", 1.0, stats, ClusterCI()),
        ("single_pass_no_ci", 1.0, None, None),
    )
    for name, mem, st, ci in runs:
        seen[0] = 0
        c = time.process_time()
        cfg = SweepConfig(n_splits=args.splits, n_train=35, max_memory_gb=mem, ci=ci)
        sw = layer_sweep(model, data, cfg, stats=st, progress=False)
        total = time.process_time() - c
        tm = sw.timings
        sweep[name] = {
            "n_labelled": sw.n_tokens,
            "forward_passes": seen[0] / len(data),
            "total_cpu_s": total,
            "collect_s": tm["collect_s"],
            "refit_cpu_s": tm["refit_cpu_s"],
            "total_over_collect_pass": total / collect_ref,
            "refit_over_collect_pass": tm["refit_cpu_s"] / collect_ref,
        }
        print(name, json.dumps(sweep[name]), flush=True)
    hook.remove()
    runs_ = {k: v for k, v in sweep.items() if isinstance(v, dict)}
    sweep["ci_cpu_s"] = (
        runs_["single_pass"]["refit_cpu_s"] - runs_["single_pass_no_ci"]["refit_cpu_s"]
    )
    out["sweep"] = sweep
    path = args.out
    if args.no_suites:  # keep the suites measured by an earlier full run
        old = json.loads(path.read_text()) if path.exists() else {}
        out["suites"] = old.get("suites", {})
        path.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {path}")
        return

    gen = torch.Generator().manual_seed(0)
    axis = ValueAxis(
        torch.randn(n_layers(model), d_model(model), generator=gen), model_id=model_id(model)
    )
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
    suites["backtracking_texts"] = {
        "rollouts": len(texts),
        "seconds": dt,
        "tokens_per_s": n_tok / dt,
    }
    n_prob = 2 if q else 4
    t = time.perf_counter()
    conf_gen = CONFIDENCE_GENERATION.with_overrides(max_new_tokens=48)
    res = run_confidence_suite(
        model, axis, layer, n_problems=n_prob, gen=conf_gen, n_samples=4, progress=False
    )
    dt = time.perf_counter() - t
    suites["confidence"] = {
        "problems": n_prob,
        "max_new_tokens": 48,
        "n_samples": 4,
        "seconds": dt,
        "problems_per_s": n_prob / dt,
        "n_unparseable": int(res.summary["n_unparseable"].iloc[0]),
    }
    out["suites"] = suites

    for name, rec in suites.items():
        print(
            f"{name:20s} "
            + "  ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
