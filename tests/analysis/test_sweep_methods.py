"""layer_sweep with any registered method: the per-split refits of methods outside the span of the
groups' differences (value_lens.analysis.sweep.explicit), against the span path and an HF oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests._oracle import shifted_after_data
from value_lens.analysis.metrics import auroc
from value_lens.analysis.sweep import SweepConfig, layer_sweep
from value_lens.analysis.sweep.explicit import readout_line
from value_lens.errors import InputError
from value_lens.fitting.methods import Fitter, register_fitter, unregister_fitter
from value_lens.fitting.transforms import LeaceEraser, Standardizer

N_GROUPS = 6


_data = shifted_after_data


def _explicit_mean_diff(stats):
    """The paper's mean difference, written as a plain fit (no sweep weights)."""
    diffs, groups = stats.group_diffs(1, 0)
    return diffs.mean(dim=1).float(), {"groups": groups}


CENTER = torch.linspace(-0.3, 0.4, 64, dtype=torch.float64)
SCALE = torch.linspace(0.5, 2.0, 64, dtype=torch.float64)


def _standardised_mean_diff(stats):
    diffs, groups = stats.group_diffs(1, 0)
    n = len(stats.layers)
    return (
        diffs.mean(dim=1).float(),
        {"groups": groups},
        Standardizer(CENTER.expand(n, -1).clone(), SCALE.expand(n, -1).clone()),
    )


@pytest.fixture
def registered():
    names = []

    def add(fn, name):
        register_fitter(Fitter(name, fn))
        names.append(name)

    yield add
    for n in names:
        unregister_fitter(n)


def test_refitted_mean_difference_equals_the_span_path(tiny, registered):
    """A mean difference fitted per split by the fitter (and once more without each training
    criterion for the jackknife) gives the span path's table: every AUROC, interval,
    discontinuity, function score and the cosine matrix."""
    registered(_explicit_mean_diff, "_t_explicit_mean")
    data = _data()
    kw = {"n_splits": 3, "n_train": 4, "n_random": 4, "progress": False, "max_memory_gb": 0}
    span = layer_sweep(tiny, data, method="mean_diff", **kw)
    refit = layer_sweep(tiny, data, method="_t_explicit_mean", **kw)
    assert refit.timings["passes"] == 2
    cols = [c for c in span.table.columns if c != "shuffled_auroc_mean"]
    assert span.table["token_auroc_ci_lo"].notna().all()
    pd.testing.assert_frame_equal(
        span.table[cols], refit.table[cols], check_exact=False, atol=1e-6, rtol=1e-6
    )
    np.testing.assert_allclose(span.cosine, refit.cosine, atol=1e-6)


def _hidden(hf, data, layer):
    return [
        hf(ids[None], output_hidden_states=True).hidden_states[layer + 1][0].double()
        for ids in data.input_ids
    ]


@torch.no_grad()
def test_a_transformed_readout_scores_as_an_hf_oracle(tiny, tiny_hf, registered):
    """A method read through a transform (z-scores with a known centre and scale) is scored as
    ``T(h) . (v / scale) / ||h||`` on held-out criteria: equal to a brute-force computation from
    HF hidden states, split by split."""
    registered(_standardised_mean_diff, "_t_standardised")
    data = _data(4)
    sw = layer_sweep(
        tiny, data, method="_t_standardised", n_splits=3, n_train=3, n_random=0,
        layers=[0], ci=None, progress=False,
    )  # fmt: skip
    hs = _hidden(tiny_hf[0], data, 0)
    aucs = []
    for rec in sw.splits:
        train = rec["train_groups"]
        d = [
            torch.stack(
                [x[lab == 1].mean(0) - x[lab == 0].mean(0)
                 for x, lab, g in zip(hs, data.labels, data.groups, strict=True) if g == name]
            ).mean(0)
            for name in train
        ]  # fmt: skip
        v = torch.stack(d).mean(0)
        pos, neg = [], []
        for x, lab, g in zip(hs, data.labels, data.groups, strict=True):
            if g in train:
                continue
            score = (((x - CENTER) / SCALE) @ (v / SCALE)) / x.norm(dim=-1)
            pos.append(score[lab == 1])
            neg.append(score[lab == 0])
        aucs.append(auroc(torch.cat(pos).numpy(), torch.cat(neg).numpy()))
        assert rec["token_auroc"] == pytest.approx(aucs[-1], abs=1e-6)
    assert sw.table["token_auroc_mean"].iloc[0] == pytest.approx(np.mean(aucs), abs=1e-6)


def test_readout_line_is_the_affine_readout():
    gen = torch.Generator().manual_seed(0)
    d, n = 5, 7
    h = torch.randn(n, d, generator=gen, dtype=torch.float64)
    v = torch.randn(d, generator=gen, dtype=torch.float64)
    a = torch.randn(1, d, 2, generator=gen, dtype=torch.float64)
    b = torch.randn(1, d, 2, generator=gen, dtype=torch.float64)
    mean = torch.randn(1, d, generator=gen, dtype=torch.float64)
    scale = torch.rand(1, d, generator=gen, dtype=torch.float64) + 0.5
    for t in (LeaceEraser(mean, a, b), Standardizer(mean, scale)):
        u, c = readout_line(v, t, 0)
        want = t.apply(h, 0) @ t.read_direction(v, 0)
        torch.testing.assert_close(h @ u + c, want)


def test_registered_methods_sweep_and_unknown_ones_are_refused(tiny):
    data = _data()
    sw = layer_sweep(tiny, data, method="lda", n_splits=2, n_train=4, n_random=2, progress=False)
    assert sw.table["token_auroc_mean"].between(0, 1).all()
    assert sw.table["token_auroc_ci_lo"].notna().all()
    assert sw.table["shuffled_auroc_mean"].isna().all()  # refitted methods have no shuffled null
    with pytest.raises(InputError, match="register_fitter"):
        SweepConfig(method="no_such_method")


def test_refits_follow_the_interval_unit(tiny, registered):
    """With sequence clusters the intervals keep each split's direction fixed: the refitted
    method fits once per split and still equals the span path."""
    from value_lens.analysis.sweep import ClusterCI

    registered(_explicit_mean_diff, "_t_explicit_mean_seq")
    data = _data()
    kw = {"n_splits": 2, "n_train": 4, "n_random": 2, "progress": False, "max_memory_gb": 0}
    kw["ci"] = ClusterCI(cluster="sequence")
    span = layer_sweep(tiny, data, method="mean_diff", **kw)
    refit = layer_sweep(tiny, data, method="_t_explicit_mean_seq", **kw)
    cols = [c for c in span.table.columns if c != "shuffled_auroc_mean"]
    assert span.table["token_auroc_ci_lo"].notna().all()
    pd.testing.assert_frame_equal(
        span.table[cols], refit.table[cols], check_exact=False, atol=1e-6, rtol=1e-6
    )
