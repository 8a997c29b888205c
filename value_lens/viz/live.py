"""A token heatmap that fills in while the model writes: the Jupyter view of the value monitor.

:class:`LiveHeatmap` is an ``on_token`` callback for :func:`value_lens.analysis.monitor.monitor`.
Each :class:`~value_lens.analysis.monitor.MonitorEvent` adds one coloured token to its row's
line; every few tokens (:class:`Throttle`) the view is redrawn, and :meth:`LiveHeatmap.finish`
(or leaving a ``with`` block) draws the final state. In Jupyter the view is one output updated in
place through ``IPython.display.display(..., display_id=True)`` and ``handle.update(...)``: plain
HTML and inline CSS, no widget JavaScript, no network, so it also shows in nbviewer, in an
exported notebook and with no internet. Outside a notebook nothing is displayed and the view only
accumulates; :meth:`LiveHeatmap.html` and :meth:`LiveHeatmap.save` work either way.

Colours are those of :func:`value_lens.viz.heatmap.token_heatmap`: the monitor's metric (the
cosine with the axis by default) of each generated token at one layer, on a scale symmetric
around zero (red below, white at zero, blue above) clipped at ``±vmax``. With ``vmax=None`` the
limit is the largest ``|value|`` so far, so colours can lighten as larger values arrive; pass a
fixed ``vmax`` (e.g. 0.1) to compare runs. Every token is a ``<span>`` carrying its exact value
in ``data-value`` (and ``data-row``, ``data-step``) and a tooltip with its aggregates.

Example:
    >>> from value_lens.analysis.monitor import MonitorEvent
    >>> live = LiveHeatmap(display=False)
    >>> live(MonitorEvent(0, 0, 7, "Hi", {20: 0.25}, {"ema": 0.25}))
    >>> live(MonitorEvent(0, 1, 8, " there", {20: -0.5}, {"ema": 0.2}))
    >>> live.finish().count("data-value="), live.stream.rows[0].values
    (2, [0.25, -0.5])
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from value_lens.analysis.monitor import MonitorEvent
from value_lens.core.io import atomic_write_text
from value_lens.errors import InputError
from value_lens.viz._style import rgb_for, symmetric_limit
from value_lens.viz.heatmap import TokenHeatmap, _legend, _token_html

__all__ = ["LiveHeatmap", "StreamRow", "Throttle", "TokenStream"]


@dataclass
class StreamRow:
    """One row's generated tokens so far, with their values and the aggregates after each."""

    tokens: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    aggregates: list[dict[str, float]] = field(default_factory=list)


class TokenStream:
    """The monitor events of one ``generate`` call, gathered per row (shared by the live views).

    Args:
        layer: the layer whose value colours a token; default the first layer of the first event
            (the monitor's first layer).

    Example:
        >>> s = TokenStream()
        >>> s.add(MonitorEvent(1, 0, 5, "a", {3: 0.5}, {}))
        >>> s.layer, s.rows[1].tokens, s.n_tokens
        (3, ['a'], 1)
    """

    def __init__(self, layer: int | None = None) -> None:
        self.layer = layer
        self.rows: dict[int, StreamRow] = {}

    @property
    def n_tokens(self) -> int:
        """Tokens received, over all rows."""
        return sum(len(r.tokens) for r in self.rows.values())

    def add(self, event: MonitorEvent) -> None:
        """Record one event; events of a row must come in step order (one ``generate`` call)."""
        if self.layer is None:
            self.layer = next(iter(event.values))
        if self.layer not in event.values:
            raise InputError(
                f"layer {self.layer} is not monitored (the events hold layers "
                f"{list(event.values)}); pass one of those as layer="
            )
        row = self.rows.setdefault(event.row, StreamRow())
        if event.step != len(row.tokens):
            raise InputError(
                f"row {event.row}: got step {event.step} after {len(row.tokens)} tokens; use one "
                "live view per generate call (or call its clear())"
            )
        row.tokens.append(event.text)
        row.token_ids.append(event.token_id)
        row.values.append(float(event.values[self.layer]))
        row.aggregates.append(dict(event.aggregates))

    def limit(self, vmax: float | None) -> float:
        """The colour limit: ``vmax``, else the largest ``|value|`` so far."""
        return symmetric_limit((v for r in self.rows.values() for v in r.values), vmax)


@dataclass(frozen=True)
class Throttle:
    """When a live view redraws: after ``every`` new tokens, or once ``seconds`` have passed
    since the last redraw with a token waiting (``None``: by count only). ``clock`` is
    injectable for tests.

    Example:
        >>> Throttle(every=4, seconds=None).due(pending=4, since=0.0)
        True
    """

    every: int = 8
    seconds: float | None = 0.25
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.every < 1:
            raise InputError(f"Throttle.every must be >= 1, got {self.every}")
        if self.seconds is not None and not self.seconds >= 0:
            raise InputError(f"Throttle.seconds must be >= 0 or None, got {self.seconds}")

    def due(self, *, pending: int, since: float) -> bool:
        """Redraw now, with ``pending`` tokens not yet shown and the last redraw at ``since``?"""
        if pending >= self.every:
            return True
        return pending > 0 and self.seconds is not None and self.clock() - since >= self.seconds


