"""The documentation site: strict build, full API coverage, and every name and path it cites exists."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import value_lens
from tests._tutorials import executed_folder, run_notebooks

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("nbclient")
    # the tutorial pages render the notebooks this test run executes (tests/_tutorials.py); from
    # the last one back, so a worker running test_tutorials.py from the first one meets it halfway
    rn, folder = run_notebooks(), executed_folder(tmp_path_factory)
    for name in reversed(rn.NAMES):
        rn.executed(name, folder)
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "NO_MKDOCS_2_WARNING": "1",
            "VALUE_LENS_TUTORIALS_EXECUTED": str(folder),
        },
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_strict_build_renders_every_page(site):
    nav_pages = [p.relative_to(DOCS) for p in PAGES if "hooks" not in p.parts]
    for rel in nav_pages:
        html = site / rel.with_suffix("") / "index.html" if rel.name != "index.md" else None
        html = html or site / rel.parent / "index.html"
        assert html.is_file(), f"{rel} was not rendered"
    assert not (site / "hooks").exists()  # build hooks are not published


_EXTERNAL_RESOURCE = re.compile(
    r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//", re.I
)


def test_site_loads_nothing_from_the_network(site):
    """No CDN scripts, styles or fonts: the built site works offline."""
    for page in site.rglob("*.html"):
        found = _EXTERNAL_RESOURCE.findall(page.read_text(encoding="utf-8"))
        assert not found, f"{page.relative_to(site)} loads external resources: {found}"


def _plotly_outputs(nb) -> int:
    return sum(
        "application/vnd.plotly.v1+json" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )


def test_tutorial_pages_carry_the_executed_outputs(site, tmp_path_factory):
    """Each notebook is a page with its outputs: every figure, plotly.js inlined once, no CDN."""
    import nbformat

    rn = run_notebooks()
    for name in rn.NAMES:
        page = site / "tutorials" / Path(name).stem / "index.html"
        html = page.read_text(encoding="utf-8")
        nb = nbformat.read(executed_folder(tmp_path_factory) / name, as_version=4)
        assert "<!-- vl-output-" not in html, f"{name}: an output was not put back"
        assert 'class="vl-nb-out"' in html and "SmolLM2-135M-Instruct" in html
        n_fig = _plotly_outputs(nb)
        assert html.count('class="plotly-graph-div"') == n_fig, name
        assert html.count("plotly.js v") == (1 if n_fig else 0), name
        # every code cell is highlighted Python, and the markdown cells are rendered
        n_code = sum(c.cell_type == "code" for c in nb.cells)
        assert html.count('<div class="highlight">') == n_code, name
        assert '<span class="kn">import</span>' in html and "<h2 id=" in html, name
    tutorials = (site / "tutorials" / "index.html").read_text(encoding="utf-8")
    for name in rn.NAMES:
        assert f'href="{Path(name).stem}/"' in tutorials, f"the overview does not link {name}"


def _dom(page: Path, tmp: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium (network off)."""
    from tests._offline import require_chromium

    cmd = [
        require_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1200,1600",
        "--virtual-time-budget=15000",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=180).stdout


_PLOT = re.compile(r'<div[^>]*class="[^"]*plotly-graph-div[^"]*js-plotly-plot[^"]*"')
_SVG = re.compile(r'<svg class="main-svg"[^>]*width="([\d.]+)"[^>]*height="([\d.]+)"')


