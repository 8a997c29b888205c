"""Held-out splits by criterion (never by token or conversation).

Example:
    >>> names = [f"c{i}" for i in range(10)]
    >>> splits = criterion_splits(names, n_splits=3, n_train=7, seed=0)
    >>> len(splits), len(splits[0][0]), len(splits[0][1])
    (3, 7, 3)
    >>> set(splits[0][0]).isdisjoint(splits[0][1])
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from random import Random

from value_lens.errors import InputError

__all__ = ["criterion_splits"]


def criterion_splits(
    names: Iterable[str], *, n_splits: int = 10, n_train: int = 35, seed: int = 0
) -> list[tuple[list[str], list[str]]]:
    """``n_splits`` seeded (train, test) partitions of the criterion names.

    Args:
        names: criterion (group) names, e.g. ``data.group_names``; duplicates are ignored.
        n_splits: number of repeats (the paper's code uses 10).
        n_train: criteria per training set (the paper uses 35 of 50); the rest are test.
        seed: split ``k`` shuffles with ``Random(seed * 1000 + k)``.

    Raises:
        InputError: if fewer than ``n_train + 1`` distinct criteria are given.
    """
    pool = sorted(dict.fromkeys(map(str, names)))
    if n_splits < 1:
        raise InputError(f"n_splits must be >= 1, got {n_splits}")
    if n_train < 1 or len(pool) < n_train + 1:
        raise InputError(
            f"{len(pool)} distinct criteria cannot give {n_train} training criteria plus at "
            f"least one held-out criterion; lower n_train (at most {max(len(pool) - 1, 0)}) "
            "or label more criteria"
        )
    out = []
    for k in range(n_splits):
        order = pool[:]
        Random(seed * 1000 + k).shuffle(order)
        out.append((sorted(order[:n_train]), sorted(order[n_train:])))
    return out
