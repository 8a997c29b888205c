"""`value-lens posttrain` and `value-lens compare` on the tiny model: the saved model is what the
library's recipe returns and loads through `--model DIR`; compare's CSVs are what the library's
comparisons return on the same models and prompts; both commands stay short."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

pytest.importorskip("trl", reason="the training extra is missing: pip install 'value_lens[train]'")
pytest.importorskip("peft", reason="the training extra is missing: pip install 'value_lens[train]'")

import value_lens as vl
from value_lens.cli.main import main
from value_lens.compare import preference_rank, selection_accuracy, word_delta
from value_lens.core.model import model_id
from value_lens.data.preference import eval_prompts, word_pairs
from value_lens.data.sentences import word_sentences
from value_lens.fitting.axis import ValueAxis
from value_lens.pipeline.report import report_sections
from value_lens.pipeline.rundir import RESULT_FILES
from value_lens.posttrain import dpo
from value_lens.testing import tiny_qwen3, tiny_qwen3_hf

WORD, PAIRS, SEED = "kite", 4, 7
TRAIN = ["--epochs", "1", "--batch-size", "4", "--lr", "5e-3", "--lora-r", "4"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A results folder where `value-lens posttrain --model tiny` ran (DPO, 4 pairs, 1 epoch)."""
    out = tmp_path_factory.mktemp("posttrain")
    torch.manual_seed(0)  # the LoRA's initialisation draws from the global generator
    argv = ["posttrain", "--model", "tiny", "--word", WORD, "--pairs", str(PAIRS)]
    assert main([*argv, "--seed", str(SEED), *TRAIN, "--out", str(out)]) == 0
    return out


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return dict(AutoModelForCausalLM.from_pretrained(path).state_dict())


def test_posttrain_saves_the_recipes_model_which_differs_from_the_base(trained):
    saved = _weights(trained / "model")
    base, tok = tiny_qwen3_hf()  # the weights of --model tiny
    torch.manual_seed(0)
    pairs = word_pairs(WORD, n=PAIRS, seed=SEED)
    oracle = dpo(base, tok, pairs, epochs=1, batch_size=4, lr=5e-3, lora={"r": 4}, seed=SEED)
    want, before = oracle.state_dict(), base.state_dict()
    assert set(saved) >= {k for k in want if k != "lm_head.weight"}  # tied head: not saved
    changed = [k for k in saved if not torch.equal(saved[k], before[k])]
    assert any("self_attn.q_proj" in k for k in changed) and any("mlp" in k for k in changed)
    assert "model.embed_tokens.weight" not in changed  # LoRA trains linear layers only
    for k, v in saved.items():
        torch.testing.assert_close(v, want[k], rtol=1e-5, atol=1e-6, msg=k)
    meta = json.loads((trained / "run.json").read_text())["posttrain"]
    assert (meta["method"], meta["word"], meta["n_pairs"]) == ("dpo", WORD, PAIRS)
    assert meta["settings"]["epochs"] == 1 and meta["settings"]["lora"]["r"] == 4
    rows = [json.loads(x) for x in (trained / "pairs.jsonl").read_text().splitlines()]
    assert rows == json.loads(json.dumps(pairs))


def test_the_saved_model_loads_through_model_dir_and_reads_differently(trained):
    tuned, base = vl.load_model(trained / "model"), tiny_qwen3()
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        a, b = base(ids), tuned(ids)
    assert tuned.cfg.n_layers == 2 and not torch.allclose(a, b, atol=1e-4)


def test_posttrain_sft_trains_on_the_chosen_replies(tmp_path, capsys):
    argv = ["posttrain", "--model", "tiny", "--method", "sft", "--pairs", "4", *TRAIN]
    code, out, err = run(capsys, *argv, "--out", tmp_path)
    assert code == 0, err
    assert out.strip() == str(tmp_path / "model")
    saved, (base, _) = _weights(tmp_path / "model"), tiny_qwen3_hf()
    assert any(not torch.equal(v, base.state_dict()[k]) for k, v in saved.items())
    assert json.loads((tmp_path / "run.json").read_text())["posttrain"]["method"] == "sft"
    # the size it chose, then after the measured first step the estimate of the whole run
    assert "the CPU size (--paper for the paper's): 4 pairs" in err
    est = re.search(r"SFT: first step took (\d+\.\d) s; (\d+) steps, about .+ in all", err)
    assert est is not None, err
    assert int(est.group(2)) == 1  # 4 pairs, batch 16, 1 epoch
    assert "100%" in err and "1/1" in err  # the progress bar, finished


@pytest.mark.parametrize(("cuda", "paper", "want"), [(False, [], (64, 2.0)), (True, [], (640, None)),
                         (False, ["--paper"], (640, None)), (True, ["--no-paper"], (64, 2.0))])  # fmt: skip
def test_posttrain_picks_the_papers_size_on_cuda_and_a_cpu_size_otherwise(
    monkeypatch, capsys, tmp_path, cuda, paper, want
):
    from value_lens.pipeline import compare_steps

    seen = {}

    def fake(hf, tok, out, *, n_pairs, epochs, **kw):  # noqa: ARG001
        seen.update(n_pairs=n_pairs, epochs=epochs, progress=kw["progress"])
        return compare_steps.Posttrained(None, Path(out) / "model", None)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(compare_steps, "posttrain", fake)
    code, _, err = run(capsys, "posttrain", "--model", "tiny", *paper, "--out", tmp_path)
    assert code == 0, err
    assert (seen["n_pairs"], seen["epochs"]) == want and seen["progress"] is True
    assert ("the paper's size" in err) == (want[1] is None)
    code, _, err = run(capsys, "posttrain", "--model", "tiny", "--pairs", "8", "--epochs", "3",
                       *paper, "--out", tmp_path)  # fmt: skip
    assert (seen["n_pairs"], seen["epochs"]) == (8, 3.0)


