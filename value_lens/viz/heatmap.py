"""Token-level value heatmaps: text coloured by the value readout at one layer.

The view is self-made HTML and inline CSS rather than CircuitsVis: it needs no JavaScript, pings no
server (CircuitsVis' ``_repr_html_`` probes google.com before choosing its CDN), embeds no 1 MB
React bundle per render, and therefore shows the same in Jupyter, in a saved file, in the report
and in a browser with no network. Each token is a ``<span>`` whose background follows a signed,
zero-centred scale (red below zero, white at zero, blue above) and whose tooltip gives the
position, the token and its value.

Example:
    >>> import torch
    >>> from value_lens.analysis.readout import ValueTrace
    >>> tr = ValueTrace(["Hi", " there"], torch.tensor([1, 2]), [0],
    ...                 torch.tensor([[-0.5, 0.25]]), torch.tensor([[-1.0, 0.5]]),
    ...                 torch.full((2, 2), -1))
    >>> hm = token_heatmap(tr, 0)
    >>> hm.rows[0].values
    [-0.5, 0.25]
    >>> "http" in hm.html
    False
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from value_lens.analysis.readout import ValueTrace
from value_lens.core.io import atomic_write_text
from value_lens.errors import InputError, LayerError
from value_lens.viz._style import rgb_for, symmetric_limit

__all__ = ["TokenHeatmap", "TokenRow", "token_heatmap", "trace_difference"]

METRICS = ("cosine", "projection")


@dataclass(frozen=True)
class TokenRow:
    """One coloured line of text: a label, its tokens, their values and absolute positions."""

    label: str
    tokens: list[str]
    values: list[float]
    positions: list[int]


@dataclass(frozen=True)
class TokenHeatmap:
    """Rendered token heatmap; displays itself in Jupyter and saves as a standalone HTML file.

    Attributes:
        rows: one :class:`TokenRow` per trace shown (several rows share one colour scale).
        vmax: the colour limit; values are clipped to ``[-vmax, vmax]`` for colouring only.
        layer: the layer read out.
        metric: ``"cosine"`` or ``"projection"``.
        title: heading shown above the text.
    """

    rows: list[TokenRow]
    vmax: float
    layer: int
    metric: str = "cosine"
    title: str = ""
    _cache: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def html(self) -> str:
        """An HTML fragment (no scripts, no external resources)."""
        if "html" not in self._cache:
            self._cache["html"] = _render(self)
        return self._cache["html"]

    def _repr_html_(self) -> str:
        return self.html

    def to_html(self) -> str:
        """A complete, standalone HTML document."""
        head = '<meta charset="utf-8"><title>' + html.escape(self.title or "value heatmap")
        return (
            f"<!DOCTYPE html>\n<html><head>{head}</title></head><body>{self.html}</body></html>\n"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path`` atomically."""
        return atomic_write_text(path, self.to_html())


def token_heatmap(
    trace: ValueTrace | Mapping[str, ValueTrace] | Sequence[ValueTrace],
    layer: int | None = None,
    *,
    metric: str = "cosine",
    vmax: float | None = None,
    start: int = 0,
    stop: int | None = None,
    title: str | None = None,
) -> TokenHeatmap:
    """Colour the tokens of one or more traces by their value at ``layer``.

    Args:
        trace: a :class:`~value_lens.analysis.readout.ValueTrace`, or several (a mapping label -> trace, or
            a list) drawn as rows on one shared colour scale, e.g. baseline vs steered.
        layer: the layer to show; may be omitted when the traces hold a single layer.
        metric: ``"cosine"`` (the paper's Eq. 2) or ``"projection"`` (residual units).
        vmax: colour limit; default the largest ``|value|`` shown.
        start, stop: window of token positions to show (long traces).
        title: heading; default names the metric and layer.

    Returns:
        A :class:`TokenHeatmap`.
    """
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    items = _as_items(trace)
    if layer is None:
        layer = _only_layer(items[0][1])
    rows = []
    for label, tr in items:
        vals = getattr(tr, metric)[tr.row(layer)]
        n = vals.numel()
        lo, hi = _window(start, stop, n)
        rows.append(
            TokenRow(
                label,
                list(tr.tokens[lo:hi]),
                [float(v) for v in vals[lo:hi]],
                list(range(lo, hi)),
            )
        )
    lim = symmetric_limit((v for r in rows for v in r.values), vmax)
    ttl = title if title is not None else f"value ({metric}) at layer {layer}"
    return TokenHeatmap(rows, lim, int(layer), metric, ttl)


