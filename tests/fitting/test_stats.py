"""ActivationStats: per-group norms, group selection, merging and artifacts."""

import inspect

import pytest
import torch

from tests._oracle import hidden_states, random_data
from value_lens import ValueAxis, collect_stats
from value_lens.core.io import save_artifact
from value_lens.errors import InputError
from value_lens.fitting.stats import ActivationStats, Moments


def two_groups(norm_a: float = 1.0, norm_b: float = 100.0) -> ActivationStats:
    """Groups a and b, 5 BEFORE + 5 AFTER tokens each, every token of norm ``norm_a`` / ``norm_b``.

    In group a, BEFORE tokens are e0 and AFTER tokens e1 (times the norm); in group b, e1 and e2.
    """
    d = 3
    e = torch.eye(d, dtype=torch.float64)
    count = torch.full((2, 2), 5)
    s = torch.zeros(1, 2, 2, d, dtype=torch.float64)
    s[0, 0, 0], s[0, 0, 1] = 5 * norm_a * e[0], 5 * norm_a * e[1]
    s[0, 1, 0], s[0, 1, 1] = 5 * norm_b * e[1], 5 * norm_b * e[2]
    norms = torch.tensor(
        [[[5 * norm_a, 5 * norm_a], [5 * norm_b, 5 * norm_b]]], dtype=torch.float64
    )
    meta = {
        "model_id": "hand",
        "n_layers_model": 1,
        "dataset_hash": "h0",
        "dataset": "hand-built",
        "n_sequences": 4,
        "group_sequences": {"a": 1, "b": 3},
    }
    return ActivationStats([0], ["a", "b"], [0, 1], count, s, norms, meta=meta)


def test_selected_group_reports_its_own_mean_norm():
    stats = two_groups()
    assert stats.mean_norm().item() == pytest.approx(50.5)
    a, b = stats.select_groups(["a"]), stats.select_groups(["b"])
    assert a.mean_norm().item() == pytest.approx(1.0)  # pooled sum / subset count gave 101
    assert b.mean_norm().item() == pytest.approx(100.0)
    axis = ValueAxis.fit(a)
    assert axis.resid_norm[0].item() == pytest.approx(1.0)
    torch.testing.assert_close(axis.directions[0], torch.tensor([-1.0, 1.0, 0.0]))


def test_mean_norm_by_label():
    stats = two_groups()
    stats.norm_sum[0, 0, 1] = 5 * 3.0  # group a's AFTER tokens now have norm 3
    assert stats.mean_norm([1]).item() == pytest.approx((15 + 500) / 10)
    assert stats.mean_norm([0]).item() == pytest.approx((5 + 500) / 10)
    assert stats.select_groups(["a"]).mean_norm([1]).item() == pytest.approx(3.0)
    with pytest.raises(InputError, match="label 7"):
        stats.mean_norm([7])


def test_selection_records_a_new_dataset_hash_and_sequence_count():
    stats = two_groups()
    a = stats.select_groups(["a"])
    assert a.meta["dataset_hash"] not in ("", "h0")
    assert a.meta["parent_dataset_hash"] == "h0"
    assert a.meta["n_sequences"] == 1 and stats.select_groups(["b"]).meta["n_sequences"] == 3
    assert a.meta["dataset_hash"] == stats.select_groups(["a"]).meta["dataset_hash"]
    assert a.meta["dataset_hash"] != stats.select_groups(["b"]).meta["dataset_hash"]
    # every group, in any order, is the same data
    assert stats.select_groups(["b", "a"]).meta["dataset_hash"] == "h0"
    assert ValueAxis.fit(a).dataset_hash == a.meta["dataset_hash"]
    assert stats.meta["dataset_hash"] == "h0"  # the parent is untouched
    with pytest.raises(InputError, match="repeat"):
        stats.select_groups(["a", "a"])  # would count group a twice


def test_norms_merge_by_group_name():
    x, y = two_groups(), two_groups(2.0, 7.0)
    y = y.select_groups(["b", "a"])  # other group order
    total = x + y
    order = [total.groups.index(g) for g in ("a", "b")]
    torch.testing.assert_close(
        total.norm_sum[0, order, 0], torch.tensor([5 + 10.0, 500 + 35.0], dtype=torch.float64)
    )
    assert total.select_groups(["a"]).mean_norm().item() == pytest.approx((10 + 20) / 20)
    assert total.meta["group_sequences"] == {"a": 2, "b": 6}


def test_bad_norm_shape_names_the_layout():
    # the run-time shape check (tests) refuses it first; untyped callers get the named layout
    init = inspect.unwrap(ActivationStats.__init__)
    with pytest.raises(InputError, match=r"norm_sum must be \[layers, groups, classes\]"):
        init(
            object.__new__(ActivationStats),
            [0],
            ["g"],
            [0],
            torch.tensor([[5]]),
            torch.zeros(1, 1, 1, 4),
            torch.ones(1),
        )


