"""The value-lens command line, end to end on the tiny model: every subcommand and user errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests._demo_data import SMALL_CORPUS
from tests._offline import external_urls
from value_lens.cli.main import main
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.methods import FITTERS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_user_error(code: int, err: str, expect_code: int, match: str) -> None:
    assert code == expect_code, err
    errors = [ln for ln in err.splitlines() if ln.startswith("value-lens: error:")]
    assert len(errors) == 1, err
    assert match in errors[0], errors[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("corpus") / "small.txt"
    p.write_text(SMALL_CORPUS + "\n")
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus) -> Path:
    """A results folder where `value-lens build` ran on the tiny model (3 criteria)."""
    out = tmp_path_factory.mktemp("built")
    code = main(
        [
            "build",
            "--model",
            "tiny",
            "--out",
            str(out),
            "--criteria",
            "first:3",
            "--n-per-criterion",
            "1",
            "--corpus",
            str(corpus),
            "--seed",
            "1",
        ]
    )
    assert code == 0
    return out


def test_build_writes_axis_stats_and_metadata(built):
    axis = ValueAxis.load(built / "axis.safetensors")
    assert axis.layers == (0, 1) and axis.d_model == 64 and axis.method == "mean_diff"
    assert float(axis.directions.norm()) > 0
    meta = json.loads((built / "run.json").read_text())
    assert meta["model"].startswith("value_lens/tiny-qwen3") and meta["seed"] == 1
    assert len(meta["criteria"]) == 3 and meta["layers"] == [0, 1]
    assert (built / "stats.safetensors").exists() and (built / "conversations.jsonl").exists()


def test_trace_text_and_file(built, capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "trace",
        "Wait, actually: the fox!",
        "--model",
        "tiny",
        "--out",
        built,
        "--layer",
        "0",
        "--name",
        "fox",
    )
    assert code == 0 and "mean value at layer 0" in out
    page = built / "trace-fox.html"
    html = page.read_text()
    assert external_urls(html) == [] and "value (cosine) at layer 0" in html
    rec = json.loads((built / "trace-fox.json").read_text())
    assert rec["layers"] == [0, 1] and len(rec["cosine"][0]) == len(rec["tokens"])
    msgs = tmp_path / "chat.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "Is 91 prime?"}]))
    code, out, _ = run(
        capsys,
        "trace",
        "--file",
        msgs,
        "--model",
        "tiny",
        "--out",
        built,
        "--layers",
        "1",
        "--name",
        "chat",
    )
    assert code == 0
    assert json.loads((built / "trace-chat.json").read_text())["layers"] == [1]


def test_trace_with_the_papers_npy_axis(capsys, tmp_path):
    arr = np.random.default_rng(0).standard_normal((3, 64))  # n_layers + 1 rows
    np.save(tmp_path / "value_axis.npy", arr)
    code, out, err = run(
        capsys,
        "trace",
        "hello",
        "--model",
        "tiny",
        "--out",
        tmp_path,
        "--axis",
        tmp_path / "value_axis.npy",
    )
    assert code == 0, err
    rec = json.loads((tmp_path / "trace-text.json").read_text())
    assert rec["layers"] == [0]  # the post-norm last row is dropped
    code, _, err = run(
        capsys,
        "trace",
        "hello",
        "--chat",
        "--model",
        "tiny",
        "--out",
        tmp_path,
        "--axis",
        tmp_path / "value_axis.npy",
        "--name",
        "chat",
    )
    assert code == 0, err
    assert "<|im_start|>" in "".join(
        json.loads((tmp_path / "trace-chat.json").read_text())["tokens"]
    )
    # an imported axis has no residual norms: percent strengths need a calibration
    code, _, err = run(
        capsys,
        "steer",
        "--model",
        "tiny",
        "--out",
        tmp_path,
        "--prompt",
        "hi",
        "--axis",
        tmp_path / "value_axis.npy",
        "--layers",
        "0",
        "--alpha",
        "5",
    )
    assert_user_error(code, err, 1, "calibration")


def test_sweep(built, capsys, corpus):
    code, out, err = run(
        capsys,
        "sweep",
        "--model",
        "tiny",
        "--out",
        built,
        "--criteria",
        "first:3",
        "--n-per-criterion",
        "1",
        "--corpus",
        corpus,
        "--splits",
        "2",
        "--seed",
        "1",
    )
    assert code == 0, err
    df = pd.read_csv(built / "sweep.csv")
    assert df["layer"].tolist() == [0, 1]
    for col in ("token_auroc_mean", "random_auroc_mean", "position_auroc", "function_score_mean"):
        assert df[col].between(0, 1).all()
    cos = pd.read_csv(built / "layer_cosine.csv", index_col=0)
    np.testing.assert_allclose(np.diag(cos.to_numpy()), 1.0, atol=1e-5)
    assert f"best layer {int(df.loc[df.token_auroc_mean.idxmax(), 'layer'])}" in out
    assert "reusing" in err  # the same data as `build`: its statistics pass is reused
    meta = json.loads((built / "run.json").read_text())
    assert meta["sweep"]["ci"]["level"] == 0.95 and meta["sweep"]["ci"]["cluster"] == "group"
    # the position verdict is printed, from the table's own rd_value
    best = df.loc[df.token_auroc_mean.idxmax()]
    assert f"At layer {int(best['layer'])} the axis" in out and "within-turn sd" in out
    assert "position" in out  # the computed value-beyond-position sentence is printed


def test_sweep_any_method_and_the_method_table(tmp_path, capsys, corpus):
    args = ["--model", "tiny", "--criteria", "first:3", "--n-per-criterion", "1"]
    args += ["--corpus", corpus, "--splits", "2", "--seed", "1"]
    code, out, err = run(capsys, "sweep", "--out", tmp_path / "lda", "--method", "lda", *args)
    assert code == 0, err
    assert pd.read_csv(tmp_path / "lda" / "sweep.csv")["token_auroc_mean"].between(0, 1).all()
    assert json.loads((tmp_path / "lda" / "run.json").read_text())["sweep"]["method"] == "lda"
    code, out, err = run(
        capsys, "sweep", "--out", tmp_path / "all", "--method", "all", "--dose-prompts", "1", *args
    )
    assert code == 0, err
    df = pd.read_csv(tmp_path / "all" / "methods.csv")
    assert set(df["method"]) == set(FITTERS)  # the corpus data has placebo turns: did too
    for m in df["method"]:
        assert (tmp_path / "all" / "methods" / f"{m}_sweep.csv").is_file()
        assert m in out
    assert df["steer_norm"].gt(0).all()
    code, _, err = run(capsys, "sweep", "--out", tmp_path / "x", "--method", "nope", *args)
    assert_user_error(code, err, 1, "register_fitter")


def test_steer_single_and_grid(built, capsys):
    code, out, err = run(
        capsys,
        "steer",
        "--model",
        "tiny",
        "--out",
        built,
        "--prompt",
        "hi",
        "--prompt",
        "2+2?",
        "--layers",
        "1",
        "--alpha",
        "50",
        "--unit",
        "raw",
        "--max-new-tokens",
        "4",
    )
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["prompt"] for x in lines] == ["hi", "2+2?"]
    assert "alpha=50 raw @ layer 1" in lines[0]
    code, out, err = run(
        capsys,
        "steer",
        "--model",
        "tiny",
        "--out",
        built,
        "--prompt",
        "hi",
        "--layers",
        "1",
        "--alpha",
        "-20",
        "--alpha",
        "0",
        "--alpha",
        "20",
        "--unit",
        "raw",
        "--max-new-tokens",
        "3",
    )
    assert code == 0, err
    dose = pd.read_csv(built / "dose.csv")
    assert sorted(set(dose["alpha"])) == [-20.0, 0.0, 20.0] and set(dose["layer"]) == {1}
    assert (built / "dose_slopes.csv").exists()


@pytest.mark.parametrize("suite", ["code", "backtracking", "confidence"])
def test_eval_suites(built, capsys, suite):
    code, out, err = run(
        capsys,
        "eval",
        "--suite",
        suite,
        "--model",
        "tiny",
        "--out",
        built,
        "--n",
        "2",
        "--max-new-tokens",
        "6",
        "--layer",
        "1",
    )
    assert code == 0, err
    meta = json.loads((built / "run.json").read_text())
    assert meta[f"eval_{suite}"] == {"layer": 1, "n": 2, "seed": 0}
    if suite == "code":
        table = pd.read_csv(built / "code.csv")
        assert {"kind", "correct_whole", "corrupted_whole"} <= set(table.columns)


def test_report_collects_everything(built, capsys):
    # draws whatever the earlier commands left in the folder (all of them in a full run)
    assert run(capsys, "trace", "a b c", "--model", "tiny", "--out", built, "--name", "rep")[0] == 0
    code, out, err = run(capsys, "report", "--out", built, "--title", "CLI test")
    assert code == 0, err
    html = Path(out.strip()).read_text()
    assert external_urls(html) == [] and "CLI test" in html and "trace: rep" in html
    heads = {
        "sweep.csv": "Held-out layer sweep",
        "dose.csv": "Steering dose-response",
        "code.csv": "Correct vs corrupted code",
        "confidence.csv": "Verbalized confidence",
        "backtracking_bands.csv": "value per token band",
    }
    for name, head in heads.items():
        assert ((built / name).exists()) == (head in html), name


def test_demo_subcommand_quick_on_tiny(capsys, tmp_path, corpus):
    code, out, err = run(
        capsys,
        "demo",
        "--model",
        "tiny",
        "--quick",
        "--out",
        tmp_path,
        "--corpus",
        corpus,
        "--criteria",
        "first:3",
    )
    assert code == 0, err
    assert Path(out.strip()) == tmp_path / "report.html"
    steps = [json.loads(x)["step"] for x in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert steps == ["data", "stats", "axis", "sweep", "code", "heatmaps", "dose", "report"]


# ------------------------------------------------------------------ methods, units, default layer
BUILD_ARGS = ("--model", "tiny", "--criteria", "first:3", "--n-per-criterion", "1", "--seed", "1")


def _labelled(out: Path):
    """The tiny model and the conversations `build` wrote, labelled the way it labels them."""
    from value_lens.data.icrl import label, load_conversations
    from value_lens.testing import tiny_qwen3

    m = tiny_qwen3()
    m.cfg.n_ctx = 8192
    return m, label(load_conversations(out / "conversations.jsonl"), m)


#: what each method needs collected, spelled out here (not taken from the CLI's own helper); a
#: sample larger than any class keeps every token, whatever size the CLI chose
NEEDS = {
    "mean_diff": {},
    "pca_diff": {},
    "ridge": {"moments": True},
    "logistic": {"sample_per_class": 5000},
}


@pytest.fixture(scope="module")
def built_for_every_method(tmp_path_factory, corpus) -> Path:
    """`value-lens build` once, keeping what every method in :data:`NEEDS` fits on: logistic's
    token sample and (``--unit sd``) the second moments ridge needs. Each method's own build
    then reuses its data and statistics instead of collecting them again."""
    out = tmp_path_factory.mktemp("built_all")
    argv = ["build", *BUILD_ARGS, "--corpus", str(corpus), "--out", str(out)]
    assert main([*argv, "--method", "logistic", "--unit", "sd"]) == 0
    return out


@pytest.fixture(scope="module")
def python_stats(built_for_every_method):
    """The Python side: the conversations `build` wrote, labelled and collected directly with
    what every method needs (each fit reads only its own part)."""
    from value_lens.fitting.collect import collect_stats

    m, data = _labelled(built_for_every_method)
    assert max(data.label_counts().values()) < 2000  # the CLI's logistic sample kept every token
    need = {k: v for n in NEEDS.values() for k, v in n.items()}
    return collect_stats(m, data, batch_size=4, progress=False, **need)


@pytest.mark.parametrize("method", list(NEEDS))
def test_build_each_method_equals_the_python_fit(
    method, built_for_every_method, python_stats, corpus, tmp_path, capsys
):
    out = tmp_path / "out"
    # the data and statistics only: the axis must be this run's
    shutil.copytree(built_for_every_method, out, ignore=shutil.ignore_patterns("axis.*"))
    code, _, err = run(
        capsys, "build", *BUILD_ARGS, "--corpus", corpus, "--out", out, "--method", method
    )
    assert code == 0, err
    assert "reusing" in err  # the same data and statistics: the fit alone ran again
    built = ValueAxis.load(out / "axis.safetensors")
    ref = ValueAxis.fit(python_stats, method)
    assert built.method == method and built.layers == ref.layers == (0, 1)
    torch.testing.assert_close(built.directions, ref.directions, rtol=1e-4, atol=1e-6)
    assert json.loads((out / "run.json").read_text())["method"] == method


@pytest.fixture(scope="module")
def built_sd(tmp_path_factory, corpus) -> Path:
    """`value-lens build --unit sd`: the axis stores each layer's projection sd."""
    out = tmp_path_factory.mktemp("built_sd")
    assert (
        main(["build", *BUILD_ARGS, "--corpus", str(corpus), "--out", str(out), "--unit", "sd"])
        == 0
    )
    return out


