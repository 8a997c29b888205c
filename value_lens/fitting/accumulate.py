"""The device-resident running sums behind :func:`~value_lens.fitting.collect.collect_stats`.

One :class:`Accumulator` per collection: :meth:`Accumulator.plan` reads a batch's labels once
(counts, regression targets, reservoir merge plan, class-moment cells, position features) and
:meth:`Accumulator.read` adds one layer's residuals of that batch into every sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from value_lens.data.positions import POSITION_FEATURES
from value_lens.data.tokens import AFTER, BEFORE, IGNORE
from value_lens.errors import InputError, NonFiniteActivationError
from value_lens.fitting.moments import ClassMoments, Moments, Reservoir
from value_lens.fitting.plan import CollectPlan
from value_lens.fitting.stats import ActivationStats

__all__ = ["Accumulator", "Batch", "BatchLabels", "regression_target"]


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
class BatchLabels:
    """What one batch brings besides its residuals (padded ``[B, T]`` on the CPU)."""

    number: int
    rows: list[int]
    lab: torch.Tensor
    groups_of_rows: torch.Tensor
    targets: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    positions: torch.Tensor | None = None  # [B, T, F]


@dataclass
class Batch:
    """Everything the per-layer reader needs about one batch (on the model's device)."""

    number: int
    rows: list[int]
    sel: torch.Tensor  # [B*T] bool: labelled, non-pad tokens
    flat: torch.Tensor  # [N] group * C + class of each selected token
    y: torch.Tensor | None  # [N] regression target (0 where missing)
    w: torch.Tensor | None  # [N] 1 where the target is finite
    slots: list[tuple[torch.Tensor, torch.Tensor]] | None  # reservoir merge plan per class
    cells: list[tuple[int, int, torch.Tensor]] | None = None  # (group, label, token rows)
    z: torch.Tensor | None = None  # [N, F] position features of the selected tokens


def _zero_class_moments(
    plan: CollectPlan, L: int, G: int, D: int, device: torch.device
) -> ClassMoments:
    """Empty class moments (position sums on the CPU, everything per layer on ``device``)."""
    K, F = len(plan.moment_labels), len(POSITION_FEATURES) if plan.positions else 0

    def z64(*shape: int, dev: torch.device = device) -> torch.Tensor:
        return torch.zeros(shape, dtype=torch.float64, device=dev)

    cpu = torch.device("cpu")
    cm = ClassMoments(plan.moment_labels, z64(L, G, K, D, D), z64(L, G, K), z64(L, G, K, D))
    if F:
        cm.features = POSITION_FEATURES
        cm.z, cm.zz, cm.xz = z64(G, K, F, dev=cpu), z64(G, K, F, F, dev=cpu), z64(L, G, K, D, F)
    return cm


class Accumulator:
    """Running sums for one collection (see the module docs)."""

    def __init__(
        self,
        layers: list[int],
        G: int,
        classes: list[int],
        D: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
        plan: CollectPlan,
    ) -> None:
        C = len(classes)
        self.layers, self.G, self.C, self.dtype, self.dev = layers, G, C, dtype, device
        L = len(layers)

        def z64(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=device)

        self.count = torch.zeros(G * C, dtype=torch.long)
        self.total = torch.zeros(L, G * C, D, dtype=dtype, device=device)
        self.norm_sum = z64(L, G * C)
        self.mom = None
        if plan.moments:
            self.mom = Moments(z64(), z64(L, D), z64(), z64(), z64(L, D), z64(L, D, D))
        self.res = None
        if plan.sample_per_class > 0:
            k = plan.sample_per_class
            inf = torch.full((C, k), float("inf"), dtype=torch.float64)
            self.res = Reservoir(k, inf, torch.zeros(L, C, k, D), torch.full((C, k), -1))
        self.sq = z64(L, G * C, D) if plan.squares else None
        self.cm = None
        if plan.class_moments:
            self.cm = _zero_class_moments(plan, L, G, D, device)
            self.cm_lut = {
                classes.index(c): k for k, c in enumerate(plan.moment_labels) if c in classes
            }

    def plan(self, bl: BatchLabels, class_lut: torch.Tensor) -> Batch:
        """Count the batch's tokens and lay out what :meth:`read` adds for it."""
        lab = bl.lab
        sel = (lab != IGNORE).reshape(-1)
        cls = class_lut[lab.clamp(min=0)]
        grp = bl.groups_of_rows[:, None].expand_as(lab).reshape(-1)[sel]
        flat = (bl.groups_of_rows[:, None] * self.C + cls).reshape(-1)[sel]
        self.count.index_add_(0, flat, torch.ones_like(flat))
        y = w = None
        if self.mom is not None:
            y_all = bl.targets if bl.targets is not None else regression_target(lab)
            y_all = y_all.reshape(-1)[sel]
            fin = torch.isfinite(y_all)
            y, w = torch.where(fin, y_all, 0.0), fin.to(torch.float64)
            self.mom.n += w.sum().to(self.dev)
            self.mom.y += y.sum().to(self.dev)
            self.mom.yy += (y * y).sum().to(self.dev)
            y, w = y.to(self.dev), w.to(self.dev)
        slots = self._reservoir_plan(bl, sel, cls.reshape(-1)[sel], grp)
        z = None
        if bl.positions is not None:
            z = bl.positions.reshape(-1, bl.positions.shape[-1])[sel]
        cells = self._cells(cls.reshape(-1)[sel], grp, z)
        return Batch(
            bl.number,
            bl.rows,
            sel.to(self.dev),
            flat.to(self.dev),
            y,
            w,
            slots,
            cells,
            None if z is None else z.to(self.dev),
        )

    def _reservoir_plan(
        self, bl: BatchLabels, sel: torch.Tensor, cls: torch.Tensor, grp: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        if self.res is None or bl.keys is None or self.res.group is None:
            return None
        cand_keys = bl.keys.reshape(-1)[sel]
        slots = []
        for c in range(self.C):
            pos = (cls == c).nonzero().squeeze(1)
            merged = torch.cat([self.res.keys[c], cand_keys[pos]])
            order = merged.argsort(stable=True)[: self.res.k]
            self.res.keys[c] = merged[order]
            self.res.group[c] = torch.cat([self.res.group[c], grp[pos]])[order]
            slots.append((pos, order))
        return slots

    def _cells(
        self, cls: torch.Tensor, grp: torch.Tensor, z: torch.Tensor | None
    ) -> list[tuple[int, int, torch.Tensor]] | None:
        """The (group, label) cells of the class moments present in the batch, with the rows
        of their tokens; the position sums are added here (they do not depend on the layer)."""
        if self.cm is None:
            return None
        cells = []
        for c, k in self.cm_lut.items():
            for g in grp[cls == c].unique().tolist():
                rows = ((cls == c) & (grp == g)).nonzero().squeeze(1)
                if z is not None and self.cm.z is not None and self.cm.zz is not None:
                    zc = z[rows]
                    if not bool(torch.isfinite(zc).all()):
                        raise InputError(
                            "some tokens of the class-moment labels lie in no turn, so they have "
                            "no position features; give the sequences turn_start/turn_end meta"
                        )
                    self.cm.z[g, k] += zc.sum(0)
                    self.cm.zz[g, k] += zc.T @ zc
                cells.append((g, k, rows.to(self.dev)))
        return cells

    def read(self, layer: int, resid: torch.Tensor, b: Batch) -> None:
        """Add one layer's residuals ``[B, T, D]`` of batch ``b``."""
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
        if self.sq is not None:
            self.sq[li].index_add_(0, b.flat, x.double().square())
        if self.cm is not None and b.cells is not None:
            self._read_cells(li, x, b)
        if self.res is not None and b.slots is not None:
            for c, (pos, order) in enumerate(b.slots):
                cand = x[pos.to(x.device)].cpu()
                self.res.x[li, c] = torch.cat([self.res.x[li, c], cand])[order]

    def _read_cells(self, li: int, x: torch.Tensor, b: Batch) -> None:
        cm = self.cm
        assert cm is not None and b.cells is not None
        for g, k, rows in b.cells:
            xc = x[rows].double()
            sq = xc.square().sum(-1)
            cm.xx[li, g, k] += xc.T @ xc
            cm.x4[li, g, k] += sq.square().sum()
            cm.x2x[li, g, k] += sq @ xc
            if cm.xz is not None and b.z is not None:
                cm.xz[li, g, k] += xc.T @ b.z[rows]

    def finish(
        self, groups: list[str], classes: list[int], meta: dict[str, Any]
    ) -> ActivationStats:
        L, D = len(self.layers), self.total.shape[-1]
        mom = None if self.mom is None else Moments(*(t.cpu() for t in self.mom.tensors()))
        cm = None
        if self.cm is not None:
            tensors = {k: v.cpu() for k, v in self.cm.tensors().items()}
            cm = ClassMoments.from_tensors(self.cm.labels, self.cm.features, tensors)
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
            class_moments=cm,
            sq_sum=None if self.sq is None else self.sq.cpu().reshape(L, self.G, self.C, D),
        )
