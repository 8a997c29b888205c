"""layer_sweep: planted direction, exact split algebra vs an HF oracle, baselines, errors."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import torch

from value_lens.analysis.metrics import auroc, bootstrap_ci
from value_lens.analysis.sweep import (
    ClusterCI,
    SweepConfig,
    SweepResult,
    cosine_matrix,
    layer_sweep,
)
from value_lens.analysis.sweep.splits import split_weights
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError

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


def test_sweep_finds_planted_direction(sweep_result):
    _, sw = sweep_result
    df = sw.table
    assert list(df["layer"]) == [0, 1]
    assert (df["token_auroc_mean"] > 0.97).all()
    assert (df["function_score_mean"] == 1.0).all()
    # constructed so AFTER always follows BEFORE: position alone separates perfectly
    assert df["position_auroc"].iloc[0] > 0.9
    assert df["end_proximity_auroc"].iloc[0] > 0.9


def _hidden(hf, data, layer):
    """HF hidden states (fp64) of every sequence at our ``layer`` (= hidden_states[layer + 1])."""
    return [
        hf(ids[None], output_hidden_states=True).hidden_states[layer + 1][0].double()
        for ids in data.input_ids
    ]


@torch.no_grad()
def test_random_baseline_equals_brute_force_with_the_same_seed(sweep_result, tiny_hf, tiny):
    """Random unit directions drawn as the sweep draws them (torch seed, [L, n_random, d_model]),
    each oriented per split by the sign of its mean over training criteria of
    (mean AFTER - mean BEFORE) . r, then scored by cosine on the split's held-out tokens, from HF
    hidden states; each direction's mean over splits, then mean, sd and 95th percentile."""
    hf, _ = tiny_hf
    data, sw = sweep_result
    df = sw.table
    gen = torch.Generator().manual_seed(sw.config.seed)
    rand = torch.randn(2, 12, tiny.cfg.d_model, generator=gen, dtype=torch.float64)
    rand = rand / rand.norm(dim=-1, keepdim=True)[0]  # layer 0 is the first swept layer
    r0 = rand[0]
    hs = _hidden(hf, data, 0)
    per_split = []
    for rec in (r for r in sw.splits if r["layer"] == 0):
        train = rec["train_groups"]
        dots = []
        for g in train:
            seqs = [i for i, x in enumerate(data.groups) if x == g]
            h = torch.cat([hs[i] for i in seqs])
            lab = torch.cat([data.labels[i] for i in seqs])
            dots.append((h[lab == 1].mean(0) - h[lab == 0].mean(0)) @ r0.T)
        sign = torch.stack(dots).mean(0)
        held = [i for i, g in enumerate(data.groups) if g not in train]
        h = torch.cat([hs[i][data.labels[i] >= 0] for i in held])
        after = torch.cat([data.labels[i][data.labels[i] >= 0] == 1 for i in held])
        cos = (h @ r0.T) / h.norm(dim=-1, keepdim=True)
        per_split.append(
            [
                auroc(c[after], c[~after]) if sg >= 0 else 1 - auroc(c[after], c[~after])
                for c, sg in zip(cos.T, sign, strict=True)
            ]
        )
    per_dir = np.mean(per_split, axis=0)
    row = df.set_index("layer").loc[0]
    assert row["random_auroc_mean"] == pytest.approx(np.mean(per_dir), abs=1e-6)
    assert row["random_auroc_sd"] == pytest.approx(np.std(per_dir, ddof=1), abs=1e-6)
    assert row["random_auroc_p95"] == pytest.approx(np.quantile(per_dir, 0.95), abs=1e-6)


def _oracle_split(hf, data, layer, train, test):
    """Direct computation: HF hidden states, training-group mean diff, cosines on held-out."""
    hs = _hidden(hf, data, layer)
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
    return auroc(torch.cat(pos), torch.cat(neg)), wins


