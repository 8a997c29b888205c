"""docs/guides/extending.md runs as written and each extension reaches what the guide says.

The guide's Python blocks run in order, in one namespace, on the tiny random model; the checks
recompute what they claim by other means (residuals from ``run_with_cache``, AUROCs by hand).
Every registration the guide makes is undone afterwards: the three registries are restored to
what they held before, so no user method, mode or suite leaks into other tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from value_lens.analysis.metrics import auroc
from value_lens.errors import InputError
from value_lens.evals import registry as suite_registry
from value_lens.fitting.methods import FITTERS, unregister_fitter
from value_lens.fitting.methods import registry as fitter_registry
from value_lens.steering.modes import MODES

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guides" / "extending.md"
ADDED = {"fitter": "median_diff", "mode": "rescale", "suite": "answer_check"}


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)


def _registered() -> dict[str, bool]:
    return {
        "fitter": ADDED["fitter"] in FITTERS,
        "mode": ADDED["mode"] in tuple(MODES),  # `in MODES` raises for a missing name
        "suite": ADDED["suite"] in suite_registry.suites(),
    }


@contextlib.contextmanager
def _registries_restored() -> Iterator[None]:
    """Run with the guide's names free, then put all three registries back as they were.

    Modes and suites have no public call that removes one, so their dicts are restored in place
    (``FITTERS`` and ``MODES`` are views of them)."""
    fitters = dict(fitter_registry._REGISTRY)
    modes = dict(MODES._modes)
    suites = dict(suite_registry._SUITES)
    if ADDED["fitter"] in FITTERS:
        unregister_fitter(ADDED["fitter"])
    MODES._modes.pop(ADDED["mode"], None)
    suite_registry._SUITES.pop(ADDED["suite"], None)
    try:
        yield
    finally:
        for live, saved in (
            (fitter_registry._REGISTRY, fitters),
            (MODES._modes, modes),
            (suite_registry._SUITES, suites),
        ):
            live.clear()
            live.update(saved)


def _exec(block: str, scope: dict, where: str) -> None:
    """Run one block as a file of its own would run (without this module's ``__future__``
    imports, which ``compile`` would otherwise pass on)."""
    exec(compile(block, where, "exec", dont_inherit=True), scope)  # our own docs


def _run(blocks: list[str], scope: dict) -> dict:
    torch.set_num_threads(1)
    for i, block in enumerate(blocks):
        _exec(block, scope, f"{GUIDE.name} (python block {i + 1})")
    return scope


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """The guide's namespace after every block ran (in a temporary working folder)."""
    before = _registered()
    folder = tmp_path_factory.mktemp("extending")
    with pytest.MonkeyPatch.context() as mp, _registries_restored():
        mp.chdir(folder)
        yield _run(_blocks(), {"__name__": "extending_guide"}), folder
    assert _registered() == before, "the guide's registrations leaked"


def _resid(model, ids: torch.Tensor, layer: int) -> torch.Tensor:
    name = f"blocks.{layer}.hook_resid_post"
    _, cache = model.run_with_cache(ids[None], names_filter=name)
    return cache[name][0].double()


