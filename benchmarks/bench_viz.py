"""Render time and HTML size of value heatmaps for long traces (10k tokens x 36 layers).

Compares ``layer_token_heatmap`` (windowing + binning to at most ``max_columns`` columns, hover
text stored once per column) with the naive figure a user would write: a full-resolution plotly
heatmap with a hover string per cell. Also times the single-layer HTML token heatmap and the
full offline report. Sizes exclude plotly.js (4.8 MB, inlined once per report) unless noted.

With ``--browser`` (needs ``chromium``), also times headless Chromium loading and drawing each
page (minus the time for an empty page), i.e. what a user waits for when opening it.

Usage: python benchmarks/bench_viz.py [--tokens 10000] [--layers 36] [--browser]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from value_lens.analysis.readout import ValueTrace
from value_lens.viz import layer_token_heatmap, token_heatmap, write_report

RESULTS = Path(__file__).parent / "results"


def synthetic_trace(n_tokens: int, n_layers: int, seed: int = 0) -> ValueTrace:
    g = torch.Generator().manual_seed(seed)
    words = ["the", " value", " axis", " Wait", ",", " actually", "\n", " 42", " fox", "."]
    tokens = [words[i % len(words)] for i in range(n_tokens)]
    cos = torch.randn(n_layers, n_tokens, generator=g).cumsum(1) * 0.002
    return ValueTrace(
        tokens,
        torch.arange(n_tokens),
        list(range(n_layers)),
        cos,
        cos * 300,
        torch.full((n_tokens, 2), -1),
    )


def naive_figure(tr: ValueTrace) -> go.Figure:
    """Full resolution, one hover string per cell (the baseline)."""
    z = tr.cosine.numpy()
    text = [[f"pos {t}: {tr.tokens[t]!r}" for t in range(z.shape[1])] for _ in tr.layers]
    return go.Figure(
        go.Heatmap(
            z=z,
            text=text,
            colorscale="RdBu",
            zmid=0,
            hovertemplate="%{text}<br>layer %{y}<br>%{z:.4f}",
        )
    )


def timed(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def browser_seconds(html: str, repeat: int = 2) -> float:
    """Best wall time of headless Chromium opening ``html`` and taking a screenshot."""
    exe = shutil.which("chromium")
    if exe is None:
        raise SystemExit("--browser needs chromium (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as d:
        page, shot = Path(d) / "p.html", Path(d) / "s.png"
        page.write_text(html)
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,900",
            f"--user-data-dir={d}/profile",
            f"--screenshot={shot}",
            page.as_uri(),
        ]
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=10_000)
    ap.add_argument("--layers", type=int, default=36)
    ap.add_argument("--max-columns", type=int, default=1000)
    ap.add_argument("--browser", action="store_true", help="also time drawing in Chromium")
    args = ap.parse_args()
    rows = []
    for n in (args.tokens, 10 * args.tokens):
        tr = synthetic_trace(n, args.layers)

        def ours(tr: ValueTrace = tr) -> str:
            fig = layer_token_heatmap(tr, max_columns=args.max_columns)
            return fig.to_html(include_plotlyjs=False, full_html=False)

        t, html = timed(ours)
        rows.append(
            {
                "what": "layer_token_heatmap",
                "tokens": n,
                "layers": args.layers,
                "seconds": t,
                "html_bytes": len(html),
            }
        )
        if n == args.tokens:
            t, html = timed(
                lambda tr=tr: naive_figure(tr).to_html(include_plotlyjs=False, full_html=False), 1
            )
            rows.append(
                {
                    "what": "naive full-resolution heatmap (baseline)",
                    "tokens": n,
                    "layers": args.layers,
                    "seconds": t,
                    "html_bytes": len(html),
                }
            )
            t, hm = timed(lambda tr=tr: token_heatmap(tr, args.layers // 2).html)
            rows.append(
                {
                    "what": "token_heatmap (one layer, all tokens)",
                    "tokens": n,
                    "layers": 1,
                    "seconds": t,
                    "html_bytes": len(hm),
                }
            )
            out = RESULTS / "bench_viz_report.html"

            def report(tr: ValueTrace = tr, out: Path = out) -> int:
                figs = [
                    ("layers", layer_token_heatmap(tr)),
                    ("tokens", token_heatmap(tr, args.layers // 2)),
                ]
                return write_report(out, figs).stat().st_size

            t, size = timed(report, 1)
            rows.append(
                {
                    "what": "write_report (both views, plotly.js inlined)",
                    "tokens": n,
                    "layers": args.layers,
                    "seconds": t,
                    "html_bytes": size,
                }
            )
            out.unlink()
    if args.browser:
        tr = synthetic_trace(args.tokens, args.layers)
        empty = browser_seconds("<html><body>empty</body></html>")
        for what, fig in (
            ("layer_token_heatmap", layer_token_heatmap(tr)),
            ("naive full-resolution heatmap (baseline)", naive_figure(tr)),
        ):
            page = fig.to_html(include_plotlyjs=True)
            t = browser_seconds(page) - empty
            rows.append(
                {
                    "what": f"Chromium draws: {what}",
                    "tokens": args.tokens,
                    "layers": args.layers,
                    "seconds": t,
                    "html_bytes": len(page),
                }
            )
    base = next(r for r in rows if r["what"].startswith("naive"))
    ours10 = rows[0]
    longest = [r for r in rows if r["what"] == "layer_token_heatmap"][-1]
    summary = {
        "size_ratio_vs_naive": ours10["html_bytes"] / base["html_bytes"],
        "time_ratio_vs_naive": ours10["seconds"] / base["seconds"],
        "size_ratio_10x_tokens": longest["html_bytes"] / ours10["html_bytes"],
    }
    drawn = [r for r in rows if r["what"].startswith("Chromium")]
    if drawn:
        summary["browser_time_ratio_vs_naive"] = drawn[0]["seconds"] / drawn[1]["seconds"]
    print(f"{'what':58s} {'tokens':>7s} {'layers':>6s} {'seconds':>8s} {'HTML MB':>8s}")
    for r in rows:
        print(
            f"{r['what']:58s} {r['tokens']:7d} {r['layers']:6d} {r['seconds']:8.3f} "
            f"{r['html_bytes'] / 1e6:8.3f}"
        )
    print(json.dumps({k: round(v, 4) for k, v in summary.items()}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_viz.json").write_text(
        json.dumps({"rows": rows, "summary": summary, "numpy": np.__version__}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
