"""Worker of tests/test_distributed.py: one gloo rank collecting on the tiny model."""

from __future__ import annotations

from pathlib import Path

import torch


def small_data(model):
    from value_lens.data.icrl import generate_scripted, label

    corpus = [
        f"Topic {c} is studied widely. It has a long history, and many uses." for c in "ABCDEFGH"
    ]
    convs = generate_scripted(2, seed=5, criteria=["colon", "semicolon"], corpus=corpus)
    return label(convs, model, placebo=True, drop_too_long=True)


KW = dict(moments=True, sample_per_class=4, seed=1, progress=False, batch_size=1)


def run(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        from value_lens.fitting.collect import collect_stats
        from value_lens.testing import tiny_qwen3

        model = tiny_qwen3()
        stats = collect_stats(model, small_data(model), distributed=True, **KW)
        stats.save(Path(out) / f"rank{rank}.safetensors")
    finally:
        torch.distributed.destroy_process_group()
