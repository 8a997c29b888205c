"""Watching the value monitor live: generation with the terminal view (``value-lens monitor``
and ``value-lens chat``).

:func:`watch` runs ``generate(monitor=...)`` with a :class:`~value_lens.viz.terminal.TerminalView`
inside a rich ``Live`` and an offline :class:`~value_lens.viz.live.LiveHeatmap` page beside it;
:func:`chat` runs a multi-turn conversation the same way, one ``Live`` per reply. They live in
the pipeline layer because they run the model; the views they draw are pure figures in
:mod:`value_lens.viz`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from value_lens.analysis.monitor import MonitorEvent, monitor
from value_lens.analysis.stop import below
from value_lens.core.generate import Generation, GenerationConfig, generate
from value_lens.core.io import atomic_write_text
from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.viz.live import LiveHeatmap, Throttle, TokenStream
from value_lens.viz.terminal import EXIT, TerminalView

__all__ = ["EXIT", "WatchConfig", "Watched", "chat", "watch"]


@dataclass(frozen=True)
class WatchConfig:
    """What :func:`watch` and :func:`chat` read and when they stop a reply early.

    Attributes:
        layer: the monitored layer (value_lens convention: block ``layer``'s output).
        aggregate: the aggregator spec of the summary and the stop rule (``"ema:0.9"``,
            ``"mean:32"``, ``"min:32"``, ``"max:32"``; see :mod:`value_lens.analysis.stop`).
        stop_below: end a row at the first token whose aggregate falls below this; None: never.
        stop_after: no early stop before this many new tokens.
        vmax: fixed colour limit; default the largest ``|value|`` so far.
        raw: feed prompts as raw text rather than as a user chat message (:func:`watch`).
    """

    layer: int
    aggregate: str = "ema:0.9"
    stop_below: float | None = None
    stop_after: int = 0
    vmax: float | None = None
    raw: bool = False

    @property
    def name(self) -> str:
        """The aggregate's name in events and summaries: its kind, e.g. ``"ema"``."""
        return self.aggregate.partition(":")[0]


@dataclass
class Watched:
    """What :func:`watch` produced: the generations, the events per row, the HTML heatmap."""

    prompts: list[str]
    generations: list[Generation]
    stream: TokenStream
    heatmap: LiveHeatmap
    config: WatchConfig
    files: list[Path] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready row per prompt: tokens, values, final aggregates, stop flags."""
        out = []
        for i, (p, g) in enumerate(zip(self.prompts, self.generations, strict=True)):
            row = self.stream.rows.get(i)
            vals = [] if row is None else row.values
            out.append(
                {
                    "prompt": p,
                    "text": g.text,
                    "layer": self.config.layer,
                    "tokens": [] if row is None else row.tokens,
                    "values": vals,
                    "mean": sum(vals) / len(vals) if vals else None,
                    "aggregates": row.aggregates[-1] if row and row.aggregates else {},
                    "stopped": g.stopped,
                    "hit_limit": g.hit_limit,
                }
            )
        return out

    def summary(self) -> list[str]:
        """One line per prompt: new tokens, mean value, final aggregate, how it ended."""
        lines = []
        for i, rec in enumerate(self.records()):
            mean = "n/a" if rec["mean"] is None else f"{rec['mean']:+.4f}"
            aggs = ", ".join(f"{k} {v:+.4f}" for k, v in rec["aggregates"].items())
            end = (
                "stopped by rule" if rec["stopped"] else "hit limit" if rec["hit_limit"] else "eos"
            )
            lines.append(
                f"[{i}] {len(rec['tokens'])} tokens, mean value {mean} at layer "
                f"{rec['layer']}" + (f", final {aggs}" if aggs else "") + f" ({end})"
            )
        return lines

    def save(self, out: str | os.PathLike[str], name: str = "monitor") -> list[Path]:
        """Write ``{name}.jsonl`` (:meth:`records`) and ``{name}.html`` (the final heatmap)."""
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        body = "".join(json.dumps(r) + "\n" for r in self.records())
        self.files = [
            atomic_write_text(d / f"{name}.jsonl", body),
            self.heatmap.save(d / f"{name}.html"),
        ]
        return self.files


def watch(
    model: GenerativeModel,
    axis: ValueAxis,
    prompts: Sequence[Any],
    config: WatchConfig,
    gen: GenerationConfig | None = None,
    *,
    console: Console | None = None,
    labels: Sequence[str] | None = None,
) -> Watched:
    """Generate replies to ``prompts`` with the value monitor at ``config.layer``, streaming the
    tokens coloured by their value through a rich ``Live`` on ``console``.

    Args:
        prompts: texts (user messages unless ``config.raw``) or message lists.
        gen: generation settings (default :class:`~value_lens.core.generate.GenerationConfig`).
        console: where to stream (default a new rich ``Console`` on stdout).
        labels: a label per prompt shown above its reply (default the prompt, shortened).

    Example:
        >>> import io, torch, value_lens as vl
        >>> from value_lens.testing import tiny_qwen3
        >>> model = tiny_qwen3()
        >>> axis = vl.ValueAxis(torch.randn(2, 64), model_id=model.cfg.model_name)
        >>> res = watch(model, axis, ["hi"], WatchConfig(layer=1),
        ...             GenerationConfig(max_new_tokens=3), console=Console(file=io.StringIO()))
        >>> len(res.stream.rows[0].tokens) == res.generations[0].n_tokens
        True
    """
    if not prompts:
        raise InputError("watch needs at least one prompt")
    texts = [p if isinstance(p, str) else str(p[-1].get("content", "")) for p in prompts]
    if labels is None:
        labels = [x if len(x) <= 72 else x[:71] + "…" for x in texts]
    items = [
        p if config.raw or not isinstance(p, str) else [{"role": "user", "content": p}]
        for p in prompts
    ]
    view = TerminalView(config.layer, vmax=config.vmax, labels=labels)
    page = LiveHeatmap(
        config.layer, vmax=config.vmax, labels=labels, display=False, title="value monitor",
        throttle=Throttle(every=1 << 30, seconds=None),
    )  # fmt: skip

    def on_token(ev: MonitorEvent) -> None:
        view(ev)
        page(ev)

    mon = monitor(axis, config.layer, aggregate={config.name: config.aggregate}, on_token=on_token)
    rule = None
    if config.stop_below is not None:
        rule = below(config.name, config.stop_below, after=config.stop_after)
    with Live(view, console=console or Console(), auto_refresh=False) as live:
        view.live = live
        gens = generate(model, items, gen, monitor=mon, stop_when=rule)
        live.update(view, refresh=True)
    if not live.console.is_terminal:
        live.console.line()  # rich ends the last line itself on a terminal only
    view.live = None
    page.finish()
    return Watched(texts, gens, view.stream, page, config)


def chat(
    model: GenerativeModel,
    axis: ValueAxis,
    lines: Iterable[str],
    config: WatchConfig,
    gen: GenerationConfig | None = None,
    *,
    console: Console | None = None,
    system: str | None = None,
    transcript: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """A multi-turn chat: each line of ``lines`` is a user turn (until their end or ``/exit``;
    empty lines are skipped), each reply streams coloured through :func:`watch`, and the history
    (chat messages, ``system`` first if given) is the next turn's prompt.

    ``transcript``: a JSONL file rewritten after every turn with the records so far.

    Returns:
        One record per turn: ``user``, ``assistant`` and the reply's :meth:`Watched.records`
        fields (tokens, values, mean, aggregates, stop flags).
    """
    con = console or Console()
    history: list[dict[str, str]] = (
        [] if system is None else [{"role": "system", "content": system}]
    )
    turns: list[dict[str, Any]] = []
    it = iter(lines)
    while True:
        con.print("[bold]you>[/bold] ", end="")
        line = next(it, None)
        if line is None or line.strip() == EXIT:
            con.print("")
            break
        user = line.rstrip("\n")
        if not con.is_terminal:  # a piped line is not echoed by a terminal
            con.print(user, markup=False, highlight=False)
        if not user.strip():
            continue
        history.append({"role": "user", "content": user})
        con.print("[bold]model>[/bold]")
        res = watch(model, axis, [list(history)], config, gen, console=con, labels=[""])
        reply = res.generations[0].text
        history.append({"role": "assistant", "content": reply})
        con.print(res.summary()[0].removeprefix("[0] "), style="dim", markup=False)
        rec = res.records()[0]
        del rec["prompt"], rec["text"]  # the user's line and the reply
        turns.append({"user": user, "assistant": reply, **rec})
        if transcript is not None:
            atomic_write_text(transcript, "".join(json.dumps(t) + "\n" for t in turns))
    return turns