def test_posttrain_rejects_an_unknown_method(tmp_path, capsys):
    code, _, err = run(capsys, "posttrain", "--model", "tiny", "--method", "ppo", "--out", tmp_path)
    assert code == 1 and "method must be 'dpo' or 'sft'" in err


@pytest.fixture(scope="module")
def compared(trained, tmp_path_factory) -> tuple[Path, Path, str]:
    out = tmp_path_factory.mktemp("compare")
    axis_path = out / "random_axis.safetensors"
    directions = torch.randn(2, 64, generator=torch.Generator().manual_seed(3))
    ValueAxis(directions, model_id=model_id(tiny_qwen3())).save(axis_path)
    argv = ["compare", "--base", "tiny", "--tuned", trained / "model", "--word", WORD]
    argv += ["--layer", "0", "--axis", axis_path, "--prompts", "4", "--n-boot", "50"]
    code = main([str(a) for a in [*argv, "--seed", "2", "--out", out]])
    assert code == 0
    return out, axis_path, str(trained / "model")


def _models(tuned_dir: str) -> dict[str, object]:
    return {"base": tiny_qwen3(), "tuned": vl.load_model(tuned_dir)}


def _same(path: Path, want: pd.DataFrame) -> None:
    got = pd.read_csv(path)
    want = pd.read_csv(pd.io.common.StringIO(want.to_csv(index=False)))  # the CSV round trip
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6)


def test_compare_selection_summary_equals_the_library_call(compared):
    out, _, tuned = compared
    models = _models(tuned)
    prompts = eval_prompts(WORD, n=4, seed=2)
    res = selection_accuracy(models, prompts, WORD, n_boot=50, seed=2)
    _same(out / RESULT_FILES["selection_summary"], res.summary)
    _same(out / RESULT_FILES["selection"], res.table)
    base, tuned_rows = (res.table[res.table.model == m].loglik.to_numpy() for m in models)
    assert abs(base - tuned_rows).max() > 1e-4  # the tuned model really is another model


def test_compare_ranks_and_word_delta_equal_the_library_calls(compared):
    out, axis_path, tuned = compared
    models, axis = _models(tuned), ValueAxis.load(axis_path)
    prompts = eval_prompts(WORD, n=4, seed=2)
    for name, position in (("rank_assistant", "assistant"), ("rank_user", "user")):
        res = preference_rank(models, axis, 0, prompts, WORD, position=position, n_boot=50, seed=2)
        _same(out / RESULT_FILES[name], res.table)
        _same(out / RESULT_FILES[f"{name}_summary"], res.summary)
    res = word_delta(*models.values(), axis, 0, word_sentences(), WORD, n_boot=50, seed=2)
    _same(out / RESULT_FILES["word_delta_summary"], res.summary)
    meta = json.loads((out / "run.json").read_text())["compare"]
    assert (meta["word"], meta["layer"], meta["n_prompts"]) == (WORD, 0, 4)


def test_the_report_has_a_compare_section_with_every_summary(compared):
    out, _, _ = compared
    sections = dict(report_sections(out))
    items = sections["Did post-training move the value axis?"]
    tables = [x for x in items if isinstance(x, pd.DataFrame)]
    assert len(tables) == 4 and sum(hasattr(x, "to_plotly_json") for x in items) == 4
    assert "Fig 13" in " ".join(x for x in items if isinstance(x, str))
    assert main(["report", "--out", str(out)]) == 0 and (out / "report.html").exists()


def test_compare_reads_the_axis_in_out_when_none_is_given(compared, capsys, tmp_path):
    _, axis_path, tuned = compared
    (tmp_path / "axis.safetensors").write_bytes(axis_path.read_bytes())
    argv = ["compare", "--base", "tiny", "--tuned", tuned, "--layer", "0", "--prompts", "4"]
    code, _, err = run(capsys, *argv, "--n-boot", "50", "--seed", "2", "--out", tmp_path)
    assert code == 0, err
    want = pd.read_csv(compared[0] / RESULT_FILES["rank_user"])
    _same(tmp_path / RESULT_FILES["rank_user"], want)


def test_compare_and_posttrain_are_short_and_call_a_pipeline_step():
    from value_lens.cli import commands

    tree = ast.parse(inspect.getsource(commands))
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    for name in ("posttrain", "compare"):
        body = funcs[name].body[1:]  # after the docstring (the command's help)
        assert body[-1].end_lineno - body[0].lineno + 1 <= 25, name
        calls = {ast.unparse(c.func) for c in ast.walk(funcs[name]) if isinstance(c, ast.Call)}
        assert f"compare_steps.{name}" in calls, name


@pytest.mark.slow
def test_compare_fits_an_axis_on_the_base_when_there_is_none(compared, capsys, tmp_path):
    """About 10 s: the packaged corpus's conversations are long even for two criteria."""
    tuned = compared[2]
    argv = ["compare", "--base", "tiny", "--tuned", tuned, "--prompts", "2", "--n-boot", "20"]
    argv += ["--criteria", "first:2", "--n-per-criterion", "1", "--out", tmp_path]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert "fitting one on the base model" in err
    axis = ValueAxis.load(tmp_path / "axis.safetensors")
    assert axis.model_id == model_id(tiny_qwen3()) and axis.directions.norm() > 0
    assert len(json.loads((tmp_path / "run.json").read_text())["criteria"]) == 2
    res = preference_rank(_models(tuned), axis, 1, eval_prompts(WORD, n=2), WORD, n_boot=20)
    _same(tmp_path / RESULT_FILES["rank_assistant"], res.table)
