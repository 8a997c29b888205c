"""Interactive tokens x layers view of a trace, drawn by CircuitsVis and fully offline.

:func:`circuits_token_view` shows the tokens of a :class:`~value_lens.analysis.readout.ValueTrace` with
CircuitsVis' ``ColoredTokensMulti`` component: one button per layer recolours the text by the value
at that layer, and hovering a token lists its value at every layer shown.

CircuitsVis' own Python helpers either import the component from a CDN (unpkg) or, in Jupyter,
first probe ``google.com`` to choose; this view never does either. It inlines the JavaScript bundle
that the installed ``circuitsvis`` wheel ships (``circuitsvis/dist/cdn/iife.js``, about 1.3 MB) in
every rendering, so the HTML references no URL and displays the same in Jupyter, in a saved file
and in a browser with no network. For many texts in one page, or where page size matters, prefer
the script-free :func:`~value_lens.viz.token_heatmap` or the plotly
:func:`~value_lens.viz.layer_token_heatmap`.

Tokens are HTML-escaped before they reach the component, which inserts each token as HTML: a
``<think>`` token shows as text instead of vanishing as an unknown tag (its hover title then reads
``&lt;think&gt;``).

Colours are symmetric around zero at each layer (white at 0), with the bound ``vmax`` if given,
else the layer's largest ``|value|`` shown; the view's "Positive/Negative Bound" boxes change them.

Example:
    >>> import torch
    >>> from value_lens.analysis.readout import ValueTrace
    >>> tr = ValueTrace(["Hi", " there"], torch.tensor([1, 2]), [3, 5],
    ...                 torch.tensor([[-0.5, 0.25], [0.125, 1.0]]), torch.zeros(2, 2),
    ...                 torch.full((2, 2), -1))
    >>> view = circuits_token_view(tr)
    >>> view.values, view.labels
    ([[-0.5, 0.125], [0.25, 1.0]], ['layer 3', 'layer 5'])
    >>> view.props["positiveBounds"]
    [0.5, 1.0]
    >>> "<script src" in view.html, "unpkg" in view.html
    (False, False)
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from value_lens.analysis.readout import ValueTrace
from value_lens.core.io import atomic_write_text
from value_lens.errors import InputError
from value_lens.viz._style import symmetric_limit
from value_lens.viz.heatmap import METRICS, _window

__all__ = ["CircuitsTokenView", "circuits_token_view"]

COMPONENT = "ColoredTokensMulti"
_BUNDLE = ("dist", "cdn", "iife.js")
FALLBACK = "CircuitsVis view: needs JavaScript (the code is inlined; no network is used)."


@dataclass(frozen=True)
class CircuitsTokenView:
    """A CircuitsVis ``ColoredTokensMulti`` view; displays itself in Jupyter, saves as one file.

    Attributes:
        tokens: the tokens shown (a window of the trace).
        values: ``[n_tokens][n_layers]`` values, CircuitsVis' layout (token-major).
        labels: one button label per layer, ``"layer 20"``.
        layers: the layers shown, in column order.
        positions: absolute token positions of ``tokens`` in the trace.
        bounds: the symmetric colour bound of each layer (``-b`` to ``+b``).
        metric: ``"cosine"`` or ``"projection"``.
        title: heading shown above the view.
    """

    tokens: list[str]
    values: list[list[float]]
    labels: list[str]
    layers: list[int]
    positions: list[int]
    bounds: list[float]
    metric: str = "cosine"
    title: str = ""

    @property
    def props(self) -> dict[str, object]:
        """The properties handed to the CircuitsVis component."""
        return {
            # the component writes each token with innerHTML, so "<think>" would vanish as a tag
            "tokens": [html.escape(t, quote=False) for t in self.tokens],
            "values": self.values,
            "labels": self.labels,
            "positiveBounds": self.bounds,
            "negativeBounds": [-b for b in self.bounds],
        }

    @staticmethod
    def bundle_text() -> str:
        """The installed CircuitsVis JavaScript bundle, made safe to inline in a ``<script>``."""
        return _inline_safe(_read_bundle())

    @property
    def html(self) -> str:
        """An HTML fragment with the bundle inlined; a fresh element id on every call."""
        uid = "value-lens-cv-" + secrets.token_hex(6)
        head = ""
        if self.title:
            head = (
                f'<div style="font-weight:600;margin-bottom:4px;">{html.escape(self.title)}</div>'
            )
        return (
            f'<div class="value-lens-circuits">{head}'
            f'<div id="{uid}" style="margin:8px 0;">{html.escape(FALLBACK)}</div>'
            f'<script type="module">\n{self.bundle_text()}\n'
            f'CircuitsVis.render("{uid}", CircuitsVis.{COMPONENT}, {_js_json(self.props)});\n'
            "</script></div>"
        )

    def _repr_html_(self) -> str:
        return self.html

    def to_html(self) -> str:
        """A complete, standalone HTML document."""
        ttl = html.escape(self.title or "value by layer")
        return (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{ttl}</title></head>'
            f"<body>{self.html}</body></html>\n"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path`` atomically."""
        return atomic_write_text(path, self.to_html())


