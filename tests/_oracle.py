"""HF output_hidden_states oracles shared by the core tests (block i <-> hidden_states[i + 1])."""

from __future__ import annotations

import torch

from value_lens.data.tokens import LabelledTokens


def hidden_states(hf, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return hf(ids[None], output_hidden_states=True).hidden_states


def oracle_mean_diff(
    hf, data: LabelledTokens, layer: int, pos: int = 1, neg: int = 0
) -> torch.Tensor:
    """The paper's Eq. 1 by hand: mean over groups of (mean pos tokens - mean neg tokens)."""
    diffs = []
    for g in data.group_names:
        a, b = [], []
        for ids, lab, grp in zip(data.input_ids, data.labels, data.groups, strict=True):
            if grp != g:
                continue
            h = hidden_states(hf, ids)[layer + 1][0].double()
            a.append(h[lab == pos])
            b.append(h[lab == neg])
        diffs.append(torch.cat(a).mean(0) - torch.cat(b).mean(0))
    return torch.stack(diffs).mean(0)


def random_data(
    n_seqs: int, vocab: int, *, seed: int = 0, groups=("a", "b", "c")
) -> LabelledTokens:
    """Random sequences: a few ignored header tokens, then BEFORE, one REWARD, then AFTER tokens."""
    gen = torch.Generator().manual_seed(seed)
    ids, labs, grps = [], [], []
    for i in range(n_seqs):
        n_before = int(torch.randint(3, 12, (1,), generator=gen))
        n_after = int(torch.randint(3, 12, (1,), generator=gen))
        n = 3 + n_before + 1 + n_after
        ids.append(torch.randint(5, vocab, (n,), generator=gen))
        labs.append(torch.tensor([-1] * 3 + [0] * n_before + [2] + [1] * n_after))
        grps.append(groups[i % len(groups)])
    return LabelledTokens(ids, labs, grps)


def shifted_after_data(seed: int = 3, n_groups: int = 6) -> LabelledTokens:
    """Two sequences per group of random tokens, AFTER tokens drawn from a shifted id range (a
    weak planted contrast, so held-out scores sit strictly between 0 and 1)."""
    gen = torch.Generator().manual_seed(seed)
    ids, labs, groups = [], [], []
    for g in range(n_groups):
        for _ in range(2):
            before = torch.randint(5, 300, (6,), generator=gen)
            after = torch.randint(150, 500, (5,), generator=gen)
            ids.append(torch.cat([torch.randint(5, 500, (2,), generator=gen), before, after]))
            labs.append(torch.tensor([-1] * 2 + [0] * 6 + [1] * 5))
            groups.append(f"g{g}")
    return LabelledTokens(ids, labs, groups)
