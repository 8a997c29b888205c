"""Monitor false-positive rates (issue 20): the share of neutral responses a calibrated stop rule
ends, per response and per token, on held-out text and on live generations.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/bench_monitor_fpr.py  # SmolLM2, minutes
    python benchmarks/bench_monitor_fpr.py --quick --out /tmp/m.json           # tiny model

The monitor is the guide's default (``vl.monitor(axis, [layer])``: the cosine at the layer,
aggregate ``ema:0.9``) on the demo's axis (the demo's 12 criteria, the shortest labelled turn of 3
conversations each; reused from ``value_lens_out/bench_decode/axis.safetensors`` when
``bench_decode`` made it) at layer 19, the demo's best held-out layer. Neutral material:

* **texts**: the 220 encyclopedic paragraphs of ``value_lens/data/corpora/paragraphs.jsonl``
  (the ICRL corpus the axis's conversations are built from, read here as plain text), read like
  generations (``aggregate_traces``, as ``Monitor.calibrate``), even ones to calibrate, odd ones
  held out;
* **generations**: the model's replies to "Write a short paragraph about {topic}." for the same
  topics (T=0.7, 64 new tokens), calibrated on the even topics and measured on the odd ones,
  offline from the replies' traces and live (``generate(stop_when=vl.stop.below(...))`` on the
  same rows and seeds: the share of replies the rule actually ends).

Thresholds at 1% and 5%, per response (the default) and per token, counted from token 0 and
from token 16. Every held-out rate comes with a 95% interval: Clopper-Pearson over responses,
a leave-one-text-out jackknife over tokens.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

GEN_PROMPT = "Write a short paragraph about {topic}."


def _axis(args: argparse.Namespace, model: Any) -> Any:
    from value_lens.fitting.axis import ValueAxis

    kept = Path(args.axis)
    if kept.is_file():
        return ValueAxis.load(kept)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_decode", Path(__file__).with_name("bench_decode.py")
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    axis = mod._fit_axis(model, [args.layer])
    kept.parent.mkdir(parents=True, exist_ok=True)
    axis.save(kept)
    return axis


def _setup(args: argparse.Namespace) -> tuple[Any, Any, list[dict[str, str]]]:
    import torch

    from value_lens.data.icrl.corpus import load_corpus

    paragraphs = [{"topic": p.topic, "text": p.text} for p in load_corpus()[: args.texts]]
    if args.quick:
        from value_lens.fitting.axis import ValueAxis
        from value_lens.testing import tiny_qwen3

        model = tiny_qwen3()
        g = torch.Generator().manual_seed(0)
        axis = ValueAxis(torch.randn(2, 64, generator=g), model_id=model.cfg.model_name)
        return model, axis, paragraphs
    from value_lens.core.model import load_model

    model = load_model()
    return model, _axis(args, model), paragraphs


def _generations(
    model: Any, mon: Any, topics: list[str], args: argparse.Namespace, rule: Any = None
) -> list[Any]:
    from value_lens.core.generate import generate

    prompts = [[{"role": "user", "content": GEN_PROMPT.format(topic=t)}] for t in topics]
    return generate(
        model,
        prompts,
        max_new_tokens=args.tokens,
        temperature=0.7,
        seed=args.seed,
        batch_size=16,
        monitor=mon,
        stop_when=rule,
    )


def _aggregates(mon: Any, gens: list[Any]) -> list[Any]:
    """Each reply's aggregate after each new token, as the stop rule sees it."""
    import numpy as np
    import torch

    f = mon.aggregates["ema"]
    out = []
    for g in gens:
        v = g.trace.cosine[g.trace.row(mon.score_layer), g.prompt_ids.numel() :].to(torch.float64)
        out.append(np.array([float(f(v[: t + 1])) for t in range(v.numel())]))
    return out


def _rates(cal: list, held: list, fpr: float, unit: str, after: int) -> dict[str, Any]:
    from value_lens.analysis.stop import calibrate_threshold, false_positive_rate

    thr = calibrate_threshold(cal, fpr, unit=unit, after=after)  # type: ignore[arg-type]
    resp = false_positive_rate(held, thr, unit="response", after=after)
    tok = false_positive_rate(held, thr, unit="token", after=after)
    return {
        "fpr": fpr,
        "calibrated_per": unit,
        "after": after,
        "threshold": thr,
        "held_out_per_response": round(resp.rate, 4),
        "per_response_lo": round(resp.lo, 4),
        "per_response_hi": round(resp.hi, 4),
        "held_out_per_token": round(tok.rate, 4),
        "per_token_lo": round(tok.lo, 4),
        "per_token_hi": round(tok.hi, 4),
        "n_held_out": resp.n,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny model, a few texts")
    ap.add_argument("--texts", type=int, default=220)
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per generation")
    ap.add_argument("--layer", type=int, default=19)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--axis", default="value_lens_out/bench_decode/axis.safetensors")
    ap.add_argument("--after", type=int, nargs="*", default=[0, 16], help="first counted token")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.texts, args.tokens, args.layer, args.after = 24, 8, 1, [0, 2]
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from value_lens.analysis.monitor import monitor
    from value_lens.analysis.monitor_calibration import aggregate_traces
    from value_lens.analysis.stop import below

    model, axis, paragraphs = _setup(args)
    mon = monitor(axis, [args.layer])  # the guide's default: cosine, ema:0.9
    texts = aggregate_traces(mon, model, [p["text"] for p in paragraphs])["ema"]
    topics = [p["topic"] for p in paragraphs]
    cal_t, held_t = topics[0::2], topics[1::2]
    cal_g = _aggregates(mon, _generations(model, mon, cal_t, args))
    held_gens = _generations(model, mon, held_t, args)
    held_g = _aggregates(mon, held_gens)
    rows, live = [], []
    for fpr in (0.01, 0.05):
        for unit in ("response", "token"):
            for after in args.after:
                rows.append(
                    {"material": "texts"} | _rates(texts[0::2], texts[1::2], fpr, unit, after)
                )
                r = {"material": "generations"} | _rates(cal_g, held_g, fpr, unit, after)
                rows.append(r)
                if after == args.after[0]:
                    rule = below("ema", r["threshold"], after=after)
                    stopped = _generations(model, mon, held_t, args, rule=rule)
                    share = sum(bool(g.stopped) for g in stopped) / len(stopped)
                    live.append(
                        {
                            "fpr": fpr,
                            "calibrated_per": unit,
                            "live_stopped_share": round(share, 4),
                            "offline_per_response": r["held_out_per_response"],
                            "n": len(stopped),
                        }
                    )
    result = {
        "setting": {
            "model": str(model.cfg.model_name),
            "quick": bool(args.quick),
            "layer": args.layer,
            "aggregate": "ema:0.9 of the cosine",
            "texts": len(texts),
            "generations": len(topics),
            "max_new_tokens": args.tokens,
            "mean_text_tokens": float(sum(len(x) for x in texts) / len(texts)),
            "mean_generation_tokens": float(sum(len(x) for x in held_g) / len(held_g)),
        },
        "rates": rows,
        "live": live,
    }
    print(json.dumps(rows, indent=1))
    out = args.out or (None if args.quick else "benchmarks/results/bench_monitor_fpr.json")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