def circuits_token_view(
    trace: ValueTrace,
    layers: list[int] | None = None,
    *,
    metric: str = "cosine",
    vmax: float | None = None,
    start: int = 0,
    stop: int | None = None,
    title: str | None = None,
) -> CircuitsTokenView:
    """Interactive CircuitsVis view of ``trace``: tokens coloured by value, one button per layer.

    Args:
        trace: a :class:`~value_lens.analysis.readout.ValueTrace` (``value_lens.trace(...)``).
        layers: the layers to offer, in this order; default every layer of the trace.
        metric: ``"cosine"`` (the paper's Eq. 2) or ``"projection"`` (residual units).
        vmax: one colour bound for every layer; default each layer's largest ``|value|`` shown.
        start, stop: window of token positions to show (long traces: every token becomes a
            React element with a per-layer tooltip, so keep windows to a few thousand tokens).
        title: heading; default names the metric.

    Returns:
        A :class:`CircuitsTokenView`.
    """
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    if not isinstance(trace, ValueTrace):
        raise InputError(
            f"expected a ValueTrace (value_lens.trace(...)), got {type(trace).__name__}"
        )
    chosen = list(trace.layers) if layers is None else [int(x) for x in layers]
    if not chosen:
        raise InputError("layers is empty; pass None for every layer of the trace")
    rows = [trace.row(layer) for layer in chosen]
    vals = getattr(trace, metric).detach().float().cpu()[rows]
    lo, hi = _window(start, stop, vals.shape[1])
    grid = vals[:, lo:hi]
    if not bool(grid.isfinite().all()):
        raise InputError(
            "the trace holds NaN or Inf values in this window; CircuitsVis cannot colour them "
            "(use token_heatmap, which greys them out, or a window without them)"
        )
    bounds = [symmetric_limit(grid[i].tolist(), vmax) for i in range(len(chosen))]
    return CircuitsTokenView(
        tokens=list(trace.tokens[lo:hi]),
        values=grid.T.tolist(),
        labels=[f"layer {x}" for x in chosen],
        layers=chosen,
        positions=list(range(lo, hi)),
        bounds=bounds,
        metric=metric,
        title=title if title is not None else f"value ({metric}) by layer: click or hover a layer",
    )


# ---------------------------------------------------------------- helpers


def _read_bundle() -> str:
    try:
        path = resources.files("circuitsvis").joinpath(*_BUNDLE)
        return path.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise InputError(
            "the CircuitsVis JavaScript bundle is missing (circuitsvis/dist/cdn/iife.js); "
            "reinstall it with `pip install 'circuitsvis>=1.43'`, or use token_heatmap / "
            "layer_token_heatmap, which need no JavaScript"
        ) from err


def _inline_safe(js: str) -> str:
    """Keep an inlined script from ending early or entering the HTML double-escaped state.

    ``</script`` only occurs inside JS strings, template literals or comments, where ``<\\/`` means
    the same; ``<!--`` becomes ``\\x3C!--``, equal inside strings and regular expressions.
    """
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
    return js.replace("<!--", "\\x3C!--")


def _js_json(obj: object) -> str:
    """JSON that is also safe inside ``<script>``: no ``<``, ``>`` or ``&`` survive unescaped."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
