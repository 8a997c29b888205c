"""The executed tutorial notebooks, shared by the tutorial tests and the docs build of one test run.

``tutorials/run_notebooks.py`` executes a notebook into a folder unless it is there already,
under a lock, so pytest-xdist workers split the six between them instead of each running all.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_notebooks() -> Any:
    """``tutorials/run_notebooks.py`` as a module."""
    sys.path.insert(0, str(ROOT / "tutorials"))
    try:
        import run_notebooks
    finally:
        sys.path.remove(str(ROOT / "tutorials"))
    return run_notebooks


def executed_folder(tmp_path_factory: Any) -> Path:
    """One folder per test run, shared by its xdist workers (the parent of their base temps)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return root / "tutorials_executed"
