"""method="erased": LEACE erasure of position in the turn, then the mean difference.

Oracles: the constrained least-squares eraser written as an oblique projection with numpy
(tests/_moments.py::leace_oracle, a different formula from the whitening one the code uses),
and covariances measured directly on the erased token vectors.
"""

import numpy as np
import pytest
import torch
from _moments import leace_oracle, ledoit_wolf_oracle, mean_diff_oracle, stats_from_tokens

from value_lens import ValueAxis
from value_lens.errors import InputError
from value_lens.fitting.transforms import leace


def test_leace_closed_form_matches_the_oblique_projection_oracle():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 7)) @ rng.normal(size=(7, 7))
    z = np.stack([x[:, 0] + rng.normal(size=500), x[:, 2] * 0.3 + rng.normal(size=500)], 1)
    mu, q = leace_oracle(x, z)
    xc, zc = x - mu, z - z.mean(0)
    a, b = leace(torch.from_numpy(xc.T @ xc / 500), torch.from_numpy(xc.T @ zc / 500))
    got = x - (x - mu) @ b.numpy() @ a.numpy().T
    np.testing.assert_allclose(got, x - (x - mu) @ q.T, rtol=1e-9, atol=1e-9)
    # and the erased vectors have zero covariance with z
    ec = got - got.mean(0)
    assert np.abs(ec.T @ zc).max() < 1e-9 * np.abs(xc.T @ zc).max()


def test_leace_handles_a_singular_covariance_and_no_signal():
    cov = torch.diag(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64))
    cxz = torch.tensor([[1.0], [0.5], [0.0]], dtype=torch.float64)
    a, b = leace(cov, cxz)
    assert torch.allclose(cxz - a @ (b.T @ cxz), torch.zeros(3, 1, dtype=torch.float64), atol=1e-12)
    a0, b0 = leace(cov, torch.zeros(3, 1, dtype=torch.float64))  # nothing to erase
    assert torch.count_nonzero(a0) == 0 and torch.count_nonzero(b0) == 0


