"""mkdocs hook: render benchmark result tables from ``benchmarks/results/<name>.json``.

A page line ``<!-- bench: NAME -->`` becomes the tables of ``benchmarks/results/NAME.json``
(written by ``benchmarks/NAME.py``): every list of flat records as one table, and every other
scalar or flat mapping as ``key | value`` rows. A missing results file renders a note saying
the benchmark has not been run, so the page never shows a number the script did not write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MARKER = re.compile(r"^<!-- bench: ([\w-]+) -->$", re.MULTILINE)
ROOT = Path(__file__).resolve().parents[2]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        text = json.dumps(v, separators=(", ", ": "))
        return text if len(text) <= 80 else text[:77] + "..."
    return str(v).replace("|", "\\|")


def _records_table(rows: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return out + [""]


def _flatten(prefix: str, obj: Any, scalars: list[tuple[str, Any]], tables: list[Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, scalars, tables)
    elif isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        tables.append((prefix, obj))
    else:
        scalars.append((prefix, obj))


def render(name: str) -> str:
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    script = f"benchmarks/{name.removesuffix('_quick')}.py"
    if not path.is_file():
        return (
            f'!!! note "Not measured yet"\n    Run `python {script}`; its results file '
            f"`benchmarks/results/{name}.json` does not exist in this checkout.\n"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    scalars: list[tuple[str, Any]] = []
    tables: list[Any] = []
    _flatten("", data, scalars, tables)
    out = [f"*Measured by `{script}`; raw numbers in `benchmarks/results/{name}.json`.*", ""]
    for key, rows in tables:
        out.append(f"**{key}**")
        out.append("")
        flat = [{k: v for k, v in r.items()} for r in rows]
        out += _records_table(flat)
    if scalars:
        out += ["| key | value |", "|---|---|"]
        out += [f"| `{k}` | {_fmt(v)} |" for k, v in scalars]
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # noqa: ARG001
    return MARKER.sub(lambda m: render(m.group(1)), markdown)
