"""The difference-in-differences axis: an HF oracle, planted-vector recovery, clear errors."""

from __future__ import annotations

import pytest
import torch
from _planted import plant_vector, planted_data

from value_lens import ValueAxis, collect_stats
from value_lens.core.model import load_model
from value_lens.data.tokens import AFTER, BEFORE, PLACEBO_AFTER, PLACEBO_BEFORE
from value_lens.errors import InputError
from value_lens.testing import tiny_qwen3_hf


@pytest.fixture(scope="module")
def planted():
    hf, tok = tiny_qwen3_hf(n_layers=3, d_model=64, tied=False, seed=3)
    v = torch.randn(64, generator=torch.Generator().manual_seed(5))
    v = v / v.norm() * 0.3
    plant_vector(hf, v)
    return hf, load_model(hf, tokenizer=tok), v


def test_did_equals_brute_force_on_hf_hidden_states(planted):
    hf, model, _ = planted
    data = planted_data(value=True, n_groups=3, per_group=3, seed=1)
    axis = ValueAxis.fit(collect_stats(model, data, progress=False), method="did")
    per_group: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        hs = [hf(ids[None], output_hidden_states=True).hidden_states for ids in data.input_ids]
    for layer in range(2):  # hidden_states[3], the last, is after the final norm
        diffs = []
        for g in data.group_names:
            rows = [i for i, x in enumerate(data.groups) if x == g]
            h = torch.cat([hs[i][layer + 1][0].double() for i in rows])
            lab = torch.cat([data.labels[i] for i in rows])
            mean = {c: h[lab == c].mean(0) for c in (BEFORE, AFTER, PLACEBO_BEFORE, PLACEBO_AFTER)}
            diffs.append(
                (mean[AFTER] - mean[BEFORE]) - (mean[PLACEBO_AFTER] - mean[PLACEBO_BEFORE])
            )
            per_group.setdefault(g, []).append(diffs[-1])
        expected = torch.stack(diffs).mean(0).float()
        got = axis.directions[layer]
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert axis.method == "did" and axis.fit_info["groups"] == data.group_names


def test_did_recovers_a_planted_value_vector_that_mean_diff_mixes_with_position(planted):
    _, model, v = planted
    stats = collect_stats(model, planted_data(value=True, per_group=12), progress=False)
    did = ValueAxis.fit(stats, method="did")
    for layer in did.layers:
        assert torch.cosine_similarity(did.direction(layer), v, dim=0) >= 0.95
    # without a value signal, DiD has nothing to find: it is far from the planted vector
    null = ValueAxis.fit(collect_stats(model, planted_data(value=False), progress=False), "did")
    for layer in null.layers:
        assert abs(float(torch.cosine_similarity(null.direction(layer), v, dim=0))) < 0.5


def test_did_needs_placebo_turns(planted):
    _, model, _ = planted
    data = planted_data(n_groups=2, per_group=2)
    data.labels = [torch.where(x >= PLACEBO_BEFORE, -1, x) for x in data.labels]
    with pytest.raises(InputError, match="placebo=True"):
        ValueAxis.fit(collect_stats(model, data, progress=False), method="did")


def test_placebo_labels_do_not_change_the_percent_scale(planted):
    """The %-of-norm unit is the mean norm over the real turns' tokens, with or without placebo."""
    _, model, _ = planted
    data = planted_data(n_groups=2, per_group=3)
    plain = planted_data(n_groups=2, per_group=3)
    plain.labels = [torch.where(x >= PLACEBO_BEFORE, -1, x) for x in plain.labels]
    a = ValueAxis.fit(collect_stats(model, data, progress=False), method="did")
    b = ValueAxis.fit(collect_stats(model, plain, progress=False))
    torch.testing.assert_close(a.resid_norm, b.resid_norm)
    with_placebo = collect_stats(model, data, progress=False).mean_norm()
    assert not torch.allclose(with_placebo.float(), b.resid_norm)  # placebo tokens do differ
