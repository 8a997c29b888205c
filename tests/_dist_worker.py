"""Worker of tests/fitting/test_distributed.py: one gloo rank collecting on the tiny model."""

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


def _plan():
    from value_lens.fitting.plan import CollectPlan

    return CollectPlan(positions=True, squares=True)


KW = dict(moments=True, sample_per_class=4, seed=1, progress=False, batch_size=1, plan=_plan())


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


def sweep_data(model):
    from value_lens.data.icrl import generate_scripted, label

    corpus = [
        f"Topic {c} is studied widely. It has a long history, and many uses." for c in "ABCDEFGH"
    ]
    crits = ["colon", "semicolon", "number", "dash"]
    convs = generate_scripted(1, seed=5, criteria=crits, corpus=corpus)
    return label(convs, model, placebo=True, drop_too_long=True)


def sweeps(model, data, **kw):
    """The single-pass sweep (with the shuffled-label null) and the two-pass one."""
    from value_lens.analysis.sweep import ClusterCI, SweepConfig

    cfg = SweepConfig(n_splits=3, n_train=2, n_random=4, n_shuffle=3, ci=ClusterCI())
    from value_lens.analysis.sweep import layer_sweep

    return {
        mem: layer_sweep(model, data, cfg, batch_size=1, progress=False, max_memory_gb=mem, **kw)
        for mem in (1.0, 0.0)
    }


def run_sweep(rank: int, world: int, init_file: str, out: str) -> None:
    import pickle

    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        from value_lens.testing import tiny_qwen3

        model = tiny_qwen3()
        got = sweeps(model, sweep_data(model), distributed=True)
        keep = {k: (r.table, r.cosine, r.n_tokens, r.splits) for k, r in got.items()}
        (Path(out) / f"sweep{rank}.pkl").write_bytes(pickle.dumps(keep))
    finally:
        torch.distributed.destroy_process_group()
