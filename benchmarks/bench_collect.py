"""Collection benchmark (issue 2): value_lens streaming stats vs a plain forward and vs storing
``output_hidden_states`` for every layer before averaging (the reference workflow).

Each configuration runs in a fresh subprocess so that peak RSS (ru_maxrss) is its own.

    OMP_NUM_THREADS=1 python benchmarks/bench_collect.py            # 200k tokens, SmolLM2
    python benchmarks/bench_collect.py --tokens 20000 --ref-sizes 5000 --model tiny   # smoke run

Writes benchmarks/results/bench_collect.json.

``--moments`` instead measures what the second moments of ``lda`` and ``erased`` add (issue 22):
the same collection with plain sums (``sums``) and with ``CollectPlan(positions=True,
squares=True)`` (per-criterion class moments with the Ledoit-Wolf and position sums, and the
squared sums of ``standardized``; ``moments``), each in a fresh subprocess, alternated
``--repeats`` times; the ratio of median CPU (and wall) times, the peak RSS of each and the
class moments' size (``8 L G K D^2`` bytes). Writes benchmarks/results/bench_collect_moments.json
(or ``--out``). Timing is for a quiet machine.

    OMP_NUM_THREADS=1 python benchmarks/bench_collect.py --moments --tokens 20480 --repeats 3

``--procs N`` instead measures data parallelism in one run: the same collection on 1 process,
then on N gloo processes (``collect_stats(..., distributed=True)``, 1 thread each, the
all-reduce included), each timed from a barrier after loading to a barrier after collecting,
with the load average next to the figures. Writes benchmarks/results/bench_collect_procs.json.

    python benchmarks/bench_collect.py --procs 2 --tokens 16384
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SEQ_LEN = 512
BATCH = 8
CHECKPOINTS = (20_000, 60_000)


def make_data(n_tokens: int, vocab: int, seed: int = 0):
    import torch

    from value_lens.data.tokens import LabelledTokens

    gen = torch.Generator().manual_seed(seed)
    n_seq = max(1, n_tokens // SEQ_LEN)
    ids, labs, groups = [], [], []
    for i in range(n_seq):
        ids.append(torch.randint(100, vocab, (SEQ_LEN,), generator=gen))
        lab = torch.full((SEQ_LEN,), -1)
        lab[SEQ_LEN // 5 : SEQ_LEN // 2] = 0
        lab[SEQ_LEN // 2 + 1 :] = 1
        labs.append(lab)
        groups.append(f"g{i % 10}")
    return LabelledTokens(ids, labs, groups)


def load(model_name: str):
    from value_lens.core.model import load_model
    from value_lens.testing import tiny_qwen3

    return tiny_qwen3(n_layers=4, d_model=128) if model_name == "tiny" else load_model()


def worker(mode: str, n_tokens: int, model_name: str) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from value_lens.fitting.collect import collect_stats, iter_batches

    if mode == "ref":
        from value_lens.core.model import load_hf
        from value_lens.testing import tiny_qwen3_hf

        hf, tok = tiny_qwen3_hf(n_layers=4, d_model=128) if model_name == "tiny" else load_hf(None)
        vocab = len(tok)
    else:
        model = load(model_name)
        vocab = model.cfg.d_vocab
    data = make_data(n_tokens, vocab)
    lengths = [x.numel() for x in data.input_ids]
    batches = [torch.stack([data.input_ids[i] for i in b]) for b in iter_batches(lengths, BATCH)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    checkpoints = {}
    if mode in ("sums", "moments"):
        from value_lens.fitting.plan import CollectPlan

        plan = CollectPlan(positions=True, squares=True) if mode == "moments" else None
        collect_stats(model, data, batch_size=BATCH, progress=False, plan=plan)
    elif mode == "vl":
        # collect in growing shards and add them up (stats are additive); peak RSS after each
        # shard shows whether memory grows with the number of tokens seen
        bounds = sorted({0, *[b // SEQ_LEN for b in CHECKPOINTS if b < n_tokens], len(data)})
        total = None
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            part = collect_stats(
                model, data.subset(range(lo, hi)), batch_size=BATCH, progress=False
            )
            total = part if total is None else total + part
            checkpoints[hi * SEQ_LEN] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    elif mode == "plain":
        with torch.no_grad():
            for b in batches:
                model(b)
    elif mode == "ref":  # store every layer's hidden states, then average per group and label
        stored = []
        with torch.no_grad():
            for b in batches:
                hs = hf(b, output_hidden_states=True).hidden_states
                stored.append(torch.stack(hs[1:]).float())  # [L, B, T, D], kept until the end
        allh = torch.cat(stored, dim=1)
        labels = torch.stack(data.labels)
        for lab in (0, 1):
            allh[:, labels == lab].mean(1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "mode": mode,
        "tokens": data.n_tokens,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb_after_tokens": checkpoints,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_run_mb": rss0 / 1024,
    }


def _rank(rank: int, world: int, tmp: str, n_tokens: int, model_name: str) -> None:
    """One process of a ``--procs`` run: load, barrier, collect (distributed if world > 1)."""
    import torch

    torch.set_num_threads(1)
    dist = torch.distributed
    if world > 1:
        dist.init_process_group(
            "gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world
        )
    try:
        from value_lens.fitting.collect import collect_stats

        model = load(model_name)
        data = make_data(n_tokens, model.cfg.d_vocab)
        if world > 1:
            dist.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        stats = collect_stats(model, data, batch_size=BATCH, progress=False, distributed=world > 1)
        if world > 1:
            dist.barrier()
        res = {
            "rank": rank,
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
            "tokens": data.n_tokens,
            "count": stats.count.tolist(),
        }
        Path(tmp, f"{world}-{rank}.json").write_text(json.dumps(res))
    finally:
        if world > 1:
            dist.destroy_process_group()


def procs(world: int, n_tokens: int, model_name: str) -> None:
    """1 process, then ``world`` processes, on the same data; throughput ratio and load."""
    import tempfile

    import torch.multiprocessing as mp

    runs = {}
    load_before = os.getloadavg()
    for n in (1, world):
        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(_rank, args=(n, tmp, n_tokens, model_name), nprocs=n, join=True)
            ranks = [json.loads(Path(tmp, f"{n}-{r}.json").read_text()) for r in range(n)]
        wall = max(r["wall_s"] for r in ranks)
        runs[n] = {
            "procs": n,
            "tokens": ranks[0]["tokens"],
            "wall_s": wall,
            "tokens_per_s": ranks[0]["tokens"] / wall,
            "cpu_s_per_rank": [r["cpu_s"] for r in ranks],
            "count": ranks[0]["count"],
            "load_avg_after": os.getloadavg(),
        }
        print(
            f"{n} process(es): {runs[n]['tokens_per_s']:8.1f} tok/s  wall {wall:7.1f} s  "
            f"load {os.getloadavg()}",
            flush=True,
        )
    one, many = runs[1], runs[world]
    summary = {
        "model": "SmolLM2-135M-Instruct" if model_name == "smollm2" else "tiny Qwen3 (4 x 128)",
        "procs": world,
        "threads_per_proc": 1,
        "backend": "gloo",
        "throughput_ratio": many["tokens_per_s"] / one["tokens_per_s"],
        "target_ratio": 1.7,
        "counts_equal": one["count"] == many["count"],
        "cpu_count": os.cpu_count(),
        "load_avg_before": load_before,
    }
    print(json.dumps(summary, indent=1))
    for r in runs.values():
        del r["count"]
    out = Path(__file__).parent / "results" / "bench_collect_procs.json"
    out.write_text(json.dumps({"summary": summary, "runs": list(runs.values())}, indent=1))


def _worker_run(mode: str, n_tokens: int, model_name: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--model", model_name, "--worker", mode, str(n_tokens)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def moments(n_tokens: int, model_name: str, repeats: int, out: Path) -> dict:
    """Plain sums vs the second moments, alternated in fresh subprocesses (see the docs)."""
    import statistics

    load_before = os.getloadavg()
    runs = {"sums": [], "moments": []}
    for _ in range(repeats):
        for mode in runs:
            res = _worker_run(mode, n_tokens, model_name)
            runs[mode].append(res)
            line = f"{mode:8s} cpu {res['cpu_s']:7.1f} s  wall {res['wall_s']:7.1f} s"
            print(f"{line}  peak RSS {res['peak_rss_mb']:7.0f} MB", flush=True)
    keys = ("cpu_s", "wall_s", "peak_rss_mb")
    med = {m: {k: statistics.median(r[k] for r in rs) for k in keys} for m, rs in runs.items()}
    layers, d = (4, 128) if model_name == "tiny" else (30, 576)
    summary = {
        "model": "SmolLM2-135M-Instruct" if model_name == "smollm2" else "tiny Qwen3 (4 x 128)",
        "tokens": runs["sums"][0]["tokens"],
        "repeats": repeats,
        "moments_cpu_ratio": med["moments"]["cpu_s"] / med["sums"]["cpu_s"],
        "moments_wall_ratio": med["moments"]["wall_s"] / med["sums"]["wall_s"],
        "target_ratio": 1.5,
        "median": med,
        "class_moment_bytes": 8 * layers * 10 * 2 * d * d,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
    }
    print(json.dumps(summary, indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--ref-sizes", type=int, nargs="*", default=[20_000, 60_000])
    ap.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"])
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "TOKENS"))
    ap.add_argument("--procs", type=int, help="compare 1 process with this many (gloo)")
    ap.add_argument("--moments", action="store_true", help="plain sums vs second moments")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="results file of --moments")
    args = ap.parse_args()
    if args.moments:
        default = Path(__file__).parent / "results" / "bench_collect_moments.json"
        moments(args.tokens, args.model, args.repeats, args.out or default)
        return
    if args.procs:
        procs(args.procs, args.tokens, args.model)
        return
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.model)))
        return
    runs = [("plain", args.tokens), ("vl", args.tokens)] + [("ref", n) for n in args.ref_sizes]
    results = []
    for mode, n in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--worker", mode, str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(res)
        print(
            f"{mode:6s} {res['tokens']:>8d} tok  wall {res['wall_s']:8.1f} s  cpu {res['cpu_s']:8.1f} s  "
            f"peak RSS {res['peak_rss_mb']:8.0f} MB  {res['peak_rss_mb_after_tokens']}",
            flush=True,
        )
    plain = next(r for r in results if r["mode"] == "plain")
    vl = next(r for r in results if r["mode"] == "vl")
    # CPU time is the fair measure on a shared 2-core machine; wall time is reported too
    summary = {
        "cpu_time_ratio_vl_over_plain": vl["cpu_s"] / plain["cpu_s"],
        "wall_time_ratio_vl_over_plain": vl["wall_s"] / plain["wall_s"],
        "vl_peak_rss_mb_by_tokens": {
            **vl["peak_rss_mb_after_tokens"],
            str(vl["tokens"]): vl["peak_rss_mb"],
        },
    }
    for r in results:
        if r["mode"] == "ref":
            at = vl["peak_rss_mb_after_tokens"].get(str(r["tokens"]), vl["peak_rss_mb"])
            summary[f"ref_peak_rss_mb_at_{r['tokens']}"] = r["peak_rss_mb"]
            summary[f"rss_ratio_ref_over_vl_at_{r['tokens']}"] = r["peak_rss_mb"] / at
            summary[f"ref_cpu_s_per_1k_tokens_at_{r['tokens']}"] = 1000 * r["cpu_s"] / r["tokens"]
    summary["vl_cpu_s_per_1k_tokens"] = 1000 * vl["cpu_s"] / vl["tokens"]
    print(json.dumps(summary, indent=1))
    out = Path(__file__).parent / "results" / "bench_collect.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "runs": results, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