@pytest.mark.parametrize("stem", ["01_quickstart", "02_layer_sweeps"])
def test_rendered_tutorial_figures_draw_in_chromium(site, tmp_path, stem):
    """Open a rendered tutorial page in headless Chromium: every plotly figure was drawn (plotly
    marks its div js-plotly-plot) into a non-empty plot area with traces in it."""
    page = site / "tutorials" / stem / "index.html"
    n_fig = page.read_text(encoding="utf-8").count('class="plotly-graph-div"')
    assert n_fig >= 1
    dom = _dom(page, tmp_path)
    starts = [m.start() for m in _PLOT.finditer(dom)]
    assert len(starts) == n_fig, f"{stem}: {len(starts)} of {n_fig} figures were drawn"
    for a, b in zip(starts, [*starts[1:], len(dom)], strict=True):
        fig = dom[a:b]
        sizes = [(float(w), float(h)) for w, h in _SVG.findall(fig)]
        assert sizes and all(w > 100 and h > 100 for w, h in sizes), (stem, sizes)
        traces = fig.count('class="trace') + fig.count('class="hm"') + fig.count("<image")
        assert traces >= 1, f"{stem}: a figure has an empty plot area"


def test_api_reference_has_the_public_api(site):
    """mkdocstrings rendered the docstrings: one anchor per public function or class."""
    html = "\n".join(p.read_text(encoding="utf-8") for p in (site / "reference").rglob("*.html"))
    for name in value_lens.__all__:
        obj = getattr(value_lens, name)
        mod = getattr(obj, "__module__", None)
        if not callable(obj) or mod is None or not mod.startswith("value_lens"):
            continue
        anchor = f'id="{mod}.{obj.__name__}"'
        assert anchor in html, f"{mod}.{obj.__name__} is missing from the API reference"
    # docstring examples are rendered as code and Sphinx roles as inline code
    assert 'class="gp">&gt;&gt;&gt; </span>' in html
    for role in (":func:", ":class:", ":mod:", ":meth:", ":data:"):
        assert role not in html, f"a Sphinx role {role} was rendered literally"


