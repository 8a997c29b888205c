"""`torchrun --nproc-per-node 2 -m value_lens sweep` on the tiny model equals one process, rank 0
alone prints and writes, and a finished sweep is reused (by the CLI under torchrun and by the
step, for the same request only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests._demo_data import SMALL_CORPUS
from value_lens.cli.main import main
from value_lens.pipeline import steps, sweep_steps
from value_lens.pipeline.launch import ENV_VARS
from value_lens.pipeline.options import load_model_option

# columns that count (exact); every other column is a float (within 1e-9)
COUNTS = ["layer", "n_splits", "n_train_groups", "n_test_groups"]


def sweep_args(out, corpus) -> list[str]:
    opts = {"model": "tiny", "out": out, "criteria": "first:3", "n-per-criterion": 1}
    opts.update({"corpus": corpus, "seed": 1, "batch-size": 1, "splits": 2})
    return ["sweep", *(x for k, v in opts.items() for x in (f"--{k}", str(v)))]


def torchrun(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(OMP_NUM_THREADS="1", VALUE_LENS_TYPECHECK="0")
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*run, "-m", "value_lens", *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def assert_same_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got[COUNTS].equals(want[COUNTS])
    exact = [c for c in want.columns if c in COUNTS or want[c].dtype == bool]
    assert got[exact].equals(want[exact])
    floats = [c for c in want.columns if c not in exact]
    np.testing.assert_allclose(got[floats].to_numpy(), want[floats].to_numpy(), rtol=0, atol=1e-9)


def test_torchrun_sweep_equals_one_process_and_is_reused(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "small.txt"
    corpus.write_text(SMALL_CORPUS + "\n")
    one, two = tmp_path / "one", tmp_path / "two"
    for k in ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    assert main(sweep_args(one, corpus)) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("best layer ") and printed.count("best layer") == 1

    done = torchrun(sweep_args(two, corpus))
    # rank 0 alone prints: the one-process lines (its path), once; one 'loading' line
    assert done.stdout == printed.replace(str(one), str(two)), done.stdout
    assert done.stderr.count("loading model tiny") == 1, done.stderr[-3000:]
    table = pd.read_csv(two / "sweep.csv")
    assert_same_table(table, pd.read_csv(one / "sweep.csv"))
    cos = [pd.read_csv(d / "layer_cosine.csv", index_col=0) for d in (one, two)]
    np.testing.assert_allclose(cos[1].to_numpy(), cos[0].to_numpy(), rtol=0, atol=1e-9)
    # the ranks made the same data and only rank 0 wrote it (another writer appends duplicates)
    conv = "conversations.jsonl"
    assert (two / conv).read_text() == (one / conv).read_text()
    metas = [json.loads((d / "run.json").read_text()) for d in (one, two)]
    assert [m["sweep"].pop("processes") for m in metas] == [1, 2]  # swept in a 2-rank group
    assert metas[1] == metas[0]

    # a second run reuses the saved sweep: an edited table comes back as it is
    table.loc[table["layer"] == 1, "token_auroc_mean"] = 0.987
    table.to_csv(two / "sweep.csv", index=False)
    again = torchrun(sweep_args(two, corpus))
    assert again.stdout.startswith(f"best layer 1: token AUROC 0.987; wrote {two / 'sweep.csv'}")
    assert again.stderr.count(f"reusing {two / 'sweep.csv'}") == 1, again.stderr[-3000:]
    assert pd.read_csv(two / "sweep.csv")["token_auroc_mean"].max() == 0.987


def test_a_rank_other_than_0_sweeps_but_writes_and_prints_nothing(tmp_path, monkeypatch, capsys):
    """Rank 1 of 2 as torchrun describes it, in a one-process group opened here (which the
    step keeps): the command runs the sweep in the group to the end, and leaves no file and
    no output."""
    corpus = tmp_path / "small.txt"
    corpus.write_text(SMALL_CORPUS + "\n")
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1"}
    for k, v in {**env, "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(k, v)
    seen: list[tuple[dict, object]] = []
    real = sweep_steps.layer_sweep

    def spying(*args, **kwargs):
        seen.append((kwargs, real(*args, **kwargs)))
        return seen[-1][1]

    monkeypatch.setattr(sweep_steps, "layer_sweep", spying)
    init = f"file://{tmp_path / 'init'}"
    torch.distributed.init_process_group("gloo", init_method=init, rank=0, world_size=1)
    try:
        assert main(sweep_args(tmp_path / "out", corpus)) == 0
    finally:
        torch.distributed.destroy_process_group()
    (kwargs, result), *_ = seen
    assert len(seen) == 1 and kwargs["distributed"] and result.table["layer"].tolist() == [0, 1]
    assert capsys.readouterr() == ("", "")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def model():
    return load_model_option("tiny")


def test_the_step_reuses_a_finished_sweep_for_the_same_request_only(model, tmp_path, monkeypatch):
    corpus = tmp_path / "small.txt"
    corpus.write_text(SMALL_CORPUS + "\n")
    crit = ["semicolon", "colon", "dash"]
    data = steps.build_data(
        model, tmp_path / "d", n_per_criterion=1, criteria=crit, seed=1, corpus=corpus
    ).tokens
    calls: list[dict] = []
    made: list = []
    real = sweep_steps.layer_sweep

    def counting(*args, **kwargs):
        calls.append(kwargs)
        if not made:
            made.append(real(*args, **kwargs))
        return made[0]  # the first sweep is real; later ones are only counted

    monkeypatch.setattr(sweep_steps, "layer_sweep", counting)
    out = tmp_path / "out"
    kw = {"n_splits": 2, "seed": 1, "batch_size": 1}
    first = sweep_steps.sweep(model, data, out, **kw)
    logs: list[str] = []
    again = sweep_steps.sweep(model, data, out, log=logs.append, **kw)
    assert len(calls) == 1 and any("reusing" in x and "sweep.csv" in x for x in logs)
    assert_same_table(again.table, first.table)
    np.testing.assert_allclose(again.result.cosine, first.result.cosine, rtol=0, atol=1e-12)
    assert again.result.config == first.result.config
    assert again.result.settings == json.loads(json.dumps(first.result.settings))
    assert again.summary() == first.summary()
    # each call differs from the sweep saved last in one thing: it runs again
    kw["seed"] = 2
    sweep_steps.sweep(model, data, out, **kw)
    sweep_steps.sweep(model, data, out, layers=[1], **kw)
    sweep_steps.sweep(model, data.subset(range(len(data) - 1)), out, layers=[1], **kw)
    assert len(calls) == 4