@torch.no_grad()
def test_split_algebra_matches_direct_computation(sweep_result, tiny_hf):
    hf, _ = tiny_hf
    data, sw = sweep_result
    groups = sw.groups
    # layer 0 only: HF's last hidden state (layer 1 here) is taken after the final norm
    for rec in [r for r in sw.splits if r["layer"] == 0]:
        train = rec["train_groups"]
        test = [g for g in groups if g not in train]
        tok, wins = _oracle_split(hf, data, rec["layer"], train, test)
        assert rec["token_auroc"] == pytest.approx(tok, abs=1e-6)
        assert rec["function_score"] == np.mean(wins)


def test_cosine_matrix_matches_fitted_axis(sweep_result, tiny):
    # HF's last hidden state is post-final-norm, so compare with the core's (oracle-tested) fit
    from value_lens import ValueAxis, collect_stats

    data, sw = sweep_result
    axis = ValueAxis.fit(collect_stats(tiny, data, progress=False))
    cm = cosine_matrix(sw)
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
    sw = layer_sweep(
        tiny,
        planted_data(),
        n_splits=2,
        n_train=4,
        method="pca_diff",
        layers=[1],
        n_random=4,
        progress=False,
    )
    df = sw.table
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
    sw = layer_sweep(tiny, data, n_splits=3, n_train=1, layers=[0], n_random=0, progress=False)
    df = sw.table
    pos_expected, end_expected = [], []
    by_group = {  # (positions, to_end) of AFTER and BEFORE tokens per group
        "a": (([3], [7]), ([1, 2], [9, 8])),
        "b": (([1], [3]), ([2, 3], [2, 1])),
        "c": (([2], [1]), ([1], [2])),  # no turn_end meta: one past the last labelled token
    }
    for rec in sw.splits:
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
    with pytest.raises(InputError, match="unknown sweep method"):  # untyped callers (CLI)
        inspect.unwrap(SweepConfig.__init__)(object.__new__(SweepConfig), method="ridg")
    from value_lens import collect_stats

    other = collect_stats(tiny, planted_data(seed=1), progress=False)
    with pytest.raises(InputError, match="different data"):
        layer_sweep(tiny, data, n_train=3, stats=other, progress=False)
    same = collect_stats(tiny, data, layers=[0], progress=False)
    with pytest.raises(InputError, match="lack layers"):
        layer_sweep(tiny, data, n_train=3, stats=same, progress=False)
    long = LabelledTokens.from_lists([[5] * 5000, [5, 6]], [[0] * 4999 + [1], [0, 1]], "ab")
    with pytest.raises(InputError, match="context"):
        layer_sweep(tiny, long, n_train=1, progress=False)


def unstructured_data(seed: int = 5, per_conversation: int = 1) -> LabelledTokens:
    """Random tokens (no planted direction, so scores sit strictly between 0 and 1); two
    conversations per criterion, each with ``per_conversation`` labelled sequences."""
    gen = torch.Generator().manual_seed(seed)
    ids, labs, groups, meta = [], [], [], []
    for g in range(N_GROUPS):
        for c in range(2):
            for _ in range(per_conversation):
                ids.append(torch.randint(5, 500, (14,), generator=gen))
                labs.append(torch.tensor([-1] * 2 + [0] * 6 + [1] * 6))
                groups.append(f"g{g}")
                meta.append({"conversation_id": f"g{g}__conv{c:02d}"})
    return LabelledTokens(ids, labs, groups, meta=meta)


@torch.no_grad()
def test_split_algebra_on_unstructured_data(tiny, tiny_hf):
    data = unstructured_data()
    sw = layer_sweep(tiny, data, n_splits=4, n_train=4, layers=[0], n_random=2, progress=False)
    df = sw.table
    hf, _ = tiny_hf
    fns, all_wins = [], []
    for rec in sw.splits:
        test = [g for g in sw.groups if g not in rec["train_groups"]]
        tok, wins = _oracle_split(hf, data, 0, rec["train_groups"], test)
        assert rec["token_auroc"] == pytest.approx(tok, abs=1e-6)
        assert rec["function_score"] == pytest.approx(np.mean(wins))
        fns.append(np.mean(wins))
        all_wins += wins
    assert 0 < np.mean(fns) < 1
    row = df.iloc[0]
    assert row["function_score_mean"] == pytest.approx(np.mean(fns))
    # two different sds: of the per-split fractions, and the released code's np.std (ddof=0)
    # over every (split x held-out criterion) 0/1 score
    assert row["function_score_sd_splits"] == pytest.approx(np.std(fns, ddof=1))
    assert row["function_score_sd_all_scores"] == pytest.approx(np.std(all_wins))
    assert np.std(fns, ddof=1) != pytest.approx(np.std(all_wins))
    assert "function_score_sd" not in df.columns  # the ambiguous name is gone


