"""Saving figures offline: HTML with plotly.js embedded (never the CDN), PNG only via kaleido.

Example:
    >>> import plotly.graph_objects as go, tempfile, pathlib
    >>> p = save_figure(go.Figure(go.Scatter(y=[1, 2])), pathlib.Path(tempfile.mkdtemp()) / "f.html")
    >>> '<script src="https://cdn' in p.read_text()
    False
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from value_lens.core.io import atomic_write_bytes, atomic_write_text
from value_lens.errors import InputError, ValueLensError

__all__ = ["png_available", "save_figure"]

_STATIC = {".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp"}


def png_available() -> bool:
    """Whether a static-image renderer (the ``kaleido`` package) is installed."""
    return importlib.util.find_spec("kaleido") is not None


def save_figure(fig: Any, path: str | os.PathLike[str], *, scale: float = 2.0) -> Path:
    """Save a plotly figure as self-contained ``.html`` or, when kaleido is installed, an image.

    Args:
        fig: a ``plotly.graph_objects.Figure``.
        path: ``.html`` (plotly.js inlined, opens offline) or ``.png``/``.svg``/``.pdf``/...
        scale: pixel scale of static images.

    Raises:
        InputError: unknown suffix, or a static format without kaleido installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".html", ".htm"}:
        return atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    if suffix not in _STATIC:
        raise InputError(
            f"cannot save a figure as {suffix or 'a file without suffix'!r}; use .html or .png"
        )
    if not png_available():
        raise InputError(
            f"saving {path.name} needs a static renderer: `pip install kaleido` (plus Chrome), "
            "or save the figure as .html instead"
        )
    try:
        data = fig.to_image(format=suffix.lstrip(".").replace("jpg", "jpeg"), scale=scale)
    except Exception as exc:  # kaleido failures (no browser, ...) become one clear line
        raise ValueLensError(
            f"the static renderer failed to write {path.name} ({type(exc).__name__}: {exc}); "
            "save as .html instead"
        ) from None
    return atomic_write_bytes(path, data)
