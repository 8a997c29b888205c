"""The logit lens of a value axis: which tokens the direction promotes and suppresses when it is
read straight through the model's final norm and unembedding (the paper's Table 9).

Three scores per vocabulary token ``t`` for the unit axis ``v̂`` at one layer, with ``γ`` the
final norm's weight and ``W_U`` the unembedding (``lm_head``) matrix:

- ``"paper"``: ``W_U[t] · (γ ⊙ v̂)``, the paper's "normalised logit". For a unit vector the
  RMSNorm output is ``√d · γ ⊙ v̂`` (up to its ε), so this is the raw lens divided by ``√d``.
- ``"raw"``: the model's own final norm applied to ``v̂`` (its ``√d`` and ε included), then the
  unembedding, bias included if the model has one: the logits the model would emit if its last
  residual were exactly ``v̂``.
- ``"cosine"``: the cosine between ``γ ⊙ v̂`` and each unembedding row ``W_U[t]``. The final norm
  only rescales ``γ ⊙ v̂``, so this is also the cosine with the normed axis; the bias is ignored.
  It ranks tokens without favouring rows of large norm.

Weights are read from the HF model a ``TransformerBridge`` wraps (``model.original_model``), never
from TransformerLens-processed copies (whose folded norms would change the scores); a bare HF
causal LM works too. Tied and untied embeddings both work: the unembedding is whatever
``get_output_embeddings()`` returns. Rows of a padded vocabulary beyond the tokenizer's length are
left out (they are not tokens).

Example:
    >>> import torch
    >>> from value_lens.testing import tiny_qwen3
    >>> model = tiny_qwen3()
    >>> v = torch.ones(model.cfg.d_model)
    >>> top = logit_lens(v, model, 1, k=3)
    >>> list(top["side"])
    ['top', 'top', 'top', 'bottom', 'bottom', 'bottom']
    >>> bool(top["score"].iloc[0] >= top["score"].iloc[1])
    True
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from value_lens.errors import InputError
from value_lens.fitting.axis import ValueAxis

__all__ = ["LENS_MODES", "lens_scores", "logit_lens"]

LENS_MODES: tuple[str, ...] = ("paper", "raw", "cosine")
_NORM_NAMES = ("norm", "final_layernorm", "ln_f", "final_layer_norm", "final_norm")


def _hf_model(model: Any) -> Any:
    """The HF causal LM behind ``model`` (a bridge's wrapped model, or ``model`` itself)."""
    hf = model.__dict__.get("original_model") if hasattr(model, "__dict__") else None
    if hf is None and hasattr(model, "get_output_embeddings"):
        hf = model
    if hf is None or not hasattr(hf, "get_output_embeddings"):
        raise InputError(
            f"logit_lens needs a TransformerBridge (vl.load_model) or an HF causal LM; got "
            f"{type(model).__name__}. Load the model with vl.load_model(...)"
        )
    return hf


def _final_norm(hf: Any) -> torch.nn.Module:
    base = getattr(hf, "base_model", hf)
    for owner in (base, getattr(base, "model", None), hf):
        for name in _NORM_NAMES:
            mod = getattr(owner, name, None) if owner is not None else None
            if isinstance(mod, torch.nn.Module) and getattr(mod, "weight", None) is not None:
                return mod
    raise InputError(
        f"could not find the final norm of {type(hf).__name__} (looked for attributes "
        f"{list(_NORM_NAMES)}); this architecture is not supported by logit_lens"
    )


def _gain(norm: torch.nn.Module) -> torch.Tensor:
    """The norm's effective per-channel gain γ (Gemma-style norms scale by ``1 + weight``)."""
    weight = norm.weight
    assert isinstance(weight, torch.Tensor)  # _final_norm only returns norms with a weight
    w = weight.detach().double()
    return 1.0 + w if type(norm).__name__.startswith("Gemma") else w


def _unit(axis: ValueAxis | torch.Tensor, layer: int | None, d_model: int) -> torch.Tensor:
    if isinstance(axis, ValueAxis):
        if layer is None:
            raise InputError(
                "pass the layer to read the ValueAxis at, e.g. logit_lens(axis, m, 20)"
            )
        v = axis.direction(layer, unit=True)
    else:
        v = torch.as_tensor(axis).detach().reshape(-1)
        n = v.double().norm()
        if float(n) == 0 or not bool(torch.isfinite(v).all()):
            raise InputError("the direction is zero or not finite; pass a fitted axis")
        v = v / n
    if v.numel() != d_model:
        raise InputError(
            f"the direction has {v.numel()} dimensions but the model's d_model is {d_model}; "
            "use an axis fitted on this model"
        )
    return v.double()


def lens_scores(
    axis: ValueAxis | torch.Tensor, model: Any, layer: int | None = None, *, mode: str = "paper"
) -> torch.Tensor:
    """The score of every vocabulary token (``[vocab]`` float64 on the CPU); see the module doc."""
    if mode not in LENS_MODES:
        raise InputError(f"unknown mode {mode!r}; use one of {list(LENS_MODES)}")
    hf = _hf_model(model)
    head = hf.get_output_embeddings()
    w_u = head.weight.detach()  # [vocab, d]
    norm = _final_norm(hf)
    v = _unit(axis, layer, int(w_u.shape[1])).to(w_u.device)
    with torch.no_grad():
        if mode == "raw":
            x = v.to(w_u.dtype).reshape(1, 1, -1)
            out = head(norm(x)).reshape(-1).double()
        else:
            g = _gain(norm).to(w_u.device) * v
            out = w_u.double() @ g
            if mode == "cosine":
                out = out / (w_u.double().norm(dim=1) * g.norm()).clamp_min(1e-30)
    tok = getattr(model, "tokenizer", None)
    n = out.numel() if tok is None else min(len(tok), out.numel())
    return out[:n].cpu()


def logit_lens(
    axis: ValueAxis | torch.Tensor,
    model: Any,
    layer: int | None = None,
    *,
    k: int = 30,
    mode: str = "paper",
) -> pd.DataFrame:
    """The ``k`` tokens the axis promotes most and the ``k`` it suppresses most.

    Args:
        axis: a :class:`~value_lens.ValueAxis` (read at ``layer``, unit length) or one direction.
        model: a ``TransformerBridge`` from :func:`~value_lens.load_model`, or an HF causal LM
            (then token strings come from ``model.tokenizer`` if it has one).
        layer: the layer to read the axis at (value_lens convention; paper L21 = 20).
        k: tokens per side.
        mode: ``"paper"`` (default, Table 9's normalised logit), ``"raw"`` or ``"cosine"``.

    Returns:
        one row per token: ``side`` (``"top"`` then ``"bottom"``), ``rank`` (1 = most extreme),
        ``token_id``, ``token`` (decoded), ``score``, ``mode`` and ``layer``.
    """
    if int(k) < 1:
        raise InputError(f"k must be at least 1, got {k}")
    scores = lens_scores(axis, model, layer, mode=mode)
    k = min(int(k), scores.numel())
    tok = getattr(model, "tokenizer", None)
    rows = []
    for side, largest in (("top", True), ("bottom", False)):
        vals, ids = torch.topk(scores, k, largest=largest)
        for rank, (s, i) in enumerate(zip(vals.tolist(), ids.tolist(), strict=True), start=1):
            text = tok.decode([i]) if tok is not None else str(i)
            rows.append((side, rank, i, text, s, mode, layer))
    return pd.DataFrame(
        rows, columns=["side", "rank", "token_id", "token", "score", "mode", "layer"]
    )
