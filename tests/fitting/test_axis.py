import numpy as np
import pytest
import torch

from value_lens import ValueAxis, collect_stats
from value_lens.errors import ArtifactError, AxisMismatchError, InputError, LayerError
from value_lens.fitting.stats import ActivationStats, Moments, Reservoir


def planted_stats(
    direction: torch.Tensor,
    *,
    n_groups=6,
    n_per=200,
    noise=1.0,
    seed=0,
    moments=False,
    k=0,
    offset_sd=3.0,
):
    """Synthetic stats where AFTER tokens = BEFORE tokens + the planted direction (plus noise)."""
    gen = torch.Generator().manual_seed(seed)
    d = direction.numel()
    count = torch.zeros(n_groups, 2, dtype=torch.long)
    sums = torch.zeros(1, n_groups, 2, d, dtype=torch.float64)
    norm_sum = torch.zeros(1, n_groups, 2, dtype=torch.float64)
    xs, ys = [], []
    for g in range(n_groups):
        offset = offset_sd * torch.randn(d, generator=gen)  # each group has its own baseline
        before = offset + noise * torch.randn(n_per, d, generator=gen)
        after = offset + direction + noise * torch.randn(n_per, d, generator=gen)
        sums[0, g, 0], sums[0, g, 1] = before.double().sum(0), after.double().sum(0)
        norm_sum[0, g, 0] = before.double().norm(dim=-1).sum()
        norm_sum[0, g, 1] = after.double().norm(dim=-1).sum()
        count[g] = n_per
        xs += [before, after]
        ys += [torch.zeros(n_per), torch.ones(n_per)]
    x, y = torch.cat(xs).double(), torch.cat(ys).double()
    mom = None
    if moments:
        mom = Moments(
            torch.tensor(float(len(y)), dtype=torch.float64),
            x.sum(0)[None],
            y.sum(),
            (y * y).sum(),
            (x.T @ y)[None],
            (x.T @ x)[None],
        )
    res = None
    if k:
        res = Reservoir(
            k,
            torch.rand(2, k, generator=gen).double(),
            torch.stack([torch.cat(xs[0::2])[:k], torch.cat(xs[1::2])[:k]])[None].float(),
        )
    return ActivationStats(
        [0],
        [f"g{i}" for i in range(n_groups)],
        [0, 1],
        count,
        sums,
        norm_sum,
        mom,
        res,
        {"model_id": "synthetic", "n_layers_model": 1},
    ), x


@pytest.mark.parametrize("method", ["mean_diff", "pca_diff", "ridge", "logistic"])
def test_every_method_recovers_a_planted_direction(method):
    torch.manual_seed(0)
    v = torch.randn(16)
    v = 2.0 * v / v.norm()
    # group offsets make the pooled covariance anisotropic: the discriminative methods (ridge,
    # logistic) then rightly tilt away from the mean difference, so they get isotropic data
    offset_sd = 3.0 if method in {"mean_diff", "pca_diff"} else 0.0
    stats, _ = planted_stats(v, moments=True, k=300, offset_sd=offset_sd)
    axis = ValueAxis.fit(stats, method)
    cos = torch.nn.functional.cosine_similarity(axis.directions[0], v, dim=0)
    assert cos > 0.95, f"{method}: cos={cos:.3f}"
    if method == "mean_diff":
        torch.testing.assert_close(axis.directions[0], v, atol=0.15, rtol=0)


@pytest.mark.parametrize("moments", [True, False])
def test_fit_records_the_datas_mean_norm_and_projection_sd(moments):
    v = torch.tensor([3.0, 0.0, 4.0, 0.0, 1.0])
    stats, x = planted_stats(v, n_groups=3, n_per=50, moments=moments, offset_sd=2.0)
    axis = ValueAxis.fit(stats)
    # oracles straight from the planted token vectors, not from the stats
    assert axis.resid_norm[0].item() == pytest.approx(x.norm(dim=-1).mean().item(), rel=1e-6)
    if moments:
        u = axis.directions[0].double() / axis.directions[0].double().norm()
        sd = (x @ u).std(unbiased=False).item()
        assert axis.proj_std[0].item() == pytest.approx(sd, rel=1e-5)
    else:  # no moments: the sd is unknown, not made up
        assert torch.isnan(axis.proj_std[0])


