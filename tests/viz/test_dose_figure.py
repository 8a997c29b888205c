"""The dose-response figure shows the spread across prompts: one thin line per prompt (its mean
over seeds per strength) behind the mean, so an anti-steerable prompt is visible."""

from __future__ import annotations

import pandas as pd

from value_lens.viz.figures_evals import dose_response_figure


def test_every_prompt_gets_a_thin_line_of_its_seed_means():
    rows = []
    for pid, slope in (("a", 1.0), ("b", 2.0), ("c", -1.5)):  # "c" moves against the mean
        for seed in (0, 1):
            for alpha in (-1.0, 0.0, 1.0):
                rows.append(
                    {
                        "layer": 3,
                        "alpha": alpha,
                        "seed": seed,
                        "prompt_id": pid,
                        "degenerate": False,
                        "n_tokens": 10 + slope * alpha + seed,
                    }
                )
    df = pd.DataFrame(rows)
    fig = dose_response_figure(df, ["n_tokens"])
    thin = {t.name: t for t in fig.data if t.mode == "lines" and t.name.startswith("prompt ")}
    assert set(thin) == {"prompt a", "prompt b", "prompt c"}
    assert list(thin["prompt c"].x) == [-1.0, 0.0, 1.0]
    assert list(thin["prompt c"].y) == [12.0, 10.5, 9.0]  # seeds 0 and 1 averaged
    assert all(not t.showlegend for t in thin.values())
    (mean,) = [t for t in fig.data if t.mode == "lines+markers"]
    assert list(mean.y) == [10.5 + (-1.0 - 2.0 + 1.5) / 3, 10.5, 10.5 + (1.0 + 2.0 - 1.5) / 3]
    assert not [
        t for t in dose_response_figure(df, ["n_tokens"], prompt=None).data if t.mode == "lines"
    ]
