"""Tokens x layers heatmap of a :class:`~value_lens.analysis.readout.ValueTrace` (plotly).

Long traces are handled in two ways, both keeping the figure's size bounded whatever the trace
length: a window (``start``/``stop``) selects positions, and when more than ``max_columns``
positions remain they are averaged in equal bins of consecutive tokens. The hover then names the
bin's position range and its first tokens. The figure holds at most
``len(layers) x max_columns`` cells, so a 10k- or 100k-token trace gives the same HTML size.

Example:
    >>> import torch
    >>> from value_lens.analysis.readout import ValueTrace
    >>> tr = ValueTrace(list("abcd"), torch.arange(4), [0, 1], torch.arange(8.).view(2, 4),
    ...                 torch.zeros(2, 4), torch.full((4, 2), -1))
    >>> fig = layer_token_heatmap(tr, max_columns=2)
    >>> fig.data[0].z.tolist()
    [[0.5, 2.5], [4.5, 6.5]]
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from value_lens.analysis.readout import ValueTrace
from value_lens.errors import InputError
from value_lens.viz._style import DIVERGING, symmetric_limit
from value_lens.viz.heatmap import METRICS, _window

__all__ = ["downsample", "layer_token_heatmap"]


def downsample(values: np.ndarray, max_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Average ``values [rows, T]`` over bins of consecutive columns so at most ``max_columns`` remain.

    Returns ``(binned [rows, n_bins], starts [n_bins])`` where ``starts`` are the first column of
    each bin. NaNs are ignored within a bin.

    Example:
        >>> z, s = downsample(np.arange(10.0)[None], 4)
        >>> z.tolist(), s.tolist()
        ([[1.0, 4.0, 7.0, 9.0]], [0, 3, 6, 9])
    """
    if max_columns < 1:
        raise InputError(f"max_columns must be >= 1, got {max_columns}")
    rows, t = values.shape
    if t <= max_columns:
        return values.astype(np.float32), np.arange(t)
    size = math.ceil(t / max_columns)
    n_bins = math.ceil(t / size)
    pad = n_bins * size - t
    padded = np.concatenate([values, np.full((rows, pad), np.nan)], axis=1)
    binned = np.nanmean(padded.reshape(rows, n_bins, size), axis=2)
    return binned.astype(np.float32), np.arange(0, t, size)


def layer_token_heatmap(
    trace: ValueTrace,
    *,
    metric: str = "cosine",
    start: int = 0,
    stop: int | None = None,
    max_columns: int = 1000,
    vmax: float | None = None,
    title: str | None = None,
    label_chars: int = 12,
) -> go.Figure:
    """Plotly heatmap of value per token (x) and layer (y).

    Args:
        trace: a trace holding one or more layers.
        metric: ``"cosine"`` or ``"projection"``.
        start, stop: window of positions to draw.
        max_columns: positions beyond this many are averaged in bins of consecutive tokens.
        vmax: symmetric colour limit; default the largest ``|value|`` drawn.
        title: figure title.
        label_chars: how much of each token the hover shows.

    Returns:
        A ``plotly.graph_objects.Figure`` with one ``Heatmap`` trace whose ``z`` is
        ``[len(trace.layers), n_columns]``; ``x`` holds one hover label per column ("pos 12:
        'tok'"), ``y`` the layers, and ``layout.meta["positions"]`` the first position of each
        column. The hover shows position(s), token(s), layer and value.
    """
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    vals = getattr(trace, metric).detach().float().cpu().numpy()
    lo, hi = _window(start, stop, vals.shape[1])
    z, starts = downsample(vals[:, lo:hi], max_columns)
    binned = z.shape[1] < hi - lo
    starts = starts + lo
    ends = np.append(starts[1:], hi) - 1
    labels = [
        _column_label(trace.tokens, int(a), int(b), label_chars)
        for a, b in zip(starts, ends, strict=True)
    ]
    lim = symmetric_limit(z[np.isfinite(z)].ravel().tolist(), vmax)
    what = "mean " + metric if binned else metric
    # x is categorical (one unique label per column) so the hover text is stored once per
    # column, not once per cell; the ticks show plain positions.
    step = max(1, len(labels) // 10)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=[str(layer) for layer in trace.layers],
            colorscale=DIVERGING,
            zmid=0.0,
            zmin=-lim,
            zmax=lim,
            colorbar={"title": {"text": what}},
            hovertemplate="%{x}<br>layer %{y}<br>" + what + " %{z:.4f}<extra></extra>",
        )
    )
    span = f"tokens {lo}-{hi - 1}"
    if binned and starts.size > 1:
        span += f", {starts.size} bins of {starts[1] - starts[0]}"
    fig.update_layout(
        title={"text": title if title is not None else f"value ({metric}) by layer: {span}"},
        xaxis={
            "title": {"text": "token position"},
            "type": "category",
            "tickmode": "array",
            "tickvals": labels[::step],
            "ticktext": [str(int(a)) for a in starts[::step]],
        },
        yaxis={"title": {"text": "layer"}, "type": "category"},
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        meta={"positions": [int(a) for a in starts], "layers": list(trace.layers)},
    )
    return fig


def _column_label(tokens: list[str], a: int, b: int, chars: int) -> str:
    def short(tok: str) -> str:
        s = tok.replace("\n", "\\n").replace("<", "&lt;").replace(">", "&gt;")
        return s if len(s) <= chars else s[: chars - 1] + "…"

    if a == b:
        return f"pos {a}: '{short(tokens[a])}'"
    head = "".join(tokens[a : min(b + 1, a + 4)])
    return f"pos {a}-{b}: '{short(head)}'"