def test_cli_reference_lists_every_command(site):
    typer = pytest.importorskip("typer")
    from value_lens.cli.main import app

    group = typer.main.get_command(app)
    ctx = group.make_context("value-lens", [], resilient_parsing=True)
    html = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    names = group.list_commands(ctx)
    assert len(names) >= 5
    for name in names:
        assert f"value-lens {name}" in html, f"CLI command {name!r} is not documented"
        for p in group.get_command(ctx, name).get_params(ctx):
            for opt in getattr(p, "opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert opt in html, f"option {opt} of {name!r} is not documented"


def test_performance_tables_come_from_results(site):
    html = (site / "performance" / "index.html").read_text(encoding="utf-8")
    for res in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        assert f"benchmarks/results/{res.name}" in html
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        assert f"benchmarks/{script.name}" in html, f"{script.name} has no section"
    # result keys the prose names must exist in the results files
    results = "".join(_text(p) for p in (ROOT / "benchmarks" / "results").glob("*.json"))
    for key in re.findall(
        r"`(\w+_(?:over|ratio)_\w+|\w*ratio\w*)`", _text(DOCS / "performance.md")
    ):
        assert f'"{key}"' in results, f"performance.md names {key!r}, which no results file has"


def _modules() -> list[str]:
    out = []
    for info in pkgutil.walk_packages(value_lens.__path__, "value_lens."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        out.append(info.name)
    return out


def test_every_public_module_has_a_reference_page():
    ref = "\n".join(_text(p) for p in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: ([\w.]+)", ref, re.MULTILINE))
    missing = [m for m in _modules() if m not in documented]
    assert not missing, f"modules without an API reference entry: {missing}"
    assert documented <= set(_modules()) | {"value_lens"}


_NAME = re.compile(r"(?<![\w./])(vl|icrl|value_lens|viz|evals|metrics|sweep)((?:\.[A-Za-z_]\w*)+)")


def _resolve(root: str, dotted: str) -> bool:
    aliases = {
        "vl": "value_lens",
        "icrl": "value_lens.data.icrl",
        "value_lens": "value_lens",
        "sweep": "value_lens.analysis.sweep",
        "metrics": "value_lens.analysis.metrics",
    }
    base = aliases.get(root, f"value_lens.{root}")
    parts = dotted.strip(".").split(".")
    obj = importlib.import_module(base)
    for i, part in enumerate(parts):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:  # a submodule not imported by its package
            obj = importlib.import_module(".".join([base, *parts[: i + 1]]))
        except ImportError:
            return False
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_api_name_in_the_docs_exists(page):
    text = _text(page)
    bad = sorted(
        {
            m.group(0)
            for m in _NAME.finditer(text)
            if not m.group(2).endswith((".py", ".md"))
            and not _resolve(m.group(1), m.group(2).split(".(")[0])
        }
    )
    assert not bad, f"{page.name} cites names that do not exist: {bad}"


_PATH = re.compile(
    r"`((?:tests|benchmarks|tutorials|scripts|value_lens)/[\w/.-]+\.(?:py|sh|ipynb))`"
)
_NB = re.compile(r"`(0\d_\w+\.ipynb)`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_file_the_docs_cite_exists(page):
    text = _text(page)
    missing = [p for p in _PATH.findall(text) if not (ROOT / p).exists()]
    missing += [p for p in _NB.findall(text) if not (ROOT / "tutorials" / p).exists()]
    assert not missing, f"{page.name} cites files that do not exist: {missing}"


def test_cited_test_functions_exist():
    """Claims in the docs name the tests that back them; those test files must test something."""
    for page in PAGES:
        for path in set(_PATH.findall(_text(page))):
            if path.startswith("tests/"):
                assert "def test_" in _text(ROOT / path), f"{path} (cited by {page.name})"


_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _callee(node, env):
    """The object a call like ``vl.viz.sweep_figure(...)`` refers to, or None."""
    import ast

    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in env:
        return None
    obj = env[node.id]
    for part in reversed(parts):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_keyword_arguments_in_code_examples_exist(page):
    """Every ``keyword=`` passed to a value_lens function in a Python example is a real parameter."""
    import ast
    import inspect

    import value_lens.data.icrl as icrl

    env = {"vl": value_lens, "icrl": icrl, "value_lens": value_lens}
    env.update({n: getattr(value_lens, n) for n in value_lens.__all__})
    bad = []
    for block in _BLOCK.findall(_text(page)):
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("value_lens"):
                mod = importlib.import_module(node.module)
                for alias in node.names:
                    env[alias.asname or alias.name] = getattr(mod, alias.name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = _callee(node.func, env)
            if fn is None or not callable(fn):
                continue
            try:
                params = inspect.signature(fn).parameters
            except (TypeError, ValueError):
                continue
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue
            bad += [
                f"{ast.unparse(node.func)}({kw.arg}=)"
                for kw in node.keywords
                if kw.arg is not None and kw.arg not in params
            ]
    assert not bad, f"{page.name}: unknown keyword arguments {bad}"


_CLI_LINE = re.compile(r"^(value-lens\s.*?)(?:\s+#.*)?$", re.MULTILINE)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_cli_examples_in_the_docs_parse(page):
    """Every ``value-lens ...`` command line shown in a code block parses (options exist)."""
    import shlex

    typer = pytest.importorskip("typer")
    from value_lens.cli.main import app

    group = typer.main.get_command(app)
    blocks = re.findall(r"```(?:bash|text|console)?\n(.*?)```", _text(page), re.DOTALL)
    lines = [m.group(1) for b in blocks for m in _CLI_LINE.finditer(b)]
    for line in lines:
        argv = shlex.split(line)[1:]
        if not argv or argv[0].startswith("-") or "[OPTIONS]" in line:
            continue  # a usage line or `value-lens --help`
        gctx = group.make_context("value-lens", [argv[0]], resilient_parsing=True)
        cmd = group.get_command(gctx, argv[0])
        assert cmd is not None, f"{page.name}: unknown command in {line!r}"
        cmd.make_context(argv[0], argv[1:], parent=gctx)  # raises on unknown options