@torch.no_grad()
def test_explicit_train_sets_replace_the_random_splits(tiny, tiny_hf):
    data = unstructured_data()
    sets = [["g3", "g0"], ["g1", "g2", "g4", "g5", "g6"]]
    sw = layer_sweep(tiny, data, train_sets=sets, layers=[0], n_random=0, progress=False)
    df = sw.table
    hf, _ = tiny_hf
    recs = sw.splits
    assert [r["train_groups"] for r in recs] == [["g0", "g3"], ["g1", "g2", "g4", "g5", "g6"]]
    toks = []
    for rec in recs:
        test = [g for g in sw.groups if g not in rec["train_groups"]]
        tok, _ = _oracle_split(hf, data, 0, rec["train_groups"], test)
        assert rec["token_auroc"] == pytest.approx(tok, abs=1e-6)
        toks.append(tok)
    row = df.iloc[0]
    assert row["token_auroc_mean"] == pytest.approx(np.mean(toks), abs=1e-6)
    assert row["n_splits"] == 2 and row["n_train_groups"] == 3.5 and row["n_test_groups"] == 4.5


def test_train_sets_errors(tiny):
    data = unstructured_data()
    bad = [
        ([["g0", "nope"]], "unknown criteria \\['nope'\\]"),
        ([["g0", "g0"]], "twice"),
        ([[f"g{g}" for g in range(N_GROUPS)]], "holds none out"),
        ([[]], "non-empty"),
        (["g0"], "non-empty list of criterion names"),
        ([], "non-empty list"),
    ]
    for sets, msg in bad:
        with pytest.raises(InputError, match=msg):
            layer_sweep(tiny, data, train_sets=sets, layers=[0], progress=False)
    short = data.subset(range(1, len(data)))  # g0 keeps one sequence: 6 BEFORE tokens, others 12
    with pytest.raises(InputError, match="g0.*min_count"):
        layer_sweep(tiny, short, train_sets=[["g0"]], min_count=7, layers=[0], progress=False)


def _oracle_scores(hf, data, layer):
    """Per token (labelled BEFORE/AFTER): HF hidden state, after flag, group, conversation."""
    hs = _hidden(hf, data, layer)
    keep = [(lab == 0) | (lab == 1) for lab in data.labels]
    h = torch.cat([x[k] for x, k in zip(hs, keep, strict=True)])
    after = torch.cat([lab[k] == 1 for lab, k in zip(data.labels, keep, strict=True)]).numpy()
    group = np.concatenate([[g] * int(k.sum()) for g, k in zip(data.groups, keep, strict=True)])
    conv = np.concatenate(
        [[m["conversation_id"]] * int(k.sum()) for m, k in zip(data.meta, keep, strict=True)]
    )
    return hs, h, after, group, conv


def _oracle_mean_auroc(hs, h, after, group, data, splits, drop=None):
    """Mean over splits of the held-out AUROC, each split's direction refitted without the
    criterion ``drop`` and that criterion's tokens left out."""
    out = []
    for train in splits:
        tr = [g for g in train if g != drop]
        if not tr:
            continue
        diffs = {g: [] for g in tr}
        for x, lab, g in zip(hs, data.labels, data.groups, strict=True):
            if g in tr:
                diffs[g].append(x[lab == 1].mean(0) - x[lab == 0].mean(0))
        v = torch.stack([torch.stack(d).mean(0) for d in diffs.values()]).mean(0)
        cos = ((h @ v) / (h.norm(dim=-1) * v.norm())).numpy()
        held = ~np.isin(group, train) & (group != drop)
        if (held & after).any() and (held & ~after).any():
            out.append(auroc(cos[held & after], cos[held & ~after]))
    return np.mean(out)


