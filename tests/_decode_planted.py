"""Planted rollouts for the early-stopping tests: problem difficulty, length and two token
signals that are equal in truth (shared by tests/decode/test_decode_budget.py and
test_decode_coverage.py)."""

from __future__ import annotations

import numpy as np

from value_lens.decode.budget import StopInputs


def planted(rng, problems, n=24, w=4, t=24, signal=0.6, same_length=False):
    """Rollouts with a problem difficulty, correct ones shorter (unless ``same_length``), and
    two token signals ``signal * correct + N(0, 1)`` drawn independently: two scorers equal in
    truth."""
    q = 1 / (1 + np.exp(-rng.normal(-0.3, 1.5, problems)))
    correct = (rng.random((problems, n)) < q[:, None]).astype(float)
    if same_length:
        length = np.full((problems, n), t)
    else:
        length = np.clip(np.round(rng.normal(18 - 5 * correct, 5)), w, t).astype(int)
    answers = np.where(correct > 0, 0, 1 + rng.integers(0, 3, (problems, n)))

    def one() -> StopInputs:
        x = signal * correct[..., None] + rng.normal(size=(problems, n, t))
        c = np.concatenate([np.zeros((problems, n, 1)), x.cumsum(-1)], -1)
        g = (c[..., w:] - c[..., :-w]) / w
        g = np.where(np.arange(t - w + 1) <= (length - w)[..., None], g, np.inf)
        return StopInputs(g, g.min(-1), length, answers, correct, w)

    return one(), one()
