"""mkdocs hook: the six tutorial notebooks as pages ``tutorials/<name>.md``, with their outputs.

The executed notebooks come from ``tutorials/run_notebooks.py``: from the folder named by
``VALUE_LENS_TUTORIALS_EXECUTED`` (the test suite points it at the notebooks its tutorial tests
executed, so they run once), else from ``.cache/tutorials/<digest of the notebooks and
value_lens>``, executing (offline, CPU size, a few minutes) whatever is missing there.

Markdown cells stay Markdown and code cells become highlighted code. Each cell's outputs are
kept out of the Markdown (a placeholder comment) and put back into the page's HTML: text as
``<pre>``, HTML outputs (token heatmaps, plotly figures with their offline fallback, see
:mod:`value_lens.viz.notebook`) as they are, images inline. plotly.js is embedded once per page
(by the notebook's first figure; added here if no figure carried it), never from a CDN.
"""

from __future__ import annotations

import html
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENV = "VALUE_LENS_TUTORIALS_EXECUTED"
PREFIX = "tutorials/"
_SLOT = "<!-- vl-output-{} -->"
_SLOT_RE = re.compile(r"<!-- vl-output-(\d+) -->")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PLOTLYJS_MARK = "plotly.js v"  # the banner comment of the embedded bundle
_STYLE = """<style>
.vl-nb-out{margin:-.6em 0 1.2em;padding:.4em .6em;border-left:3px solid #c5cae9;overflow-x:auto}
.vl-nb-out pre{margin:.2em 0;font-size:.72rem;white-space:pre-wrap;background:none;box-shadow:none}
.vl-nb-err{color:#b71c1c}
</style>"""

_outputs: dict[str, list[str]] = {}  # page src_uri -> output HTML per slot (one build)


def _run_notebooks() -> Any:
    sys.path.insert(0, str(ROOT / "tutorials"))
    try:
        import run_notebooks
    finally:
        sys.path.remove(str(ROOT / "tutorials"))
    return run_notebooks


def _folder(rn: Any) -> Path:
    given = os.environ.get(ENV)
    return Path(given) if given else ROOT / ".cache" / "tutorials" / rn.source_key()


def _text(out: dict[str, Any]) -> str:
    text = out.get("text", "")
    text = "".join(text) if isinstance(text, list) else text
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]  # a bar's last state
    return "\n".join(lines)


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _render(out: dict[str, Any]) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        cls = " vl-nb-err" if out.get("name") == "stderr" else ""
        return f'<pre class="vl-nb-stream{cls}">{html.escape(_text(out))}</pre>'
    if kind == "error":
        tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
        return f'<pre class="vl-nb-err">{html.escape(tb)}</pre>'
    data = out.get("data", {})
    if "text/html" in data:
        return _joined(data["text/html"])
    if "image/svg+xml" in data:
        return _joined(data["image/svg+xml"])
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f'<img alt="figure" src="data:{mime};base64,{_joined(data[mime]).strip()}">'
    if "text/plain" in data:
        return f"<pre>{html.escape(_joined(data['text/plain']))}</pre>"
    return ""


def notebook_markdown(nb: Any) -> tuple[str, list[str]]:
    """The page's Markdown (outputs as placeholders) and the HTML of each placeholder."""
    parts, slots = [], []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        elif cell.cell_type == "code":
            parts.append(f"```python\n{cell.source}\n```")
            rendered = [_render(o) for o in cell.get("outputs", [])]
            rendered = [r for r in rendered if r]
            if rendered:
                parts.append(_SLOT.format(len(slots)))
                slots.append('<div class="vl-nb-out">' + "\n".join(rendered) + "</div>")
    return "\n\n".join(parts) + "\n", slots


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return f'<script type="text/javascript">{get_plotlyjs()}</script>'


def on_files(files: Any, config: Any) -> Any:
    """Add one generated page per notebook, made from its executed copy."""
    import nbformat
    from mkdocs.structure.files import File

    rn = _run_notebooks()
    folder = _folder(rn)
    _outputs.clear()
    for name in rn.NAMES:
        nb = nbformat.read(rn.executed(name, folder), as_version=4)
        md, slots = notebook_markdown(nb)
        note = (
            f'\n\n!!! note "Executed notebook"\n    `tutorials/{name}` as run by the test suite: '
            "the embedded SmolLM2-135M-Instruct on CPU, offline, at the notebook's CPU size.\n\n"
        )
        head, _, rest = md.partition("\n\n")
        src = f"{PREFIX}{Path(name).stem}.md"
        files.append(File.generated(config, src, content=head + note + rest))
        _outputs[src] = slots
    return files


def on_page_content(html_text: str, page: Any, config: Any, files: Any) -> str:  # noqa: ARG001
    """Put each output back where its placeholder is; plotly.js once if a figure needs it."""
    slots = _outputs.get(page.file.src_uri)
    if slots is None:
        return html_text
    body = _SLOT_RE.sub(lambda m: slots[int(m.group(1))], html_text)
    if "Plotly.newPlot" in body and _PLOTLYJS_MARK not in body:
        body = _plotlyjs() + body
    return _STYLE + body
