"""Two gloo processes on the tiny model: every rank's statistics equal one process's."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from _dist_worker import KW, run, small_data

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
        assert got.meta["dataset_hash"] == one.meta["dataset_hash"]
        assert got.meta["distributed"]["world"] == 2


def test_outside_a_process_group(tiny):
    assert rank_and_world() == (0, 1)
    with pytest.raises(InputError, match="torchrun"):
        collect_stats(tiny, small_data(tiny), distributed=True)
