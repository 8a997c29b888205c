"""Streaming collection: residual-stream activations -> :class:`ActivationStats`.

One forward pass per batch, hooks only on the requested ``resid_post`` points (the pass stops
after the deepest one), padding masked, and accumulation straight into per-group/per-label sums
on the model's device, so memory is flat in the token count and nothing is copied to the host
per layer.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from value_lens.core.conventions import resolve_layers
from value_lens.core.hooks import run_resid_hooks
from value_lens.core.model import d_model, model_device, model_id, n_ctx, n_layers
from value_lens.core.protocols import HookedModel
from value_lens.data.tokens import AFTER, BEFORE, IGNORE, LabelledTokens
from value_lens.errors import InputError, NonFiniteActivationError
from value_lens.fitting.distributed import all_reduce_stats, rank_and_world, require_distributed
from value_lens.fitting.shards import (
    ShardPlan,
    check_shard,
    existing_shard,
    save_shard,
    shard_manifest,
)
from value_lens.fitting.stats import ActivationStats, Moments, Reservoir

__all__ = [
    "checked_sequences",
    "collect_stats",
    "iter_batches",
    "padded_batch",
    "regression_target",
]


def iter_batches(
    lengths: list[int], batch_size: int, max_batch_tokens: int | None = None
) -> Iterator[list[int]]:
    """Sequence indices grouped into batches of similar length (longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        full = len(batch) == batch_size
        too_many = (
            bool(batch)
            and max_batch_tokens is not None
            and (len(batch) + 1) * lengths[batch[0]] > max_batch_tokens
        )
        if full or too_many:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def checked_sequences(data: LabelledTokens, limit: int, *, truncate: bool) -> list[torch.Tensor]:
    """The token sequences, checked against the context ``limit`` (cut to it if ``truncate``)."""
    for i, ids in enumerate(data.input_ids):
        if ids.numel() > limit and not truncate:
            raise InputError(
                f"sequence {i} has {ids.numel()} tokens but the model's context is {limit}; "
                "pass truncate=True or drop it"
            )
    return [ids[:limit] for ids in data.input_ids]


def padded_batch(
    seqs: list[torch.Tensor], labels: list[torch.Tensor], rows: list[int], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``[B, T]`` tokens and labels of ``rows`` (padding labelled ``IGNORE``)."""
    tokens = _pad_rows([seqs[i] for i in rows], pad_id, torch.long)
    lab = _pad_rows([labels[i][: seqs[i].numel()] for i in rows], IGNORE, torch.long)
    return tokens, lab


def _pad_rows(values: list[torch.Tensor], fill: float, dtype: torch.dtype) -> torch.Tensor:
    """Stack 1-D tensors into ``[B, max_len]``, right-padded with ``fill``."""
    out = torch.full((len(values), max(int(v.numel()) for v in values)), fill, dtype=dtype)
    for r, v in enumerate(values):
        out[r, : v.numel()] = v
    return out


def _token_keys(ids: torch.Tensor, group: str, seed: int) -> torch.Tensor:
    """Deterministic uniform keys for a sequence's tokens (depend only on content and seed)."""
    h = hashlib.sha256(f"{seed}|{group}|".encode() + ids.numpy().tobytes()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(h[:8], "little") & ((1 << 63) - 1))
    return torch.rand(ids.numel(), generator=gen, dtype=torch.float64)


def regression_target(lab: torch.Tensor) -> torch.Tensor:
    """Ridge target without explicit targets: 1 for ``AFTER``, 0 for ``BEFORE``, else NaN.

    Example:
        >>> regression_target(torch.tensor([-1, 0, 2, 1])).tolist()
        [nan, 0.0, nan, 1.0]
    """
    y = torch.full(lab.shape, float("nan"), dtype=torch.float64)
    y[lab == BEFORE] = 0.0
    y[lab == AFTER] = 1.0
    return y


@dataclass
class _Batch:
    """Everything the per-layer reader needs about one batch (on the model's device)."""

    number: int
    rows: list[int]
    sel: torch.Tensor  # [B*T] bool: labelled, non-pad tokens
    flat: torch.Tensor  # [N] group * C + class of each selected token
    y: torch.Tensor | None  # [N] regression target (0 where missing)
    w: torch.Tensor | None  # [N] 1 where the target is finite
    slots: list[tuple[torch.Tensor, torch.Tensor]] | None  # reservoir merge plan per class


class _Accumulator:
    """Device-resident running sums for :func:`collect_stats`."""

    def __init__(
        self,
        layers: list[int],
        G: int,
        C: int,
        D: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
        moments: bool,
        k: int,
    ) -> None:
        self.layers, self.G, self.C, self.dtype, self.dev = layers, G, C, dtype, device
        L = len(layers)

        def z64(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=device)

        self.count = torch.zeros(G * C, dtype=torch.long)
        self.total = torch.zeros(L, G * C, D, dtype=dtype, device=device)
        self.norm_sum = z64(L, G * C)
        self.mom = None
        if moments:
            self.mom = Moments(z64(), z64(L, D), z64(), z64(), z64(L, D), z64(L, D, D))
        self.res = None
        if k > 0:
            self.res = Reservoir(
                k, torch.full((C, k), float("inf"), dtype=torch.float64), torch.zeros(L, C, k, D)
            )

    def plan(
        self,
        number: int,
        rows: list[int],
        lab: torch.Tensor,
        groups_of_rows: torch.Tensor,
        class_lut: torch.Tensor,
        tgt: torch.Tensor | None,
        keys: torch.Tensor | None,
    ) -> _Batch:
        sel = (lab != IGNORE).reshape(-1)
        cls = class_lut[lab.clamp(min=0)]
        flat = (groups_of_rows[:, None] * self.C + cls).reshape(-1)[sel]
        self.count.index_add_(0, flat, torch.ones_like(flat))
        y = w = None
        if self.mom is not None:
            y_all = (tgt if tgt is not None else regression_target(lab)).reshape(-1)[sel]
            fin = torch.isfinite(y_all)
            y, w = torch.where(fin, y_all, 0.0), fin.to(torch.float64)
            self.mom.n += w.sum().to(self.dev)
            self.mom.y += y.sum().to(self.dev)
            self.mom.yy += (y * y).sum().to(self.dev)
            y, w = y.to(self.dev), w.to(self.dev)
        slots = None
        if self.res is not None and keys is not None:
            cand_keys, cand_cls = keys.reshape(-1)[sel], cls.reshape(-1)[sel]
            slots = []
            for c in range(self.C):
                pos = (cand_cls == c).nonzero().squeeze(1)
                merged = torch.cat([self.res.keys[c], cand_keys[pos]])
                order = merged.argsort(stable=True)[: self.res.k]
                self.res.keys[c] = merged[order]
                slots.append((pos, order))
        return _Batch(number, rows, sel.to(self.dev), flat.to(self.dev), y, w, slots)

    def read(self, layer: int, resid: torch.Tensor, b: _Batch) -> None:
        li = self.layers.index(layer)
        x = resid.reshape(-1, resid.shape[-1])[b.sel].to(torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise NonFiniteActivationError(
                f"NaN/Inf activations at layer {layer} in batch {b.number} (sequences {b.rows}); "
                "load the model in float32/bfloat16 rather than float16, or check the inputs"
            )
        # fp32 sums within the batch, accumulated across batches in ``dtype`` (fp64 default)
        buf = torch.zeros(self.G * self.C, x.shape[-1], dtype=torch.float32, device=x.device)
        self.total[li] += buf.index_add_(0, b.flat, x).to(self.dtype)
        self.norm_sum[li].index_add_(0, b.flat, x.norm(dim=-1).double())
        if self.mom is not None and b.y is not None and b.w is not None:
            x64 = x.double() * b.w[:, None]  # tokens without a finite target count as zero
            self.mom.x[li] += x64.sum(0)
            self.mom.xy[li] += x64.T @ b.y
            self.mom.xx[li] += x64.T @ x64
        if self.res is not None and b.slots is not None:
            for c, (pos, order) in enumerate(b.slots):
                cand = x[pos.to(x.device)].cpu()
                self.res.x[li, c] = torch.cat([self.res.x[li, c], cand])[order]

    def finish(
        self, groups: list[str], classes: list[int], meta: dict[str, Any]
    ) -> ActivationStats:
        L, D = len(self.layers), self.total.shape[-1]
        mom = None if self.mom is None else Moments(*(t.cpu() for t in self.mom.tensors()))
        return ActivationStats(
            layers=self.layers,
            groups=groups,
            classes=classes,
            count=self.count.reshape(self.G, self.C),
            sum=self.total.cpu().reshape(L, self.G, self.C, D),
            norm_sum=self.norm_sum.cpu().reshape(L, self.G, self.C),
            moments=mom,
            sample=self.res,
            meta=meta,
        )


def collect_stats(
    model: HookedModel,
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
    shard: tuple[int, int] | None = None,
    out: str | os.PathLike[str] | None = None,
    distributed: bool = False,
) -> ActivationStats:
    """Stream ``data`` through ``model`` and sum residual vectors per layer, group and label.

    Args:
        model: any TransformerLens-style model.
        data: labelled sequences; tokens labelled ``IGNORE`` (and padding) are never read.
        layers: value_lens layers (block outputs); ``None`` for all.
        batch_size / max_batch_tokens: batching (sequences are sorted by length, right-padded;
            with causal attention, right padding cannot change the real tokens' activations).
        dtype: accumulation dtype across batches (fp64 default; fp32 halves memory).
        moments: also accumulate second moments (needed by ``method="ridge"``) of the tokens
            with a regression target: ``data.targets`` where given, else AFTER=1 vs BEFORE=0
            (REWARD and other labels left out).
        sample_per_class: keep a seeded uniform sample of this many token vectors per label
            (needed by ``method="logistic"``).
        truncate: cut sequences longer than the model's context instead of raising.
        shard / out: collect only shard ``(rank, world)`` of the data (balanced by tokens) and
            write it atomically under ``out`` with a manifest; a finished shard is reused. Merge
            with :meth:`ActivationStats.merge` (see :mod:`value_lens.fitting.shards`).
        distributed: inside an initialised ``torch.distributed`` process group, collect this
            rank's shard and all-reduce, so every rank returns the whole data's statistics
            (see :mod:`value_lens.fitting.distributed`).

    Example:
        >>> from value_lens.testing import tiny_qwen3
        >>> from value_lens.data.tokens import LabelledTokens
        >>> model = tiny_qwen3()
        >>> data = LabelledTokens.from_lists([[10, 11, 12, 13]], [[-1, 0, 1, 1]], ["g"])
        >>> stats = collect_stats(model, data, progress=False)
        >>> stats.count.tolist()
        [[1, 2]]
    """
    if len(data) == 0:
        raise InputError("the dataset is empty; build or load some labelled sequences first")
    if shard is not None or out is not None or distributed:
        return _parallel(model, data, shard, out, distributed, locals())
    L = resolve_layers(layers, n_layers(model))
    limit, dev = n_ctx(model), model_device(model)
    classes = sorted(data.label_counts())
    if not classes:
        raise InputError("every token is labelled IGNORE; there is nothing to collect")
    groups = data.group_names
    class_lut = torch.full((max(classes) + 2,), -1, dtype=torch.long)
    class_lut[torch.tensor(classes)] = torch.arange(len(classes))
    seqs = checked_sequences(data, limit, truncate=truncate)
    lengths = [int(s.numel()) for s in seqs]
    pad_id = getattr(model.tokenizer, "pad_token_id", None) or 0
    acc = _Accumulator(
        L,
        len(groups),
        len(classes),
        d_model(model),
        dtype=dtype,
        device=dev,
        moments=moments,
        k=sample_per_class,
    )
    bar = tqdm(total=sum(lengths), unit="tok", desc="collect", disable=not progress)
    for number, rows in enumerate(iter_batches(lengths, batch_size, max_batch_tokens)):
        tokens, lab = padded_batch(seqs, data.labels, rows, pad_id)
        tgt = keys = None
        if data.targets is not None:
            tgt = _pad_rows(
                [data.targets[i][: lengths[i]] for i in rows], float("nan"), torch.float64
            )
        if sample_per_class > 0:
            row_keys = [_token_keys(seqs[i], data.groups[i], seed) for i in rows]
            keys = _pad_rows(row_keys, float("inf"), torch.float64)
        g_rows = torch.tensor([groups.index(data.groups[i]) for i in rows])
        batch = acc.plan(number, rows, lab, g_rows, class_lut, tgt, keys)

        def read(layer: int, resid: torch.Tensor, batch: _Batch = batch) -> None:
            acc.read(layer, resid, batch)

        run_resid_hooks(model, tokens.to(dev), dict.fromkeys(L, read))
        bar.update(sum(lengths[i] for i in rows))
    bar.close()
    meta: dict[str, Any] = {
        "model_id": model_id(model),
        "n_layers_model": n_layers(model),
        "dataset_hash": data.fingerprint(),
        "dataset": data.describe(),
        "n_sequences": len(data),
        "group_sequences": dict(Counter(data.groups)),
    }
    if moments:
        meta["moments_target"] = "targets" if data.targets is not None else "after_vs_before"
    return acc.finish(groups, classes, meta)


def _parallel(
    model: HookedModel,
    data: LabelledTokens,
    shard: tuple[int, int] | None,
    out: str | os.PathLike[str] | None,
    distributed: bool,
    scope: dict[str, Any],
) -> ActivationStats:
    """``collect_stats(shard=, out=)`` and ``distributed=True``: collect one shard, then save it
    (:mod:`~value_lens.fitting.shards`) or all-reduce it (:mod:`~value_lens.fitting.distributed`)."""
    kw = {k: v for k, v in scope.items() if k in _COLLECT_OPTIONS}
    if distributed:
        if shard is not None or out is not None:
            raise InputError("use distributed=True or shard=/out=, not both")
        require_distributed()
        rank, world = rank_and_world()
        plan = ShardPlan.create(data, world)
        part = collect_stats(model, data.subset(plan.indices(rank)), **kw)
        return all_reduce_stats(part, data, plan)
    if shard is None or out is None:
        raise InputError("sharded collection needs both shard=(rank, world) and out=DIR")
    rank, world = check_shard(shard)
    plan = ShardPlan.create(data, world)
    manifest = shard_manifest(model_id(model), data, plan, rank, kw)
    done = existing_shard(out, manifest)
    if done is not None:
        return done
    return save_shard(collect_stats(model, data.subset(plan.indices(rank)), **kw), manifest, out)


_COLLECT_OPTIONS = (
    "layers",
    "batch_size",
    "max_batch_tokens",
    "dtype",
    "moments",
    "sample_per_class",
    "seed",
    "truncate",
    "progress",
)
