"""GPU benchmark (issue 13): Qwen3-8B's real shapes with random bf16 weights, built on the GPU.

No hub access: the model is ``Qwen3ForCausalLM(config)`` with Qwen3-8B's configuration and
random weights, wrapped in the TransformerLens bridge like any loaded model. It measures

* collection throughput (tokens/s) of ``collect_stats`` against a plain HF forward over the
  same batches, and peak GPU memory;
* unsteered and steered (one layer) generation throughput at batch 1 and batch 16;
* shard-merge equality at real shapes: 2 shards collected on the one GPU and merged, against
  1 rank (counts exact, sums to fp64 round-off);
* the paper-scale wall time extrapolated from those throughputs: 1M tokens of collection, a
  10-split sweep (one collection pass plus the measured refit), and a dose grid of
  16 prompts x 256 tokens x 5 strengths x 3 layers.

``--smoke`` runs the same code on the CPU with a tiny Qwen3 configuration (tests run it).

    python benchmarks/bench_gpu.py                 # on a GPU machine; writes results/bench_gpu.json
    python benchmarks/bench_gpu.py --smoke --out /tmp/bench_gpu.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from value_lens.testing import QWEN3_8B_SHAPES as QWEN3_8B

SMOKE = dict(
    QWEN3_8B,
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)


def build(smoke: bool):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from value_lens.core.model import load_model
    from value_lens.testing import tiny_tokenizer

    device = "cpu" if smoke else "cuda"
    dtype = torch.float32 if smoke else torch.bfloat16
    cfg = Qwen3Config(
        **(SMOKE if smoke else QWEN3_8B),
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
    )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            hf = Qwen3ForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(old)
    tok = tiny_tokenizer()
    return hf, load_model(hf, tokenizer=tok, device=device, dtype=str(dtype).split(".")[-1]), tok


def data(n_seq: int, seq_len: int, vocab: int):
    from value_lens.data.tokens import LabelledTokens

    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(10, vocab, (seq_len,), generator=g) for _ in range(n_seq)]
    labs = []
    for _ in range(n_seq):
        lab = torch.full((seq_len,), -1)
        lab[seq_len // 4 : seq_len // 2] = 0
        lab[seq_len // 2 + 1 :] = 1
        labs.append(lab)
    return LabelledTokens(ids, labs, [f"c{i % 5}" for i in range(n_seq)])


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny config on the CPU")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_gpu.json"))
    args = ap.parse_args(argv)
    from value_lens.core.generate import generate
    from value_lens.fitting.collect import collect_stats
    from value_lens.fitting.stats import ActivationStats
    from value_lens.steering.steer import steer

    device = "cpu" if args.smoke else "cuda"
    hf, model, _ = build(args.smoke)
    n_seq, seq_len, batch = (8, 64, 4) if args.smoke else (64, 2048, 8)
    d = data(n_seq, seq_len, hf.config.vocab_size)
    n_tok = n_seq * seq_len
    kw = dict(batch_size=batch, progress=False)
    collect_stats(model, d.subset(range(batch)), **kw)  # warm-up
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_collect = timed(lambda: collect_stats(model, d, **kw), device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None

    def plain() -> None:
        with torch.no_grad():
            for s in range(0, n_seq, batch):
                hf(torch.stack(d.input_ids[s : s + batch]).to(device))

    t_plain = timed(plain, device)
    one = collect_stats(model, d, **{**kw, "batch_size": 1})
    with tempfile.TemporaryDirectory() as tmp:
        for rank in range(2):
            collect_stats(model, d, shard=(rank, 2), out=tmp, **{**kw, "batch_size": 1})
        merged = ActivationStats.merge(tmp)
    shard_equal = bool(torch.equal(merged.count, one.count)) and bool(
        torch.allclose(merged.sum, one.sum, rtol=1e-10, atol=1e-6)
    )
    axis_dir = torch.randn(hf.config.hidden_size)
    layer = min(20, hf.config.num_hidden_layers - 1)
    gen_tokens = 16 if args.smoke else 128
    rows = []
    for bs in (1, 16):
        prompts = ["The value of " + "x " * 20] * bs
        for label, spec in (("unsteered", None), ("steered_1_layer", "one")):

            def run(spec=spec, prompts=prompts, bs=bs) -> None:
                st = None if spec is None else steer(model, axis_dir, layers=layer, alpha=4.0)
                generate(model, prompts, max_new_tokens=gen_tokens, batch_size=bs, steer=st)

            run()  # warm-up
            t = timed(run, device)
            rows.append({"batch": bs, "mode": label, "tokens_per_s": bs * gen_tokens / t})
    collect_tps = n_tok / t_collect
    gen1 = next(
        r["tokens_per_s"] for r in rows if r["batch"] == 16 and r["mode"] == "steered_1_layer"
    )
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (smoke)",
        "config": "tiny Qwen3 (smoke)" if args.smoke else "Qwen3-8B shapes, random bf16 weights",
        "collect": {
            "tokens": n_tok,
            "tokens_per_s": collect_tps,
            "plain_forward_tokens_per_s": n_tok / t_plain,
            "ratio_vs_plain_forward": (n_tok / t_collect) / (n_tok / t_plain),
            "peak_gpu_gib": peak,
        },
        "shard_merge_equal_2_vs_1": shard_equal,
        "generation": rows,
        "paper_scale_extrapolated_s": {
            "collect_1M_tokens": 1e6 / collect_tps,
            "sweep_10_splits": 1e6 / collect_tps,  # one pass; the refit is seconds
            "dose_16x256x5x3": 16 * 256 * 5 * 3 / gen1,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
