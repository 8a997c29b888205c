"""The Fitter registry and every consumer of it: a registered method missing anywhere fails here.

Consumers: ``collect_requirements`` (pipeline), the CLI's ``--method`` help, ``ValueAxis.fit``,
per-split refits from ``select_groups`` (the sweep's), the methods' docs page and guide.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from tests._planted import planted_data
from value_lens import ValueAxis, collect_stats
from value_lens.errors import InputError
from value_lens.fitting.methods import (
    FITTERS,
    Fitter,
    get_fitter,
    needs,
    register_fitter,
    unregister_fitter,
)
from value_lens.fitting.plan import CollectPlan
from value_lens.pipeline.options import collect_requirements

ROOT = Path(__file__).resolve().parents[2]
METHODS = sorted(FITTERS)


def test_the_registry_holds_the_issue_methods():
    assert set(METHODS) >= {
        "mean_diff", "pca_diff", "ridge", "logistic", "did",
        "lda", "standardized", "mean_centred", "erased",
    }  # fmt: skip


@pytest.fixture(scope="module")
def rich_stats(tiny):
    """Planted ICRL-shaped data with placebo turns, collected with what every method needs for
    per-split refits."""
    data = planted_data(n_groups=4, per_group=3, seed=2)
    plan = CollectPlan()
    for m in METHODS:
        plan = plan | needs(m, per_split=True)
    return collect_stats(tiny, data, plan=plan, batch_size=4, progress=False), plan


@pytest.mark.parametrize("method", METHODS)
def test_every_method_reaches_every_consumer(method, rich_stats):
    stats, _ = rich_stats
    f = FITTERS[method]
    assert f.name == method and f.summary
    # the pipeline collects what the registry says
    need = collect_requirements(method, "percent")
    assert need["plan"] == f.needs
    assert (
        need["moments"] == f.needs.moments and need["sample_per_class"] == f.needs.sample_per_class
    )
    assert collect_requirements(method, "percent", per_split=True)["plan"] == f.per_split_needs
    # the CLI help names it
    from value_lens.cli.options import Method

    assert f"{method}:" in Method.__metadata__[0].help
    # the docs name it
    assert f"`{method}`" in (ROOT / "docs/guides/collection.md").read_text()
    # it fits all groups, and refits on a subset of groups from the statistics alone
    axis = ValueAxis.fit(stats, method)
    assert axis.method == method and axis.layers == (0, 1)
    train = stats.groups[:3]
    dirs = f.refit(stats, train)[0]
    assert dirs.shape == (2, stats.d_model) and torch.isfinite(dirs).all()
    assert not torch.allclose(dirs, axis.directions.to(dirs.dtype), rtol=1e-3, atol=0)
    # the sweep and the method table take it; a method outside the span is refitted per split
    from value_lens.analysis.sweep import SweepConfig
    from value_lens.analysis.sweep.explicit import fit_explicit, readout_line
    from value_lens.compare.methods import MethodTableConfig
    from value_lens.fitting.methods.registry import as_directions

    assert SweepConfig(method=method).method == method
    assert method in MethodTableConfig().resolved(planted_data(n_groups=4, per_group=3, seed=2))
    if f.sweep_weights is None and method != "did":
        ex = fit_explicit(f, stats, stats.groups, [np.array([0, 1, 2])], [0, 1], refit=False)
        d, _, readout = as_directions(f.refit(stats, train), method)
        for li in range(2):
            u, c = readout_line(d[li], readout, li)
            torch.testing.assert_close(ex.rows[li, ex.cols[(0, None)]], u)
            assert ex.offset[li, ex.cols[(0, None)]] == pytest.approx(c)


def test_which_methods_are_in_the_span():
    assert {m for m in METHODS if FITTERS[m].sweep_weights is not None} == {"mean_diff", "pca_diff"}


@pytest.mark.parametrize("method", ["mean_diff", "pca_diff"])
def test_sweep_weights_give_the_refit_direction(method, rich_stats):
    """Where a method declares span weights, sum_g w_g d_g is parallel to its refit."""
    stats, _ = rich_stats
    f = FITTERS[method]
    diffs, groups = stats.group_diffs()
    train = np.array([0, 2, 3])
    for li in range(2):
        d = diffs[li].numpy()
        w = f.sweep_weights(d @ d.T, train)
        assert np.all(w[[1]] == 0)  # nothing from held-out groups
        v = torch.from_numpy(w @ d)
        ref = f.refit(stats, [groups[i] for i in train])[0][li].double()
        cos = torch.nn.functional.cosine_similarity(v, ref, dim=0)
        assert cos == pytest.approx(1.0, abs=1e-6)


def test_a_user_method_by_registration_or_by_callable(rich_stats):
    stats, _ = rich_stats

    def first_group_after(s):
        return s.sum[:, 0, s.class_index(1)].float(), {"note": "toy"}

    try:
        f = register_fitter(first_group_after, needs=CollectPlan(squares=True), summary="toy")
        assert FITTERS["first_group_after"] is f and needs("first_group_after").squares
        assert collect_requirements("first_group_after")["plan"].squares
        with pytest.raises(InputError, match="already registered"):
            register_fitter(first_group_after)
        register_fitter(Fitter("first_group_after", first_group_after), replace=True)
        axis = ValueAxis.fit(stats, "first_group_after")
        assert axis.method == "first_group_after" and axis.fit_info == {"note": "toy"}
    finally:
        unregister_fitter("first_group_after")
    assert "first_group_after" not in FITTERS
    # a plain callable needs no registration
    axis = ValueAxis.fit(stats, first_group_after)
    torch.testing.assert_close(axis.directions[0], stats.sum[0, 0, 1].float())
    assert get_fitter(first_group_after).name == "first_group_after"


def test_bad_methods_and_outputs_are_named():
    with pytest.raises(InputError, match="unknown fit method 'nope'"):
        collect_requirements("nope")
    with pytest.raises(InputError, match="unknown fit method"):
        get_fitter("nope")
    with pytest.raises((InputError, TypeError)):  # TypeError: the suite's run-time type check
        Fitter("x", 3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no fitting method named"):
        unregister_fitter("nope")


def test_bad_fit_output_is_named(rich_stats):
    stats, _ = rich_stats
    with pytest.raises(InputError, match="must return"):
        ValueAxis.fit(stats, lambda s: s.sum)
    with pytest.raises(InputError, match=r"\[layers, d_model\]"):
        ValueAxis.fit(stats, lambda s: (s.sum, {}))


def test_per_split_needs_add_what_a_refit_needs():
    assert not needs("ridge").class_moments and needs("ridge", per_split=True).class_moments
    assert needs("lda", per_split=True) == needs("lda")
    # the sd strength unit needs second moments, unless the method's class moments give them
    assert collect_requirements("mean_diff", "sd")["moments"]
    assert not collect_requirements("lda", "sd")["moments"]


def test_every_method_steers_in_the_same_units():
    """Percent strengths use the same mean norm for every method and sd strengths each
    direction's own projection sd, measured here on the raw tokens (BEFORE and AFTER)."""
    from _moments import stats_from_tokens

    from value_lens.steering.strength import axis_calibration, to_raw

    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=(n, 8)) * np.linspace(0.5, 4, 8) + 3
    labels = np.array([0, 1, 3, 4] * (n // 4))
    groups = np.array(["a", "b", "c"] * (n // 3))
    x[labels == 1] += 1.0
    z = rng.normal(size=(n, 4))
    stats = stats_from_tokens(x, labels, groups, z=z, sample_k=300)
    ab = np.isin(labels, [0, 1])
    norm = np.linalg.norm(x[labels < 2], axis=1).mean()  # placebo turns left out
    for method in METHODS:
        axis = ValueAxis.fit(stats, method)
        cal = axis_calibration(axis)
        assert to_raw(10.0, 0, "percent", cal) == pytest.approx(0.1 * norm, rel=1e-6), method
        u = axis.direction(0).double().numpy()
        assert to_raw(1.0, 0, "sd", cal) == pytest.approx((x[ab] @ u).std(), rel=1e-4), method
