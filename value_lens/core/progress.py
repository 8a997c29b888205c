"""One progress bar for long work, with an estimate of the time left.

:func:`progress` returns a tqdm bar (so ``update``, ``set_postfix``, ``close`` and iteration work
as usual) that draws

* in a terminal: tqdm's own bar on stderr;
* in a Jupyter notebook: one plain-text line updated in place (``IPython.display`` with a
  ``display_id``), so no ipywidgets are needed and nothing warns; a saved notebook keeps the
  final line;
* nowhere else when ``enabled=None`` (e.g. stderr piped to a log file), the default of library
  calls; ``enabled=True`` draws on stderr anyway.

:func:`estimate` turns a measured first step into the line a long run prints before it goes on.

Example:
    >>> bar = progress(range(3), desc="demo", enabled=False)
    >>> sum(bar)
    3
    >>> format_duration(42), format_duration(3 * 3600 + 25 * 60)
    ('42 s', '3 h 25 min')
    >>> estimate(2.0, 300, what="DPO")
    'DPO: first step took 2.0 s; 300 steps, about 10 min in all'
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.std import tqdm

__all__ = ["estimate", "format_duration", "in_notebook", "progress"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel's shell), where stderr bars render badly."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    ip = get() if get is not None else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class _TextBar(tqdm):
    """A tqdm drawn as one text/plain display, updated in place (notebooks without widgets)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from IPython.display import display

        self._handle = display({"text/plain": ""}, raw=True, display_id=True)
        super().__init__(*args, file=io.StringIO(), **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:  # noqa: ARG002
        if self._handle is not None:
            self._handle.update({"text/plain": self.__str__() if msg is None else msg}, raw=True)
        return True


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool | None = None,
    leave: bool = True,
) -> tqdm:
    """A progress bar over ``iterable`` (or ``total`` steps driven by ``update``), with the
    elapsed time, the rate and the estimated time left.

    Args:
        iterable: what to iterate over (None: call ``update(n)`` yourself).
        total: the number of steps (default ``len(iterable)`` when it has one).
        desc / unit: the label and the unit of one step (``"tok"``, ``"step"``, ...).
        enabled: True: draw; False: never; None: draw in a notebook or a terminal only.
        leave: keep the finished bar on screen.
    """
    notebook = in_notebook()
    if enabled is None:
        enabled = notebook or sys.stderr.isatty()
    kwargs: dict[str, Any] = {
        "total": total,
        "desc": desc or None,
        "unit": unit,
        "leave": leave,
        "dynamic_ncols": True,
    }
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    if notebook:
        return _TextBar(iterable, mininterval=0.5, **kwargs)
    return tqdm(iterable, file=sys.stderr, mininterval=0.5, **kwargs)


def format_duration(seconds: float) -> str:
    """A duration for people: ``42 s``, ``7 min``, ``3 h 25 min``."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{s:.0f} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def estimate(first_step_s: float, n_steps: int, *, what: str = "") -> str:
    """The line a run prints after its measured first step: the total time at that pace."""
    head = f"{what}: " if what else ""
    return (
        f"{head}first step took {first_step_s:.1f} s; {n_steps} steps, about "
        f"{format_duration(first_step_s * n_steps)} in all"
    )