def _oracle_scales(out: Path, axis: ValueAxis) -> tuple[float, float]:
    """Mean residual norm and projection sd at layer 0, from HF hidden_states[1] (block 0)."""
    from value_lens.data.tokens import AFTER, BEFORE, IGNORE
    from value_lens.testing import tiny_qwen3_hf

    hf, _ = tiny_qwen3_hf(n_ctx=8192)
    _, data = _labelled(out)
    u = axis.direction(0).double()
    norms, proj = [], []
    with torch.no_grad():
        for ids, lab in zip(data.input_ids, data.labels, strict=True):
            h = hf(ids[None], output_hidden_states=True).hidden_states[1][0].double()
            norms.append(h[lab != IGNORE].norm(dim=-1))
            proj.append(h[(lab == BEFORE) | (lab == AFTER)] @ u)
    p = torch.cat(proj)
    return float(torch.cat(norms).mean()), float(((p - p.mean()) ** 2).mean().sqrt())


@pytest.mark.parametrize("unit", ["raw", "percent", "sd"])
def test_steer_each_unit_converts_alpha(built_sd, unit, capsys):
    axis = ValueAxis.load(built_sd / "axis.safetensors")
    norm, sd = _oracle_scales(built_sd, axis)
    expect = {"raw": 2.0, "percent": 2.0 / 100 * norm, "sd": 2.0 * sd}[unit]
    code, out, err = run(
        capsys,
        "steer",
        "--model",
        "tiny",
        "--out",
        built_sd,
        "--prompt",
        "hi",
        "--layers",
        "0",
        "--alpha",
        "2",
        "--unit",
        unit,
        "--max-new-tokens",
        "2",
    )
    assert code == 0, err
    line = json.loads(out.splitlines()[0])
    assert line["layer"] == 0 and line["raw_alpha"] == pytest.approx(expect, rel=1e-4)
    if unit == "sd":  # the dose-response grid converts the same way
        code, _, err = run(
            capsys,
            "steer",
            "--model",
            "tiny",
            "--out",
            built_sd,
            "--prompt",
            "hi",
            "--layers",
            "0",
            "--alpha",
            "-2",
            "--alpha",
            "2",
            "--unit",
            "sd",
            "--max-new-tokens",
            "2",
        )
        assert code == 0, err
        dose = pd.read_csv(built_sd / "dose.csv")
        got = dose.groupby("alpha")["raw_alpha"].first()
        np.testing.assert_allclose(got.loc[[-2.0, 2.0]], [-expect, expect], rtol=1e-4)


