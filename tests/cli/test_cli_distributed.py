"""`torchrun --nproc-per-node 2 -m value_lens build` on the tiny model equals one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests._demo_data import SMALL_CORPUS
from value_lens.cli.main import main
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.stats import ActivationStats
from value_lens.pipeline.launch import ENV_VARS, from_env


def build_args(out, corpus) -> list[str]:
    return [
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
        "--batch-size",
        "1",
    ]


def test_torchrun_build_equals_one_process(tmp_path, monkeypatch):
    corpus = tmp_path / "small.txt"
    corpus.write_text(SMALL_CORPUS + "\n")
    one, two = tmp_path / "one", tmp_path / "two"
    for k in ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    assert main(build_args(one, corpus)) == 0
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(OMP_NUM_THREADS="1", VALUE_LENS_TYPECHECK="0")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "value_lens",
        *build_args(two, corpus),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 0 alone prints: one result line, one 'loading' line
    assert done.stdout.split() == [str(two / "axis.safetensors")], done.stdout
    assert done.stderr.count("loading model tiny") == 1, done.stderr[-3000:]
    a, b = (ActivationStats.load(d / "stats.safetensors") for d in (one, two))
    assert b.meta["distributed"]["world"] == 2 and "distributed" not in a.meta
    assert a.groups == b.groups and a.classes == b.classes and a.layers == b.layers
    assert torch.equal(a.count, b.count)
    torch.testing.assert_close(b.sum, a.sum, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(b.norm_sum, a.norm_sum, rtol=1e-12, atol=1e-9)
    ax, bx = (ValueAxis.load(d / "axis.safetensors") for d in (one, two))
    assert ax.layers == bx.layers
    torch.testing.assert_close(bx.directions, ax.directions, rtol=1e-6, atol=1e-7)
    conv = "conversations.jsonl"
    assert (two / conv).read_text() == (one / conv).read_text()
    assert json.loads((two / "run.json").read_text()) == json.loads((one / "run.json").read_text())


def test_torchrun_env():
    assert from_env({}) is None
    full = {
        "RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "h",
        "MASTER_PORT": "1",
    }
    assert from_env(full).writer
    with pytest.raises(InputError, match=r"\['MASTER_PORT'\] are unset"):
        from_env({k: v for k, v in full.items() if k != "MASTER_PORT"})
    with pytest.raises(InputError, match="must be in"):
        from_env({**full, "RANK": "2"})
