"""The package's shape: imports run down the pipeline, never up, and the sibling layers
``steering``, ``evals``, ``viz`` and ``decode`` never import each other (walked from the source with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "value_lens"

#: bottom-up layers; a module may import its own layer or any lower one.
LAYERS = {
    "errors": 0,
    "_version": 0,
    "_lazy": 0,
    "core": 1,
    "testing": 1,
    "data": 2,
    "fitting": 3,
    "posttrain": 3,
    "analysis": 4,
    "steering": 5,
    "evals": 5,
    "viz": 5,
    "decode": 5,
    "compare": 6,
    "pipeline": 7,
    "cli": 8,
    "__main__": 9,
    "__init__": 9,
}
SIBLINGS = {"steering", "evals", "viz", "decode"}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(path: Path, name: str) -> set[str]:
    """value_lens modules imported anywhere in the file (function-level imports included)."""
    found = set()
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            if base.startswith("value_lens"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("value_lens")}
    mods = _modules()
    return {m for m in found if m in mods and m != name}


def _layer(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


GRAPH = {name: _imports(path, name) for name, path in _modules().items()}


def test_every_top_level_entry_has_a_layer():
    tops = {_layer(m) for m in GRAPH}
    assert tops <= set(LAYERS), f"place these in LAYERS: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_never_run_up_the_stack(module):
    mine = _layer(module)
    up = sorted(m for m in GRAPH[module] if LAYERS[_layer(m)] > LAYERS[mine])
    assert not up, f"{module} ({mine}) imports from a higher layer: {up}"
    across = sorted(m for m in GRAPH[module] if mine in SIBLINGS and _layer(m) in SIBLINGS - {mine})
    assert not across, f"{module} ({mine}) imports a sibling layer: {across}"


def test_no_import_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue  # a package and its own modules
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


MAX_FUNCTION_LINES = 80


def _long_functions(path: Path) -> list[str]:
    """Functions whose body (docstring left out) runs over :data:`MAX_FUNCTION_LINES` lines."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        doc = isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant
        )
        first = body[1] if doc and len(body) > 1 else body[0]
        n = (node.end_lineno or first.lineno) - first.lineno + 1
        if n > MAX_FUNCTION_LINES:
            out.append(f"{node.name} ({n} lines)")
    return out


@pytest.mark.parametrize("module", sorted(_modules()))
def test_functions_stay_short(module):
    long = _long_functions(_modules()[module])
    assert not long, f"{module}: {long}; split them (limit {MAX_FUNCTION_LINES} lines of code)"


def test_the_function_check_sees_a_long_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('def f():\n    """doc"""\n' + "    x = 1\n" * 81)
    assert _long_functions(f) == ["f (81 lines)"]
    f.write_text('def f():\n    """doc"""\n' + "    x = 1\n" * 80)
    assert _long_functions(f) == []


@pytest.mark.parametrize("module", sorted(_modules()))
def test_modules_stay_small(module):
    n = len(_modules()[module].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines; split it (limit {MAX_LINES})"


def test_the_checker_sees_planted_violations(tmp_path):
    """The walker is not vacuous: an upward, a sibling and a relative import are all seen."""
    bad = tmp_path / "m.py"
    bad.write_text(
        "from value_lens.pipeline import demo\n"
        "def f():\n    from value_lens.viz import heatmap\n"
        "from . import sweep\n"
    )
    seen = _imports(bad, "value_lens.analysis.m")
    assert {"value_lens.pipeline.demo", "value_lens.viz.heatmap"} <= seen
    assert "value_lens.analysis.sweep" in seen