def test_steer_sd_on_an_axis_without_sd_names_the_fix(built, capsys):
    code, _, err = run(
        capsys,
        "steer",
        "--model",
        "tiny",
        "--out",
        built,
        "--prompt",
        "hi",
        "--layers",
        "0",
        "--alpha",
        "1",
        "--unit",
        "sd",
    )
    assert_user_error(code, err, 1, "value-lens build --unit sd")


def test_default_layer_is_the_papers_on_a_36_block_model(tmp_path, capsys):
    from value_lens.core.model import load_model, model_id
    from value_lens.testing import tiny_qwen3

    tiny_qwen3(n_layers=36, path=tmp_path / "deep")
    mid = model_id(load_model(tmp_path / "deep"))
    dirs = torch.randn(36, 64, generator=torch.Generator().manual_seed(0))
    ValueAxis(dirs, model_id=mid, resid_norm=torch.full((36,), 5.0)).save(
        tmp_path / "ax.safetensors"
    )
    common = (
        "--model",
        tmp_path / "deep",
        "--axis",
        tmp_path / "ax.safetensors",
        "--out",
        tmp_path,
    )
    code, out, err = run(capsys, "trace", "Wait, is it?", *common)
    assert code == 0, err
    assert "mean value at layer 20:" in out  # the paper's layer 21 = block 20, not the middle 18
    code, out, err = run(
        capsys,
        "steer",
        *common,
        "--prompt",
        "hi",
        "--alpha",
        "1",
        "--unit",
        "raw",
        "--max-new-tokens",
        "2",
    )
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["layer"] == 20
    code, out, err = run(capsys, "eval", "--suite", "code", *common, "--n", "1")
    assert code == 0, err
    assert json.loads((tmp_path / "run.json").read_text())["eval_code"]["layer"] == 20


