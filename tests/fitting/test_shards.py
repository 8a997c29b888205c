"""Sharded collection: merged shards equal one pass; resume; every manifest mismatch named."""

from __future__ import annotations

import shutil

import pytest
import torch

from value_lens.data.icrl import generate_scripted, label
from value_lens.errors import ArtifactError, InputError
from value_lens.fitting.collect import collect_stats
from value_lens.fitting.shards import ShardPlan, merge_shards, missing_shards, shard_path
from value_lens.fitting.stats import ActivationStats

# batch_size=1: every sequence runs alone in both paths, so activations are bit-identical and
# the sums differ only by fp64 summation order (batching changes fp32 matmuls at ~1e-6).
KW = dict(moments=True, sample_per_class=5, seed=3, progress=False, batch_size=1)


@pytest.fixture(scope="module")
def data(tiny):
    corpus = [
        f"Topic {c} is studied widely. It has a long history, and many uses." for c in "ABCDEFGH"
    ]
    convs = generate_scripted(4, seed=4, criteria=["colon", "semicolon", "dash"], corpus=corpus)
    out = label(convs, tiny, placebo=True, drop_too_long=True)
    assert len(out) >= 7
    return out


@pytest.fixture(scope="module")
def whole(tiny, data):
    return collect_stats(tiny, data, **KW)


def _same(a: ActivationStats, b: ActivationStats) -> None:
    assert a.groups == b.groups and a.classes == b.classes and a.layers == b.layers
    assert torch.equal(a.count, b.count)  # counts exactly
    torch.testing.assert_close(a.sum, b.sum, rtol=1e-12, atol=1e-9)  # fp64 round-off
    torch.testing.assert_close(a.norm_sum, b.norm_sum, rtol=1e-12, atol=1e-9)
    for x, y in zip(a.moments.tensors(), b.moments.tensors(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-8)
    assert torch.equal(a.sample.keys, b.sample.keys)  # the reservoir bit-identical
    assert torch.equal(a.sample.x, b.sample.x)


def test_plan_is_balanced_deterministic_and_complete(data):
    for world in (1, 2, 3, 7):
        plan = ShardPlan.create(data, world)
        assert plan == ShardPlan.create(data, world)
        assert sorted(i for r in range(world) for i in plan.indices(r)) == list(range(len(data)))
        sizes = [int(x.numel()) for x in data.input_ids]
        assert list(plan.tokens) == [sum(sizes[i] for i in plan.indices(r)) for r in range(world)]
        # greedy balance: no shard exceeds the lightest by more than the longest sequence
        assert max(plan.tokens) - min(plan.tokens) <= max(sizes)
    with pytest.raises(InputError, match="at most"):
        ShardPlan.create(data, len(data) + 1)


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_merged_shards_equal_one_pass(tiny, data, whole, world, tmp_path):
    for rank in range(world):
        collect_stats(tiny, data, shard=(rank, world), out=tmp_path, **KW)
    merged = merge_shards(tmp_path)
    _same(merged, whole)
    assert merged.meta["dataset_hash"] == data.fingerprint()


def test_resume_collects_only_missing_shards_and_ignores_partial_files(tiny, data, tmp_path):
    seen: list[int] = []

    def count(x, hook):  # noqa: ARG001
        seen.append(x.shape[0])
        return x

    with tiny.hooks(fwd_hooks=[("hook_embed", count)]):
        collect_stats(tiny, data, shard=(0, 3), out=tmp_path, **KW)
        collect_stats(tiny, data, shard=(2, 3), out=tmp_path, **KW)
    first = sum(seen)
    # a kill while writing shard 1 leaves only a temporary file, never read as a shard
    (tmp_path / ".shard-00001-of-00003.safetensors.abc.tmp").write_bytes(b"partial")
    assert missing_shards(tmp_path, 3) == [1]
    with pytest.raises(InputError, match=r"lacks shard\(s\) \[1\]"):
        merge_shards(tmp_path)
    seen.clear()
    with tiny.hooks(fwd_hooks=[("hook_embed", count)]):
        for rank in range(3):
            collect_stats(tiny, data, shard=(rank, 3), out=tmp_path, **KW)
    plan = ShardPlan.create(data, 3)
    assert sum(seen) == len(plan.indices(1))  # only shard 1's sequences went through the model
    assert first == len(plan.indices(0)) + len(plan.indices(2))
    assert missing_shards(tmp_path, 3) == []


def _two_shards(tiny, data, out, **over):
    collect_stats(tiny, data, shard=(0, 2), out=out, **KW)
    collect_stats(tiny, data, shard=(1, 2), out=out, **{**KW, **over})


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"layers": [0]}, "layers"),
        ({"dtype": torch.float32}, "dtype"),
        ({"seed": 9}, "options"),
    ],
)
def test_mismatched_manifests_are_refused(tiny, data, tmp_path, change, what):
    collect_stats(tiny, data, shard=(0, 2), out=tmp_path, **KW)
    collect_stats(tiny, data, shard=(1, 2), out=tmp_path, **{**KW, **change})
    with pytest.raises(ArtifactError, match=f"differ in {what}"):
        merge_shards(tmp_path)
    # and a rerun with the first settings refuses the odd shard instead of mixing them
    with pytest.raises(ArtifactError, match=f"different {what}"):
        collect_stats(tiny, data, shard=(1, 2), out=tmp_path, **KW)