@torch.no_grad()
def test_token_auroc_ci_is_a_leave_one_criterion_out_jackknife_with_refits(tiny, tiny_hf):
    """The sweep's default interval equals a brute-force jackknife over criteria from HF hidden
    states: each criterion left out of every split's training set (the direction refitted
    without it) and of its held-out tokens, t quantile on C - 1 degrees of freedom."""
    from value_lens.analysis.intervals import t_quantile

    data = unstructured_data(per_conversation=2)
    sw = layer_sweep(
        tiny,
        data,
        n_splits=3,
        n_train=5,
        layers=[0],
        n_random=0,
        seed=7,
        ci=ClusterCI(level=0.9),
        progress=False,
    )
    assert sw.ci["cluster"] == "group" and sw.ci["n_clusters"] == N_GROUPS
    hs, h, after, group, _ = _oracle_scores(tiny_hf[0], data, 0)
    splits = [r["train_groups"] for r in sw.splits]
    point = _oracle_mean_auroc(hs, h, after, group, data, splits)
    loo = np.array([_oracle_mean_auroc(hs, h, after, group, data, splits, g) for g in sw.groups])
    se = np.sqrt((len(loo) - 1) / len(loo) * ((loo - loo.mean()) ** 2).sum())
    half = t_quantile(0.95, len(loo) - 1) * se
    row = sw.table.iloc[0]
    assert row["token_auroc_mean"] == pytest.approx(point, abs=1e-6)
    assert row["token_auroc_ci_lo"] == pytest.approx(point - half, abs=1e-6)
    assert row["token_auroc_ci_hi"] == pytest.approx(point + half, abs=1e-6)


@torch.no_grad()
def test_conversation_clusters_keep_each_direction_and_leave_tokens_out(tiny, tiny_hf):
    """With conversations as the unit, the directions stay fixed and each conversation's tokens
    are left out: the interval is bootstrap_ci's cluster jackknife of the same statistic."""
    data = unstructured_data(per_conversation=2)
    sw = layer_sweep(
        tiny,
        data,
        n_splits=3,
        n_train=5,
        layers=[0],
        n_random=0,
        seed=7,
        ci=ClusterCI("conversation_id"),
        progress=False,
    )
    assert sw.ci["cluster"] == "conversation_id" and sw.ci["n_clusters"] == 2 * N_GROUPS
    hs, h, after, group, conv = _oracle_scores(tiny_hf[0], data, 0)
    arrays = []
    for rec in sw.splits:
        train = rec["train_groups"]
        hd = {g: [] for g in train}
        for x, lab, g in zip(hs, data.labels, data.groups, strict=True):
            if g in train:
                hd[g].append(x[lab == 1].mean(0) - x[lab == 0].mean(0))
        v = torch.stack([torch.stack(d).mean(0) for d in hd.values()]).mean(0)
        arrays += [((h @ v) / (h.norm(dim=-1) * v.norm())).numpy(), ~np.isin(group, train)]
    arrays.append(after)

    def mean_held_out_auroc(*cols):
        *pairs, yes = cols
        yes = yes.astype(bool)
        out = []
        for cos, held in zip(pairs[::2], pairs[1::2], strict=True):
            held = held.astype(bool)
            if (held & yes).any() and (held & ~yes).any():
                out.append(auroc(cos[held & yes], cos[held & ~yes]))
        return np.mean(out)

    lo, hi = bootstrap_ci(mean_held_out_auroc, *arrays, groups=conv, paired=True)
    row = sw.table.iloc[0]
    assert row["token_auroc_mean"] == pytest.approx(mean_held_out_auroc(*arrays), abs=1e-6)
    assert row["token_auroc_ci_lo"] == pytest.approx(lo, abs=1e-6)
    assert row["token_auroc_ci_hi"] == pytest.approx(hi, abs=1e-6)