@dataclass(frozen=True)
class _Html:
    """What is handed to the display: anything with ``_repr_html_`` renders as HTML."""

    data: str

    def _repr_html_(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return "<value_lens live heatmap>"


def _notebook_display() -> Callable[[Any], Any] | None:
    """``IPython.display.display(obj, display_id=True)`` inside a running kernel, else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return lambda obj: display(obj, display_id=True)


class LiveHeatmap:
    """An ``on_token`` callback that shows the generated tokens as a live HTML heatmap.

    Args:
        layer: the layer to colour by (default the monitor's first layer).
        metric: the name the legend gives the values (the monitor's ``metric``).
        vmax: fixed colour limit; default the largest ``|value|`` so far.
        labels: a label per row (a list by row index, or a mapping), e.g. the prompts.
        title: heading above the text.
        throttle: when to redraw (default every 8 tokens or 0.25 s).
        display: ``True`` shows the view in a running Jupyter kernel (nothing elsewhere);
            ``False`` never displays; a callable is called once with the first HTML object and
            must return a handle with ``update(obj)`` (another front end, or a test double).

    Example:
        >>> import torch, value_lens as vl
        >>> from value_lens.testing import tiny_qwen3
        >>> model = tiny_qwen3()
        >>> axis = vl.ValueAxis(torch.randn(2, 64), model_id=model.cfg.model_name)
        >>> with LiveHeatmap(display=False) as live:
        ...     g = vl.generate(model, "hi", monitor=vl.monitor(axis, 1, on_token=live),
        ...                     max_new_tokens=4)[0]
        >>> live.html().count("data-value=") == g.n_tokens
        True
    """

    def __init__(
        self,
        layer: int | None = None,
        *,
        metric: str = "cosine",
        vmax: float | None = None,
        labels: Sequence[str] | Mapping[int, str] | None = None,
        title: str | None = None,
        throttle: Throttle | None = None,
        display: bool | Callable[[Any], Any] = True,
    ) -> None:
        if vmax is not None:
            symmetric_limit((), vmax)  # raises for a non-positive or non-finite limit
        self.stream = TokenStream(layer)
        self.metric, self.vmax, self.title = metric, vmax, title
        self.labels: dict[int, str] = dict(
            enumerate(labels) if isinstance(labels, Sequence) else (labels or {})
        )
        self.throttle = throttle or Throttle()
        self._display, self._handle = display, None
        self._pending, self._last, self.done = 0, self.throttle.clock(), False
        self.updates = 0  # redraws so far (the first display included)

    # ------------------------------------------------------------ callback and drawing
    def __call__(self, event: MonitorEvent) -> None:
        self.stream.add(event)
        self._pending += 1
        first = self.stream.n_tokens == 1
        if first or self.throttle.due(pending=self._pending, since=self._last):
            self.refresh()

    def refresh(self) -> None:
        """Redraw now (shows the view on the first call when a display is available)."""
        obj = _Html(self.html())
        if self._handle is None:
            show = self._display if callable(self._display) else None
            if self._display is True:
                show = _notebook_display()
            self._handle = None if show is None else show(obj)
        else:
            self._handle.update(obj)
        self._pending, self._last = 0, self.throttle.clock()
        self.updates += 1

    def finish(self) -> str:
        """Draw the final state (marked done) and return its HTML."""
        self.done = True
        self.refresh()
        return self.html()

    def clear(self) -> None:
        """Forget the tokens (to reuse the view for another ``generate`` call)."""
        self.stream = TokenStream(self.stream.layer)
        self.done = False

    def __enter__(self) -> LiveHeatmap:
        self.refresh()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    # ------------------------------------------------------------ output
    def html(self) -> str:
        """The current view: an HTML fragment, no scripts, no external resources."""
        return _render(self)

    def _repr_html_(self) -> str:
        return self.html()

    def to_html(self) -> str:
        """A complete, standalone HTML document of the current view."""
        name = html.escape(self.title or "value_lens live heatmap")
        return (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{name}</title></head>'
            f"<body>{self.html()}</body></html>\n"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path`` atomically."""
        return atomic_write_text(path, self.to_html())


def _tip(step: int, tok: str, metric: str, val: float, aggs: dict[str, float]) -> str:
    extra = "".join(f" | {k} {v:+.4f}" for k, v in aggs.items())
    return html.escape(f"step {step} | {tok!r} | {metric} {val:+.4f}{extra}", quote=True)


def _render(live: LiveHeatmap) -> str:
    s = live.stream
    lim = s.limit(live.vmax)
    title = live.title if live.title is not None else f"live value ({live.metric})"
    parts = [
        '<div class="value-lens-tokens value-lens-live" style="font-family:ui-monospace,Menlo,'
        'Consolas,monospace;font-size:13px;line-height:1.9;max-width:100%;">',
        f'<div style="font-weight:600;margin-bottom:4px;">{html.escape(title)}</div>',
    ]
    for r in sorted(s.rows):
        row = s.rows[r]
        label = live.labels.get(r, f"row {r}")
        parts.append(f'<div style="margin:2px 0 8px 0;" data-row="{r}">')
        parts.append(f'<div style="color:#555;font-size:11px;">{html.escape(label)}</div>')
        parts.append('<div style="white-space:pre-wrap;word-break:break-word;">')
        for k, (tok, val) in enumerate(zip(row.tokens, row.values, strict=True)):
            red, green, blue = rgb_for(val, lim)
            fg = "#fff" if abs(val) > 0.6 * lim else "#111"
            parts.append(
                f'<span class="vl-tok" data-row="{r}" data-step="{k}" data-value="{val!r}" '
                f'style="background:#{red:02x}{green:02x}{blue:02x};color:{fg};'
                f'border-radius:2px;" title="{_tip(k, tok, live.metric, val, row.aggregates[k])}">'
                f"{_token_html(tok)}</span>"
            )
        parts.append("</div></div>")
    if s.layer is not None:  # no legend before the first token names the layer
        parts.append(_legend(TokenHeatmap([], lim, s.layer, live.metric)))
    state = "done" if live.done else "generating…"
    parts.append(
        f'<div style="color:#555;font-size:11px;">{s.n_tokens} tokens in {len(s.rows)} '
        f"row(s), {state}</div></div>"
    )
    return "".join(parts)
