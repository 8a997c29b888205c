"""The README's Python example runs as written (on the embedded SmolLM2 model)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_commands_are_the_two_scripts():
    text = README.read_text()
    assert "bash scripts/demo.sh" in text and "bash scripts/test.sh" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch, smollm):
    import value_lens

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        value_lens, "load_model", lambda *_a, **_k: smollm
    )  # reuse the session copy
    (block,) = _python_blocks()
    scope: dict = {}
    exec(compile(block, str(README), "exec"), scope)  # our own README
    assert (tmp_path / "axis.safetensors").is_file()
    assert scope["tr"].cosine.shape[0] == 1
    assert "<" in scope["view"]._repr_html_()
    assert isinstance(scope["out"][0].text, str) and scope["out"][0].output_ids.numel() > 0