def test_help_states_the_layer_convention(capsys):
    for cmd in ("build", "trace", "steer", "eval"):
        code, out, _ = run(capsys, cmd, "--help")
        assert code == 0
        flat = " ".join(out.replace("│", " ").split())  # help text boxed and wrapped
        assert "output of block i" in flat and "hidden_states index i+1" in flat, cmd
        assert "layer 21 is 20" in flat, cmd


# ------------------------------------------------------------------ user errors


def test_usage_errors_are_one_line_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "trace", "--bogus")
    assert_user_error(code, err, 2, "No such option: --bogus")
    code, _, err = run(capsys, "trace", "--model", "tiny", "--out", tmp_path)
    assert_user_error(code, err, 2, "give either a TEXT argument or --file")
    code, _, err = run(capsys, "trace", "x", "--model", "tiny", "--out", tmp_path)
    assert_user_error(code, err, 2, "run `value-lens build` first")
    code, _, err = run(capsys, "eval", "--suite", "nope")
    assert_user_error(code, err, 2, "unknown suite 'nope'")
    code, _, err = run(capsys, "build", "--n-per-criterion", "many")
    assert_user_error(code, err, 2, "valid integer")


def test_library_errors_are_one_line_exit_1(built, capsys, tmp_path):
    axis = built / "axis.safetensors"
    code, _, err = run(capsys, "trace", "x", "--model", "tiny", "--axis", axis, "--layers", "7")
    assert_user_error(code, err, 1, "layer 7")
    code, _, err = run(capsys, "build", "--model", tmp_path / "no_such_model", "--out", tmp_path)
    assert_user_error(code, err, 1, "no_such_model")
    code, _, err = run(
        capsys, "build", "--model", "tiny", "--criteria", "no_such_rule", "--out", tmp_path
    )
    assert_user_error(code, err, 1, "no_such_rule")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(axis.read_bytes()[:-7])
    code, _, err = run(capsys, "trace", "x", "--model", "tiny", "--axis", broken)
    assert_user_error(code, err, 1, "broken.safetensors")
    other = tmp_path / "other.safetensors"
    ValueAxis(torch.ones(2, 32), model_id="someone/else").save(other)
    code, _, err = run(capsys, "trace", "x", "--model", "tiny", "--axis", other)
    assert_user_error(code, err, 1, "d_model 32")
    code, _, err = run(capsys, "report", "--out", tmp_path / "empty_or_missing")
    assert_user_error(code, err, 1, "is not a directory")


