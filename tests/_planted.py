"""Planted-signal ICRL-shaped data for the confound tests (independent of the code under test).

Every sequence is: a neutral prefix of random length, one *placebo* turn (a failed attempt cut at
a pseudo-reward token), a neutral separator, one *real* turn (cut at its reward token) and a
neutral tail. Prefix and turn lengths vary, so absolute, within-turn and relative positions
differ. Inside a turn, a token's id comes from a vocabulary band picked by its distance to the
end of the turn: a purely positional signal that the embedding, and so the residual stream,
carries. With ``value=True`` the AFTER tokens of real turns (and only those) use a "success" twin
of each id; :func:`plant_vector` makes every twin's embedding its base token's embedding plus a
fixed vector, so a value signal independent of position sits at a known direction.
"""

from __future__ import annotations

from random import Random

import torch

from value_lens.data.tokens import (
    AFTER,
    BEFORE,
    IGNORE,
    PLACEBO_AFTER,
    PLACEBO_BEFORE,
    REWARD,
    LabelledTokens,
)

BASE, PER_BAND, TWIN_SHIFT = 20, 12, 100
NEUTRAL = range(300, 400)
REWARD_ID = 450


def _turn(rng: Random, n: int, cut: int, bands: int, width: int, twin_after: bool) -> list[int]:
    ids = []
    for t in range(n):
        band = min((n - 1 - t) // width, bands - 1)
        tid = BASE + band * PER_BAND + rng.randrange(PER_BAND)
        if twin_after and t > cut:
            tid += TWIN_SHIFT
        ids.append(REWARD_ID if t == cut else tid)
    return ids


def planted_data(
    *,
    n_groups: int = 6,
    per_group: int = 8,
    bands: int = 8,
    width: int = 5,
    value: bool = False,
    seed: int = 0,
) -> LabelledTokens:
    """Real and placebo turns with a positional signal, plus a value signal when ``value``."""
    assert bands * PER_BAND <= TWIN_SHIFT, "band ids would collide with the twins"
    rng = Random(seed)
    ids_out, labels_out, groups, metas = [], [], [], []
    for g in range(n_groups):
        for i in range(per_group):
            ids = [rng.choice(NEUTRAL) for _ in range(rng.randint(4, 40))]
            lab = [IGNORE] * len(ids)
            turns = []
            for kind in ("placebo", "real"):
                n = rng.randint(24, 56)
                cut = round(rng.uniform(0.25, 0.75) * n)
                start = len(ids)
                ids += _turn(rng, n, cut, bands, width, twin_after=value and kind == "real")
                lo, hi = (BEFORE, AFTER) if kind == "real" else (PLACEBO_BEFORE, PLACEBO_AFTER)
                mid = REWARD if kind == "real" else IGNORE
                lab += [lo] * cut + [mid] + [hi] * (n - cut - 1)
                turns.append({"turn_start": start, "turn_end": start + n, "cut": [start + cut] * 2})
                sep = [rng.choice(NEUTRAL) for _ in range(3)]
                ids += sep
                lab += [IGNORE] * len(sep)
            ids_out.append(torch.tensor(ids))
            labels_out.append(torch.tensor(lab))
            groups.append(f"crit{g}")
            real = turns[1]
            metas.append(
                {
                    "conversation_id": f"c{g}_{i}",
                    "turn_start": real["turn_start"],
                    "turn_end": real["turn_end"],
                    "placebo_turns": [turns[0]],
                }
            )
    return LabelledTokens(ids_out, labels_out, groups, meta=metas)


def plant_vector(hf_model, v: torch.Tensor) -> None:
    """Make every success twin's input embedding equal its base token's plus ``v`` (in place)."""
    emb = hf_model.get_input_embeddings().weight
    with torch.no_grad():
        for tid in range(BASE, BASE + TWIN_SHIFT):
            emb[tid + TWIN_SHIFT] = emb[tid] + v
