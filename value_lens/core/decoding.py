"""One left-padded batch through a decoding loop, and per-token statistics of its logits.

:func:`decode_batch` runs the bridge's own hooked loop (``backend="bridge"``) or HF
``generate`` on the modules the bridge wraps (``backend="hf"``, :mod:`value_lens.core.fastpath`).
``"auto"`` (the default of :class:`value_lens.core.generate.GenerationConfig`) takes the HF loop
whenever :func:`~value_lens.core.fastpath.fast_path_blocker` finds nothing against it, which
``tests/core/test_fastpath.py`` proves gives the same tokens (greedy and seeded sampling) and logits
within 1e-5.

:func:`token_stats` reduces the raw (temperature-1) logits of each generated token to the
numbers the decoding scorers read (:data:`TOKEN_STATS`), all in float64:

* ``logprob``: log-probability of the chosen token;
* ``entropy``: entropy of the next-token distribution, in nats;
* ``self_certainty``: KL(U || p) from the uniform distribution U over the vocabulary,
  ``-log V - mean_v log p_v`` (Kang et al., 2025);
* ``confidence``: DeepConf's token confidence, minus the mean of the top-20 log-probabilities
  (Fu et al., 2025).

Example:
    >>> import torch
    >>> s = token_stats(torch.zeros(2, 4), torch.tensor([1, 3]))
    >>> [round(float(s[k][0]), 4) for k in TOKEN_STATS]
    [-1.3863, 1.3863, 0.0, 1.3863]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from jaxtyping import Float, Int

from value_lens.core.fastpath import fast_path_blocker, hf_decoding
from value_lens.core.protocols import GenerativeModel, HookedModel
from value_lens.errors import InputError

__all__ = [
    "LeftPadded",
    "CONFIDENCE_TOP_K",
    "TOKEN_STATS",
    "Backend",
    "DecodeRequest",
    "check_backend",
    "choose_backend",
    "decode_batch",
    "row_stats",
    "token_stats",
]

Backend = Literal["auto", "hf", "bridge"]
TOKEN_STATS = ("logprob", "entropy", "self_certainty", "confidence")
CONFIDENCE_TOP_K = 20


@dataclass(frozen=True)
class DecodeRequest:
    """One batch: left-padded ``tokens`` and ``mask`` ``[B, T]`` and how to decode them."""

    tokens: Int[torch.Tensor, "B T"]
    mask: Int[torch.Tensor, "B T"]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop_ids: Sequence[int]
    pad_id: int
    use_cache: bool
    criterion: Any = None
    logits: bool = False


def check_backend(backend: str) -> None:
    """Raise an :class:`~value_lens.errors.InputError` unless ``backend`` is a :data:`Backend`."""
    if backend not in get_args(Backend):
        raise InputError(f"backend must be 'auto', 'hf' or 'bridge', got {backend!r}")


def choose_backend(model: HookedModel, backend: Backend) -> str:
    """The loop that runs now: ``"hf"`` or ``"bridge"`` (``"auto"`` picks HF when it can)."""
    check_backend(backend)
    if backend == "bridge":
        return "bridge"
    blocker = fast_path_blocker(model)
    if blocker is None:
        return "hf"
    if backend == "hf":
        raise InputError(f"backend='hf' cannot run: {blocker}; use backend='auto' or 'bridge'")
    return "bridge"


def decode_batch(
    model: GenerativeModel, req: DecodeRequest, backend: str
) -> tuple[Int[torch.Tensor, "B S"], list[torch.Tensor] | None]:
    """Decode one batch; returns the full sequences and, when asked, each step's ``[B, V]``
    raw logits."""
    sample = req.temperature > 0
    if backend == "hf":
        from transformers import GenerationConfig as HFConfig
        from transformers import StoppingCriteriaList

        gc = HFConfig(
            max_new_tokens=req.max_new_tokens,
            do_sample=sample,
            temperature=req.temperature if sample else 1.0,
            top_p=req.top_p if sample else 1.0,
            top_k=0 if sample else None,
            # a list, even empty: None would fall back to the model's generation_config EOS
            eos_token_id=list(req.stop_ids),
            pad_token_id=req.pad_id,
            use_cache=req.use_cache,
            output_logits=req.logits,
            return_dict_in_generate=True,
        )
        extra = (
            {}
            if req.criterion is None
            else {"stopping_criteria": StoppingCriteriaList([req.criterion])}
        )
        with hf_decoding(model) as hf:
            out = hf.generate(
                input_ids=req.tokens, attention_mask=req.mask, generation_config=gc, **extra
            )
        return out.sequences, (list(out.logits) if req.logits else None)
    out = model.generate(
        req.tokens,
        attention_mask=req.mask,
        max_new_tokens=req.max_new_tokens,
        do_sample=sample,
        temperature=req.temperature if sample else 1.0,
        top_p=req.top_p if req.top_p < 1 else None,
        stop_at_eos=bool(req.stop_ids),
        use_past_kv_cache=req.use_cache,
        return_type="tokens",
        verbose=False,
        output_logits=req.logits,
        **({} if req.criterion is None else {"stopping_criteria": req.criterion}),
    )
    if req.logits:
        return out.sequences, list(out.logits)
    return out, None


def token_stats(
    logits: Float[torch.Tensor, "N V"], ids: Int[torch.Tensor, " N"]
) -> dict[str, Float[torch.Tensor, " N"]]:
    """:data:`TOKEN_STATS` of ``N`` generated tokens from their raw logits (float64)."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    vocab = logp.shape[-1]
    k = min(CONFIDENCE_TOP_K, vocab)
    return {
        "logprob": logp.gather(-1, ids.long().reshape(-1, 1)).reshape(-1),
        "entropy": -(logp.exp() * logp).sum(-1),
        "self_certainty": -math.log(vocab) - logp.mean(-1),
        "confidence": -logp.topk(k, dim=-1).values.mean(-1),
    }


def row_stats(
    steps: Sequence[torch.Tensor], new: Int[torch.Tensor, "B S"], ends: Sequence[int]
) -> list[dict[str, torch.Tensor]]:
    """Per row, :func:`token_stats` of its first ``ends[row]`` new tokens (``steps``: one
    ``[B, V]`` logits tensor per decoding step)."""
    out = []
    for j, end in enumerate(ends):
        if end == 0:
            empty = torch.zeros(0, dtype=torch.float64)
            out.append(dict.fromkeys(TOKEN_STATS, empty))
            continue
        rows = torch.stack([steps[s][j] for s in range(end)]).to("cpu")
        out.append(token_stats(rows, new[j, :end]))
    return out


@dataclass(frozen=True)
class LeftPadded:
    """Left-padded prompts of one batch: tokens, attention mask, lengths and pads.

    Example:
        >>> b = LeftPadded.of([torch.tensor([5, 6]), torch.tensor([7])], pad_id=0)
        >>> b.tokens.tolist(), b.mask.tolist(), b.pads.tolist(), b.width
        ([[5, 6], [0, 7]], [[1, 1], [0, 1]], [0, 1], 2)
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    lens: torch.Tensor
    pads: torch.Tensor

    @property
    def width(self) -> int:
        return int(self.tokens.shape[1])

    @classmethod
    def of(cls, ids: list[torch.Tensor], pad_id: int) -> LeftPadded:
        lens = torch.tensor([x.numel() for x in ids], dtype=torch.long)
        width = int(lens.max())
        pads = width - lens
        tokens = torch.full((len(ids), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for j, x in enumerate(ids):
            tokens[j, int(pads[j]) :] = x
            mask[j, int(pads[j]) :] = 1
        return cls(tokens, mask, lens, pads)