def _median_direction(model, data, layer: int, groups: list[str]) -> torch.Tensor:
    """The guide's median_diff recomputed from residuals: per criterion mean(AFTER) -
    mean(BEFORE), then per coordinate the lower middle value over criteria (torch.median)."""
    diffs = []
    for g in groups:
        rows = [
            (ids, lab)
            for ids, lab, gg in zip(data.input_ids, data.labels, data.groups, strict=True)
            if gg == g
        ]
        hs = [(_resid(model, ids, layer), lab) for ids, lab in rows]
        after = torch.cat([h[lab == 1] for h, lab in hs]).mean(0)
        before = torch.cat([h[lab == 0] for h, lab in hs]).mean(0)
        diffs.append(after - before)
    return torch.stack(diffs).sort(dim=0).values[(len(groups) - 1) // 2]


def test_the_fitting_method_is_registered_and_fits_what_it_says(guide):
    ns, _ = guide
    assert FITTERS["median_diff"] is ns["FITTER"] and ns["FITTER"].sweep_weights is None
    axis, model, data = ns["axis"], ns["model"], ns["data"]
    assert axis.method == "median_diff" and axis.layers == (0, 1)
    for layer in axis.layers:
        want = _median_direction(model, data, layer, list("abcdef"))
        torch.testing.assert_close(axis.directions[layer].double(), want, atol=1e-6, rtol=1e-5)


def test_the_sweep_refits_the_method_on_every_split(guide):
    """Each split's held-out AUROC is that of the method refitted on the split's criteria."""
    ns, _ = guide
    sw, model, data = ns["sw"], ns["model"], ns["data"]
    assert sw.config.method == "median_diff" and sw.timings["passes"] == 2
    assert len(sw.splits) == 3 * 2  # three splits at two layers
    for rec in sw.splits:
        layer, train = rec["layer"], rec["train_groups"]
        v = _median_direction(model, data, layer, train)
        pos, neg = [], []
        for ids, lab, g in zip(data.input_ids, data.labels, data.groups, strict=True):
            if g not in train:
                h = _resid(model, ids, layer)
                cos = (h @ v) / (h.norm(dim=-1) * v.norm())
                pos.append(cos[lab == 1])
                neg.append(cos[lab == 0])
        want = auroc(torch.cat(pos).numpy(), torch.cat(neg).numpy())
        assert rec["token_auroc"] == pytest.approx(want, abs=1e-9), rec


def test_the_method_is_a_row_of_the_method_table(guide):
    ns, _ = guide
    from value_lens.compare.methods import MethodTableConfig

    assert "median_diff" in MethodTableConfig().resolved(ns["data"])
    table = ns["res"].table.set_index("method")
    assert list(table.index) == ["mean_diff", "median_diff"]
    row = table.loc["median_diff"]
    layer = int(row["layer"])
    u = ns["axis"].direction(layer).double()
    ref = ns["vl"].ValueAxis.fit(ns["stats"]).direction(layer).double()
    assert row["cos_mean_diff"] == pytest.approx(float(u @ ref), abs=1e-5)
    assert row["token_auroc_mean"] == pytest.approx(
        ns["res"].sweeps["median_diff"].table.set_index("layer").loc[layer, "token_auroc_mean"]
    )


def test_the_cli_help_lists_the_method_in_a_fresh_interpreter(tmp_path):
    """The CLI writes its help at import, so the guide's blocks up to its CLI example run in a
    new interpreter, as a user's script would; the --method help then names median_diff."""
    blocks = _blocks()
    cli = next(i for i, b in enumerate(blocks) if "value_lens.cli" in b)
    assert "register_fitter(FITTER)" in "".join(blocks[:cli])
    (tmp_path / "blocks.json").write_text(json.dumps(blocks[: cli + 1]))
    code = (
        "import json, torch\ntorch.set_num_threads(1)\nns = {'__name__': 'extending_guide'}\n"
        "for b in json.load(open('blocks.json')):\n    exec(b, ns)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    words = " ".join(w for w in proc.stdout.split() if w not in "│╭╮╰╯─")
    summary = FITTERS["mean_diff"].summary  # a built-in's entry, then the user's
    assert f"mean_diff: {summary}" in words
    assert "median_diff: coordinatewise median over criteria of mean(AFTER) - mean(BEFORE)" in words


def test_the_mode_does_to_the_residual_what_its_operator_says(guide):
    """Steered with factor 3 at layer 0: the projection on u triples, the rest of h is kept,
    and the change reaches layer 1."""
    ns, _ = guide
    model, axis, Rescale = ns["model"], ns["axis"], ns["Rescale"]
    assert MODES["rescale"] is Rescale
    s = ns["vl"].steer(model, axis, layers=0, alpha=3.0, mode="rescale")
    assert s.mode == "rescale" and s.steers[0].op == Rescale(factor=3.0)
    ids = torch.tensor(ns["seqs"][5])
    u = axis.direction(0).double()
    clean0, clean1 = _resid(model, ids, 0), _resid(model, ids, 1)
    with s:
        got0, got1 = _resid(model, ids, 0), _resid(model, ids, 1)
    torch.testing.assert_close(got0 @ u, 3 * (clean0 @ u), atol=1e-4, rtol=1e-4)
    rest = torch.eye(u.numel(), dtype=u.dtype) - torch.outer(u, u)
    torch.testing.assert_close(got0 @ rest, clean0 @ rest, atol=1e-4, rtol=1e-4)
    assert (got1 - clean1).abs().max() > 1e-3


def test_the_dose_grid_steers_each_cell_with_the_mode(guide, monkeypatch):
    ns, _ = guide
    frame = ns["dose"].frame
    assert (
        set(frame["mode"]) == {"rescale"} and ns["dose"].settings["mode"] == "rescale(factor=1.0)"
    )
    assert sorted(zip(frame["layer"], frame["alpha"], strict=True)) == [
        (layer, a) for layer in (0, 1) for a in (0.0, 1.0, 3.0)
    ]
    assert (frame["raw_alpha"] == frame["alpha"]).all()  # a unit-free strength passes as is
    # rerun the guide's grid: every steered cell calls the operator with its factor; the neutral
    # factor 1 is never applied (it runs unsteered)
    seen: list[float] = []
    call = ns["Rescale"].__call__

    def spy(self, h, u):
        seen.append(float(self.factor))
        return call(self, h, u)

    monkeypatch.setattr(ns["Rescale"], "__call__", spy)
    dose_block = next(b for b in _blocks() if "DoseGrid(" in b)
    _exec(dose_block, ns, GUIDE.name)
    assert set(seen) == {0.0, 3.0}


def test_the_suite_reaches_evaluate_the_results_folder_and_the_report(guide):
    ns, folder = guide
    from value_lens.pipeline.report import report_sections
    from value_lens.pipeline.rundir import read_meta, result_files

    out = folder / "results"
    suite = suite_registry.suites()["answer_check"]
    assert suite is ns["SUITE"]
    files = result_files()
    assert files["answer_check"] == "answer_check.csv"
    assert files["answer_check_summary"] == "answer_check_summary.csv"
    table = pd.read_csv(out / "answer_check.csv")
    assert len(table) == 2 * 4 and set(table["answer"]) == {"right", "wrong"}
    pd.testing.assert_frame_equal(table, ns["ev"].result.table, check_dtype=False)
    assert read_meta(out)["eval_answer_check"] == {"layer": 1, "n": 4, "seed": 0}
    sections = dict(report_sections(out))
    fig, summary = sections["Right and wrong answers"]
    assert isinstance(fig, go.Figure) and [t.name for t in fig.data] == ["right", "wrong"]
    assert summary["count"].tolist() == [4, 4]
    page = folder / ns["page"]  # the guide writes relative to the working folder
    assert page == out / "report.html"
    assert "Right and wrong answers" in page.read_text(encoding="utf-8")
    assert (out / "answer_check.html").is_file()  # the figure saved on its own


def _ignore_operator(self, h, u, ctx):  # noqa: ARG001 - the planted bug: h comes back as is
    return h


PLANTED = {
    "register_fitter adds nothing": (
        "value_lens.fitting.methods",
        "register_fitter",
        lambda fitter, **_: fitter,
        InputError,
        "unknown fit method 'median_diff'",
    ),
    "the operator is ignored": (
        "value_lens.steering.operator",
        "Operator.apply",
        _ignore_operator,
        AssertionError,
        "not close",
    ),
    "register_suite adds nothing": (
        "value_lens.evals",
        "register_suite",
        lambda suite: suite,
        InputError,
        "unknown suite 'answer_check'",
    ),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_a_planted_library_bug_breaks_the_guide(bug, tmp_path, monkeypatch):
    """The examples check themselves: with a registration or the operator planted broken, the
    guide stops at the example that shows it, with the error that names it."""
    import importlib

    module, attr, fake, error, match = PLANTED[bug]
    target = importlib.import_module(module)
    owner, _, name = attr.rpartition(".")
    monkeypatch.setattr(getattr(target, owner) if owner else target, name, fake)
    monkeypatch.chdir(tmp_path)
    with _registries_restored(), pytest.raises(error, match=match):
        _run(_blocks(), {"__name__": "extending_guide"})