def test_ci_clusters_fall_back_to_sequences_and_can_be_off(tiny):
    data = planted_data()  # no conversation_id in meta
    sw = layer_sweep(tiny, data, n_splits=2, n_train=5, layers=[0], n_random=0, progress=False)
    df = sw.table
    assert sw.ci["cluster"] == "group" and sw.ci["n_clusters"] == N_GROUPS
    lo, hi = df[["token_auroc_ci_lo", "token_auroc_ci_hi"]].iloc[0]
    assert lo <= df["token_auroc_mean"].iloc[0] <= hi
    conv_sw = layer_sweep(
        tiny,
        data,
        n_splits=2,
        n_train=5,
        layers=[0],
        n_random=0,
        ci=ClusterCI("conversation_id"),
        progress=False,
    )
    assert conv_sw.ci["cluster"] == "sequence" and conv_sw.ci["n_clusters"] == len(data)
    off_sw = layer_sweep(
        tiny, data, n_splits=2, n_train=5, layers=[0], n_random=0, ci=None, progress=False
    )
    off = off_sw.table
    assert off_sw.ci is None and off["token_auroc_ci_lo"].isna().all()
    data.meta[0]["conversation_id"] = "x"
    with pytest.raises(InputError, match="conversation_id"):
        layer_sweep(
            tiny,
            data,
            n_splits=2,
            n_train=5,
            layers=[0],
            ci=ClusterCI("conversation_id"),
            progress=False,
        )
    with pytest.raises(InputError, match="level"):
        ClusterCI(level=1.5)


