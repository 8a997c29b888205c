"""Streamed per-group class moments, squared sums, position cross-moments and group-tagged
samples: against Hugging Face hidden states token by token, and exact under group selection,
sharding, merging and saving."""

import numpy as np
import pytest
import torch
from _moments import stats_from_tokens

from tests._oracle import hidden_states
from value_lens import collect_stats
from value_lens.data.positions import position_features
from value_lens.data.tokens import LabelledTokens
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats

PLAN = CollectPlan(positions=True, squares=True, sample_per_class=1000)


def turn_data(n_seqs=9, vocab=300, seed=0):
    """Random sequences with a header, one turn (BEFORE, a REWARD token, AFTER) and a tail, turn
    bounds in meta; groups a, b, c."""
    gen = torch.Generator().manual_seed(seed)
    ids, labs, grps, metas = [], [], [], []
    for i in range(n_seqs):
        nb, na = (int(torch.randint(3, 9, (1,), generator=gen)) for _ in range(2))
        head = int(torch.randint(2, 5, (1,), generator=gen))
        n = head + nb + 1 + na + 2
        ids.append(torch.randint(5, vocab, (n,), generator=gen))
        labs.append(torch.tensor([-1] * head + [0] * nb + [2] + [1] * na + [-1, -1]))
        grps.append("abc"[i % 3])
        metas.append({"turn_start": head, "turn_end": head + nb + 1 + na, "conversation_id": i})
    return LabelledTokens(ids, labs, grps, meta=metas)


def oracle_tokens(hf, data, layer):
    """Every labelled token's residual (HF hidden_states[layer + 1]), label, group, features."""
    xs, labs, grps, feats = [], [], [], []
    for i, (ids, lab, g) in enumerate(zip(data.input_ids, data.labels, data.groups, strict=True)):
        h = hidden_states(hf, ids)[layer + 1][0].double()
        keep = lab >= 0
        xs.append(h[keep])
        labs.append(lab[keep])
        grps += [g] * int(keep.sum())
        feats.append(position_features(data, i)[keep])
    return torch.cat(xs).numpy(), torch.cat(labs).numpy(), np.array(grps), torch.cat(feats).numpy()


def test_streamed_moments_equal_hidden_state_sums(tiny, tiny_hf):
    hf, _ = tiny_hf
    data = turn_data()
    got = collect_stats(tiny, data, layers=[0], plan=PLAN, batch_size=4, progress=False)
    x, lab, grp, z = oracle_tokens(hf, data, 0)
    ref = stats_from_tokens(x, lab, grp, z=z)
    assert got.groups == ref.groups and got.classes == ref.classes
    cm, rc = got.class_moments, ref.class_moments
    assert cm.labels == (0, 1) and cm.features == rc.features
    for name in ("xx", "x4", "x2x", "z", "zz", "xz"):
        torch.testing.assert_close(getattr(cm, name), getattr(rc, name), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got.sq_sum, ref.sq_sum, rtol=1e-5, atol=1e-4)
    # the sample keeps every token here (1000 > any class), each tagged with its group
    for c, label in enumerate(got.classes):
        tags = got.sample.group[c][torch.isfinite(got.sample.keys[c])]
        names = sorted(got.groups[int(t)] for t in tags)
        assert names == sorted(grp[lab == label].tolist())


def test_group_selection_equals_collecting_the_groups_alone(tiny):
    data = turn_data(12, seed=1)
    full = collect_stats(tiny, data, plan=PLAN, batch_size=1, progress=False)
    for names in (["c", "a"], ["b"]):
        alone = collect_stats(
            tiny, data.select_groups(names), plan=PLAN, batch_size=1, progress=False
        )
        sel = full.select_groups(names)
        assert sel.groups == names
        alone = alone.with_groups(names)
        assert torch.equal(sel.count, alone.count)
        for name, v in sel.class_moments.tensors().items():
            torch.testing.assert_close(v, alone.class_moments.tensors()[name], rtol=1e-9, atol=1e-7)
        torch.testing.assert_close(sel.sq_sum, alone.sq_sum, rtol=1e-9, atol=1e-7)
        for c in range(len(sel.classes)):
            a, b = sel.sample.class_sample(c), alone.sample.class_sample(c)
            key = lambda t: sorted(map(tuple, t[0].tolist()))  # noqa: E731
            assert key(a) == key(b)  # the same token vectors
        # every method refits on the selection as on the groups collected alone
        from value_lens.fitting.methods import FITTERS

        for m in ("lda", "erased", "standardized", "ridge", "logistic", "mean_centred"):
            d_sel = FITTERS[m].refit(full, names)[0]
            d_alone = FITTERS[m](alone)[0]
            torch.testing.assert_close(d_sel, d_alone, rtol=1e-4, atol=1e-5, msg=m)


def test_shards_merges_and_files_keep_every_statistic(tiny, tmp_path):
    data = turn_data(10, seed=2)
    kw = dict(plan=PLAN, batch_size=2, progress=False)
    full = collect_stats(tiny, data, **kw)
    for r in range(3):
        collect_stats(tiny, data, shard=(r, 3), out=tmp_path / "sh", **kw)
    merged = ActivationStats.merge(tmp_path / "sh")
    merged.save(tmp_path / "m.safetensors")
    back = ActivationStats.load(tmp_path / "m.safetensors")
    assert back.groups == full.groups
    for name, v in full.class_moments.tensors().items():
        torch.testing.assert_close(back.class_moments.tensors()[name], v, rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(back.sq_sum, full.sq_sum, rtol=1e-10, atol=1e-8)
    assert torch.equal(back.sample.keys, full.sample.keys)
    assert torch.equal(back.sample.group, full.sample.group)
    assert back.class_moments.features == full.class_moments.features
    # a rerun with another plan does not reuse the finished shards
    from value_lens.errors import ArtifactError

    with pytest.raises(ArtifactError, match="options"):
        collect_stats(tiny, data, shard=(0, 3), out=tmp_path / "sh", batch_size=2, progress=False)


def test_plan_reports_what_stats_lack(tiny):
    data = turn_data(4)
    plain = collect_stats(tiny, data, progress=False)
    assert PLAN.missing(plain) == [
        "class moments of labels [0, 1]",
        "position cross-moments (positions=True)",
        "squared sums (squares=True)",
        "a token sample of 1000 per label (sample_per_class=1000)",
    ]
    assert CollectPlan().satisfied_by(plain)
    rich = collect_stats(tiny, data, plan=PLAN, progress=False)
    assert PLAN.satisfied_by(rich) and not CollectPlan(placebo=True).satisfied_by(rich)
    with pytest.raises(Exception, match="placebo"):
        collect_stats(tiny, data, plan=CollectPlan(placebo=True), progress=False)


def test_ridge_from_class_moments_equals_ridge_from_pooled_moments(tiny):
    """The pooled path is the one tests/fitting/test_axis.py checks against a closed form on HF
    hidden states; a refit on groups goes through the class moments and must agree."""
    from value_lens import ValueAxis

    data = turn_data(9, seed=5)
    both = collect_stats(tiny, data, moments=True, plan=PLAN, batch_size=1, progress=False)
    pooled = ValueAxis.fit(both, "ridge")
    both.moments = None
    from_cells = ValueAxis.fit(both, "ridge")
    assert from_cells.fit_info["target"].startswith("after_vs_before")
    torch.testing.assert_close(from_cells.directions, pooled.directions, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(from_cells.proj_std, pooled.proj_std, rtol=1e-5, atol=1e-7)
