"""Two gloo processes on the tiny model: every rank's statistics and sweep equal one process's."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
from _dist_worker import KW, run, run_sweep, small_data, sweep_data, sweeps

from value_lens.errors import InputError
from value_lens.fitting.collect import collect_stats
from value_lens.fitting.distributed import rank_and_world
from value_lens.fitting.stats import ActivationStats


def test_two_gloo_ranks_equal_one_process(tiny, tmp_path):
    mp.spawn(run, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    one = collect_stats(tiny, small_data(tiny), **KW)
    for rank in range(2):
        got = ActivationStats.load(tmp_path / f"rank{rank}.safetensors")
        assert got.groups == one.groups and got.classes == one.classes
        assert torch.equal(got.count, one.count)
        torch.testing.assert_close(got.sum, one.sum, rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(got.norm_sum, one.norm_sum, rtol=1e-12, atol=1e-9)
        for a, b in zip(got.moments.tensors(), one.moments.tensors(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-8)
        assert torch.equal(got.sample.keys, one.sample.keys)
        assert torch.equal(got.sample.x, one.sample.x)
        assert torch.equal(got.sample.group, one.sample.group)
        for name, v in one.class_moments.tensors().items():
            torch.testing.assert_close(got.class_moments.tensors()[name], v, rtol=1e-10, atol=1e-8)
        torch.testing.assert_close(got.sq_sum, one.sq_sum, rtol=1e-12, atol=1e-9)
        assert got.meta["dataset_hash"] == one.meta["dataset_hash"]
        assert got.meta["distributed"]["world"] == 2


def test_outside_a_process_group(tiny):
    assert rank_and_world() == (0, 1)
    with pytest.raises(InputError, match="torchrun"):
        collect_stats(tiny, small_data(tiny), distributed=True)


def test_two_gloo_ranks_sweep_equals_one_process(tiny, tmp_path):
    """Both sweep paths (one pass with the shuffled-label null; statistics then projections):
    every rank's table equals one process's (counts exactly, scores to fp64 round-off)."""
    mp.spawn(run_sweep, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    one = sweeps(tiny, sweep_data(tiny))
    for rank in range(2):
        got = pickle.loads((tmp_path / f"sweep{rank}.pkl").read_bytes())
        for mem, ref in one.items():
            table, cos, n_tokens, splits = got[mem]
            assert n_tokens == ref.n_tokens
            assert list(table.columns) == list(ref.table.columns)
            exact = [c for c in table.columns if c == "layer" or c.startswith("n_")]
            pd.testing.assert_frame_equal(table[exact], ref.table[exact])
            pd.testing.assert_frame_equal(table, ref.table, rtol=0, atol=1e-9)
            np.testing.assert_allclose(cos, ref.cosine, rtol=0, atol=1e-9)
            assert [s["train_groups"] for s in splits] == [s["train_groups"] for s in ref.splits]
        assert np.isfinite(got[1.0][0]["shuffled_auroc_mean"]).all()
