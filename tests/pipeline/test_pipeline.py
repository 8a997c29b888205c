"""The pipeline's steps: one rule reuses saved statistics (same data, the layers asked for, what
the method and unit need) and every other case collects again; ``fit`` keeps the layers asked
for. Calls to ``collect_stats`` are counted, and axes compared with a fresh fit."""

from __future__ import annotations

import pytest
import torch

from tests._demo_data import SMALL_CORPUS
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.collect import collect_stats
from value_lens.pipeline import steps, sweep_steps
from value_lens.pipeline.options import load_model_option


@pytest.fixture(scope="module")
def model():
    return load_model_option("tiny")  # the CLI's tiny model (context raised for ICRL turns)


@pytest.fixture(scope="module")
def data(model, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "small.txt"
    corpus.write_text(SMALL_CORPUS + "\n")
    out = tmp_path_factory.mktemp("data")
    crit = ["semicolon", "colon", "dash"]
    return steps.build_data(model, out, n_per_criterion=1, criteria=crit, seed=1, corpus=corpus)


@pytest.fixture
def calls(monkeypatch):
    """Counts the statistics passes the steps run."""
    seen: list[dict] = []

    def counting(*args, **kwargs):
        seen.append(kwargs)
        return collect_stats(*args, **kwargs)

    monkeypatch.setattr(steps, "collect_stats", counting)
    return seen


def test_matching_stats_are_reused(model, data, tmp_path, calls):
    first = steps.collect(model, data.tokens, tmp_path, progress=False)
    assert len(calls) == 1 and first.layers == [0, 1]
    logs: list[str] = []
    again = steps.collect(model, data.tokens, tmp_path, progress=False, log=logs.append)
    subset = steps.collect(model, data.tokens, tmp_path, layers=[1], progress=False)
    assert len(calls) == 1  # the same data at the same (or fewer) layers: no new pass
    assert any("reusing" in x for x in logs)
    torch.testing.assert_close(again.sum, first.sum)
    torch.testing.assert_close(subset.sum, first.sum)


def test_other_data_is_collected_again(model, data, tmp_path, calls):
    steps.collect(model, data.tokens, tmp_path, progress=False)
    fewer = data.tokens.subset(range(len(data.tokens) - 1))  # one turn less: another fingerprint
    stats = steps.collect(model, fewer, tmp_path, progress=False)
    assert len(calls) == 2 and stats.meta["dataset_hash"] == fewer.fingerprint()


def test_missing_layers_are_collected_again(model, data, tmp_path, calls):
    steps.collect(model, data.tokens, tmp_path, layers=[0], progress=False)
    stats = steps.collect(model, data.tokens, tmp_path, progress=False)  # all layers now
    assert len(calls) == 2 and stats.layers == [0, 1]


@pytest.mark.parametrize(
    ("method", "unit", "need"),
    [
        ("ridge", "percent", {"moments": True}),
        ("mean_diff", "sd", {"moments": True}),
        ("logistic", "percent", {"sample_per_class": 2000}),
    ],
)
def test_what_the_method_and_unit_need_is_collected(
    model, data, tmp_path, calls, method, unit, need
):
    steps.collect(model, data.tokens, tmp_path, progress=False)  # plain sums only
    steps.collect(model, data.tokens, tmp_path, method=method, unit=unit, progress=False)
    assert len(calls) == 2
    assert {k: calls[1][k] for k in need} == need
    # the richer statistics serve the plain mean difference too
    steps.collect(model, data.tokens, tmp_path, progress=False)
    assert len(calls) == 2


def test_sweep_reuses_matching_stats_and_reads_the_model_otherwise(
    model, data, tmp_path, monkeypatch
):
    seen = []

    def fake_sweep(_model, _data, **kwargs):
        seen.append(kwargs["stats"])
        raise RuntimeError("stop")  # only what the step hands the sweep is checked here

    monkeypatch.setattr(sweep_steps, "layer_sweep", fake_sweep)
    with pytest.raises(RuntimeError, match="stop"):
        sweep_steps.sweep(model, data.tokens, tmp_path / "fresh")
    saved = steps.collect(model, data.tokens, tmp_path, progress=False)
    with pytest.raises(RuntimeError, match="stop"):
        sweep_steps.sweep(model, data.tokens, tmp_path)
    assert seen[0] is None
    torch.testing.assert_close(seen[1].sum, saved.sum)


def test_fit_keeps_the_layers_asked_for_from_reused_stats(model, data, tmp_path, calls):
    steps.collect(model, data.tokens, tmp_path, progress=False)
    stats = steps.collect(model, data.tokens, tmp_path, layers=[1], progress=False)
    axis = steps.fit(stats, tmp_path, layers=[1])
    assert len(calls) == 1 and axis.layers == (1,)
    ref = ValueAxis.fit(collect_stats(model, data.tokens, layers=[1], progress=False))
    torch.testing.assert_close(axis.direction(1), ref.direction(1), rtol=1e-5, atol=1e-7)
    assert float(axis.directions[0].abs().max()) == 0.0
    assert ValueAxis.load(tmp_path / steps.AXIS_FILE).layers == (1,)
