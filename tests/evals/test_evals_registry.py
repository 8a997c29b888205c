"""The suite registry stays in sync with every consumer: ``value-lens eval`` (its check and its
``--suite`` help), ``read_steps.evaluate``, the results folder's files and the report.

A registered suite missing from any of them fails here. A suite defined in this file (one
record plus one ``register_suite`` call) reaches all of them without editing another file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

import value_lens.viz as viz
from value_lens.cli.main import main
from value_lens.errors import InputError
from value_lens.evals import EvalResult, Figure, Section, Suite, Table, registry, suites
from value_lens.fitting.axis import ValueAxis
from value_lens.pipeline import read_steps, report, rundir


def _axis(model) -> ValueAxis:
    g = torch.Generator().manual_seed(0)
    return ValueAxis(torch.randn(2, 64, generator=g), model_id=model.cfg.model_name)


def test_every_registered_suite_is_in_every_consumer(capsys):
    reg = suites()
    assert list(reg) == ["code", "backtracking", "confidence"]
    files = rundir.result_files()
    assert main(["eval", "--help"]) == 0
    words = [w for w in capsys.readouterr().out.split() if w not in "│╭╮╰╯─"]
    help_text = " ".join(words)
    for name, suite in reg.items():
        assert f"{name}: {suite.help}" in help_text
        for table, spec in suite.tables.items():
            assert files[table] == spec.file and rundir.RESULT_FILES[table] == spec.file
        for sec in suite.sections:
            for item in sec.items:
                if isinstance(item, Figure):
                    assert callable(getattr(viz, str(item.function))), item.function
                    assert item.table in suite.tables
    every = [t.file for s in reg.values() for t in s.tables.values()]
    assert len(every) == len(set(every))  # no two suites write one file


@pytest.mark.parametrize("name", ["code", "backtracking", "confidence"])
def test_each_suite_runs_through_evaluate_and_reaches_the_report(tiny, tmp_path, name):
    """evaluate writes every registered table; the report draws every registered section."""
    ev = read_steps.evaluate(
        tiny, _axis(tiny), tmp_path, suite=name, layer=1, n=2, max_new_tokens=4, progress=False
    )
    suite = suites()[name]
    for table in suite.tables.values():
        assert (tmp_path / table.file).is_file()
    heads = [h for h, _ in report.report_sections(tmp_path)]
    for sec in suite.sections:
        assert sec.heading in heads
    if suite.meta_key:
        assert rundir.read_meta(tmp_path)[suite.meta_key]["layer"] == 1 == ev.layer


def _toy(model, axis, layer, req) -> EvalResult:  # noqa: ARG001
    rows = pd.DataFrame({"x": np.arange(req.n), "y": np.arange(req.n) * 2.0})
    return EvalResult(rows, rows.describe().reset_index(), meta={"n": req.n})


def _toy_figure(df: pd.DataFrame) -> go.Figure:
    return go.Figure(go.Scatter(x=df["x"], y=df["y"], name="toy-figure-trace"))


def test_a_new_suite_is_one_record_and_one_registration(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "_SUITES", dict(registry._SUITES))  # undone after the test
    registry.register_suite(
        Suite(
            name="toy",
            help="a toy suite",
            run=_toy,
            tables={
                "toy": Table("toy.csv", lambda r: r.table),
                "toy_summary": Table("toy_summary.csv", lambda r: r.summary),
            },
            sections=(Section("Toy section", (Figure(_toy_figure, "toy"), "toy_summary")),),
            headline=lambda r, req: {"d": float(len(r.table)), "n": req.n},
            meta_key="toy_suite",
        )
    )
    assert "toy" in suites() and rundir.result_files()["toy"] == "toy.csv"
    ev = read_steps.evaluate(tiny, _axis(tiny), tmp_path, suite="toy", layer=1, n=3)
    assert pd.read_csv(tmp_path / "toy.csv")["y"].tolist() == [0.0, 2.0, 4.0]
    assert ev.headline == {"layer": 1, "d": 3.0, "n": 3}
    assert rundir.read_meta(tmp_path)["toy_suite"]["n"] == 3
    html = report.report_from_dir(tmp_path).read_text()
    assert "Toy section" in html and "toy-figure-trace" in html
    _axis(tiny).save(tmp_path / "axis.safetensors")
    code = main(["eval", "--suite", "toy", "--model", "tiny", "--out", str(tmp_path), "--n", "2"])
    assert code == 0, capsys.readouterr().err  # the CLI's --suite check reads the registry
    with pytest.raises(InputError, match="already written by suite 'toy'"):
        registry.register_suite(
            Suite("toy2", "x", _toy, {"toy": Table("other.csv", lambda r: r.table)}, ())
        )
    with pytest.raises(InputError, match="unknown tables"):
        Suite("bad", "x", _toy, {}, (Section("S", ("missing",)),))
    with pytest.raises(InputError, match="unknown suite 'nope'"):
        read_steps.evaluate(tiny, _axis(tiny), tmp_path, suite="nope")


def test_unregister_suite_removes_it_and_refuses_unknown_names():
    from value_lens.errors import InputError
    from value_lens.evals.registry import register_suite, suites, unregister_suite

    base = suites()["code"]
    import dataclasses

    mine = dataclasses.replace(
        base, name="_t_copy", tables={f"_t_{k}": t for k, t in base.tables.items()}, sections=()
    )
    register_suite(mine)
    assert "_t_copy" in suites()
    assert unregister_suite("_t_copy") is mine
    assert "_t_copy" not in suites()
    with pytest.raises(InputError, match="no suite"):
        unregister_suite("_t_copy")
