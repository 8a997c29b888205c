"""value_lens.core.progress: a bar with an estimate on terminals, a widget-free text line in
notebooks (run in a real Jupyter kernel), silence where nobody watches."""

from __future__ import annotations

import os
import re

import pytest

from value_lens.core.progress import estimate, format_duration, in_notebook, progress


def test_on_a_terminal_the_bar_has_the_rate_and_the_time_left(capsys):
    bar = progress(total=4, desc="train", unit="step", enabled=True)
    for _ in range(4):
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "train: 100%" in err and "4/4" in err
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, ", err)  # elapsed<remaining, then the rate
    assert "step/s" in err or "s/step" in err


def test_nobody_watching_means_no_output(capsys):
    assert not in_notebook()
    assert list(progress(range(5), desc="quiet")) == [0, 1, 2, 3, 4]  # stderr is not a tty here
    assert list(progress(range(2), enabled=False)) == [0, 1]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (42.4, "42 s"), (89, "89 s"), (90, "2 min"), (3599, "1 h 00 min"), (3569, "59 min"), (3600, "1 h 00 min"),
     (12240, "3 h 24 min"), (-5, "0 s")],
)  # fmt: skip
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_estimate_is_the_first_step_times_the_steps():
    assert estimate(101.0, 120, what="DPO") == (
        "DPO: first step took 101.0 s; 120 steps, about 3 h 22 min in all"
    )
    assert estimate(0.5, 10).startswith("first step took 0.5 s; 10 steps, about 5 s")


NOTEBOOK_CELL = """\
import time, warnings
warnings.simplefilter("always")
from value_lens.core.progress import progress, in_notebook
print(in_notebook())
for _ in progress(range(6), desc="cells", unit="cell"):
    time.sleep(0.15)
"""


def test_in_a_notebook_one_text_line_is_updated_in_place_without_widgets(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CELL)])
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = nb.cells[0].outputs
    assert [o.get("name") for o in outputs if o.output_type == "stream"] == ["stdout"]  # no stderr
    assert outputs[0].text.strip() == "True"
    shown = [o for o in outputs if o.output_type == "display_data"]
    assert len(shown) == 1  # one display, updated in place
    assert set(shown[0].data) == {"text/plain"}  # no widget mimetype
    line = shown[0].data["text/plain"]
    assert line.startswith("cells: 100%") and "6/6" in line and "cell/s" in line
