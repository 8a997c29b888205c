"""Execute the tutorial notebooks offline, once per folder, for the tests and the documentation.

``tests/project/test_tutorials.py`` checks the executed notebooks and the docs build
(``docs/hooks/tutorial_pages.py``) renders them as pages; both call :func:`executed`, which runs a
notebook only if its executed copy is not in the folder yet. A lock file per notebook lets two
processes (pytest-xdist workers) share the folder: one executes, the other waits and reads.

Run ``python tutorials/run_notebooks.py OUT_DIR`` to execute all six into OUT_DIR.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAMES = (
    "01_quickstart.ipynb",
    "02_layer_sweeps.ipynb",
    "03_steering.ipynb",
    "04_evaluations.ipynb",
    "05_your_own_data.ipynb",
    "06_posttraining.ipynb",
)
CELL_TIMEOUT_S = 600


def _env() -> dict[str, str]:
    """The kernel's environment: offline, one thread, the CPU defaults (also on a GPU machine),
    this checkout first on the import path."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return env


def execute(name: str, workdir: Path) -> nbformat.NotebookNode:
    """Run ``tutorials/name`` in a fresh kernel with ``workdir`` as its working directory (what
    it writes stays there); raises nbclient's CellExecutionError, with the traceback, on failure."""
    import nbclient

    nb = nbformat.read(HERE / name, as_version=4)
    workdir.mkdir(parents=True, exist_ok=True)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=_env())
    return nb


def executed(name: str, folder: Path) -> Path:
    """``folder/name`` executed (run now unless another process already did); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not out.exists():
            nb = execute(name, folder / f"{Path(name).stem}_work")
            tmp = out.with_suffix(".tmp")
            nbformat.write(nb, tmp)
            os.replace(tmp, out)
    return out


def source_key() -> str:
    """A digest of what the executed notebooks depend on: the notebooks and value_lens's code."""
    h = hashlib.sha256()
    files = [HERE / n for n in NAMES] + sorted((ROOT / "value_lens").rglob("*.py"))
    for p in files:
        h.update(p.relative_to(ROOT).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else ROOT / ".cache" / "tutorials" / source_key()
    for name in NAMES:
        print("executed", executed(name, folder))


if __name__ == "__main__":
    main(sys.argv[1:])
