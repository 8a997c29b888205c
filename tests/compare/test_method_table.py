"""The method table: every registered method is a row, strengths are equal across methods (a
residual-stream oracle), and the row's numbers are its sweep's and its dose result's."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from tests._oracle import shifted_after_data
from value_lens.analysis.sweep import SweepConfig
from value_lens.compare.methods import MethodTableConfig, method_rows, method_table
from value_lens.errors import InputError
from value_lens.fitting.methods import FITTERS, Fitter, register_fitter, unregister_fitter
from value_lens.steering.dose import DoseResult
from value_lens.steering.steer import steer

_data = shifted_after_data


def _first_group_diff(stats):
    """A user method: the first criterion's difference alone."""
    diffs, groups = stats.group_diffs(1, 0)
    return diffs[:, 0].float(), {"groups": groups[:1]}


@pytest.fixture(scope="module")
def table(tiny):
    register_fitter(Fitter("_t_first_group", _first_group_diff))
    try:
        cfg = MethodTableConfig(sweep=SweepConfig(n_splits=2, n_train=4, n_random=4))
        yield method_table(tiny, _data(), (), cfg, progress=False)
    finally:
        unregister_fitter("_t_first_group")


def test_every_registered_method_is_a_row(table):
    names = table.table["method"].tolist()
    assert "_t_first_group" in names  # a user's registration shows up without other changes
    assert set(names) == (set(FITTERS) | {"_t_first_group"}) - {"did"}  # no placebo turns here


def test_rows_are_the_sweeps_at_their_best_layer(table):
    for _, row in table.table.iterrows():
        sw = table.sweeps[row["method"]]
        t = sw.table.set_index("layer")
        assert row["layer"] == t["token_auroc_mean"].idxmax()
        for col in ("token_auroc_mean", "token_auroc_ci_lo", "token_auroc_within"):
            assert row[col] == pytest.approx(t.loc[row["layer"], col], nan_ok=True)
        u = table.axes[row["method"]].direction(row["layer"]).double()
        v = table.axes["mean_diff"].direction(row["layer"]).double()
        assert row["cos_mean_diff"] == pytest.approx(float(u @ v / (u.norm() * v.norm())))


@torch.no_grad()
def test_steering_strength_is_equal_across_methods(tiny, table):
    """Each method's axis pushes the residual by the same norm at the same percent strength:
    measured as the change of the next block's input."""
    ids = torch.tensor([[5, 17, 40, 99, 7]])
    _, base = tiny.run_with_cache(ids, names_filter="blocks.1.hook_resid_pre")
    norms = {}
    for name, axis in table.axes.items():
        with steer(tiny, axis, layers=0, alpha=8.4, unit="percent"):
            _, cache = tiny.run_with_cache(ids, names_filter="blocks.1.hook_resid_pre")
        delta = cache["blocks.1.hook_resid_pre"] - base["blocks.1.hook_resid_pre"]
        norms[name] = delta.norm(dim=-1).flatten()
    ref = norms["mean_diff"]
    want = 0.084 * float(table.axes["mean_diff"].resid_norm[0])
    torch.testing.assert_close(ref, torch.full_like(ref, want), rtol=1e-4, atol=1e-6)
    for name, n in norms.items():
        torch.testing.assert_close(n, ref, rtol=1e-4, atol=1e-6, msg=name)


def test_slopes_come_from_the_dose_reliability(table):
    rel = pd.DataFrame(
        {
            "layer": [0, 0],
            "metric": ["n_tokens", "n_backtrack"],
            "mean_slope": [1.5, -0.25],
            "slope_lo": [0.5, -0.5],
            "slope_hi": [2.5, 0.0],
        }
    )
    dose = DoseResult(pd.DataFrame(), pd.DataFrame(), reliability=rel)
    sweeps = {"mean_diff": table.sweeps["mean_diff"]}
    df = method_rows(
        sweeps, table.axes, {"mean_diff": dose}, alphas=(0.0, 8.4), metrics=("n_tokens",)
    )
    row = df.iloc[0]
    assert (row["n_tokens_slope"], row["n_tokens_slope_lo"], row["n_tokens_slope_hi"]) == (
        1.5,
        0.5,
        2.5,
    )
    layer = row["layer"]
    assert row["steer_norm"] == pytest.approx(
        0.084 * float(table.axes["mean_diff"].resid_norm[layer]), rel=1e-6
    )
    assert math.isnan(method_rows(sweeps, table.axes)["steer_norm"].iloc[0])


def test_config_errors():
    with pytest.raises(InputError, match="registered"):
        MethodTableConfig(methods=("mean_diff", "nope"))
    with pytest.raises(InputError, match="unsteered"):
        MethodTableConfig(alphas=(4.0, 8.0))
    assert MethodTableConfig(methods=["lda"]).methods == ("lda",)
    assert np.isfinite(MethodTableConfig().alphas).all()
