"""Planted residuals with a known position signal and a known value jump, swept without a model.

Each sequence is: a neutral prefix (its length sets the depth of what follows), ``n_placebo``
failed attempts and then one real turn, separated by neutral tokens. Turn lengths vary, and so
do the real cuts: each criterion draws its own typical cut (so cut positions vary across
criteria). Placebo turns are first cut the *old* way, at a relative position drawn from
``placebo_cut`` (not matched to anything); the sweep re-cuts them.

A labelled token's residual (``dim`` dimensions) is

    h = mu + noise + position(a, b, n, depth) * u + jump_c * [real AFTER] * w

with ``a``/``b`` the tokens since its turn's start and to its end, ``n`` the turn length, ``u``
and ``w`` fixed unit vectors and ``jump_c`` the value jump of criterion ``c`` (the planted value
``value`` plus criterion-level spread). The position signal depends on the turn's geometry only,
never on the labels, so re-cutting placebo turns changes no residual.

Example:
    >>> data, raw = planted_positions(np.random.default_rng(0), n_groups=3, per_group=1)
    >>> raw.proj.shape[0], raw.proj.shape[2], len(data)
    (1, 8, 3)
"""

from __future__ import annotations

import numpy as np
import torch

from value_lens.analysis.sweep.config import SweepConfig
from value_lens.analysis.sweep.passes import from_residuals
from value_lens.analysis.sweep.run import sweep_projections
from value_lens.analysis.sweep.tokens import TokenProjections
from value_lens.data.placebo import rematch_placebo
from value_lens.data.tokens import (
    AFTER,
    BEFORE,
    IGNORE,
    PLACEBO_AFTER,
    PLACEBO_BEFORE,
    REWARD,
    LabelledTokens,
)

SIGNALS = ("none", "since_start", "relative", "end_proximity", "depth_ramp")


def position_signal(name: str, a: np.ndarray, b: np.ndarray, n: int, depth: int) -> np.ndarray:
    """The planted position signal of tokens ``a`` since their turn's start and ``b`` to its
    end, in a turn of ``n`` tokens starting ``depth`` tokens into the sequence."""
    if name == "none":
        return np.zeros(a.shape)
    if name == "since_start":  # a turn-start ramp
        return 0.04 * a
    if name == "relative":  # outside the discontinuity's shared smooth terms
        return 2.5 * a / n
    if name == "end_proximity":
        return -0.8 * np.log1p(b)
    if name == "depth_ramp":  # a ramp steeper deeper in the conversation
        return 0.04 * a * (1 + depth / 400)
    raise ValueError(f"unknown signal {name!r}; one of {SIGNALS}")


def _turn(rng: np.random.Generator, cut_mu: float, n_lo: int, n_hi: int) -> tuple[int, int]:
    n = int(rng.integers(n_lo, n_hi))
    return n, int(np.clip(rng.normal(cut_mu, 0.08), 0.15, 0.85) * n)


def planted_positions(
    rng: np.random.Generator,
    *,
    n_groups: int = 12,
    per_group: int = 2,
    n_placebo: int = 2,
    signal: str = "since_start",
    value: float = 0.0,
    value_spread: float = 0.1,
    noise: float = 1.0,
    dim: int = 8,
    placebo_cut: tuple[float, float] = (0.3, 0.6),
) -> tuple[LabelledTokens, TokenProjections]:
    """ICRL-shaped data (placebo cuts not yet matched) and its planted residuals (one layer)."""
    u, w = np.eye(dim)[0], np.eye(dim)[1]
    mu = rng.normal(0, 1, dim) + 4.0 * np.eye(dim)[2]
    ids, labs, groups, metas, geo = [], [], [], [], []
    for g in range(n_groups):
        cut_mu, jump = rng.uniform(0.3, 0.7), value + value_spread * rng.normal()
        for i in range(per_group):
            n_r, c_r = _turn(rng, cut_mu, 40, 80)
            lab = [IGNORE] * int(rng.integers(5, 120))
            turns = []
            for _ in range(n_placebo):
                n_p = n_r + int(rng.integers(-6, 7))
                k = int(rng.uniform(*placebo_cut) * n_p)
                turns.append({"turn_start": len(lab), "turn_end": len(lab) + n_p})
                lab += [PLACEBO_BEFORE] * k + [IGNORE] + [PLACEBO_AFTER] * (n_p - k - 1)
                lab += [IGNORE] * 4
            s = len(lab)
            lab += [BEFORE] * c_r + [REWARD] + [AFTER] * (n_r - c_r - 1) + [IGNORE] * 3
            ids.append(torch.full((len(lab),), 7))
            labs.append(torch.tensor(lab))
            groups.append(f"crit{g:02d}")
            metas.append(
                {
                    "conversation_id": f"c{g}_{i}",
                    "turn_start": s,
                    "turn_end": s + n_r,
                    "placebo_turns": turns,
                }
            )
            geo.append(jump)
    data, _ = rematch_placebo(LabelledTokens(ids, labs, groups, meta=metas))
    return data, _residuals(rng, data, geo, signal, mu, u, w, noise)


def _residuals(rng, data, jumps, signal, mu, u, w, noise) -> TokenProjections:
    rows = {k: [] for k in ("x", "label", "group", "position", "to_end", "seq", "start")}
    names = data.group_names
    for i, lab in enumerate(data.labels):
        start, end = (t.numpy() for t in data.turn_bounds(i))
        keep = np.flatnonzero(np.isin(lab.numpy(), (BEFORE, AFTER, PLACEBO_BEFORE, PLACEBO_AFTER)))
        s, e = start[keep], end[keep]
        a, b, n = keep - s, e - keep, e - s
        p = np.concatenate(
            [
                position_signal(signal, a[j : j + 1], b[j : j + 1], int(n[j]), int(s[j]))
                for j in range(keep.size)
            ]
        )
        x = mu + rng.normal(0, noise, (keep.size, mu.size)) + p[:, None] * u
        x += (lab.numpy()[keep] == AFTER)[:, None] * jumps[i] * w
        rows["x"].append(x)
        rows["label"].append(lab.numpy()[keep])
        rows["group"].append(np.full(keep.size, names.index(data.groups[i])))
        rows["position"].append(keep)
        rows["to_end"].append(e - keep)
        rows["seq"].append(np.full(keep.size, i))
        rows["start"].append(s)
    cat = {k: np.concatenate(v) for k, v in rows.items()}
    x = cat.pop("x").astype(np.float32)[None]
    return TokenProjections(
        proj=x, norm=np.linalg.norm(x, axis=-1), **{k: v.astype(np.int64) for k, v in cat.items()}
    )


def sweep_planted(data: LabelledTokens, raw: TokenProjections, cfg: SweepConfig):
    """The sweep's steps 2-3 on planted residuals (what ``layer_sweep`` does after its passes)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    rand = torch.randn(1, cfg.n_random, raw.proj.shape[2], generator=gen, dtype=torch.float64)
    rand = rand / rand.norm(dim=-1, keepdim=True)
    basis, tp = from_residuals(
        raw,
        data,
        rand,
        cfg.min_count,
        did=cfg.method == "did",
        n_shuffle=cfg.n_shuffle,
        seed=cfg.seed,
    )
    return sweep_projections(data, cfg, [0], basis, tp, rand)
