"""``value-lens monitor`` and ``value-lens chat`` end to end on the tiny model (typer's CliRunner).

Oracles: independent ``vl.generate`` calls with the same settings for the streamed tokens, and
``vl.trace`` of prompt + reply for the values written to ``monitor.jsonl``.
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import value_lens as vl
from value_lens.cli import live
from value_lens.cli.main import app, main
from value_lens.core.generate import GenerationConfig
from value_lens.viz.terminal import token_text

TOKENS = ["--model", "tiny", "--max-new-tokens", "5", "--temperature", "1.0", "--seed", "2"]
GEN = GenerationConfig(max_new_tokens=5, temperature=1.0, seed=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny) -> Path:
    """A results folder holding only an axis, as `value-lens build` leaves one."""
    out = tmp_path_factory.mktemp("live")
    g = torch.Generator().manual_seed(4)
    vl.ValueAxis(torch.randn(2, 64, generator=g), model_id=tiny.cfg.model_name).save(
        out / "axis.safetensors"
    )
    return out


def _invoke(*args: str, stdin: str | None = None):
    res = CliRunner().invoke(app, [str(a) for a in args], input=stdin)
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def _flat(s: str) -> str:
    return "".join(s.split())


def test_monitor_streams_each_prompt_and_writes_its_values(run_dir, tiny, tmp_path):
    out = tmp_path / "mon"
    prompts = ["hello there", "is 91 prime?"]
    res = _invoke(
        "monitor", *TOKENS, "--out", out, "--axis", run_dir / "axis.safetensors",
        "--layer", "1", "--prompt", prompts[0], "--prompt", prompts[1],
    )  # fmt: skip
    ref = vl.generate(tiny, [[{"role": "user", "content": p}] for p in prompts], GEN)
    recs = [json.loads(x) for x in (out / "monitor.jsonl").read_text().splitlines()]
    axis = vl.ValueAxis.load(run_dir / "axis.safetensors")
    text = _flat(res.stdout)
    for p, g, rec in zip(prompts, ref, recs, strict=True):
        assert rec["prompt"] == p and rec["layer"] == 1
        assert rec["tokens"] == [tiny.tokenizer.decode([i]) for i in g.output_ids.tolist()]
        oracle = vl.trace(tiny, torch.cat([g.prompt_ids, g.output_ids]), axis, [1]).cosine[0]
        torch.testing.assert_close(
            torch.tensor(rec["values"]), oracle[g.prompt_ids.numel() :], atol=1e-5, rtol=0
        )
        assert _flat(p + token_text(rec["tokens"], rec["values"], 1.0).plain) in text
    assert "[0] 5 tokens, mean value" in res.stdout and "final ema" in res.stdout
    assert (out / "monitor.html").read_text().count('class="vl-tok"') == sum(
        g.n_tokens for g in ref
    )


def test_monitor_reads_the_axis_of_the_run_dir_and_stops_early(run_dir):
    res = _invoke(
        "monitor", *TOKENS, "--out", run_dir, "--prompt", "hi", "--stop-below", "2",
        "--stop-after", "1", "--aggregate", "mean:8",
    )  # fmt: skip
    assert "[0] 2 tokens" in res.stdout and "final mean" in res.stdout
    assert "stopped by rule" in res.stdout
    assert json.loads((run_dir / "monitor.jsonl").read_text())["stopped"] is True


def test_monitor_raw_prompts_are_generated_as_given(run_dir, tiny, tmp_path):
    out = tmp_path / "raw"
    _invoke("monitor", *TOKENS, "--out", out, "--axis", run_dir / "axis.safetensors",
            "--prompt", "The fox", "--raw")  # fmt: skip
    (rec,) = [json.loads(x) for x in (out / "monitor.jsonl").read_text().splitlines()]
    (ref,) = vl.generate(tiny, ["The fox"], GEN)  # no chat template
    assert rec["tokens"] == [tiny.tokenizer.decode([i]) for i in ref.output_ids.tolist()]
    chat = vl.generate(tiny, [[{"role": "user", "content": "The fox"}]], GEN)[0]
    assert chat.output_ids.tolist() != ref.output_ids.tolist()  # the flag is observable


def test_chat_two_turns_then_exit(run_dir, tiny):
    res = _invoke("chat", *TOKENS, "--out", run_dir, stdin="hi\nhow are you?\n/exit\nignored\n")
    turns = [json.loads(x) for x in (run_dir / "chat.jsonl").read_text().splitlines()]
    assert [t["user"] for t in turns] == ["hi", "how are you?"]
    history = [{"role": "user", "content": "hi"}]
    first = vl.generate(tiny, [history], GEN)[0]
    history += [
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "how are you?"},
    ]
    second = vl.generate(tiny, [history], GEN)[0]
    assert [t["assistant"] for t in turns] == [first.text, second.text]
    text = _flat(res.stdout)
    for t in turns:
        assert _flat(token_text(t["tokens"], t["values"], 1.0).plain) in text
    assert res.stdout.count("model>") == 2 and "ignored" not in res.stdout


def test_chat_ends_at_end_of_input(run_dir):
    res = _invoke("chat", *TOKENS, "--out", run_dir, stdin="")
    assert "model>" not in res.stdout


def test_live_commands_report_user_errors_in_one_line(tmp_path, capsys):
    code = main(["monitor", "--model", "tiny", "--out", str(tmp_path), "--prompt", "x"])
    err = capsys.readouterr().err
    assert code == 2 and "run `value-lens build` first" in err and "Traceback" not in err
    code = main(["chat", "--model", "tiny", "--out", str(tmp_path), "--aggregate", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and "--aggregate" in err and "Traceback" not in err


def test_live_commands_are_short():
    """Like the other commands: parse options, call the live step (value_lens.pipeline.live_steps)."""
    tree = ast.parse(inspect.getsource(live))
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    registered = {c.callback.__name__ for c in live.app.registered_commands}
    assert {"monitor", "chat"} <= registered
    for name in ("monitor", "chat"):
        body = funcs[name].body[1:]  # after the docstring
        lines = body[-1].end_lineno - body[0].lineno + 1
        assert lines <= 25, f"{name} has {lines} lines"
        calls = {ast.unparse(c.func) for c in ast.walk(funcs[name]) if isinstance(c, ast.Call)}
        assert f"live_steps.{'watch' if name == 'monitor' else 'chat'}" in calls