def trace_difference(steered: ValueTrace, baseline: ValueTrace) -> ValueTrace:
    """``steered - baseline`` per token and layer, over the tokens both traces share.

    The traces must start with the same tokens (e.g. the same text read with and without a
    steering hook, or two generations from one prompt); the difference covers the common prefix
    of token ids and the layers both hold. A steered trace is read inside the steering context,
    ``with value_lens.steering.steer(model, axis, layers=L, alpha=a): tr = value_lens.trace(...)``; at
    layer ``L`` itself the projection then moves by exactly ``a`` (raw units).
    Draw the result with :func:`token_heatmap` (several rows on one scale:
    ``{"baseline": b, "steered": s, "difference": d}``) or with ``layer_token_heatmap(d)``.

    Example:
        >>> import torch
        >>> a = ValueTrace(["a", "b"], torch.tensor([1, 2]), [0], torch.tensor([[0.5, 0.5]]),
        ...                torch.tensor([[1.0, 1.0]]), torch.full((2, 2), -1))
        >>> b = ValueTrace(["a", "c"], torch.tensor([1, 3]), [0], torch.tensor([[0.25, 0.0]]),
        ...                torch.tensor([[0.5, 0.0]]), torch.full((2, 2), -1))
        >>> trace_difference(a, b).cosine.tolist()
        [[0.25]]
    """
    layers = [x for x in steered.layers if x in baseline.layers]
    if not layers:
        raise LayerError(
            f"the traces share no layer (steered {steered.layers}, baseline {baseline.layers})"
        )
    m = min(steered.token_ids.numel(), baseline.token_ids.numel())
    same = steered.token_ids[:m] == baseline.token_ids[:m]
    n = int(same.long().cumprod(0).sum()) if m else 0
    if n == 0:
        raise InputError(
            "the traces differ from their first token; compare traces of the same text (or of "
            "generations from the same prompt), or show both with token_heatmap({...})"
        )
    rs = [steered.row(x) for x in layers]
    rb = [baseline.row(x) for x in layers]
    return ValueTrace(
        list(steered.tokens[:n]),
        steered.token_ids[:n].clone(),
        layers,
        steered.cosine[rs, :n] - baseline.cosine[rb, :n],
        steered.projection[rs, :n] - baseline.projection[rb, :n],
        steered.offsets[:n].clone(),
        steered.text,
        steered.model_id,
    )


# ---------------------------------------------------------------- helpers


def _as_items(trace: object) -> list[tuple[str, ValueTrace]]:
    if isinstance(trace, ValueTrace):
        return [("", trace)]
    if isinstance(trace, Mapping):
        items = [(str(k), v) for k, v in trace.items()]
    elif isinstance(trace, Sequence) and not isinstance(trace, str):
        items = [(f"#{i}", v) for i, v in enumerate(trace)]
    else:
        raise InputError(f"expected a ValueTrace (or several), got {type(trace).__name__}")
    if not items or not all(isinstance(v, ValueTrace) for _, v in items):
        raise InputError("give at least one ValueTrace (value_lens.trace(...)) to draw")
    return items


def _only_layer(tr: ValueTrace) -> int:
    if len(tr.layers) != 1:
        raise LayerError(f"the trace holds layers {tr.layers}; pass layer= to choose one")
    return tr.layers[0]


def _window(start: int, stop: int | None, n: int) -> tuple[int, int]:
    lo = max(0, start + n if start < 0 else start)
    hi = n if stop is None else max(0, min(n, stop + n if stop < 0 else stop))
    if lo >= hi:
        raise InputError(f"the window [{start}, {stop}) holds no token of a {n}-token trace")
    return lo, hi


def _token_html(tok: str) -> str:
    if tok == "":
        return "&#8709;"
    out = html.escape(tok).replace("\t", "&#8677;\t")
    return out.replace("\n", "&#8629;<br>")


def _render(hm: TokenHeatmap) -> str:
    parts = [
        '<div class="value-lens-tokens" style="font-family:ui-monospace,Menlo,Consolas,'
        'monospace;font-size:13px;line-height:1.9;max-width:100%;">'
    ]
    if hm.title:
        parts.append(
            f'<div style="font-weight:600;margin-bottom:4px;">{html.escape(hm.title)}</div>'
        )
    for row in hm.rows:
        parts.append('<div style="margin:2px 0 8px 0;">')
        if row.label:
            parts.append(f'<div style="color:#555;font-size:11px;">{html.escape(row.label)}</div>')
        parts.append('<div style="white-space:pre-wrap;word-break:break-word;">')
        for tok, val, pos in zip(row.tokens, row.values, row.positions, strict=True):
            r, g, b = rgb_for(val, hm.vmax)
            fg = "#fff" if abs(val) > 0.6 * hm.vmax else "#111"
            tip = html.escape(f"pos {pos} | {tok!r} | {hm.metric} {val:+.4f}", quote=True)
            parts.append(
                f'<span style="background:#{r:02x}{g:02x}{b:02x};color:{fg};border-radius:2px;" '
                f'title="{tip}">{_token_html(tok)}</span>'
            )
        parts.append("</div></div>")
    parts.append(_legend(hm))
    parts.append("</div>")
    return "".join(parts)


def _legend(hm: TokenHeatmap) -> str:
    stops = ", ".join(
        "#{:02x}{:02x}{:02x}".format(*rgb_for(t * hm.vmax, hm.vmax)) for t in (-1, -0.5, 0, 0.5, 1)
    )
    return (
        '<div style="display:flex;align-items:center;gap:6px;font-size:11px;color:#333;">'
        f"<span>{-hm.vmax:+.3g}</span>"
        f'<span style="display:inline-block;width:160px;height:10px;background:linear-gradient('
        f'to right, {stops});border:1px solid #ccc;"></span>'
        f"<span>{hm.vmax:+.3g}</span><span>{html.escape(hm.metric)}, layer {hm.layer}; "
        "hover a token for its value</span></div>"
    )
