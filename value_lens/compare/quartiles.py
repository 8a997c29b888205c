"""Which kinds of prompt sit high or low on the axis, per model (paper Fig 17).

Each prompt is rendered once as a user turn plus the generation prompt, thinking off (with the
first model's tokenizer), and the *same token ids* go to every model, as the paper does for
Qwen3-8B and its base. The value is the cosine at the last prompt token (just before
generation). Prompts are split into quartiles by value, Q1 the highest, and each label's
fraction is reported per quartile; its CI resamples the prompts inside the quartile (quartile
membership held fixed).

Example:
    >>> import numpy as np
    >>> f = quartile_fractions(np.arange(8.0), {"json": [0, 0, 0, 0, 0, 0, 1, 1]})
    >>> f["fraction"].tolist()  # Q1 (the two highest scores) holds both labelled prompts
    [1.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from value_lens.compare.common import as_models, batch_readout, encode_all, render
from value_lens.core.protocols import HookedModel
from value_lens.errors import InputError

__all__ = ["as_label_frame", "category_quartiles", "quartile_fractions", "quartiles"]


def quartiles(scores: Any) -> np.ndarray:
    """Quartile of each score, 1 = the highest quarter (ties in input order; sizes differ by <= 1).

    >>> quartiles([0.1, 0.9, 0.5, 0.3]).tolist()
    [4, 1, 2, 3]
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size < 4 or not np.isfinite(s).all():
        raise InputError(f"quartiles need at least 4 finite scores, got {s.size}")
    order = np.argsort(-s, kind="stable")
    q = np.empty(s.size, dtype=int)
    for k, chunk in enumerate(np.array_split(order, 4), 1):
        q[chunk] = k
    return q


def as_label_frame(labels: Any, n: int) -> pd.DataFrame:
    """Labels as an ``[n, n_labels]`` bool DataFrame.

    Accepts a DataFrame or ``{label: flags}`` of booleans, one category string per prompt, or one
    collection of label strings (or ``{label: bool}``) per prompt.

    >>> as_label_frame(["a", "b", "a"], 3).sum().to_dict()
    {'a': 2, 'b': 1}
    >>> as_label_frame([{"json": True, "political": False}] * 2, 2).sum().to_dict()
    {'json': 2, 'political': 0}
    """
    if isinstance(labels, pd.DataFrame):
        df = labels.reset_index(drop=True)
    elif isinstance(labels, Mapping):
        df = pd.DataFrame({str(k): list(v) for k, v in labels.items()})
    else:
        seq = list(labels)
        if len(seq) != n:
            raise InputError(f"{len(seq)} labels for {n} prompts; pass one per prompt")
        sets: list[set[str]] = []
        seen: dict[str, None] = {}  # every label name, also those never true
        for x in seq:
            if isinstance(x, str):
                x = {x: True}
            elif not isinstance(x, Mapping):
                x = {str(v): True for v in x}
            seen |= dict.fromkeys(str(k) for k in x)
            sets.append({str(k) for k, v in x.items() if v})
        names = list(seen)
        df = pd.DataFrame({k: [k in s for s in sets] for k in names})
    if len(df) != n:
        raise InputError(f"the labels have {len(df)} rows for {n} prompts")
    if df.shape[1] == 0:
        raise InputError("no labels given")
    return df.astype(bool)


def quartile_fractions(
    scores: Any, labels: Any, *, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Fraction of each label per score quartile (pure: no model involved).

    Returns one row per (quartile, label): ``n`` prompts in the quartile, ``n_true``,
    ``fraction`` and its bootstrap CI over the quartile's prompts.
    """
    from value_lens.compare.common import rate_ci

    q = quartiles(scores)
    df = as_label_frame(labels, q.size)
    rows = []
    for k in range(1, 5):
        sel = q == k
        for name in df.columns:
            flags = df[name].to_numpy()[sel]
            lo, hi = rate_ci(flags, n_boot, seed)
            rows.append(
                {
                    "quartile": k,
                    "label": name,
                    "n": int(sel.sum()),
                    "n_true": int(flags.sum()),
                    "fraction": float(flags.mean()),
                    "ci_lo": lo,
                    "ci_hi": hi,
                }
            )
    return pd.DataFrame(rows)


def _prompt_ids(model: HookedModel, prompts: Sequence[Any]) -> list[torch.Tensor]:
    out = []
    for i, p in enumerate(prompts):
        msgs = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
        if not msgs:
            raise InputError(f"prompt {i} is empty")
        out.append(encode_all(model, [render(model, msgs, generation_prompt=True).text])[0].ids)
    return out


def category_quartiles(
    models: Any,
    prompts: Sequence[Any],
    labels: Any,
    axis: Any,
    layer: int,
    *,
    metric: str = "cosine",
    batch_size: int = 16,
    n_boot: int = 1000,
    seed: int = 0,
) -> Any:
    """Label fractions per quartile of the value at the last prompt token, per model.

    Args:
        models: ``{name: model}`` (e.g. base and post-trained), or one model.
        prompts: user messages (strings) or chat message lists.
        labels: see :func:`as_label_frame`.
        axis, layer: the axis and value_lens layer.

    Returns:
        A :class:`~value_lens.compare.CompareResult`: table with one row per (model, prompt)
        holding ``value`` and ``quartile``; summary from :func:`quartile_fractions` per model.
    """
    from value_lens.compare.common import CompareResult
    from value_lens.compare.figures import quartile_figure

    ms = as_models(models)
    if not len(prompts):
        raise InputError("pass at least four prompts")
    lab = as_label_frame(labels, len(prompts))
    ids = _prompt_ids(next(iter(ms.values())), prompts)
    vocab = max(int(t.max()) for t in ids) + 1
    rows, summaries = [], []
    for name, model in ms.items():
        if vocab > int(model.cfg.d_vocab):
            raise InputError(f"model {name!r} has a smaller vocabulary than the first model's")
        vals = []
        for s in range(0, len(ids), batch_size):
            chunk = ids[s : s + batch_size]
            vals += [v[-1] for v in batch_readout(model, axis, layer, chunk, metric=metric)]
        q = quartiles(vals)
        rows += [
            {"model": name, "prompt": i, "value": v, "quartile": int(k)}
            for i, (v, k) in enumerate(zip(vals, q, strict=True))
        ]
        summaries.append(quartile_fractions(vals, lab, n_boot=n_boot, seed=seed).assign(model=name))
    summary = pd.concat(summaries, ignore_index=True)
    summary = summary[["model", *[c for c in summary.columns if c != "model"]]]
    table = pd.concat([pd.DataFrame(rows), pd.concat([lab] * len(ms), ignore_index=True)], axis=1)
    settings = {
        "layer": layer,
        "metric": metric,
        "position": "last_prompt_token",
        "enable_thinking": False,
        "n_boot": n_boot,
        "seed": seed,
    }
    return CompareResult(table, summary, quartile_figure(summary), settings)