def test_save_load_keeps_per_group_norms(tmp_path):
    stats = two_groups()
    stats.save(tmp_path / "s.safetensors")
    back = ActivationStats.load(tmp_path / "s.safetensors")
    assert torch.equal(back.norm_sum, stats.norm_sum)
    assert back.select_groups(["a"]).mean_norm().item() == pytest.approx(1.0)
    assert "norm_sum_pooled" not in back.meta


def _legacy_artifact(path, stats: ActivationStats, moments: Moments | None = None) -> None:
    """An artifact as older versions wrote it: pooled ``norm_sum [L]``, no moments target."""
    t = {"count": stats.count, "sum": stats.sum, "norm_sum": stats.norm_sum.sum(dim=(1, 2))}
    if moments is not None:
        for name, v in zip(("n", "x", "y", "yy", "xy", "xx"), moments.tensors(), strict=True):
            t[f"moments.{name}"] = v
    meta = {
        "layers": stats.layers,
        "groups": stats.groups,
        "classes": stats.classes,
        "sample_k": None,
        "info": {k: v for k, v in stats.meta.items() if k != "group_sequences"},
    }
    save_artifact(path, t, kind="ActivationStats", meta=meta)


def test_legacy_artifact_loads_with_exact_pooled_norm_and_unknown_group_norms(tmp_path):
    stats = two_groups()
    _legacy_artifact(tmp_path / "old.safetensors", stats)
    old = ActivationStats.load(tmp_path / "old.safetensors")
    assert old.meta["norm_sum_pooled"] is True
    assert old.mean_norm().item() == pytest.approx(50.5)  # the pooled mean is still exact
    sub = old.select_groups(["a"])
    assert torch.isnan(sub.mean_norm()).all()  # unknown, not wrong
    axis = ValueAxis.fit(sub)
    assert torch.isnan(axis.resid_norm[0])
    assert old.select_groups(["b", "a"]).mean_norm().item() == pytest.approx(50.5)
    # the flag survives merging, so a later selection is not trusted either
    merged = old + two_groups()
    assert merged.meta["norm_sum_pooled"] is True
    assert torch.isnan(merged.select_groups(["a"]).mean_norm()).all()
    assert "n_sequences" not in merged.select_groups(["a"]).meta  # no per-group counts


def test_legacy_moments_refuse_ridge(tmp_path):
    stats = two_groups()
    z = torch.zeros
    mom = Moments(
        torch.tensor(20.0), z(1, 3), torch.tensor(10.0), torch.tensor(10.0), z(1, 3), z(1, 3, 3)
    )
    _legacy_artifact(tmp_path / "old.safetensors", stats, mom)
    old = ActivationStats.load(tmp_path / "old.safetensors")
    with pytest.raises(InputError, match="re-collect"):
        ValueAxis.fit(old, "ridge")
    new = ActivationStats.load(tmp_path / "old.safetensors")
    new.meta["moments_target"] = "after_vs_before"
    with pytest.raises(InputError, match="different regression targets"):
        old + new


def test_collected_group_norms_match_hf_hidden_states(tiny, tiny_hf):
    hf, _ = tiny_hf
    data = random_data(9, 300, seed=6)
    stats = collect_stats(tiny, data, layers=[0], batch_size=2, progress=False)
    # brute force: every labelled token's block-0 output norm, per group and label
    norms: dict[tuple[str, int], list[float]] = {}
    for ids, lab, grp in zip(data.input_ids, data.labels, data.groups, strict=True):
        n = hidden_states(hf, ids)[1][0].double().norm(dim=-1)
        for c in stats.classes:
            norms.setdefault((grp, c), []).extend(n[lab == c].tolist())
    for gi, g in enumerate(stats.groups):
        for ci, c in enumerate(stats.classes):
            assert stats.norm_sum[0, gi, ci].item() == pytest.approx(sum(norms[g, c]), rel=1e-5)
    for names in (["a"], ["c"], ["a", "c"]):
        sub = stats.select_groups(names)
        vals = [v for (g, _), vs in norms.items() if g in names for v in vs]
        ref = sum(vals) / len(vals)
        assert sub.mean_norm()[0].item() == pytest.approx(ref, rel=1e-5)
        assert ValueAxis.fit(sub).resid_norm[0].item() == pytest.approx(ref, rel=1e-5)
        assert sub.meta["dataset_hash"] != data.fingerprint()
        assert sub.meta["n_sequences"] == len(data.select_groups(names))
    after = [v for (_, c), vs in norms.items() if c == 1 for v in vs]
    assert stats.mean_norm([1])[0].item() == pytest.approx(sum(after) / len(after), rel=1e-5)
