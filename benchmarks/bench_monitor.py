"""Monitor benchmark (issue 15): monitored vs plain ``value_lens.core.generate`` with the KV cache.

    OMP_NUM_THREADS=1 python benchmarks/bench_monitor.py              # SmolLM2, a few minutes
    python benchmarks/bench_monitor.py --model tiny --repeats 3        # smoke run

Three configurations, same prompts and greedy decoding, so the same tokens:

* ``plain``: no monitor;
* ``monitor``: ``monitor=vl.monitor(axis, layer)``, values recorded, no per-token callback;
* ``monitor_rule``: plus an ``on_token`` callback and a stop rule that can never fire (a cosine
  EMA below -2), so every step runs the per-row events, aggregates and rule.

A monitored call runs one decoding step more than ``max_new_tokens`` (to read the last kept
token), so its floor is about ``1 + 1/max_new_tokens`` when rows run to the limit. Timings
interleave the configurations (``repeats`` rounds, order rotated each round) and report medians,
so drift on a shared machine hits all alike. Writes benchmarks/results/bench_monitor.json.
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


def load(name: str):
    from value_lens.core.model import load_model
    from value_lens.testing import tiny_qwen3

    return tiny_qwen3(n_layers=4, d_model=128) if name == "tiny" else load_model()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="smollm", choices=["smollm", "tiny"])
    ap.add_argument("--tokens", type=int, default=64, help="max_new_tokens per prompt")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/bench_monitor.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from value_lens.analysis.monitor import monitor
    from value_lens.analysis.stop import below
    from value_lens.core.generate import generate
    from value_lens.core.model import d_model, model_id, n_layers
    from value_lens.fitting.axis import ValueAxis

    model = load(args.model)
    g = torch.Generator().manual_seed(0)
    axis = ValueAxis(
        torch.randn(n_layers(model), d_model(model), generator=g), model_id=model_id(model)
    )
    layer = args.layer if args.layer is not None else (2 * n_layers(model)) // 3
    msgs = [[{"role": "user", "content": p}] for p in PROMPTS]
    kw = dict(max_new_tokens=args.tokens, batch_size=len(msgs))
    n_events = [0]

    def count(event) -> None:  # noqa: ARG001
        n_events[0] += 1

    configs = {
        "plain": {},
        "monitor": {"monitor": monitor(axis, layer)},
        "monitor_rule": {
            "monitor": monitor(axis, layer, on_token=count),
            "stop_when": below("ema", -2.0),
        },
    }

    def timed(name: str) -> tuple[float, list[list[int]]]:
        t0 = time.perf_counter()
        gens = generate(model, msgs, **configs[name], **kw)
        return time.perf_counter() - t0, [x.output_ids.tolist() for x in gens]

    timed("plain")  # warm-up
    times: dict[str, list[float]] = {k: [] for k in configs}
    outputs: dict[str, list[list[int]]] = {}
    names = list(configs)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            t, out = timed(name)
            times[name].append(t)
            outputs[name] = out
    same = all(outputs[k] == outputs["plain"] for k in configs)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["plain"]
    tokens = sum(len(o) for o in outputs["plain"])
    try:
        load_avg = list(os.getloadavg())
    except OSError:
        load_avg = []
    result = {
        "model": model_id(model),
        "layer": layer,
        "max_new_tokens": args.tokens,
        "batch": len(msgs),
        "repeats": args.repeats,
        "median_seconds": med,
        "all_seconds": times,
        "new_tokens": tokens,
        "same_tokens_as_plain": same,
        "ratio_to_plain": {k: v / base for k, v in med.items()},
        "extra_step_floor": 1 + 1 / args.tokens,
        "target_ratio": 1.02,
        "torch_threads": torch.get_num_threads(),
        "load_average_after": load_avg,
        "cpu_count": os.cpu_count(),
    }
    print(f"{'config':<14}{'median s':>10}{'ratio':>8}")
    for k in configs:
        print(f"{k:<14}{med[k]:>10.3f}{med[k] / base:>8.3f}")
    print(f"new tokens per call: {tokens}; same tokens in every config: {same}; load {load_avg}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
