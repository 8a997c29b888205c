"""method="standardized" (z-scored mean difference, sinks zeroed) and method="mean_centred"."""

import numpy as np
import pytest
import torch
from _moments import stats_from_tokens

from value_lens import ValueAxis
from value_lens.errors import InputError
from value_lens.fitting.methods import mean_centred, standardized

SINKS = [3, 17]


def sink_tokens(seed=0, d=24, n_per=80):
    """Per-dimension sds between 0.5 and 1.5, dimension 9 at 6 (under 8x the median, kept) and
    the sink dimensions at 50 (zeroed); AFTER = BEFORE + a shift with a large component on the
    sinks."""
    rng = np.random.default_rng(seed)
    sd = rng.uniform(0.5, 1.5, size=d)
    sd[9] = 6.0
    sd[SINKS] = 50.0
    shift = rng.normal(size=d)
    shift[SINKS] = 40.0
    xs, labels, groups = [], [], []
    for g in range(4):
        off = rng.normal(size=d) * 0.1
        for lab in (0, 1):
            xs.append(off + lab * shift + rng.normal(size=(n_per, d)) * sd)
            labels += [lab] * n_per
            groups += [f"g{g}"] * n_per
    return np.concatenate(xs), np.array(labels), np.array(groups)


def test_standardized_zeroes_exactly_the_planted_sinks():
    x, labels, groups = sink_tokens()
    axis = ValueAxis.fit(stats_from_tokens(x, labels, groups), "standardized")
    assert axis.fit_info["sink_dims"] == [SINKS]
    assert axis.fit_info["sink_ratio"] == 8.0
    v = axis.directions[0]
    assert torch.all(v[SINKS] == 0)
    assert torch.all(v[[i for i in range(24) if i not in SINKS]] != 0)  # dim 9 (sd 6) kept
    # a lower threshold catches dimension 9 as well, and is recorded
    low = ValueAxis.fit(stats_from_tokens(x, labels, groups), "standardized", sink_ratio=4.0)
    assert low.fit_info["sink_dims"] == [[3, 9, 17]] and low.fit_info["sink_ratio"] == 4.0


def test_standardized_directions_by_hand():
    x, labels, groups = sink_tokens(1)
    axis = ValueAxis.fit(stats_from_tokens(x, labels, groups), "standardized")
    ab = np.isin(labels, [0, 1])
    mean, sd = x[ab].mean(0), x[ab].std(0)
    keep = sd <= 8 * np.median(sd)
    u = (
        np.mean(
            [
                (
                    x[(groups == g) & (labels == 1)].mean(0)
                    - x[(groups == g) & (labels == 0)].mean(0)
                )
                / sd
                for g in dict.fromkeys(groups.tolist())
            ],
            axis=0,
        )
        * keep
    )
    # the raw-space direction is sd * u (the mean difference, sinks zeroed) ...
    np.testing.assert_allclose(axis.directions[0].numpy(), sd * u, rtol=1e-5, atol=1e-6)
    # ... and the readout transform gives the standardised direction u and the z-scores
    ro = axis.readout
    np.testing.assert_allclose(
        ro.read_direction(axis.directions[0].double(), 0).numpy(), u, rtol=1e-5
    )
    h = torch.from_numpy(x[:5])
    z = ((x[:5] - mean) / sd) * keep
    np.testing.assert_allclose(ro.apply(h, 0).numpy(), z, rtol=1e-9, atol=1e-9)
    proj, cos = axis.read(h, 0)
    ref = z @ (u / np.linalg.norm(u))
    np.testing.assert_allclose(proj.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cos.numpy(), ref / np.linalg.norm(z, axis=1), rtol=1e-5, atol=1e-6)


def test_standardized_detects_where_the_sinks_hide_the_mean_difference():
    """The sinks shift by 40 between classes but with sd 50; the standardised readout ignores
    them and separates fresh tokens better than the raw mean difference."""
    x, labels, groups = sink_tokens(2)
    stats = stats_from_tokens(x, labels, groups)
    x2, lab2, _ = sink_tokens(3)
    aucs = {}
    for method in ("standardized", "mean_diff"):
        p = ValueAxis.fit(stats, method).read(torch.from_numpy(x2), 0)[0].numpy()
        aucs[method] = (p[lab2 == 1][:, None] > p[lab2 == 0][None]).mean()
    assert aucs["standardized"] > aucs["mean_diff"] + 0.02, aucs


def test_standardized_needs_squared_sums():
    x, labels, groups = sink_tokens()
    stats = stats_from_tokens(x, labels, groups)
    stats.sq_sum = None
    with pytest.raises(InputError, match="squares=True"):
        standardized(stats)
    with pytest.raises(InputError, match="sink_ratio"):
        standardized(stats_from_tokens(x, labels, groups), sink_ratio=0)


def test_mean_centred_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    labels = np.array([0, 1, 2] * 20)
    groups = np.array(["a"] * 30 + ["b"] * 30)
    stats = stats_from_tokens(x, labels, groups)
    v, info = mean_centred(stats)
    np.testing.assert_allclose(v[0].numpy(), x[labels == 1].mean(0) - x.mean(0), rtol=1e-5)
    assert info["reference"] == [0, 1, 2]
    v2, _ = mean_centred(stats, reference=[0, 1])
    ab = labels < 2
    np.testing.assert_allclose(v2[0].numpy(), x[labels == 1].mean(0) - x[ab].mean(0), rtol=1e-5)
    # restricted to one group, it uses that group's tokens only
    va, _ = mean_centred(stats.select_groups(["a"]))
    xa, la = x[:30], labels[:30]
    np.testing.assert_allclose(va[0].numpy(), xa[la == 1].mean(0) - xa.mean(0), rtol=1e-5)


def test_a_readout_of_another_shape_is_refused():
    from value_lens.fitting.transforms import Standardizer

    ro = Standardizer(torch.zeros(2, 4, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64))
    ValueAxis(torch.ones(2, 4), readout=ro)  # fits
    with pytest.raises(InputError, match="another axis or model"):
        ValueAxis(torch.ones(3, 4), readout=ro)