def turn_tokens(seed=0, d=12, n_turns=24):
    """Turns of 20-40 tokens; position in the turn leaks linearly into the residual (a drift
    along p1 with the tokens since the start, along p2 with log tokens to the end); AFTER tokens
    (after a cut) also carry a value shift v. Features: the four POSITION_FEATURES."""
    rng = np.random.default_rng(100)
    p1, p2, v = rng.normal(size=(3, d))
    rng = np.random.default_rng(seed)
    xs, labels, groups, feats = [], [], [], []
    for t in range(n_turns):
        n = int(rng.integers(20, 40))
        cut = int(rng.integers(n // 4, 3 * n // 4))
        off = rng.normal(size=d)
        for i in range(n):
            since, to_end = i, n - 1 - i
            lab = int(i > cut)
            x = off + 0.08 * since * p1 + 0.8 * np.log1p(to_end) * p2 + lab * v
            xs.append(x + rng.normal(size=d))
            labels.append(lab)
            groups.append(f"g{t % 4}")
            feats.append([since, to_end, np.log1p(since), np.log1p(to_end)])
    return np.array(xs), np.array(labels), np.array(groups), np.array(feats)


def _cov_with(p, z):
    return ((p - p.mean()) * (z - z.mean(0)).T).mean(1)


def test_erased_readout_has_zero_covariance_with_every_position_feature():
    x, labels, groups, z = turn_tokens()
    stats = stats_from_tokens(x, labels, groups, z=z)
    axis = ValueAxis.fit(stats, "erased")
    assert axis.fit_info["features"] == ["since_start", "to_end", "log_since_start", "log_to_end"]
    proj, _ = axis.read(torch.from_numpy(x), 0)
    raw = ValueAxis.fit(stats, "mean_diff").read(torch.from_numpy(x), 0)[0].numpy()
    # on the tokens it was fitted on: zero within fp64 round-off, where the plain mean
    # difference co-varies with position
    cov = _cov_with(proj.double().numpy(), z)
    cov_raw = _cov_with(raw, z)
    assert np.abs(cov / z.std(0)).max() < 1e-6 * np.abs(cov_raw / z.std(0)).max()
    assert np.abs(np.corrcoef(raw, z[:, 1])[0, 1]) > 0.3
    # on held-out turns (fresh draws): correlation within sampling noise of zero, the mean
    # difference's far outside it
    x2, _, _, z2 = turn_tokens(seed=1, n_turns=200)
    held = axis.read(torch.from_numpy(x2), 0)[0].double().numpy()
    held_raw = ValueAxis.fit(stats, "mean_diff").read(torch.from_numpy(x2), 0)[0].numpy()
    bound = 4 / np.sqrt(200)  # 4 standard errors, counting each turn (not token) as one unit
    for j in range(4):
        assert abs(np.corrcoef(held, z2[:, j])[0, 1]) < bound
    assert max(abs(np.corrcoef(held_raw, z2[:, j])[0, 1]) for j in range(4)) > 2 * bound


@pytest.mark.parametrize("shrinkage", ["ledoit_wolf", 0.0, 0.3])
def test_erased_direction_is_the_mean_difference_of_erased_tokens(shrinkage):
    """Against the oracle whitened by the covariance shrunk by the same rho (Ledoit-Wolf's
    computed token by token on the pooled-centred tokens)."""
    x, labels, groups, z = turn_tokens(2)
    axis = ValueAxis.fit(stats_from_tokens(x, labels, groups, z=z), "erased", shrinkage=shrinkage)
    rho = ledoit_wolf_oracle(x - x.mean(0)) if shrinkage == "ledoit_wolf" else shrinkage
    assert axis.fit_info["rho"][0] == pytest.approx(rho, rel=1e-8, abs=1e-12)
    mu, q = leace_oracle(x, z, rho)
    erased = x - (x - mu) @ q.T
    np.testing.assert_allclose(
        axis.directions[0].double().numpy(),
        mean_diff_oracle(erased, labels, groups),
        rtol=1e-4,
        atol=1e-5,
    )
    # the readout erases before projecting
    e = axis.readout.apply(torch.from_numpy(x[:3]), 0).numpy()
    np.testing.assert_allclose(e, erased[:3], rtol=1e-8, atol=1e-8)


def test_shrinkage_keeps_erasure_exact_with_fewer_tokens_than_dimensions():
    """60 tokens in 80 dimensions: the raw covariance is singular, the Ledoit-Wolf one is not,
    and the erased vectors still have zero covariance with the features."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 80))
    z = np.stack([x[:, 0] + rng.normal(size=60), rng.normal(size=60)], 1)
    labels = np.array([0, 1] * 30)
    axis = ValueAxis.fit(stats_from_tokens(x, labels, np.array(["a"] * 60), z=z), "erased")
    assert 0 < axis.fit_info["rho"][0] < 1
    e = axis.readout.apply(torch.from_numpy(x), 0).numpy()
    cov = (e - e.mean(0)).T @ (z - z.mean(0)) / 60
    assert np.abs(cov).max() < 1e-9
    with pytest.raises(InputError, match="shrinkage"):
        ValueAxis.fit(
            stats_from_tokens(x, labels, np.array(["a"] * 60), z=z), "erased", shrinkage="x"
        )


def test_erased_needs_the_position_moments():
    x, labels, groups, z = turn_tokens()
    with pytest.raises(InputError, match="position cross-moments"):
        ValueAxis.fit(stats_from_tokens(x, labels, groups), "erased")


def test_an_erased_axis_keeps_its_eraser_through_save_and_load(tmp_path):
    x, labels, groups, z = turn_tokens()
    axis = ValueAxis.fit(stats_from_tokens(x, labels, groups, z=z), "erased", n_layers=3)
    axis.save(tmp_path / "a.safetensors")
    back = ValueAxis.load(tmp_path / "a.safetensors")
    assert back.readout is not None and back.readout.features == axis.readout.features
    h = torch.from_numpy(x[:7])
    for a, b in zip(axis.read(h, 0), back.read(h, 0), strict=True):
        assert torch.equal(a, b)
    # scaling keeps the readout; adding an axis read another way is refused
    torch.testing.assert_close((2 * axis).read(h, 0)[1], axis.read(h, 0)[1])
    from value_lens.errors import AxisMismatchError

    with pytest.raises(AxisMismatchError, match="readout=None"):
        axis + axis.replace(readout=None)