def test_installed_entry_point_runs_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("value-lens")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "value_lens"]
    ok = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "demo" in ok.stdout and "steer" in ok.stdout
    bad = subprocess.run(
        [*cmd, "report", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("value-lens: error:") and "holds no results" in bad.stderr


# ------------------------------------------------------------------ the commands' shape
STEP_MODULES = {
    "value_lens.pipeline.steps",
    "value_lens.pipeline.method_steps",
    "value_lens.pipeline.sweep_steps",
    "value_lens.pipeline.read_steps",
    "value_lens.pipeline.steer_steps",
    "value_lens.pipeline.demo",
    "value_lens.pipeline.compare_steps",
    "value_lens.pipeline.export_steps",
}


def _check_commands(module, expected: set[str]) -> None:
    """The commands ``module`` registers are ``expected``, each short and calling a step."""
    import ast
    import inspect

    from value_lens.cli.options import app

    tree = ast.parse(inspect.getsource(module))
    steps = set()  # names bound to a step module or to a function of one
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "value_lens.pipeline"
        ):
            for a in node.names:
                if node.module in STEP_MODULES or f"{node.module}.{a.name}" in STEP_MODULES:
                    steps.add(a.asname or a.name)
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    registered = {
        c.callback.__name__
        for c in app.registered_commands
        if c.callback.__module__ == module.__name__
    }
    assert registered == expected
    assert registered <= set(funcs)  # every command is defined in its module
    for name in registered:
        body = funcs[name].body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring (the command's help)
        lines = body[-1].end_lineno - body[0].lineno + 1
        assert lines <= 25, f"{name} has {lines} lines; move the work into a pipeline step"
        calls = [n for n in ast.walk(funcs[name]) if isinstance(n, ast.Call)]
        roots = {ast.unparse(c.func).split(".")[0] for c in calls}
        assert roots & steps, f"{name} calls no pipeline step"


def test_every_command_is_short_and_calls_a_pipeline_step():
    """A command parses its options, calls a pipeline step and prints where results went."""
    from value_lens.cli import commands, export, sweep
    from value_lens.cli.options import app

    modules = {c.callback.__module__ for c in app.registered_commands}
    # live: tests/cli/test_cli_live.py
    assert modules == {commands.__name__, export.__name__, sweep.__name__, "value_lens.cli.live"}
    batch = {"build", "trace", "steer", "eval_", "report", "demo", "posttrain", "compare"}
    _check_commands(commands, batch)
    _check_commands(export, {"export"})
    _check_commands(sweep, {"sweep"})


def test_export_writes_a_llama_cpp_control_vector(capsys, tmp_path):
    """`value-lens export` = `ValueAxis.to_gguf` at steer's default layer, recorded in run.json."""
    from value_lens.fitting.gguf import read_control_vector

    axis = ValueAxis(torch.arange(1.0, 4 * 8 + 1).reshape(4, 8), resid_norm=torch.full((4,), 50.0))
    axis.save(tmp_path / "axis.safetensors")
    code, out, err = run(capsys, "export", "--out", tmp_path, "--alpha", "10")
    assert code == 0, err
    path = Path(out.strip())
    assert path == tmp_path / "value_axis.gguf" and "--control-vector" in err
    cv = read_control_vector(path)
    assert sorted(cv.directions) == [2]  # default_layer(4) = 2, as `value-lens steer` steers
    u = axis.direction(2).numpy()
    np.testing.assert_allclose(cv.directions[2], 10 / 100 * 50.0 * u, rtol=1e-6)
    meta = json.loads((tmp_path / "run.json").read_text())["export"]
    assert meta["layers"] == [2] and meta["unit"] == "percent" and meta["alpha"] == 10.0
    code, out, err = run(
        capsys, "export", "--out", tmp_path, "--alpha", "3", "--unit", "raw",
        "--layers", "1-3", "--file", "x.gguf",
    )  # fmt: skip
    assert code == 0, err
    cv = read_control_vector(tmp_path / "x.gguf")
    assert sorted(cv.directions) == [1, 2, 3]
    np.testing.assert_allclose(np.linalg.norm(cv.directions[3]), 3.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["--layers", "0"], 1, "block 0"),
        (["--format", "onnx"], 1, "unknown export format"),
        (["--unit", "sigma"], 1, "unknown strength unit"),
        (["--axis", "missing.safetensors"], 1, "does not exist"),
    ],
)
def test_export_user_errors(capsys, tmp_path, args, code, match):
    ValueAxis(torch.ones(4, 8)).save(tmp_path / "axis.safetensors")
    got, _, err = run(capsys, "export", "--out", tmp_path, "--alpha", "1", *args)
    assert_user_error(got, err, code, match)