class _CountSequences:
    """Counts the sequences run through the model's embedding (one per row of each batch)."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.embed.register_forward_hook(self._hook)

    def _hook(self, _module, _args, out):
        self.n += out.shape[0]


def test_forward_passes_one_or_two_whatever_the_splits(tiny, monkeypatch):
    """One pass over the data when the residuals fit, two when not, one with stats given."""
    import value_lens.analysis.sweep.prepare as P
    from value_lens import collect_stats

    data = planted_data()
    stats = collect_stats(tiny, data, layers=[0], progress=False)
    counter = _CountSequences(tiny)
    try:
        for n_splits in (1, 7):
            counter.n = 0
            layer_sweep(tiny, data, n_splits=n_splits, n_train=4, progress=False)
            assert counter.n == len(data)
            counter.n = 0
            layer_sweep(tiny, data, n_splits=n_splits, n_train=4, max_memory_gb=0, progress=False)
            assert counter.n == 2 * len(data)

        def no_collect(*_a, **_k):
            raise AssertionError("collect_stats must not run when stats= is given")

        monkeypatch.setattr(P, "collect_stats", no_collect)
        counter.n = 0
        layer_sweep(tiny, data, n_train=3, n_splits=2, layers=[0], stats=stats, progress=False)
        assert counter.n == len(data)
    finally:
        counter.handle.remove()


def test_single_pass_equals_two_pass(tiny):
    """Keeping the residuals (one forward pass) gives the same table as stats + projections."""
    data = planted_data()
    one_sw = layer_sweep(tiny, data, n_splits=3, n_train=4, n_random=4, progress=False)
    one = one_sw.table
    two_sw = layer_sweep(
        tiny, data, n_splits=3, n_train=4, n_random=4, progress=False, max_memory_gb=0
    )
    two = two_sw.table
    assert one_sw.groups == two_sw.groups
    # the shuffled-label null needs the residuals: the two-pass path leaves it NaN
    assert one["shuffled_auroc_mean"].notna().all() and two["shuffled_auroc_mean"].isna().all()
    cols = [c for c in one.columns if c != "shuffled_auroc_mean"]
    pd.testing.assert_frame_equal(one[cols], two[cols], check_exact=False, atol=1e-5, rtol=1e-5)


def test_sweep_result_carries_the_settings(tiny):
    """What df.attrs carried rides on the SweepResult: counts against a brute-force count of the
    labels, the splits' training sets, the bootstrap's clusters, the config; settings are JSON."""
    import json

    data = unstructured_data(per_conversation=2)
    cfg = SweepConfig(n_splits=2, n_train=3, seed=4, n_random=2, ci=ClusterCI(level=0.8))
    sw = layer_sweep(tiny, data, cfg, progress=False)
    assert isinstance(sw, SweepResult) and sw.config == cfg
    labels = torch.cat(data.labels)
    assert sw.n_tokens == int(((labels == 0) | (labels == 1)).sum()) == len(data) * 12
    assert sw.n_placebo_tokens == 0
    assert list(sw.layers) == [0, 1] == sw.table["layer"].tolist()
    assert list(sw.groups) == [f"g{g}" for g in range(N_GROUPS)]
    perms = [np.random.default_rng([4, s]).permutation(N_GROUPS)[:3] for s in range(2)]
    want = [[f"g{g}" for g in sorted(p)] for p in perms]
    assert [r["train_groups"] for r in sw.splits if r["layer"] == 0] == want
    assert dict(sw.ci) == {
        "cluster": "group",
        "level": 0.8,
        "n_clusters": N_GROUPS,
        "method": "leave-one-cluster-out jackknife, t on C-1 df",
    }
    assert set(sw.timings) == {
        "collect_s",
        "project_s",
        "refit_s",
        "collect_cpu_s",
        "project_cpu_s",
        "refit_cpu_s",
        "passes",
    }
    assert sw.timings["passes"] == 1
    st = json.loads(json.dumps(sw.settings))
    assert (st["n_splits"], st["n_train"], st["seed"], st["method"]) == (2, 3, 4, "mean_diff")
    assert st["ci"] == dict(sw.ci) and st["n_tokens"] == sw.n_tokens
    assert st["groups"] == list(sw.groups) and st["layers"] == [0, 1]
    t = sw.table
    assert sw.best_layer == int(t["layer"][t["token_auroc_mean"].to_numpy().argmax()])
    # keyword overrides are the same sweep as the config
    kw = layer_sweep(
        tiny,
        data,
        n_splits=2,
        n_train=3,
        seed=4,
        n_random=2,
        ci=ClusterCI(level=0.8),
        progress=False,
    )
    pd.testing.assert_frame_equal(kw.table, sw.table)
    with pytest.raises(InputError, match="n_split.*settings are"):
        layer_sweep(tiny, data, n_split=2, progress=False)
    with pytest.raises(InputError, match="not its table"):
        inspect.unwrap(cosine_matrix)(sw.table)  # untyped callers get the friendly error


def test_one_pass_statistics_equal_collect_stats_and_the_two_pass_sweep(tiny):
    """The one-pass path derives the statistics from the residuals it keeps: counts exactly,
    sums and norm sums to fp32 rounding of collect_stats; its table equals the two-pass one."""
    from value_lens import collect_stats

    gen = torch.Generator().manual_seed(3)
    ids, labs, groups = [], [], []
    for g in range(6):
        for _ in range(2):
            nb, na = (int(torch.randint(3, 8, (1,), generator=gen)) for _ in range(2))
            ids.append(torch.randint(20, 400, (nb + na + 4,), generator=gen))
            labs.append(torch.tensor([-1, -1] + [0] * nb + [2] + [1] * na + [-1]))
            groups.append(f"g{g}")
    data = LabelledTokens(ids, labs, groups)
    one = layer_sweep(tiny, data, n_splits=2, n_train=4, n_random=3, progress=False)
    two = layer_sweep(
        tiny, data, n_splits=2, n_train=4, n_random=3, progress=False, max_memory_gb=0
    )
    assert (one.timings["passes"], two.timings["passes"]) == (1, 2)
    ref = collect_stats(tiny, data, layers=[0, 1], progress=False)
    for got in (one.stats, two.stats):
        assert got.groups == ref.groups and got.classes == ref.classes == [0, 1, 2]
        assert torch.equal(got.count, ref.count)
        torch.testing.assert_close(got.sum, ref.sum, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(got.norm_sum, ref.norm_sum, rtol=1e-5, atol=1e-4)
        assert got.meta["dataset_hash"] == ref.meta["dataset_hash"]
    cols = [c for c in one.table.columns if c != "shuffled_auroc_mean"]  # NaN on two passes
    pd.testing.assert_frame_equal(one.table[cols], two.table[cols], atol=1e-5, rtol=1e-5)
