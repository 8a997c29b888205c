"""method="lda": shrinkage LDA from streamed per-group second moments.

The oracles work on the raw token vectors (tests/_moments.py): within-cell covariance by
centring every token on its own cell, Ledoit-Wolf's fourth-moment term token by token, and the
held-out likelihood with numpy's slogdet and solve.
"""

import numpy as np
import pytest
import torch
from _moments import cell_centred, ledoit_wolf_oracle, mean_diff_oracle, stats_from_tokens

from value_lens import ValueAxis
from value_lens.errors import InputError
from value_lens.fitting.methods import lda
from value_lens.fitting.methods.fit_lda import RHO_GRID
from value_lens.fitting.plan import CollectPlan


def gaussian_tokens(seed=0, n_groups=5, n_per=40, d=6, shift=1.0):
    """Anisotropic correlated Gaussians, per-group offsets, AFTER = BEFORE + a shift."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * np.linspace(0.3, 3.0, d)
    v = rng.normal(size=d)
    xs, labels, groups = [], [], []
    for g in range(n_groups):
        off = 2 * rng.normal(size=d)
        for lab in (0, 1):
            n = n_per + rng.integers(0, 1 + n_per // 4)
            xs.append(off + lab * shift * v + rng.normal(size=(n, d)) @ mix)
            labels += [lab] * n
            groups += [f"g{g}"] * n
    return np.concatenate(xs), np.array(labels), np.array(groups), v


def lda_oracle(x, labels, groups, rho):
    y = cell_centred(x, labels, groups)
    s = y.T @ y / len(y)
    m = np.trace(s) / s.shape[0]
    return np.linalg.solve(
        (1 - rho) * s + rho * m * np.eye(len(s)), mean_diff_oracle(x, labels, groups)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ledoit_wolf_lda_equals_the_closed_form(seed):
    x, labels, groups, _ = gaussian_tokens(seed)
    stats = stats_from_tokens(x, labels, groups)
    got, info = lda(stats)
    rho = ledoit_wolf_oracle(cell_centred(x, labels, groups))
    assert info["rho"][0] == pytest.approx(rho, rel=1e-8)
    assert 0 < rho < 1  # the shrinkage is doing something on these data
    np.testing.assert_allclose(
        got[0].double().numpy(), lda_oracle(x, labels, groups, rho), rtol=1e-5
    )
    m = np.trace(np.cov(cell_centred(x, labels, groups).T, bias=True)) / x.shape[1]
    assert info["lambda"][0] == pytest.approx(rho * m / (1 - rho), rel=1e-8)


def test_fixed_shrinkage_and_its_limits():
    x, labels, groups, _ = gaussian_tokens(3)
    stats = stats_from_tokens(x, labels, groups)
    for rho in (0.0, 0.3):
        got = lda(stats, shrinkage=rho)[0][0].double().numpy()
        np.testing.assert_allclose(got, lda_oracle(x, labels, groups, rho), rtol=1e-6)
    # full shrinkage: the covariance is a multiple of I, so LDA is the mean difference
    full = lda(stats, shrinkage=1.0)[0][0].double()
    cos = torch.nn.functional.cosine_similarity(
        full, torch.from_numpy(mean_diff_oracle(x, labels, groups)), dim=0
    )
    assert cos == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(InputError, match="shrinkage must be"):
        lda(stats, shrinkage=1.5)


def heldout_oracle(x, labels, groups):
    names = list(dict.fromkeys(groups.tolist()))
    folds = [names[i::5] for i in range(min(5, len(names)))]
    score = np.zeros(len(RHO_GRID))
    for test in folds:
        tr, te = ~np.isin(groups, test), np.isin(groups, test)
        ytr, yte = (
            cell_centred(x[tr], labels[tr], groups[tr]),
            cell_centred(x[te], labels[te], groups[te]),
        )
        s_tr, s_te = ytr.T @ ytr / len(ytr), yte.T @ yte / len(yte)
        m = np.trace(s_tr) / len(s_tr)
        for j, rho in enumerate(RHO_GRID.tolist()):
            sig = (1 - rho) * s_tr + rho * m * np.eye(len(s_tr))
            _, logdet = np.linalg.slogdet(sig)
            score[j] += -0.5 * len(yte) * (logdet + np.trace(np.linalg.solve(sig, s_te)))
    return float(RHO_GRID[int(np.argmax(score))])


@pytest.mark.parametrize(("n_per", "d"), [(40, 6), (6, 12)])
def test_heldout_likelihood_picks_the_grid_best(n_per, d):
    # few tokens per dimension (second case) need strong shrinkage; plenty need little
    x, labels, groups, _ = gaussian_tokens(4, n_groups=7, n_per=n_per, d=d)
    stats = stats_from_tokens(x, labels, groups)
    _, info = lda(stats, shrinkage="heldout")
    assert info["rho"][0] == pytest.approx(heldout_oracle(x, labels, groups), rel=1e-12)
    assert info["shrinkage"] == "heldout"


def test_heldout_shrinkage_grows_when_tokens_are_scarce():
    rich = lda(
        stats_from_tokens(*gaussian_tokens(5, n_groups=7, n_per=60, d=10)[:3]), shrinkage="heldout"
    )
    poor = lda(
        stats_from_tokens(*gaussian_tokens(5, n_groups=7, n_per=3, d=10)[:3]), shrinkage="heldout"
    )
    assert poor[1]["rho"][0] > 10 * rich[1]["rho"][0]


def massive_dimension_tokens(seed=0, d=16, n_per=150):
    """Unit noise except dimension 0 (sd 200), whose AFTER - BEFORE mean shift (about 30) is
    spurious; the planted direction v (orthogonal to dim 0, the same for every seed) shifts
    AFTER by 1."""
    v = np.random.default_rng(99).normal(size=d)
    rng = np.random.default_rng(seed)
    v[0] = 0.0
    v /= np.linalg.norm(v)
    sd = np.ones(d)
    sd[0] = 200.0
    xs, labels, groups = [], [], []
    for g in range(6):
        off = rng.normal(size=d)
        spurious = rng.normal(30, 5)
        for lab in (0, 1):
            x = off + rng.normal(size=(n_per, d)) * sd
            x[:, 0] += lab * spurious
            xs.append(x + lab * v)
            labels += [lab] * n_per
            groups += [f"g{g}"] * n_per
    return np.concatenate(xs), np.array(labels), np.array(groups), v


def test_lda_recovers_a_direction_hidden_under_a_massive_dimension():
    x, labels, groups, v = massive_dimension_tokens()
    stats = stats_from_tokens(x, labels, groups)
    true = torch.from_numpy(v).float()

    def cos(axis):
        return float(torch.nn.functional.cosine_similarity(axis.directions[0], true, dim=0))

    assert cos(ValueAxis.fit(stats, "lda")) > 0.9
    assert cos(ValueAxis.fit(stats, "lda", shrinkage="heldout")) > 0.9
    assert abs(cos(ValueAxis.fit(stats, "mean_diff"))) < 0.2  # the mean difference is fooled
    # and on fresh tokens the LDA axis separates AFTER from BEFORE where the mean difference
    # barely does
    x2, lab2, _, _ = massive_dimension_tokens(seed=1)
    for method, lo, hi in (("lda", 0.65, 1.0), ("mean_diff", 0.45, 0.58)):
        p = x2 @ ValueAxis.fit(stats, method).directions[0].double().numpy()
        auc = (p[lab2 == 1][:, None] > p[lab2 == 0][None]).mean()
        assert lo < auc < hi, (method, auc)


def test_lda_without_class_moments_names_the_fix():
    x, labels, groups, _ = gaussian_tokens(0)
    stats = stats_from_tokens(x, labels, groups)
    stats.class_moments = None
    with pytest.raises(InputError, match="per-group second moments.*needs\\('lda'\\)"):
        ValueAxis.fit(stats, "lda")


def test_memory_budget_is_stated_and_enforced(tiny, monkeypatch):
    plan = CollectPlan(class_moments=True)
    # Qwen3-8B shapes: 36 layers x 48 criteria x 2 labels x 4096^2 fp64
    with pytest.raises(
        InputError,
        match=r"need 432\.00 GiB.*36 layers x 48 groups x 2 labels.*4096\^2.*12\.00 GiB per layer",
    ):
        plan.check_memory(layers=36, groups=48, d_model=4096)
    CollectPlan(class_moments=True, max_moments_gb=13).check_memory(
        layers=1, groups=48, d_model=4096
    )
    CollectPlan().check_memory(layers=36, groups=48, d_model=4096)  # no class moments: no limit
    # collection refuses before any forward pass
    import value_lens.fitting.collect as collect
    from tests._oracle import random_data

    def no_forward(*_a, **_k):
        raise AssertionError("the model ran")

    monkeypatch.setattr(collect, "run_resid_hooks", no_forward)
    tiny_plan = CollectPlan(class_moments=True, max_moments_gb=1e-6)
    with pytest.raises(InputError, match="GiB"):
        collect.collect_stats(tiny, random_data(4, 300), plan=tiny_plan, progress=False)
