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
from dataclasses import dataclass, replace
from typing import Any

import torch

from value_lens.core.conventions import resolve_layers
from value_lens.core.hooks import run_resid_hooks
from value_lens.core.model import d_model, model_device, model_id, n_ctx, n_layers
from value_lens.core.progress import progress as progress_bar
from value_lens.core.protocols import HookedModel
from value_lens.data.positions import position_features
from value_lens.data.tokens import IGNORE, LabelledTokens
from value_lens.errors import InputError
from value_lens.fitting.accumulate import Accumulator, Batch, BatchLabels, regression_target
from value_lens.fitting.distributed import all_reduce_stats, rank_and_world, require_distributed
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.shards import (
    ShardPlan,
    check_shard,
    existing_shard,
    save_shard,
    shard_manifest,
)
from value_lens.fitting.stats import ActivationStats

#: the accumulator class, under the name the collection tests patch
_Accumulator = Accumulator

__all__ = [
    "CollectPlan",
    "CollectRun",
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


@dataclass(frozen=True)
class CollectRun:
    """How and where :func:`collect_stats` runs (the sums do not depend on it; ``dtype`` is
    the precision they are added in).

    Attributes:
        batch_size / max_batch_tokens: batching (sorted by length, right-padded, which causal
            attention makes harmless).
        dtype: of the sums across batches (fp64 default).
        truncate: cut sequences longer than the model's context instead of raising.
        progress: draw a progress bar (:mod:`value_lens.core.progress`).
        shard / out: collect only shard ``(rank, world)`` of the data (balanced by tokens) and
            write it atomically under ``out`` with a manifest; a finished shard is reused. Merge
            with :meth:`ActivationStats.merge` (see :mod:`value_lens.fitting.shards`).
        distributed: inside an initialised ``torch.distributed`` process group, collect this
            rank's shard and all-reduce, so every rank returns the whole data's statistics
            (see :mod:`value_lens.fitting.distributed`).
    """

    batch_size: int = 8
    max_batch_tokens: int | None = 16384
    dtype: torch.dtype = torch.float64
    truncate: bool = False
    progress: bool = True
    shard: tuple[int, int] | None = None
    out: str | os.PathLike[str] | None = None
    distributed: bool = False


_PLAN_KEYS = ("moments", "sample_per_class")


def _options(
    plan: CollectPlan | None, run: CollectRun | None, options: dict[str, Any]
) -> tuple[CollectPlan, CollectRun]:
    """The plan and the run options, with the keyword shortcuts (``moments=``,
    ``sample_per_class=``, and any :class:`CollectRun` field) folded in."""
    want, how = plan or CollectPlan(), run or CollectRun()
    fields = set(CollectRun.__dataclass_fields__)
    unknown = sorted(set(options) - fields - set(_PLAN_KEYS))
    if unknown:
        raise InputError(
            f"collect_stats has no option(s) {unknown}; what to collect goes in plan= "
            f"(CollectPlan, or the shortcuts {list(_PLAN_KEYS)}), how to run it in run= "
            f"(CollectRun: {sorted(fields)})"
        )
    shortcuts = {k: options.pop(k) for k in _PLAN_KEYS if k in options}
    if shortcuts:
        want = want | CollectPlan(**shortcuts)
    return want, replace(how, **options) if options else how


def collect_stats(
    model: HookedModel,
    data: LabelledTokens,
    plan: CollectPlan | None = None,
    run: CollectRun | None = None,
    *,
    layers: int | Iterable[int] | None = None,
    seed: int = 0,
    **options: Any,
) -> ActivationStats:
    """Stream ``data`` through ``model`` and sum residual vectors per layer, group and label.

    Args:
        model: any TransformerLens-style model.
        data: labelled sequences; tokens labelled ``IGNORE`` (and padding) are never read.
        plan: what to keep besides the per-group sums (a
            :class:`~value_lens.fitting.plan.CollectPlan`; :func:`value_lens.fitting.methods.needs`
            gives a method's). Shortcuts: ``moments=True`` (second moments of the tokens with a
            regression target, for ``method="ridge"``: ``data.targets`` where given, else
            AFTER=1 vs BEFORE=0) and ``sample_per_class=N`` (a seeded uniform sample of N token
            vectors per label, each tagged with its group, for ``method="logistic"``).
        run: how and where it runs (:class:`CollectRun`: batching, dtype, truncation, progress,
            a shard written under a directory, or a ``torch.distributed`` group); its fields can
            also be given as keywords (``batch_size=4``, ``progress=False``, ...).
        layers: value_lens layers (block outputs); ``None`` for all.
        seed: the seed of the token samples.

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
    want, how = _options(plan, run, dict(options))
    want.check_data(data)
    if how.shard is not None or how.out is not None or how.distributed:
        kw = {"layers": layers, "seed": seed, "plan": want, **_run_fields(how)}
        kw |= {"moments": want.moments, "sample_per_class": want.sample_per_class}
        return _parallel(model, data, how.shard, how.out, how.distributed, kw)
    L = resolve_layers(layers, n_layers(model))
    classes = sorted(data.label_counts())
    if not classes:
        raise InputError("every token is labelled IGNORE; there is nothing to collect")
    groups = data.group_names
    want.check_memory(layers=len(L), groups=len(groups), d_model=d_model(model))
    dev = model_device(model)
    acc = Accumulator(
        L, len(groups), classes, d_model(model), dtype=how.dtype, device=dev, plan=want
    )
    spec = _Run(L, classes, how.batch_size, how.max_batch_tokens, seed, how.truncate)
    _stream(model, data, acc, spec, want, how.progress)
    return acc.finish(groups, classes, _meta(model, data, want))


def _run_fields(how: CollectRun) -> dict[str, Any]:
    """The run options a shard's collection repeats (not where it writes)."""
    keep = ("batch_size", "max_batch_tokens", "dtype", "truncate", "progress")
    return {k: getattr(how, k) for k in keep}


def _meta(model: HookedModel, data: LabelledTokens, plan: CollectPlan) -> dict[str, Any]:
    """What the stats record about their model and data."""
    meta: dict[str, Any] = {
        "model_id": model_id(model),
        "n_layers_model": n_layers(model),
        "dataset_hash": data.fingerprint(),
        "dataset": data.describe(),
        "n_sequences": len(data),
        "group_sequences": dict(Counter(data.groups)),
    }
    if plan.moments:
        meta["moments_target"] = "targets" if data.targets is not None else "after_vs_before"
    return meta


@dataclass(frozen=True)
class _Run:
    """How :func:`_stream` runs the model (results do not depend on it)."""

    layers: list[int]
    classes: list[int]
    batch_size: int
    max_batch_tokens: int | None
    seed: int
    truncate: bool


def _stream(
    model: HookedModel,
    data: LabelledTokens,
    acc: Accumulator,
    run: _Run,
    plan: CollectPlan,
    progress: bool,
) -> None:
    """One forward pass per batch, every requested layer read into ``acc``."""
    dev = model_device(model)
    class_lut = torch.full((max(run.classes) + 2,), -1, dtype=torch.long)
    class_lut[torch.tensor(run.classes)] = torch.arange(len(run.classes))
    seqs = checked_sequences(data, n_ctx(model), truncate=run.truncate)
    lengths = [int(s.numel()) for s in seqs]
    pad_id = getattr(model.tokenizer, "pad_token_id", None) or 0
    groups = data.group_names
    bar = progress_bar(
        total=sum(lengths), unit="tok", desc="collect", enabled=None if progress else False
    )
    for number, rows in enumerate(iter_batches(lengths, run.batch_size, run.max_batch_tokens)):
        tokens, lab = padded_batch(seqs, data.labels, rows, pad_id)
        bl = BatchLabels(
            number, rows, lab, torch.tensor([groups.index(data.groups[i]) for i in rows])
        )
        if data.targets is not None:
            tgt = [data.targets[i][: lengths[i]] for i in rows]
            bl.targets = _pad_rows(tgt, float("nan"), torch.float64)
        if plan.sample_per_class > 0:
            row_keys = [_token_keys(seqs[i], data.groups[i], run.seed) for i in rows]
            bl.keys = _pad_rows(row_keys, float("inf"), torch.float64)
        if plan.positions:
            bl.positions = _pad_features([position_features(data, i)[: lengths[i]] for i in rows])
        batch = acc.plan(bl, class_lut)

        def read(layer: int, resid: torch.Tensor, batch: Batch = batch) -> None:
            acc.read(layer, resid, batch)

        run_resid_hooks(model, tokens.to(dev), dict.fromkeys(run.layers, read))
        bar.update(sum(lengths[i] for i in rows))
    bar.close()


def _pad_features(rows: list[torch.Tensor]) -> torch.Tensor:
    """Stack ``[T_i, F]`` feature rows into ``[B, max T, F]`` (padding NaN)."""
    shape = (len(rows), max(r.shape[0] for r in rows), rows[0].shape[1])
    out = torch.full(shape, float("nan"), dtype=torch.float64)
    for r, v in enumerate(rows):
        out[r, : v.shape[0]] = v
    return out


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
    "plan",
    "seed",
    "truncate",
    "progress",
)
