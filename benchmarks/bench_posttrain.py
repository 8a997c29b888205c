"""Post-training benchmark (issue 14): wall time of a one-word LoRA DPO run on the embedded
SmolLM2-135M-Instruct at tutorial 06's CPU size, and the measured change of the preference rank.

    OMP_NUM_THREADS=1 python benchmarks/bench_posttrain.py        # SmolLM2, several minutes
    python benchmarks/bench_posttrain.py --model tiny              # smoke run

Steps, each timed: load the model; fit the value axis at one layer on the tutorial's CPU-sized
ICRL data; build the pairs; DPO (32 pairs x 1 epoch, batch 8, the paper's LoRA r16/alpha32,
beta 0.1, lr 5e-5); boot the merged model; ``compare.preference_rank`` on held-out prompts (the
rate at which the target ranks first in value, base vs DPO, with the paired bootstrap CI).
Writes benchmarks/results/bench_posttrain.json. The rank change at this size is noise-dominated;
it is recorded whatever it is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any


def _timed(times: dict[str, float], name: str, fn: Any) -> Any:
    t0 = time.perf_counter()
    out = fn()
    times[name] = round(time.perf_counter() - t0, 2)
    print(f"{name}: {times[name]} s", flush=True)
    return out


def _clean(x: Any) -> Any:
    """NaN (e.g. the reference model's own paired CI) as null, so the file is strict JSON."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x


def _axis(model: Any, layer: int, n_per_criterion: int) -> Any:
    import value_lens as vl
    from value_lens.data import icrl

    corpus = [" ".join(re.split(r"(?<=[.!?]) ", p.text)[:2]) for p in icrl.load_corpus()]
    convs = icrl.generate_scripted(n_per_criterion, seed=0, corpus=corpus)
    data = icrl.label(convs, model)
    data = data.subset([i for i, ids in enumerate(data.input_ids) if ids.numel() <= 600])
    return vl.ValueAxis.fit(vl.collect_stats(model, data, layers=[layer], progress=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"])
    ap.add_argument("--word", default="kite")
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--eval", type=int, default=40)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    import value_lens as vl
    from value_lens import posttrain
    from value_lens.core.model import load_hf
    from value_lens.data import preference
    from value_lens.testing import tiny_qwen3_hf

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    times: dict[str, float] = {}
    if args.model == "tiny":
        hf, tok = tiny_qwen3_hf()
        layer, n_per = 1, 1
    else:
        hf, tok = _timed(times, "load_seconds", lambda: load_hf(None))
        layer, n_per = 20, 2
    model = vl.load_model(hf, tokenizer=tok)
    if args.model == "tiny":  # the tiny tokenizer makes ICRL conversations too long: any axis
        gen = torch.Generator().manual_seed(0)
        axis = vl.ValueAxis(torch.randn(model.cfg.n_layers, model.cfg.d_model, generator=gen))
    else:
        axis = _timed(times, "axis_seconds", lambda: _axis(model, layer, n_per))
    pairs = preference.word_pairs(args.word, n=args.pairs, seed=42)
    settings = posttrain.DPOSettings(epochs=args.epochs, batch_size=args.batch)
    log: list[dict[str, Any]] = []
    tuned_hf = _timed(
        times, "dpo_seconds", lambda: posttrain.dpo(hf, tok, pairs, settings, log=log)
    )
    tuned = _timed(times, "boot_seconds", lambda: vl.load_model(tuned_hf, tokenizer=tok))
    prompts = preference.eval_prompts(args.word, n=args.eval, seed=0)
    res = _timed(
        times,
        "preference_rank_seconds",
        lambda: vl.compare.preference_rank({"base": model, "dpo": tuned}, axis, layer, prompts),
    )
    summary = res.summary.to_dict(orient="records")
    dpo_row = next(r for r in summary if r.get("model") == "dpo")
    keep = [k for k in dpo_row if k.startswith(("rate_first", "delta_", "chance", "mean_rank"))]
    out = {
        "model": vl.core.model.model_id(model) or args.model,
        "word": args.word,
        "pairs": args.pairs,
        "epochs": args.epochs,
        "batch_size": args.batch,
        "lora_r": settings.lora.r,  # type: ignore[union-attr]
        "lora_alpha": settings.lora.alpha,  # type: ignore[union-attr]
        "beta": settings.beta,
        "lr": settings.lr,
        "layer": layer,
        "eval_prompts": args.eval,
        "torch_threads": torch.get_num_threads(),
        **times,
        "dpo_steps": sum(1 for e in log if "loss" in e),
        "loss_first_step": next((e["loss"] for e in log if "loss" in e), None),
        "loss_last_step": next((e["loss"] for e in reversed(log) if "loss" in e), None),
        "preference_rank": [
            {"model": r["model"], **{k: r[k] for k in keep if k in r}} for r in summary
        ],
    }
    path = Path(args.out or Path(__file__).parent / "results" / "bench_posttrain.json")
    if args.model == "tiny" and args.out is None:
        path = path.with_name("bench_posttrain_tiny.json")
    out = _clean(json.loads(json.dumps(out, default=float)))
    path.write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")
    print(json.dumps(out, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
