"""Plotly figures in notebooks that also show outside Jupyter, offline.

Jupyter draws a plotly figure from its ``application/vnd.plotly.v1+json`` output, which nothing
else understands: exported HTML and rendered pages show a blank. :func:`offline_figures` makes
every figure shown afterwards also carry a ``text/html`` fallback: the figure's div and script,
with plotly.js embedded in the first figure only (so an executed notebook holds one copy, and a
page made from it draws every figure with no CDN), and a one-line note that stays visible where
scripts do not run (e.g. GitHub's notebook view).

Example:
    >>> import plotly.graph_objects as go
    >>> r = OfflineFigureRenderer()
    >>> first = r.to_mimebundle(go.Figure(go.Bar(y=[1, 2])).to_dict())
    >>> sorted(first)
    ['application/vnd.plotly.v1+json', 'text/html']
    >>> second = r.to_mimebundle(go.Figure(go.Bar(y=[3])).to_dict())
    >>> len(first["text/html"]) > 1_000_000 > len(second["text/html"])  # plotly.js once
    True
"""

from __future__ import annotations

from typing import Any

from plotly.io.base_renderers import MimetypeRenderer, PlotlyRenderer

__all__ = ["RENDERER", "OfflineFigureRenderer", "offline_figures"]

#: the name :func:`offline_figures` registers the renderer under in ``plotly.io.renderers``
RENDERER = "value_lens_offline"

_NOTE = (
    '<div class="vl-plotly-note" style="font:12px sans-serif;color:#666">'
    "Interactive plotly figure: it is drawn where scripts run (Jupyter, the documentation site, "
    "exported HTML).</div>"
)


class OfflineFigureRenderer(MimetypeRenderer):
    """A plotly renderer: the plotly mimetype plus an offline ``text/html`` fallback
    (plotly.js inlined in the first figure this renderer draws, referenced after that)."""

    def __init__(self) -> None:
        # plotly draws with a shallow copy of the registered renderer: the state is shared by
        # reference so that every copy knows plotly.js went out
        self._sent = {"plotlyjs": False}

    @property
    def plotlyjs_sent(self) -> bool:
        """Whether a figure drawn by this renderer (or a copy of it) embedded plotly.js."""
        return self._sent["plotlyjs"]

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
        import plotly.io as pio

        bundle = dict(PlotlyRenderer().to_mimebundle(fig_dict))
        height = (fig_dict.get("layout") or {}).get("height")
        html = pio.to_html(
            fig_dict,
            full_html=False,
            include_plotlyjs=not self._sent["plotlyjs"],
            validate=False,
            config={"displaylogo": False},
            default_height=f"{int(height)}px" if height else "480px",
        )
        self._sent["plotlyjs"] = True
        # the note hides itself once the figure's own script has run
        hide = (
            "<script>(function(s){var n=s.parentNode.querySelector('.vl-plotly-note');"
            "if(n&&window.Plotly){n.style.display='none';}})(document.currentScript);</script>"
        )
        bundle["text/html"] = f'<div class="vl-plotly">{_NOTE}{html}{hide}</div>'
        return bundle


def offline_figures() -> OfflineFigureRenderer:
    """Show plotly figures from now on with :class:`OfflineFigureRenderer` (the default renderer
    of this Python process; call it in a notebook's first cells). Returns the renderer."""
    import plotly.io as pio

    renderer = OfflineFigureRenderer()
    pio.renderers[RENDERER] = renderer
    pio.renderers.default = RENDERER
    return renderer
