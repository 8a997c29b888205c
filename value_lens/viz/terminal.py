"""The terminal view of the value monitor: generated tokens coloured as they stream (rich ``Live``).

:func:`token_text` colours tokens on the scale of the HTML heatmaps (red below zero, white at
zero, blue above, clipped at ``±vmax``; :func:`value_lens.viz._style.rgb_for`), as background
colours with dark or light text. :class:`TerminalView` is an ``on_token`` callback that gathers
the monitor's events and renders one coloured line per row; the pipeline's
:func:`value_lens.pipeline.live_steps.watch` and :func:`~value_lens.pipeline.live_steps.chat`
draw it inside a rich ``Live`` while they generate (this module only draws). On a console that
is not a terminal (a pipe, a file, a test runner) ``Live`` prints only the final state; rich
reduces the colours to what the terminal supports and drops them under ``NO_COLOR``.

Example:
    >>> text = token_text(["good", " bad"], [0.5, -0.5], 0.5)
    >>> text.plain, [s.style.bgcolor.triplet.hex for s in text.spans]
    ('good bad', ['#2166ac', '#b2182b'])
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.color import Color
from rich.console import Group
from rich.live import Live
from rich.style import Style
from rich.text import Text

from value_lens.analysis.monitor import MonitorEvent
from value_lens.errors import InputError
from value_lens.viz._style import rgb_for, symmetric_limit
from value_lens.viz.live import Throttle, TokenStream

__all__ = ["EXIT", "TerminalView", "token_text"]

#: what ``value-lens chat`` reads as the end of the conversation (besides end of input)
EXIT = "/exit"


def _shown(tok: str) -> str:
    """The token as drawn: ``↵`` marks a newline, other control characters become their
    Unicode control pictures (a raw ESC would drive the terminal), ``∅`` an empty token."""
    if tok == "":
        return "∅"
    out = "".join(
        c if c in "\n\t" or (" " <= c and c != "\x7f") else chr(0x2400 + min(ord(c), 0x21))
        for c in tok
    )
    return out.replace("\n", "↵\n")


def token_text(tokens: Sequence[str], values: Sequence[float], vmax: float) -> Text:
    """``tokens`` as one rich ``Text``, each on the background colour of its value.

    Newlines show as ``↵`` before the line break, other control characters as their control
    pictures (``␛`` for ESC) and empty tokens as ``∅``, so every token has a visible cell and
    none drives the terminal. Values beyond ``±vmax`` take the end colours.
    """
    if len(tokens) != len(values):
        raise InputError(f"{len(tokens)} tokens but {len(values)} values")
    lim = symmetric_limit((), vmax)
    out = Text()
    for tok, val in zip(tokens, values, strict=True):
        r, g, b = rgb_for(float(val), lim)
        fg = "#ffffff" if abs(val) > 0.6 * lim else "#111111"
        out.append(_shown(tok), Style(color=fg, bgcolor=Color.from_rgb(r, g, b)))
    return out


class TerminalView:
    """An ``on_token`` callback drawing each row's generated tokens, coloured, in a rich ``Live``.

    Args:
        layer: the layer to colour by (default the monitor's first layer).
        vmax: fixed colour limit; default the largest ``|value|`` so far.
        labels: a label per row, shown dim above its tokens (e.g. the prompts).
        throttle: when to redraw the attached ``Live``.

    Example:
        >>> import io
        >>> from rich.console import Console
        >>> view = TerminalView(labels=["a question"])
        >>> view(MonitorEvent(0, 0, 1, "ok", {4: -0.25}, {"ema": -0.25}))
        >>> con = Console(file=io.StringIO(), width=40, record=True)
        >>> con.print(view)
        >>> print(con.export_text(), end="")
        a question
        ok
    """

    def __init__(
        self,
        layer: int | None = None,
        *,
        vmax: float | None = None,
        labels: Sequence[str] = (),
        throttle: Throttle | None = None,
    ) -> None:
        self.stream = TokenStream(layer)
        self.vmax, self.labels = vmax, list(labels)
        self.throttle = throttle or Throttle(every=4, seconds=0.1)
        self.live: Live | None = None
        self._pending, self._last = 0, self.throttle.clock()

    def __call__(self, event: MonitorEvent) -> None:
        self.stream.add(event)
        self._pending += 1
        if self.live is not None and self.throttle.due(pending=self._pending, since=self._last):
            self.live.update(self, refresh=True)
            self._pending, self._last = 0, self.throttle.clock()

    def __rich__(self) -> Group:
        lim = self.stream.limit(self.vmax)
        parts: list[Text] = []
        for r in sorted(self.stream.rows):
            if r < len(self.labels) and self.labels[r]:
                parts.append(Text(self.labels[r], style="dim"))
            row = self.stream.rows[r]
            parts.append(token_text(row.tokens, row.values, lim))
        return Group(*parts)