def test_fit_errors():
    stats, _ = planted_stats(torch.ones(4))
    with pytest.raises(InputError, match="unknown fit method"):
        ValueAxis.fit(stats, "magic")
    with pytest.raises(InputError, match="moments=True"):
        ValueAxis.fit(stats, "ridge")
    with pytest.raises(InputError, match="sample_per_class"):
        ValueAxis.fit(stats, "logistic")
    one_class = ActivationStats(
        [0], ["g"], [0], torch.tensor([[5]]), torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1)
    )
    with pytest.raises(InputError, match="label 1"):
        ValueAxis.fit(one_class)


def test_proj_std_from_moments():
    v = torch.tensor([1.0, 0, 0, 0])
    stats, _ = planted_stats(v * 4, noise=0.5, moments=True)
    axis = ValueAxis.fit(stats)
    # projection on the unit direction: group offsets (sd 3) + label shift (4 * Bernoulli) + noise
    assert 2.0 < axis.proj_std[0] < 5.0


def test_algebra_and_cosine():
    a = ValueAxis(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), model_id="m")
    b = ValueAxis(torch.tensor([[0.0, 1.0], [0.0, -1.0]]), model_id="m")
    assert torch.equal((a + b).directions, torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    assert torch.equal((a - b).directions, torch.tensor([[1.0, -1.0], [0.0, 3.0]]))
    assert torch.equal((-a).directions, -a.directions)
    assert torch.equal((2 * a).directions, (a * 2).directions)
    assert torch.equal((a / 2).directions, a.directions / 2)
    torch.testing.assert_close(a.cosine(b), torch.tensor([0.0, -1.0]))
    torch.testing.assert_close(a.unit().directions.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(a.layer_cosine_matrix(), torch.eye(2))
    with pytest.raises(AxisMismatchError):
        a + ValueAxis(torch.zeros(3, 2))


def test_unfitted_layers_raise():
    axis = ValueAxis(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), layers=(0,))
    assert torch.isnan(axis.cosine(axis)[1])
    with pytest.raises(LayerError, match="no fitted direction"):
        axis.direction(1)
    with pytest.raises(LayerError, match="out of range"):
        axis.direction(2)
    with pytest.raises(InputError, match="NaN"):
        ValueAxis(torch.tensor([[float("nan"), 0.0]]))


def test_save_load_round_trip_is_bit_exact(tmp_path, tiny):
    from tests._oracle import random_data

    stats = collect_stats(tiny, random_data(6, 300), progress=False, moments=True)
    axis = ValueAxis.fit(stats)
    path = axis.save(tmp_path / "axis.safetensors")
    back = ValueAxis.load(path)
    assert torch.equal(back.directions, axis.directions)
    assert torch.equal(back.resid_norm, axis.resid_norm) and torch.equal(
        back.proj_std, axis.proj_std
    )
    for f in (
        "layers",
        "model_id",
        "method",
        "hook",
        "convention",
        "dataset_hash",
        "fit_info",
        "library_version",
    ):
        assert getattr(back, f) == getattr(axis, f), f
    assert back.hook == "blocks.{layer}.hook_resid_post" and back.convention == "block_output"
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(ArtifactError):
        ValueAxis.load(path)
    with pytest.raises(ArtifactError, match="from_official"):
        ValueAxis.load(tmp_path / "value_axis.npy")


def test_check_compatible(tiny):
    ValueAxis(torch.zeros(2, 64), model_id=tiny.cfg.model_name).check_compatible(tiny)
    with pytest.raises(AxisMismatchError, match="d_model 32"):
        ValueAxis(torch.zeros(2, 32)).check_compatible(tiny)
    with pytest.raises(AxisMismatchError, match="3 layers"):
        ValueAxis(torch.zeros(3, 64)).check_compatible(tiny)
    with pytest.raises(AxisMismatchError, match="fitted on 'other/model'"):
        ValueAxis(torch.zeros(2, 64), model_id="other/model").check_compatible(tiny)
    ValueAxis(torch.zeros(2, 64), model_id="other/model").check_compatible(
        tiny, check_model_id=False
    )


def test_from_official_maps_hidden_states_rows(tmp_path, tiny):
    n, d = tiny.cfg.n_layers, tiny.cfg.d_model
    arr = np.stack([np.full(d, float(k)) for k in range(n + 1)])  # row k holds the value k
    np.save(tmp_path / "value_axis.npy", arr)
    axis = ValueAxis.from_official(tmp_path / "value_axis.npy", tiny)
    assert axis.layers == tuple(range(n - 1))  # post-norm last row dropped
    assert axis.directions[0, 0] == 1.0  # hidden_states[1] -> block 0
    assert axis.model_id == tiny.cfg.model_name
    keep = ValueAxis.from_official(tmp_path / "value_axis.npy", tiny, last_row="keep")
    assert keep.layers == tuple(range(n)) and keep.directions[n - 1, 0] == float(n)
    assert keep.fit_info["last_row"] == "keep"
    np.save(tmp_path / "bad.npy", arr[:-1])
    with pytest.raises(AxisMismatchError, match="another model"):
        ValueAxis.from_official(tmp_path / "bad.npy", tiny)


def test_from_official_qwen3_8b_shape(tmp_path):
    arr = np.random.default_rng(0).normal(size=(37, 4096))
    np.save(tmp_path / "value_axis.npy", arr)
    axis = ValueAxis.from_official(tmp_path / "value_axis.npy", n_layers=36, d_model=4096)
    np.testing.assert_allclose(axis.directions[20].numpy(), arr[21].astype(np.float32))  # paper L21
    assert axis.model_id == "Qwen/Qwen3-8B" and 35 not in axis.layers


def _closed_form_ridge(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Ridge on centred data: (Xc'Xc/n + lam I)^-1 Xc'yc/n, lam = alpha * mean variance."""
    xc, yc = x - x.mean(0), y - y.mean()
    cov = xc.T @ xc / len(y)
    lam = alpha * torch.trace(cov) / x.shape[1]
    return torch.linalg.solve(cov + lam * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ yc / len(y))


@pytest.mark.parametrize("with_targets", [False, True])
def test_ridge_equals_closed_form_on_hf_hidden_states(tiny, tiny_hf, with_targets):
    from tests._oracle import hidden_states, random_data

    hf, _ = tiny_hf
    data = random_data(12, 300, seed=4)
    if with_targets:  # explicit targets win: a float per token, NaN (left out) on a third of them
        gen = torch.Generator().manual_seed(1)
        data.targets = []
        for lab in data.labels:
            t = torch.randn(lab.numel(), generator=gen)
            t[torch.rand(lab.numel(), generator=gen) < 1 / 3] = float("nan")
            data.targets.append(t)
    stats = collect_stats(tiny, data, layers=[0], batch_size=4, moments=True, progress=False)
    axis = ValueAxis.fit(stats, "ridge", alpha=0.05)
    xs, ys = [], []
    for i, (ids, lab) in enumerate(zip(data.input_ids, data.labels, strict=True)):
        h = hidden_states(hf, ids)[1][0].double()  # block 0 output
        if with_targets:
            t = data.targets[i].double()
            keep = (lab >= 0) & torch.isfinite(t)
            y = t[keep]
        else:  # AFTER = 1 vs BEFORE = 0; REWARD (2) and IGNORE tokens left out
            keep = (lab == 0) | (lab == 1)
            y = (lab[keep] == 1).double()
        xs.append(h[keep])
        ys.append(y)
    x, y = torch.cat(xs), torch.cat(ys)
    ref = _closed_form_ridge(x, y, 0.05)
    got = axis.directions[0].double()
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3 * ref.abs().max().item())
    assert axis.fit_info["n_tokens"] == len(y)
    assert axis.fit_info["target"] == ("targets" if with_targets else "after_vs_before")
    # the projection sd comes from the same tokens as the regression
    u = got / got.norm()
    assert axis.proj_std[0].item() == pytest.approx((x @ u).std(unbiased=False).item(), rel=1e-4)
