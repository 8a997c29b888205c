"""The steering-mode registry is in sync with every consumer: the CLI's help and its --mode,
DoseGrid, the A/B grid, the steering guide and the API reference. Registering a mode that one
of them misses fails here (tests/core/test_fastpath_modes.py checks both decoding loops)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from value_lens.cli.main import main
from value_lens.cli.options import app
from value_lens.core.generate import GenerationConfig
from value_lens.core.model import model_id
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.ab import ABGrid, ab_eval
from value_lens.steering.ab_items import ab_items
from value_lens.steering.dose import DoseGrid, dose_response
from value_lens.steering.modes import MODES

ROOT = Path(__file__).resolve().parents[2]
#: a small, nonzero primary strength per mode for the tiny model
STRENGTH = {"add": 3.0, "ablate": 1.0, "clamp": 0.5, "cap": 0.02, "rotate": 40.0}


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(19)
    return ValueAxis(torch.randn(2, 64, generator=g), model_id=model_id(tiny))


def test_every_mode_has_a_test_strength():
    assert set(STRENGTH) == set(MODES)


def test_cli_help_lists_every_mode():
    res = CliRunner().invoke(app, ["steer", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = re.sub(r"\s+", " ", res.output)
    for name in MODES:
        assert re.search(rf"\b{name}\b", text), f"--mode help misses {name!r}"


@pytest.mark.parametrize("mode", sorted(STRENGTH))
def test_dose_grid_reaches_every_mode(tiny, axis, mode):
    op = MODES[mode]()
    alphas = sorted({0.0 if op.neutral is None else op.neutral, STRENGTH[mode]})
    grid = DoseGrid(layers=1, alphas=alphas, unit="raw", mode=mode)
    res = dose_response(
        tiny, axis, ["hi there"], grid=grid, gen=GenerationConfig(max_new_tokens=3), progress=False
    )
    f = res.frame
    assert set(f["mode"]) == {mode} and sorted(f["alpha"]) == alphas
    assert set(res.reliability["layer"]) == {1}
    settings_mode = res.settings.get("mode")
    assert (settings_mode is None) == (mode == "add")  # other modes enter the log fingerprint


def test_ab_grid_reaches_every_mode(tiny, axis):
    items = ab_items(["confidence"], n=2)
    res = ab_eval(tiny, axis, items, ABGrid(layers=1, strengths=[1.0], modes=list(MODES)))
    assert set(res.summary["mode"]) == set(MODES)


def test_the_guide_and_the_reference_cover_every_mode():
    guide = (ROOT / "docs" / "guides" / "steering.md").read_text()
    ref = (ROOT / "docs" / "reference" / "steering.md").read_text()
    for name, cls in MODES.items():
        assert f"### `{name}`" in guide, f"docs/guides/steering.md has no section for {name!r}"
        assert f"::: {cls.__module__}" in ref, f"docs/reference/steering.md misses {cls.__module__}"


@pytest.mark.parametrize("mode", sorted(STRENGTH))
def test_the_cli_steers_in_every_mode(axis, mode, tmp_path, capsys):
    path = tmp_path / "axis.safetensors"
    axis.save(path)
    argv = [
        "steer",
        "--model",
        "tiny",
        "--axis",
        path,
        "--out",
        tmp_path,
        "--prompt",
        "hi",
        "--layers",
        "1",
        "--mode",
        mode,
        "--alpha",
        STRENGTH[mode],
        "--max-new-tokens",
        "2",
    ]
    if mode != "rotate" and mode != "ablate":
        argv += ["--unit", "raw"]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    label = next(k for k in row if k.endswith("@ layer 1"))
    assert (mode == "add") == label.startswith("alpha=") and row["layer"] == 1


def test_the_cli_grid_takes_mode_parameters_and_writes_reliability(axis, tmp_path, capsys):
    path = tmp_path / "axis.safetensors"
    axis.save(path)
    argv = [
        "steer",
        "--model",
        "tiny",
        "--axis",
        path,
        "--out",
        tmp_path,
        "--prompt",
        "hi",
        "--prompt",
        "yo",
        "--layers",
        "1",
        "--mode",
        "cap",
        "--param",
        "ceiling=0.01",
        "--alpha",
        "-0.05",
        "--alpha",
        "0.0",
        "--unit",
        "raw",
        "--max-new-tokens",
        "2",
    ]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    rel = pd.read_csv(tmp_path / "dose_reliability.csv")
    per = pd.read_csv(tmp_path / "dose_per_prompt.csv")
    assert set(per["prompt_id"].astype(str)) == {"0", "1"} and len(rel) > 0
    meta = json.loads((tmp_path / "run.json").read_text())["dose"]
    assert meta["mode"] == "cap" and meta["params"] == {"ceiling": 0.01}
    dose = pd.read_csv(tmp_path / "dose.csv")  # the grid set the floor, the ceiling stayed
    assert sorted(set(dose["alpha"])) == [-0.05, 0.0] and set(dose["mode"]) == {"cap"}
    bad = [*argv[:13], "--param", "height"]
    assert main([str(a) for a in bad]) != 0
    assert "key=value" in capsys.readouterr().err


def test_the_mode_registry_answers_membership_and_unregisters():
    from dataclasses import dataclass

    from value_lens.errors import InputError
    from value_lens.steering.modes import MODES
    from value_lens.steering.operator import Operator

    assert "add" in MODES and "nope" not in MODES and MODES.get("nope") is None
    assert MODES.get("add") is MODES["add"]

    @dataclass(frozen=True)
    class _Twice(Operator):
        name = "_t_twice"

        def apply(self, h, u):
            return h + 0 * u

    MODES.register(_Twice)
    try:
        assert "_t_twice" in MODES
    finally:
        assert MODES.unregister("_t_twice") is _Twice
    assert "_t_twice" not in MODES
    with pytest.raises(InputError, match="no steering mode"):
        MODES.unregister("_t_twice")
