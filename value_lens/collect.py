"""Streaming collection: residual-stream activations -> :class:`ActivationStats`.

One forward pass per batch, hooks only on the requested ``resid_post`` points, padding masked,
and accumulation straight into per-group/per-label sums, so memory is flat in the token count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import torch
from tqdm.auto import tqdm

from value_lens.conventions import resolve_layers
from value_lens.errors import InputError, NonFiniteActivationError
from value_lens.hooks import run_resid_hooks
from value_lens.model import d_model, model_device, model_id, n_ctx, n_layers
from value_lens.stats import ActivationStats, Moments, Reservoir
from value_lens.tokens import IGNORE, LabelledTokens

__all__ = ["collect_stats", "iter_batches"]


def iter_batches(
    lengths: list[int], batch_size: int, max_batch_tokens: int | None = None
) -> Iterable[list[int]]:
    """Sequence indices grouped into batches of similar length (longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        too_many = (
            max_batch_tokens is not None
            and batch
            and (len(batch) + 1) * lengths[batch[0]] > max_batch_tokens
        )
        if len(batch) == batch_size or too_many:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _token_keys(ids: torch.Tensor, group: str, seed: int) -> torch.Tensor:
    """Deterministic uniform keys for a sequence's tokens (depends only on content and seed)."""
    h = hashlib.sha256(f"{seed}|{group}|".encode() + ids.numpy().tobytes()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(h[:8], "little") & ((1 << 63) - 1))
    return torch.rand(ids.numel(), generator=gen, dtype=torch.float64)


def collect_stats(
    model: Any,
    data: LabelledTokens,
    *,
    layers: int | Iterable[int] | None = None,
    batch_size: int = 8,
    max_batch_tokens: int | None = 16384,
    dtype: torch.dtype = torch.float64,
    moments: bool = False,
    sample_per_class: int = 0,
    seed: int = 0,
    truncate: bool = False,
    progress: bool = True,
) -> ActivationStats:
    """Stream ``data`` through ``model`` and sum residual vectors per layer, group and label.

    Args:
        model: any TransformerLens-style model.
        data: labelled sequences; tokens labelled ``IGNORE`` (and padding) are never read.
        layers: value_lens layers (block outputs); ``None`` for all.
        batch_size / max_batch_tokens: batching (sequences are sorted by length, right-padded).
        dtype: accumulation dtype (fp64 default; fp32 halves memory).
        moments: also accumulate second moments (needed by ``method="ridge"``).
        sample_per_class: keep a seeded uniform sample of this many token vectors per label
            (needed by ``method="logistic"``).
        truncate: cut sequences longer than the model's context instead of raising.

    Example:
        >>> from value_lens.testing import tiny_qwen3
        >>> from value_lens.tokens import LabelledTokens
        >>> model = tiny_qwen3()
        >>> data = LabelledTokens.from_lists([[10, 11, 12, 13]], [[-1, 0, 1, 1]], ["g"])
        >>> stats = collect_stats(model, data, progress=False)
        >>> stats.count.tolist()
        [[1, 2]]
    """
    if len(data) == 0:
        raise InputError("the dataset is empty; build or load some labelled sequences first")
    L = resolve_layers(layers, n_layers(model))
    D, limit, dev = d_model(model), n_ctx(model), model_device(model)
    classes = sorted(data.label_counts())
    if not classes:
        raise InputError("every token is labelled IGNORE; there is nothing to collect")
    groups = data.group_names
    C = len(classes)
    class_lut = torch.full((max(classes) + 2,), -1, dtype=torch.long)
    class_lut[torch.tensor(classes)] = torch.arange(C)
    seqs = []
    for i, ids in enumerate(data.input_ids):
        if ids.numel() > limit and not truncate:
            raise InputError(
                f"sequence {i} has {ids.numel()} tokens but the model's context is {limit}; "
                "pass truncate=True or drop it"
            )
        seqs.append(ids[:limit])
    lengths = [int(s.numel()) for s in seqs]
    pad_id = getattr(model.tokenizer, "pad_token_id", None) or 0

    count = torch.zeros(len(groups), C, dtype=torch.long)
    total = torch.zeros(len(L), len(groups) * C, D, dtype=dtype)
    norm_sum = torch.zeros(len(L), dtype=torch.float64)
    mom = None
    if moments:
        mom = Moments(
            torch.zeros((), dtype=torch.float64),
            torch.zeros(len(L), D, dtype=torch.float64),
            torch.zeros((), dtype=torch.float64),
            torch.zeros((), dtype=torch.float64),
            torch.zeros(len(L), D, dtype=torch.float64),
            torch.zeros(len(L), D, D, dtype=torch.float64),
        )
    res = None
    if sample_per_class > 0:
        k = sample_per_class
        res = Reservoir(
            k, torch.full((C, k), float("inf"), dtype=torch.float64), torch.zeros(len(L), C, k, D)
        )
    bar = tqdm(total=sum(lengths), unit="tok", desc="collect", disable=not progress)
    for b_no, idx in enumerate(iter_batches(lengths, batch_size, max_batch_tokens)):
        T = max(lengths[i] for i in idx)
        tokens = torch.full((len(idx), T), pad_id, dtype=torch.long)
        lab = torch.full((len(idx), T), IGNORE, dtype=torch.long)
        tgt = torch.full((len(idx), T), float("nan"), dtype=torch.float64)
        keys = torch.full((len(idx), T), float("inf"), dtype=torch.float64)
        for r, i in enumerate(idx):
            n = lengths[i]
            tokens[r, :n] = seqs[i]
            lab[r, :n] = data.labels[i][:n]
            if data.targets is not None:
                tgt[r, :n] = data.targets[i][:n].double()
            if res is not None:
                keys[r, :n] = _token_keys(seqs[i], data.groups[i], seed)
        sel = (lab != IGNORE).reshape(-1)
        g_of_row = torch.tensor([groups.index(data.groups[i]) for i in idx])
        cls = class_lut[lab.clamp(min=0)]
        flat = (g_of_row[:, None] * C + cls).reshape(-1)[sel]
        count.view(-1).index_add_(0, flat, torch.ones_like(flat))
        y = w = None
        if mom is not None:
            y_all = tgt if data.targets is not None else lab.to(torch.float64)
            y = y_all.reshape(-1)[sel]
            fin = torch.isfinite(y)
            y = torch.where(fin, y, 0.0)
            w = fin.to(torch.float64)
            mom.n += w.sum()
            mom.y += y.sum()
            mom.yy += (y * y).sum()
        slots = None
        if res is not None:
            cand_keys, cand_cls = keys.reshape(-1)[sel], cls.reshape(-1)[sel]
            slots = []
            for c in range(C):
                pos = (cand_cls == c).nonzero().squeeze(1)
                merged = torch.cat([res.keys[c], cand_keys[pos]])
                order = merged.argsort(stable=True)[: res.k]
                res.keys[c] = merged[order]
                slots.append((pos, order))

        def read(
            layer: int,
            resid: torch.Tensor,
            b_no: int = b_no,
            idx: list[int] = idx,
            flat: torch.Tensor = flat,
            sel: torch.Tensor = sel,
            y: torch.Tensor | None = y,
            w: torch.Tensor | None = w,
            slots: list | None = slots,
        ) -> None:
            li = L.index(layer)
            x = resid.reshape(-1, resid.shape[-1])[sel.to(resid.device)]
            if not bool(torch.isfinite(x).all()):
                raise NonFiniteActivationError(
                    f"NaN/Inf activations at layer {layer} in batch {b_no} (sequences {idx}); "
                    "try dtype=float32/bfloat16 instead of float16, or check the inputs"
                )
            xf = x.to(torch.float32).cpu()
            xd = xf.to(dtype)
            total[li].index_add_(0, flat, xd)
            norm_sum[li] += xf.norm(dim=-1).double().sum()
            if mom is not None and y is not None and w is not None:
                x64 = xf.double() * w[:, None]  # tokens without a finite target count as zero
                mom.x[li] += x64.sum(0)
                mom.xy[li] += x64.T @ y
                mom.xx[li] += x64.T @ x64
            if res is not None and slots is not None:
                for c, (pos, order) in enumerate(slots):
                    res.x[li, c] = torch.cat([res.x[li, c], xf[pos]])[order]

        run_resid_hooks(model, tokens.to(dev), {layer: read for layer in L})
        bar.update(sum(lengths[i] for i in idx))
    bar.close()
    return ActivationStats(
        layers=L,
        groups=groups,
        classes=classes,
        count=count,
        sum=total.reshape(len(L), len(groups), C, D),
        norm_sum=norm_sum,
        moments=mom,
        sample=res,
        meta={
            "model_id": model_id(model),
            "n_layers_model": n_layers(model),
            "dataset_hash": data.fingerprint(),
            "dataset": data.describe(),
            "n_sequences": len(data),
        },
    )
