"""One self-contained, offline HTML report of a run: figures, tables, heatmaps and metadata.

By default everything lives in one file with plotly.js inlined once in the head (about 4.8 MB);
``plotlyjs="directory"`` instead writes ``plotly.min.js`` beside the report and loads it by a
relative path. Nothing is ever fetched from a network: no CDN, no fonts, no MathJax.

Example:
    >>> import tempfile, pathlib, pandas as pd
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.html"
    >>> p = write_report(out, [("Numbers", pd.DataFrame({"a": [1, 2]}))], metadata={"seed": 0},
    ...                  plotlyjs="directory")
    >>> sorted(x.name for x in out.parent.iterdir())
    ['plotly.min.js', 'r.html']
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from value_lens._version import __version__
from value_lens.core.io import atomic_write_text
from value_lens.errors import InputError
from value_lens.viz.heatmap import TokenHeatmap

__all__ = ["render_report", "run_metadata", "write_report"]

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1200px;color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd;
padding-bottom:4px} p.note{color:#444}
table.vl-table{border-collapse:collapse;font-size:12px;margin:8px 0}
table.vl-table td,table.vl-table th{border:1px solid #ddd;padding:3px 8px;text-align:right}
table.vl-table th{background:#f4f6fa}
.vl-figure{margin:8px 0 16px 0}
"""

_PLOTLY_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "showSendToCloud": False,
}


def run_metadata(**extra: Any) -> dict[str, Any]:
    """Library, python, torch and plotly versions plus the UTC time, merged with ``extra``."""
    import plotly
    import torch

    meta: dict[str, Any] = {
        "library": f"value_lens {__version__}",
        "created (UTC)": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "plotly": plotly.__version__,
    }
    meta.update(extra)
    return meta


def _items(sections: Any) -> list[tuple[str, list[Any]]]:
    if isinstance(sections, Mapping):
        sections = list(sections.items())
    out = []
    for sec in sections:
        if isinstance(sec, tuple) and len(sec) == 2 and isinstance(sec[0], str):
            head, body = sec
        else:
            head, body = "", sec
        body = list(body) if isinstance(body, list | tuple) else [body]
        out.append((head, body))
    return out


def _render_item(item: Any) -> str:
    import plotly.graph_objects as go
    import plotly.io as pio

    if isinstance(item, go.Figure):
        div = pio.to_html(
            item,
            include_plotlyjs=False,
            full_html=False,
            config=_PLOTLY_CONFIG,
            default_width="100%",
        )
        return f'<div class="vl-figure">{div}</div>'
    if isinstance(item, TokenHeatmap):
        return f'<div class="vl-figure">{item.html}</div>'
    if isinstance(item, pd.DataFrame):
        table = item.to_html(
            index=False,
            border=0,
            classes="vl-table",
            max_rows=200,
            float_format=lambda v: f"{v:.4g}",
            na_rep="",
        )
        note = f'<p class="note">showing 200 of {len(item)} rows</p>' if len(item) > 200 else ""
        return table + note
    if isinstance(item, str):
        paras = [p for p in item.split("\n\n") if p.strip()]
        return "".join(f'<p class="note">{html.escape(p)}</p>' for p in paras)
    raise InputError(
        f"a report item must be a plotly Figure, a pandas DataFrame, a TokenHeatmap or text; "
        f"got {type(item).__name__}"
    )


def render_report(
    sections: Any,
    *,
    title: str = "value_lens report",
    metadata: Mapping[str, Any] | None = None,
    plotly_src: str | None = None,
) -> str:
    """The report as one HTML string (see :func:`write_report`).

    ``plotly_src=None`` inlines plotly.js; otherwise it is the relative path of a local copy.
    """
    from plotly.offline import get_plotlyjs

    meta = run_metadata(**dict(metadata or {}))
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td style='text-align:left'>{html.escape(_fmt(v))}</td></tr>"
        for k, v in meta.items()
    )
    body = [f"<h1>{html.escape(title)}</h1>", '<table class="vl-table">', rows, "</table>"]
    for head, items in _items(sections):
        if head:
            body.append(f"<h2>{html.escape(head)}</h2>")
        body.extend(_render_item(it) for it in items)
    if plotly_src is None:
        script = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    else:
        if "://" in plotly_src or plotly_src.startswith("//"):
            raise InputError("plotly.js must be a local relative path, not a URL")
        script = f'<script type="text/javascript" src="{html.escape(plotly_src)}"></script>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f"{script}</head><body>{''.join(body)}</body></html>\n"
    )


def write_report(
    path: str | os.PathLike[str],
    sections: Sequence[Any] | Mapping[str, Any],
    *,
    title: str = "value_lens report",
    metadata: Mapping[str, Any] | None = None,
    plotlyjs: str = "inline",
) -> Path:
    """Write an offline HTML report.

    Args:
        path: the ``.html`` file to write (atomically).
        sections: a mapping heading -> item(s), or a list of ``(heading, item_or_items)`` pairs
            (or bare items). Items: plotly figures, pandas DataFrames (tables), token heatmaps
            (:func:`~value_lens.viz.token_heatmap`) and plain text.
        title: the page title.
        metadata: run facts shown at the top (model, layers, seeds, ...); the library, python,
            torch and plotly versions and the time are added.
        plotlyjs: ``"inline"`` (one self-contained file) or ``"directory"`` (a local
            ``plotly.min.js`` next to the report).

    Returns:
        The path written.
    """
    from plotly.offline import get_plotlyjs

    if plotlyjs not in {"inline", "directory"}:
        raise InputError(f"plotlyjs must be 'inline' or 'directory', got {plotlyjs!r} (no CDN)")
    path = Path(path)
    src = None
    if plotlyjs == "directory":
        js = path.parent / "plotly.min.js"
        if not js.exists():
            atomic_write_text(js, get_plotlyjs())
        src = "plotly.min.js"
    return atomic_write_text(
        path, render_report(sections, title=title, metadata=metadata, plotly_src=src)
    )


def _fmt(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v)) if len(v) <= 40 else f"{len(v)} items: {v[0]} ... {v[-1]}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