def test_other_data_model_convention_and_duplicates_are_refused(tiny, data, tmp_path):
    collect_stats(tiny, data, shard=(0, 2), out=tmp_path, **KW)
    other = data.subset(range(1, len(data)))
    collect_stats(tiny, other, shard=(1, 2), out=tmp_path / "b", **KW)
    shutil.copy(shard_path(tmp_path / "b", 1, 2), shard_path(tmp_path, 1, 2))
    with pytest.raises(ArtifactError, match="differ in (dataset_hash|plan)"):
        merge_shards(tmp_path)
    # a copied shard claiming another rank
    shutil.copy(shard_path(tmp_path, 0, 2), shard_path(tmp_path, 1, 2))
    with pytest.raises(ArtifactError, match="claims rank 0"):
        merge_shards(tmp_path)
    # another model and another layer convention, written into an otherwise valid shard
    for key, value in (("model_id", "someone/else"), ("convention", "hf_hidden_states")):
        collect_stats(tiny, data, shard=(1, 2), out=tmp_path / key, **KW)
        shutil.copy(shard_path(tmp_path, 0, 2), shard_path(tmp_path / key, 0, 2))
        s = ActivationStats.load(shard_path(tmp_path / key, 1, 2))
        s.meta["shard"][key] = value
        s.save(shard_path(tmp_path / key, 1, 2))
        with pytest.raises(ArtifactError, match=f"differ in {key}"):
            merge_shards(tmp_path / key)
    # shards of two plans in one folder
    collect_stats(tiny, data, shard=(0, 3), out=tmp_path, **KW)
    with pytest.raises(ArtifactError, match="mixes shards"):
        merge_shards(tmp_path)


def test_bad_shard_arguments(tiny, data, tmp_path):
    for bad in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(InputError, match="shard"):
            collect_stats(tiny, data, shard=bad, out=tmp_path, **KW)
    with pytest.raises(InputError, match="no shard files"):
        merge_shards(tmp_path)


def test_collect_stats_entry_points(tiny, data, whole, tmp_path):
    """collect_stats(shard=, out=) writes the shard; ActivationStats.merge sums the folder."""
    for rank in range(2):
        collect_stats(tiny, data, shard=(rank, 2), out=tmp_path, **KW)
    _same(ActivationStats.merge(tmp_path), whole)
    with pytest.raises(InputError, match="both shard"):
        collect_stats(tiny, data, shard=(0, 2), **KW)
    with pytest.raises(InputError, match="not both"):
        collect_stats(tiny, data, shard=(0, 2), out=tmp_path, distributed=True, **KW)
    with pytest.raises(InputError, match="torchrun"):
        collect_stats(tiny, data, distributed=True, **KW)
