"""The code style gates run with the tests: ruff (lint + format) and mypy."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("args", [("ruff", "check", "."), ("ruff", "format", "--check", ".")])
def test_ruff(args):
    res = _run(*args)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy():
    res = _run("mypy")
    assert res.returncode == 0, res.stdout + res.stderr
