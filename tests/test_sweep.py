"""layer_sweep: planted direction, exact split algebra vs an HF oracle, baselines, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from value_lens.errors import InputError
from value_lens.metrics import auroc
from value_lens.sweep import cosine_matrix, layer_sweep, split_weights
from value_lens.tokens import LabelledTokens

N_GROUPS = 8


def planted_data(seed: int = 0, n_per_group: int = 2) -> LabelledTokens:
    """BEFORE tokens drawn from ids 20..22 and AFTER tokens from ids 300..302.

    The AFTER/BEFORE contrast is then a property of the token sets (the 'planted direction'),
    shared by every group, so held-out groups must be separable by the training direction.
    """
    gen = torch.Generator().manual_seed(seed)
    ids, labs, groups, meta = [], [], [], []
    for g in range(N_GROUPS):
        for _ in range(n_per_group):
            nb, na = (int(torch.randint(4, 9, (1,), generator=gen)) for _ in range(2))
            before = torch.randint(20, 23, (nb,), generator=gen)
            after = torch.randint(300, 303, (na,), generator=gen)
            head = torch.randint(100, 200, (3,), generator=gen)
            tail = torch.randint(100, 200, (2,), generator=gen)
            ids.append(torch.cat([head, before, after, tail]))
            labs.append(torch.tensor([-1] * 3 + [0] * nb + [1] * na + [-1] * 2))
            groups.append(f"crit{g}")
            meta.append({"turn_end": 3 + nb + na + 2})
    return LabelledTokens(ids, labs, groups, meta=meta)


@pytest.fixture(scope="module")
def sweep_result(tiny):
    data = planted_data()
    return data, layer_sweep(tiny, data, n_splits=3, n_train=5, n_random=12, progress=False)


def test_sweep_finds_planted_direction_and_random_is_chance(sweep_result):
    _, df = sweep_result
    assert list(df["layer"]) == [0, 1]
    assert (df["token_auroc_mean"] > 0.97).all()
    assert (df["function_score_mean"] == 1.0).all()
    assert (df["random_auroc_mean"] - 0.5).abs().max() < 0.15
    assert (df["random_auroc_sd"] > 0).all()
    # constructed so AFTER always follows BEFORE: position alone separates perfectly
    assert df["position_auroc"].iloc[0] > 0.9
    assert df["end_proximity_auroc"].iloc[0] > 0.9


def _oracle_split(hf, data, layer, train, test):
    """Direct computation: HF hidden states, training-group mean diff, cosines on held-out."""
    hs = [hf(ids[None], output_hidden_states=True).hidden_states[layer + 1][0].double()
          for ids in data.input_ids]  # fmt: skip
    diffs = []
    for g in train:
        a = torch.cat(
            [
                h[lab == 1]
                for h, lab, grp in zip(hs, data.labels, data.groups, strict=True)
                if grp == g
            ]
        )
        b = torch.cat(
            [
                h[lab == 0]
                for h, lab, grp in zip(hs, data.labels, data.groups, strict=True)
                if grp == g
            ]
        )
        diffs.append(a.mean(0) - b.mean(0))
    v = torch.stack(diffs).mean(0)
    pos, neg, wins = [], [], []
    for g in test:
        ca, cb, ha, hb = [], [], [], []
        for h, lab, grp in zip(hs, data.labels, data.groups, strict=True):
            if grp != g:
                continue
            cos = (h @ v) / (h.norm(dim=-1) * v.norm())
            ca.append(cos[lab == 1])
            cb.append(cos[lab == 0])
            ha.append(h[lab == 1])
            hb.append(h[lab == 0])
        pos.append(torch.cat(ca))
        neg.append(torch.cat(cb))
        # the released metric: does the AFTER-mean vector project above the BEFORE-mean one?
        wins.append(float(torch.cat(ha).mean(0) @ v > torch.cat(hb).mean(0) @ v))
    return auroc(torch.cat(pos), torch.cat(neg)), float(np.mean(wins))


@torch.no_grad()
def test_split_algebra_matches_direct_computation(sweep_result, tiny_hf):
    hf, _ = tiny_hf
    data, df = sweep_result
    groups = df.attrs["groups"]
    # layer 0 only: HF's last hidden state (layer 1 here) is taken after the final norm
    for rec in [r for r in df.attrs["splits"] if r["layer"] == 0]:
        train = rec["train_groups"]
        test = [g for g in groups if g not in train]
        tok, fn = _oracle_split(hf, data, rec["layer"], train, test)
        assert rec["token_auroc"] == pytest.approx(tok, abs=1e-6)
        assert rec["function_score"] == fn


def test_cosine_matrix_matches_fitted_axis(sweep_result, tiny):
    # HF's last hidden state is post-final-norm, so compare with the core's (oracle-tested) fit
    from value_lens import ValueAxis, collect_stats

    data, df = sweep_result
    axis = ValueAxis.fit(collect_stats(tiny, data, progress=False))
    cm = cosine_matrix(df)
    assert np.allclose(cm.to_numpy(), axis.layer_cosine_matrix().numpy(), atol=1e-5)
    assert cm.loc[0, 0] == pytest.approx(1.0)


def test_pca_weights_give_top_singular_direction():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(6, 20)) + 2.0
    train = np.array([0, 2, 3, 5])
    w = split_weights(d @ d.T, train, "pca_diff")
    v = w @ d
    _, _, vh = np.linalg.svd(d[train], full_matrices=False)
    top = vh[0] * np.sign(vh[0] @ d[train].mean(0))
    assert np.allclose(v / np.linalg.norm(v), top, atol=1e-8)
    assert np.allclose(split_weights(d @ d.T, train, "mean_diff")[train], 0.25)


def test_pca_sweep_runs(tiny):
    df = layer_sweep(tiny, planted_data(), n_splits=2, n_train=4, method="pca_diff",
                     layers=[1], n_random=4, progress=False)  # fmt: skip
    assert df["token_auroc_mean"].iloc[0] > 0.9


def test_position_controls_on_constructed_data(tiny):
    # two groups; seq A: BEFORE at 1,2 AFTER at 3 (turn ends at 10);
    # seq B: AFTER at 1 and BEFORE at 2,3 (turn ends at 4)
    data = LabelledTokens.from_lists(
        [[5, 6, 7, 8], [5, 6, 7, 8], [9, 9, 9, 9]],
        [[-1, 0, 0, 1], [-1, 1, 0, 0], [-1, 0, 1, -1]],
        ["a", "b", "c"],
        meta=[{"turn_end": 10}, {"turn_end": 4}, {}],
    )
    df = layer_sweep(tiny, data, n_splits=3, n_train=1, layers=[0], n_random=0, progress=False)
    pos_expected, end_expected = [], []
    by_group = {  # (positions, to_end) of AFTER and BEFORE tokens per group
        "a": (([3], [7]), ([1, 2], [9, 8])),
        "b": (([1], [3]), ([2, 3], [2, 1])),
        "c": (([2], [1]), ([1], [2])),  # no turn_end meta: one past the last labelled token
    }
    for rec in df.attrs["splits"]:
        test = [g for g in "abc" if g not in rec["train_groups"]]
        ap = sum((by_group[g][0][0] for g in test), [])
        bp = sum((by_group[g][1][0] for g in test), [])
        ae = sum((by_group[g][0][1] for g in test), [])
        be = sum((by_group[g][1][1] for g in test), [])
        pos_expected.append(auroc(ap, bp))
        end_expected.append(auroc([-x for x in ae], [-x for x in be]))
    assert df["position_auroc"].iloc[0] == pytest.approx(np.mean(pos_expected))
    assert df["end_proximity_auroc"].iloc[0] == pytest.approx(np.mean(end_expected))
    assert np.isnan(df["random_auroc_mean"].iloc[0])


def test_sweep_errors(tiny):
    data = planted_data()
    with pytest.raises(InputError, match="too few criteria"):
        layer_sweep(tiny, data, n_train=N_GROUPS, progress=False)
    one = LabelledTokens.from_lists([[5, 6, 7]] * 3, [[-1, 0, 0]] * 3, "abc")
    with pytest.raises(InputError, match="one class"):
        layer_sweep(tiny, one, n_train=1, progress=False)
    with pytest.raises(InputError, match="supports methods"):
        layer_sweep(tiny, data, method="ridge", progress=False)
    from value_lens import collect_stats

    other = collect_stats(tiny, planted_data(seed=1), progress=False)
    with pytest.raises(InputError, match="different data"):
        layer_sweep(tiny, data, n_train=3, stats=other, progress=False)
    same = collect_stats(tiny, data, layers=[0], progress=False)
    with pytest.raises(InputError, match="lack layers"):
        layer_sweep(tiny, data, n_train=3, stats=same, progress=False)
    df = layer_sweep(tiny, data, n_train=3, n_splits=2, layers=[0], stats=same, progress=False)
    assert df.attrs["timings"]["collect_s"] < 0.5
    long = LabelledTokens.from_lists([[5] * 5000, [5, 6]], [[0] * 4999 + [1], [0, 1]], "ab")
    with pytest.raises(InputError, match="context"):
        layer_sweep(tiny, long, n_train=1, progress=False)


@torch.no_grad()
def test_split_algebra_on_unstructured_data(tiny, tiny_hf):
    # random tokens: no planted direction, so scores sit strictly between 0 and 1
    gen = torch.Generator().manual_seed(5)
    ids, labs, groups = [], [], []
    for g in range(N_GROUPS):
        for _ in range(2):
            ids.append(torch.randint(5, 500, (14,), generator=gen))
            labs.append(torch.tensor([-1] * 2 + [0] * 6 + [1] * 6))
            groups.append(f"g{g}")
    data = LabelledTokens(ids, labs, groups)
    df = layer_sweep(tiny, data, n_splits=4, n_train=4, layers=[0], n_random=2, progress=False)
    hf, _ = tiny_hf
    fns = []
    for rec in df.attrs["splits"]:
        test = [g for g in df.attrs["groups"] if g not in rec["train_groups"]]
        tok, fn = _oracle_split(hf, data, 0, rec["train_groups"], test)
        assert rec["token_auroc"] == pytest.approx(tok, abs=1e-6)
        assert rec["function_score"] == pytest.approx(fn)
        fns.append(fn)
    assert 0 < np.mean(fns) < 1


def test_single_pass_equals_two_pass(tiny):
    """Keeping the residuals (one forward pass) gives the same table as stats + projections."""
    data = planted_data()
    one = layer_sweep(tiny, data, n_splits=3, n_train=4, n_random=4, progress=False)
    two = layer_sweep(
        tiny, data, n_splits=3, n_train=4, n_random=4, progress=False, max_memory_gb=0
    )
    assert one.attrs["groups"] == two.attrs["groups"]
    pd.testing.assert_frame_equal(one, two, check_exact=False, atol=1e-5, rtol=1e-5)
    assert one.attrs["timings"]["project_s"] == 0.0 and two.attrs["timings"]["project_s"] > 0
