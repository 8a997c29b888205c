"""The tutorials: committed without outputs, generated from their source, and runnable offline.

Each notebook is executed once per test run by ``tutorials/run_notebooks.py`` (nbclient, a fresh
working directory, the embedded SmolLM2-135M-Instruct, CPU only, the network disabled for the
Hugging Face libraries); the docs build (tests/project/test_docs.py) renders the same executed
copies as pages, so nothing runs twice.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests._offline import external_urls
from tests._tutorials import executed_folder, run_notebooks

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"
NAMES = [
    "01_quickstart.ipynb",
    "02_layer_sweeps.ipynb",
    "03_steering.ipynb",
    "04_evaluations.ipynb",
    "05_your_own_data.ipynb",
    "06_posttraining.ipynb",
]
nbformat = pytest.importorskip("nbformat")


def _builder():
    sys.path.insert(0, str(TUTORIALS))
    try:
        import build_notebooks
    finally:
        sys.path.remove(str(TUTORIALS))
    return build_notebooks


def test_the_tutorials_are_there():
    assert sorted(p.name for p in TUTORIALS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_valid_and_has_no_outputs(name):
    nb = nbformat.read(TUTORIALS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: a code cell has outputs; strip them"
            assert cell.execution_count is None, f"{name}: a code cell has an execution count"
    # the first code cell is the parameter cell: embedded model by default, Qwen3-8B on a GPU
    params = next(c.source for c in nb.cells if c.cell_type == "code")
    assert "torch.cuda.is_available()" in params and '"Qwen/Qwen3-8B"' in params
    assert "MODEL, DEVICE, DTYPE = None" in params


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_generator(name):
    """``tutorials/build_notebooks.py`` is the source; the committed file must be its output."""
    built = _builder().build(name)
    committed = nbformat.read(TUTORIALS / name, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in built.cells], (
        f"{name} differs from tutorials/build_notebooks.py; run `python tutorials/build_notebooks.py`"
    )


@pytest.mark.parametrize("name", NAMES)
def test_gpu_branch_of_the_parameter_cell_defines_the_same_names(name, monkeypatch):
    """On a GPU the parameter cell picks Qwen3-8B on cuda and defines every name the CPU one does."""
    import torch

    params = next(
        c.source
        for c in nbformat.read(TUTORIALS / name, as_version=4).cells
        if c.cell_type == "code"
    )
    spaces = {}
    for gpu in (False, True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda gpu=gpu: gpu)
        ns: dict = {}
        exec(compile(params, f"{name}:params", "exec"), ns)
        spaces[gpu] = {k: v for k, v in ns.items() if k.isupper()}
    assert spaces[True].keys() == spaces[False].keys()
    assert spaces[True]["MODEL"] == "Qwen/Qwen3-8B" and spaces[True]["DEVICE"] == "cuda"
    assert spaces[False]["MODEL"] is None and spaces[False]["DEVICE"] == "cpu"
    assert spaces[True]["LAYER"] == 20  # the paper's layer 21


def _outputs_text(nb) -> str:
    return json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tutorial_runs_offline(name, tmp_path_factory):
    """Executed once per test run (tests/_tutorials.py); the docs build renders the same copies."""
    pytest.importorskip("nbclient")
    rn = run_notebooks()
    assert tuple(NAMES) == rn.NAMES
    # raises CellExecutionError (with the traceback) if any cell fails
    nb = nbformat.read(rn.executed(name, executed_folder(tmp_path_factory)), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = _outputs_text(nb)
    # script bodies aside (the embedded plotly.js bundle names CDN URLs that only geo charts use)
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", text, flags=re.S)
    assert "cdn.plot.ly" not in markup and "cdn.jsdelivr" not in markup
    for o in outputs:
        html = o.get("data", {}).get("text/html")
        if html:
            html = "".join(html) if isinstance(html, list) else html
            assert not external_urls(html), f"{name}: an output loads {external_urls(html)}"
    # the parameter cell ran on the CPU defaults and the model loaded
    assert "SmolLM2-135M-Instruct" in text
    # no warnings printed (e.g. tqdm's "IProgress not found" without ipywidgets)
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "Warning" not in stderr and "IProgress" not in stderr, f"{name}: {stderr[:500]}"
    # every plotly figure also carries an offline HTML fallback; plotly.js is embedded once
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    for o in figures:
        html = o["data"].get("text/html", "")
        assert "Plotly.newPlot" in html and "vl-plotly-note" in html, f"{name}: no HTML fallback"
    assert text.count("plotly.js v") == (1 if figures else 0)
